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

Fitted once on the driver, carried as typed column specs (`data.columns`; JSON in the config and
the model card); `encoder()` and `decoder()` are
torch modules exported inside the ONNX graphs, so serving needs no Python transform.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gen_factory.data.columns import (
    MAX_KNOTS,
    CategoricalColumn,
    ContinuousColumn,
    FoldedCategories,
    is_discrete,
    width,
)
from gen_factory.data.conditions import cond_blocks

MAX_MODES = 10
MIN_MODE_WEIGHT = 0.005
ALPHA_SCALE = 4.0
MAX_DECIMALS = 6
TAIL_SCORE, TAIL_PULL = 2.0, 0.5  # see _pull_in_tails
SPIKE_SHARE, SPIKE_ROWS = 0.01, 10  # a value with this share and this many rows keeps its rate (_spikes)
GRID_CELLS = 1024  # per quantile map: 1-4 knots to compare per value (_PiecewiseLinearBank)
MAX_REACH = 4  # a map whose grid cells would hold more compares with every knot (_quantile_banks)
METHODS = ("quantile", "modes")
MIN_CALIBRATION_ROWS = 1000  # generated rows a column's decoder knots are re-placed from (`calibrate`)
MIN_SCORE_STEP = 1e-4  # between re-placed knots: float32 keeps them apart


@dataclass
class TableEncoding:
    """`columns`: one spec per feature column (see `fit_column`); `spans` follow from them."""

    columns: list[CategoricalColumn | ContinuousColumn]

    @classmethod
    def fit(cls, data, seed: int = 0, method: str = "quantile") -> "TableEncoding":
        labels = (data.labels, len(data.label_names))
        return cls(
            [
                fit_column(
                    name,
                    data.features[:, i].astype(np.float64),
                    data.categories.get(name),
                    seed,
                    method,
                    labels,
                    getattr(data, "folded", {}).get(name),
                )
                for i, name in enumerate(data.columns)
            ]
        )

    def spans(self) -> list[tuple[str, int]]:
        """(activation, width) blocks of the encoded row, in order: 'tanh' or 'softmax'."""
        return [span for col in self.columns for span in col.spans()]

    @property
    def width(self) -> int:
        return sum(width(col) for col in self.columns)

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

    def calibrate(self, encoded: np.ndarray, decoded: np.ndarray) -> None:
        """Re-place each quantile column's decoder knots at the generated scores' quantiles of the
        knots' training shares, from rows a trained generator made (`encoded`, and `decoded` by this
        encoding: NaN = missing). The decoder then maps the generator's own score distribution onto the
        training marginal: a GAN draws its tails short (wine's 125-row alcohol: 7 % of the range never
        generated) and its shares a little off, and this undoes both without touching what it learned
        of the rows' joint structure (the map is monotone). The encoder keeps the training scores. In
        place, so that whoever holds this encoding decodes as the shipped graph does."""
        starts = np.cumsum([0] + [width(c) for c in self.columns])[:-1]
        for i, c in enumerate(self.columns):
            if c.kind != "continuous" or c.method != "quantile" or c.low == c.high:
                continue
            present = encoded[~np.isnan(decoded[:, i]), starts[i]]
            if len(present) >= MIN_CALIBRATION_ROWS:
                self.columns[i] = c.model_copy(update={"decode_scores": _calibrated_scores(c, present)})

    def unit(self) -> np.ndarray:
        """Size of one encoded unit in raw values, per output column (parity is judged in these)."""
        return np.asarray([(c.high - c.low) or 1.0 if c.kind == "continuous" else 1.0
                           for c in self.columns], dtype=np.float32)

    def flip_steps(self) -> np.ndarray:
        """Per output column, in raw values, how far float noise can move a value by tipping it across
        one of the decoder's thresholds: 0 with none (a plain continuous column), the grid step of a
        rounded one (1, or 10^-decimals), inf where a threshold picks between values far apart (a
        category, a missing flag, a mode, a discrete value, a spike). Parity forgives rare such flips
        (`export.bundle.parity`)."""
        def step(c) -> float:
            if c.kind == "categorical" or c.missing or c.method == "modes" or c.cuts is not None or c.spikes:
                return np.inf
            if c.integer:
                return 1.0
            return 0.0 if c.decimals is None else 10.0 ** -c.decimals

        return np.asarray([step(c) for c in self.columns])


