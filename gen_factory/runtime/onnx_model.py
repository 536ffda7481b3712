"""A registered model as ONNX Runtime sessions plus its card: everything serving and bulk need."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from gen_factory.card import PRECISIONS, ModelCard, read_card
from gen_factory.data.validate import DataValidationError


def providers() -> list[str]:
    """CUDA first where a driver is present, CPU always; `GENFACTORY_ORT_PROVIDERS` overrides."""
    if os.environ.get("GENFACTORY_ORT_PROVIDERS"):
        return os.environ["GENFACTORY_ORT_PROVIDERS"].split(",")
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return ["CPUExecutionProvider"]  # asking for CUDA here would only log an error, then fall back
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def generator_file(card: ModelCard, precision: str = "fp32") -> str:
    """The bundle's generator graph in `precision`; a precision it does not carry is a usage error."""
    carried = {"fp32": card.files.generator, **(card.files.precisions or {})}
    if precision not in carried:
        raise DataValidationError("--precision", precision,
                                  f"this model carries {', '.join(carried)}; choose one of those, or export "
                                  f"it with export.precision.add_precision (one of {', '.join(PRECISIONS)})")
    return carried[precision]


class OnnxModel:
    """Loads `model.onnx` (generator), `discriminator.onnx` (scorer) and `encoder.onnx` from an
    export bundle; `precision` picks a reduced-precision generator the bundle carries (int8), for
    generation only: scoring and encoding stay fp32."""

    def __init__(self, bundle_dir: Path, threads: int | None = None, precision: str = "fp32"):
        import onnxruntime as ort

        self.dir = Path(bundle_dir)
        self.card: ModelCard = read_card(self.dir)
        self.precision = precision
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        files = self.card.files
        self.generator = ort.InferenceSession(str(self.dir / generator_file(self.card, precision)), options,
                                              providers=providers())
        self.scorer = ort.InferenceSession(str(self.dir / files.scorer), options, providers=providers())
        self._options, self._encoder = options, None  # opened on first use: serving and bulk never need it

    @property
    def kind(self) -> str:
        return self.card.kind

    @property
    def label_names(self) -> list[str]:
        return self.card.label_names

    @property
    def shape(self) -> list[int]:
        return self.card.shape

    @property
    def conditional(self) -> bool:
        """Whether the generator takes a cond vector (a table with categorical columns)."""
        return any(i.name == "cond" for i in self.generator.get_inputs())

    def generate_raw(
        self, noise: np.ndarray, labels: np.ndarray, cond: np.ndarray | None = None
    ) -> np.ndarray:
        feeds = {"noise": noise, "labels": labels}
        if self.conditional:  # no cond given: every column free (zeros)
            width = self.generator.get_inputs()[2].shape[1]
            feeds["cond"] = cond if cond is not None else np.zeros((len(noise), width), dtype=np.float32)
        return self.generator.run(None, feeds)[0]

    def score_raw(self, values: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Scores [n, len(card.score_methods)] (a scorer from before f-AnoGAN returns [n]: its one column)."""
        return self.scorer.run(None, {"values": values, "labels": labels})[0].reshape(len(values), -1)

    @property
    def has_encoder(self) -> bool:
        """Bundles exported before encoders were shipped have none: they cannot make variations."""
        return self.card.files.encoder is not None

    def encode_raw(self, values: np.ndarray) -> np.ndarray:
        """Noise vectors from which the generator rebuilds `values` (the f-AnoGAN encoder)."""
        if self._encoder is None:
            import onnxruntime as ort

            self._encoder = ort.InferenceSession(str(self.dir / self.card.files.encoder), self._options,
                                                 providers=providers())
        return self._encoder.run(None, {"values": values})[0]
