"""Load labelled tables and images: bundled sklearn sets by name, Parquet/CSV tables, NPZ image arrays.

A dataset is addressed by a *spec* string so every Ray worker can load the same data on its own
node instead of receiving it through the object store: a bundled name (``digits``) or a path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gen_factory.data.columns import FoldedCategories, fold_rare
from gen_factory.data.schema import (
    CapturedColumn,
    TableSchema,
    TimeEncoding,
    capture,
    capture_column,
    is_time,
    time_to_numbers,
)
from gen_factory.data.validate import (
    DataValidationError,
    check_finite,
    check_labels,
    check_split,
    check_varies,
)

BUNDLED_TABLES = ("breast_cancer", "iris", "wine", "customers", "loans")
# A table trained without a label column (`label_column=None`) is one class of rows, all normal: its
# label, which no row of the user's carries and no output shows, is ONE_CLASS_LABEL in ONE_CLASS_COLUMN.
ONE_CLASS_COLUMN = "__label__"
ONE_CLASS_LABEL = "normal"
MAX_CATEGORIES = 1000
BUNDLED_IMAGES = ("digits",)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass
class TableData:
    """Feature columns as float32 plus an integer label per row (label names kept in order).

    Categorical columns (those in `categories`) hold the index of their value in that list;
    a missing value is NaN in any column.
    """

    name: str
    features: np.ndarray  # float32 [n, d]
    labels: np.ndarray  # int64 [n]
    columns: list[str]
    label_names: list[str]
    label_column: str = "label"
    kind: str = "table"
    categories: dict[str, list[str]] = field(default_factory=dict)
    schema: TableSchema | None = None  # the user's types, to give generated rows back in them
    # high-cardinality columns: their rare values, folded into the last category (`columns.fold_rare`)
    folded: dict[str, FoldedCategories] = field(default_factory=dict)

    def subset(self, idx: np.ndarray) -> "TableData":
        return TableData(self.name, self.features[idx], self.labels[idx], self.columns,
                         self.label_names, self.label_column, categories=self.categories, schema=self.schema,
                         folded=self.folded)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with category strings and the label column, as the user gave them."""
        return frame_from_codes(self.features, self.labels, self.columns, self.categories,
                                self.label_names, self.label_column)


def frame_from_codes(
    values: np.ndarray,
    labels: np.ndarray,
    columns: list[str],
    categories: dict[str, list[str]],
    label_names: list[str],
    label_column: str,
) -> pd.DataFrame:
    """Codes back to a DataFrame: categorical codes to their strings (NaN stays missing)."""
    out = {}
    for i, col in enumerate(columns):
        if col in categories:
            vocab = np.asarray(categories[col] + [None], dtype=object)
            codes = values[:, i]
            out[col] = vocab[np.where(np.isnan(codes), len(categories[col]), codes).astype(np.int64)]
        else:
            out[col] = values[:, i]
    out[label_column] = np.asarray(label_names, dtype=object)[labels]
    return pd.DataFrame(out)


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


