"""Bulk generation with Ray Data: millions of rows as label-partitioned Parquet plus a manifest.

The dataset is cut into shards (label, index) of at most `block_rows` rows; each shard's noise
comes from its own seed ``[seed, label, index]``, so a file's bytes depend on nothing but the
model, the seed and its shard - not on how many workers ran or in which order. An actor pool of
ONNX Runtime sessions writes the shards; memory stays flat in the total row count. Everything is
written under a temporary directory that is renamed into place only when complete, so a
half-written dataset is never visible. Object stores (``s3://…``, ``gs://…``) have no atomic
rename: there the files go straight under the prefix and ``_manifest.json`` is written last, as
the commit marker - readers go through the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
from pyarrow.fs import FileType

from gen_factory import registry
from gen_factory.settings import filesystem
from gen_factory.data.conditions import split_conditions
from gen_factory.data.validate import DataValidationError

MANIFEST = "_manifest.json"
DEFAULT_BLOCK_ROWS = 262_144


def plan_shards(counts: list[int], block_rows: int) -> list[dict]:
    """Deterministic shard list: per label, consecutive blocks of at most `block_rows` rows."""
    shards = []
    for label, total in enumerate(counts):
        for index, start in enumerate(range(0, total, block_rows)):
            shards.append({"label": label, "index": index, "rows": min(block_rows, total - start)})
    return shards


def split_rows(total: int, n_labels: int) -> list[int]:
    """`total` rows spread over the labels as evenly as possible (the first labels take the remainder)."""
    base, extra = divmod(total, n_labels)
    return [base + (1 if i < extra else 0) for i in range(n_labels)]


class ShardWriter:
    """Ray Data actor: one ONNX Runtime session per actor, one Parquet file per shard."""

    def __init__(self, name: str, version: str, root: str, seed: int, env: dict):
        import os

        from gen_factory.onnx_model import OnnxModel

        os.environ.update(env)  # the driver's data directory and tracking URI
        self.ref = registry.ModelRef(name, version)
        self.model = OnnxModel(registry.download(self.ref), threads=1)
        self.fs, self.root = filesystem(root)
        self.seed = seed

    def __call__(self, batch: dict) -> dict:
        from gen_factory.sampling import generate_table, to_parquet_bytes

        out = {"path": [], "label": [], "rows": [], "sha256": [], "bytes": []}
        names = self.model.label_names
        conditions = batch.get("conditions", [""] * len(batch["rows"]))
        for label, index, rows, shard_conditions in zip(batch["label"], batch["index"], batch["rows"], conditions):
            counts = [0] * len(names)
            counts[int(label)] = int(rows)
            table = generate_table(self.model, counts, [self.seed, int(label), int(index)],
                                   {"model": self.ref.name, "version": self.ref.version},
                                   json.loads(shard_conditions) if shard_conditions else None)
            data = to_parquet_bytes(table)
            rel = f"label={_safe(names[int(label)])}/part-{int(index):05d}.parquet"
            self.fs.create_dir(f"{self.root}/{rel.rsplit('/', 1)[0]}", recursive=True)
            with self.fs.open_output_stream(f"{self.root}/{rel}") as fh:
                fh.write(data)
            for key, value in (("path", rel), ("label", names[int(label)]), ("rows", int(rows)),
                               ("sha256", hashlib.sha256(data).hexdigest()), ("bytes", len(data))):
                out[key].append(value)
        return {k: np.asarray(v) for k, v in out.items()}


def generate_dataset(ref_text: str, out: str | Path, *, rows: int | None = None,
                     counts: dict[str, int] | None = None, seed: int = 0, workers: int = 2,
                     block_rows: int = DEFAULT_BLOCK_ROWS, overwrite: bool = False,
                     conditions: dict | None = None) -> dict:
    """Write the dataset to `out` (a directory or an object-store URI) and return its manifest.

    `conditions` ({column: {category: rows}}) are exact over the whole dataset: the driver spreads
    them over the shards (`split_conditions`, seeded by `seed`), each shard forces its share.
    """
    import ray

    from gen_factory import settings
    from gen_factory.cluster import ensure_ray
    from gen_factory.onnx_model import OnnxModel

    if workers < 1 or block_rows < 1:
        raise DataValidationError("--workers/--block-rows", f"{workers}/{block_rows}", "use whole numbers >= 1")
    fs, final = filesystem(str(out))
    local = fs.type_name == "local"
    if fs.get_file_info(final).type != FileType.NotFound and not overwrite:
        raise DataValidationError("--out", str(out), "choose a new directory, or pass --overwrite to replace it")
    ref = registry.resolve(ref_text)
    model = OnnxModel(registry.download(ref))
    label_names = model.label_names
    per_label = _counts(label_names, rows, counts)
    shards = plan_shards(per_label, block_rows)
    if conditions:
        if not model.conditional:
            raise DataValidationError("--condition", repr(conditions)[:80],
                                      "this model has no categorical columns to condition on (or predates conditions)")
        placement = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        parts = split_conditions(model.card["encoding"]["columns"], conditions, [s["rows"] for s in shards], placement)
        shards = [{**shard, "conditions": json.dumps(part)} for shard, part in zip(shards, parts)]

    staging = f"{final.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}" if local else final
    if overwrite and not local and fs.get_file_info(final).type != FileType.NotFound:
        fs.delete_dir(final)
    fs.create_dir(staging, recursive=True)
    try:
        ensure_ray()
        env = {"GENFACTORY_HOME": str(settings.data_dir()), "MLFLOW_TRACKING_URI": settings.tracking_uri()}
        # Actors reopen the filesystem from this: a plain path, or the URI with its scheme.
        uri = staging if local else f"{str(out).split('://', 1)[0]}://{staging}"
        written = (ray.data.from_items(shards, override_num_blocks=max(1, len(shards)))
                   .map_batches(ShardWriter, batch_size=1, concurrency=workers, num_cpus=1,
                                fn_constructor_kwargs={"name": ref.name, "version": ref.version, "root": uri,
                                                       "seed": seed, "env": env})
                   .take_all())
        files = sorted(({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in written),
                       key=lambda f: f["path"])
        manifest = {
            "model": ref.name, "version": ref.version, "model_uri": ref.uri, "seed": seed,
            "rows": sum(per_label), "counts": dict(zip(label_names, per_label)), "block_rows": block_rows,
            **({"conditions": conditions} if conditions else {}),
            "files": files,
        }
        with fs.open_output_stream(f"{staging}/{MANIFEST}") as fh:  # last: the manifest commits
            fh.write(json.dumps(manifest, indent=2).encode())
        if local:
            if fs.get_file_info(final).type != FileType.NotFound:
                shutil.rmtree(final)
            Path(staging).rename(final)  # the commit: readers see all of it or none of it
    except BaseException:
        if local:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify(out: str | Path) -> list[str]:
    """Files whose checksum or row count disagrees with the manifest (empty: the dataset is intact)."""
    import io

    import pyarrow.parquet as pq

    fs, root = filesystem(str(out))
    with fs.open_input_stream(f"{root}/{MANIFEST}") as fh:
        manifest = json.loads(fh.read())
    bad = []
    for f in manifest["files"]:
        path = f"{root}/{f['path']}"
        if fs.get_file_info(path).type == FileType.NotFound:
            bad.append(f["path"])
            continue
        with fs.open_input_stream(path) as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != f["sha256"] or pq.read_metadata(io.BytesIO(data)).num_rows != f["rows"]:
            bad.append(f["path"])
    return bad


def _counts(label_names: list[str], rows: int | None, counts: dict[str, int] | None) -> list[int]:
    if (rows is None) == (counts is None):
        raise DataValidationError("--rows/--count", "both or neither", "give either --rows N or --count LABEL=N")
    if rows is not None:
        if rows < 1:
            raise DataValidationError("--rows", rows, "ask for at least 1 row")
        return split_rows(rows, len(label_names))
    out = [0] * len(label_names)
    for label, n in counts.items():
        if label not in label_names:
            raise DataValidationError(f"--count {label}", "unknown label", f"use one of: {', '.join(label_names)}")
        if n < 0:
            raise DataValidationError(f"--count {label}", n, "give a whole number >= 0")
        out[label_names.index(label)] = n
    if sum(out) == 0:
        raise DataValidationError("--count", "0 rows in total", "ask for at least one row")
    return out


def _safe(label: str) -> str:
    """A label as a directory name (Hive-style partition value)."""
    return "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02X}" for c in label)
