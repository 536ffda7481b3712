"""Million-row tables (issue 17 part 2): train bench/million_table.py's 1,000,000 x 100 table on Ray Train
with 2 workers that each stream their own shard from the Parquet file (gen_factory/train/shards.py).

    .venv/bin/python bench/million.py [--rows 1000000] [--epochs 1] [--batch-size 2048] [--no-sdv]

The driver runs the pipeline's own `prepare` (load, split, fit the encoding) and `distributed.fit`
(the Ray Train run `genfactory train` makes: same config, same worker loop) with encoder_epochs 0 and
no refit, so the figures are the GAN's. Printed:
- peak RSS of the driver (its VmHWM: prepare and the fit) and of each Ray Train worker (VmHWM of every
  `RayTrainWorker` process, polled each second from /proc while the fit runs);
- rows/s per worker and seconds per epoch (the workers' own epoch clocks, from the final checkpoint);
- quality (SDMetrics-style report, gen_factory.evaluate.quality) and TSTR (a forest trained on 50,000
  generated rows, tested on 50,000 held-out real rows; macro-F1, the label's 1 % class makes accuracy
  say little) beside TRTR (the same forest on 50,000 real training rows);
- 1 -> 2 worker scaling: the same epoch with 1 worker, rows/s of the whole group;
- SDV CTGAN (its own venv, .venv-bench) on the same table, capped in time and memory: how far it got.
Epochs are few (one by default) so the run fits in about 20 minutes on 2 shared cores: the figures
are throughput and memory, and quality after one epoch is a floor, not the model's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import Sampler, header, temp_home  # noqa: E402

SAMPLE = 50_000
LABEL = "outcome"
GIB = 2**30


def vm_peak_gib(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM) in GiB, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / GIB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def tree_rss_gib(pid: int) -> float:
    """Current RSS of a process and its children (VmRSS summed), in GiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo += [int(c) for c in children]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / GIB


def _descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is among `pid`'s parents (this driver's local Ray starts its workers)."""
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            return False
        if pid == ancestor:
            return True
    return False


class WorkerPeaks(Sampler):
    """Polls /proc each second for Ray Train worker processes and keeps each one's peak (VmHWM)."""

    def __init__(self):
        super().__init__()
        self.peaks: dict[int, float] = {}

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            pid = int(entry.name)
            if b"RayTrainWorker" in cmd and _descends_from(pid, os.getpid()):  # not others' Ray
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), vm_peak_gib(pid))


def train(prep, workers: int, epochs: int, name: str) -> dict:
    """One Ray Train fit of `prep`'s config with `workers` workers; its figures and final state."""
    from gen_factory import settings
    from gen_factory.train.distributed import fit

    config = {**prep.config, "epochs": epochs, "encoder_epochs": 0, "report_every": 1, "patience": None}
    started = time.perf_counter()
    with WorkerPeaks() as peaks:
        state = fit(config, name, workers, 0.0, settings.ray_storage(), max_failures=0)
    rows = len(prep.train.labels)
    gan_s = state["seconds"]["gan"]
    return {"state": state, "wall_s": time.perf_counter() - started, "epoch_s": gan_s / epochs,
            "rows_per_s_per_worker": rows * epochs / gan_s / workers, "rows_per_s": rows * epochs / gan_s,
            "worker_rss_gib": sorted(peaks.peaks.values(), reverse=True)[:workers]}