def load_dataset(spec: str, label_column: str | None = "label",
                 categorical: list[str] | None = None) -> Dataset:
    """Load and validate a dataset: a bundled name, a ``.parquet``/``.csv`` table, an ``.npz`` image file,
    MNIST IDX files or a folder of PNGs per label (see `gen_factory.data.images`). `categorical`
    names numeric table columns to model as categories (the inferred types' override); `label_column`
    None reads a table without labels as one class (`ONE_CLASS_COLUMN`)."""
    if categorical and (
        spec in BUNDLED_IMAGES or Path(spec).suffix.lower() not in (".parquet", ".pq", ".csv")
    ):
        raise DataValidationError(
            "column_types", repr(categorical), "column types apply to .parquet / .csv tables only"
        )
    if spec in BUNDLED_TABLES or spec in BUNDLED_IMAGES:
        return _load_bundled(spec)
    path = Path(spec)
    if not path.exists():
        raise DataValidationError(
            "dataset",
            repr(spec),
            f"give a bundled name ({', '.join(BUNDLED_IMAGES + BUNDLED_TABLES)}) or an existing .parquet, "
            ".csv or .npz "
            "path, an MNIST IDX file or a folder of <label>/*.png",
        )
    from gen_factory.data.images import is_idx, load_image_source

    if path.is_dir() or is_idx(path):
        return load_image_source(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _table_from_parquet(path, label_column, categorical)
    if suffix == ".csv":
        _check_csv_header(path)
        return table_from_frame(read_csv(path), label_column, name=path.stem, categorical=categorical)
    if suffix == ".npz":
        return _images_from_npz(path)
    raise DataValidationError("dataset", repr(spec), "use a .parquet, .csv or .npz file, an MNIST IDX file "
                              "or a folder of <label>/*.png")


def table_from_frame(df: pd.DataFrame, label_column: str | None, name: str = "table",
                     label_names: list[str] | None = None, categorical: list[str] | None = None) -> TableData:
    """Validate a frame and turn it into features + integer labels (in ``label_names`` order).

    Column types are inferred: numbers are continuous, strings / booleans / pandas categories are
    categorical, datetimes and dates are numbers in their coarsest whole unit; `categorical` names
    numeric columns to treat as categories instead. Missing values are kept (NaN) and modelled; a
    column that is missing everywhere is refused. The frame's schema is kept (`TableData.schema`).
    """
    return _table(list(df.columns), len(df), df.__getitem__, label_column, name, label_names, categorical)


def _table_from_parquet(path: Path, label_column: str, categorical: list[str] | None) -> TableData:
    """A Parquet table read a column at a time, each converted before the next is read: read whole, the
    frame and the Arrow buffers behind it took the load's peak to 2.4 GiB for a 1M x 100 table (issue 17;
    1.3 GiB this way). A stored index is no column of the table, as `pd.read_parquet` has it."""
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    schema = metadata.schema.to_arrow_schema()
    index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}

    def column(name: str) -> pd.Series:
        # without pre_buffer: its reads ahead left ~0.2 GB more with Arrow's allocator by the last column
        return pd.read_parquet(path, columns=[name], pre_buffer=False)[name]

    return _table([c for c in schema.names if c not in index], metadata.num_rows, column, label_column,
                  path.stem, None, categorical)


