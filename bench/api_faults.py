"""What the served API survives: replica kills under load, the registry going away, and its memory
across a mixed and hostile request stream.

1. Memory: RSS of every Serve process (proxy, controller, replicas) after a warm-up, then after
   `--memory-requests` mixed requests - generate and score of every size the contract admits, plus
   oversized bodies (413), binary bodies and schema violations (422) - growth in %.
2. Faults: `--clients` threads call the API for `--seconds` through `gen_factory.client` (the
   retrying client every CLI command uses); a third of the way in, one replica is SIGKILLed: the
   API replica with small requests (they run on the ingress), then a runner replica with requests
   above the ingress's 2,048 rows (they run on the runner). Success % per call and the longest
   stretch with no successful answer at all.
3. Registry down: another process holds an exclusive lock on the SQLite store, so every registry
   read fails; the loaded model is still served, an unknown name gets 503 naming the registry.
   (Moving the file away is no outage: SQLite keeps reading the open file.)

Run: `python bench/api_faults.py` (about 4 min here). Traffic goes to 127.0.0.1 only; every loop
is bounded by its request count or its seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from common import header, registered, temp_home


def serve_pids(kind: str | None = None) -> dict[int, str]:
    """{pid: class name} of the live Serve actors (one deployment's replicas when `kind` is given)."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return {a.pid: a.class_name for a in actors
            if (a.class_name.startswith("ServeReplica") or a.class_name in ("ProxyActor", "ServeController"))
            and (kind is None or a.class_name.endswith(f":{kind}"))}


def rss_mib(pids) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return total / 1024


