"""One worker's shard of a Parquet table, read by the worker itself (issue 17, million-row tables).

The driver sends a path and the fitted encoding (JSON), never rows. Each worker reads the file one row
group at a time, keeps its own training rows (every `world`-th of them, from `rank`) and encodes them as
it goes, so it holds its shard's encoded rows and one row group, not the table: for 1,000,000 rows of
100 columns on 2 workers about 0.6 GiB each instead of a full copy per worker (bench/million.py).

The training rows are those `data.training_split` gives (the same stratified split by label from the
label column alone), so the driver's held-out rows never train. An epoch is as long as a sharded
loader's: the table's training rows over `batch_size` steps, `batch_size // world` rows per worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from gen_factory.data.conditions import CondSampler, one_hot
from gen_factory.data.datasets import _natural_key, split_indices
from gen_factory.data.table_transformer import TableEncoding
from gen_factory.data.validate import DataValidationError

ENCODE_ROWS = 32_768  # rows encoded at a time: bounds the encoder's one-hot intermediates
# Tables from this many rows stream (`streams`); smaller ones load whole on every worker, as before
# (every bundled table: their runs are unchanged).
STREAM_ROWS = 200_000
SELECTION_ROWS = 20_000  # of a shard, that checkpoint selection scores generators against (`Shard.sample`)


@dataclass
class Shard:
    """A worker's training rows: raw values (category codes, NaN = missing; what training-by-sampling
    reads), encoded rows and labels; `table_rows` is the training rows of the whole table."""

    features: np.ndarray  # float32 [n, d]
    encoded: np.ndarray  # float32 [n, width]
    labels: np.ndarray  # int64 [n]
    label_names: list[str]
    table_rows: int
    kind: str = "table"

    def tensors(self) -> torch.utils.data.TensorDataset:
        return torch.utils.data.TensorDataset(torch.from_numpy(self.encoded), torch.from_numpy(self.labels))

    def sample(self, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """At most `rows` of the shard's (encoded, labels), chosen by `seed`: what checkpoint selection
        scores generators against (it copies its rows to float64; the whole shard would double it)."""
        pick = np.arange(len(self.labels))
        if len(pick) > rows:
            pick = np.sort(np.random.default_rng(seed).choice(len(pick), rows, replace=False))
        return torch.from_numpy(self.encoded[pick]), torch.from_numpy(self.labels[pick])


def can_shard(spec: str) -> bool:
    """Whether a dataset spec is a Parquet table this module reads (no time columns: their numeric form
    is in the user's schema, not in the encoding); other data loads whole (`data.load_dataset`)."""
    path = Path(spec)
    if path.suffix.lower() not in (".parquet", ".pq") or not path.is_file():
        return False
    schema = pq.read_schema(path)
    return not any(pa.types.is_temporal(f.type) for f in schema)


def streams(spec: str, min_rows: int = STREAM_ROWS) -> bool:
    """Whether workers read their own shards of this dataset: a Parquet table (`can_shard`) of at least
    `min_rows` rows."""
    return can_shard(spec) and pq.ParquetFile(spec).metadata.num_rows >= min_rows


def label_names_of(labels: Iterable[str]) -> list[str]:
    """Label names in `data.table_from_frame`'s order: natural order of the labels as strings."""
    return sorted(set(labels), key=_natural_key)


def training_rows(path: str, label_column: str, holdout: float, seed: int,
                  normal_labels: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(row numbers that train, their labels, label names) of the file, as `data.training_split` picks
    them, read from the label column alone."""
    raw = pq.read_table(path, columns=[label_column]).column(0).to_pandas().astype(str)
    names = label_names_of(raw.unique().tolist())
    labels = raw.map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)
    rows = split_indices(labels, holdout, seed)[0] if holdout > 0 else np.arange(len(labels))
    labels = labels[rows]
    if normal_labels:  # a one-class model: its normal labels only, numbered in the given order
        relabel = np.full(len(names), -1, np.int64)
        relabel[[names.index(n) for n in normal_labels]] = np.arange(len(normal_labels))
        keep = relabel[labels] >= 0
        rows, labels, names = rows[keep], relabel[labels[keep]], list(normal_labels)
    return rows, labels, names


def values_from_arrow(table: pa.Table, encoding: TableEncoding) -> np.ndarray:
    """The encoding's feature columns of an Arrow table as float32 raw values: numbers, or the index of
    each category in its column's categories (a folded value: the column's "other"); NaN = missing."""
    out = np.empty((table.num_rows, len(encoding.columns)), np.float32)
    for i, column in enumerate(encoding.columns):
        array = table.column(column.name)
        if column.kind == "continuous":
            out[:, i] = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
            continue
        out[:, i] = _codes(array, column)
    return out


def _codes(array: pa.ChunkedArray, column) -> np.ndarray:
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_boolean(array.type):  # as pandas writes them: "True" / "False"
        array = pc.if_else(array, "True", "False")
    elif not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        text = array.to_pandas().astype(object)  # numbers as categories: str() as the loader made them
        array = pa.chunked_array([pa.array([None if v is None or v != v else str(v) for v in text],
                                           pa.string())])
    index = pc.index_in(array, value_set=pa.array(column.categories, pa.string()))
    codes = pc.cast(index, pa.float64()).to_numpy(zero_copy_only=False)
    unknown = np.isnan(codes) & ~pc.is_null(array).to_numpy(zero_copy_only=False)
    if unknown.any():
        if column.other_code is None:
            first = array.filter(pa.chunked_array([pa.array(unknown)]))[0].as_py()
            raise DataValidationError(f"column {column.name!r}", f"value {first!r} not among its categories",
                                      "read the same file the encoding was fitted on")
        codes[unknown] = column.other_code
    return codes


def read_shard(path: str, encoding: TableEncoding, label_column: str, rank: int, world: int,
               holdout: float = 0.3, seed: int = 0, normal_labels: list[str] | None = None) -> Shard:
    """Worker `rank` of `world`'s training rows of the Parquet file: every `world`-th training row from
    its `rank`-th, read and encoded one row group at a time."""
    rows, labels, names = training_rows(path, label_column, holdout, seed, normal_labels)
    mine = rows[rank::world]
    mine_labels = labels[rank::world]
    file = pq.ParquetFile(path)
    names_read = [c.name for c in encoding.columns]
    features = np.empty((len(mine), len(names_read)), np.float32)
    encoded = np.empty((len(mine), encoding.width), np.float32)
    start, done = 0, 0
    for group in range(file.num_row_groups):
        size = file.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(mine, [start, start + size])
        if hi > lo:
            table = file.read_row_group(group, columns=names_read).take(pa.array(mine[lo:hi] - start))
            for at in range(0, hi - lo, ENCODE_ROWS):
                part = values_from_arrow(table.slice(at, ENCODE_ROWS), encoding)
                features[done:done + len(part)] = part
                encoded[done:done + len(part)] = encoding.encode(part)
                done += len(part)
            del table
        start += size
    return Shard(features, encoded, mine_labels, names, table_rows=len(rows))


def shard_batches(shard: Shard, sampler: CondSampler | None, batch_size: int, world: int,
                  rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of this worker's batches: `batch_size // world` rows each, as many as the whole table's
    training rows make in `batch_size` steps; rows drawn by training-by-sampling from the shard when
    `sampler` (tables with categories), else shuffled without repeats."""
    per_worker = max(1, batch_size // world)
    steps = max(1, shard.table_rows // batch_size)
    encoded, labels = torch.from_numpy(shard.encoded), torch.from_numpy(shard.labels)
    order = rng.permutation(len(shard.labels))
    for step in range(steps):
        if sampler is None:
            at = np.take(order, np.arange(step * per_worker, (step + 1) * per_worker), mode="wrap")
            index = torch.from_numpy(at)
            yield encoded[index], labels[index]
            continue
        rows, codes = sampler.sample(per_worker, rng)
        index = torch.from_numpy(rows)
        yield encoded[index], labels[index], torch.from_numpy(one_hot(codes, sampler.blocks))