def _table(names: list, rows: int, column: Callable[[Any], pd.Series], label_column: str | None, name: str,
           label_names: list[str] | None, categorical: list[str] | None) -> TableData:
    """`table_from_frame` of the table whose columns are `names`, `column(name)` giving one as a Series. Each
    is asked for once (the label first) and converted before the next: a source that reads it only then
    holds one column at a time beside the features, never the whole table."""
    if rows == 0:
        raise DataValidationError("dataset", "0 rows", "provide a table with at least 2 rows per label")
    _check_unique_columns([str(c) for c in names])
    one_class = label_column is None
    if one_class:
        names, column, label_column = _one_class(names, rows, column)
    if label_column not in names:
        raise DataValidationError(
            "label_column",
            repr(label_column),
            "name one of the table's columns with --label-column (columns: "
            f"{', '.join(map(str, names))}), or --no-label for a table without one (one class, all normal)",
        )
    labels_raw = column(label_column)
    if labels_raw.isna().any():
        raise DataValidationError(
            f"column {label_column!r}", f"missing label in {int(labels_raw.isna().sum())} row(s)",
            "drop the rows without a label or fill them",
        )
    features = [c for c in names if c != label_column]
    if not features:
        raise DataValidationError(
            "dataset", "no feature columns", "add at least one column besides the label"
        )
    unknown = sorted(set(categorical or []) - set(map(str, features)))
    if unknown:
        raise DataValidationError(
            "categorical", f"unknown column(s) {unknown}", "name feature columns of the table"
        )
    columns = [str(c) for c in features]
    values = np.empty((rows, len(features)), dtype=np.float32)  # what trains; float64 doubled a 1M-row load
    categories: dict[str, list[str]] = {}
    folded: dict[str, FoldedCategories] = {}
    times: dict[str, TimeEncoding] = {}
    captured: dict[Any, CapturedColumn] = {}
    for i, (col, key) in enumerate(zip(columns, features, strict=True)):
        series = column(key)
        if series.isna().all():
            raise DataValidationError(f"column {col!r}", "missing in every row", "drop the column or fill it")
        if col in (categorical or []) or _is_categorical(series):
            categories[col], values[:, i], fold = _codes(col, series)
            if fold is not None:
                folded[col] = fold
        elif is_time(series):
            values[:, i], times[col] = time_to_numbers(col, series)
        elif pd.api.types.is_numeric_dtype(series):
            values[:, i] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            example = series.dropna().iloc[0]
            raise DataValidationError(
                f"column {col!r}",
                f"value {example!r} of a type that cannot be modelled (dtype {series.dtype})",
                "convert it to numbers, strings, datetimes or dates, or drop it",
            )
        captured[key] = capture_column(series)  # once converted: a column Arrow cannot type is refused above
    check_finite(values, columns)
    label_names = label_names or sorted(labels_raw.astype(str).unique().tolist(), key=_natural_key)
    index = {name: i for i, name in enumerate(label_names)}
    # a copy: pandas copy-on-write hands out read-only views, which torch warns about
    labels = labels_raw.astype(str).map(index).to_numpy(dtype=np.int64, copy=True)
    if not one_class:  # one class has no label to check, nor one of the user's to keep
        check_labels(labels, label_names, field=f"column {label_column!r}")
        captured[label_column] = capture_column(labels_raw)
    check_varies(values, columns)
    others = {col: fold.other for col, fold in folded.items()}
    schema = capture([captured[c] for c in names if c in captured], times, others)  # the user's columns
    return TableData(name, values, labels, columns, label_names, label_column,
                     categories=categories, schema=schema, folded=folded)


def read_csv(path: Path | str, only: set[str] | None = None) -> pd.DataFrame:
    """A CSV as pandas reads it, with columns of ISO 8601 dates or times (as a Parquet or pandas frame
    writes them to CSV) parsed back to datetimes: as strings, a timestamp column would be a category
    of thousands of values. `only`: parse just these columns (a model's time columns)."""
    return parse_iso_dates(pd.read_csv(path), only)


def parse_iso_dates(frame: pd.DataFrame, only: set[str] | None = None) -> pd.DataFrame:
    """`frame` with its columns of ISO 8601 date or time strings (a CSV's, JSON rows') as datetimes
    (`only`: just these)."""
    for col in frame.columns:
        if only is not None and col not in only:
            continue
        series = frame[col]
        if not (pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
            continue
        present = series.dropna()
        if len(present) == 0 or not ISO_DATE.match(str(present.iloc[0])):
            continue
        try:
            frame[col] = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError):  # not dates after all (or mixed offsets): kept as written
            continue
    return frame


def _one_class(names: list, rows: int, column: Callable[[Any], pd.Series]
               ) -> tuple[list, Callable[[Any], pd.Series], str]:
    """(names, column, label column) of a table without labels read as one class: ONE_CLASS_LABEL in
    every row of an added ONE_CLASS_COLUMN."""
    if ONE_CLASS_COLUMN in names:
        raise DataValidationError(f"column {ONE_CLASS_COLUMN!r}", "a reserved name",
                                  "rename it: a table without labels is read as one class under it")
    if rows < 2:
        raise DataValidationError("dataset", f"{rows} row", "provide a table with at least 2 rows")

    def with_label(name) -> pd.Series:
        return pd.Series([ONE_CLASS_LABEL] * rows) if name == ONE_CLASS_COLUMN else column(name)

    return [*names, ONE_CLASS_COLUMN], with_label, ONE_CLASS_COLUMN


def _check_unique_columns(columns: list[str]) -> None:
    """Two columns of one name cannot both be addressed (conditions, output, the card): refuse them."""
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise DataValidationError(f"column {col!r}", f"appears {columns.count(col)} times",
                                      "rename or drop the duplicates so every column has its own name")
        seen.add(col)


