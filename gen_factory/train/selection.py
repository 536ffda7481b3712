"""Keep the best generator of a run, not the last one, and stop when it stops improving.

A GAN's samples do not improve monotonically: a small one-class model can collapse late in a run
(digit 1 did, at 4000 steps), and the loss of a minimax game says nothing about it. So at every
report the EMA generator is scored by the Fréchet distance between its samples and the training
rows, per label (weighted by the label's rows), in the encoded space the networks see - projected
to at most `MAX_DIMS` dimensions by a fixed random rotation so 28x28 images cost what digits do.
The generator and discriminator of the lowest distance are what ship and what the f-AnoGAN encoder
is trained against; after `patience` reports without a new best, the GAN phase ends early.
Plain PyTorch/NumPy: the Ray worker and in-process training use it the same way.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from gen_factory.evaluate.images import frechet_distance
from gen_factory.train.loop import GANTrainer, unwrap

MAX_DIMS = 64
MIN_FAKE, MAX_FAKE = 256, 1000  # generated rows per label: enough for a stable covariance


class BestGenerator:
    """Scores the EMA generator against the training rows and keeps the best (G, D) seen so far."""

    def __init__(
        self,
        encoded: torch.Tensor,
        labels: torch.Tensor,
        noise_dim: int,
        patience: int | None = None,
        seed: int = 0,
    ):
        x = encoded.reshape(len(encoded), -1).double().numpy()
        rng = np.random.default_rng(seed)
        dims = x.shape[1]
        # A random orthogonal projection keeps distances roughly (Johnson-Lindenstrauss) at a fixed cost.
        self.rotation = np.linalg.qr(rng.standard_normal((dims, MAX_DIMS)))[0] if dims > MAX_DIMS else None
        y = labels.numpy()
        self.labels = [k for k in np.unique(y) if (y == k).sum() >= 2]
        self.real = {k: self._project(x[y == k]) for k in self.labels}
        self.weights = np.array([len(self.real[k]) for k in self.labels], dtype=np.float64)
        gen = torch.Generator().manual_seed(seed)  # the same noise at every report: distances compare
        self.noise = {
            k: torch.randn(min(MAX_FAKE, max(MIN_FAKE, len(self.real[k]))), noise_dim, generator=gen)
            for k in self.labels
        }
        self.patience = patience
        self.best: dict | None = None  # {"distance", "epoch", "generator_ema", "discriminator"}
        self.since_best = 0

    def _project(self, x: np.ndarray) -> np.ndarray:
        return x if self.rotation is None else x @ self.rotation

    @torch.no_grad()
    def distance(self, generator: nn.Module) -> float:
        """Row-weighted mean over labels of the Fréchet distance between generated and training rows
        (`generator` in eval mode, as the EMA copy always is)."""
        if not self.labels:
            return float("inf")
        device = next((p.device for p in generator.parameters()), torch.device("cpu"))  # CUDA under --gpu
        per_label = []
        for k in self.labels:
            noise = self.noise[k].to(device)
            fake = generator(noise, torch.full((len(noise),), int(k), dtype=torch.long, device=device))
            fake = fake.reshape(len(noise), -1).double().cpu().numpy()
            per_label.append(frechet_distance(self.real[k], self._project(fake)))
        distance = float(np.average(per_label, weights=self.weights))
        return distance if np.isfinite(distance) else float("inf")  # a diverged generator is never the best

    def record(self, trainer: GANTrainer, epoch: int, distance: float) -> None:
        """The trainer's EMA generator scored `distance` after `epoch` epochs: keep it if it is the best
        so far. (Under DDP rank 0 scores and every worker records, so all keep the same models.)"""
        if self.best is None or distance < self.best["distance"]:
            self.best = {"distance": distance, "epoch": epoch,
                         "generator_ema": copy.deepcopy(trainer.g_ema.state_dict()),
                         "discriminator": copy.deepcopy(unwrap(trainer.d).state_dict())}
            self.since_best = 0
        else:
            self.since_best += 1

    @property
    def stop(self) -> bool:
        """True once `patience` reports in a row have not beaten the best."""
        return self.patience is not None and self.since_best >= self.patience

    def best_models(self, trainer: GANTrainer) -> tuple[nn.Module, nn.Module]:
        return best_models(trainer, self.state_dict())

    def state_dict(self) -> dict:
        return {"best": self.best, "since_best": self.since_best}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.since_best = state["best"], state["since_best"]


def best_models(trainer: GANTrainer, selection: dict | None) -> tuple[nn.Module, nn.Module]:
    """Copies of the trainer's EMA generator and discriminator holding the best weights of a
    `BestGenerator.state_dict()` (the trainer's own when none was kept)."""
    g, d = copy.deepcopy(trainer.g_ema), copy.deepcopy(unwrap(trainer.d))
    best = (selection or {}).get("best")
    if best is not None:
        g.load_state_dict(best["generator_ema"])
        d.load_state_dict(best["discriminator"])
    return g.eval(), d.eval()
