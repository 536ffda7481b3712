"""Reversible table encoding for the GAN: mode-specific normalization, one-hot categories, missing flags.

Per column:
- continuous, method "quantile" (the default, chosen by measurement: bench/RESULTS.md): the value
  goes through its empirical CDF to a standard normal score (a monotone piecewise-linear map of
  at most 100 knots, inverted exactly by the decoder), so every marginal is easy for the GAN and
  the decoder restores its shape; method "modes" is CTGAN's mode-specific normalization (Xu et
  al. 2019): a variational Gaussian mixture picks the modes, a value is encoded as its most likely
  mode (one-hot) and its offset alpha = (x - mu_k) / (4 sigma_k) in [-1, 1];
  decoding clips to the observed range and restores whole numbers / decimal places;
- categorical: one-hot over the categories; decoding gives the category index (strings are
  restored from the card's vocabulary), so that an index can also be forced (exact conditions);
- missing values: a two-way flag (continuous) or an extra category; decoding gives NaN.

Fitted once on the driver, carried as JSON (config, model card); `encoder()` and `decoder()` are
torch modules exported inside the ONNX graphs, so serving needs no Python transform.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gen_factory.data.conditions import cond_blocks

MAX_MODES = 10
MIN_MODE_WEIGHT = 0.005
ALPHA_SCALE = 4.0
MAX_DECIMALS = 6
MAX_KNOTS = 100
METHODS = ("quantile", "modes")


@dataclass
class TableEncoding:
    """`columns`: one dict per feature column (see `fit_column`); `spans` follow from them."""

    columns: list[dict]

    @classmethod
    def fit(cls, data, seed: int = 0, method: str = "quantile") -> "TableEncoding":
        labels = (data.labels, len(data.label_names))
        return cls([fit_column(name, data.features[:, i].astype(np.float64), data.categories.get(name), seed, method,
                               labels) for i, name in enumerate(data.columns)])

    def spans(self) -> list[tuple[str, int]]:
        """(activation, width) blocks of the encoded row, in order: 'tanh' or 'softmax'."""
        out: list[tuple[str, int]] = []
        for col in self.columns:
            if col["kind"] == "continuous":
                out += [("linear", 1)] if col["method"] == "quantile" else [("tanh", 1), ("softmax", len(col["means"]))]
                if col["missing"]:
                    out.append(("softmax", 2))
            else:
                out.append(("softmax", len(col["categories"]) + int(col["missing"])))
        return out

    @property
    def width(self) -> int:
        return sum(w for _, w in self.spans())

    def encode(self, values: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.encoder()(torch.from_numpy(np.asarray(values, dtype=np.float32))).numpy()

    def encoder(self) -> nn.Module:
        return _Encoder(self.columns)

    def decoder(self) -> nn.Module:
        return _Decoder(self.columns)

    def forcer(self) -> nn.Module:
        """(encoded rows, cond vectors) -> encoded rows whose conditioned columns hold their condition."""
        return _Force(cond_blocks(self.columns))

    def unit(self) -> np.ndarray:
        """Size of one encoded unit in raw values, per output column (parity is judged in these)."""
        return np.asarray([(c["high"] - c["low"]) or 1.0 if c["kind"] == "continuous" else 1.0
                           for c in self.columns], dtype=np.float32)


def fit_column(name: str, x: np.ndarray, categories: list[str] | None, seed: int = 0,
               method: str = "quantile", labels: tuple[np.ndarray, int] | None = None) -> dict:
    """The encoding of one column from its values (codes for categorical columns, NaN = missing).

    A categorical column also keeps its training rows per label and category (`label_counts`,
    missing last), which unconditioned sampling draws conditions from (`data.conditions`)."""
    present = ~np.isnan(x)
    missing = bool((~present).any())
    if categories is not None:
        col = {"name": name, "kind": "categorical", "categories": list(categories), "missing": missing}
        if labels is not None:
            y, n_labels = labels
            codes = np.where(present, np.nan_to_num(x), len(categories)).astype(np.int64)
            width = len(categories) + int(missing)
            col["label_counts"] = np.bincount(y * width + codes, minlength=n_labels * width).reshape(
                n_labels, width).tolist()
        return col
    v = x[present]
    integer = bool(np.all(np.mod(v, 1) == 0))
    col = {"name": name, "kind": "continuous", "method": method, "low": float(v.min()), "high": float(v.max()),
           "integer": integer, "decimals": None if integer else _decimals(v), "missing": missing,
           "fill": float(np.median(v))}
    if method == "quantile":
        col["values"], col["scores"] = _knots(v)
    else:
        col["means"], col["stds"], col["weights"] = _modes(v, seed)
    return col


def _knots(v: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots (value, normal score) of the empirical CDF at the midpoints of each distinct value's mass."""
    from scipy.stats import norm

    values, counts = np.unique(v, return_counts=True)
    mid = (np.cumsum(counts) - 0.5 * counts) / len(v)
    if len(values) > MAX_KNOTS:
        pick = np.unique(np.round(np.linspace(0, len(values) - 1, MAX_KNOTS)).astype(int))
        values, mid = values[pick], mid[pick]
    if len(values) == 1:  # a constant column: any score maps to the value
        return [float(values[0]), float(values[0]) + 1.0], [0.0, 1.0]
    return values.tolist(), norm.ppf(mid).tolist()


