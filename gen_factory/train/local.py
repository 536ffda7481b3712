"""Train in this process, without Ray: the same networks, encoding and GANTrainer as a Ray worker.

For benchmarks and quick experiments on one machine; `pipeline.train_and_register` is the path
users take (Ray Train, checkpoints, MLflow).
"""

from __future__ import annotations

import numpy as np
import torch

from gen_factory.data.conditions import CondSampler, cond_blocks
from gen_factory.data.datasets import TableData
from gen_factory.data.transform import fit_encoding
from gen_factory.models import build_models, spec_for
from gen_factory.models.encoder import build_encoder
from gen_factory.train.batches import conditional_batches
from gen_factory.train.encoder import EncoderTrainer, residual_scales
from gen_factory.train.loop import GANTrainer, default_hyper


def train_table(train: TableData, epochs: int, batch_size: int = 64, seed: int = 0, **hyper_overrides):
    """Returns (EMA generator, discriminator, encoding, spec, hyper) after `epochs` passes;
    `hyper_overrides` set `Hyper` fields (e.g. cond_weight, uncond_prob)."""
    torch.manual_seed(seed)
    encoding = fit_encoding(train)
    hyper = default_hyper("table")
    for key, value in hyper_overrides.items():
        setattr(hyper, key, value)
    spec = spec_for(train, encoding, spectral_norm=hyper.loss != "wgan-gp")
    g, d = build_models(spec)
    blocks = cond_blocks(encoding.columns)
    trainer = GANTrainer(g, d, hyper, spec.noise_dim, blocks)
    encoded, labels = torch.from_numpy(encoding.encode(train.features)), torch.from_numpy(train.labels)
    if blocks:
        sampler, rng = CondSampler(train.features, blocks, hyper.uncond_prob), np.random.default_rng(seed)
        for _ in range(epochs):
            trainer.epoch(conditional_batches(encoded, labels, sampler, batch_size, 1, rng))
    else:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(encoded, labels), batch_size=batch_size,
                                             shuffle=True, drop_last=len(encoded) > batch_size)
        for _ in range(epochs):
            trainer.epoch(loader)
    return trainer.g_ema.eval(), trainer.d.eval(), encoding, spec, hyper


def train_encoder(generator: torch.nn.Module, discriminator: torch.nn.Module, spec, x: torch.Tensor,
                  labels: torch.Tensor, epochs: int, batch_size: int = 64, seed: int = 0):
    """The f-AnoGAN encoder for a finished GAN on encoded inputs `x`: (encoder, residual scales),
    what `export.export_bundle` takes."""
    torch.manual_seed(seed)
    encoder = build_encoder(spec)
    trainer = EncoderTrainer(encoder, generator, discriminator)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels), batch_size=batch_size,
                                         shuffle=True, drop_last=len(x) > batch_size)
    for _ in range(epochs):
        trainer.epoch(loader)
    return encoder.eval(), residual_scales(encoder, generator, discriminator, x, labels)