def fit_column(name: str, x: np.ndarray, categories: list[str] | None, seed: int = 0,
               method: str = "quantile", labels: tuple[np.ndarray, int] | None = None,
               folded: FoldedCategories | None = None) -> CategoricalColumn | ContinuousColumn:
    """The encoding of one column from its values (codes for categorical columns, NaN = missing).

    A categorical column also keeps its training rows per label and category (`label_counts`,
    missing last), which unconditioned sampling draws conditions from (`data.conditions`)."""
    present = ~np.isnan(x)
    missing = bool((~present).any())
    if categories is not None:
        col = CategoricalColumn(name=name, categories=list(categories), missing=missing, folded=folded)
        if labels is None:
            return col
        y, n_labels = labels
        codes = np.where(present, np.nan_to_num(x), len(categories)).astype(np.int64)
        n = width(col)
        counts = np.bincount(y * n + codes, minlength=n_labels * n).reshape(n_labels, n).tolist()
        return col.model_copy(update={"label_counts": counts})
    v = x[present]
    integer = bool(np.all(np.mod(v, 1) == 0))
    if method == "quantile":
        discrete = is_discrete(len(np.unique(v)), integer)
        fitted = dict(zip(("values", "scores"), _knots(v, pull_tails=not discrete), strict=True))
        if discrete:
            fitted["cuts"] = _cuts(v, fitted["values"], fitted["scores"])
        else:
            fitted["spikes"] = _spikes(v, fitted["values"], fitted["scores"]) or None
    else:
        fitted = dict(zip(("means", "stds", "weights"), _modes(v, seed), strict=True))
    return ContinuousColumn(name=name, method=method, low=float(v.min()), high=float(v.max()),
                            integer=integer, decimals=None if integer else _decimals(v), missing=missing,
                            fill=float(np.median(v)), **fitted)


def _knots(v: np.ndarray, pull_tails: bool = True) -> tuple[list[float], list[float]]:
    """Knots (value, normal score) of the empirical CDF at the midpoints of each distinct value's mass."""
    from scipy.stats import norm

    values, counts = np.unique(v, return_counts=True)
    mid = (np.cumsum(counts) - 0.5 * counts) / len(v)
    if len(values) > MAX_KNOTS:  # evenly over the distinct values, and every spike with its neighbours,
        pick = np.round(np.linspace(0, len(values) - 1, MAX_KNOTS)).astype(int)  # so no other value
        spikes = np.flatnonzero(_is_spike(counts, len(v)))  # falls in a spike's interval (`_spikes`)
        near = np.clip(np.concatenate([spikes - 1, spikes, spikes + 1]), 0, len(values) - 1)
        pick = np.union1d(pick, near)
        values, mid = values[pick], mid[pick]
    if len(values) == 1:  # a constant column: any score maps to the value
        return [float(values[0]), float(values[0]) + 1.0], [0.0, 1.0]
    scores = norm.ppf(mid)
    return values.tolist(), (_pull_in_tails(scores) if pull_tails else scores).tolist()


def _spikes(v: np.ndarray, values: list[float], scores: list[float]) -> list[list[float]]:
    """[low, high, value] for each value of a continuous column that holds at least SPIKE_SHARE of the
    rows and SPIKE_ROWS rows (a 0 or -1 among amounts, a list price): decoded values between low and
    high (its share of the CDF, through the decoder's own map) become that value, so its rate is
    kept instead of smeared over its neighbours (issue 16's mixed columns)."""
    from scipy.stats import norm

    distinct, counts = np.unique(v, return_counts=True)
    cum = np.concatenate([[0], np.cumsum(counts)]) / len(v)
    out = []
    for i in np.flatnonzero(_is_spike(counts, len(v))):
        edges = _pull_in_tails(norm.ppf(np.clip(cum[i:i + 2], 1e-9, 1 - 1e-9)))
        low, high = np.interp(edges, scores, values)
        out.append([float(low), float(high), float(distinct[i])])
    return out


def _is_spike(counts: np.ndarray, n: int) -> np.ndarray:
    return (counts >= SPIKE_SHARE * n) & (counts >= SPIKE_ROWS)


def _pull_in_tails(scores: np.ndarray) -> np.ndarray:
    """Normal scores beyond +-TAIL_SCORE come TAIL_PULL times closer: a generator rarely makes a score
    past 3, so the extreme rows (the 1-in-n at +-3.2 for n = 700) were never generated and the
    tails came back cut (issue 16: a maximum of 58.0 never passed 52.4 in 100,000 rows). The map
    stays monotone and exact; only how far out the tails sit in what the GAN learns changes. Not for
    discrete columns: their values are cut at the CDF's steps, and pulling those in cost customers
    0.04 of quality (bench/RESULTS.md)."""
    out = scores.copy()
    far = np.abs(scores) > TAIL_SCORE
    out[far] = np.sign(scores[far]) * (TAIL_SCORE + (np.abs(scores[far]) - TAIL_SCORE) * TAIL_PULL)
    return out


def _unpull(scores: np.ndarray) -> np.ndarray:
    """The inverse of `_pull_in_tails`."""
    out = scores.copy()
    far = np.abs(scores) > TAIL_SCORE
    out[far] = np.sign(scores[far]) * (TAIL_SCORE + (np.abs(scores[far]) - TAIL_SCORE) / TAIL_PULL)
    return out


def _calibrated_scores(column: ContinuousColumn, generated: np.ndarray) -> list[float]:
    """The generated scores' quantiles at each knot's share of the training rows (`_knots`: the normal
    CDF of its score, tails unpulled for the columns whose tails were pulled), kept strictly
    increasing so every segment of the decoder's map has a slope."""
    from scipy.stats import norm

    scores = np.asarray(column.scores, np.float64)
    shares = norm.cdf(scores if column.cuts is not None else _unpull(scores))
    q = np.quantile(generated.astype(np.float64), shares)
    steps = MIN_SCORE_STEP * np.arange(len(q))
    return (np.maximum.accumulate(q - steps) + steps).tolist()


def _cuts(v: np.ndarray, values: list[float], scores: list[float]) -> list[float]:
    """Between consecutive values of a discrete column, the decoded value where the empirical CDF steps:
    the normal score of the cumulative share, through the same linear piece the decoder uses. A score
    between two knots then decodes to the value whose probability mass it falls in."""
    from scipy.stats import norm

    counts = np.unique(v, return_counts=True)[1]
    edges = norm.ppf(np.cumsum(counts)[:-1] / len(v))
    x, s = np.asarray(values), np.asarray(scores)
    t = (edges - s[:-1]) / (s[1:] - s[:-1])
    return (x[:-1] + t * (x[1:] - x[:-1])).tolist()


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
    return (
        bgm.means_.reshape(-1)[keep].tolist(),
        np.maximum(sd, 1e-3 * std).tolist(),
        (w / w.sum()).tolist(),
    )


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


def _grid(xs: np.ndarray, cells: int) -> tuple[float, float, float, np.ndarray, int]:
    """One map's grid: (low, high, step, knots surely passed at each cell's start, reach).

    Everything is computed on the float32 values the graph compares. The reach is the most
    knots any cell can still hold once it is widened by a margin for the float32 rounding of
    the cell index (at least 1).
    """
    knots = xs[1:-1].astype(np.float32).astype(np.float64)
    low, high = float(np.float32(xs[0])), float(np.float32(xs[-1]))
    step = (high - low) / cells  # 0 for a constant column of large magnitude (v and v + 1 equal in float32)
    margin = 0.01 * step + 2 * float(np.spacing(np.float32(max(abs(low), abs(high)))))
    edges = low + step * np.arange(cells + 1)
    first = np.searchsorted(knots, edges[:-1] - margin, side="left")
    last = np.searchsorted(knots, edges[1:] + margin, side="right")
    return low, high, step, first, max(1, int((last - first).max(initial=0)))


