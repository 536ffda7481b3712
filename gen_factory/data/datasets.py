"""Load labelled tables and images: bundled sklearn sets by name, Parquet/CSV tables, NPZ image arrays.

A dataset is addressed by a *spec* string so every Ray worker can load the same data on its own
node instead of receiving it through the object store: a bundled name (``digits``) or a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gen_factory.data.validate import DataValidationError, check_finite, check_labels

BUNDLED_TABLES = ("breast_cancer", "iris", "wine")
BUNDLED_IMAGES = ("digits",)


@dataclass
class TableData:
    """Numeric feature columns plus an integer label per row (label names kept in order)."""

    name: str
    features: np.ndarray  # float32 [n, d]
    labels: np.ndarray  # int64 [n]
    columns: list[str]
    label_names: list[str]
    label_column: str = "label"
    kind: str = "table"

    def subset(self, idx: np.ndarray) -> "TableData":
        return TableData(self.name, self.features[idx], self.labels[idx], self.columns,
                         self.label_names, self.label_column)


@dataclass
class ImageData:
    """Images as float32 [n, C, H, W] in their original value range, with integer labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    label_column: str = "label"
    kind: str = "image"

    def subset(self, idx: np.ndarray) -> "ImageData":
        return ImageData(self.name, self.images[idx], self.labels[idx], self.label_names, self.label_column)


Dataset = TableData | ImageData


def load_dataset(spec: str, label_column: str = "label") -> Dataset:
    """Load and validate a dataset: a bundled name, a ``.parquet``/``.csv`` table, an ``.npz`` image file,
    MNIST IDX files or a folder of PNGs per label (see `gen_factory.data.images`)."""
    if spec in BUNDLED_TABLES or spec in BUNDLED_IMAGES:
        return _load_bundled(spec)
    path = Path(spec)
    if not path.exists():
        raise DataValidationError(
            "dataset", repr(spec),
            f"give a bundled name ({', '.join(BUNDLED_IMAGES + BUNDLED_TABLES)}) or an existing .parquet, .csv or .npz "
            "path, an MNIST IDX file or a folder of <label>/*.png",
        )
    from gen_factory.data.images import is_idx, load_image_source

    if path.is_dir() or is_idx(path):
        return load_image_source(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return table_from_frame(pd.read_parquet(path), label_column, name=path.stem)
    if suffix == ".csv":
        return table_from_frame(pd.read_csv(path), label_column, name=path.stem)
    if suffix == ".npz":
        return _images_from_npz(path)
    raise DataValidationError("dataset", repr(spec), "use a .parquet, .csv or .npz file, an MNIST IDX file "
                              "or a folder of <label>/*.png")


def table_from_frame(df: pd.DataFrame, label_column: str, name: str = "table",
                     label_names: list[str] | None = None) -> TableData:
    """Validate a frame and turn it into numeric features + integer labels (in ``label_names`` order)."""
    if df.shape[0] == 0:
        raise DataValidationError("dataset", "0 rows", "provide a table with at least 2 rows per label")
    if label_column not in df.columns:
        raise DataValidationError(
            "label_column", repr(label_column),
            f"name one of the table's columns with --label-column (columns: {', '.join(map(str, df.columns))})",
        )
    labels_raw = df[label_column]
    if labels_raw.isna().any():
        raise DataValidationError(
            f"column {label_column!r}", f"missing label in {int(labels_raw.isna().sum())} row(s)",
            "drop the rows without a label or fill them",
        )
    features = df.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataValidationError("dataset", "no feature columns", "add at least one numeric column besides the label")
    for col in features.columns:
        if not (pd.api.types.is_numeric_dtype(features[col]) or pd.api.types.is_bool_dtype(features[col])):
            example = features[col].dropna().iloc[0] if features[col].notna().any() else None
            raise DataValidationError(
                f"column {col!r}", f"non-numeric value {example!r} (dtype {features[col].dtype})",
                "encode the column as numbers or drop it (categorical columns are not supported yet)",
            )
    values = features.to_numpy(dtype=np.float64)
    columns = [str(c) for c in features.columns]
    check_finite(values, columns)
    label_names = label_names or sorted(labels_raw.astype(str).unique().tolist(), key=_natural_key)
    index = {name: i for i, name in enumerate(label_names)}
    labels = labels_raw.astype(str).map(index).to_numpy(dtype=np.int64)
    check_labels(labels, label_names, field=f"column {label_column!r}")
    return TableData(name, values.astype(np.float32), labels, columns, label_names, label_column)


def images_from_arrays(images: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None,
                       name: str = "images") -> ImageData:
    """Accept [N,H,W], [N,H,W,C] or [N,C,H,W] (C in 1 or 3) and return validated [N,C,H,W] float32."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataValidationError("images", f"shape {images.shape}", "give [N,H,W], [N,H,W,C] or [N,C,H,W] with C = 1 or 3")
    if len(images) != len(labels):
        raise DataValidationError("labels", f"{len(labels)} labels for {len(images)} images", "give one label per image")
    if not np.issubdtype(images.dtype, np.number):
        raise DataValidationError("images", f"dtype {images.dtype}", "store pixel values as numbers")
    images = images.astype(np.float32)
    flat = images.reshape(len(images), -1)
    bad = ~np.isfinite(flat)
    if bad.any():
        raise DataValidationError("images", f"NaN/inf in {int(bad.any(axis=1).sum())} image(s)", "fix or drop those images")
    raw = np.asarray(labels)
    names = label_names or sorted({str(v) for v in raw.tolist()}, key=_natural_key)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in raw.tolist()} - set(index))
    if unknown:
        raise DataValidationError("labels", f"values {unknown[:5]} not in label_names", "list every label in label_names")
    label_ids = np.array([index[str(v)] for v in raw.tolist()], dtype=np.int64)
    check_labels(label_ids, names)
    return ImageData(name, images, label_ids, list(names))


def split(data: Dataset, test_fraction: float = 0.3, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split: the same data and seed give the same rows on every node."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label in range(len(data.label_names)):
        idx = np.flatnonzero(data.labels == label)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1 if test_fraction > 0 else 0), len(idx) - 1)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return data.subset(np.sort(np.concatenate(train_idx))), data.subset(np.sort(np.concatenate(test_idx)))


def _load_bundled(name: str) -> Dataset:
    from sklearn import datasets as skd

    if name == "digits":
        d = skd.load_digits()
        return images_from_arrays(d.images, d.target, [str(i) for i in range(10)], name="digits")
    loader = {"breast_cancer": skd.load_breast_cancer, "iris": skd.load_iris, "wine": skd.load_wine}[name]
    d = loader(as_frame=True)
    frame = d.frame.copy()
    frame["label"] = np.asarray(d.target_names)[d.target.to_numpy()]
    if "target" in frame.columns:
        frame = frame.drop(columns=["target"])
    # keep sklearn's label order (breast_cancer: malignant=0, benign=1)
    return table_from_frame(frame, "label", name=name, label_names=[str(n) for n in d.target_names])


def _images_from_npz(path: Path) -> ImageData:
    with np.load(path, allow_pickle=False) as z:
        for key in ("images", "labels"):
            if key not in z.files:
                raise DataValidationError(f"npz key {key!r}", f"missing (keys: {', '.join(z.files)})",
                                          "save the file with np.savez(path, images=..., labels=...)")
        names = [str(n) for n in z["label_names"]] if "label_names" in z.files else None
        return images_from_arrays(z["images"], z["labels"], names, name=path.stem)


def _natural_key(value: str) -> tuple:
    """Sort '2' before '10' while still ordering plain strings."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
