"""Fault injection for bulk output: `genfactory generate` runs SIGKILLed at random moments, and runs
started together into one path.

Each kill trial starts a real `python -m gen_factory.cli generate` (joined to this script's Ray),
kills it after a random delay, then checks what a reader sees at the output path (nothing, or an
intact dataset - never a part of one), that the hidden temporary is removed by the next run, and that
the rerun's files are byte-identical to an uninterrupted run's. The race trial starts two runs into
one path at once: exactly one may succeed, the other must exit 1 naming the path.
Run: `python bench/faults_bulk.py [--trials 8 --rows 200000]`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import header, registered, temp_home


def cli(ref: str, out: Path, rows: int, block_rows: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "gen_factory.cli", "generate", ref, "--out", str(out),
               "--rows", str(rows), "--block-rows", str(block_rows), "--seed", "3", "--workers", "1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def seen_at(out: Path) -> str:
    """What a reader of `out` finds: nothing, an intact dataset, or something broken (the failure)."""
    from gen_factory.services import bulk

    if not out.exists():
        return "nothing"
    return "intact" if bulk.check_dataset(out).ok else "BROKEN"


def kill_trial(ref, out, rows, block_rows, env, reference: Path, delay) -> dict:
    from gen_factory.services import bulk

    proc = cli(ref, out, rows, block_rows, env)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seen = seen_at(out)
    temporaries = len(list(out.parent.glob(f".{out.name}.tmp-*")))
    start = time.perf_counter()
    manifest = bulk.generate_dataset(ref, out, rows=rows, block_rows=block_rows, seed=3, workers=1,
                                     overwrite=seen == "intact")
    rerun_s = time.perf_counter() - start
    same = all((out / f["path"]).read_bytes() == (reference / f["path"]).read_bytes()
               for f in manifest["files"])
    same = same and sorted(p.relative_to(out) for p in out.rglob("*.parquet")) == sorted(
        p.relative_to(reference) for p in reference.rglob("*.parquet"))
    left = len(list(out.parent.glob(f".{out.name}.*")))
    shutil.rmtree(out)
    return {"delay": delay, "killed": proc.returncode == -signal.SIGKILL, "seen": seen,
            "temporaries": temporaries, "rerun_s": rerun_s, "identical": same, "left": left}


def race_trial(ref, out, rows, block_rows, env) -> tuple[list[int], bool, str]:
    procs = [cli(ref, out, rows, block_rows, env) for _ in range(2)]
    codes = sorted(p.wait() for p in procs)
    errors = " ".join(p.stderr.read() for p in procs)
    named = str(out) in errors
    seen = seen_at(out)
    shutil.rmtree(out, ignore_errors=True)
    return codes, named, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--block-rows", type=int, default=2_000)
    args = parser.parse_args()
    temp_home("gf-bench-faults-")
    import ray

    from gen_factory.services import bulk
    from gen_factory.services.cluster import ensure_ray

    ref = registered("breast_cancer", "bench-faults", epochs=2)
    ensure_ray()
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    root = Path(tempfile.mkdtemp(prefix="gf-faults-"))
    start = time.perf_counter()
    bulk.generate_dataset(ref, root / "reference", rows=args.rows, block_rows=args.block_rows, seed=3,
                          workers=1)
    full_s = time.perf_counter() - start
    print(header("bulk fault injection (bench/faults_bulk.py)"))
    print(f"{args.rows:,} rows in {args.rows // args.block_rows} files; an uninterrupted in-process run: "
          f"{full_s:.1f} s")
    print(f"{'kill after':>10} {'killed':>7} {'reader sees':>12} {'hidden tmp':>11} {'rerun s':>8} "
          f"{'identical':>10} {'left over':>10}")
    rng = random.Random(0)
    failures = 0
    for _ in range(args.trials):
        r = kill_trial(ref, root / "out", args.rows, args.block_rows, env, root / "reference",
                       rng.uniform(0.5, 8.0))
        failures += r["seen"] == "BROKEN" or not r["identical"] or r["left"] > 0
        print(f"{r['delay']:>9.1f}s {r['killed']!s:>7} {r['seen']:>12} {r['temporaries']:>11} "
              f"{r['rerun_s']:>8.1f} {r['identical']!s:>10} {r['left']:>10}")
    codes, named, seen = race_trial(ref, root / "race", args.rows, args.block_rows, env)
    failures += codes != [0, 1] or not named or seen != "intact"
    print(f"two runs started together: exit codes {codes}, refusal names the path: {named}, result: {seen}")
    print(f"{'OK' if not failures else f'{failures} FAILURES'}")
    shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
