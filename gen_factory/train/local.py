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
from gen_factory.train.hyper import resolve_hyper
from gen_factory.train.loop import GANTrainer
from gen_factory.train.selection import BestGenerator


def train_table(
    train: TableData,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
    patience: int | None = None,
    checks: int = 50,
    critic=None,
    **hyper_overrides,
):
    """Returns (EMA generator, discriminator, encoding, spec, hyper) of the best of `checks` checks
    over `epochs` passes, stopping after `patience` checks without a better one, as a Ray worker
    does (`gen_factory.train.selection`); settings as `resolve_hyper` gives them, `hyper_overrides`
    setting `Hyper` fields (e.g. cond_weight).
    `critic(spec)`, if given, builds the discriminator instead (experiments: bench/pacgan.py)."""
    torch.manual_seed(seed)
    encoding = fit_encoding(train)
    recipe = resolve_hyper("table", len(train.labels), batch_size, epochs=epochs, **hyper_overrides)
    hyper = recipe.hyper
    spec = spec_for(train, encoding, **recipe.networks)
    g, d = build_models(spec)
    d = critic(spec) if critic else d
    blocks = cond_blocks(encoding.columns)
    trainer = GANTrainer(g, d, hyper, spec.noise_dim, blocks)
    encoded, labels = torch.from_numpy(encoding.encode(train.features)), torch.from_numpy(train.labels)
    if blocks:
        sampler, rng = CondSampler(train.features, blocks, hyper.uncond_prob), np.random.default_rng(seed)
        def batches():
            return conditional_batches(encoded, labels, sampler, batch_size, 1, rng)
    else:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(encoded, labels),
            batch_size=batch_size,
            shuffle=True,
            drop_last=len(encoded) > batch_size,
        )

        def batches():
            return loader
    selector, every = BestGenerator(encoded, labels, spec.noise_dim, patience, seed), max(1, epochs // checks)
    for epoch in range(1, epochs + 1):
        trainer.epoch(batches())
        if epoch % every == 0 or epoch == epochs:
            selector.record(trainer, epoch, selector.distance(trainer.g_ema))
            if selector.stop:
                break
    return *selector.best_models(trainer), encoding, spec, hyper


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
