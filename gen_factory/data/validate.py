"""Input checks that run before any cluster work, each error naming the field, the value and the fix."""

from __future__ import annotations

import numpy as np


class DataValidationError(ValueError):
    """Bad input data. The message always names the field, the offending value and the fix."""

    def __init__(self, field: str, value: object, fix: str):
        self.field, self.value, self.fix = field, value, fix
        super().__init__(f"{field}: {value} -- fix: {fix}")


def check_labels(labels: np.ndarray, label_names: list[str], field: str = "label") -> None:
    """Every label needs at least two rows: one cannot be split or learned from."""
    if len(labels) == 0:
        raise DataValidationError("dataset", "0 rows", "provide a table or image set with at least 2 rows per label")
    counts = np.bincount(labels, minlength=len(label_names))
    if len(label_names) < 2:
        raise DataValidationError(
            field, f"only one label value {label_names!r}",
            "a conditional GAN needs at least 2 label values; pick a column that varies",
        )
    for name, count in zip(label_names, counts):
        if count < 2:
            raise DataValidationError(
                field, f"label {name!r} has {count} row(s)",
                "add rows for that label, or drop or merge it (each label needs at least 2 rows)",
            )


def check_finite(values: np.ndarray, columns: list[str]) -> None:
    """Infinities cannot be modelled: reject them with the column and the count (NaN = missing is fine)."""
    bad = np.isinf(values)
    if bad.any():
        col = int(np.argmax(bad.any(axis=0)))
        rows = np.flatnonzero(bad[:, col])
        sample = values[rows[0], col]
        raise DataValidationError(
            f"column {columns[col]!r}", f"{sample} in {len(rows)} row(s) (first at row {int(rows[0])})",
            "replace the infinite values (e.g. by NaN, a missing value) before training",
        )
