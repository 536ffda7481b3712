"""Bulk output loses nothing and ships nothing broken: one writer per output (OS lock), no deletion
without --overwrite, an atomic overwrite, hidden temporaries that a later run cleans, a SIGKILLed run
that leaves no dataset and reruns byte-identically, `genfactory verify`, and Hive-partitioned reading.
Real engines throughout (Ray Train for the model: the session's `cli_trained_table`, Ray Data + ONNX
Runtime for the files); sizes are small."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from gen_factory.cli import main as cli
from gen_factory.data.validate import DataValidationError
from gen_factory.services import bulk

pytestmark = pytest.mark.ray  # a model trained with Ray Train, bulk runs through Ray Data

MODEL = "cli-table@staging"  # conftest's `cli_trained_table`: columns x, y; labels common, mid, rare
LABEL = "segment"  # its label column: the partition key of the output


@pytest.fixture(scope="module")
def model(cli_trained_table):
    """The session's tiny three-label table model, registered through Ray Train by `genfactory train`
    (shared with the CLI, reference and Synthesizer tests: not trained again here)."""
    assert cli_trained_table["code"] == 0, cli_trained_table["err"][-3000:]
    assert MODEL == f"{cli_trained_table['name']}@{cli_trained_table['alias']}"
    return MODEL


def generate(out: Path, **kwargs) -> dict:
    args = {"rows": 600, "seed": 1, "workers": 1, "block_rows": 100, **kwargs}
    return bulk.generate_dataset(MODEL, out, **args)


def folder(manifest: dict, i: int = 0) -> str:
    """The partition folder (`segment=LABEL`) of the manifest's `i`-th file."""
    return manifest["files"][i]["path"].split("/")[0]


