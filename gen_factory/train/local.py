"""Train in this process, without Ray: the same networks, encoding and GANTrainer as a Ray worker.

For benchmarks and quick experiments on one machine; `pipeline.train_and_register` is the path
users take (Ray Train, checkpoints, MLflow).
"""

from __future__ import annotations

import torch

from gen_factory.data.datasets import TableData
from gen_factory.data.transform import fit_encoding
from gen_factory.models import build_models, spec_for
from gen_factory.train.loop import GANTrainer, default_hyper


def train_table(train: TableData, epochs: int, batch_size: int = 64, seed: int = 0):
    """Returns (EMA generator, discriminator, encoding, spec, hyper) after `epochs` passes."""
    torch.manual_seed(seed)
    encoding = fit_encoding(train)
    hyper = default_hyper("table")
    spec = spec_for(train, encoding, spectral_norm=hyper.loss != "wgan-gp")
    g, d = build_models(spec)
    trainer = GANTrainer(g, d, hyper, spec.noise_dim)
    rows = torch.utils.data.TensorDataset(torch.from_numpy(encoding.encode(train.features)),
                                          torch.from_numpy(train.labels))
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, shuffle=True,
                                         drop_last=len(rows) > batch_size)
    for _ in range(epochs):
        trainer.epoch(loader)
    return trainer.g_ema.eval(), trainer.d.eval(), encoding, spec, hyper
