"""Bulk generation with Ray Data: millions of rows as label-partitioned Parquet plus a manifest.

The dataset is cut into shards (label, index) of at most `block_rows` rows; each shard's noise
comes from its own seed ``[seed, label, index]``, so a file's bytes depend on nothing but the
model, the seed and its shard - not on how many workers ran or in which order. An actor pool of
ONNX Runtime sessions writes the shards; memory stays flat in the total row count.

Layout (Hive partitioning): ``OUT/<label column>=<label>/part-NNNNN.parquet`` and
``OUT/_manifest.json`` (rows, sha256 per file, model version, seed). As in Hive and Spark, the
partition column lives in the folder name only, not inside the files: a column that is both a
folder key and a file column makes ``pyarrow.dataset.dataset(OUT, partitioning="hive")`` fail
(string key vs dictionary column), and a plain string column instead breaks
``pd.read_parquet(OUT)`` / ``pq.read_table(OUT)`` (they infer dictionary keys). So reading the
directory - pyarrow.dataset, pandas, duckdb, Spark - gets the label from the folder; a single
file or a single ``label=...`` folder read alone has no label column (its schema metadata and the
manifest name it). `open_dataset` reads it with the label typed as the model's names (a reader
infers ``label=0`` as an integer).

Local directories are safe against crashes and concurrent runs:

- a run holds an OS lock (``flock``) on ``.OUT.lock`` beside the output for its whole life; a
  second run into the same path is refused (`OutputBusy`). The kernel drops the lock when its
  process dies, however it dies, so it never goes stale;
- files are written under a hidden ``.OUT.tmp-XXXXXXXX/`` beside the output (readers skip names
  starting with ``.`` or ``_``) and renamed into place only when complete, so a half-written
  dataset is never visible; a later run removes the temporaries of dead runs (it holds the lock,
  so their writers are gone);
- without ``overwrite`` an existing dataset is never touched: checked at the start, and the final
  rename itself refuses to replace anything (``renameat2(RENAME_NOREPLACE)``);
- with ``overwrite`` the new directory is swapped in atomically (`_commit`) and only then the old
  one is deleted; it replaces only a previous dataset (a ``_manifest.json``) or an empty directory.

Object stores (``s3://…``, ``gs://…``) have no rename and no lock: there the files go straight
under the prefix and ``_manifest.json`` is written last, as the commit marker - readers go
through the manifest, and `check_dataset` tells a finished prefix from a broken one.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

import numpy as np
from pyarrow.fs import FileSelector, FileType

from gen_factory import registry
from gen_factory.data.conditions import split_conditions
from gen_factory.data.datasets import ONE_CLASS_COLUMN
from gen_factory.data.validate import DataValidationError
from gen_factory.logs import held_to
from gen_factory.settings import filesystem

MANIFEST = "_manifest.json"
DEFAULT_BLOCK_ROWS = 262_144
_NEW_OR_OVERWRITE = "choose a new directory, or pass --overwrite to replace it"


class OutputError(RuntimeError):
    """The output path is in a state where writing would lose or corrupt someone's data."""


class OutputBusy(OutputError):
    """Another run holds the output's lock."""


class OutputExists(OutputError):
    """Something appeared at the output path while this run was writing."""


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


def partition_path(label_column: str, label: str, index: int) -> str:
    """A shard's path under the output: Hive-style ``key=value`` folder, both URI-escaped as Hive readers
    decode them (``a b/c`` -> ``a%20b%2Fc``); at the top for a model without labels (one class), whose
    rows have no label column to part them by."""
    if label_column == ONE_CLASS_COLUMN:
        return f"part-{index:05d}.parquet"
    return f"{_escape(label_column)}={_escape(label)}/part-{index:05d}.parquet"


