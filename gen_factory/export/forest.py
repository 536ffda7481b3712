"""An isolation forest as a torch module, so the ONNX scorer computes it beside the f-AnoGAN score.

Fitted by scikit-learn on the model's normal training values (raw, as a request sends them); the
graph keeps the trees' split features, thresholds and leaf path lengths, never a training row. On a
few dozen rows, or an anomaly past the training range (which the value encoding clamps), the GAN's
residual alone misses what the forest isolates in one split (bench/anomaly_broad.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

FOREST_TREES = 100  # scikit-learn's and PyOD's default
FOREST_SAMPLES = 256  # rows per tree (the paper's and scikit-learn's `auto`)


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean depth at which an unsuccessful binary-search-tree lookup ends among n rows."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 2.0)
    c = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n <= 2, 1.0, c))


class IsolationForestGraph(nn.Module):
    """(values [B, ...] float32) -> isolation score [B] in (0, 1]; higher = isolated sooner = stranger.

    A NaN (a missing value) takes the training mean of its column, as the classic detectors' inputs do.
    """

    def __init__(self, trees: list, fill: np.ndarray, samples: int):
        super().__init__()
        width = max(t.node_count for t in trees)
        arrays = [_tree_arrays(t, width) for t in trees]
        for k, name in enumerate(("feature", "threshold", "left", "right", "path")):
            self.register_buffer(name, torch.from_numpy(np.concatenate([a[k] for a in arrays])))
        self.register_buffer("offset", torch.arange(len(trees), dtype=torch.int64) * width)
        self.register_buffer("fill", torch.from_numpy(fill.astype(np.float32)))
        self.depth = max(t.max_depth for t in trees)
        self.norm = float(average_path_length(np.array([samples]))[0])

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        x = values.reshape(values.shape[0], -1)
        x = torch.where(torch.isnan(x), self.fill, x)
        node = self.offset.unsqueeze(0).expand(x.shape[0], -1)  # [B, trees]: every tree's root
        for _ in range(self.depth):  # a leaf points to itself, so extra steps stay put
            go_left = x.gather(1, self.feature[node]) <= self.threshold[node]
            node = torch.where(go_left, self.left[node], self.right[node])
        return torch.pow(2.0, -self.path[node].mean(dim=1) / self.norm)


def _tree_arrays(tree, width: int) -> tuple[np.ndarray, ...]:
    """One fitted tree as flat arrays padded to `width` nodes; child indices are global (the tree's
    offset added later), leaves loop to themselves and hold depth + c(rows left in them)."""
    n = tree.node_count
    leaf = tree.children_left < 0
    own = np.arange(n)
    depth = np.zeros(n, dtype=np.int64)
    for node in range(n):  # children come after their parent in scikit-learn's node order
        if not leaf[node]:
            depth[tree.children_left[node]] = depth[tree.children_right[node]] = depth[node] + 1
    path = depth + average_path_length(tree.n_node_samples)

    def pad(a: np.ndarray, dtype) -> np.ndarray:
        out = np.zeros(width, dtype=dtype)
        out[:n] = a
        return out

    return (pad(np.where(leaf, 0, tree.feature), np.int64),
            pad(np.where(leaf, 0.0, tree.threshold), np.float32),
            pad(np.where(leaf, own, tree.children_left), np.int64),
            pad(np.where(leaf, own, tree.children_right), np.int64), pad(path, np.float32))


def fit_isolation_forest(values: np.ndarray, seed: int = 0) -> IsolationForestGraph:
    """A forest on normal training values [n, ...] (NaN: missing), at scikit-learn's defaults."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    fill = np.nan_to_num(np.nanmean(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0))
    x = np.where(np.isnan(x), fill, x)
    forest = IsolationForest(n_estimators=FOREST_TREES, max_samples=min(FOREST_SAMPLES, len(x)),
                             random_state=seed).fit(x)
    graph = IsolationForestGraph([e.tree_ for e in forest.estimators_], fill, forest.max_samples_)
    return _global_children(graph)


def _global_children(graph: IsolationForestGraph) -> IsolationForestGraph:
    """Child indices offset by their tree's start, so one gather walks every tree at once."""
    width = len(graph.feature) // len(graph.offset)
    start = graph.offset.repeat_interleave(width)
    graph.left += start
    graph.right += start
    return graph
