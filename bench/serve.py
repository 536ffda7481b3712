"""HTTP serving latency vs in-process ONNX Runtime on the same work.

`/generate` of 1,000 rows and `/score` of 16 rows of breast_cancer, at 1, 4 and 16 concurrent
clients (bounded: `--requests` per level), through the Serve proxy and, with `--direct`, straight
to an API replica (Serve direct ingress, `serving.app.direct_url`; off by default since the API
runs two replicas behind the proxy for availability), against the same calls made in-process
on one ONNX Runtime session. Prints p50/p99 latency (ms) and requests/s; the goal is <= 3 ms p50
overhead. Run: `python bench/serve.py`. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
from common import header, registered, temp_home


def timed(fn, n: int, clients: int) -> tuple[np.ndarray, float]:
    """Latencies (s) of n calls spread over `clients` threads, and the wall time of all of them."""
    def one(_):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = np.array(list(pool.map(one, range(n))))
    return lat, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--direct", action="store_true", help="also time Serve's direct ingress route")
    args = parser.parse_args()
    if args.direct:
        os.environ["GENFACTORY_DIRECT_INGRESS"] = "1"
    temp_home("gf-bench-serve-")
    from gen_factory import registry
    from gen_factory.data import load_dataset
    from gen_factory.runtime import sampling, scoring
    from gen_factory.runtime.onnx_model import OnnxModel
    from serving.app import direct_url, start

    ref = registered("breast_cancer", "bench-serve", epochs=5)
    model = OnnxModel(registry.download(registry.resolve(ref)))
    rows = load_dataset("breast_cancer").features[:16]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    routes = {"proxy": start(port=port)}
    routes["direct"] = direct_url()
    session = requests.Session()
    gen_body, score_body = {"rows_per_label": 500, "seed": 1}, {"rows": rows.tolist()}

    def http(url: str, what: str, body: dict):
        def call():
            assert session.post(f"{url}/v1/models/{ref}/{what}", json=body, timeout=60).status_code == 200
        return call

    def local_generate():
        sampling.to_parquet_bytes(
            sampling.generate_table(model, sampling.resolve_counts(model.label_names, rows_per_label=500), 1)
        )

    def local_score():
        scoring.score(model, scoring.rows_to_array(model, rows.tolist()))

    calls = {(what, route): http(url, what, body) for route, url in routes.items() if url
             for what, body in (("generate", gen_body), ("score", score_body))}
    for fn in (*calls.values(), local_generate, local_score):  # warm up: models loaded, caches hot
        timed(fn, 10, 1)
    print(header("serving latency (bench/serve.py)"))
    print(f"{'call':<30}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'p50 overhead ms':>17}")
    for name, what, local in (
        ("generate 1k rows", "generate", local_generate),
        ("score 16 rows", "score", local_score),
    ):
        base, _ = timed(local, args.requests, 1)
        print(f"{name + ' in-process':<30}{1:>8}{np.percentile(base, 50) * 1e3:>9.2f}"
              f"{np.percentile(base, 99) * 1e3:>9.2f}{1 / base.mean():>9.0f}")
        for route in routes:
            for clients in (1, 4, 16) if (what, route) in calls else ():
                lat, wall = timed(calls[what, route], args.requests, clients)
                print(f"{f'{name} HTTP {route}':<30}{clients:>8}{np.percentile(lat, 50) * 1e3:>9.2f}"
                      f"{np.percentile(lat, 99) * 1e3:>9.2f}{args.requests / wall:>9.0f}"
                      f"{(np.percentile(lat, 50) - np.percentile(base, 50)) * 1e3:>17.2f}")


if __name__ == "__main__":
    main()
