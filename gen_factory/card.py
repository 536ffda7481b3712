"""The model card: what a bundle is (schema, labels, encoding, files, metrics, calibration), typed and
versioned, and the one place that reads and writes `card.json`.

Torch-free on purpose: serving replicas and bulk-generation actors import this, and they must not
pay for (or need) torch. A card from an older gen_factory is migrated on read, step by step up to
CARD_VERSION (`MIGRATIONS`), so readers only ever see the current shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gen_factory.data.columns import SPEC, EncodingSpec
from gen_factory.data.schema import TableSchema

GENERATOR_FILE = "model.onnx"  # the name MLflow's ONNX flavour expects for the primary model
SCORER_FILE = "discriminator.onnx"
ENCODER_FILE = "encoder.onnx"  # values -> noise (the f-AnoGAN encoder): variations of real rows
CARD_FILE = "card.json"
# Generator precisions a bundle may carry: fp32 (`files.generator`, always) and the opt-in reduced ones
# that export/precision.py writes beside it (`files.precisions`).
PRECISIONS = ("fp32", "int8")
# The columns of the scorer graph's output, in order (models exported before the forest: the first two;
# tables and images exported before the nearest-neighbour distance: the first four);
# `ensemble` (the f-AnoGAN with the isolation forest; for images with `knn` instead) is the default
# (bench/anomaly_broad.py, bench/mnist_anomaly.py, bench/RESULTS.md).
SCORE_METHODS = ("critic", "fanogan", "iforest", "ensemble", "knn")
# A table scorer's fifth column (exported since it has one): the row's novelty alone, the part of its
# `ensemble` that the value encoding hides (`export.bundle.Novelty`).
NOVELTY_METHOD = "novelty"
DEFAULT_SCORE_METHOD = "ensemble"
# The scorer graph's second output (bundles exported before attribution have the first alone).
ATTRIBUTION_OUTPUT = "contributions"
CARD_VERSION = 2

# A figure of the evaluation: a score, the classes that collapsed, or a score per column.
Metric = float | list[str] | dict[str, float]


def default_method(methods: list[str]) -> str:
    """A model's default score: DEFAULT_SCORE_METHOD, or for an older model its last (newest) method."""
    return DEFAULT_SCORE_METHOD if DEFAULT_SCORE_METHOD in methods else methods[-1]


class BundleFiles(BaseModel):
    model_config = SPEC

    generator: str = GENERATOR_FILE
    scorer: str = SCORER_FILE
    encoder: str | None = None  # None: exported before encoders shipped (no variations)
    # Reduced-precision generator graphs by precision ({"int8": "generator.int8.onnx"}); None: fp32 only
    precisions: dict[Literal["int8"], str] | None = None


class Thresholds(BaseModel):
    """A method's threshold when scoring against the given label, and against the best label."""

    model_config = SPEC

    given_label: float
    best_label: float


class AnomalyCalibration(BaseModel):
    """Thresholds at `fpr` on held-out normal data; for one-class models also the detection figures
    per method on the hold-out (`holdout`) and the classic detectors' report (`baseline`)."""

    model_config = SPEC

    fpr: float
    default_method: str = DEFAULT_SCORE_METHOD
    thresholds: dict[str, Thresholds]
    anomaly_labels: list[str] = []
    holdout: dict[str, dict[str, float]] | None = None
    baseline: dict[str, dict[str, float]] | None = None


class EnsembleParts(BaseModel):
    """The default `ensemble` score's parts: the f-AnoGAN residual joins a classic detector - the
    isolation forest (tables) or the distance to the nearest normal training images (`knn`, images) -
    only where G(E(x)) rebuilds the normal training inputs (`reconstruction_r2` >=
    `min_reconstruction_r2`). `reference_rows`: how many normal training inputs the scorer file holds
    for `knn` (None: it holds none)."""

    model_config = SPEC

    parts: list[str]
    reconstruction_r2: float | None  # None: a scorer built without measuring it
    min_reconstruction_r2: float
    reference_rows: int | None = None


class ScoreAttribution(BaseModel):
    """What the scorer graph's `output` holds per input: each table column's (`unit` column, in the
    order of `names`) or each pixel's (`unit` pixel, row-major [H, W]) share of the f-AnoGAN
    reconstruction residual, divided by that column's or pixel's `quantile` on the normal training
    data (None: not calibrated, bundles exported without training data). 1 = as large as that
    quantile of normal rows, so contributions compare across columns."""

    model_config = SPEC

    output: str = ATTRIBUTION_OUTPUT
    unit: Literal["column", "pixel"]
    names: list[str] | None = None
    quantile: float | None = None


