"""Is each column the shape it was? Value sets, missing-value rates and range, column by column.

Quality scores (column shapes, pair trends) average over columns and values, so a column whose six
values came back as 245, whose rare missing values vanished, or whose tail was cut can still score
well. These figures look at exactly those three things, per column, on frames in the user's schema.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gen_factory.data.columns import is_discrete


@dataclass(frozen=True)
class ColumnShape:
    column: str
    nan_rate_err_pts: float  # |synthetic - real| share of missing values, in percentage points
    on_grid: float | None  # discrete columns: share of synthetic values that are real values
    range_coverage: float | None  # numbers: share of the real [min, max] the synthetic values span
    inside_range: bool | None  # numbers: synthetic min / max within the real ones


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame) -> list[ColumnShape]:
    """One ColumnShape per column of `real` (datetimes compared as instants, categories as values)."""
    return [_shape(name, real[name], synthetic[name]) for name in real.columns]


def summary(shapes: list[ColumnShape]) -> dict[str, float]:
    """The worst column of each figure (NaN where no column has that figure)."""
    def worst(values, pick):
        values = [v for v in values if v is not None]
        return float(pick(values)) if values else float("nan")

    return {
        "nan_rate_max_err_pts": worst([s.nan_rate_err_pts for s in shapes], max),
        "discrete_on_grid": worst([s.on_grid for s in shapes], min),
        "min_range_coverage": worst([s.range_coverage for s in shapes], min),
        "all_inside_range": worst([s.inside_range for s in shapes], min),
    }


def _shape(name: str, real: pd.Series, synthetic: pd.Series) -> ColumnShape:
    err = abs(float(synthetic.isna().mean()) - float(real.isna().mean())) * 100
    r, s = _numbers(real), _numbers(synthetic)
    if r is None or s is None or len(r) == 0:
        return ColumnShape(name, err, None, None, None)
    distinct = np.unique(r)
    discrete = is_discrete(len(distinct), bool(np.all(np.mod(distinct, 1) == 0)))
    on_grid = float(np.isin(s, distinct).mean()) if discrete and len(s) else None
    low, high = distinct[0], distinct[-1]
    if high == low or len(s) == 0:
        return ColumnShape(name, err, on_grid, None, None)
    covered = (min(s.max(), high) - max(s.min(), low)) / (high - low)
    return ColumnShape(name, err, on_grid, float(max(covered, 0.0)), bool(s.min() >= low and s.max() <= high))


def _numbers(series: pd.Series) -> np.ndarray | None:
    """Present values as float64 (datetimes as nanoseconds), or None for a column of categories."""
    present = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(series.dtype):
        return None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return present.astype("datetime64[ns, UTC]" if series.dt.tz else "datetime64[ns]").astype(
            np.int64).to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return present.to_numpy(dtype=np.float64)
    return None
