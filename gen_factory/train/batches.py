"""Training batches of a table with categorical columns: real rows chosen by training-by-sampling.

Each worker draws its own batches from the whole table (rows are picked per condition, so a
fixed shard would starve rare categories); the number of batches per epoch is what a sharded
loader would give, so epochs mean the same with and without categorical columns.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from gen_factory.data.conditions import CondSampler, one_hot


def conditional_batches(encoded: torch.Tensor, labels: torch.Tensor, sampler: CondSampler, batch_size: int,
                        world: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of (real, labels, cond) batches of `batch_size // world` rows for one of `world` workers."""
    per_worker = max(1, batch_size // world)
    n_batches = max(1, len(encoded) // batch_size) if len(encoded) > batch_size else 1
    for _ in range(n_batches):
        rows, codes = sampler.sample(per_worker, rng)
        index = torch.from_numpy(rows)
        yield encoded[index], labels[index], torch.from_numpy(one_hot(codes, sampler.blocks))