def memory_run(url: str, ref: str, rows: np.ndarray, n: int, headers: dict) -> tuple[float, float]:
    """(warm RSS MiB, RSS MiB after n mixed requests, many of them hostile)."""
    from gen_factory import client

    big_rows = np.tile(rows, (2_200 // len(rows) + 1, 1))[:2_200].tolist()  # above the ingress limit
    oversized = b"[" + b"1.0," * (9 * 2**20) + b"1.0]"  # 36 MiB: over the 32 MiB cap
    score_url = f"{url}/v1/models/{ref}/score"
    calls = [
        lambda: client.score(url, ref, rows=rows[:16].tolist()),
        lambda: client.score(url, ref, rows=big_rows),
        lambda: client.generate(url, ref, rows_per_label=50),
        lambda: client.generate(url, ref, rows_per_label=20_000),
        lambda: requests.post(
            score_url, data=oversized, headers={**headers, "content-type": "application/json"}
        ),
        lambda: requests.post(score_url, data=b"PAR1" + os.urandom(4096), headers=headers),
        lambda: requests.post(score_url, json={"rows": [[1.0, 2.0]] * 5000}, headers=headers),
        lambda: requests.post(
            f"{url}/v1/models/{ref}/generate", json={"rows_per_label": 10**9}, headers=headers
        ),
    ]
    for call in calls * 5:  # warm: every path has run, every buffer exists
        _quietly(call)
    warm = rss_mib(serve_pids())
    for i in range(n):
        _quietly(calls[i % len(calls)])
    return warm, rss_mib(serve_pids())


def _quietly(call) -> None:
    from gen_factory.client import ApiError

    try:
        call()
    except ApiError:
        pass  # a refused request (4xx) is the expected answer to a hostile one


def fault_run(url: str, ref: str, rows: list, kind: str, big: bool, seconds: float, clients: int) -> dict:
    """Load for `seconds`, SIGKILL one `kind` replica at a third of it; success and gaps per call."""
    from gen_factory import client

    rows_per_label = 1_100 if big else 10  # 2 labels: 2,200 rows go to the runner, 20 stay on the ingress
    score_rows = rows * (2_100 // len(rows) + 1) if big else rows
    calls = {"generate": lambda: client.generate(url, ref, rows_per_label=rows_per_label, seed=1),
             "score": lambda: client.score(url, ref, rows=score_rows[:2_100] if big else score_rows)}
    outcomes: list[tuple[str, float, bool]] = []
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds

    def worker(i: int) -> None:
        what = "generate" if i % 2 == 0 else "score"
        while time.monotonic() < end:
            try:
                calls[what]()
                ok = True
            except Exception:  # noqa: BLE001 - any failure the client gives up on counts as one
                ok = False
            with lock:
                outcomes.append((what, time.monotonic(), ok))

    victim = next(iter(serve_pids(kind)))

    def kill() -> None:
        time.sleep(seconds / 3)
        os.kill(victim, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    done = sorted(t for _, t, ok in outcomes if ok)
    gaps = np.diff([start, *done, max(end, done[-1] if done else end)])
    result = {"kind": kind, "killed_pid": victim, "max_gap_s": float(gaps.max())}
    for what in calls:
        mine = [ok for w, _, ok in outcomes if w == what]
        result[f"{what}_requests"] = len(mine)
        result[f"{what}_success_pct"] = 100.0 * sum(mine) / max(len(mine), 1)
    return result


def registry_down(url: str, ref: str, rows: list, headers: dict) -> tuple[bool, int, str, float]:
    """(loaded model still served, status for an unknown name, its detail, slowest answer in s) while
    another process holds an exclusive lock on the SQLite store: every registry read fails."""
    import sqlite3

    from gen_factory import client, settings

    holder = sqlite3.connect(
        settings.tracking_uri().removeprefix("sqlite:///"), timeout=1, isolation_level=None
    )
    holder.execute("BEGIN EXCLUSIVE")
    try:
        time.sleep(settings.alias_ttl_s() + 1)  # past the resolver's TTL: it must ask the registry again
        slowest, served = 0.0, True
        for _ in range(10):
            t = time.monotonic()
            served &= len(client.score(url, ref, rows=rows, timeout=60, retry_s=0)["scores"]) == len(rows)
            slowest = max(slowest, time.monotonic() - t)
        unknown = requests.post(
            f"{url}/v1/models/never-registered/score", json={"rows": rows}, headers=headers, timeout=60
        )
        return served, unknown.status_code, unknown.json().get("detail", "")[:200], slowest
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="load per fault run (default: 30)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--memory-requests", type=int, default=1_000, help="mixed requests of the memory run")
    args = parser.parse_args()
    temp_home("gf-bench-faults-")
    os.environ.setdefault("GENFACTORY_API_TOKEN", "bench-token")
    from gen_factory.data import load_dataset
    from serving.app import start, stop

    ref = registered("breast_cancer", "bench-faults", epochs=5)
    rows = load_dataset("breast_cancer").features[:16]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = start(port=port)
    headers = {"Authorization": f"Bearer {os.environ['GENFACTORY_API_TOKEN']}"}
    print(header("API under faults (bench/api_faults.py)"))
    try:
        t0 = time.monotonic()
        warm, after = memory_run(url, ref, rows, args.memory_requests, headers)
        growth = 100.0 * (after - warm) / warm
        print(
            f"memory: Serve processes {warm:.0f} MiB warm, {after:.0f} MiB after {args.memory_requests} "
            "mixed "
            f"requests ({growth:+.1f} %), {time.monotonic() - t0:.0f} s"
        )
        runs = [fault_run(url, ref, rows.tolist(), kind, big, args.seconds, args.clients)
                for kind, big in (("GenFactoryAPI", False), ("ModelRunner", True))]
        for r in runs:
            print(
                f"SIGKILL {r['kind']} (pid {r['killed_pid']}) under {args.clients} clients for "
                f"{args.seconds:.0f} s: "
                f"generate {r['generate_success_pct']:.2f} % of {r['generate_requests']}, score "
                f"{r['score_success_pct']:.2f} % of {r['score_requests']}, longest gap {r['max_gap_s']:.2f} s"
            )
        served, status, detail, slowest = registry_down(url, ref, rows.tolist(), headers)
        print(f"registry locked by another process: loaded model served={served} (slowest of 10 answers "
              f"{slowest:.2f} s); unknown name -> HTTP {status}: {detail}")
    finally:
        stop()
    print(f"RESULT api_faults serve_success_pct={min(r['generate_success_pct'] for r in runs):.2f} "
          f"max_gap_s={max(r['max_gap_s'] for r in runs):.2f} "
          f"score_success_pct={min(r['score_success_pct'] for r in runs):.2f} "
          f"mlflow_down_served={int(served and status == 503)}")
    print(f"RESULT serve_memory requests={args.memory_requests} rss_growth_pct={growth:.1f}")


if __name__ == "__main__":
    main()