class _PiecewiseLinearBank(nn.Module):
    """y[:, c] = f_c(x[:, c]) for C piecewise-linear maps at once, each through its knots
    (xs[i], ys[i]), xs increasing, clamped outside; NaN stays NaN.

    The segment of x (the count of inner knots <= x) is found without comparing x with every
    knot: each map's range is cut into `cells` equal cells, and a row per cell holds how many
    knots lie surely below it and the next `reach` knots (the most any cell holds), the only ones
    x is compared with. With the default grid that is 1-4 comparisons per value instead of ~100
    (per-column decoding was ~2/3 of the bulk generator's time, bench/RESULTS.md), and every
    column goes in one op each; `cells=1` compares with every knot (maps whose knots crowd into
    a few cells, see `_quantile_banks`). The count is exact and the value one multiply-add on
    gathered knots, so ONNX Runtime gives bit-identical rows whatever the batch size (sampling
    in chunks must not change a seed's rows).
    """

    def __init__(self, maps: list[tuple[list[float], list[float]]], cells: int = GRID_CELLS):
        super().__init__()
        xs = [np.asarray(x, np.float64) for x, _ in maps]
        ys = [np.asarray(y, np.float64) for _, y in maps]
        low, high, step, first, reach = zip(*(_grid(x, cells) for x in xs), strict=True)
        reach, segments = max(reach), max(len(x) - 1 for x in xs)
        rows, lines = np.zeros((len(maps), cells, 1 + reach)), np.zeros((len(maps), segments, 3))
        for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
            knots = np.concatenate([x[1:-1], np.full(reach, np.inf)])
            rows[k] = np.concatenate([first[k][:, None], knots[first[k][:, None] + np.arange(reach)]], axis=1)
            lines[k, :len(x) - 1] = np.stack([y[:-1], np.diff(y) / np.diff(x), x[:-1]], axis=1)
        step = np.asarray(step)
        self.cells, self.reach = cells, reach
        self.register_buffer("low", _f32(low))
        self.register_buffer("high", _f32(high))
        self.register_buffer("per_step", _f32(np.divide(1.0, step, out=np.zeros_like(step), where=step > 0)))
        self.register_buffer("row_at", torch.arange(len(maps), dtype=torch.int64) * cells)
        self.register_buffer("rows", _f32(rows.reshape(len(maps) * cells, -1)))  # counts < 2**24: exact
        self.register_buffer("line_at", torch.arange(len(maps), dtype=torch.int64) * segments)
        self.register_buffer("lines", _f32(lines.reshape(len(maps) * segments, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.minimum(torch.maximum(x, self.low), self.high)
        at = torch.where(torch.isnan(t), self.low, t)  # a NaN takes any cell (and comes out NaN below)
        cell = torch.clamp(torch.floor((at - self.low) * self.per_step), 0, self.cells - 1).to(torch.int64)
        row = F.embedding(cell + self.row_at, self.rows)  # [B, C, 1 + reach]; F.embedding: an ONNX Gather
        passed = (t.unsqueeze(2) >= row[:, :, 1:]).to(torch.float32).sum(dim=2)
        i = (row[:, :, 0] + passed).to(torch.int64)
        y0, slope, x0 = F.embedding(i + self.line_at, self.lines).unbind(2)
        return y0 + slope * (t - x0)


def _quantile_banks(columns: list, inverse: bool) -> list[tuple[list[int], _PiecewiseLinearBank]]:
    """The quantile-normalised columns' maps (values -> scores, or back when `inverse`) as at most
    two banks, each with the indices of its columns: one on the grid, and one comparing with every
    knot for maps whose grid cells would hold more than MAX_REACH knots - an outlier squeezes the
    other values into a few cells of a value -> score map, and the bank's reach is its largest."""
    index = [i for i, c in enumerate(columns) if c.kind == "continuous" and c.method == "quantile"]
    maps = {i: (columns[i].decode_scores or columns[i].scores, columns[i].values) if inverse
            else (columns[i].values, columns[i].scores) for i in index}
    fits = {i: _grid(np.asarray(maps[i][0], np.float64), GRID_CELLS)[4] <= MAX_REACH for i in index}
    groups = (([i for i in index if fits[i]], GRID_CELLS), ([i for i in index if not fits[i]], 1))
    return [(cols, _PiecewiseLinearBank([maps[i] for i in cols], cells)) for cols, cells in groups if cols]


def _register_modes(module: nn.Module, columns: list) -> None:
    """Each mode-normalised column's means and stds as buffers (encoder and decoder share them)."""
    for i, c in enumerate(columns):
        if c.kind == "continuous" and c.method == "modes":
            module.register_buffer(f"mu{i}", _f32(c.means))
            module.register_buffer(f"sd{i}", _f32(c.stds))


class _Encoder(nn.Module):
    """raw values [B, d] (codes for categories, NaN = missing) -> encoded rows [B, width]."""

    def __init__(self, columns: list):
        super().__init__()
        self.columns = columns
        self.banks = nn.ModuleList()
        self.bank_of: dict[int, tuple[int, int]] = {}  # quantile column -> (bank, position in it)
        for g, (cols, bank) in enumerate(_quantile_banks(columns, inverse=False)):
            self.banks.append(bank)
            self.register_buffer(f"cols{g}", torch.tensor(cols, dtype=torch.int64))
            self.register_buffer(f"fill{g}", _f32([columns[i].fill for i in cols]))
            self.bank_of.update({i: (g, j) for j, i in enumerate(cols)})
        _register_modes(self, columns)
        for i, c in enumerate(columns):
            if c.kind == "continuous" and c.method == "modes":
                self.register_buffer(f"logw{i}", _f32(np.log(c.weights)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = []  # every quantile column at once, per bank
        for g, bank in enumerate(self.banks):
            q = x[:, getattr(self, f"cols{g}")]
            scores.append(bank(torch.where(torch.isnan(q), getattr(self, f"fill{g}"), q)))
        parts = []
        for i, c in enumerate(self.columns):
            v = x[:, i]
            absent = torch.isnan(v)
            if c.kind == "categorical":
                n = len(c.categories)
                code = torch.where(absent, torch.full_like(v, n), v)
                parts.append(_one_hot(code.to(torch.int64), width(c)))
                continue
            if c.method == "quantile":
                g, j = self.bank_of[i]
                parts.append(scores[g][:, j:j + 1])
            else:
                v = torch.where(absent, torch.full_like(v, c.fill), v)
                mu, sd = getattr(self, f"mu{i}"), getattr(self, f"sd{i}")
                z = (v.unsqueeze(1) - mu) / sd
                k = torch.argmax(getattr(self, f"logw{i}") - torch.log(sd) - 0.5 * z * z, dim=1)
                alpha = torch.clamp((v - mu[k]) / (ALPHA_SCALE * sd[k]), -0.99, 0.99)
                parts += [alpha.unsqueeze(1), _one_hot(k, len(c.means))]
            if c.missing:
                parts.append(_one_hot(absent.to(torch.int64), 2))
        return torch.cat(parts, dim=1)


class _Decoder(nn.Module):
    """encoded rows [B, width] (generator output after its activations) -> raw values [B, d].

    Quantile columns are decoded all at once; mode and categorical columns one by one. Clipping
    to the observed range, rounding and missing values are then applied to every column at once.
    """

    def __init__(self, columns: list):
        super().__init__()
        self.columns = columns
        banks = _quantile_banks(columns, inverse=True)
        self.banks = nn.ModuleList(bank for _, bank in banks)
        quantile = [i for cols, _ in banks for i in cols]
        _register_modes(self, columns)
        starts = np.cumsum([0] + [width(c) for c in columns])[:-1].tolist()
        self.starts = starts
        for g, (cols, _) in enumerate(banks):
            self.register_buffer(f"at{g}", torch.tensor([starts[i] for i in cols], dtype=torch.int64))
        rest = [i for i in range(len(columns)) if i not in quantile]
        order = np.argsort(quantile + rest)  # decoded as [quantile..., rest...], returned in column order
        self.register_buffer(
            "order", None if np.array_equal(order, np.arange(len(columns))) else torch.tensor(order)
        )
        continuous = [c.kind == "continuous" for c in columns]
        self.register_buffer(
            "low", _f32([c.low if k else -np.inf for c, k in zip(columns, continuous, strict=True)])
        )
        self.register_buffer(
            "high", _f32([c.high if k else np.inf for c, k in zip(columns, continuous, strict=True)])
        )
        self.rounded = [
            k and (c.integer or c.decimals is not None)
            for c, k in zip(columns, continuous, strict=True)
        ]
        self.register_buffer("scale", _f32([10.0 ** c.decimals if r and not c.integer else 1.0
                                            for c, r in zip(columns, self.rounded, strict=True)]))
        self.register_buffer("round_mask", torch.tensor(self.rounded))
        _register_snaps(self, columns)
        _register_spikes(self, columns)
        self.missing = [i for i, c in enumerate(columns) if c.missing]
        spread = np.zeros((len(self.missing), len(columns)), np.float32)  # missing column j -> output column
        spread[np.arange(len(self.missing)), self.missing] = 1.0
        self.register_buffer("spread", torch.from_numpy(spread))
        self.n_uniforms = sampling_uniforms(columns)

    def forward(self, e: torch.Tensor, uniforms: torch.Tensor | None = None) -> torch.Tensor:
        """`uniforms` [B, n_uniforms], one per categorical column and per continuous column with missing
        values in column order, sample each category and missing flag as training did (the
        Gumbel-softmax samples the block: a category comes out with its generated probability);
        without them the likeliest slot wins, which loses rare missing values and moves rows to
        each column's commonest categories (issue 16)."""
        decoded = [bank(e[:, getattr(self, f"at{g}")]) for g, bank in enumerate(self.banks)]
        u = 0
        absent = []
        for i, c in enumerate(self.columns):
            at = self.starts[i]
            if c.kind == "categorical":
                block = e[:, at:at + width(c)]
                k = torch.argmax(block, dim=1) if uniforms is None else _draw(block, uniforms[:, u])
                u += uniforms is not None
                decoded.append(k.to(e.dtype).unsqueeze(1))
                if c.missing:
                    absent.append(k == len(c.categories))
                continue
            value = 1  # the value's own span; the missing flag's two slots follow it
            if c.method == "modes":
                value += len(c.means)
                k = torch.argmax(e[:, at + 1:at + value], dim=1)
                mu, sd = getattr(self, f"mu{i}"), getattr(self, f"sd{i}")
                decoded.append((e[:, at] * ALPHA_SCALE * sd[k] + mu[k]).unsqueeze(1))
            if c.missing:
                if uniforms is None:
                    absent.append(e[:, at + value + 1] > e[:, at + value])
                else:  # the block is a softmax: its second slot is the probability of missing
                    absent.append(uniforms[:, u] < e[:, at + value + 1])
                    u += 1
        v = torch.cat(decoded, dim=1)
        if self.order is not None:
            v = v[:, self.order]
        v = torch.minimum(torch.maximum(v, self.low), self.high)
        if self.snap_at is not None:  # discrete columns: the value whose share the decoded one falls in
            step = (v[:, self.snap_at].unsqueeze(2) > self.snap_cuts).sum(dim=2)
            snapped = F.embedding(step + self.snap_row, self.snap_values).squeeze(2)
            v = torch.where(self.snap_mask, snapped @ self.snap_spread, v)
        if self.spike_at is not None:  # a decoded value inside a spike's share of the CDF is the spike
            at = v[:, self.spike_at]
            hit = ((at > self.spike_low) & (at < self.spike_high)).to(v.dtype)
            v = v + (hit * (self.spike_value - at)) @ self.spike_spread
        if any(self.rounded):
            v = torch.where(self.round_mask, torch.round(v * self.scale) / self.scale, v)
        if absent:
            hit = torch.stack(absent, dim=1).to(e.dtype) @ self.spread
            v = torch.where(hit > 0, torch.full_like(v, float("nan")), v)
        return v


def sampling_uniforms(columns: list) -> int:
    """Uniforms one sampled row takes (`_Decoder`): one per categorical column, one per continuous
    column with a missing-value flag."""
    return sum(c.kind == "categorical" or c.missing for c in columns)


def _draw(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The slot of each row of `probs` [B, n] that uniform `u` [B] falls in (inverse CDF). A one-hot
    row (a forced condition) gives its slot for any u, since u is kept off 0 and 1; the total is
    taken from the row, so float rounding of a softmax never points past the last slot."""
    u = torch.clamp(u, 1e-6, 1.0 - 1e-6) * probs.sum(dim=1)
    return (torch.cumsum(probs[:, :-1], dim=1) < u.unsqueeze(1)).sum(dim=1)


def _register_spikes(module: nn.Module, columns: list) -> None:
    """Every spike of every continuous column as one row of flat buffers (`spike_at` its column)."""
    rows = [(i, *spike) for i, c in enumerate(columns) if c.kind == "continuous" and c.spikes
            for spike in c.spikes]
    at = torch.tensor([r[0] for r in rows], dtype=torch.int64) if rows else None
    module.register_buffer("spike_at", at)
    if not rows:
        return
    for k, name in enumerate(("spike_low", "spike_high", "spike_value"), start=1):
        module.register_buffer(name, _f32([r[k] for r in rows]))
    spread = np.zeros((len(rows), len(columns)), np.float32)
    spread[np.arange(len(rows)), [r[0] for r in rows]] = 1.0
    module.register_buffer("spike_spread", torch.from_numpy(spread))


def _register_snaps(module: nn.Module, columns: list) -> None:
    """The discrete columns' cuts and values as padded buffers, so the decoder snaps them all at once:
    `snap_at` their indices, `snap_row` each one's first row of `snap_values`, `snap_spread` back to
    the output columns (one-hot rows) and `snap_mask` which output columns take the snapped value."""
    at = [i for i, c in enumerate(columns) if c.kind == "continuous" and c.cuts is not None]
    module.register_buffer("snap_at", torch.tensor(at, dtype=torch.int64) if at else None)
    if not at:
        return
    k = max(len(columns[i].values) for i in at)
    cuts = np.full((len(at), k - 1), np.inf)
    values = np.zeros((len(at), k))
    for j, i in enumerate(at):
        cuts[j, :len(columns[i].cuts)] = columns[i].cuts
        values[j, :len(columns[i].values)] = columns[i].values
    spread = np.zeros((len(at), len(columns)), np.float32)
    spread[np.arange(len(at)), at] = 1.0
    module.register_buffer("snap_cuts", _f32(cuts))
    module.register_buffer("snap_row", torch.arange(len(at), dtype=torch.int64) * k)
    module.register_buffer("snap_values", _f32(values.reshape(-1, 1)))
    module.register_buffer("snap_spread", torch.from_numpy(spread))
    module.register_buffer("snap_mask", torch.from_numpy(spread.any(axis=0)))


class _Force(nn.Module):
    """Exact conditions: where a row's cond block is set, the column's one-hot span becomes that
    block, so the decoder returns the requested category whatever the generator made (a one-hot
    block samples to its own slot)."""

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
