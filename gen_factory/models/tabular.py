"""Conditional MLP GAN for tables: the label conditions both networks, and so does the conditional
vector over categorical columns where the table has any (`gen_factory.data.conditions`).

The generator ends in per-span activations matching the table encoding: none for a normal score,
tanh for a mode offset, softmax for one-hot blocks (modes, categories, missing flags) - Gumbel-softmax
while training so the critic sees near one-hot rows, a plain softmax once exported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gen_factory.models.layers import ProjectionHead, maybe_sn


class TabularGenerator(nn.Module):
    """noise + label embedding [+ cond vector] -> encoded feature vector (decoding happens in the
    exported graph). `cond_dim` 0: no cond input, the network of a table without categories."""

    def __init__(self, noise_dim: int, n_labels: int, n_features: int, hidden: int = 256, depth: int = 2,
                 spans: list[tuple[str, int]] | None = None, cond_dim: int = 0):
        super().__init__()
        self.noise_dim, self.cond_dim = noise_dim, cond_dim
        self.activate = SpanActivation(spans or [])
        self.embed = nn.Embedding(n_labels, 16)
        layers: list[nn.Module] = []
        width = noise_dim + 16 + cond_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_features))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None,
                with_logits: bool = False):
        """`with_logits` also returns the pre-activation output (the cond loss is a cross-entropy on it);
        an argument rather than a method so that a DDP wrapper still sees the forward pass."""
        parts = [noise, self.embed(labels)] + (
            [_cond_or_zeros(cond, noise, self.cond_dim)] if self.cond_dim else []
        )
        logits = self.net(torch.cat(parts, dim=1))
        return (self.activate(logits), logits) if with_logits else self.activate(logits)


def _cond_or_zeros(cond: torch.Tensor | None, like: torch.Tensor, width: int) -> torch.Tensor:
    """No cond = a zero cond: the unconditioned mode both networks are also trained in."""
    return cond if cond is not None else like.new_zeros(like.shape[0], width)


class SpanActivation(nn.Module):
    """Activation per block of the encoded row; no spans = identity (plain standardised columns)."""

    def __init__(self, spans: list[tuple[str, int]], tau: float = 0.2):
        super().__init__()
        self.spans, self.tau = [(str(kind), int(width)) for kind, width in spans], tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spans:
            return x
        out, at = [], 0
        for kind, width in self.spans:
            block = x[:, at:at + width]
            if kind == "linear":
                out.append(block)
            elif kind == "tanh":
                out.append(torch.tanh(block))
            elif self.training:
                out.append(F.gumbel_softmax(block, tau=self.tau))
            else:
                out.append(torch.softmax(block, dim=1))
            at += width
        return torch.cat(out, dim=1)


class TabularDiscriminator(nn.Module):
    """MLP critic with a projection term for the label (Miyato & Koyama 2018); the cond vector, where
    there is one, is concatenated to the row (zeros when omitted: the anomaly scorer's case)."""

    def __init__(self, n_labels: int, n_features: int, hidden: int = 256, depth: int = 2,
                 spectral_norm: bool = False, cond_dim: int = 0):
        super().__init__()
        self.cond_dim = cond_dim
        layers: list[nn.Module] = []
        width = n_features + cond_dim
        for _ in range(depth):
            layers += [maybe_sn(nn.Linear(width, hidden), spectral_norm), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = ProjectionHead(width, n_labels, spectral_norm)

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer: what f-AnoGAN's feature residual compares (no cond: unconditioned mode)."""
        if self.cond_dim:
            x = torch.cat([x, _cond_or_zeros(cond, x, self.cond_dim)], dim=1)
        return self.body(x)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.features(x, cond), labels)