def _check_csv_header(path: Path) -> None:
    """pandas renames a repeated CSV header ('a', 'a.1') without a word: read the header as written."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    _check_unique_columns([c.strip() for c in header])


def _is_categorical(series: pd.Series) -> bool:
    kind = series.dtype
    # strings (or bools) with missing values; anything else cannot be modelled
    if pd.api.types.is_object_dtype(kind):
        return all(isinstance(v, (str, bool, np.bool_)) for v in series.dropna())
    return (pd.api.types.is_bool_dtype(kind) or isinstance(kind, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(kind))


def _codes(col: str, series: pd.Series) -> tuple[list[str], np.ndarray, FoldedCategories | None]:
    """Category strings in sorted order, each row's index into them (NaN where missing) and, for a
    string column of many categories, the fold of its rare values into a last "other" (`fold_rare`)."""
    present = series.notna().to_numpy()
    text = series[present].astype(str)
    counts = text.value_counts(sort=False)
    vocab = sorted(counts.index.tolist(), key=_natural_key)
    fold = None
    if _is_text(series):
        vocab, fold = fold_rare(vocab, counts[vocab].tolist())
    if len(vocab) > MAX_CATEGORIES:
        raise DataValidationError(
            f"column {col!r}",
            f"{len(vocab)} distinct values",
            f"drop identifier-like columns or group values to at most {MAX_CATEGORIES} categories",
        )
    index = {v: i for i, v in enumerate(vocab)}
    codes = np.full(len(series), np.nan)
    other = len(vocab) - 1 if fold is not None else -1
    codes[present] = text.map(index).fillna(other).to_numpy(dtype=np.float64)
    return vocab, codes, fold


def _is_text(series: pd.Series) -> bool:
    """A column of strings (plain, or pandas categories of strings): one an "other" category can join."""
    kind = series.dtype
    if isinstance(kind, pd.CategoricalDtype):
        kind = kind.categories.dtype
    if pd.api.types.is_object_dtype(kind):
        return all(isinstance(v, str) for v in series.dropna())
    return pd.api.types.is_string_dtype(kind)


def images_from_arrays(images: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None,
                       name: str = "images") -> ImageData:
    """Accept [N,H,W], [N,H,W,C] or [N,C,H,W] (C in 1 or 3) and return validated [N,C,H,W] float32."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataValidationError(
            "images", f"shape {images.shape}", "give [N,H,W], [N,H,W,C] or [N,C,H,W] with C = 1 or 3"
        )
    if len(images) != len(labels):
        raise DataValidationError(
            "labels", f"{len(labels)} labels for {len(images)} images", "give one label per image"
        )
    if not np.issubdtype(images.dtype, np.number):
        raise DataValidationError("images", f"dtype {images.dtype}", "store pixel values as numbers")
    images = images.astype(np.float32)
    flat = images.reshape(len(images), -1)
    bad = ~np.isfinite(flat)
    if bad.any():
        raise DataValidationError(
            "images", f"NaN/inf in {int(bad.any(axis=1).sum())} image(s)", "fix or drop those images"
        )
    raw = np.asarray(labels)
    names = label_names or sorted({str(v) for v in raw.tolist()}, key=_natural_key)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in raw.tolist()} - set(index))
    if unknown:
        raise DataValidationError(
            "labels", f"values {unknown[:5]} not in label_names", "list every label in label_names"
        )
    label_ids = np.array([index[str(v)] for v in raw.tolist()], dtype=np.int64)
    check_labels(label_ids, names)
    return ImageData(name, images, label_ids, list(names))


