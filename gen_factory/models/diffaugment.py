"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentation on real and fake
images before the discriminator, so a small dataset does not let it memorise the real images.

Policies, comma-separated: ``translation`` (shift by up to 1/8 of the side, zero padded),
``cutout`` (zero a square of half the side), ``color`` (brightness and contrast). Random per
sample; gradients flow through to the generator.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor], torch.Tensor]


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    s = max(1, int(h * ratio + 0.5))
    ty = torch.randint(-s, s + 1, (b, 1), device=x.device)
    tx = torch.randint(-s, s + 1, (b, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :] + s - ty  # [b, h] rows of the padded image
    cols = torch.arange(w, device=x.device)[None, :] + s - tx
    padded = F.pad(x, [s, s, s, s])
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = torch.randint(0, h + 1 - ch, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + 1 - cw, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = (ys >= cy) & (ys < cy + ch) & (xs >= cx) & (xs < cx + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device) + 0.5) + mean


POLICIES: dict[str, Augment] = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(policy: str) -> Augment | None:
    """The composed augmentation for a policy string like ``"translation,cutout"``; None for ``""``."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"augment policy {policy!r}: unknown {unknown}; use a comma-separated subset of "
                         f"{', '.join(POLICIES)}")
    if not names:
        return None
    steps = [POLICIES[n] for n in names]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply
