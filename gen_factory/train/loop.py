"""One GAN training step and epoch in plain PyTorch.

Nothing here knows about Ray: the networks may be bare modules (tests, one process) or
DDP-wrapped by Ray Train, and the same code runs. The generator kept for export is an
exponential moving average of the trained one (a standard, cheap stabiliser). Tables with
categorical columns add a conditional vector to each batch (CTGAN's training-by-sampling,
`gen_factory.data.conditions`); a cross-entropy term then makes the generated category match it.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from gen_factory.models.diffaugment import diff_augment
from gen_factory.models.losses import discriminator_loss, generator_loss, gradient_penalty
from gen_factory.train.hyper import Hyper


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under a DDP wrapper (or the module itself)."""
    return getattr(model, "module", model)


class GANTrainer:
    """Holds both networks, their optimisers and the EMA generator; `step` does one batch."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, hyper: Hyper, noise_dim: int,
                 blocks: list | None = None):
        """`blocks`: the cond vector's layout (`cond_blocks`), for tables with categorical columns."""
        self.g, self.d, self.h, self.noise_dim = generator, discriminator, hyper, noise_dim
        self.blocks = blocks or []
        self.g_ema = copy.deepcopy(unwrap(generator)).eval().requires_grad_(False)
        # fused: one kernel per step for all parameters (measured ~4 % faster on small CPU tables)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=hyper.lr_g, betas=hyper.betas, fused=True)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=hyper.lr_d, betas=hyper.betas, fused=True)
        self.augment = diff_augment(hyper.augment) or (lambda x: x)
        self.steps = 0

    def critic(self, x: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator on (augmented) images: real and fake always pass the same augmentation."""
        return self.d(self.augment(x), labels, *([] if cond is None else [cond]))

    def step(
        self, real: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None
    ) -> dict[str, float]:
        """One discriminator update, and a generator update every `n_critic` steps."""
        extra = [] if cond is None else [cond]
        noise = torch.randn(real.shape[0], self.noise_dim, device=real.device)
        with torch.no_grad():
            fake = self.g(noise, labels, *extra)
        d_loss = discriminator_loss(
            self.h.loss, self.critic(real, labels, cond), self.critic(fake, labels, cond)
        )
        if self.h.loss == "wgan-gp" and self.steps % self.h.gp_every == 0:
            d_loss = d_loss + self.h.gp_weight * self.h.gp_every * gradient_penalty(
                lambda x: self.critic(x, labels, cond), real, fake)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        out = {"d_loss": d_loss.item()}

        self.steps += 1
        if self.steps % self.h.n_critic == 0:
            noise = torch.randn(real.shape[0], self.noise_dim, device=real.device)
            # The discriminator's gradients from this pass are discarded: skip their all-reduce.
            with getattr(self.d, "no_sync", nullcontext)():
                if cond is None:
                    g_loss = generator_loss(self.h.loss, self.critic(self.g(noise, labels), labels))
                else:
                    fake, logits = self.g(noise, labels, cond, with_logits=True)
                    cond_loss = self.cond_loss(logits, cond)
                    g_loss = (generator_loss(self.h.loss, self.critic(fake, labels, cond))
                              + self.h.cond_weight * cond_loss)
                    out["cond_loss"] = cond_loss.item()
                self.opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
            self.opt_g.step()
            self._update_ema()
            out["g_loss"] = g_loss.item()
        return out

    def cond_loss(self, logits: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each conditioned column's generated logits against its condition,
        summed over columns, averaged over the batch (unconditioned rows add nothing)."""
        total = logits.new_zeros(())
        for b in self.blocks:
            target = cond[:, b.offset:b.offset + b.width]
            set_rows = target.sum(dim=1)
            ce = F.cross_entropy(logits[:, b.span:b.span + b.width], target.argmax(dim=1), reduction="none")
            total = total + (ce * set_rows).sum() / len(cond)
        return total

    def epoch(self, batches) -> dict[str, float]:
        """Run over an iterable of (real, labels[, cond]) batches; return mean losses."""
        self.g.train()
        self.d.train()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for batch in batches:  # (real, labels) or (real, labels, cond)
            for key, value in self.step(*batch).items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        return {key: sums[key] / counts[key] for key in sums}

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up: early on the average follows the generator closely.
        decay = min(self.h.ema_decay, (1 + self.steps) / (10 + self.steps))
        for p_ema, p in zip(self.g_ema.parameters(), unwrap(self.g).parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - decay)
        for b_ema, b in zip(self.g_ema.buffers(), unwrap(self.g).buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {
            "generator": unwrap(self.g).state_dict(),
            "discriminator": unwrap(self.d).state_dict(),
            "generator_ema": self.g_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.g).load_state_dict(state["generator"])
        unwrap(self.d).load_state_dict(state["discriminator"])
        self.g_ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.steps = state["steps"]
