"""Bulk generation throughput and memory: 1M and 10M breast_cancer rows, 1 and 2 workers.

Prints rows/s, peak RSS per process (driver and the largest Ray actor), the generator's
FLOP-bound rate from a measured single-core matmul peak, and SDV CTGAN's sampling rate on this
machine (29k rows/s, GUIDE §2) for comparison. Run: `python bench/bulk.py [--rows 1000000 10000000]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import Sampler, header, registered, temp_home

SDV_CTGAN_ROWS_PER_S = 29_000  # GUIDE §2, measured on this kind of machine


def matmul_peak_flops(threads: int = 1, n: int = 512, seconds: float = 2.0, clock=time.perf_counter) -> float:
    """float32 GEMM FLOP/s on `threads` cores, as ONNX Runtime's MLAS would get at best. `clock`
    time.process_time gives FLOP/s per CPU second: on a shared machine the process is descheduled,
    and CPU time leaves that out of both rate and bound (bench/bulk_lowp.py)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    done, start = 0, clock()
    while clock() - start < seconds:
        a @ b
        done += 1
    return 2 * n**3 * done / (clock() - start)


def generator_flops_per_row(bundle: Path) -> float:
    """2 * (multiply-adds) of the exported generator's Gemm/MatMul nodes, per row."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(bundle / "model.onnx")).graph
    weights = {t.name: numpy_helper.to_array(t).shape for t in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type in ("Gemm", "MatMul"):
            shape = next((weights[i] for i in node.input[1:2] if i in weights), None)
            if shape:
                total += 2 * int(np.prod(shape))
    return float(total)


def _rss(pid: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def _ray_worker_pids() -> list[str]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read().startswith(b"ray::"):
                    pids.append(pid)
        except OSError:
            pass
    return pids


class PeakRSS(Sampler):
    """Samples RSS (from /proc) of this process and of every Ray worker process while generation runs."""

    every = 0.2

    def __init__(self):
        super().__init__()
        self.driver = self.actor = 0

    def sample(self) -> None:
        self.driver = max(self.driver, _rss("self"))
        for pid in _ray_worker_pids():
            try:
                self.actor = max(self.actor, _rss(pid))
            except (OSError, StopIteration):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    temp_home("gf-bench-bulk-")
    from gen_factory import registry
    from gen_factory.services import bulk

    ref = registered("breast_cancer", "bench-bulk", epochs=5)
    bundle = registry.download(registry.resolve(ref))
    per_row = generator_flops_per_row(bundle)
    peak1 = matmul_peak_flops(1)
    out_root = Path(tempfile.mkdtemp(prefix="gf-bulk-out-"))
    bulk.generate_dataset(ref, out_root / "warmup", rows=20_000, workers=2)  # start Ray, load models once
    print(header("bulk generation (bench/bulk.py)"))
    print(
        f"generator: {per_row / 1e3:.1f} kFLOP/row; measured matmul peak {peak1 / 1e9:.1f} GFLOP/s per core"
    )
    print(f"{'rows':>12} {'workers':>8} {'seconds':>8} {'rows/s':>12} {'x SDV':>7} {'% FLOP bound':>13} "
          f"{'peak RSS driver':>16} {'peak RSS actor':>15}")
    for rows in args.rows:
        for workers in args.workers:
            out = out_root / f"{rows}-{workers}"
            with PeakRSS() as rss:
                start = time.perf_counter()
                manifest = bulk.generate_dataset(ref, out, rows=rows, seed=0, workers=workers)
                seconds = time.perf_counter() - start
            rate = manifest["rows"] / seconds
            bound = peak1 * workers / per_row
            print(
                f"{rows:>12,} {workers:>8} {seconds:>8.1f} {rate:>12,.0f} "
                f"{rate / SDV_CTGAN_ROWS_PER_S:>7.1f} "
                f"{100 * rate / bound:>12.0f}% {rss.driver / 2**20:>13.0f} MiB {rss.actor / 2**20:>12.0f} MiB"
            )
            shutil.rmtree(out)
    shutil.rmtree(out_root, ignore_errors=True)


if __name__ == "__main__":
    main()
