"""Input checks that run before any cluster work, each error naming the field, the value and the fix."""

from __future__ import annotations

import numpy as np


class DataValidationError(ValueError):
    """Bad input data. The message always names the field, the offending value and the fix."""

    def __init__(self, field: str, value: object, fix: str):
        self.field, self.value, self.fix = field, value, fix
        super().__init__(f"{field}: {value} -- fix: {fix}")

    def __reduce__(self):
        """Rebuild from the three parts: Ray pickles a worker's error to the driver (the default
        rebuilds from the message alone, which this __init__ cannot take)."""
        return (self.__class__, (self.field, self.value, self.fix))


def check_labels(labels: np.ndarray, label_names: list[str], field: str = "label") -> None:
    """Every label needs at least two rows: one cannot be split or learned from."""
    if len(labels) == 0:
        raise DataValidationError(
            "dataset", "0 rows", "provide a table or image set with at least 2 rows per label"
        )
    counts = np.bincount(labels, minlength=len(label_names))
    if len(label_names) < 2:
        raise DataValidationError(
            field, f"only one label value {label_names!r}",
            "a conditional GAN needs at least 2 label values; pick a column that varies",
        )
    for name, count in zip(label_names, counts, strict=True):
        if count < 2:
            raise DataValidationError(
                field, f"label {name!r} has {count} row(s)",
                "add rows for that label, or drop or merge it (each label needs at least 2 rows)",
            )


def check_finite(values: np.ndarray, columns: list[str]) -> None:
    """Infinities cannot be modelled: reject them with the column and the count (NaN = missing is fine).
    A column at a time: a whole-table mask is a copy of the table's size (1M x 100: 100 MB)."""
    for i, col in enumerate(columns):
        rows = np.flatnonzero(np.isinf(values[:, i]))
        if len(rows):
            first = int(rows[0])
            raise DataValidationError(
                f"column {col!r}", f"{values[first, i]} in {len(rows)} row(s) (first at row {first})",
                "replace the infinite values (e.g. by NaN, a missing value) before training",
            )


MIN_TRAIN_ROWS = 2  # per label: the selection's Fréchet distance needs a spread (a covariance) to compare


def check_split(train_labels: np.ndarray, test_labels: np.ndarray, label_names: list[str], holdout: float,
                field: str = "label", rows_needed=None) -> None:
    """Every label keeps `MIN_TRAIN_ROWS` rows to train on after the hold-out is cut: with one, every
    selection check reads inf and whichever generator came first ships, unmeasured."""
    train = np.bincount(train_labels, minlength=len(label_names))
    test = np.bincount(test_labels, minlength=len(label_names))
    for name, n_train, n_test in zip(label_names, train, test, strict=True):
        if n_train < MIN_TRAIN_ROWS:
            need = rows_needed(holdout) if rows_needed else MIN_TRAIN_ROWS + 1
            raise DataValidationError(
                field, f"label {name!r} has {n_train + n_test} row(s): {n_train} to train on and {n_test} "
                       f"held out at --holdout {holdout}",
                f"give each label at least {need} rows (more rows per label: {MIN_TRAIN_ROWS} to train on, "
                "1 to hold out), drop or merge that label, or lower --holdout")


def check_varies(values: np.ndarray, columns: list[str]) -> None:
    """Refuse a table whose every feature is constant: there is nothing to learn, and its quality reads
    a perfect 1.0 beside a NaN privacy figure."""
    if len(values) == 0 or not columns:
        return
    if not any(_varies(values[:, i]) for i in range(len(columns))):
        shown = ", ".join(f"{c!r}" for c in columns[:5]) + (", ..." if len(columns) > 5 else "")
        raise DataValidationError(
            "columns", f"every feature column is constant ({shown})",
            "give at least one column whose values vary (a GAN learns nothing from a constant)",
        )


def _varies(column: np.ndarray) -> bool:
    """Two different values, or a value beside a missing one: one column at a time (and only up to the
    first that varies), where whole-table masks and copies held twice the table (1M x 100: 0.5 GB)."""
    present = column[~np.isnan(column)]
    return 0 < len(present) < len(column) or (len(present) > 0 and bool(present.max() > present.min()))
