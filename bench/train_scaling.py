"""Training throughput with 1 and 2 Ray Train workers on the same model (digits, 5 epochs).

Samples/s = training rows per epoch / median epoch time as measured on rank 0 (the time spent
in the epoch, DDP all-reduce included; Ray's start-up and checkpoint reporting excluded, and
shown separately as wall time). Two ways to add a worker: the same global batch split in two
(strong scaling: 64 = 2 x 32) and the same batch per worker (weak scaling: 2 x 64 = 128, the
usual data-parallel setting). Goal: >= 1.6x with 2 workers.

For reference, the same networks, loop and data under plain torch.distributed (gloo, one process
and one thread per worker, nothing else running): what the machine gives without Ray's own
processes, which share its 2 cores with the workers. Run: `python bench/train_scaling.py`.
"""

from __future__ import annotations

import os
import socket
import time
import warnings

import numpy as np
from common import header, temp_home

CONFIGS = ((1, 64), (2, 64), (2, 128))  # (workers, global batch)
EPOCHS = 5


def main() -> None:
    temp_home("gf-bench-scaling-")
    from gen_factory import registry
    from gen_factory.data import load_dataset, split
    from gen_factory.services.pipeline import TrainJob, train_and_register

    rows = len(split(load_dataset("digits"))[0].labels)

    print(header("training scaling (bench/train_scaling.py)"))
    print(
        f"{'':>12}{'workers':>8}{'global batch':>13}{'rows/epoch':>12}{'median epoch s':>16}{'samples/s':>11}"
        f"{'speed-up':>10}{'wall s':>8}"
    )
    base = None
    for workers, batch in CONFIGS:
        start = time.perf_counter()
        out = train_and_register(TrainJob("digits", model_name=f"scaling-{workers}-{batch}", epochs=EPOCHS,
                                          num_workers=workers, batch_size=batch), log=lambda *_: None)
        wall = time.perf_counter() - start
        history = registry.client().get_metric_history(out["run_id"], "epoch_seconds")
        gan = [m.value for m in history if 1 < m.step <= EPOCHS]  # GAN epochs; the first warms up
        epoch_s = float(np.median(gan))
        rate = rows / epoch_s
        base = base or rate
        print(
            f"{'Ray Train':>12}{workers:>8}{batch:>13}{rows:>12}{epoch_s:>16.2f}{rate:>11.0f}"
            f"{rate / base:>10.2f}"
            f"{wall:>8.0f}",
            flush=True,
        )
    base = None
    for workers, batch in CONFIGS:
        start = time.perf_counter()
        epoch_s = torch_only(workers, batch)
        rate = rows / epoch_s
        base = base or rate
        print(
            f"{'torch only':>12}{workers:>8}{batch:>13}{rows:>12}{epoch_s:>16.2f}{rate:>11.0f}"
            f"{rate / base:>10.2f}"
            f"{time.perf_counter() - start:>8.0f}",
            flush=True,
        )


def torch_only(workers: int, batch: int) -> float:
    """Median epoch seconds on rank 0 of the same training under torch.distributed, without Ray."""
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_torch_worker, args=(workers, batch, port, results), nprocs=workers)
    return results.get()


def _torch_worker(rank: int, world: int, batch: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")  # as Ray sets it
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from gen_factory.data import load_dataset, split
    from gen_factory.data.transform import fit_encoding
    from gen_factory.models import build_models, spec_for
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.loop import GANTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    train, _ = split(load_dataset("digits"))  # the split TrainJob("digits") trains on
    encoding = fit_encoding(train)
    recipe = resolve_hyper("image", len(train.labels))  # the settings `genfactory train digits` resolves
    hyper, spec = recipe.hyper, spec_for(train, encoding, **recipe.networks)
    torch.manual_seed(0)
    g, d = build_models(spec)
    if world > 1:  # as the pipeline wraps them (ray.train.torch.prepare_model); the flag's rename warns
        warnings.simplefilter("ignore", FutureWarning)
        g, d = DDP(g, broadcast_buffers=False), DDP(d, broadcast_buffers=False)
    trainer = GANTrainer(g, d, hyper, spec.noise_dim, [])
    data = TensorDataset(torch.from_numpy(encoding.encode(train.images)), torch.from_numpy(train.labels))
    sampler = DistributedSampler(data, world, rank) if world > 1 else None
    loader = DataLoader(
        data, batch_size=batch // world, sampler=sampler, shuffle=sampler is None, drop_last=True
    )
    times = []
    for epoch in range(EPOCHS):
        if sampler:
            sampler.set_epoch(epoch)
        start = time.perf_counter()
        trainer.epoch(loader)
        times.append(time.perf_counter() - start)
    if rank == 0:
        results.put(float(np.median(times[1:])))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
