"""The user's table schema, kept so generated rows come back in exactly the types they gave.

The GAN sees numbers and category codes; the user gave an Arrow/pandas schema: column order, the
label somewhere among the columns, `object` or Arrow strings, pandas categories (with their
categories, used or not), nullable integers, booleans, datetimes with a time zone, dates.
`capture` records that schema at load time (and the numeric form of each time column);
`restore` turns a generated Arrow table back into it, so `sample()`, `pull`, `generate` and the
API all return the input's schema. Torch-free: serving replicas and bulk actors import this.

The Arrow schema with its pandas metadata travels in the model card as base64 IPC bytes (the
source of truth; Arrow has no parser for its own type strings) next to a readable type per column.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from gen_factory.data.columns import SPEC
from gen_factory.data.validate import DataValidationError

PANDAS_KEY = b"pandas"
NS_PER_DAY = 86_400 * 10**9
# A time column is learned as (t - offset) / unit, unit the coarsest that keeps every value whole:
# float32 features stay exact for days, hours or minutes over years of range.
TIME_UNITS_NS = (NS_PER_DAY, 3600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)


class TimeEncoding(BaseModel):
    """How a datetime/date column became a number: (nanoseconds since epoch - offset_ns) / unit_ns."""

    model_config = SPEC

    unit_ns: int
    offset_ns: int


class ColumnSchema(BaseModel):
    model_config = SPEC

    name: str
    arrow_type: str  # readable only; the Arrow schema in `TableSchema.arrow` is what restores
    time: TimeEncoding | None = None
    categories: list[str | int | float | bool] | None = None  # a pandas category column's, in order


class TableSchema(BaseModel):
    """Columns in the user's order, the label among them."""

    model_config = SPEC

    columns: list[ColumnSchema]
    arrow: str  # base64 of the IPC-serialised Arrow schema (with pandas metadata)

    def arrow_schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.arrow)))


def is_time(series: pd.Series) -> bool:
    """datetime64 (naive or with a zone), or Python dates as pandas reads an Arrow date32 column."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    present = series.dropna()
    return (pd.api.types.is_object_dtype(series.dtype) and len(present) > 0
            and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present))


def time_to_numbers(col: str, series: pd.Series) -> tuple[np.ndarray, TimeEncoding]:
    """A time column as float64 numbers in the coarsest whole unit (NaN where missing)."""
    stamps = pd.to_datetime(series)
    if stamps.dt.tz is not None:  # instants: the zone comes back from the Arrow type
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    present = stamps.notna().to_numpy()
    ns = stamps[present].astype("datetime64[ns]").to_numpy().view(np.int64)
    if len(ns) == 0:
        raise DataValidationError(f"column {col!r}", "missing in every row", "drop the column or fill it")
    offset = int(ns.min())
    unit = next(u for u in TIME_UNITS_NS if not np.any((ns - offset) % u))
    out = np.full(len(series), np.nan)
    out[present] = (ns - offset) // unit
    return out, TimeEncoding(unit_ns=unit, offset_ns=offset)


@dataclass(frozen=True)
class CapturedColumn:
    """What `capture` keeps of one column, taken while the column is at hand (a Parquet table loads a
    column at a time, never whole): its Arrow field, its pandas metadata, a category column's categories."""

    field: pa.Field
    pandas: dict  # pandas metadata of the column alone: its entry in "columns", the frame's "attributes"
    categories: list[str | int | float | bool] | None


def capture_column(series: pd.Series) -> CapturedColumn:
    schema = pa.Schema.from_pandas(series.to_frame(), preserve_index=False)
    categories = ([_plain(v) for v in series.cat.categories]
                  if isinstance(series.dtype, pd.CategoricalDtype) else None)
    return CapturedColumn(schema.field(0), json.loads(schema.metadata[PANDAS_KEY]), categories)


def capture(columns: list[CapturedColumn], times: dict[str, TimeEncoding],
            others: dict[str, str] | None = None) -> TableSchema:
    """The table's Arrow schema (with pandas metadata, without the index) from its columns in order, and each
    column's extras. `others`: the "other" category of each column whose rare values were folded, which a
    pandas category column gains (last) so generated rows can hold it."""
    meta = {**columns[0].pandas, "index_columns": [], "column_indexes": [],
            "columns": [c.pandas["columns"][0] for c in columns]}
    schema = pa.schema([c.field for c in columns], metadata={PANDAS_KEY: json.dumps(meta).encode()})
    described = []
    for column in columns:
        name, categories = column.field.name, column.categories
        if categories is not None and name in (others or {}):
            categories = [*categories, others[name]]
        described.append(ColumnSchema(name=name, arrow_type=str(column.field.type), time=times.get(name),
                                      categories=categories))
    return TableSchema(columns=described, arrow=base64.b64encode(schema.serialize().to_pybytes()).decode())


def restore(table: pa.Table, schema: TableSchema, drop: tuple[str, ...] = ()) -> pa.Table:
    """A generated table (category strings, int64/float64 numbers) in the user's schema: their column
    order and types, pandas metadata included, minus the `drop` columns. Other metadata is kept."""
    target = schema.arrow_schema()
    by_name = {c.name: c for c in schema.columns}
    fields = [f for f in target if f.name not in drop]
    arrays = [_cast(table.column(f.name).combine_chunks(), f.type, by_name[f.name]) for f in fields]
    meta = dict(table.schema.metadata or {})
    pandas_meta = json.loads(target.metadata[PANDAS_KEY])
    pandas_meta["columns"] = [c for c in pandas_meta["columns"] if c["name"] not in drop]
    meta[PANDAS_KEY] = json.dumps(pandas_meta).encode()
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def _cast(array: pa.Array, target: pa.DataType, column: ColumnSchema) -> pa.Array:
    if pa.types.is_dictionary(array.type):  # a category the GAN modelled: back to its values' type
        array = array.dictionary_decode()
    if column.time is not None:
        whole = pc.round(pc.cast(array, pa.float64()))
        ns = pc.add(pc.multiply(pc.cast(whole, pa.int64()), column.time.unit_ns), column.time.offset_ns)
        stamps = pc.cast(ns, pa.timestamp("ns", tz="UTC" if getattr(target, "tz", None) else None))
        return pc.cast(stamps, target, safe=False)
    if pa.types.is_dictionary(target):
        values = _cast(array, target.value_type, column)
        dictionary = pc.cast(pa.array(column.categories), target.value_type)
        indices = pc.cast(pc.index_in(values, value_set=dictionary), target.index_type)
        return pa.DictionaryArray.from_arrays(indices, dictionary, ordered=target.ordered)
    if pa.types.is_boolean(target) and pa.types.is_string(array.type):
        return pc.equal(array, "True")
    if pa.types.is_integer(target) and pa.types.is_floating(array.type):
        array = pc.round(array)
    return pc.cast(array, target, safe=not pa.types.is_integer(target))


def _plain(value):
    """A category value as JSON holds it (numpy scalars to Python numbers, anything else to str)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """The table as a frame in the dtypes its pandas metadata records: Arrow strings come back as the
    `object` column the user gave where that is what they gave (pandas 3 would make them `str`)."""
    frame = table.to_pandas()
    raw = (table.schema.metadata or {}).get(PANDAS_KEY)
    for column in json.loads(raw)["columns"] if raw else []:
        name = column["name"]
        if column["numpy_type"] == "object" and name in frame and frame[name].dtype != object:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame
