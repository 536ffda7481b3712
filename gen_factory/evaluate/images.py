"""Image quality without Inception weights: CAS, a feature-space Fréchet distance, k-NN precision /
recall and a per-class mode-collapse check.

The feature space is the penultimate layer of a small CNN trained in-process on the real
training images (seeded, so the same data give the same features). It knows these classes,
which makes its distances more telling than generic ImageNet features on 8x8 digits.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

COLLAPSE_RATIO = 0.5  # a class whose samples spread less than half as much as the real ones is flagged
# Feature-net training stops after this many samples, at least one epoch (20 epochs of digits' 1,257
# images is 25k; on MNIST's 42k-60k one epoch already gives about 0.98 test accuracy).
FEATURE_SAMPLES = 30_000
# k-NN manifolds, per-class spreads and label fidelity's SVC use at most this many real training images
# (a pairwise distance matrix of MNIST's 60k would take 29 GB); smaller sets are used whole.
MANIFOLD_SAMPLES = 5_000
FEATURE_BATCH = 64  # images per optimizer step of a FeatureSpace's classifier


class FeatureNet(nn.Module):
    """Two convs (the second strided) + pooling to a fixed 4x4 grid -> 128 features -> logits; any size."""

    def __init__(self, channels: int, n_labels: int, features: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, features), nn.ReLU())
        self.head = nn.Linear(features, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FeatureSpace:
    """A classifier trained on real images; `features` maps raw-range images to its embedding.

    It trains `epochs` epochs, at most `max_samples` samples' worth (at least one epoch); None: all
    `epochs`. `self.epochs` is what it trained. `decay`: the learning rate falls to 0 along a cosine
    over all steps (the CAS CNN's, which must reach ~0.99 on real MNIST; the pipeline's feature space
    trains at a constant rate)."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, n_labels: int, seed: int = 0, epochs: int = 20,
        max_samples: int | None = FEATURE_SAMPLES, decay: bool = False,
    ):
        self.low, self.high = float(images.min()), float(images.max())
        self.epochs = max(1, epochs if max_samples is None else min(epochs, max_samples // len(images)))
        torch.manual_seed(seed)
        self.net = FeatureNet(images.shape[1], n_labels)
        x, y = self._scale(images), torch.as_tensor(labels, dtype=torch.long)
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        steps = self.epochs * -(-len(x) // FEATURE_BATCH)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if decay else None
        order = torch.Generator().manual_seed(seed)
        self.net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=order)
            for i in range(0, len(x), FEATURE_BATCH):
                idx = perm[i:i + FEATURE_BATCH]
                loss = nn.functional.cross_entropy(self.net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if schedule:
                    schedule.step()
        self.net.eval()

    def _scale(self, images: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(
            (images - self.low) / max(self.high - self.low, 1e-12) * 2 - 1, dtype=torch.float32
        )

    @torch.no_grad()
    def features(self, images: np.ndarray) -> np.ndarray:
        x = self._scale(images)
        return np.concatenate(
            [self.net.body(x[i : i + 1024]).numpy() for i in range(0, len(x), 1024)]
        ).astype(np.float64)

    @torch.no_grad()
    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return float((self.net(self._scale(images)).argmax(1).numpy() == labels).mean())


def classification_accuracy_score(fake_x: np.ndarray, fake_y: np.ndarray, test_x: np.ndarray,
                                  test_y: np.ndarray) -> float:
    """CAS (Ravuri & Vinyals 2019): an SVC trained only on generated images, scored on real held-out ones."""
    from sklearn.svm import SVC

    clf = SVC(gamma="scale").fit(fake_x.reshape(len(fake_x), -1), fake_y)
    return float(clf.score(test_x.reshape(len(test_x), -1), test_y))


def cnn_classification_accuracy_score(fake_x: np.ndarray, fake_y: np.ndarray, test_x: np.ndarray,
                                      test_y: np.ndarray, n_labels: int, seed: int = 0,
                                      epochs: int = 10) -> float:
    """CAS with a small CNN (FeatureNet) trained only on generated images, scored on real held-out
    ones: the classifier the MNIST figures use (an SVC on raw pixels underrates 28x28 digits). It
    trains every one of `epochs` with a cosine learning-rate decay: at a constant rate, 10 epochs of
    10k real MNIST images scored 0.9747, under the 0.98 goal it is meant to measure; decayed, 0.9776,
    and on 60k real images 0.9912 (bench/RESULTS.md, session 10)."""
    space = FeatureSpace(fake_x, fake_y, n_labels, seed, epochs, max_samples=None, decay=True)
    return space.accuracy(test_x, test_y)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) between Gaussians fitted to two feature sets."""
    from scipy import linalg

    mu_r, mu_f = real.mean(0), fake.mean(0)
    s_r, s_f = (np.atleast_2d(np.cov(x, rowvar=False)) for x in (real, fake))  # 1 feature: a 0-d cov
    # Dead ReLU features make both covariances singular: regularise as the FID reference code does.
    eps = np.eye(len(s_r)) * 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm((s_r + eps) @ (s_f + eps))
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(s_r + s_f - 2 * covmean.real))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """k-NN manifold precision / recall (Kynkäänniemi et al. 2019).

    Precision: share of generated samples inside the real manifold (the union of balls reaching
    each real sample's k-th neighbour); recall: share of real samples inside the generated one.
    """
    def radii(x: np.ndarray) -> np.ndarray:
        d = _pairwise(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def coverage(points: np.ndarray, centres: np.ndarray, r: np.ndarray) -> float:
        return float((_pairwise(points, centres) <= r[None, :]).any(axis=1).mean())

    return coverage(fake, real, radii(real)), coverage(real, fake, radii(fake))


def class_diversity(feats: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Mean pairwise feature distance within each class (NaN for a class with < 2 samples)."""
    out = np.full(n_labels, np.nan)
    for k in range(n_labels):
        f = feats[labels == k]
        if len(f) > 1:
            d = _pairwise(f, f)
            out[k] = d.sum() / (len(f) * (len(f) - 1))
    return out


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def image_quality(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                  fake_x: np.ndarray, fake_y: np.ndarray, label_names: list[str], seed: int = 0,
                  space: FeatureSpace | None = None) -> dict:
    """Every image figure at once; flat floats (MLflow-ready) plus `mode_collapse`, the flagged classes.

    `space` reuses a feature network already trained on `train_x` (evaluating several models).
    """
    from gen_factory.evaluate.fidelity import label_fidelity

    n = len(label_names)
    space = space or FeatureSpace(train_x, train_y, n, seed)
    rng = np.random.default_rng(seed)
    if len(train_x) > MANIFOLD_SAMPLES:  # label fidelity too: an RBF SVC on 42k+ images takes many minutes
        keep = np.sort(rng.choice(len(train_x), size=MANIFOLD_SAMPLES, replace=False))
        train_x, train_y = train_x[keep], train_y[keep]
    fid = label_fidelity(train_x, train_y, fake_x, fake_y, n)
    real_f, fake_f = space.features(test_x), space.features(fake_x)
    train_f = space.features(train_x)
    # Compare like with like: as many generated as real samples for the manifold estimates.
    pick = rng.choice(len(fake_f), size=min(len(fake_f), len(train_f)), replace=False)
    precision, recall = precision_recall(train_f, fake_f[pick])
    ratio = class_diversity(fake_f, fake_y, n) / class_diversity(train_f, train_y, n)
    collapsed = [name for name, r in zip(label_names, ratio, strict=True) if r < COLLAPSE_RATIO]
    out = {
        "cas": classification_accuracy_score(fake_x, fake_y, test_x, test_y),
        "label_fidelity": fid["accuracy"],
        "frechet_distance": frechet_distance(real_f, fake_f),
        "frechet_distance_real": frechet_distance(real_f, train_f),  # the floor: real test vs real train
        "precision": precision, "recall": recall,
        "feature_net_accuracy": space.accuracy(test_x, test_y),
        "diversity_ratio_min": float(np.nanmin(ratio)),
    }
    for name, acc, r in zip(label_names, fid["per_label"], ratio, strict=True):
        out[f"label_fidelity_{name}"] = acc
        out[f"diversity_ratio_{name}"] = float(r)
    out["mode_collapse"] = collapsed
    return out


def save_class_grids(images: np.ndarray, labels: np.ndarray, label_names: list[str], out_dir,
                     per_class: int = 64) -> list:
    """One PNG per class (an 8-wide grid of its first `per_class` samples), pixels scaled to 0..255."""
    from pathlib import Path

    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    low, high = float(images.min()), float(images.max())
    paths = []
    for k, name in enumerate(label_names):
        x = images[labels == k][:per_class]
        if not len(x):
            continue
        cols = min(8, len(x))
        rows = -(-len(x) // cols)
        c, h, w = x.shape[1:]
        pad = np.full((rows * cols, c, h, w), low, dtype=np.float32)
        pad[:len(x)] = x
        grid = pad.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
        grid = ((grid - low) / max(high - low, 1e-12) * 255).clip(0, 255).astype(np.uint8)
        scale = max(1, 32 // h)
        img = Image.fromarray(grid[..., 0] if c == 1 else grid).resize((cols * w * scale, rows * h * scale),
                                                                         Image.NEAREST)
        path = out_dir / f"class_{_safe(name)}.png"
        img.save(path)
        paths.append(path)
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
