"""Bulk scoring throughput and memory: `genfactory score NAME DATA --out DIR` on breast_cancer-width rows.

The input is real breast_cancer rows resampled with noise (each row a random real row, every column
plus N(0, (0.05 * column std)^2), then clipped at 0 as the measurements are non-negative), 30 float
columns plus the string `label` column the scorer keeps and ignores, written in row groups of 65,536
rows by a streaming writer (the bench never holds the table either). The model is a briefly trained
breast_cancer model: scoring speed depends on the graph's shape, not on how well it was trained.

It scores a small and a 10x larger input with 2 workers, sampling the RSS of the driver and of its
Ray processes (the raylet's descendants: the scoring actors and Ray's own workers), and prints

    RESULT bulk_score rows=N workers=N rows_per_s=X rss_growth_pct=X

with rows/s of the larger run and the growth of peak RSS (driver + its Ray processes, summed) from
the smaller to the larger. `--profile` first times each step of an actor's loop on one core
(Parquet read, Arrow -> numpy, ONNX Runtime scoring, Parquet write), then the scorer graph's ops
from ONNX Runtime's own profile (CPU time per op type, multiply-adds per row). Run:
`python bench/bulk_score.py [--rows 200000 2000000] [--workers 2] [--profile]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import header, registered, temp_home

GROUP_ROWS = 65_536


def make_input(path: Path, rows: int, seed: int = 0) -> None:
    """`rows` resampled breast_cancer rows with noise (the module's docstring), written group by group."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    real, names = frame.to_numpy(np.float64), np.asarray(data.target_names)[data.target.to_numpy()]
    scale = 0.05 * real.std(axis=0)
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, GROUP_ROWS):
        n = min(GROUP_ROWS, rows - start)
        pick = rng.integers(0, len(real), n)
        values = np.clip(real[pick] + rng.normal(0.0, 1.0, (n, real.shape[1])) * scale, 0.0, None)
        table = pa.table({**{c: values[:, j] for j, c in enumerate(frame.columns)}, "label": names[pick]})
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(pid))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def family() -> list[int]:
    """This process and every descendant (the local Ray it started: raylet, workers, actors)."""
    tree, todo, pids = _children(), [os.getpid()], []
    while todo:
        pids.append(todo.pop())
        todo.extend(tree.get(pids[-1], []))
    return pids


