"""Train the f-AnoGAN encoder against the finished GAN, in plain PyTorch (Ray wraps it the same way).

The generator (its EMA copy, the one that ships) and the discriminator are frozen; only the
encoder learns. The loss is the score itself - reconstruction plus feature residual - with the
feature term divided by the real features' energy so neither term swamps the other whatever the
discriminator's scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gen_factory.models.encoder import residuals
from gen_factory.train.loop import unwrap


class EncoderTrainer:
    """Holds the encoder (bare or DDP-wrapped) and its optimiser; `step` does one batch."""

    def __init__(self, encoder: nn.Module, generator: nn.Module, discriminator: nn.Module, lr: float = 1e-3):
        self.encoder = encoder
        # The GAN is finished: freeze it for good (its gradients would only cost time).
        self.g = unwrap(generator).eval().requires_grad_(False)
        self.d = unwrap(discriminator).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=lr)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        reconstruction, features = residuals(self.encoder, self.g, self.d, real, labels)
        with torch.no_grad():
            energy = self.d.features(real).pow(2).mean().clamp_min(1e-8)
        loss = reconstruction.mean() + features.mean() / energy
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"encoder_loss": loss.item(), "reconstruction": reconstruction.mean().item()}

    def epoch(self, batches) -> dict[str, float]:
        self.encoder.train()
        totals: dict[str, float] = {}
        n = 0
        for real, labels in batches:
            for key, value in self.step(real, labels).items():
                totals[key] = totals.get(key, 0.0) + value
            n += 1
        return {key: value / max(1, n) for key, value in totals.items()}

    def state_dict(self) -> dict:
        return {"encoder": unwrap(self.encoder).state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.encoder).load_state_dict(state["encoder"])
        self.opt.load_state_dict(state["opt"])


@dataclass(frozen=True)
class ScoreScales:
    """What the scorer graph is calibrated with: the mean residuals on normal training data, and those
    encoded inputs and their labels, on which `export_bundle` fits the isolation forest and
    standardises each score. A table's graph keeps no training row; an image scorer's holds these inputs
    as its `knn` reference (`export.bundle.Neighbours`; the card's `ensemble.reference_rows`)."""

    reconstruction: float
    features: float
    x: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def residual_scales(encoder: nn.Module, generator: nn.Module, discriminator: nn.Module, x: torch.Tensor,
                    labels: torch.Tensor) -> ScoreScales:
    """Mean reconstruction and feature residuals on normal training data: the f-AnoGAN score divides
    by them, so both terms count equally and a typical normal input scores about 2."""
    encoder.eval()
    reconstruction, features = residuals(encoder, generator, discriminator, x, labels)
    return ScoreScales(float(reconstruction.mean().clamp_min(1e-8)), float(features.mean().clamp_min(1e-8)),
                       x, labels)
