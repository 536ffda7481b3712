"""Bulk scoring with Ray Data: a Parquet table of any size in, the same rows plus their anomaly scores out.

The design is bulk generation's (`bulk`): the driver reads only the input's Parquet footers and
plans shards - runs of consecutive row groups of one input file, at most about `block_rows` rows -
and checks the schema against the model before anything is written. An actor pool of ONNX Runtime
scorers (one CPU each) streams each shard's rows in batches of `batch_rows`, scores them with the
exported scorer graph (`runtime.scoring.score_attributed`, as `genfactory score --local` and the API
do) and writes ``OUT/part-NNNNN.parquet``: shard N's input rows, every column as it came, in input
order, plus `added_columns`: `score`, `is_anomaly` and, where the model has attribution, the top-k
columns of each row's contribution (``attr_1_column``, ``attr_1_value``, ... largest first).
``OUT/_manifest.json`` (rows, anomalies, sha256 per file, model version, method, threshold, the added
columns) is written last, and `bulk.write_output` makes the run atomic: locked output,
hidden staging directory, one rename - so a bad value met halfway leaves nothing at OUT. Memory
stays flat in the input size: the driver holds footers, an actor one batch and one open writer.

Rows are scored against their label when `label_column` names one, else against every label, keeping
the lowest score (`score_matrix`); a label column the input carries anyway is kept and ignored. The
input may be a directory of Parquet files; Hive folder names (``segment=common/``, as `generate`
writes them) become string columns of the rows under them, so a generated dataset keeps its label.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from gen_factory import registry
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime import scoring
from gen_factory.runtime.codes import label_codes, table_values
from gen_factory.services.bulk import (
    actor_env,
    actor_model,
    check_pool,
    run_writers,
    visible_files,
    write_manifest,
    write_output,
)
from gen_factory.settings import filesystem

DEFAULT_BLOCK_ROWS = 262_144  # rows per output file (whole input row groups: a larger group is one file)
DEFAULT_BATCH_ROWS = 16_384  # rows an actor reads, converts and writes at a time (one output row group)
PARQUET_SUFFIXES = (".parquet", ".pq")
METADATA_KEY = b"gen_factory.scores"


def score_dataset(ref_text: str, source: str | Path, out: str | Path, *, method: str | None = None,
                  label_column: str | None = None, workers: int = 2, block_rows: int = DEFAULT_BLOCK_ROWS,
                  batch_rows: int = DEFAULT_BATCH_ROWS, top_k: int | None = None, overwrite: bool = False
                  ) -> dict:
    """Score every row of `source` (a Parquet file, a directory of them, or an object-store URI) with the
    registered model `ref_text`; write the scored rows to `out` as `bulk` writes datasets; return the
    manifest. `top_k`: attribution columns per row (default: `scoring.DEFAULT_TOP_K`, at most the
    model's columns; 0: none; models exported before attribution have none). Raises
    `DataValidationError` for a bad input (naming the file, row and column) or an existing `out`
    without `overwrite`, `bulk.OutputBusy` / `bulk.OutputExists` as `generate` does."""
    from gen_factory.card import default_method
    from gen_factory.runtime.onnx_model import OnnxModel

    check_pool(workers, block_rows)
    if batch_rows < 1 or batch_rows > scoring.MAX_INPUTS_PER_REQUEST:
        raise DataValidationError("--batch-rows", batch_rows,
                                  f"use a whole number from 1 to {scoring.MAX_INPUTS_PER_REQUEST}")
    _check_paths(str(source), str(out))
    ref = registry.resolve(ref_text)
    model = OnnxModel(registry.download(ref), threads=1)
    if model.kind != "table":
        raise DataValidationError("MODEL", ref_text, "bulk scoring (--out) takes table models; score "
                                  "images without --out (an .npz with `images`)")
    method = method or default_method(model.card.score_methods)
    scoring.method_index(model, method)
    top_k = _top_k(model, top_k)
    threshold, _ = scoring.verdict(model, np.empty(0), method, label_column is not None)
    added = added_columns(threshold is not None, top_k)
    shards, inputs = plan_shards(str(source), block_rows)
    for path, schema in inputs.items():
        check_schema(model, schema, label_column, path, added)
    run = {"name": ref.name, "version": ref.version, "source": str(source), "method": method,
           "label_column": label_column, "threshold": threshold, "batch_rows": batch_rows, "top_k": top_k}

    def write(uri: str) -> dict:
        files = run_writers(shards, ScoreWriter, {**run, "root": uri, "env": actor_env()}, workers,
                            sum(s["rows"] for s in shards), "score")
        manifest = {
            "kind": "scores", "model": ref.name, "version": ref.version, "model_uri": ref.uri,
            "source": str(source), "method": method, "threshold": threshold,
            "scored_against": f"label column {label_column!r}" if label_column else "best label",
            "columns": added, "top_k": top_k,
            "rows": sum(f["rows"] for f in files), "anomalies": sum(f["anomalies"] for f in files),
            "block_rows": block_rows, "files": files,
        }
        write_manifest(uri, manifest)
        return manifest

    return write_output(out, overwrite, write)


def added_columns(calibrated: bool, top_k: int) -> list[str]:
    """What an output row adds to its input columns, in order: `score`, `is_anomaly` (models with a
    calibrated threshold), then per rank k (largest contribution first) `attr_k_column` and
    `attr_k_value`."""
    ranks = [f"attr_{k}_{part}" for k in range(1, top_k + 1) for part in ("column", "value")]
    return ["score", *(["is_anomaly"] if calibrated else []), *ranks]


def _top_k(model, top_k: int | None) -> int:
    """Attribution columns per row: 0 for a model without attribution; default DEFAULT_TOP_K capped
    at the model's columns; a given one checked against them."""
    if not scoring.has_attribution(model):
        return 0
    return 0 if top_k == 0 else scoring.resolve_top_k(model, top_k)


# --- the driver: plan from footers, check the schema ---------------------------------------------------

def plan_shards(source: str, block_rows: int) -> tuple[list[dict], dict[str, pa.Schema]]:
    """(shards, {input file: its Arrow schema}) from the Parquet footers alone. A shard is a run of
    consecutive row groups of one file holding at most `block_rows` rows (or one larger group): index,
    file, first_group, groups, first_row (in its file), rows, partition. In a directory, Hive folder
    names (``segment=common/``, as `genfactory generate` writes) give each file's rows the partition
    columns its schema lacks (JSON {column: value}; the schema here includes them, as strings)."""
    fs, root = filesystem(source)
    info = fs.get_file_info(root)
    if info.type == FileType.NotFound:
        raise DataValidationError("FILE", source, "give an existing Parquet file, or a directory of them")
    if info.type == FileType.Directory:
        names = sorted(p for p in visible_files(fs, root) if p.lower().endswith(PARQUET_SUFFIXES))
        paths = [f"{root.rstrip('/')}/{p}" for p in names]
        if not paths:
            raise DataValidationError("FILE", source, "this directory holds no .parquet file: give a Parquet "
                                      "file or a directory of them (convert CSV with pandas.to_parquet)")
    elif source.lower().endswith(PARQUET_SUFFIXES):
        paths = [root]
    else:
        raise DataValidationError("FILE", source, "bulk scoring (--out) reads Parquet: give a .parquet file "
                                  "or a directory of them (convert CSV with pandas.to_parquet)")
    shards, schemas = [], {}
    for path in paths:
        footer = _footer(fs, path)
        schema = footer.schema.to_arrow_schema()
        keys = {k: v for k, v in _partition_keys(path[len(root):]).items() if k not in schema.names}
        schemas[path] = pa.schema([*schema, *(pa.field(k, pa.string()) for k in keys)])
        first_row = 0
        for first, groups, rows in _runs([footer.row_group(g).num_rows for g in range(footer.num_row_groups)],
                                         block_rows):
            shards.append({"index": len(shards), "file": path, "first_group": first, "groups": groups,
                           "first_row": first_row, "rows": rows, "partition": json.dumps(keys)})
            first_row += rows
    if not shards:
        raise DataValidationError("FILE", source, "it holds no rows: give a table with at least one row")
    return shards, schemas


def check_schema(model, schema: pa.Schema, label_column: str | None, where: str, added: list[str]) -> None:
    """Every model column present with a type its values can be read as; the label column too if named;
    none of the `added` columns. Errors name the file, the column, its type and the fix."""
    for spec in model.card.encoding.columns:
        field = _field(schema, spec.name, where, f"give every column the model was trained on: "
                                                 f"{', '.join(model.card.columns)}")
        if spec.kind == "categorical" and not _text_like(field.type):
            raise DataValidationError(f"{where}: column {spec.name!r}", f"type {field.type}",
                                      f"give its categories as strings (e.g. {spec.categories[0]!r})")
        if spec.kind == "continuous" and not (_numeric(field.type) or pa.types.is_null(field.type)):
            raise DataValidationError(f"{where}: column {spec.name!r}", f"type {field.type}",
                                      "give numbers (an int or float column; null where missing)")
    if label_column is not None:
        field = _field(schema, label_column, where, "name a column of the file with --label-column")
        if not _text_like(field.type):
            raise DataValidationError(f"{where}: --label-column {label_column!r}", f"type {field.type}",
                                      f"give the labels as strings: {', '.join(model.label_names)}")
    taken = [c for c in added if c in schema.names]
    if taken:
        raise DataValidationError(f"{where}: column {taken[0]!r}", "already present",
                                  f"rename or drop it: the output adds {', '.join(added)}")


def _partition_keys(relative: str) -> dict[str, str]:
    """{column: value} from the Hive folder names of a file's path under the input directory, decoded
    as `bulk.partition_path` encodes them."""
    folders = relative.strip("/").split("/")[:-1]
    return {unquote(k): unquote(v) for k, _, v in (f.partition("=") for f in folders if "=" in f)}


def _with_partition(batch: pa.RecordBatch, keys: dict[str, str]) -> pa.RecordBatch:
    """`batch` plus one constant string column per partition key (dictionary-encoded: one value)."""
    codes = np.zeros(batch.num_rows, np.int32)
    columns = [pa.DictionaryArray.from_arrays(codes, pa.array([v], pa.string())) for v in keys.values()]
    return pa.RecordBatch.from_arrays([*batch.columns, *columns], names=[*batch.schema.names, *keys])


def _check_paths(source: str, out: str) -> None:
    """The output may not be the input, nor hold it, nor lie in it (a directory input)."""
    if "://" in source or "://" in out:
        return
    src, dst = Path(source).resolve(), Path(out).resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise DataValidationError("--out", out, f"choose a directory outside the input {source}")


def _footer(fs, path: str):
    try:
        with fs.open_input_file(path) as fh:
            return pq.ParquetFile(fh).metadata
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataValidationError("FILE", path, f"give a readable Parquet file ({type(err).__name__}: "
                                  f"{str(err)[:120]})") from err


def _runs(group_rows: list[int], block_rows: int) -> list[tuple[int, int, int]]:
    """Consecutive row groups cut into runs of at most `block_rows` rows: (first, count, rows)."""
    runs, first, rows = [], 0, 0
    for g, n in enumerate(group_rows):
        if rows and rows + n > block_rows:
            runs.append((first, g - first, rows))
            first, rows = g, 0
        rows += n
    if rows:
        runs.append((first, len(group_rows) - first, rows))
    return runs


def _field(schema: pa.Schema, name: str, where: str, fix: str) -> pa.Field:
    if name not in schema.names:
        raise DataValidationError(f"{where}: column {name!r}", "missing", fix)
    return schema.field(name)


def _text_like(kind: pa.DataType) -> bool:
    """Values that read as category strings the way `genfactory score` reads them (str(value))."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind) \
        or pa.types.is_null(kind)


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


# --- the actors: read a shard, score it, write it -------------------------------------------------------

class ScoreWriter:
    """Ray Data actor: one ONNX Runtime session (one thread), one output Parquet file per shard."""

    def __init__(self, name: str, version: str, source: str, root: str, method: str, label_column: str | None,
                 threshold: float | None, batch_rows: int, top_k: int, env: dict):
        self.ref, self.model = actor_model(name, version, env)
        self.method, self.label_column, self.threshold = method, label_column, threshold
        self.batch_rows, self.top_k = batch_rows, top_k
        self.in_fs, _ = filesystem(source)
        self.fs, self.root = filesystem(root)
        self.metadata = json.dumps({"model": name, "version": version, "method": method,
                                    "threshold": threshold, "label_column": label_column}).encode()

    def __call__(self, batch: dict) -> dict:
        out = {"path": [], "rows": [], "anomalies": [], "sha256": [], "bytes": []}
        for shard in zip(batch["index"], batch["file"], batch["first_group"], batch["groups"],
                         batch["first_row"], batch["partition"], strict=True):
            for key, value in zip(out, self._score_shard(*shard), strict=True):
                out[key].append(value)
        return {k: np.asarray(v) for k, v in out.items()}

    def _score_shard(self, index, file, first_group, groups, first_row, partition) -> tuple:
        rel, keys = f"part-{int(index):05d}.parquet", json.loads(str(partition))
        rows = anomalies = 0
        groups = range(int(first_group), int(first_group + groups))
        with self.in_fs.open_input_file(str(file)) as fh, \
                self.fs.open_output_stream(f"{self.root}/{rel}") as raw:
            sink, writer = _HashingSink(raw), None
            for batch in pq.ParquetFile(fh).iter_batches(self.batch_rows, groups, use_threads=False):
                scored = self.score_batch(_with_partition(batch, keys) if keys else batch,
                                          (str(file), int(first_row) + rows))
                if writer is None:
                    schema = scored.schema.with_metadata({**(scored.schema.metadata or {}),
                                                          METADATA_KEY: self.metadata})
                    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd",
                                              use_dictionary=dictionary_columns(schema))
                writer.write_batch(scored.replace_schema_metadata(writer.schema.metadata))
                rows += batch.num_rows
                if "is_anomaly" in scored.schema.names:
                    anomalies += pc.sum(scored.column("is_anomaly")).as_py() or 0
            writer.close()
        return rel, rows, anomalies, sink.sha256.hexdigest(), sink.size

    def score_batch(self, batch: pa.RecordBatch, where: tuple[str, int]) -> pa.RecordBatch:
        """`batch` with `added_columns` appended (`where`: its file and first row there, for errors)."""
        values = table_values(self.model, batch, where)
        labels = None
        if self.label_column is not None:
            labels = label_codes(self.model, batch.column(self.label_column), where, self.label_column)
        scored = scoring.score_attributed(self.model, values, labels)  # in calls of bounded size
        added = scored_columns(self.model, scored, self.method, self.threshold, self.top_k)
        columns, names = list(batch.columns), list(batch.schema.names)
        for name, column in added.items():
            columns.append(column)
            names.append(name)
        return pa.RecordBatch.from_arrays(columns, names=names)


def scored_columns(model, scored, method: str, threshold: float | None, top_k: int) -> dict[str, pa.Array]:
    """The columns a scored batch (`scoring.Scored`) adds, as `added_columns` names them: the method's
    score, the flag (score above the card's threshold) and the `top_k` largest contributions - each a
    column name (dictionary-encoded: the model's columns) and its calibrated value."""
    scores = scored.matrix[:, scoring.method_index(model, method)]
    added = {"score": pa.array(scores, pa.float32())}
    if threshold is not None:
        added["is_anomaly"] = pa.array(scores > threshold, pa.bool_())
    if top_k:
        order, values = scoring.top_k_indices(scored.contributions, top_k)
        names = pa.array(model.card.columns, pa.string())
        for k in range(top_k):
            codes = order[:, k].astype(np.int32)
            added[f"attr_{k + 1}_column"] = pa.DictionaryArray.from_arrays(codes, names)
            added[f"attr_{k + 1}_value"] = pa.array(values[:, k], pa.float32())
    return added


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Dictionary pages for text columns only: trying them on floats cost 8x the write time (bulk.py)."""
    return [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)]


class _HashingSink:
    """A write-only file for `pa.PythonFile` that passes bytes on to `raw` and hashes them on the way."""

    def __init__(self, raw):
        self.raw, self.sha256, self.size, self.closed = raw, hashlib.sha256(), 0, False

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