class FamilyUsage:
    """Peak summed RSS of `family()` and the CPU seconds its processes used while the block ran (each
    process's last sample, less its time at the start): on a shared machine rows per CPU second is the
    figure that does not depend on how many other jobs run."""

    def __init__(self):
        self.peak, self._start, self._last = 0, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        pids = family()
        self.peak = max(self.peak, sum(_rss(pid) for pid in pids))
        for pid in pids:
            self._last[pid] = _cpu_seconds(pid)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.25)

    @property
    def cpu_seconds(self) -> float:
        return sum(t - self._start.get(pid, 0.0) for pid, t in self._last.items())

    def __enter__(self):
        self._start = {pid: _cpu_seconds(pid) for pid in family()}
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def profile(ref: str, source: Path, batch_rows: int) -> None:
    """Each step of a scoring actor's loop, on one thread, as rows/s (so 2 workers get at most twice)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gen_factory import registry
    from gen_factory.card import default_method
    from gen_factory.runtime import scoring
    from gen_factory.runtime.codes import table_values
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.services.bulk_score import dictionary_columns, scored_columns

    model = OnnxModel(registry.download(registry.resolve(ref)), threads=1)
    batches = list(pq.ParquetFile(source).iter_batches(batch_rows, use_threads=False))[:4]
    steps: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.process_time()
        result = fn(*args)
        steps[name] = steps.get(name, 0.0) + time.process_time() - start
        return result

    threshold = scoring.verdict(model, np.empty(0), None, False)[0]
    top_k = min(scoring.DEFAULT_TOP_K, len(model.card.columns)) if scoring.has_attribution(model) else 0
    for i, batch in enumerate(batches):
        timed("read parquet", lambda: next(pq.ParquetFile(source).iter_batches(
            batch_rows, row_groups=[0], use_threads=False)))
        values = timed("arrow -> numpy", table_values, model, batch, (str(source), i))
        scored = timed("onnx score", scoring.score_attributed, model, values, None)
        method = default_method(model.card.score_methods)
        added = timed("added columns", scored_columns, model, scored, method, threshold, top_k)
        table = pa.Table.from_batches([batch]).append_column("score", [added["score"]])
        for name in list(added)[1:]:
            table = table.append_column(name, [added[name]])
        timed("write parquet", lambda t: pq.write_table(t, io.BytesIO(), compression="zstd",
                                                        use_dictionary=dictionary_columns(t.schema)), table)
    rows = sum(b.num_rows for b in batches)
    shared = "once per row" if scoring.labels_per_row(model) else "once per label"
    print(f"one core, batches of {batch_rows} rows, {len(model.label_names)} labels (best-label scoring; "
          f"the label-free parts of the graph, the forest among them, run {shared}):")
    for name, seconds in steps.items():
        print(f"  {name:<16} {rows / seconds:>12,.0f} rows/s per CPU second")
    op_profile(model, table_values(model, batches[0], (str(source), 0)))


def op_profile(model, values: np.ndarray) -> None:
    """ONNX Runtime's profile of the scorer scoring `values` as an actor does (best label, calls of
    `scoring.INPUTS_PER_CALL` inputs, one thread): CPU time per op type, and the multiply-adds per input
    row of its matrix products (each MatMul/Gemm's input rows x inner size x output size) - what a FLOP
    bound starts from."""
    import json

    import onnxruntime as ort

    from gen_factory.runtime.scoring import score_attributed

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="gf-ort-profile-")) / "scorer")
    model.scorer = ort.InferenceSession(str(model.dir / model.card.files.scorer), options,
                                        providers=["CPUExecutionProvider"])
    score_attributed(model, values, None)
    with open(model.scorer.end_profiling()) as fh:
        events = [e for e in json.load(fh) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_op: dict[str, float] = {}
    macs = 0
    for e in events:
        op = e["args"]["op_name"]
        by_op[op] = by_op.get(op, 0.0) + e["dur"]
        if op in ("MatMul", "Gemm", "FusedMatMul", "FusedGemm"):
            a = next(iter(e["args"]["input_type_shape"][0].values()))  # (weights are not listed)
            macs += int(np.prod(a)) * next(iter(e["args"]["output_type_shape"][0].values()))[-1]
    total = sum(by_op.values())
    print(f"scorer ops over {len(values)} rows: {total / len(values):.1f} us per row "
          f"({len(values) / total * 1e6:,.0f} rows/s per CPU second, profiled), "
          f"{macs / len(values) / 1e3:.0f}k multiply-adds per row in matrix products")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {op:<24} {100 * us / total:5.1f} %  {us / len(values):6.2f} us per row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[200_000, 2_000_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-rows", type=int, default=None, help="rows per ONNX call (default: the "
                                                                    "service's)")
    parser.add_argument("--profile", action="store_true", help="time each step of the actor loop first")
    args = parser.parse_args()
    temp_home("gf-bench-bulk-score-")
    from gen_factory.services import bulk
    from gen_factory.services.bulk_score import DEFAULT_BATCH_ROWS, score_dataset

    batch_rows = args.batch_rows or DEFAULT_BATCH_ROWS
    ref = registered("breast_cancer", "bench-score", epochs=5)
    work = Path(tempfile.mkdtemp(prefix="gf-bulk-score-"))
    sources = {}
    for rows in args.rows:
        sources[rows] = work / f"in-{rows}.parquet"
        make_input(sources[rows], rows)
    if args.profile:
        profile(ref, sources[args.rows[0]], batch_rows)
    score_dataset(ref, sources[args.rows[0]], work / "warmup", workers=args.workers)  # Ray up, models cached
    print(header("bulk scoring (bench/bulk_score.py)"))
    print(f"input: breast_cancer rows resampled with noise, 30 float columns + label, row groups of "
          f"{GROUP_ROWS}; {args.workers} workers, batches of {batch_rows}; load {os.getloadavg()[0]:.1f}")
    print(f"{'rows':>12} {'seconds':>8} {'rows/s':>10} {'rows/CPU s':>11} {'peak RSS (driver + Ray)':>24}")
    peaks, rate = {}, 0.0
    for rows in args.rows:
        out = work / f"out-{rows}"
        with FamilyUsage() as usage:
            start = time.perf_counter()
            manifest = score_dataset(ref, sources[rows], out, workers=args.workers, batch_rows=batch_rows)
            seconds = time.perf_counter() - start
        assert manifest["rows"] == rows and bulk.check_dataset(out).ok
        rate, peaks[rows] = rows / seconds, usage.peak
        print(f"{rows:>12,} {seconds:>8.1f} {rate:>10,.0f} {rows / usage.cpu_seconds:>11,.0f} "
              f"{usage.peak / 2**20:>20,.0f} MiB")
        shutil.rmtree(out)
    small, large = args.rows
    growth = 100.0 * (peaks[large] - peaks[small]) / peaks[small]
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(f"RESULT bulk_score rows={large} workers={args.workers} rows_per_s={rate:.0f} "
          f"rss_growth_pct={growth:.1f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