def _modes(v: np.ndarray, seed: int) -> tuple[list[float], list[float], list[float]]:
    """Means, stds and weights of the mixture components that carry weight (at least one)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    std = float(v.std()) or 1.0
    if len(np.unique(v)) < 2:
        return [float(v.mean())], [std], [1.0]
    bgm = BayesianGaussianMixture(n_components=min(MAX_MODES, len(np.unique(v))),
                                  weight_concentration_prior_type="dirichlet_process",
                                  weight_concentration_prior=1e-3, max_iter=100, random_state=seed)
    with warnings.catch_warnings():  # a mode that has not converged in 100 steps is still a fine mode
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(v.reshape(-1, 1))
    keep = bgm.weights_ > MIN_MODE_WEIGHT
    sd = np.sqrt(bgm.covariances_.reshape(-1))[keep]
    w = bgm.weights_[keep]
    return (bgm.means_.reshape(-1)[keep].tolist(), np.maximum(sd, 1e-3 * std).tolist(), (w / w.sum()).tolist())


def _decimals(v: np.ndarray) -> int | None:
    """Fewest decimal places that hold every value (float32 input: relative tolerance), if <= 6."""
    for d in range(1, MAX_DECIMALS + 1):
        scaled = v * 10.0 ** d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return d
    return None


def _f32(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    return (index.unsqueeze(1) == torch.arange(n, device=index.device)).to(torch.float32)


class _PiecewiseLinear(nn.Module):
    """y = f(x) through the knots (xs[i], ys[i]), xs increasing, clamped outside.

    The segment index is a count of knots passed and the value one multiply-add on gathered
    knots: no rounding anywhere, so ONNX Runtime gives bit-identical rows whatever the batch size
    (sampling in chunks must not change a seed's rows). The count is a float32 sum of 0/1 (exact
    below 2**24) and the knots are one [K, 3] table gathered once: an int64 sum and three indexings
    per column cost ~5x the generator's GEMMs (ONNX Runtime profile of the breast_cancer graph).
    """

    def __init__(self, xs: list[float], ys: list[float]):
        super().__init__()
        x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        self.register_buffer("inner", _f32(x[1:-1]))
        self.register_buffer("knots", _f32(np.stack([y[:-1], np.diff(y) / np.diff(x), x[:-1]], axis=1)))
        self.low, self.high = float(x[0]), float(x[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.clamp(x, self.low, self.high)
        i = (t.unsqueeze(1) >= self.inner).to(torch.float32).sum(dim=1).to(torch.int64)
        y0, slope, x0 = self.knots.index_select(0, i).unbind(1)
        return y0 + slope * (t - x0)


def _register_columns(module: nn.Module, columns: list[dict], inverse: bool) -> None:
    """What encoder and decoder share: the quantile maps (values -> scores, or back when `inverse`)
    and each mode-normalised column's means and stds as buffers."""
    module.columns = columns
    module.maps = nn.ModuleDict({
        str(i): _PiecewiseLinear(*((c["scores"], c["values"]) if inverse else (c["values"], c["scores"])))
        for i, c in enumerate(columns) if c["kind"] == "continuous" and c["method"] == "quantile"})
    for i, c in enumerate(columns):
        if c["kind"] == "continuous" and c["method"] == "modes":
            module.register_buffer(f"mu{i}", _f32(c["means"]))
            module.register_buffer(f"sd{i}", _f32(c["stds"]))


class _Encoder(nn.Module):
    """raw values [B, d] (codes for categories, NaN = missing) -> encoded rows [B, width]."""

    def __init__(self, columns: list[dict]):
        super().__init__()
        _register_columns(self, columns, inverse=False)
        for i, c in enumerate(columns):
            if c["kind"] == "continuous" and c["method"] == "modes":
                self.register_buffer(f"logw{i}", _f32(np.log(c["weights"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for i, c in enumerate(self.columns):
            v = x[:, i]
            absent = torch.isnan(v)
            if c["kind"] == "categorical":
                n = len(c["categories"])
                code = torch.where(absent, torch.full_like(v, n), v)
                parts.append(_one_hot(code.to(torch.int64), n + int(c["missing"])))
                continue
            v = torch.where(absent, torch.full_like(v, c["fill"]), v)
            if c["method"] == "quantile":
                parts.append(self.maps[str(i)](v).unsqueeze(1))
            else:
                mu, sd = getattr(self, f"mu{i}"), getattr(self, f"sd{i}")
                z = (v.unsqueeze(1) - mu) / sd
                k = torch.argmax(getattr(self, f"logw{i}") - torch.log(sd) - 0.5 * z * z, dim=1)
                alpha = torch.clamp((v - mu[k]) / (ALPHA_SCALE * sd[k]), -0.99, 0.99)
                parts += [alpha.unsqueeze(1), _one_hot(k, len(c["means"]))]
            if c["missing"]:
                parts.append(_one_hot(absent.to(torch.int64), 2))
        return torch.cat(parts, dim=1)


class _Decoder(nn.Module):
    """encoded rows [B, width] (generator output after its activations) -> raw values [B, d]."""

    def __init__(self, columns: list[dict]):
        super().__init__()
        _register_columns(self, columns, inverse=True)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        out, at = [], 0
        nan = torch.tensor(float("nan"), dtype=e.dtype, device=e.device)
        for i, c in enumerate(self.columns):
            if c["kind"] == "continuous":
                if c["method"] == "quantile":
                    v = self.maps[str(i)](e[:, at])
                    at += 1
                else:
                    k_modes = len(c["means"])
                    k = torch.argmax(e[:, at + 1:at + 1 + k_modes], dim=1)
                    mu, sd = getattr(self, f"mu{i}"), getattr(self, f"sd{i}")
                    v = e[:, at] * ALPHA_SCALE * sd[k] + mu[k]
                    at += 1 + k_modes
                v = torch.clamp(v, c["low"], c["high"])
                if c["integer"]:
                    v = torch.round(v)
                elif c["decimals"] is not None:
                    scale = 10.0 ** c["decimals"]
                    v = torch.round(v * scale) / scale
                if c["missing"]:
                    v = torch.where(e[:, at + 1] > e[:, at], nan, v)
                    at += 2
            else:
                n = len(c["categories"]) + int(c["missing"])
                k = torch.argmax(e[:, at:at + n], dim=1).to(e.dtype)
                v = torch.where(k == len(c["categories"]), nan, k) if c["missing"] else k
                at += n
            out.append(v)
        return torch.stack(out, dim=1)


class _Force(nn.Module):
    """Exact conditions: where a row's cond block is set, the column's one-hot span becomes that
    block, so the decoder's argmax returns the requested category whatever the generator made."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, e: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        parts, at = [], 0
        for b in self.blocks:
            block = cond[:, b.offset:b.offset + b.width]
            parts += [e[:, at:b.span],
                      torch.where(block.sum(dim=1, keepdim=True) > 0, block, e[:, b.span:b.span + b.width])]
            at = b.span + b.width
        return torch.cat(parts + [e[:, at:]], dim=1)