def split(data: Dataset, test_fraction: float = 0.3, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split: the same data and seed give the same rows on every node."""
    train_idx, test_idx = split_indices(data.labels, test_fraction, seed)
    return data.subset(train_idx), data.subset(test_idx)


def split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The row numbers (sorted) `split` keeps for training and holds out: to cut the user's own frame."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label in range(int(labels.max()) + 1 if len(labels) else 0):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_test = _n_test(len(idx), test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def values_of(data: Dataset) -> np.ndarray:
    """The raw inputs as float32: table features (codes, NaN for missing) or images [n, C, H, W]."""
    return (data.features if data.kind == "table" else data.images).astype(np.float32)


def keep_labels(data: Dataset, normal_labels: list[str]) -> Dataset:
    """Only the rows of `normal_labels`, relabelled in that order: the training set of a one-class
    (anomaly-detection) model, which learns what normal looks like and nothing else."""
    unknown = [name for name in normal_labels if name not in data.label_names]
    if unknown or not normal_labels:
        raise DataValidationError("normal_labels", repr(unknown or normal_labels),
                                  f"name one or more of the dataset's labels: {', '.join(data.label_names)}")
    old_ids = [data.label_names.index(name) for name in normal_labels]
    kept = data.subset(np.flatnonzero(np.isin(data.labels, old_ids)))
    relabel = np.full(len(data.label_names), -1, dtype=np.int64)
    relabel[old_ids] = np.arange(len(old_ids))
    kept.labels = relabel[kept.labels]
    kept.label_names = list(normal_labels)
    return kept


def training_split(data: Dataset, holdout: float, seed: int, normal_labels: list[str] | None = None
                   ) -> tuple[Dataset, Dataset]:
    """(training set, holdout) as every worker and the driver must see them: a stratified split,
    then, for a one-class model, the training set cut down to the normal labels. The holdout
    keeps every label: its other labels are the anomalies the scores are measured on. `holdout` 0 is
    the refit on every row (`services.pipeline`): all rows train, none are held out."""
    if holdout == 0:
        train = keep_labels(data, normal_labels) if normal_labels else data
        return train, data.subset(np.zeros(0, dtype=np.int64))
    train, test = split(data, holdout, seed)
    if normal_labels:
        train, kept_test = keep_labels(train, normal_labels), keep_labels(test, normal_labels)
    else:
        kept_test = test
    check_split(train.labels, kept_test.labels, train.label_names, holdout, f"column {data.label_column!r}",
                rows_needed=rows_needed)
    return train, test


def rows_needed(holdout: float) -> int:
    """The fewest rows a label needs for `split` to leave MIN_TRAIN_ROWS of it to train on."""
    from gen_factory.data.validate import MIN_TRAIN_ROWS

    n = MIN_TRAIN_ROWS + 1
    while n - _n_test(n, holdout) < MIN_TRAIN_ROWS:
        n += 1
    return n


def _n_test(n: int, test_fraction: float) -> int:
    """Rows of a label that `split` holds out: a round share, at least 1 and never all."""
    return min(max(int(round(n * test_fraction)), 1 if test_fraction > 0 else 0), n - 1)


def _load_bundled(name: str) -> Dataset:
    if name == "digits":
        from sklearn import datasets as skd

        d = skd.load_digits()
        return images_from_arrays(d.images, d.target, [str(i) for i in range(10)], name="digits")
    frame, label, label_names = bundled_frame(name)
    return table_from_frame(frame, label, name=name, label_names=label_names)


def bundled_frame(name: str) -> tuple[pd.DataFrame, str, list[str] | None]:
    """A bundled table as the user would hold it: the frame, its label column, and the label order
    (sklearn's for its sets: breast_cancer malignant=0, benign=1; None = natural order)."""
    if name in ("customers", "loans"):
        from gen_factory.data import procedural

        return getattr(procedural, name)(), {"customers": "churn", "loans": "outcome"}[name], None
    from sklearn import datasets as skd

    loader = {"breast_cancer": skd.load_breast_cancer, "iris": skd.load_iris, "wine": skd.load_wine}[name]
    d = loader(as_frame=True)
    frame = d.frame.copy()
    frame["label"] = np.asarray(d.target_names)[d.target.to_numpy()]
    if "target" in frame.columns:
        frame = frame.drop(columns=["target"])
    return frame, "label", [str(n) for n in d.target_names]


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
