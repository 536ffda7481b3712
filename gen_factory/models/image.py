"""DCGAN-style conditional networks for small images (8x8 up to 64x64, gray or RGB)."""

from __future__ import annotations

import torch
from torch import nn

from gen_factory.models.layers import ProjectionHead, maybe_sn


def _base_size(size: int) -> tuple[int, int]:
    """Smallest feature map the generator starts from and the number of x2 upsamplings to `size`."""
    steps = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        steps += 1
    return size, steps


class ImageGenerator(nn.Module):
    """noise + label -> dense -> (ConvTranspose x2 + ReLU) * k -> conv -> tanh."""

    def __init__(self, noise_dim: int, n_labels: int, channels: int, size: int, width: int = 128):
        super().__init__()
        self.noise_dim = noise_dim
        self.base, steps = _base_size(size)
        self.width = width
        self.embed = nn.Embedding(n_labels, 32)
        self.fc = nn.Sequential(nn.Linear(noise_dim + 32, width * self.base * self.base), nn.ReLU())
        blocks: list[nn.Module] = []
        ch = width
        for _ in range(steps):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.GroupNorm(8, ch // 2), nn.ReLU()]
            ch //= 2
        blocks += [nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([noise, self.embed(labels)], dim=1))
        return self.blocks(h.view(-1, self.width, self.base, self.base))


class ImageDiscriminator(nn.Module):
    """Strided convs -> global sum pooling -> projection head conditioned on the label."""

    def __init__(self, n_labels: int, channels: int, size: int, width: int = 64, spectral_norm: bool = True):
        super().__init__()
        _, steps = _base_size(size)
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(channels, width, 3, 1, 1), spectral_norm), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(steps):
            layers += [maybe_sn(nn.Conv2d(ch, ch * 2, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.head = ProjectionHead(ch, n_labels, spectral_norm)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).sum(dim=(2, 3)), labels)
