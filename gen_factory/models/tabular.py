"""Conditional MLP GAN for numeric tables: the label conditions both networks."""

from __future__ import annotations

import torch
from torch import nn

from gen_factory.models.layers import ProjectionHead, maybe_sn


class TabularGenerator(nn.Module):
    """noise + label embedding -> encoded feature vector (decoding happens in the exported graph)."""

    def __init__(self, noise_dim: int, n_labels: int, n_features: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.noise_dim = noise_dim
        self.embed = nn.Embedding(n_labels, 16)
        layers: list[nn.Module] = []
        width = noise_dim + 16
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_features))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([noise, self.embed(labels)], dim=1))


class TabularDiscriminator(nn.Module):
    """MLP critic with a projection term for the label (Miyato & Koyama 2018)."""

    def __init__(self, n_labels: int, n_features: int, hidden: int = 256, depth: int = 2,
                 spectral_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [maybe_sn(nn.Linear(width, hidden), spectral_norm), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = ProjectionHead(width, n_labels, spectral_norm)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x), labels)