class ModelCard(BaseModel):
    """Everything a consumer of a bundle needs; `None` marks what models from before a field existed lack."""

    model_config = ConfigDict(**SPEC, protected_namespaces=())

    schema_version: Literal[CARD_VERSION] = CARD_VERSION
    model_name: str
    kind: Literal["table", "image"]
    dataset: str
    label_column: str
    label_names: list[str]
    columns: list[str] | None = None  # table feature columns in order; None for images
    shape: list[int]  # one encoded row / image: [width] or [C, H, W]
    n_labels: int
    noise_dim: int
    # Noise columns past noise_dim that sample the missing-value flags (one per continuous column with
    # missing values); the generator's noise input is noise_dim + flag_noise wide.
    flag_noise: int = 0
    encoding: EncodingSpec
    label_counts: list[int] | None = None  # training rows per label
    loss: str
    variant: str | None = None  # images: the variant preset
    epochs: int
    encoder_epochs: int | None = None
    # Trained on from the split model's networks for `epochs` (a warm refit on every row), not from noise
    warm_start: bool = False
    seed: int
    mlflow_run_id: str | None = None
    selected_epoch: int | None = None  # the GAN epoch that shipped (checkpoint selection)
    selected_train_frechet: float | None = None
    files: BundleFiles = BundleFiles()  # export_bundle names the encoder too
    score_methods: list[str] = list(SCORE_METHODS[:4])  # export_bundle writes the scorer's own
    parity_max_abs_diff: dict[str, float] = {}
    free_shares: list[list[list[float]]] | None = None  # [categorical column][label][category]
    metrics: dict[str, Metric] = {}
    anomaly: AnomalyCalibration | None = None
    # tables: the user's schema (order, types), which generated rows are given back in; None before v2
    table_schema: TableSchema | None = None
    # Which rows trained this model: `rows_trained` of the `rows_given` (None before v2). `metrics` and
    # the anomaly thresholds were measured on `report_rows` held-out rows by a model trained on the
    # others; when rows_trained == rows_given this model is its refit on every row (`refit`).
    rows_given: int | None = None
    rows_trained: int | None = None
    report_rows: int | None = None
    attribution: ScoreAttribution | None = None  # None: exported before attribution (scores only)
    ensemble: EnsembleParts | None = None  # None: exported before the ensemble said its parts


def _from_0(card: dict) -> dict:
    """Unversioned cards (before this module typed them). Over their history they lacked, by commit:
    label_counts (before 5c55ad5), encoder_epochs, anomaly and score_methods (before 02fc29f: the
    scorer graph returned the negated critic alone), free_shares (before 84eed74), the encoder file
    (before b454f98), selected_* (before 234c6ef), the image encoding's `integer`, a categorical
    column's label_counts; and the first tables (e90ee6b) had one standardisation per column instead
    of column specs. Absent optional fields take their None / default."""
    card = {**card, "files": {"encoder": None, **card["files"]}}
    card.setdefault("score_methods", ["critic"])
    encoding = card["encoding"]
    if encoding["type"] == "TableEncoding" and "columns" not in encoding:
        card["encoding"] = {"type": "TableEncoding", "columns": [
            {"name": name, "kind": "continuous", "method": "standard", "low": low, "high": high,
             "integer": integer, "mean": mean, "std": std}
            for name, mean, std, low, high, integer in zip(
                card["columns"], encoding["mean"], encoding["std"], encoding["low"], encoding["high"],
                encoding["integer"], strict=True)
        ]}
    return {**card, "schema_version": 1}


def _from_1(card: dict) -> dict:
    """Version 1 kept no table schema: such models return rows in their own types (strings and the
    label as categories, whole numbers as int64), as they always did."""
    return {**card, "schema_version": 2}


# MIGRATIONS[v] turns a version-v card (as JSON) into a version v + 1 one.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _from_0, 1: _from_1}


def card_from_json(raw: dict) -> ModelCard:
    """A card of any version this gen_factory knows, migrated to CARD_VERSION and validated."""
    version = raw.get("schema_version", 0)
    if version > CARD_VERSION:
        raise ValueError(f"model card schema_version {version} is newer than this gen_factory reads "
                         f"({CARD_VERSION}) -- fix: upgrade gen_factory")
    while version < CARD_VERSION:
        raw, version = MIGRATIONS[version](raw), version + 1
    return ModelCard.model_validate(raw)


def read_card(bundle_dir: Path) -> ModelCard:
    return card_from_json(json.loads((Path(bundle_dir) / CARD_FILE).read_text()))


def write_card(bundle_dir: Path, card: ModelCard) -> None:
    """JSON through `json.dumps`, so a non-finite figure stays NaN / Infinity as Python reads it back."""
    (Path(bundle_dir) / CARD_FILE).write_text(json.dumps(card.model_dump(exclude_none=True), indent=2))
