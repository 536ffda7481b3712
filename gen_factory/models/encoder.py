"""The f-AnoGAN encoder (Schlegl et al. 2019): trained after the GAN so that G(E(x), y) ≈ x.

A normal input is reconstructed well by the generator that learned the normal data; an anomaly
is not, both in the values (`reconstruction`) and in the discriminator's features of the
reconstruction (`features`). The encoder is trained with the generator and discriminator frozen,
on the same loss it is scored with (the izi_f objective).
"""

from __future__ import annotations

import torch
from torch import nn

from gen_factory.models.image import _base_size


class TableEncoder(nn.Module):
    """Encoded row -> noise vector: an MLP mirroring the generator's width."""

    def __init__(self, n_features: int, noise_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, noise_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ImageEncoder(nn.Module):
    """Image in [-1, 1] -> noise vector: strided convs down to the generator's base map, then linear."""

    def __init__(self, channels: int, size: int, noise_dim: int, width: int = 64):
        super().__init__()
        base, steps = _base_size(size)
        # The discriminator's widths (models.image): at 28x28 the full 64-128-256 cost four times the
        # discriminator per image, an encoder epoch over MNIST ~6 CPU-minutes; 8x8 is unchanged.
        width = max(width >> max(steps - 1, 0), 16)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(steps):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch *= 2
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * base * base, noise_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_encoder(spec) -> nn.Module:
    """The encoder for a ModelSpec's data: MLP for tables, convs for images."""
    if spec.kind == "table":
        return TableEncoder(spec.shape[0], spec.noise_dim, spec.widths.get("hidden", 256),
                            spec.widths.get("depth", 2))
    channels, size, _ = spec.shape
    return ImageEncoder(channels, size, spec.noise_dim, spec.widths.get("d_width", 64))


def residuals(encoder: nn.Module, generator: nn.Module, discriminator: nn.Module, x: torch.Tensor,
              labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-input (reconstruction, feature) mean squared residuals of x through G(E(x), label)."""
    rebuilt = generator(encoder(x), labels)
    reconstruction = (rebuilt - x).pow(2).flatten(1).mean(dim=1)
    features = (discriminator.features(rebuilt) - discriminator.features(x)).pow(2).mean(dim=1)
    return reconstruction, features
