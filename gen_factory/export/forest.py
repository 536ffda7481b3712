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
# Leaf path lengths are kept in multiples of this (a change below 1e-4 of a path of ~10), so that a sum
# over the trees is exact in float32 in any order: the tree-ensemble operator and torch agree bit for bit.
PATH_STEP = 2.0 ** -12


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
        return self.from_path(self.mean_path(values))

    def mean_path(self, values: torch.Tensor) -> torch.Tensor:
        """[B]: each row's path length, averaged over the trees (depth + c(rows left in its leaf))."""
        x = values.reshape(values.shape[0], -1)
        x = torch.where(torch.isnan(x), self.fill, x)
        node = self.offset.unsqueeze(0).expand(x.shape[0], -1)  # [B, trees]: every tree's root
        for _ in range(self.depth):  # a leaf points to itself, so extra steps stay put
            go_left = x.gather(1, self.feature[node]) <= self.threshold[node]
            node = torch.where(go_left, self.left[node], self.right[node])
        return self.path[node].sum(dim=1) / len(self.offset)

    def from_path(self, path: torch.Tensor) -> torch.Tensor:
        """The isolation score 2^(-path / c(samples)) of mean path lengths."""
        return torch.pow(2.0, -path / self.norm)


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
    path = np.round((depth + average_path_length(tree.n_node_samples)) / PATH_STEP) * PATH_STEP

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


def with_tree_ensemble(model, forest: IsolationForestGraph, values: str, path: str) -> None:
    """Rewrite an exported ONNX graph `model` (onnx.ModelProto, in place) that takes each row's mean
    path length as the input `path` so that it computes it from its input `values` instead, with
    ONNX-ML's TreeEnsembleRegressor: one operator walking every tree of `forest` natively, where the
    torch module's gather-per-level walk (`IsolationForestGraph.mean_path`) costs ~6x the CPU time
    and was most of the scorer's. NaN takes the column's training mean first, as in the module."""
    from onnx import helper, numpy_helper

    graph = model.graph
    kept = [i for i in graph.input if i.name != path]
    del graph.input[:]
    graph.input.extend(kept)
    fill = numpy_helper.from_array(forest.fill.numpy().astype(np.float32), f"{path}_fill")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), f"{path}_axes")
    trees = numpy_helper.from_array(np.array(len(forest.offset), dtype=np.float32), f"{path}_trees")
    graph.initializer.extend([fill, axes, trees])
    nodes = [
        helper.make_node("Flatten", [values], [f"{path}_x"], axis=1),
        helper.make_node("IsNaN", [f"{path}_x"], [f"{path}_nan"]),
        helper.make_node("Where", [f"{path}_nan", fill.name, f"{path}_x"], [f"{path}_filled"]),
        helper.make_node("TreeEnsembleRegressor", [f"{path}_filled"], [f"{path}_2d"], domain="ai.onnx.ml",
                         **_ensemble_attributes(forest)),
        helper.make_node("Squeeze", [f"{path}_2d", axes.name], [f"{path}_sum"]),
        helper.make_node("Div", [f"{path}_sum", trees.name], [path]),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    if not any(o.domain == "ai.onnx.ml" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))


def _ensemble_attributes(forest: IsolationForestGraph) -> dict:
    """TreeEnsembleRegressor's attributes for `forest`'s trees: every node reachable from each root
    (the module's arrays pad trees to one width), a split's x <= threshold to its left child, each
    leaf's path length as its weight, summed over the trees (exact: PATH_STEP; the graph divides)."""
    feature, threshold = forest.feature.numpy(), forest.threshold.numpy()
    left, right, path = forest.left.numpy(), forest.right.numpy(), forest.path.numpy()
    nodes: dict[str, list] = {k: [] for k in ("treeids", "nodeids", "featureids", "values", "modes",
                                              "truenodeids", "falsenodeids")}
    targets: dict[str, list] = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
    for tree, root in enumerate(forest.offset.tolist()):
        todo = [root]
        while todo:
            node = todo.pop()
            leaf = left[node] == node
            nodes["treeids"].append(tree)
            nodes["nodeids"].append(node - root)
            nodes["featureids"].append(0 if leaf else int(feature[node]))
            nodes["values"].append(0.0 if leaf else float(threshold[node]))
            nodes["modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            nodes["truenodeids"].append(0 if leaf else int(left[node]) - root)
            nodes["falsenodeids"].append(0 if leaf else int(right[node]) - root)
            if leaf:
                for key, value in zip(targets, (tree, node - root, 0, float(path[node])), strict=True):
                    targets[key].append(value)
            else:
                todo += [int(left[node]), int(right[node])]
    return {**{f"nodes_{k}": v for k, v in nodes.items()}, **{f"target_{k}": v for k, v in targets.items()},
            "n_targets": 1, "aggregate_function": "SUM", "post_transform": "NONE"}
