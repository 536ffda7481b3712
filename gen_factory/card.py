"""File names of an export bundle and reading its model card. Torch-free on purpose: serving
replicas and bulk-generation actors import this, and they must not pay for (or need) torch."""

from __future__ import annotations

import json
from pathlib import Path

GENERATOR_FILE = "model.onnx"  # the name MLflow's ONNX flavour expects for the primary model
SCORER_FILE = "discriminator.onnx"
ENCODER_FILE = "encoder.onnx"  # values -> noise (the f-AnoGAN encoder): variations of real rows
CARD_FILE = "card.json"
# The columns of the scorer graph's output, in order; `fanogan` is the default (bench/RESULTS.md).
SCORE_METHODS = ("critic", "fanogan")
DEFAULT_SCORE_METHOD = "fanogan"


def read_card(bundle_dir: Path) -> dict:
    return json.loads((Path(bundle_dir) / CARD_FILE).read_text())


def write_card(bundle_dir: Path, card: dict) -> None:
    (Path(bundle_dir) / CARD_FILE).write_text(json.dumps(card, indent=2))