class ShardWriter:
    """Ray Data actor: one ONNX Runtime session per actor, one Parquet file per shard."""

    def __init__(self, name: str, version: str, root: str, seed: int, env: dict, precision: str = "fp32"):
        self.ref, self.model = actor_model(name, version, env, precision)
        self.fs, self.root = filesystem(root)
        self.seed = seed

    def __call__(self, batch: dict) -> dict:
        from gen_factory.runtime.sampling import generate_table, to_parquet_bytes

        out = {"path": [], "label": [], "rows": [], "sha256": [], "bytes": []}
        names = self.model.label_names
        label_column = self.model.card.label_column
        conditions = batch.get("conditions", [""] * len(batch["rows"]))
        shards = zip(batch["label"], batch["index"], batch["rows"], conditions, strict=True)
        for label, index, rows, shard_conditions in shards:
            counts = [0] * len(names)
            counts[int(label)] = int(rows)
            name = names[int(label)]
            table = generate_table(self.model, counts, [self.seed, int(label), int(index)],
                                   {"model": self.ref.name, "version": self.ref.version,
                                    "partition": {label_column: name}, **_precision(self.model.precision)},
                                   json.loads(shard_conditions) if shard_conditions else None,
                                   drop=(label_column,))  # the folder name carries it
            data = to_parquet_bytes(table)
            rel = partition_path(label_column, name, int(index))
            # Locally the run's directory must already exist: an actor outliving a killed driver
            # must not recreate a temporary directory that the next run has just cleaned up.
            local = self.fs.type_name == "local"
            if "/" in rel:  # a label's folder (a one-class model's files lie at the top)
                self.fs.create_dir(f"{self.root}/{rel.rsplit('/', 1)[0]}", recursive=not local)
            with self.fs.open_output_stream(f"{self.root}/{rel}") as fh:
                fh.write(data)
            for key, value in (("path", rel), ("label", name), ("rows", int(rows)),
                               ("sha256", hashlib.sha256(data).hexdigest()), ("bytes", len(data))):
                out[key].append(value)
        return {k: np.asarray(v) for k, v in out.items()}


def generate_dataset(ref_text: str, out: str | Path, *, rows: int | None = None,
                     counts: dict[str, int] | None = None, seed: int = 0, workers: int = 2,
                     block_rows: int = DEFAULT_BLOCK_ROWS, overwrite: bool = False,
                     conditions: dict | None = None, precision: str = "fp32") -> dict:
    """Write the dataset to `out` (a directory or an object-store URI) and return its manifest.

    `conditions` ({column: {category: rows}}) are exact over the whole dataset: the driver spreads
    them over the shards (`split_conditions`, seeded by `seed`), each shard forces its share.
    `precision` picks a reduced-precision generator the model carries (`int8`); the manifest and
    each file's metadata then name it (other bytes than fp32's for the same seed).
    Raises `OutputBusy` if another run writes to `out`, `DataValidationError` if `out` exists
    without `overwrite` (or is not a dataset), `OutputExists` if it appeared meanwhile.
    """
    check_pool(workers, block_rows)
    return write_output(out, overwrite, lambda uri: _write(ref_text, uri, rows, counts, seed, workers,
                                                           block_rows, conditions, precision))


def check_pool(workers: int, block_rows: int) -> None:
    """`--workers` and `--block-rows` as whole numbers >= 1, or a usage error naming them."""
    if workers < 1 or block_rows < 1:
        raise DataValidationError("--workers/--block-rows", f"{workers}/{block_rows}",
                                  "use whole numbers >= 1")


def write_output(out: str | Path, overwrite: bool, write: Callable[[str], dict]) -> dict:
    """Run ``write(uri)`` - which writes every file and the manifest under `uri` and returns the
    manifest - so that a reader of `out` sees the whole result or nothing (the module's docstring).

    Local `out`: under the output lock, into a hidden staging directory renamed into place when
    `write` returns (`_commit`); an exception from `write` leaves nothing at `out`. Object stores:
    straight under the prefix, the manifest last (the commit marker).
    """
    fs, final = filesystem(str(out))
    if fs.type_name != "local":
        if fs.get_file_info(final).type != FileType.NotFound:
            if not overwrite:
                raise DataValidationError("--out", str(out), _NEW_OR_OVERWRITE)
            fs.delete_dir(final)
        fs.create_dir(final, recursive=True)
        return write(str(out))
    final_path = Path(final)
    with output_lock(final_path):
        clean_stale(final_path)  # first: it may put back a dataset an interrupted overwrite had moved
        _check_target(final_path, overwrite)
        staging = _sibling(final_path, "tmp")
        staging.mkdir()
        try:
            manifest = write(str(staging))
            _commit(staging, final_path, overwrite)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after a commit
    return manifest