def synthesize(prep, state: dict, rows: int, seed: int = 0):
    """`rows` generated rows (labels at their training shares, no condition) as the user's frame."""
    import torch

    from gen_factory.data.datasets import frame_from_codes
    from gen_factory.data.table_transformer import sampling_uniforms
    from gen_factory.models import build_models

    g, _ = build_models(prep.spec)
    g.load_state_dict(state["trainer"]["generator_ema"])
    g.eval()
    train = prep.train
    rng = torch.Generator().manual_seed(seed)
    shares = np.bincount(train.labels, minlength=len(train.label_names)) / len(train.labels)
    labels = torch.from_numpy(np.random.default_rng(seed).choice(len(shares), rows, p=shares))
    decoder = prep.encoding.decoder()
    out = []
    with torch.no_grad():
        for at in range(0, rows, 10_000):
            y = labels[at:at + 10_000]
            e = g(torch.randn(len(y), prep.spec.noise_dim, generator=rng), y)
            u = torch.rand(len(y), sampling_uniforms(prep.encoding.columns), generator=rng)
            out.append(decoder(e, u).numpy())
    return frame_from_codes(np.concatenate(out), labels.numpy(), train.columns, train.categories,
                            train.label_names, train.label_column)


def evaluate(prep, state: dict, seed: int = 0) -> dict:
    from gen_factory.evaluate.quality import column_kinds, quality_report
    from gen_factory.evaluate.utility import tstr

    rng = np.random.default_rng(seed)
    n = min(SAMPLE, len(prep.holdout.labels))
    real = prep.train.subset(np.sort(rng.choice(len(prep.train.labels), n, replace=False))).frame()
    held = prep.holdout.subset(np.sort(rng.choice(len(prep.holdout.labels), n, replace=False))).frame()
    synth = synthesize(prep, state, n, seed)
    kinds = column_kinds(real, set(prep.train.categories) | {LABEL})
    cats = {c for c, k in kinds.items() if k == "categorical"}
    started = time.perf_counter()
    quality = quality_report(real, synth, cats)
    return {"quality": quality["quality"], "tstr": tstr(synth, held, LABEL, cats, seed),
            "trtr": tstr(real, held, LABEL, cats, seed), "eval_s": time.perf_counter() - started,
            "synth_fraud_share": float((synth[LABEL] == "fraud").mean())}


SDV_SCRIPT = r'''
import json, sys, time
import pandas as pd
t0 = time.perf_counter()
def say(**kw):
    print(json.dumps({"t": round(time.perf_counter() - t0, 1), **kw}), flush=True)
from sdv.metadata import Metadata
from sdv.single_table import CTGANSynthesizer
df = pd.read_csv(sys.argv[1], nrows=int(sys.argv[2]))
say(phase="read", rows=len(df))
meta = Metadata.detect_from_dataframes({"table": df})
meta.update_column("outcome", table_name="table", sdtype="categorical")
for c in df.columns:
    if c == "merchant" or c.startswith("cat_"):
        meta.update_column(c, table_name="table", sdtype="categorical")
say(phase="metadata")
model = CTGANSynthesizer(meta, epochs=int(sys.argv[3]), verbose=True)
model.fit({"table": df})
say(phase="fit done", epochs=int(sys.argv[3]))
'''


