"""Conditional networks for small images (8x8 up to 64x64, gray or RGB).

`conv` is DCGAN-shaped (transposed convs up, strided convs down); `mlp` is the original fully
connected GAN. The conv widths given (generator 128, discriminator 64 by default) are those of an
8x8 network (one x2 step); each further x2 step halves the widest layer, down to a floor that keeps
8 generator / 16 discriminator channels at full size, so a larger image costs about the same per
pixel. At 28x28 (MNIST: 7 -> 14 -> 28) that is G 64-32-16 and D 32-64-128: 41 images/s per CPU
thread for a projgan-gp step on a shared 2-core machine, against 10 with G 128-64-32 / D 64-128-256.
The discriminator's label enters by projection (Miyato & Koyama 2018), by concatenation (the
conditional GAN of Mirza & Osindero), or not at all (a vanilla GAN).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gen_factory.models.layers import ConcatHead, PlainHead, ProjectionHead, maybe_sn

HEADS = {"projection": ProjectionHead, "concat": ConcatHead, "none": PlainHead}


def _base_size(size: int) -> tuple[int, int]:
    """Smallest feature map the generator starts from and the number of x2 upsamplings to `size`."""
    steps = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        steps += 1
    return size, steps


def scaled_width(width: int, steps: int, floor: int) -> int:
    """The generator's widest layer: `width` (that of a one-step, 8x8, network) halved for each
    further step, keeping at least `floor` channels at the full-size end of a `steps`-step network."""
    return max(width >> max(steps - 1, 0), floor << steps)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


def _head(conditioning: str, features: int, n_labels: int, spectral_norm: bool) -> nn.Module:
    if conditioning not in HEADS:
        raise ValueError(f"conditioning {conditioning!r} is unknown; use one of {', '.join(HEADS)}")
    return HEADS[conditioning](features, n_labels, spectral_norm)


class ImageGenerator(nn.Module):
    """noise + label -> dense -> (ConvTranspose x2 + GroupNorm + ReLU) * k -> conv -> tanh."""

    def __init__(self, noise_dim: int, n_labels: int, channels: int, size: int, width: int = 128):
        super().__init__()
        self.noise_dim = noise_dim
        self.base, steps = _base_size(size)
        self.width = width = scaled_width(width, steps, 8)
        self.embed = nn.Embedding(n_labels, 32)
        self.fc = nn.Sequential(nn.Linear(noise_dim + 32, width * self.base * self.base), nn.ReLU())
        blocks: list[nn.Module] = []
        ch = width
        for _ in range(steps):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.GroupNorm(_groups(ch // 2), ch // 2),
                       nn.ReLU()]
            ch //= 2
        blocks += [nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([noise, self.embed(labels)], dim=1))
        return self.blocks(h.view(-1, self.width, self.base, self.base))


class ImageDiscriminator(nn.Module):
    """Strided convs -> global sum pooling -> a label-conditioned head."""

    def __init__(self, n_labels: int, channels: int, size: int, width: int = 64, spectral_norm: bool = True,
                 conditioning: str = "projection"):
        super().__init__()
        _, steps = _base_size(size)
        width = max(width >> max(steps - 1, 0), 16)  # the first (full-size) layer; doubled per step
        layers: list[nn.Module] = [
            maybe_sn(nn.Conv2d(channels, width, 3, 1, 1), spectral_norm),
            nn.LeakyReLU(0.2),
        ]
        ch = width
        for _ in range(steps):
            layers += [maybe_sn(nn.Conv2d(ch, ch * 2, 4, 2, 1), spectral_norm), nn.LeakyReLU(0.2)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.head = _head(conditioning, ch, n_labels, spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Sum-pooled last conv features: what f-AnoGAN's feature residual compares."""
        return self.body(x).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), labels)


class MLPImageGenerator(nn.Module):
    """The original GAN generator: noise + label embedding -> two hidden layers -> tanh pixels."""

    def __init__(self, noise_dim: int, n_labels: int, shape: list[int], hidden: int = 256):
        super().__init__()
        self.noise_dim, self.shape = noise_dim, list(shape)
        self.embed = nn.Embedding(n_labels, 32)
        n_out = shape[0] * shape[1] * shape[2]
        self.net = nn.Sequential(nn.Linear(noise_dim + 32, hidden), nn.ReLU(), nn.Linear(hidden, hidden * 2),
                                 nn.ReLU(), nn.Linear(hidden * 2, n_out), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([noise, self.embed(labels)], dim=1)).view(-1, *self.shape)


class MLPImageDiscriminator(nn.Module):
    """Flattened pixels -> two LeakyReLU layers -> a label-conditioned head."""

    def __init__(self, n_labels: int, shape: list[int], hidden: int = 256, spectral_norm: bool = False,
                 conditioning: str = "concat"):
        super().__init__()
        n_in = shape[0] * shape[1] * shape[2]
        self.body = nn.Sequential(
            nn.Flatten(),
            maybe_sn(nn.Linear(n_in, hidden * 2), spectral_norm),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Linear(hidden * 2, hidden), spectral_norm),
            nn.LeakyReLU(0.2),
        )
        self.head = _head(conditioning, hidden, n_labels, spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), labels)


def fast_path(device: torch.device | str, enabled: bool = True):
    """bf16 autocast for a training or sampling step on CUDA (a no-op context elsewhere, or when not
    `enabled`). Convs and matmuls run in bf16 on the tensor cores; the losses and the gradient penalty's
    norms stay float32 (autocast keeps reductions and pow in float32); weights and optimizer state stay
    float32, so no loss scaling is needed (bf16 keeps float32's exponent range)."""
    from contextlib import nullcontext

    if enabled and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def channels_last(module: nn.Module, device: torch.device | str, enabled: bool = True) -> nn.Module:
    """Conv weights in NHWC on CUDA, where cuDNN's bf16 convs want that layout (no transposes per
    call); unchanged on CPU, where it does not help these small convs."""
    if enabled and torch.device(device).type == "cuda":
        return module.to(memory_format=torch.channels_last)
    return module
