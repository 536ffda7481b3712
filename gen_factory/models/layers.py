"""Small building blocks shared by the table and image networks."""

from __future__ import annotations

import torch
from torch import nn


def maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation keeps the discriminator Lipschitz (hinge / non-saturating losses)."""
    return nn.utils.parametrizations.spectral_norm(layer) if enabled else layer


class ProjectionHead(nn.Module):
    """Realness logit = w.h + <embed(y), h>: the label enters as an inner product, not a concat."""

    def __init__(self, features: int, n_labels: int, spectral_norm: bool):
        super().__init__()
        self.linear = maybe_sn(nn.Linear(features, 1), spectral_norm)
        self.embed = maybe_sn(nn.Embedding(n_labels, features), spectral_norm)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class ConcatHead(nn.Module):
    """Realness logit from [h, embed(y)] through one hidden layer (the label is an extra input)."""

    def __init__(self, features: int, n_labels: int, spectral_norm: bool):
        super().__init__()
        self.embed = nn.Embedding(n_labels, 32)
        self.net = nn.Sequential(
            maybe_sn(nn.Linear(features + 32, features), spectral_norm),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Linear(features, 1), spectral_norm),
        )

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([h, self.embed(labels)], dim=1)).squeeze(1)


class PlainHead(nn.Module):
    """Unconditional realness logit (vanilla GAN): the label is accepted for a common interface only."""

    def __init__(self, features: int, n_labels: int, spectral_norm: bool):
        super().__init__()
        self.linear = maybe_sn(nn.Linear(features, 1), spectral_norm)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.linear(h).squeeze(1) + 0.0 * labels.to(
            h.dtype
        )  # keeps `labels` an input of the ONNX graph