def leftovers(parent: Path) -> list[str]:
    """Hidden lock files, temporaries and replaced datasets beside the outputs."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def wait_for(condition, timeout: float = 60.0, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(step)


def temporaries(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def parts_in(directories: list[Path]) -> list[Path]:
    return [part for d in directories for part in d.glob("*=*/*.parquet")]


def test_a_second_run_into_an_output_being_written_is_refused_naming_the_path(model, tmp_path, capsys):
    out = tmp_path / "out"
    with bulk.output_lock(out):  # what a running `generate` holds, taken through its own open file
        with pytest.raises(bulk.OutputBusy, match=str(out)):
            generate(out)
        assert cli(["generate", model, "--out", str(out), "--rows", "10"]) == 1
        assert str(out) in capsys.readouterr().err
        assert not out.exists() and not temporaries(out)
    generate(out)  # released: the next run goes ahead
    assert bulk.check_dataset(out).ok and leftovers(tmp_path) == []


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    out = tmp_path / "out"
    script = (
        "import time\nfrom gen_factory.services.bulk import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(bulk.OutputBusy):
            with bulk.output_lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with bulk.output_lock(out) as lock:  # no stale lock: the kernel dropped it with the process
        assert lock == tmp_path / ".out.lock"
    assert leftovers(tmp_path) == []


def test_without_overwrite_an_existing_dataset_is_never_deleted(model, tmp_path):
    out = tmp_path / "out"
    first = generate(out, seed=1)
    with pytest.raises(DataValidationError, match="--overwrite"):
        generate(out, seed=2)
    assert bulk.check_dataset(out).ok and bulk.open_dataset(out).count_rows() == 600
    assert (out / bulk.MANIFEST).read_text().count(first["files"][0]["sha256"]) == 1
    assert leftovers(tmp_path) == []


def test_what_appears_at_the_output_during_a_run_is_not_replaced_at_commit(model, tmp_path):
    out = tmp_path / "out"
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(generate, out, rows=4_000, block_rows=100)
        wait_for(lambda: temporaries(out) or run.done())
        out.mkdir()  # an empty directory: a plain rename(2) would silently replace it
        with pytest.raises(bulk.OutputExists, match=str(out)):
            run.result()
    assert out.is_dir() and not any(out.iterdir())
    assert leftovers(tmp_path) == []


def test_overwrite_swaps_in_the_new_dataset_atomically(model, tmp_path):
    out = tmp_path / "out"
    old = generate(out, seed=1)
    seen, stop = [], threading.Event()

    def reader():  # what a reader polling the path sees during the overwrite: always a whole dataset
        while not stop.is_set():
            seen.append((out / bulk.MANIFEST).is_file())
            time.sleep(0.0005)  # ~2,000 looks a second, without holding the GIL against the run

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        new = generate(out, seed=2, rows=3_000, block_rows=500, overwrite=True)  # ~8 blocks, not 30
    finally:
        stop.set()
        watcher.join()
    assert seen and all(seen), f"the dataset was missing in {seen.count(False)} of {len(seen)} looks"
    assert new["files"] != old["files"] and new["rows"] == 3_000
    assert bulk.check_dataset(out).ok and leftovers(tmp_path) == []


def test_overwrite_never_deletes_a_directory_that_is_not_a_dataset(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(DataValidationError, match="not a genfactory dataset"):
        generate(out, overwrite=True)
    assert (out / "precious.txt").read_text() == "keep me"


def test_a_rerun_cleans_the_temporaries_of_dead_runs_only_of_its_own_output(model, tmp_path):
    out = tmp_path / "out"
    dead = tmp_path / ".out.tmp-0123abcd" / f"{LABEL}=common"
    dead.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1.0]}), dead / "part-00000.parquet")  # complete, but no manifest
    legacy = tmp_path / "out.tmp-89abcdef"  # the visible name earlier versions used
    legacy.mkdir()
    other = tmp_path / ".other.tmp-0123abcd"
    other.mkdir()
    generate(out)
    assert not dead.parent.exists() and not legacy.exists() and other.exists()
    assert bulk.check_dataset(out).ok


def test_a_sigkilled_generate_leaves_no_dataset_and_the_rerun_is_byte_identical(model, tmp_path):
    import ray

    from gen_factory.services.cluster import ensure_ray

    ensure_ray()  # the model may have been trained, and Ray shut down, by another module
    started = time.monotonic()
    out, reference = tmp_path / "out", tmp_path / "reference"
    args = ["--rows", "100000", "--block-rows", "1000", "--seed", "5"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}  # join this test's Ray
    command = [sys.executable, "-m", "gen_factory.cli", "generate", model, "--out", str(out), "--workers=1"]
    proc = subprocess.Popen(command + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: parts_in(temporaries(out)) or proc.poll() is not None, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    killed_at = time.monotonic() - started
    [staging] = temporaries(out)
    settle(staging)  # actors of the dead driver stop (Ray ends a dead driver's job)
    written = parts_in([staging])
    assert written and not (staging / bulk.MANIFEST).exists()  # killed mid-write (fewer files: below)
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        ds.dataset(out, format="parquet", partitioning="hive")
    assert ds.dataset(tmp_path, format="parquet", partitioning="hive").files == []  # hidden: readers skip it

    again = bulk.generate_dataset(model, out, rows=100_000, block_rows=1_000, seed=5, workers=2)
    first = bulk.generate_dataset(model, reference, rows=100_000, block_rows=1_000, seed=5, workers=1)
    assert len(written) < len(first["files"])  # about 100: the kill came before the last one
    assert again["files"] == first["files"]  # same paths, rows and sha256
    assert all((out / f["path"]).read_bytes() == (reference / f["path"]).read_bytes() for f in first["files"])
    assert leftovers(tmp_path) == [] and bulk.check_dataset(out).ok
    print(f"\nkilled after {killed_at:.1f} s with {len(written)}/{len(first['files'])} files written; "
          f"whole test {time.monotonic() - started:.1f} s")


def test_a_writer_actor_killed_mid_run_is_restarted_and_the_dataset_is_whole(model, tmp_path):
    """Ray restarts a bulk writer actor that dies (OOM killer, a lost process) and retries its shard;
    the run's result is the undisturbed run's, byte for byte. This is also why a bulk run logs Ray's
    "constructor arguments in the object store and max_restarts > 0" line (ray-project/ray#57733): Ray
    Data puts every pool actor's arguments there, and the driver holds them for the whole run, so the
    restart that line warns about works (README, "What survives which fault")."""
    out, reference = tmp_path / "out", tmp_path / "reference"
    args = {"rows": 100_000, "block_rows": 1_000, "seed": 5}
    earlier = set(own_writers())  # an earlier run's writers may still be shutting down
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(bulk.generate_dataset, model, out, workers=2, **args)
        wait_for(lambda: parts_in(temporaries(out)) or run.done(), timeout=120)
        writers = [pid for pid in own_writers() if pid not in earlier]
        assert writers and not run.done(), "the run ended before a writer could be killed"
        os.kill(writers[0], signal.SIGKILL)
        manifest = run.result(timeout=300)
    first = bulk.generate_dataset(model, reference, workers=1, **args)
    assert writers[0] not in own_writers()
    assert manifest["files"] == first["files"] and bulk.check_dataset(out).ok  # same paths, rows, sha256
    assert leftovers(tmp_path) == []


def own_writers() -> list[int]:
    """Pids of this test process's bulk writer actors: descendants (the local Ray this process started)
    whose command line, a Ray actor's process title, names the writer. Never another suite's."""
    parents, titles = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parents[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                titles[int(pid)] = fh.read()
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, title in titles.items()
            if b"MapWorker(MapBatches(ShardWriter))" in title and mine(pid)]


def settle(directory: Path, quiet: float = 1.5, timeout: float = 30.0) -> None:
    """Wait until nothing is added under `directory` for `quiet` seconds."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        now = sorted(directory.rglob("*"))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.1)


def test_verify_passes_an_intact_dataset_and_names_what_is_wrong(model, tmp_path, capsys):
    out = tmp_path / "out"
    manifest = generate(out)
    assert cli(["verify", str(out)]) == 0
    line = capsys.readouterr().out
    files = len(manifest["files"])  # 100 rows a file at most, per label: 7 for the shares 333/181/86
    assert files >= 3 and manifest["rows"] == 600
    assert line.startswith("OK ") and f"{files} files, 600 rows" in line and line.count("\n") == 1

    label_dir = out / folder(manifest)
    (label_dir / ".part-00000.parquet.crc").write_bytes(b"")  # hidden: readers skip it, verify too
    first, second = manifest["files"][0]["path"], manifest["files"][1]["path"]
    (out / first).write_bytes((out / first).read_bytes()[:-8] + b"tampered")
    (out / second).unlink()
    (label_dir / "part-00099.parquet").write_bytes((out / manifest["files"][2]["path"]).read_bytes())
    assert cli(["verify", str(out)]) == 1
    line = capsys.readouterr().out
    assert line.startswith("FAILED ") and line.count("\n") == 1
    result = bulk.check_dataset(out)
    extra = f"{label_dir.name}/part-00099.parquet"
    assert (result.changed, result.missing, result.extra) == ([first], [second], [extra])
    assert bulk.verify(out) == sorted([first, second, extra])

    assert cli(["verify", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (out / bulk.MANIFEST).unlink()
    assert cli(["verify", str(out)]) == 1
    assert "no _manifest.json" in capsys.readouterr().out


def test_hive_partitioned_readers_read_the_output(model, tmp_path):
    out = tmp_path / "out"
    manifest = generate(out, rows=601)
    counts = manifest["counts"]
    assert list(counts) == ["common", "mid", "rare"] and all(counts.values())
    assert {f["path"].split("/")[0] for f in manifest["files"]} == {f"{LABEL}={name}" for name in counts}

    table = ds.dataset(out, partitioning="hive", format="parquet").to_table()  # the tester's failing read
    assert table.num_rows == 601 and table.column_names == ["x", "y", LABEL]
    assert pd.Series(table.column(LABEL).to_pylist()).value_counts().to_dict() == counts

    frame = pd.read_parquet(out)
    assert frame[LABEL].astype(str).value_counts().to_dict() == counts
    assert pq.read_table(out).num_rows == 601

    typed = bulk.open_dataset(out).to_table()
    assert typed.column(LABEL).type.value_type == "string"
    assert typed.column(LABEL).chunk(0).dictionary.to_pylist() == list(counts)  # the model's label order
    hive = ds.dataset(out, partitioning="hive", format="parquet")
    assert hive.to_table(filter=ds.field(LABEL) == "rare").num_rows == counts["rare"]  # the folder prunes

    one_file = pq.read_table(out / manifest["files"][0]["path"])  # alone, a file has its label in metadata
    label = folder(manifest).split("=")[1]
    assert LABEL not in one_file.column_names
    assert f'"partition": {{"{LABEL}": "{label}"}}' in one_file.schema.metadata[b"gen_factory"].decode()


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_other_hive_readers(model, tmp_path, engine):
    module = pytest.importorskip(engine, reason=f"{engine} is not installed here (not a project dependency)")
    out = tmp_path / "out"
    manifest = generate(out)
    if engine == "duckdb":
        query = f"select {LABEL}, count(*) from read_parquet('{out}/*/*.parquet', hive_partitioning=true)"
        rows = module.sql(query + f" group by {LABEL}").fetchall()
        assert dict(rows) == manifest["counts"]
    else:
        frame = module.read_parquet(f"{out}/**/*.parquet", hive_partitioning=True)
        assert frame[LABEL].value_counts().sort(LABEL).rows() == sorted(manifest["counts"].items())