def sdv_attempt(table: str, rows: int, epochs: int, cap_s: int, cap_gib: float) -> dict:
    """SDV CTGAN (defaults but `epochs`) on `rows` rows of the table in .venv-bench, killed at `cap_s`
    seconds or `cap_gib` GiB resident; its phases with their times, peak RSS and how it ended."""
    python = ROOT / ".venv-bench" / "bin" / "python"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(SDV_SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(python), fh.name, table, str(rows), str(epochs)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    started, peak, ended = time.perf_counter(), 0.0, "finished"
    while proc.poll() is None:
        peak = max(peak, tree_rss_gib(proc.pid))
        if peak > cap_gib:
            ended = f"killed at {cap_gib} GiB resident"
        elif time.perf_counter() - started > cap_s:
            ended = f"killed at the {cap_s} s cap"
        else:
            time.sleep(0.5)
            continue
        proc.kill()
        break
    proc.wait()
    reader.join(timeout=5)
    phases = [json.loads(x) for x in lines if x.startswith("{")]
    if proc.returncode not in (0, None) and ended == "finished":
        ended = f"failed (exit {proc.returncode}): {(lines or [''])[-1].strip()[:200]}"
    progress = [x.strip()[-160:] for x in "".join(lines).replace("\r", "\n").splitlines() if "Gen." in x]
    return {"rows": rows, "epochs": epochs, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_gib": round(peak, 2), "ended": ended, "phases": phases, "last_progress": progress[-1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default="/tmp/gf_million/million.parquet")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the table to make if absent")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--scaling-table", help="measure 1 -> 2 workers on this table (default: --table)")
    parser.add_argument("--no-sdv", action="store_true")
    parser.add_argument("--sdv-only", action="store_true", help="only the SDV CTGAN attempts")
    parser.add_argument("--state", help="a fit's state.pt (its final checkpoint): evaluate it, train nothing")
    parser.add_argument("--sdv-cap-s", type=int, default=900)
    parser.add_argument("--sdv-cap-gib", type=float, default=10.0)
    parser.add_argument("--sdv-fallback-rows", type=int, default=50_000)
    args = parser.parse_args()
    temp_home("gf-million-")
    table = Path(args.table)
    if not table.exists():
        from million_table import write

        write(table, args.rows)
    print(header("million-row table"), flush=True)
    print(f"load before: {os.getloadavg()}", flush=True)
    if args.sdv_only:
        return sdv_results(args, str(table), pq_rows(table))
    import ray

    from gen_factory.services.pipeline import TrainJob, prepare

    started = time.perf_counter()
    prep = prepare(TrainJob(str(table), label_column=LABEL, batch_size=args.batch_size, num_workers=2,
                            epochs=args.epochs, refit=False))
    prepare_s, prepare_rss = time.perf_counter() - started, vm_peak_gib()
    rows, cols = len(prep.data.labels), len(prep.data.columns) + 1
    print(f"prepare: {prepare_s:.0f} s, driver peak {prepare_rss:.2f} GiB; {rows} rows x {cols} columns, "
          f"encoded width {prep.encoding.width}, folded {prep.data.folded}", flush=True)
    if args.state:  # a finished fit's final checkpoint: quality and TSTR only
        import glob

        import torch

        while not glob.glob(args.state):  # a glob: waits for a running fit's checkpoint
            time.sleep(5)
        time.sleep(10)  # Ray writes the checkpoint folder before the driver's copy is complete
        path = sorted(glob.glob(args.state))[-1]
        print(f"evaluating {path}", flush=True)
        quality = evaluate(prep, torch.load(path, weights_only=True, map_location="cpu"))
        print(f"quality {quality['quality']:.3f}, TSTR {quality['tstr']}, TRTR {quality['trtr']}, "
              f"synthetic fraud share {quality['synth_fraud_share']:.4f} ({quality['eval_s']:.0f} s); "
              f"load {os.getloadavg()}", flush=True)
        print(f"RESULT million_quality rows={rows} sample={SAMPLE} quality={quality['quality']:.3f} "
              f"tstr_f1={quality['tstr']['macro_f1']:.3f} trtr_f1={quality['trtr']['macro_f1']:.3f} "
              f"tstr_accuracy={quality['tstr']['accuracy']:.4f}")
        return None
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
    two = train(prep, 2, args.epochs, f"million-2w-{int(time.time())}")
    driver_rss = vm_peak_gib()
    print(f"2 workers: epoch {two['epoch_s']:.0f} s, {two['rows_per_s_per_worker']:.0f} rows/s per worker, "
          f"worker peaks {two['worker_rss_gib']} GiB, driver peak {driver_rss:.2f} GiB, "
          f"fit wall {two['wall_s']:.0f} s; load {os.getloadavg()}", flush=True)
    scaling = float("nan")
    if not args.no_scaling:  # the same epoch on 1 and 2 workers (of --scaling-table: the same columns)
        small = prep if args.scaling_table is None else prepare(
            TrainJob(args.scaling_table, label_column=LABEL, batch_size=args.batch_size, num_workers=2,
                     epochs=args.epochs, refit=False))
        pair = two if small is prep else train(small, 2, args.epochs, f"million-s2w-{int(time.time())}")
        one = train(small, 1, args.epochs, f"million-1w-{int(time.time())}")
        scaling = pair["rows_per_s"] / one["rows_per_s"]
        print(f"scaling on {len(small.data.labels)} rows: 2 workers {pair['rows_per_s']:.0f} rows/s "
              f"(epoch {pair['epoch_s']:.0f} s), 1 worker {one['rows_per_s']:.0f} rows/s (epoch "
              f"{one['epoch_s']:.0f} s, peak {one['worker_rss_gib']} GiB): {scaling:.2f}x; "
              f"load {os.getloadavg()}", flush=True)
        del small
    ray.shutdown()
    quality = evaluate(prep, two["state"])
    print(f"quality {quality['quality']:.3f}, TSTR {quality['tstr']}, TRTR {quality['trtr']}, "
          f"synthetic fraud share {quality['synth_fraud_share']:.4f} ({quality['eval_s']:.0f} s)", flush=True)
    eval_rss = vm_peak_gib()  # the driver's peak with the evaluation on 50k-row samples too
    print(f"driver peak after the evaluation: {eval_rss:.2f} GiB; load after: {os.getloadavg()}", flush=True)
    print(f"RESULT million rows={rows} cols={cols} workers=2 worker_rss_gib={max(two['worker_rss_gib']):.2f} "
          f"driver_rss_gib={driver_rss:.2f} rows_per_s_per_worker={two['rows_per_s_per_worker']:.0f} "
          f"epoch_s={two['epoch_s']:.0f} epochs={args.epochs} quality={quality['quality']:.3f} "
          f"tstr_f1={quality['tstr']['macro_f1']:.3f} trtr_f1={quality['trtr']['macro_f1']:.3f} "
          f"scaling_1to2={scaling:.2f} driver_eval_rss_gib={eval_rss:.2f}")
    if not args.no_sdv:
        del prep
        sdv_results(args, str(table), rows)


def pq_rows(table: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(table).metadata.num_rows


def as_csv(table: str) -> str:
    """The table as CSV beside it (the SDV venv has no Parquet reader), row group by row group."""
    import pyarrow.csv
    import pyarrow.parquet as pq

    out = str(Path(table).with_suffix(".csv"))
    if not Path(out).exists():
        file = pq.ParquetFile(table)
        with pyarrow.csv.CSVWriter(out + ".part", file.schema_arrow) as writer:
            for group in range(file.num_row_groups):
                writer.write_table(file.read_row_group(group))
        os.replace(out + ".part", out)
    return out


def sdv_results(args, table: str, rows: int) -> None:
    """SDV CTGAN on every row, and on `--sdv-fallback-rows` rows if that did not finish."""
    table = as_csv(table)
    attempts = [sdv_attempt(table, rows, 1, args.sdv_cap_s, args.sdv_cap_gib)]
    print(f"SDV CTGAN: {json.dumps(attempts[-1])}", flush=True)
    if attempts[-1]["ended"] != "finished" and args.sdv_fallback_rows < rows:
        attempts.append(sdv_attempt(table, args.sdv_fallback_rows, 1, args.sdv_cap_s, args.sdv_cap_gib))
        print(f"SDV CTGAN: {json.dumps(attempts[-1])}", flush=True)
    print(f"load after SDV: {os.getloadavg()}", flush=True)
    for attempt in attempts:
        print(f"RESULT million_sdv rows={attempt['rows']} epochs={attempt['epochs']} "
              f"seconds={attempt['seconds']} peak_rss_gib={attempt['peak_rss_gib']} "
              f"ended=\"{attempt['ended']}\"")


if __name__ == "__main__":
    main()
