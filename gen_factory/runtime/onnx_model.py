"""A registered model as ONNX Runtime sessions plus its card: everything serving and bulk need."""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys
from pathlib import Path

import numpy as np

from gen_factory.card import PRECISIONS, ModelCard, read_card
from gen_factory.data.validate import DataValidationError

log = logging.getLogger(__name__)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_STATE: dict = {"preloaded": False, "warned": False}


def providers() -> list[str]:
    """CUDA first where a driver is present, CPU always; `GENFACTORY_ORT_PROVIDERS` overrides."""
    if os.environ.get("GENFACTORY_ORT_PROVIDERS"):
        return os.environ["GENFACTORY_ORT_PROVIDERS"].split(",")
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return [CPU]  # asking for CUDA here would only log an error, then fall back
    return [CUDA, CPU]


def preload_cuda_libraries() -> list[str]:
    """Load the cuBLAS / cuDNN / CUDA runtime libraries the CUDA provider links against, once per process.

    The torch CUDA wheels bring them as `nvidia-*` packages in site-packages, where ONNX Runtime does not
    look by itself (`libcublasLt.so.13: cannot open shared object file`). `onnxruntime.preload_dlls()`
    (ORT >= 1.21) loads them from there; any that it left out are loaded here from the same folders,
    with RTLD_GLOBAL so the provider's own dlopen finds them. Returns what this call loaded itself."""
    if _STATE["preloaded"]:
        return []
    _STATE["preloaded"] = True
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as err:  # noqa: BLE001 - the fallback below (and the provider check) still run
            log.debug("onnxruntime.preload_dlls() failed: %s", err)
    loaded = []
    for pattern in ("libcudart.so.*", "libcublasLt.so.*", "libcublas.so.*", "libcufft.so.*",
                    "libcurand.so.*", "libcudnn.so.*"):
        for path in _nvidia_libraries(pattern):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                loaded.append(path)
                break
            except OSError:
                continue
    return loaded


def _nvidia_libraries(pattern: str) -> list[str]:
    """`pattern` under site-packages/nvidia/*/lib (and the cu13 wheels' nvidia/cu*/lib), newest first."""
    found = []
    for root in sys.path:
        if root and os.path.isdir(os.path.join(root, "nvidia")):
            found += glob.glob(os.path.join(root, "nvidia", "*", "lib", pattern))
            found += glob.glob(os.path.join(root, "nvidia", "*", "*", "lib", pattern))
    return sorted(set(found), reverse=True)


def open_session(path: str | Path, options, asked: list[str] | None = None):
    """An InferenceSession on the first provider of `asked` (default `providers()`) that loads.

    CUDA asked for: its libraries are preloaded first. The provider in use is checked against the one
    asked for: a fallback is logged once per process in one line (what was asked, what runs, the fix);
    with GENFACTORY_ORT_STRICT=1 it is an error instead (a GPU check must not time the CPU)."""
    import onnxruntime as ort

    asked = asked or providers()
    if CUDA in asked:
        preload_cuda_libraries()
    session = ort.InferenceSession(str(path), options, providers=asked)
    used = session.get_providers()[0]
    if used != asked[0]:
        message = (f"ONNX Runtime: asked for {asked[0]} but runs {Path(path).name} on {used} "
                   f"(available: {', '.join(ort.get_available_providers())}); for CUDA check the driver "
                   "(nvidia-smi) and that the torch CUDA wheel's nvidia-* packages are installed")
        if os.environ.get("GENFACTORY_ORT_STRICT") == "1":
            raise RuntimeError(message)
        if not _STATE["warned"]:
            _STATE["warned"] = True
            log.warning(message)
    return session


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
        self.generator = open_session(self.dir / generator_file(self.card, precision), options)
        self.scorer = open_session(self.dir / files.scorer, options)
        self._options, self._encoder = options, None  # opened on first use: serving and bulk never need it

    @property
    def provider(self) -> str:
        """The execution provider the generator runs on (CUDAExecutionProvider / CPUExecutionProvider)."""
        return self.generator.get_providers()[0]

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
            self._encoder = open_session(self.dir / self.card.files.encoder, self._options)
        return self._encoder.run(None, {"values": values})[0]
