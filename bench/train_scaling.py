"""Training throughput with 1 and 2 Ray Train workers on the same model (digits, 5 epochs).

Samples/s = training rows per epoch / median epoch time as measured on rank 0 (the time spent
in the epoch, DDP all-reduce included; Ray's start-up and checkpoint reporting excluded, and
shown separately as wall time). Two ways to add a worker: the same global batch split in two
(strong scaling: 64 = 2 x 32) and the same batch per worker (weak scaling: 2 x 64 = 128, the
usual data-parallel setting). Goal: >= 1.6x with 2 workers. Run: `python bench/train_scaling.py`.
"""

from __future__ import annotations

import time

import numpy as np

from common import header, temp_home


def main() -> None:
    temp_home("gf-bench-scaling-")
    from gen_factory import registry
    from gen_factory.data import load_dataset, split
    from gen_factory.pipeline import TrainJob, train_and_register

    rows = len(split(load_dataset("digits"))[0].labels)

    print(header("training scaling (bench/train_scaling.py)"))
    print(f"{'workers':>8}{'global batch':>13}{'rows/epoch':>12}{'median epoch s':>16}{'samples/s':>11}"
          f"{'speed-up':>10}{'wall s':>8}")
    base = None
    for workers, batch in ((1, 64), (2, 64), (2, 128)):
        start = time.perf_counter()
        out = train_and_register(TrainJob("digits", model_name=f"scaling-{workers}-{batch}", epochs=5,
                                          num_workers=workers, batch_size=batch), log=lambda *_: None)
        wall = time.perf_counter() - start
        history = registry.client().get_metric_history(out["run_id"], "epoch_seconds")
        epoch_s = float(np.median([m.value for m in history][1:]))  # the first epoch warms up
        rate = rows / epoch_s
        base = base or rate
        print(f"{workers:>8}{batch:>13}{rows:>12}{epoch_s:>16.2f}{rate:>11.0f}{rate / base:>10.2f}{wall:>8.0f}")


if __name__ == "__main__":
    main()
