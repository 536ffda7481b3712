"""Arrow columns in the user's types -> the model's codes: the float32 [n, d] matrix the exported graphs
take (category codes, time units, NaN where missing), vectorised, and label ids. The same values
`runtime.scoring.rows_to_array` makes of JSON rows: bulk scoring, augmentation and the benches read
tables through here. Torch-free (bulk actors import it).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gen_factory.data.columns import CategoricalColumn
from gen_factory.data.schema import TimeEncoding
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime import scoring


def table_values(model, batch: pa.RecordBatch, where: tuple[str, int]) -> np.ndarray:
    """The model's columns of `batch` as the scorer's float32 [n, d] matrix - vectorised, the same values
    `scoring.rows_to_array` makes of the same rows (category strings to codes, null/NaN to NaN where
    the column had missing values or the score sees novelty); a bad value is an error naming its row
    and column."""
    out = np.empty((batch.num_rows, len(model.card.columns)), dtype=np.float32)
    schema = model.card.table_schema
    times = {c.name: c.time for c in schema.columns if c.time is not None} if schema else {}
    novel = scoring.sees_novelty(model)
    for j, spec in enumerate(model.card.encoding.columns):
        column = batch.column(spec.name)
        if spec.kind == "categorical":
            text = pc.cast(column, pa.string())
            codes = _category_codes(spec, text)
            unknown = pc.and_(pc.is_null(codes), pc.is_valid(text))
            if spec.other_code is not None:  # a folded column's rare values: its "other"
                codes = pc.if_else(unknown, spec.other_code, codes)
            elif novel:
                codes = pc.if_else(unknown, scoring.UNSEEN, codes)
            else:
                _refuse(unknown, where, spec.name, lambda i, t=text: f"unknown category {t[i].as_py()!r}",
                        f"use one of: {', '.join(spec.categories[:20])}")
            missing = pc.is_null(text).to_numpy(zero_copy_only=False)
            out[:, j] = pc.fill_null(codes, 0).to_numpy(zero_copy_only=False)
            out[missing, j] = np.nan
        else:
            numbers = _numbers(column, times.get(spec.name), spec.name, where)
            _refuse(np.isinf(numbers), where, spec.name, lambda i, v=numbers: repr(float(v[i])),
                    "give finite numbers (null where missing)")
            missing = np.isnan(numbers)
            out[:, j] = numbers
        if not spec.missing and not novel:
            _refuse(missing, where, spec.name, lambda i: "missing",
                    "give a value: this column was never missing in the training data")
    return out


def _category_codes(spec: CategoricalColumn, text: pa.Array) -> pa.Array:
    """Each value's code in `spec.categories` (null where none): exact strings first, then numbers
    written another way (a float column's `1.0` is the `1` of JSON and of Arrow's cast)."""
    codes = pc.index_in(text, value_set=pa.array(spec.categories, pa.string()))
    unmatched = pc.and_(pc.is_null(codes), pc.is_valid(text))
    if not pc.any(unmatched).as_py():
        return codes
    index = scoring.category_index(spec)
    found = {v: scoring.category_code(index, v) for v in pc.unique(pc.filter(text, unmatched)).to_pylist()}
    found = {v: c for v, c in found.items() if c is not None}
    if not found:
        return codes
    keys = pa.array(list(found), pa.string())
    extra = pc.take(pa.array(list(found.values()), pa.int32()), pc.index_in(text, value_set=keys))
    return pc.coalesce(pc.cast(codes, pa.int32()), extra)


def _numbers(column: pa.Array, time: TimeEncoding | None, name: str, where: tuple[str, int]) -> np.ndarray:
    """A numeric column as float64 (null -> NaN); a datetime or date column in the model's time units, as
    `data.schema.time_to_numbers` made them when it trained. Text, or times of another kind, is an error
    naming the column."""
    if time is None or not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
        try:
            return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            kind = "dates or times" if time is not None else "numbers"
            raise DataValidationError(f"{where[0]}: column {name!r}", f"values of type {column.type}",
                                      f"give {kind}, as the model was trained on") from err
    if pa.types.is_date(column.type):
        column = pc.cast(pc.cast(column, pa.date64()), pa.timestamp("ms"))
    ns = pc.cast(pc.cast(column, pa.timestamp("ns", tz=column.type.tz)), pa.int64())
    whole = pc.fill_null(ns, time.offset_ns).to_numpy(zero_copy_only=False)
    values = ((whole - time.offset_ns) // time.unit_ns).astype(np.float64)  # in int64: exact to the unit
    values[pc.is_null(ns).to_numpy(zero_copy_only=False)] = np.nan
    return values


def label_codes(model, column: pa.Array, where: tuple[str, int], name: str) -> np.ndarray:
    """A label column's values (as strings) to the model's label ids."""
    names = model.label_names
    text = pc.cast(column, pa.string())
    codes = pc.index_in(text, value_set=pa.array(names, pa.string()))
    _refuse(pc.is_null(codes), where, name, lambda i: f"unknown label {text[i].as_py()!r}",
            f"use the model's labels: {', '.join(names)}")
    return codes.to_numpy(zero_copy_only=False).astype(np.int64)


def _refuse(bad, where: tuple[str, int], column: str, value, fix: str) -> None:
    """Raise for the first True of `bad` (numpy or Arrow booleans), naming the file, its row (`where`:
    the file and the row of the batch's first row in it), the column, `value(i)` and the fix."""
    bad = bad if isinstance(bad, np.ndarray) else pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataValidationError(f"{where[0]}: row {where[1] + i}, column {column!r}", value(i), fix)