def actor_env() -> dict:
    """What a Ray Data actor needs from the driver's environment: its data directory and tracking URI."""
    from gen_factory import settings

    return {"GENFACTORY_HOME": str(settings.data_dir()), "MLFLOW_TRACKING_URI": settings.tracking_uri()}


def actor_model(name: str, version: str, env: dict, precision: str = "fp32"):
    """In a Ray actor: the driver's environment (`actor_env`) set, then (ModelRef, its OnnxModel on one
    thread - the actor has one CPU)."""
    os.environ.update(env)
    from gen_factory.runtime.onnx_model import OnnxModel

    ref = registry.ModelRef(name, version)
    return ref, OnnxModel(registry.download(ref), threads=1, precision=precision)


def run_writers(shards: list[dict], writer: type, kwargs: dict, workers: int, total: int, desc: str
                ) -> list[dict]:
    """Every shard through a pool of `workers` `writer` actors (one CPU each, one shard per call, each
    returning a row per written file with at least `path` and `rows`); the rows as plain values,
    sorted by path. Progress counts the rows of the written files toward `total`."""
    import ray

    from gen_factory.progress import progress
    from gen_factory.services.cluster import ensure_ray

    ensure_ray()
    # No more actors than shards: an actor without a shard would idle, and Ray Data warns of it.
    pool = ray.data.ActorPoolStrategy(size=max(1, min(workers, len(shards))))
    dataset = (ray.data.from_items(shards, override_num_blocks=max(1, len(shards)))
               .map_batches(writer, batch_size=1, compute=pool, num_cpus=1, fn_constructor_kwargs=kwargs))
    context = dataset.context
    # A writer's DataValidationError (a bad value in a shard) reaches the driver as itself, not
    # wrapped in Ray Data's UserCodeException, and is raised again without the worker's traceback.
    context.raise_original_map_exception = True
    # The progress line below is the run's; Ray Data's own (its plan, progress bars or, off a
    # terminal, a block of log lines every few seconds) would repeat it.
    context.print_on_execution_start, context.enable_progress_bars = False, False
    written = []
    try:
        with progress(total, "rows", desc) as bar, held_to("ray.data", logging.WARNING), \
                held_to("ray.data._internal.progress", logging.ERROR):  # "progress bars disabled"
            for row in dataset.iter_rows():  # one update per written file
                written.append({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
                bar.update(int(written[-1]["rows"]))
    except DataValidationError as err:
        raise DataValidationError(err.field, err.value, err.fix) from None
    return sorted(written, key=lambda f: f["path"])


def write_manifest(uri: str, manifest: dict) -> None:
    """`_manifest.json` under `uri`; call it last: on object stores the manifest commits the dataset."""
    fs, root = filesystem(uri)
    with fs.open_output_stream(f"{root}/{MANIFEST}") as fh:
        fh.write(json.dumps(manifest, indent=2).encode())


def _write(ref_text, uri, rows, counts, seed, workers, block_rows, conditions, precision) -> dict:
    """Every shard through the actor pool into `uri`, then the manifest; returns the manifest."""
    from gen_factory.runtime.onnx_model import OnnxModel

    ref = registry.resolve(ref_text)
    model = OnnxModel(registry.download(ref), precision=precision)  # refuses one the model lacks, early
    label_names = model.label_names
    per_label = _counts(label_names, rows, counts)
    shards = plan_shards(per_label, block_rows)
    if conditions:
        if not model.conditional:
            raise DataValidationError("--condition", repr(conditions)[:80], "this model has no categorical "
                                      "columns to condition on (or predates conditions)")
        placement = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        parts = split_conditions(model.card.encoding.columns, conditions, [s["rows"] for s in shards],
                                 placement)
        shards = [{**s, "conditions": json.dumps(part)} for s, part in zip(shards, parts, strict=True)]
    kwargs = {"name": ref.name, "version": ref.version, "root": uri, "seed": seed, "env": actor_env(),
              "precision": precision}
    files = run_writers(shards, ShardWriter, kwargs, workers, sum(per_label), "generate")
    manifest = {
        "model": ref.name, "version": ref.version, "model_uri": ref.uri, "seed": seed,
        "rows": sum(per_label), "counts": dict(zip(label_names, per_label, strict=True)),
        "block_rows": block_rows,
        "partitioning": "none" if model.card.label_column == ONE_CLASS_COLUMN else "hive",
        "label_column": model.card.label_column,
        **({"conditions": conditions} if conditions else {}),
        **_precision(precision),
        "files": files,
    }
    write_manifest(uri, manifest)
    return manifest


def _precision(precision: str) -> dict:
    """What the manifest and file metadata add for a reduced-precision run; fp32 runs stay as before."""
    return {} if precision == "fp32" else {"precision": precision}


# --- local output: lock, temporaries, commit -------------------------------------------------------------

@contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of output directory `out` (``.NAME.lock`` beside it), or raise `OutputBusy`.

    flock belongs to the open file, so the kernel releases it when the holder dies (even by SIGKILL):
    the lock never goes stale. The lock file is removed on release; since a waiter may have opened
    it just before, a taker re-checks that the path still names the file it locked.
    """
    out = Path(out).resolve()
    path = out.parent / f".{out.name}.lock"
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusy(f"{out}: another genfactory run is writing this output (it holds {path}); "
                             "wait for it to finish or choose another --out") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the previous holder removed that file after we opened it: lock the new one
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so no one can lock a file that is gone
        os.close(fd)


def clean_stale(out: str | Path) -> list[Path]:
    """Remove what dead runs into `out` left beside it; returns the paths removed.

    Call with the lock held: every other run into `out` has then ended, so nothing writes there.
    If a run died between the two renames of a non-atomic overwrite, its old dataset is put back.
    """
    out = Path(out).resolve()
    # Unhidden `NAME.tmp-*` too: runs of earlier versions left those.
    pattern = re.compile(r"\.?" + re.escape(out.name) + r"\.(tmp|old)-[0-9a-f]{8}")
    removed = []
    for entry in sorted(out.parent.iterdir()) if out.parent.is_dir() else []:
        match = pattern.fullmatch(entry.name)
        if not match:
            continue
        if match.group(1) == "old" and not os.path.lexists(out) and (entry / MANIFEST).is_file():
            entry.rename(out)
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to start when `out` exists without `overwrite`, or is something other than a dataset."""
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise DataValidationError("--out", str(out), _NEW_OR_OVERWRITE)
    if not _replaceable(out):
        raise DataValidationError("--out", str(out), f"it is not a genfactory dataset (no {MANIFEST}) and "
                                  "not empty, so --overwrite will not delete it; remove it yourself or "
                                  "choose another path")


def _replaceable(out: Path) -> bool:
    """Only a previous dataset or an empty directory may be replaced: never a user's other data."""
    return out.is_dir() and not out.is_symlink() and ((out / MANIFEST).is_file() or not any(out.iterdir()))


def _commit(staging: Path, out: Path, overwrite: bool) -> None:
    """Make the complete `staging` directory the dataset at `out`; readers see the old or the new one whole.

    Without `overwrite`, one rename that fails if anything is at `out` by then (even an empty directory,
    which plain rename(2) would silently replace). With it, ``renameat2(RENAME_EXCHANGE)`` swaps the two
    directory entries in one step - `out` is never missing - and the old dataset, now at the temporary
    name, is deleted afterwards. Where the filesystem cannot exchange, it is two renames (old -> hidden
    ``.NAME.old-*``, new -> `out`): `out` is missing for that instant only, and `clean_stale` puts the old
    one back if the process dies in between. A reader already walking the old tree when the swap happens
    may meet new files at old paths; `check_dataset` (checksums) catches that.
    """
    if not (overwrite and os.path.lexists(out)):
        try:
            _rename(staging, out, _RENAME_NOREPLACE)
        except FileExistsError:
            raise OutputExists(f"{out}: something was created there while this run was writing; nothing "
                               "was replaced and this run's files were discarded - rerun with --overwrite to "
                               "replace it, or choose another --out") from None
        return
    if not _replaceable(out):  # changed since the start, by someone not taking the lock
        raise OutputExists(f"{out}: it is no longer a genfactory dataset (no {MANIFEST}); "
                           "nothing was replaced")
    try:
        _rename(staging, out, _RENAME_EXCHANGE)
        old = staging
    except NotImplementedError:
        old = _sibling(out, "old")
        os.rename(out, old)
        os.rename(staging, out)
    _remove(old)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _rename(src: Path, dst: Path, flag: int) -> None:
    """Linux renameat2(2) with `flag`; NOREPLACE falls back to check-then-rename where unsupported,
    EXCHANGE raises NotImplementedError there. FileExistsError when NOREPLACE finds `dst` taken."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flag) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST or (err == errno.ENOTEMPTY and flag == _RENAME_NOREPLACE):
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
    if flag == _RENAME_EXCHANGE:
        raise NotImplementedError("renameat2(RENAME_EXCHANGE) is not available here")
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _sibling(out: Path, kind: str) -> Path:
    """A hidden name beside `out` for this run's temporary (`tmp`) or replaced (`old`) directory."""
    return out.parent / f".{out.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- reading and checking ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetCheck:
    """What `check_dataset` found: `ok` when the manifest, the files and their contents all agree."""

    path: str
    manifest: bool  # a readable _manifest.json was found
    files: int = 0  # files the manifest lists
    rows: int = 0  # rows the manifest promises
    missing: list[str] = field(default_factory=list)  # listed, not there
    changed: list[str] = field(default_factory=list)  # there, but sha256 or row count differ
    extra: list[str] = field(default_factory=list)  # not listed, but directory readers would pick them up
    problem: str = ""  # a manifest-level problem (absent, unreadable, totals that do not add up)

    @property
    def ok(self) -> bool:
        return self.manifest and not (self.missing or self.changed or self.extra or self.problem)

    def summary(self) -> str:
        """One line for a terminal or a log."""
        if self.ok:
            return f"OK {self.path}: {self.files} files, {self.rows} rows match {MANIFEST}"
        parts = [self.problem] if self.problem else []
        for name, paths in (("missing", self.missing), ("changed", self.changed), ("extra", self.extra)):
            if paths:
                more = ", ..." if len(paths) > 3 else ""
                parts.append(f"{len(paths)} {name} ({', '.join(paths[:3])}{more})")
        return f"FAILED {self.path}: " + "; ".join(parts)


def check_dataset(out: str | Path) -> DatasetCheck:
    """Compare a bulk dataset with its manifest: every file present with its sha256 and row count, no
    other file that a reader of the directory would pick up, totals that add up. Raises
    `DataValidationError` when `out` does not exist."""
    fs, root = filesystem(str(out))
    root = root.rstrip("/")
    if fs.get_file_info(root).type == FileType.NotFound:
        raise DataValidationError("PATH", str(out), "give the directory (or URI) that `genfactory generate` "
                                  "or `genfactory score --out` wrote")
    try:
        with fs.open_input_stream(f"{root}/{MANIFEST}") as fh:
            manifest = json.loads(fh.read())
        listed = {f["path"]: f for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = f"no {MANIFEST}: not a finished dataset" if isinstance(err, FileNotFoundError) \
            else f"{MANIFEST} unreadable ({type(err).__name__})"
        return DatasetCheck(str(out), manifest=False, problem=problem)
    present = set(visible_files(fs, root))
    missing = sorted(p for p in listed if p not in present)
    changed = sorted(p for p in listed if p in present and not _file_matches(fs, f"{root}/{p}", listed[p]))
    extra = sorted(present - set(listed))
    total = sum(int(f["rows"]) for f in listed.values())
    promised = manifest.get("rows")
    problem = "" if total == promised else f"the files hold {total} rows, the manifest says {promised}"
    return DatasetCheck(str(out), True, len(listed), int(promised or 0), missing, changed, extra, problem)


def verify(out: str | Path) -> list[str]:
    """Paths that disagree with the manifest - missing, changed or extra (empty: the dataset is intact)."""
    result = check_dataset(out)
    if not result.manifest:
        raise DataValidationError("PATH", str(out), result.problem)
    return sorted(result.missing + result.changed + result.extra)


def open_dataset(out: str | Path):
    """The bulk dataset as a `pyarrow.dataset.Dataset` whose label column is typed as the model's label
    names (dictionary, in the model's order) rather than re-inferred from folder names (``label=0``
    would read as an integer)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, root = filesystem(str(out))
    with fs.open_input_stream(f"{root.rstrip('/')}/{MANIFEST}") as fh:
        manifest = json.loads(fh.read())
    column = manifest.get("label_column", "label")
    if manifest.get("partitioning") == "none":
        return ds.dataset(root, filesystem=fs, format="parquet")  # `_manifest.json` is skipped by its prefix
    schema = pa.schema([(column, pa.dictionary(pa.int32(), pa.string()))])
    partitioning = ds.partitioning(schema, flavor="hive",
                                   dictionaries={column: pa.array(list(manifest["counts"]), pa.string())})
    return ds.dataset(root, filesystem=fs, format="parquet", partitioning=partitioning)


def visible_files(fs, root: str) -> list[str]:
    """Files under `root` that directory readers use: no path part starting with '.' or '_' (which
    pyarrow, pandas, duckdb and Spark skip), relative to `root`."""
    infos = fs.get_file_info(FileSelector(root, recursive=True))
    rel = (info.path[len(root) + 1:] for info in infos if info.type == FileType.File)
    return [p for p in rel if not any(part.startswith((".", "_")) for part in p.split("/"))]


def _file_matches(fs, path: str, entry: dict) -> bool:
    """sha256 first (reads the bytes once, in chunks); then the Parquet footer's row count."""
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    with fs.open_input_stream(path) as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != entry["sha256"]:
        return False
    try:
        with fs.open_input_file(path) as fh:
            return pq.ParquetFile(fh).metadata.num_rows == int(entry["rows"])
    except (OSError, ValueError):
        return False


def _counts(label_names: list[str], rows: int | None, counts: dict[str, int] | None) -> list[int]:
    if (rows is None) == (counts is None):
        raise DataValidationError("--rows/--count", "both or neither",
                                  "give either --rows N or --count LABEL=N")
    if rows is not None:
        if rows < 1:
            raise DataValidationError("--rows", rows, "ask for at least 1 row")
        return split_rows(rows, len(label_names))
    out = [0] * len(label_names)
    for label, n in counts.items():
        if label not in label_names:
            raise DataValidationError(f"--count {label}", "unknown label",
                                      f"use one of: {', '.join(label_names)}")
        if n < 0:
            raise DataValidationError(f"--count {label}", n, "give a whole number >= 0")
        out[label_names.index(label)] = n
    if sum(out) == 0:
        raise DataValidationError("--count", "0 rows in total", "ask for at least one row")
    return out


def _escape(text: str) -> str:
    """A partition key or value as a folder name: UTF-8 percent-escapes, as Hive readers decode them
    (ASCII letters, digits and ``-_.`` stay as they are)."""
    return quote(text, safe="-_.")
