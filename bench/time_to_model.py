"""Time-to-model: `genfactory train <table>` as a user runs it, cold (a new process and a fresh data
directory: its own local Ray, a new MLflow store), wall clock from the command to the registered
@champion, beside SDV CTGAN's `fit` on the same rows (its own venv, defaults), and where our time
goes (the phases `train --json` reports: Ray start, each fit's Ray Train run and, inside it, the GAN
and encoder epochs, export, evaluation, calibration, registration).

    python bench/time_to_model.py [--tables breast_cancer customers ...] [--no-sdv] [--no-floor]

The floor (a control): the same cold command with 1 GAN epoch, 1 encoder epoch and no refit, what the
Ray Train path costs before any real training (process start and imports, Ray start, the worker group,
export, evaluation, registration). Where the floor alone exceeds SDV's fit, no epoch budget can meet
the bar on that table; `model_s` = train_s - floor_s is the time the training itself adds.

Ends with one line per table:
`RESULT time_to_model table=T train_s=X sdv_fit_s=X quality=X floor_s=X model_s=X`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import header

ROOT = Path(__file__).resolve().parents[1]
GENFACTORY = ROOT / ".venv" / "bin" / "genfactory"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


FLOOR = ("--epochs", "1", "--encoder-epochs", "1", "--no-refit")


def train_cold(table: str, *extra: str) -> tuple[float, dict]:
    """(wall seconds, the `train --json` document) for one cold `genfactory train` (`extra` arguments)."""
    with tempfile.TemporaryDirectory(prefix="ttm-") as home:
        env = {**os.environ, "GENFACTORY_HOME": home, "GENFACTORY_PROGRESS": "off"}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("RAY_ADDRESS", None)
        started = time.perf_counter()
        done = subprocess.run([str(GENFACTORY), "train", table, "--name", f"ttm-{table}", "--json", *extra],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"genfactory train {table} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout)


def sdv_fit_seconds(table: str) -> float | None:
    """SDV CTGAN's fit on the rows `genfactory train` is given; None without the bench venv."""
    from gen_factory.data.datasets import bundled_frame

    if not BENCH_PYTHON.exists():
        print(f"  (no {BENCH_PYTHON}: `make bench-venv` for the SDV column)", file=sys.stderr)
        return None
    frame, label, _ = bundled_frame(table)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "train.csv"
        frame.to_csv(csv, index=False)
        runner = [str(BENCH_PYTHON), str(ROOT / "bench" / "sdv_fit_time.py"), str(csv), label, "0"]
        done = subprocess.run(runner, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["fit_seconds"]


def phase_table(phases: dict[str, float]) -> str:
    return "  ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())


def main() -> None:
    from gen_factory.data.datasets import BUNDLED_TABLES

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(BUNDLED_TABLES))
    parser.add_argument("--no-sdv", action="store_true", help="skip SDV CTGAN's fit (no .venv-bench)")
    parser.add_argument("--no-floor", action="store_true", help="skip the 1-epoch control run")
    args = parser.parse_args()
    print(header("time to model"))
    print(f"load before: {os.getloadavg()[0]:.2f}")
    results = []
    for table in args.tables:
        wall, summary = train_cold(table)
        sdv = None if args.no_sdv else sdv_fit_seconds(table)
        quality = summary["metrics"].get("quality", float("nan"))
        print(f"{table}: train {wall:.1f}s (in-process {summary['seconds']:.1f}s), "
              f"SDV CTGAN fit {'-' if sdv is None else f'{sdv:.1f}s'}, quality {quality:.3f}")
        print(f"  phases (s): {phase_table(summary['phases'])}")
        floor = float("nan")
        if not args.no_floor:
            floor, bare = train_cold(table, *FLOOR)
            print(f"  floor {floor:.1f}s (1 + 1 epochs, no refit); phases (s): {phase_table(bare['phases'])}")
        results.append((table, wall, sdv, quality, floor))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    for table, wall, sdv, quality, floor in results:
        print(f"RESULT time_to_model table={table} train_s={wall:.1f} "
              f"sdv_fit_s={'nan' if sdv is None else f'{sdv:.1f}'} quality={quality:.3f} "
              f"floor_s={floor:.1f} model_s={wall - floor:.1f}")


if __name__ == "__main__":
    main()
