"""Fault injection for training and registration, plus the bulk faults of bench/faults_bulk.py: one
command, real engines (Ray Train, MLflow on SQLite, real `genfactory train` processes, SIGKILL).

1. Train workers: a 2-worker `train` whose RayTrainWorker processes are SIGKILLed at about a third
   and again at about two thirds of the run. It must finish; each restart redoes at most one
   checkpoint interval of epochs; its quality is printed beside an unkilled run with the same seed.
2. The driver: `python -m gen_factory.cli train` SIGKILLed mid-training, then the same command
   again: it resumes from the latest checkpoint, marks the killed attempt's MLflow run KILLED
   (none is left RUNNING) and registers exactly one version; no Ray process of the killed attempt
   (found by an env marker in /proc) outlives it: most go at once, Ray's two agents within a
   minute. Then a driver killed after its last epoch (during export or registration) and retried:
   still exactly one version.
3. The finished run's command once more: no new version.
4. Two trainings of one run name started together, in a fresh and in an existing data directory:
   the second is refused, naming the run.
5. Bulk output (bench/faults_bulk.py's trials): SIGKILLed `generate`, rerun identical, two racing.

Run: `python bench/faults.py` (about 8 minutes on 2 cores, a minute of it waiting for Ray's agents).
Ends with one RESULT line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import header

EPOCH = re.compile(r"\bepoch (\d+)/(\d+)")
RESUMED = re.compile(r"resuming from the checkpoint of epoch (\d+)")
QUALITY = re.compile(r"quality: quality=([0-9.]+)")


class Train:
    """A `genfactory train` subprocess whose output is read line by line, marked in its environment."""

    def __init__(self, home: Path, name: str, epochs: int, encoder_epochs: int, workers: int = 2):
        self.marker = uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
        env.update(GENFACTORY_HOME=str(home), GF_FAULT_MARK=self.marker, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-m", "gen_factory.cli", "train", "breast_cancer", "--name", name,
                   "--epochs", str(epochs), "--encoder-epochs", str(encoder_epochs),
                   "--workers", str(workers), "--seed", "0"]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []

    def until(self, predicate) -> str | None:
        """Read lines until one satisfies `predicate` (returned) or the output ends (None)."""
        for line in self.proc.stdout:
            self.lines.append(line)
            if predicate(line):
                return line
        return None

    def finish(self) -> int:
        self.until(lambda _: False)
        return self.proc.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def text(self) -> str:
        return "".join(self.lines)


def marked(marker: str) -> list[tuple[int, str]]:
    """(pid, command) of every live process whose environment carries GF_FAULT_MARK=`marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if f"GF_FAULT_MARK={marker}".encode() not in fh.read():
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                found.append((int(entry), fh.read().replace(b"\0", b" ").decode(errors="replace")[:60]))
        except OSError:
            continue
    return found


def gan_epoch(line: str) -> int | None:
    """The GAN epoch a worker's progress line reports (None for any other line)."""
    m = EPOCH.search(line)
    return int(m.group(1)) if m and "encoder" not in line else None


def epoch_at_least(n: int):
    return lambda line: (gan_epoch(line) or 0) >= n


def kill_a_worker(run: Train, at_epoch: int) -> dict:
    """SIGKILL one RayTrainWorker of `run` once it reports `at_epoch`; read on to the resume."""
    run.until(epoch_at_least(at_epoch))
    workers = [pid for pid, cmd in marked(run.marker) if cmd.startswith("ray::RayTrainWorker")]
    os.kill(workers[0], signal.SIGKILL)
    before = len(run.lines)
    line = run.until(lambda text: RESUMED.search(text) is not None)
    trained = [e for text in run.lines[:len(run.lines) if line is None else -1] if (e := gan_epoch(text))]
    resumed_from = int(RESUMED.search(line).group(1)) if line else None
    return {"killed_pid": workers[0], "workers_seen": len(workers), "last_epoch": max(trained, default=0),
            "resumed_from": resumed_from, "lines_before": before}


def worker_kills(home: Path, epochs: int, encoder_epochs: int) -> dict:
    """Fault 1: two worker kills in one 2-worker run, and the same run unkilled for comparison."""
    reference = Train(home, "faults-unkilled", epochs, encoder_epochs)
    reference.finish()
    ref_quality = QUALITY.search(reference.text())
    run = Train(home, "faults-workers", epochs, encoder_epochs)
    kills = [kill_a_worker(run, epochs // 3)]
    kills.append(kill_a_worker(run, max(2 * epochs // 3, kills[0]["last_epoch"] + 2)))
    code = run.finish()
    quality = QUALITY.search(run.text())
    interval = max(1, round((epochs + encoder_epochs) / 50))  # pipeline.REPORTS_PER_RUN checkpoints per run
    return {"finished": code == 0 and quality is not None, "kills": kills, "interval": interval,
            "redone": max((k["last_epoch"] - (k["resumed_from"] or 0) for k in kills), default=0),
            "quality": float(quality.group(1)) if quality else float("nan"),
            "reference_quality": float(ref_quality.group(1)) if ref_quality else float("nan"),
            "tail": run.text()[-1500:] if code else ""}


def versions(home: Path, name: str) -> list[str]:
    code = (f"import json; from gen_factory import registry; print(json.dumps(sorted(str(v.version) for v in "
            f"registry.client().search_model_versions(\"name = '{name}'\"))))")
    return json.loads(_python(home, code))


def running_runs(home: Path) -> int:
    code = ("from gen_factory import registry; c = registry.client(); print(len(c.search_runs("
            "[registry.experiment_id()], filter_string=\"attributes.status = 'RUNNING'\")))")
    return int(_python(home, code))


def _python(home: Path, code: str) -> str:
    env = {**os.environ, "GENFACTORY_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def driver_kill(home: Path, name: str, epochs: int, encoder_epochs: int, after_training: bool) -> dict:
    """Fault 2: SIGKILL the driver mid-training (or after its last epoch), then run the same command."""
    first = Train(home, name, epochs, encoder_epochs)
    last = epochs + encoder_epochs
    done = (lambda line: f"epoch {last}/{last}" in line) if after_training else epoch_at_least(epochs // 2)
    first.until(done)
    alive_before = len(marked(first.marker))
    first.kill()
    # Ray's agents (DashboardAgent, RuntimeEnvAgent) notice their raylet is gone, then wait out a last
    # report to the dead GCS before exiting: about a minute here. Wait that out, up to 2 minutes.
    killed_at, lingering = time.monotonic(), []
    while (now := [command for _, command in marked(first.marker)]) and time.monotonic() < killed_at + 120:
        lingering = now
        time.sleep(1)
    gone_after = time.monotonic() - killed_at
    left = now
    ray_left = [command for command in left if "ray" in command.lower()]  # raylet, gcs_server, ray::...
    again = Train(home, name, epochs, encoder_epochs)
    code = again.finish()
    text = again.text()
    resumed = RESUMED.search(text)
    return {"alive_before": alive_before, "left_alive": len(ray_left), "left": left, "ok": code == 0,
            "gone_after": gone_after, "lingering": sorted({c.split()[0] for c in lingering}),
            "resumed_from": int(resumed.group(1)) if resumed else None,
            "marked_killed": "marked it KILLED" in text,
            "versions": len(versions(home, name)), "tail": text[-1500:] if code else ""}


def others(result: dict) -> str:
    """The killed driver's non-Ray descendants still alive (e.g. a scikit-learn pool), by command."""
    rest = [command for command in result["left"] if "ray" not in command.lower()]
    return ", ".join(rest) or "none"


def rerun_finished(home: Path, name: str, epochs: int, encoder_epochs: int) -> dict:
    """Fault 3: the finished run's command once more."""
    before = versions(home, name)
    started = time.monotonic()
    run = Train(home, name, epochs, encoder_epochs)
    code = run.finish()
    return {"ok": code == 0, "new_versions": len(versions(home, name)) - len(before),
            "said_finished": "is finished" in run.text(), "seconds": time.monotonic() - started}


def same_name_at_once(home: Path, name: str, epochs: int, encoder_epochs: int) -> dict:
    """Fault 4: two trainings of one run name started together; the loser must be refused, naming it."""
    runs = [Train(home, name, epochs, encoder_epochs, workers=1) for _ in range(2)]
    for run in runs:  # both read until training (the winner) or the end (the refused one)
        run.until(lambda line: EPOCH.search(line) is not None)
    codes = []
    for run in runs:
        if run.proc.poll() is None:
            run.kill()  # the winner: it has shown it trains; no need to wait for it
            codes.append("killed")
        else:
            codes.append(run.finish())
    refused = [run for run, code in zip(runs, codes, strict=True) if code not in ("killed", 0)]
    named = bool(refused) and f"run {name!r} is being trained by" in refused[0].text()
    return {"codes": codes, "refused": len(refused) == 1 and named}


def bulk(home: Path, ref: str, rows: int, block_rows: int, trials: int) -> dict:
    """Fault 5: bench/faults_bulk.py's kill and race trials against the model trained above."""
    import faults_bulk
    import ray

    from gen_factory.services import bulk as bulk_mod
    from gen_factory.services.cluster import ensure_ray

    os.environ["GENFACTORY_HOME"] = str(home)
    ensure_ray()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    root = Path(tempfile.mkdtemp(prefix="gf-faults-bulk-"))
    bulk_mod.generate_dataset(ref, root / "reference", rows=rows, block_rows=block_rows, seed=3, workers=1)
    rng = random.Random(0)
    results = [faults_bulk.kill_trial(ref, root / "out", rows, block_rows, env, root / "reference",
                                      rng.uniform(1.0, 4.0)) for _ in range(trials)]
    codes, named, seen = faults_bulk.race_trial(ref, root / "race", rows, block_rows, env)
    shutil.rmtree(root, ignore_errors=True)
    return {"trials": results, "partial_visible": any(r["seen"] == "BROKEN" for r in results),
            "identical": all(r["identical"] for r in results), "race": (codes, named, seen),
            "concurrent_safe": codes == [0, 1] and named and seen == "intact"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--encoder-epochs", type=int, default=15)  # 75 epochs: a checkpoint every 2
    parser.add_argument("--bulk-rows", type=int, default=60_000)
    parser.add_argument("--bulk-trials", type=int, default=2)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="gf-bench-faults-"))
    e, enc = args.epochs, args.encoder_epochs
    t0 = time.perf_counter()
    print(header("training and registration fault injection (bench/faults.py)"), flush=True)
    print(f"breast_cancer, {e} GAN + {enc} encoder epochs; data directory {home}", flush=True)

    def took(start: float) -> str:
        return f"{time.perf_counter() - start:.0f}s"

    s = time.perf_counter()
    wk = worker_kills(home, e, enc)
    for i, k in enumerate(wk["kills"], 1):
        print(f"worker kill {i}: SIGKILL pid {k['killed_pid']} after epoch {k['last_epoch']}; resumed from "
              f"the checkpoint of epoch {k['resumed_from']}: {k['last_epoch'] - (k['resumed_from'] or 0)} "
              f"epoch(s) redone (checkpoint interval {wk['interval']})", flush=True)
    print(f"worker kills: finished={wk['finished']} quality={wk['quality']:.3f} vs unkilled "
          f"{wk['reference_quality']:.3f} (same seed) [{took(s)}]" + wk["tail"], flush=True)

    kills = {}
    for run, after, when in (("faults-driver", False, "mid-training"),
                             ("faults-export", True, "after the last epoch (export/registration)")):
        s = time.perf_counter()
        d = kills[run] = driver_kill(home, run, e, enc, after_training=after)
        print(f"driver kill {when}: {d['alive_before']} marked processes before; {d['left_alive']} left "
              f"{d['gone_after']:.0f} s after (last to go: {', '.join(d['lingering']) or '-'}; non-Ray left: "
              f"{others(d)}); rerun ok={d['ok']} resumed from the checkpoint of epoch {d['resumed_from']}, "
              f"killed attempt marked KILLED={d['marked_killed']}, versions={d['versions']} [{took(s)}]"
              + d["tail"], flush=True)
    dk, dx = kills["faults-driver"], kills["faults-export"]
    stale = running_runs(home)
    print(f"MLflow runs left RUNNING: {stale}", flush=True)

    rr = rerun_finished(home, "faults-driver", e, enc)
    print(f"rerun of the finished run: ok={rr['ok']} said finished={rr['said_finished']} new versions="
          f"{rr['new_versions']} in {rr['seconds']:.0f}s", flush=True)

    s = time.perf_counter()
    fresh = same_name_at_once(Path(tempfile.mkdtemp(prefix="gf-bench-fresh-")), "faults-race", e, enc)
    existing = same_name_at_once(home, "faults-race", e, enc)
    print(f"same run name at once: fresh data directory exits {fresh['codes']} refused-and-named="
          f"{fresh['refused']}; existing one exits {existing['codes']} refused-and-named="
          f"{existing['refused']} [{took(s)}]", flush=True)

    s = time.perf_counter()
    bk = bulk(home, "faults-driver@champion", args.bulk_rows, 2_000, args.bulk_trials)
    for r in bk["trials"]:
        print(f"bulk generate killed after {r['delay']:.1f}s: reader sees {r['seen']}, rerun identical="
              f"{r['identical']}, left over {r['left']}", flush=True)
    print(f"bulk: two runs into one path exit {bk['race'][0]}, refusal names the path={bk['race'][1]}, "
          f"result {bk['race'][2]} [{took(s)}]", flush=True)

    extra = max(0, dk["versions"] - 1) + max(0, dx["versions"] - 1)
    print(f"total {took(t0)}")
    print("RESULT faults "
          f"worker_kill_finished={int(wk['finished'] and len(wk['kills']) >= 1)} "
          f"second_kill_finished={int(wk['finished'] and len(wk['kills']) == 2)} "
          f"epochs_redone={wk['redone']} checkpoint_interval={wk['interval']} "
          f"driver_resumed={int(dk['ok'] and dk['resumed_from'] is not None and dk['left_alive'] == 0)} "
          f"stale_running={stale} extra_versions={extra} rerun_new_version={int(rr['new_versions'] > 0)} "
          f"same_name_refused={int(fresh['refused'] and existing['refused'])} "
          f"bulk_partial_visible={int(bk['partial_visible'])} bulk_identical={int(bk['identical'])} "
          f"bulk_concurrent_safe={int(bk['concurrent_safe'])}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
