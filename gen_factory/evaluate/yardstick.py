"""The augmentation yardstick: does a synthetic image set add class information a small CNN cannot
get from the real images alone?

An SVC on raw pixels under-fits (issue 4's bar: repeating the real images helped it as much as any
GAN did), so images are judged by a small CNN (`FeatureNet`) trained with standard augmentation -
random shifts of up to 2 px and rotations of up to 10 degrees - whose training length is chosen on
real validation images: it trains in rounds of `ROUND_STEPS` steps, is scored on the validation set
after each, and keeps the best round's weights. Every arm gets the same rounds and the same choice,
so the comparison is between data sets, not training lengths. Two controls frame the augmented set:
the real images alone, and the real images with standard augmentation only; the uplift is the
augmented accuracy minus the better control.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gen_factory.evaluate.images import FeatureNet

ROUND_STEPS, ROUNDS, BATCH = 100, 10, 64  # up to 1,000 steps of 64 images, scored every 100
MAX_SHIFT_PX, MAX_DEGREES = 2.0, 10.0
LR = 2e-3
CONTROLS = ("real_only", "real_standard")  # the arms without synthetic images


def shift_rotate(
    x: torch.Tensor,
    generator: torch.Generator,
    max_shift_px: float = MAX_SHIFT_PX,
    max_degrees: float = MAX_DEGREES,
) -> torch.Tensor:
    """Each image shifted and rotated by its own uniform draw (one affine resampling per batch)."""
    n, _, h, w = x.shape

    def uniform() -> torch.Tensor:
        return torch.rand(n, generator=generator) * 2 - 1

    angle = uniform() * math.radians(max_degrees)
    tx, ty = uniform() * max_shift_px * 2 / w, uniform() * max_shift_px * 2 / h  # grid units: 2 / size
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode="border", align_corners=False)


@dataclass
class ArmResult:
    """One arm: the test accuracy of the best validation round, that round's validation accuracy and
    number (1-based), and the training rows."""

    accuracy: float
    val_accuracy: float
    best_round: int
    rows: int


class Yardstick:
    """The CNN protocol for one validation and one test set; pixels are scaled by the real training
    images' range (`low`, `high`), so every arm sees the same scale."""

    def __init__(
        self,
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        n_labels: int,
        low: float,
        high: float,
        seed: int = 0,
        rounds: int = ROUNDS,
        round_steps: int = ROUND_STEPS,
        batch: int = BATCH,
    ):
        self.low, self.high, self.n_labels, self.seed = low, high, n_labels, seed
        self.rounds, self.round_steps, self.batch = rounds, round_steps, batch
        self.val = self._scale(val_x), torch.as_tensor(val_y, dtype=torch.long)
        self.test = self._scale(test_x), torch.as_tensor(test_y, dtype=torch.long)

    def _scale(self, images: np.ndarray) -> torch.Tensor:
        scaled = (np.asarray(images, dtype=np.float32) - self.low) / max(self.high - self.low, 1e-12)
        return torch.as_tensor(scaled.clip(0, 1) * 2 - 1, dtype=torch.float32)

    def run(self, x: np.ndarray, y: np.ndarray, augment: bool) -> ArmResult:
        """Train on (x, y), with standard augmentation if `augment`; score the best round on test."""
        with torch.random.fork_rng():  # the seeded initial weights leave the caller's random state as it was
            torch.manual_seed(self.seed)
            net = FeatureNet(x.shape[1], self.n_labels)
        draws = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        xs, ys = self._scale(x), torch.as_tensor(y, dtype=torch.long)
        best, best_round, best_state = -1.0, 0, None
        for r in range(1, self.rounds + 1):
            net.train()
            for _ in range(self.round_steps):
                idx = torch.randint(len(xs), (min(self.batch, len(xs)),), generator=draws)
                batch = shift_rotate(xs[idx], draws) if augment else xs[idx]
                loss = nn.functional.cross_entropy(net(batch), ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            score = _accuracy(net, *self.val)
            if score > best:
                best, best_round, best_state = score, r, copy.deepcopy(net.state_dict())
        net.load_state_dict(best_state)
        return ArmResult(_accuracy(net, *self.test), best, best_round, int(len(y)))


@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)])
    return float((pred == y).float().mean())


def best_control(arms: dict[str, ArmResult]) -> str:
    """The better of the two controls ("real_only", "real_standard"), chosen on the validation images:
    chosen on the test images, it would be favoured by the test set's own noise."""
    return max(CONTROLS, key=lambda k: arms[k].val_accuracy)


def controlled_uplift(
    real_x: np.ndarray,
    real_y: np.ndarray,
    aug_x: np.ndarray,
    aug_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    n_labels: int,
    seed: int = 0,
    **protocol,
) -> dict:
    """Test accuracy of the real images alone, of the real images with standard augmentation (the two
    controls) and of the augmented set (with standard augmentation too), and the uplift over the
    better control. `protocol`: Yardstick's rounds / round_steps / batch."""
    stick = Yardstick(
        val_x, val_y, test_x, test_y, n_labels, float(np.min(real_x)), float(np.max(real_x)), seed, **protocol
    )
    arms = {
        "real_only": stick.run(real_x, real_y, augment=False),
        "real_standard": stick.run(real_x, real_y, augment=True),
        "augmented": stick.run(aug_x, aug_y, augment=True),
    }
    control = best_control(arms)
    return {
        **{k: a.accuracy for k, a in arms.items()},
        "best_control": arms[control].accuracy,
        "best_control_arm": control,
        "uplift": arms["augmented"].accuracy - arms[control].accuracy,
        "best_rounds": {k: a.best_round for k, a in arms.items()},
        "round_steps": stick.round_steps,
        "rounds": stick.rounds,
        "real_rows": int(len(real_y)),
        "augmented_rows": int(len(aug_y)),
        "val_rows": int(len(val_y)),
        "test_rows": int(len(test_y)),
    }
