"""GAN objectives. Each takes discriminator logits; WGAN-GP adds the gradient penalty on interpolates."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LOSSES = ("nonsaturating", "hinge", "wgan-gp")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"loss {kind!r} is unknown; choose one of {LOSSES}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"loss {kind!r} is unknown; choose one of {LOSSES}")


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """(||grad_x D(x_hat)|| - 1)^2 on random interpolates between real and fake (Gulrajani et al. 2017)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
