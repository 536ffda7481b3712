"""Export to ONNX: the generator with its decoding; the anomaly scorer (discriminator, encoder and
generator) with the value encoding in front.

The graphs take and return *real* values (table columns, pixels), so serving needs neither torch
nor Python-side transforms. Each export is parity-checked against torch on fresh random inputs,
and a JSON model card says everything a consumer needs: schema, label names, noise size, metrics.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gen_factory.card import (
    ATTRIBUTION_OUTPUT,
    ENCODER_FILE,
    GENERATOR_FILE,
    NOVELTY_METHOD,
    SCORE_METHODS,
    SCORER_FILE,
    BundleFiles,
    EnsembleParts,
    ModelCard,
    ScoreAttribution,
    write_card,
)
from gen_factory.data.columns import width
from gen_factory.data.conditions import FREE, cond_blocks, implicit_codes, one_hot
from gen_factory.data.table_transformer import TableEncoding, sampling_uniforms
from gen_factory.data.transform import encoding_spec
from gen_factory.export.forest import IsolationForestGraph, fit_isolation_forest, with_tree_ensemble
from gen_factory.export.precision import add_precision
from gen_factory.train.encoder import ScoreScales

PARITY_TOLERANCE = 1e-4
PARITY_ROWS = 37  # fresh input rows an exported graph is checked on (the scorer: each with every label)
GENERATOR_PARITY_ROWS = 256  # a table generator's: enough for FLIP_SHARE to mean something
FLIP_SHARE = 0.01  # per column, the share of a generator's values that may flip at a threshold (`parity`)
GRID_POINTS = 257  # quantiles of each score on normal training data that the ensemble compares against
OPSET = 20  # the opset torch.export's exporter wrote before (models in the registry are on it too)
FREE_SHARE_ROWS = 4000  # rows per label generated to measure the category shares of free rows
CALIBRATION_ROWS = 50_000  # rows generated to place a table decoder's knots (`calibrate_decoder`)
DECODE_PIECE_ROWS = 8_192  # `calibrate_decoder` runs the networks over that many rows at a time
ATTRIBUTION_QUANTILE = 0.9  # each column's contribution is in units of this quantile on normal rows
ATTRIBUTION_FLOOR = 0.01  # ... floored at this share of the columns' mean (and each sd likewise)
# An image's per-pixel scores are averaged over each pixel's 3x3 neighbourhood with these binomial
# weights (outer product; ~ a Gaussian of sd 0.7 px) before calibration: bench/attribution.py.
PIXEL_SMOOTHING: tuple[float, ...] | None = (1.0, 2.0, 1.0)
# The f-AnoGAN residual joins the ensemble only where G(E(x)) explains at least this share of the
# normal training inputs' variance (R^2, encoded): an f-AnoGAN that does not rebuild its inputs
# measures their size, not their fit (one-class MNIST: R^2 ~0.01, the residual ranked images by
# ink, AUROC 0.49 against the forest's 0.86; bench/RESULTS.md, session 11).
MIN_RECONSTRUCTION_R2 = 0.5
# A table row's novelty (`Novelty`): a category the model never saw, or a missing value in a column that
# was never missing, counts as a number this many training standard deviations past its column's range.
NOVEL_UNITS = 4.0
# ... and its column's attribution grows by this much (10 times what one normal row in ten exceeds).
NOVEL_CONTRIBUTION = 10.0
# An image's `knn` score: the distance to its KNN_NEIGHBOURS-th nearest normal training image (PyOD's
# KNN default), in the model's pixel encoding, unstandardised. On one-class MNIST it beats PyOD's KNN on
# standardised pixels and the isolation forest on every digit (bench/mnist_anomaly.py: mean AUROC 0.9366
# vs 0.9014 and 0.8567; 8x8 digits 0.993 vs 0.976): images' ensemble takes it instead of the forest.
KNN_NEIGHBOURS = 5
# ... among at most this many encoded values (rows x pixels x channels; 16 MB as float32): every
# calibration image at 28x28 (5,000 x 784), a seeded sample of them for larger images (325 at 3x64x64).
KNN_REFERENCE_VALUES = 4_000_000


class GeneratorGraph(nn.Module):
    """(noise [B, z + f] float32, labels [B] int64[, cond [B, c] float32]) -> decoded values [B, ...].

    `cond` exists only with a `forcer` (tables with categorical columns): a graph without one keeps
    the two inputs of images, of tables without categories and of models exported before conditions.
    A set cond block forces its column's value (exact counts); a zero one leaves the column free.
    The noise's last f = `decoder.n_uniforms` columns (tables with categories or missing numbers; the
    card's `flag_noise`) are not the generator's: as uniforms they sample each categorical column's
    category and each missing-value flag from the generated probabilities, so the graph stays a
    deterministic function of its inputs (same seed, same rows).
    """

    def __init__(self, generator: nn.Module, decoder: nn.Module, forcer: nn.Module | None = None,
                 noise_dim: int = 0):
        super().__init__()
        self.generator, self.decoder, self.forcer, self.noise_dim = generator, decoder, forcer, noise_dim
        self.n_uniforms = getattr(decoder, "n_uniforms", 0)

    def forward(
        self, noise: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {}
        if self.n_uniforms:
            noise, tail = noise[:, :self.noise_dim], noise[:, self.noise_dim:]
            extra["uniforms"] = normal_to_uniform(tail)
        if self.forcer is None:
            return self.decoder(self.generator(noise, labels), **extra)
        return self.decoder(self.forcer(self.generator(noise, labels, cond), cond), **extra)


def normal_to_uniform(z: torch.Tensor) -> torch.Tensor:
    """Standard normal noise columns -> uniforms on (0, 1) (the normal CDF)."""
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


class ScoreGraph(nn.Module):
    """(values [B, ...] float32, labels [k * B] int64) -> anomaly scores [k * B, len(self.methods)];
    higher = stranger. Each row of `values` is scored against k consecutive labels (k = 1: one label
    per row; k = the model's labels: every label, as best-label scoring asks), and whatever does not
    depend on the label - the value encoding, the encoder E(x), the critic's features of x and the
    isolation forest - runs once per row, not once per label. With an `attribution`, also each
    column's (pixel's) calibrated contribution [k * B, columns or H * W] (`Attribution`):
    (scores, contributions).

    `critic`: the negated discriminator output. `fanogan`: the f-AnoGAN residual of x against
    G(E(x), label) - values plus discriminator features, each divided by its mean on the normal
    training data (`scales`), so a typical normal input scores about 2. With a `forest` (what
    `scorer_for` fits on the normal training values): `iforest`, its isolation score of the raw values,
    and `ensemble`, the default: the sum of the f-AnoGAN's and a classic detector's `extended_cdf`
    against their quantiles on the normal training data (`grids` [2 or 3, GRID_POINTS]: fanogan,
    iforest[, knn]); the classic detector's alone where the f-AnoGAN does not rebuild its inputs
    (`reconstruction_r2` under `MIN_RECONSTRUCTION_R2`: `use_fanogan`). On a common scale neither
    swamps the other among normal rows, while an outlier far past the training scores of either keeps
    its distance (bench/anomaly_broad.py: z-scores let an overfit f-AnoGAN drown the forest). The
    classic detector is the forest, or with `neighbours` (images) `knn`, the distance to the nearest
    normal training images (`Neighbours`), a fifth output column. A table's ensemble also adds the row's
    `Novelty`: what the encoded x cannot show (the value encoding clamps numbers to the training
    range and has no slot for an unseen category), so a value far past anything seen is flagged
    however ordinary the rest of the row.
    """

    def __init__(self, discriminator: nn.Module, generator: nn.Module, encoder: nn.Module,
                 value_encoder: nn.Module, scales: tuple[float, float],
                 forest: IsolationForestGraph | None = None, grids: torch.Tensor | None = None,
                 attribution: Attribution | None = None, reconstruction_r2: float | None = None,
                 neighbours: Neighbours | None = None, novelty: Novelty | None = None,
                 contrast_labels: int = 0):
        super().__init__()
        self.discriminator, self.generator, self.encoder = discriminator, generator, encoder
        self.value_encoder, self.forest, self.attribution = value_encoder, forest, attribution
        self.novelty = novelty if forest is not None else None
        self.contrast_labels = contrast_labels if forest is not None and contrast_labels > 1 else 0
        self.neighbours = neighbours if forest is not None else None
        self.methods = list(SCORE_METHODS[:2] if forest is None else
                            SCORE_METHODS[:4] if self.neighbours is None else SCORE_METHODS)
        if self.novelty is not None:
            self.methods.append(NOVELTY_METHOD)
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32))
        rows = 2 + (self.neighbours is not None)  # fanogan, iforest[, knn]
        self.register_buffer("grids", torch.zeros(rows, GRID_POINTS) if grids is None else grids.float())
        self.reconstruction_r2 = reconstruction_r2  # of the normal training inputs (`scorer_for`)
        self.use_fanogan = reconstruction_r2 is None or reconstruction_r2 >= MIN_RECONSTRUCTION_R2

    @property
    def ensemble_parts(self) -> list[str]:
        """The scores `ensemble` sums (with a forest)."""
        return (["fanogan"] * self.use_fanogan + ["iforest" if self.neighbours is None else "knn"]
                + ["novelty"] * (self.novelty is not None) + ["label_contrast"] * bool(self.contrast_labels))

    def forward(self, values: torch.Tensor, labels: torch.Tensor, forest_path: torch.Tensor | None = None):
        scores, x, difference = self.scored(values, labels, forest_path)
        if self.attribution is None:
            return scores
        return scores, self.attribution(values[label_rows(values, labels)], x, difference)

    def scored(self, values: torch.Tensor, labels: torch.Tensor,
               forest_path: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(scores [k * B, methods], encoded x, G(E(x), label) - x per encoded feature [k * B, ...]): the
        reconstruction residual as `models.encoder.residuals` takes it, before its square and mean.
        `forest_path`: the forest's mean path length per row [B], where something else computed it
        (the exported graph's tree-ensemble operator, `forest.with_tree_ensemble`)."""
        rows = label_rows(values, labels)
        x = self.value_encoder(values)
        latent, seen = self.encoder(x), self.discriminator.features(x)  # once per row
        knn = None if self.neighbours is None else self.neighbours(x)[rows]  # images: also label-free
        contrast_inputs = (x, latent, seen)
        x, latent, seen = x[rows], latent[rows], seen[rows]
        fanogan, difference = self._fanogan(x, latent, seen, labels)
        scores = [-self.discriminator.head(seen, labels), fanogan]
        if self.forest is not None:
            path = self.forest.mean_path(values) if forest_path is None else forest_path
            iforest = self.forest.from_path(path)[rows]
            classic, grid = (iforest, self.grids[1]) if knn is None else (knn, self.grids[2])
            ensemble = extended_cdf(classic, grid)
            if self.use_fanogan:  # fixed at construction: the exported graph has the sum or the classic alone
                ensemble = extended_cdf(fanogan, self.grids[0]) + ensemble
            novelty = None if self.novelty is None else self.novelty(values)[rows]
            if novelty is not None:
                ensemble = ensemble + novelty
            if self.contrast_labels:
                ensemble = ensemble + self._label_contrast(fanogan, rows, *contrast_inputs)
            scores += [iforest, ensemble] + ([] if knn is None else [knn])
            scores += [] if novelty is None else [novelty]
        return torch.stack(scores, dim=1), x, difference


    def _fanogan(self, x: torch.Tensor, latent: torch.Tensor, seen: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the f-AnoGAN residual, G(E(x), label) - x) of encoded inputs against `labels`."""
        rebuilt = self.generator(latent, labels)
        difference = rebuilt - x
        reconstruction = difference.pow(2).flatten(1).mean(dim=1)
        features = (self.discriminator.features(rebuilt) - seen).pow(2).mean(dim=1)
        return reconstruction / self.scales[0] + features / self.scales[1], difference

    def _label_contrast(self, fanogan: torch.Tensor, rows: torch.Tensor, x: torch.Tensor,
                        latent: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """How much worse the scored label explains each row than its best label does: the f-AnoGAN
        residual's CDF against the scored label minus its lowest over every label (0 when the scored
        label is the best, so best-label scoring adds nothing). Relative, it measures the label's fit
        even where the residual itself is left out of the ensemble (it then measures a row's size)."""
        n = self.contrast_labels
        every = torch.arange(n, device=x.device).unsqueeze(0).expand(x.shape[0], n).reshape(-1)
        each = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand(x.shape[0], n).reshape(-1)
        best = self._fanogan(x[each], latent[each], seen[each], every)[0].reshape(-1, n).min(dim=1).values
        grid = self.grids[0]
        return (extended_cdf(fanogan, grid) - extended_cdf(best[rows], grid)).clamp_min(0.0)


class Neighbours(nn.Module):
    """Encoded inputs [B, ...] -> [B]: each one's Euclidean distance to its k-th nearest row of
    `reference` (normal training inputs, encoded; the scorer file holds them), as PyOD's KNN
    (`largest`) scores. `leave_out_self`: the inputs are the reference rows themselves, each not its
    own neighbour (the training scores the ensemble's grid is made of). Needs more than k rows."""

    def __init__(self, reference: torch.Tensor, k: int = KNN_NEIGHBOURS):
        super().__init__()
        if len(reference) <= k:
            raise ValueError(f"the distance to the {k}th-nearest needs more than {k} reference rows, "
                             f"got {len(reference)}")
        self.k = k
        self.register_buffer("reference", reference.flatten(1).float())
        self.register_buffer("norms", self.reference.pow(2).sum(dim=1))

    def forward(self, x: torch.Tensor, leave_out_self: bool = False) -> torch.Tensor:
        q = x.flatten(1)
        squared = q.pow(2).sum(dim=1, keepdim=True) - 2.0 * q @ self.reference.T + self.norms
        nearest = squared.topk(self.k + leave_out_self, dim=1, largest=False).values[:, -1]
        return nearest.clamp_min(0.0).sqrt()


def label_rows(values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[k * B] int64: the row of `values` [B, ...] each of `labels` [k * B] belongs to, k consecutive
    labels per row (in shape arithmetic the exported graph keeps dynamic)."""
    index = torch.cumsum(torch.ones_like(labels), dim=0) - 1
    rows = torch.ones_like(values.flatten(1)[:, 0], dtype=torch.int64).sum()
    per_row = torch.ones_like(labels).sum() // rows
    return torch.div(index, per_row, rounding_mode="floor")


class Attribution(nn.Module):
    """(raw values, encoded x and G(E(x)) - x, both [B, F] (tables) or [B, C, H, W] (images)) -> each
    column's (pixel's) contribution [B, columns or H * W]: the geometric mean of two scores, each
    summed over the column's encoded features (its one-hot block, its missing flag) or the pixel's
    channels and divided by its ATTRIBUTION_QUANTILE on the normal training rows (`scale` [2, ...],
    `attribution_for`), so 1 is what one normal row in ten exceeds, in every column:
    - conditional: the squared reconstruction residual, how far the value lies from what the model
      rebuilds from the whole row;
    - marginal: the squared z-score of each encoded feature against the normal rows (`center`,
      `spread`), how unusual the value is on its own.
    A column is blamed when it is both. The residual alone points at noise on new rows of a model that
    memorised its few training rows (wine: held-out rows exceed the training rows' 90th percentile in
    half their columns), and the z-score alone never sees a value that is ordinary on its own but
    wrong for its row.

    A table's value encoding clamps a number to its column's training range, so x alone cannot tell
    4 from 40 standard deviations past it: both scores take x extended past the range (`Overshoot`),
    as the default score does too (`Novelty`). An image's two per-pixel scores are smoothed over
    each pixel's neighbourhood (`smoothing`, `PixelSmoothing`) before they are calibrated: what is
    wrong in an image covers neighbouring pixels, while the residual's pixel-to-pixel noise does not.
    bench/attribution.py measures each choice."""

    def __init__(self, groups: torch.Tensor | None, overshoot: Overshoot | None = None,
                 center: torch.Tensor | None = None, spread: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None, smoothing: PixelSmoothing | None = None,
                 novelty: Novelty | None = None):
        super().__init__()
        self.calibrated, self.overshoot, self.smoothing = scale is not None, overshoot, smoothing
        self.novelty = novelty
        self.grouped = groups is not None  # tables: [F, columns] 0/1; images: sum over channels
        self.register_buffer("groups", groups if groups is not None else torch.zeros(0))
        self.register_buffer("center", torch.zeros(1) if center is None else center.float())
        self.register_buffer("spread", torch.ones(1) if spread is None else spread.float())
        self.register_buffer("scale", torch.ones(2, 1) if scale is None else scale.float())

    def parts(self, values: torch.Tensor, x: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
        """[2, B, columns or pixels]: the uncalibrated conditional and marginal scores."""
        if self.overshoot is not None:
            past = self.overshoot(values)
            x, difference = x + past, difference - past
        marginal = ((x - self.center) / self.spread).pow(2)
        return torch.stack([self._per_unit(difference.pow(2)), self._per_unit(marginal)])

    def _per_unit(self, features: torch.Tensor) -> torch.Tensor:
        if self.grouped:
            return features @ self.groups
        pixels = features.sum(dim=1, keepdim=True)  # [B, 1, H, W]
        return (pixels if self.smoothing is None else self.smoothing(pixels)).flatten(1)

    def forward(self, values: torch.Tensor, x: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
        conditional, marginal = (self.parts(values, x, difference) / self.scale.unsqueeze(1)).unbind(0)
        blame = torch.sqrt(conditional * marginal)
        if self.novelty is not None:  # a value the encoding has no slot for: blamed as never seen
            blame = blame + NOVEL_CONTRIBUTION * self.novelty.unseen(values)
        return blame


class PixelSmoothing(nn.Module):
    """Maps [B, 1, H, W] -> the same, each pixel the weighted mean of its 3x3 neighbourhood (weights the
    outer product of `weights`), over the neighbours inside the image (a border pixel is not pulled
    towards a zero outside it)."""

    def __init__(self, weights: tuple[float, ...] = (1.0, 2.0, 1.0)):
        super().__init__()
        line = torch.tensor(weights, dtype=torch.float32)
        self.register_buffer("kernel", torch.outer(line, line).reshape(1, 1, len(line), len(line)))
        self.pad = len(line) // 2

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        inside = nn.functional.conv2d(torch.ones_like(maps[:1]), self.kernel, padding=self.pad)
        return nn.functional.conv2d(maps, self.kernel, padding=self.pad) / inside


class Overshoot(nn.Module):
    """Raw table values [B, d] -> [B, F]: how far each quantile-encoded value lies past its column's
    training range (the knots the value encoding clamps to), in training standard deviations of that
    column, at the column's encoded feature; 0 inside the range, for a missing value and elsewhere.
    One sd past the range counts as one unit of the encoded (normal-score) value, as it would for a
    Gaussian column."""

    def __init__(self, columns: list, std: np.ndarray):
        super().__init__()
        starts = np.cumsum([0] + [width(c) for c in columns])[:-1]
        index = [i for i, c in enumerate(columns) if c.kind == "continuous" and c.method == "quantile"]
        place = np.zeros((len(index), int(starts[-1] + width(columns[-1]))), dtype=np.float32)
        place[np.arange(len(index)), starts[index]] = 1.0
        self.register_buffer("cols", torch.tensor(index, dtype=torch.int64))
        self.register_buffer("low", torch.tensor([columns[i].values[0] for i in index]).float())
        self.register_buffer("high", torch.tensor([columns[i].values[-1] for i in index]).float())
        # A column constant in training (sd 0) measures a new value against a thousandth of its size:
        # past its range it is far out, but stays finite (an infinite contribution is no answer).
        ends = np.abs([[columns[i].values[0], columns[i].values[-1]] for i in index])
        size = np.maximum(ends.max(axis=1), 1.0)
        self.register_buffer("per_sd", torch.from_numpy(1.0 / np.maximum(std[index], 1e-3 * size)).float())
        self.register_buffer("place", torch.from_numpy(place))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        v = values[:, self.cols]
        v = torch.where(torch.isnan(v), self.low, v)
        past = torch.relu(v - self.high) - torch.relu(self.low - v)
        return (past * self.per_sd) @ self.place


class Novelty(nn.Module):
    """Raw table values [B, d] -> [B]: how new a row is in ways its encoding hides - the sum over the
    continuous columns of how far each value lies past the column's training range, in training
    standard deviations (as `Overshoot`), plus NOVEL_UNITS for each category the model never saw
    (code -1, as `runtime.scoring` passes it) and each missing value in a column that was never missing.
    0 for every training row."""

    def __init__(self, columns: list, std: np.ndarray):
        super().__init__()
        numeric = [i for i, c in enumerate(columns) if c.kind == "continuous"]
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.int64))
        self.register_buffer("low", torch.tensor([columns[i].low for i in numeric]).float())
        self.register_buffer("high", torch.tensor([columns[i].high for i in numeric]).float())
        ends = np.abs([[columns[i].low, columns[i].high] for i in numeric]).reshape(-1, 2)
        size = np.maximum(ends.max(axis=1), 1.0) if len(numeric) else np.ones(0)
        floor = np.maximum(std[numeric], 1e-3 * size) if len(numeric) else np.ones(0)
        self.register_buffer("per_sd", torch.from_numpy(1.0 / floor).float())
        cats = [i for i, c in enumerate(columns) if c.kind == "categorical"]
        self.register_buffer("cats", torch.tensor(cats, dtype=torch.int64))
        self.register_buffer("n_categories", torch.tensor([len(columns[i].categories) for i in cats]).float())
        self.register_buffer("cat_place", torch.eye(len(columns))[cats])  # [categorical columns, d]
        never = [0.0 if c.missing else 1.0 for c in columns]
        self.register_buffer("never_missing", torch.tensor(never, dtype=torch.float32))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(values)
        v = torch.where(missing, torch.zeros_like(values), values)
        x = values[:, self.numeric]
        x = torch.where(torch.isnan(x), self.low, x)  # a missing number lies past no range
        inside = torch.minimum(torch.maximum(x, self.low), self.high)
        novel = ((x - inside).abs() * self.per_sd).sum(dim=1)
        if len(self.cats):  # fixed at construction: a table without categories has no such nodes
            codes = v[:, self.cats]
            present = (~missing[:, self.cats]).float()
            unseen = (((codes < 0) | (codes >= self.n_categories)).float() * present).sum(dim=1)
            novel = novel + NOVEL_UNITS * unseen
        return novel + NOVEL_UNITS * (missing.float() * self.never_missing).sum(dim=1)

    def unseen(self, values: torch.Tensor) -> torch.Tensor:
        """[B, d] 1 where a column holds a category the model never saw or is missing though it never
        was, else 0 (numbers past the range: `Overshoot` extends their attribution instead)."""
        missing = torch.isnan(values)
        flags = missing.float() * self.never_missing
        if len(self.cats):
            codes = torch.where(missing, torch.zeros_like(values), values)[:, self.cats]
            new = ((codes < 0) | (codes >= self.n_categories)).float() * (~missing[:, self.cats]).float()
            flags = flags + new @ self.cat_place
        return flags


def novelty_for(encoding, values: np.ndarray) -> Novelty | None:
    """A table's `Novelty` with each column's sd on the normal training `values`; None for images."""
    if not isinstance(encoding, TableEncoding):
        return None
    std = np.nan_to_num(np.nanstd(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0))
    return Novelty(encoding.columns, std)


def column_groups(encoding) -> torch.Tensor | None:
    """[encoded features, columns] 0/1: which column each encoded feature of a table belongs to
    (`data.columns.width`); None for images (a pixel's features are its channels)."""
    if not isinstance(encoding, TableEncoding):
        return None
    widths = [width(c) for c in encoding.columns]
    owner = np.repeat(np.arange(len(widths)), widths)
    return torch.from_numpy(np.eye(len(widths), dtype=np.float32)[owner])


def overshoot_for(encoding, values: np.ndarray | None) -> Overshoot | None:
    """A table's `Overshoot` with each column's sd on the normal training `values` (None: a quarter of
    its range); None for images (their encoding clamps nothing) and tables without quantile columns."""
    if not isinstance(encoding, TableEncoding):
        return None
    columns = encoding.columns
    if not any(c.kind == "continuous" and c.method == "quantile" for c in columns):
        return None
    if values is None:
        std = np.array([(c.high - c.low) / 4 if c.kind == "continuous" else 1.0 for c in columns])
    else:
        std = np.nan_to_num(np.nanstd(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0))
    return Overshoot(columns, std)


@torch.no_grad()
def attribution_for(plain: ScoreGraph, encoding, values: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None,
                    smoothing: tuple[float, ...] | None = PIXEL_SMOOTHING) -> Attribution:
    """The attribution of `plain`'s residual, calibrated on normal training `values` and their own
    `labels`: the encoded features' mean and sd (floored at ATTRIBUTION_FLOOR of their mean sd: a
    border pixel is 0 in every training image) and each score's ATTRIBUTION_QUANTILE per column,
    floored at ATTRIBUTION_FLOOR of their mean (a column rebuilt exactly on every training row would
    otherwise divide by ~0). Without values (no training data at hand): mean 0, sd 1, every scale 1,
    uncalibrated. `smoothing`: an image map's 3x3 weights (`PixelSmoothing`; None: none)."""
    groups = column_groups(encoding)
    overshoot = overshoot_for(encoding, None if values is None else values.numpy())
    novelty = None if values is None else novelty_for(encoding, values.numpy())
    smoothing = PixelSmoothing(smoothing) if groups is None and smoothing else None
    if values is None:
        return Attribution(groups, overshoot, smoothing=smoothing, novelty=novelty)
    _, x, difference = plain.eval().scored(values, labels)
    spread = x.std(dim=0)
    spread = spread.clamp_min(max(ATTRIBUTION_FLOOR * float(spread.mean()), 1e-6))
    raw = Attribution(groups, overshoot, x.mean(dim=0), spread, smoothing=smoothing)
    scale = torch.quantile(raw.parts(values, x, difference).double(), ATTRIBUTION_QUANTILE, dim=1)
    floor = (ATTRIBUTION_FLOOR * scale.mean(dim=1, keepdim=True)).clamp_min(1e-12)
    return Attribution(groups, overshoot, raw.center, raw.spread, torch.maximum(scale, floor), smoothing,
                       novelty)


@torch.no_grad()
def scorer_for(discriminator: nn.Module, generator: nn.Module, encoder: nn.Module, encoding,
               scales: ScoreScales | tuple[float, float],
               pixel_smoothing: tuple[float, ...] | None = PIXEL_SMOOTHING,
               knn_reference: bool = True, n_labels: int = 1) -> ScoreGraph:
    """The scorer graph, with per-column attribution. With `ScoreScales` (the normal training inputs
    at hand) it also gets the isolation forest, fitted on those inputs decoded to raw values, the
    quantiles of both scores on them (f-AnoGAN against each input's own label), whether the ensemble
    keeps the f-AnoGAN (`reconstruction_r2` of those inputs against `MIN_RECONSTRUCTION_R2`) and the
    attribution's calibration; bare (reconstruction, features) scales give the f-AnoGAN and critic
    scores alone and an uncalibrated attribution. `pixel_smoothing`: `attribution_for`'s `smoothing`. An
    image scorer also holds those inputs as `knn`'s reference (`Neighbours`) unless `knn_reference` is
    False."""
    value_encoder = encoding.encoder()
    if not isinstance(scales, ScoreScales):
        plain = ScoreGraph(discriminator, generator, encoder, value_encoder, scales)
        plain.attribution = attribution_for(plain, encoding, smoothing=pixel_smoothing)
        return plain
    residual = (scales.reconstruction, scales.features)
    values = encoding.decoder()(scales.x)
    forest = fit_isolation_forest(values.numpy())
    plain = ScoreGraph(discriminator, generator, encoder, value_encoder, residual).eval()
    scores, x, difference = plain.scored(values, scales.labels)
    training = [scores[:, 1], forest(values)]  # fanogan, iforest
    neighbours = None
    if knn_reference and not isinstance(encoding, TableEncoding) and len(values) > KNN_NEIGHBOURS:
        neighbours = Neighbours(_at_most_values(x, KNN_REFERENCE_VALUES))  # images: x, one row per input
        training.append(neighbours(neighbours.reference, leave_out_self=True))
    points = torch.linspace(0.0, 1.0, GRID_POINTS, dtype=torch.float64)
    grids = torch.stack([torch.quantile(s.double(), points) for s in training])
    attribution = attribution_for(plain, encoding, values, scales.labels, pixel_smoothing)
    return ScoreGraph(discriminator, generator, encoder, value_encoder, residual, forest, grids, attribution,
                      reconstruction_r2(x, difference), neighbours, attribution.novelty,
                      n_labels if isinstance(encoding, TableEncoding) else 0)


def _at_most_values(rows: torch.Tensor, budget: int, seed: int = 0) -> torch.Tensor:
    """`rows`, or a seeded sample of them of at most `budget` values in all (in their order)."""
    keep = max(1, budget // max(1, rows[0].numel()))
    if len(rows) <= keep:
        return rows
    pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:keep]
    return rows[pick.sort().values]


def reconstruction_r2(x: torch.Tensor, difference: torch.Tensor) -> float:
    """The share of the variance of encoded inputs `x` [n, ...] that their reconstructions explain,
    1 - |G(E(x)) - x|^2 / |x - mean(x)|^2 over all of them (`difference` = G(E(x)) - x)."""
    spread = (x - x.mean(dim=0)).pow(2).sum().double()
    return float(1.0 - difference.pow(2).sum().double() / spread.clamp_min(1e-12))


def extended_cdf(scores: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The share of the `grid` quantiles (normal training scores) at or below each score, in [0, 1];
    past the largest, 1 plus the distance beyond it in units of (largest - median), so outliers keep
    their order instead of all tying at 1."""
    top, median = grid[-1], grid[GRID_POINTS // 2]
    share = (scores.unsqueeze(1) >= grid).float().mean(dim=1)
    return torch.where(scores > top, 1.0 + (scores - top) / (top - median).clamp_min(1e-8), share)


class EncodeGraph(nn.Module):
    """(values [B, ...] float32) -> noise [B, z + f]: where the generator puts each real row, so that
    G(E(x) + small noise, y) gives variations of x (`sampling.generate_variations`). The f uniform
    columns (`GeneratorGraph`) come out 0, a uniform of one half: at spread 0 a variation keeps each
    category and missing flag the rebuilt row gives more than half its probability, and a growing
    spread samples them more freely."""

    def __init__(self, encoder: nn.Module, value_encoder: nn.Module, n_uniforms: int = 0):
        super().__init__()
        self.encoder, self.value_encoder, self.n_uniforms = encoder, value_encoder, n_uniforms

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.value_encoder(values))
        return torch.cat([z, z.new_zeros(z.shape[0], self.n_uniforms)], dim=1) if self.n_uniforms else z


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                input_names: list[str], output_name: str | list[str],
                unit: np.ndarray | float | None = None, steps: np.ndarray | None = None,
                rows: int = PARITY_ROWS) -> float:
    """Export with a dynamic batch dimension; return the max abs difference to torch on new inputs
    (over every output, when `output_name` is a list: a module returning a tuple).

    The TorchScript exporter, not torch.export's: on these graphs (one small block of ops per column)
    it writes the same model 15-25x faster (breast_cancer's generator 0.8 s vs 12 s, a 200-column
    one 2.2 s vs 53 s; bench/time_to_model.py) and ONNX Runtime runs it as fast or faster. Torch calls
    it legacy and warns so on every call; the parity check below is what vouches for the file.

    `unit` rescales the difference into the network's own units (a column's std, half the pixel
    range): float32 cannot hold a raw value of 4000 to 1e-4, but it holds its code to 1e-6.
    Without a unit (unbounded critic scores) the difference is relative to the largest output, or 1.
    `steps`: how far a threshold in the graph may move each output column (`parity`). Checked on
    `rows` fresh input rows.
    """
    module = module.eval()
    outputs = [output_name] if isinstance(output_name, str) else output_name
    _write_onnx(module, example, path, input_names, outputs)
    return parity(module, path, _fresh_like(example, seed=7, batch=rows), unit, steps)


def _write_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                outputs: list[str], axes: dict[str, str] | None = None) -> None:
    """The TorchScript export of `module` (`export_onnx`); `axes`: a batch dimension's name per input
    or output (default "batch")."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        # GroupNorm checks its batch size in Python, which the tracer flags as maybe not generalising;
        # the parity check runs the file at another batch size, so a trace that doesn't generalise fails.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        dynamic = {name: {0: (axes or {}).get(name, "batch")} for name in [*input_names, *outputs]}
        torch.onnx.export(_baked(module), example, str(path), input_names=input_names,
                          output_names=outputs, dynamic_axes=dynamic, dynamo=False, opset_version=OPSET)


def export_scorer(scorer: ScoreGraph, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> float:
    """Export the scorer graph (inputs values, labels; outputs scores[, contributions]) and return its
    parity with torch (`export_onnx`), checked on inputs of one label per row and of every label per
    row. The file's metadata says the graph takes k labels per row (`ScoreGraph`; runtimes tile the
    rows themselves for a file without it), and the isolation forest runs as ONNX-ML's tree-ensemble
    operator (`forest.with_tree_ensemble`), checked against the torch module's own walk."""
    import onnx

    from gen_factory.runtime.scoring import LABELS_PER_ROW_KEY

    scorer = scorer.eval()
    outputs = ["scores"] + ([] if scorer.attribution is None else [ATTRIBUTION_OUTPUT])
    values, labels = example
    names, inputs = ["values", "labels"], (values, labels)
    if scorer.forest is not None:
        names, inputs = [*names, "forest_path"], (*inputs, scorer.forest.mean_path(values).detach())
    axes = {"values": "rows", "forest_path": "rows"}
    _write_onnx(scorer, inputs, path, names, outputs, axes)
    model = onnx.load(str(path))
    if scorer.forest is not None:
        with_tree_ensemble(model, scorer.forest, "values", "forest_path")
    onnx.helper.set_model_props(model, {LABELS_PER_ROW_KEY: "k"})
    onnx.save(model, str(path))
    fresh = _fresh_like(example, seed=7, batch=PARITY_ROWS)
    every = torch.arange(int(labels.max()) + 1).repeat(len(fresh[0]))  # each row with every label
    return max(parity(scorer, path, fresh), parity(scorer, path, (fresh[0], every)))


def _baked(module: nn.Module) -> nn.Module:
    """A copy with every parametrization (spectral norm) replaced by the weight it yields in eval mode:
    the file holds plain weights instead of re-deriving each layer's norm on every call.

    Not `parametrize.remove_parametrizations` on a deep copy: the copy shares its generated class
    (ParametrizedLinear) with the original, and removing deletes the property from that class,
    breaking the original too. Each copied layer gets its plain class back instead."""
    from torch.nn.utils import parametrize

    baked = copy.deepcopy(module).eval()
    for layer in list(baked.modules()):
        if parametrize.is_parametrized(layer):
            with torch.no_grad():
                weights = {name: getattr(layer, name).detach().clone() for name in layer.parametrizations}
            layer.__class__ = layer.__class__.__bases__[0]  # ParametrizedLinear -> Linear
            del layer.parametrizations
            for name, weight in weights.items():
                layer.register_parameter(name, nn.Parameter(weight, requires_grad=False))
    return baked


def parity(module: nn.Module, path: Path, inputs: tuple[torch.Tensor, torch.Tensor],
           unit: np.ndarray | float | None = None, steps: np.ndarray | None = None) -> float:
    """Max abs difference between torch and ONNX Runtime on the same inputs, in `unit`s; a module
    with several outputs (the scorer with attribution): the largest over them, each relative to
    its own largest value (`unit` and `steps` apply to the first).

    `steps` (per output column, raw values): how far a threshold inside the graph may move a value
    (`TableEncoding.flip_steps`). Two correct float kernels may land on either side of one (43.315
    rounds to 43.32 in torch and to 43.31 in ONNX Runtime on AVX-512): a difference within one step is
    such a flip, and flips are left out of the figure while each column has at most FLIP_SHARE of its
    values (at least one) flipped; more, or a larger difference, counts in full."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    with torch.no_grad():
        expected = module(*inputs)
    got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
    if isinstance(expected, torch.Tensor):
        return _difference(expected.numpy(), got[0], unit, steps)
    return max(_difference(e.numpy(), g, unit if k == 0 else None, steps if k == 0 else None)
               for k, (e, g) in enumerate(zip(expected, got, strict=True)))


def _difference(expected: np.ndarray, got: np.ndarray, unit: np.ndarray | float | None,
                steps: np.ndarray | None = None) -> float:
    """Max abs difference of two outputs in `unit`s (None: relative to the largest output, or 1),
    leaving out rare flips within each column's threshold step (`parity`). A missing value (NaN) on
    one side only is infinitely far: only a column whose missing flag is a threshold may flip so."""
    missing = np.isnan(expected)
    same = (missing & np.isnan(got)) | (expected == got)  # also the same infinity, whose difference is NaN
    expected, got = np.where(same, 0.0, expected), np.where(same, 0.0, got)
    if unit is None:
        unit = max(1.0, float(np.nanmax(np.abs(expected), initial=0.0)))
    diff = np.abs(expected - got) / unit
    diff = np.where(np.isnan(diff), np.inf, diff)
    if steps is not None:
        flips = (diff > PARITY_TOLERANCE) & (diff <= steps / unit + PARITY_TOLERANCE)
        if (flips.sum(axis=0) <= max(1, int(FLIP_SHARE * len(diff)))).all():
            diff = np.where(flips, 0.0, diff)
    return float(diff.max(initial=0.0))


def _fresh_like(example: tuple[torch.Tensor, ...], seed: int, batch: int) -> tuple[torch.Tensor, ...]:
    """New random inputs shaped as `example` (values[, labels[, cond]]); cond rows are redrawn from
    its rows."""
    gen = torch.Generator().manual_seed(seed)
    values, *rest = example
    fresh = [torch.randn(batch, *values.shape[1:], generator=gen)]
    if rest:
        labels, *extra = rest
        fresh.append(torch.randint(0, int(labels.max()) + 1, (batch,), generator=gen))
        fresh += [t[torch.randint(0, len(t), (batch,), generator=gen)] for t in extra]
    return tuple(fresh)


def _generator_graph(generator: nn.Module, encoding, noise_dim: int, labels: torch.Tensor) -> tuple:
    """(graph, example inputs, input names): with the cond input only where the generator takes one."""
    decoder = encoding.decoder()
    width = noise_dim + getattr(decoder, "n_uniforms", 0)
    if not getattr(generator, "cond_dim", 0):
        return GeneratorGraph(generator, decoder, noise_dim=noise_dim), (torch.randn(len(labels), width),
                                                                         labels), ["noise", "labels"]
    conds = example_conds(encoding.columns)
    labels = torch.arange(len(conds)) % (int(labels.max()) + 1)
    return (GeneratorGraph(generator, decoder, encoding.forcer(), noise_dim),
            (torch.randn(len(conds), width), labels, conds), ["noise", "labels", "cond"])


def example_conds(columns: list) -> torch.Tensor:
    """Cond vectors for tracing and parity: no condition, and each category of each column once."""
    blocks = cond_blocks(columns)
    codes = [np.full(len(blocks), FREE)]
    for k, b in enumerate(blocks):
        for v in range(b.width):
            codes.append(np.where(np.arange(len(blocks)) == k, v, FREE))
    return torch.from_numpy(one_hot(np.stack(codes), blocks))


@torch.no_grad()
def free_shares(generator: nn.Module, encoding, n_labels: int, noise_dim: int) -> list | None:
    """[categorical column][label] -> the category shares (missing last) of rows generated with a
    zero cond vector; unconditioned sampling conditions just enough rows to bring them up to the
    training shares (`data.conditions.implicit_codes`). None for images and tables without categories."""
    blocks = cond_blocks(encoding.columns) if isinstance(encoding, TableEncoding) else []
    if not blocks:
        return None
    gen = torch.Generator().manual_seed(0)
    decoder, shares = encoding.decoder(), [[] for _ in blocks]
    for label in range(n_labels):  # decoded as the graph decodes: categories sampled from the uniforms
        noise = torch.randn(FREE_SHARE_ROWS, noise_dim + decoder.n_uniforms, generator=gen)
        rows = generator(noise[:, :noise_dim], torch.full((FREE_SHARE_ROWS,), label, dtype=torch.long))
        raw = decoder(rows, normal_to_uniform(noise[:, noise_dim:])).numpy()
        for k, b in enumerate(blocks):
            codes = np.nan_to_num(raw[:, b.column], nan=len(b.categories)).astype(np.int64)
            shares[k].append((np.bincount(codes, minlength=b.width) / FREE_SHARE_ROWS).tolist())
    return shares


@torch.no_grad()
def calibrate_decoder(generator: nn.Module, encoding, label_counts: list[int] | None, noise_dim: int,
                      shares: list | None) -> None:
    """Re-place a table encoding's decoder knots (`TableEncoding.calibrate`, in place) from
    CALIBRATION_ROWS rows of the trained `generator` drawn as the runtime draws unconditioned rows:
    labels in their training shares, categories conditioned by `implicit_codes` from the free `shares`,
    categories and missing flags sampled from uniforms. Images are left as they are."""
    if not isinstance(encoding, TableEncoding):
        return
    counts = np.asarray(label_counts or [1] * generator.embed.num_embeddings, np.float64)
    labels = np.repeat(np.arange(len(counts)), np.round(CALIBRATION_ROWS * counts / counts.sum()).astype(int))
    decoder, y = encoding.decoder(), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(len(labels), noise_dim + decoder.n_uniforms, generator=gen)
    codes = implicit_codes(encoding.columns, labels, np.random.default_rng(1), shares) \
        if getattr(generator, "cond_dim", 0) else None
    cond = None if codes is None else torch.from_numpy(one_hot(codes, cond_blocks(encoding.columns)))
    forcer, parts = encoding.forcer(), []
    # In pieces: the networks' activations for all the rows at once took 1.1 GB on a 535-wide encoding.
    for at in range(0, len(labels), DECODE_PIECE_ROWS):
        piece = slice(at, at + DECODE_PIECE_ROWS)
        z, uniforms = noise[piece, :noise_dim], noise[piece, noise_dim:]
        if cond is None:
            rows = generator(z, y[piece])
        else:
            rows = forcer(generator(z, y[piece], cond[piece]), cond[piece])
        parts.append((rows, decoder(rows, normal_to_uniform(uniforms) if decoder.n_uniforms else None)))
    encoding.calibrate(torch.cat([r for r, _ in parts]).numpy(), torch.cat([d for _, d in parts]).numpy())


def ensemble_card(scorer: ScoreGraph) -> EnsembleParts | None:
    """What the card says of the ensemble: the R^2 its f-AnoGAN rebuilds normal inputs with, the
    scores it sums and how many training inputs `knn` holds (None without a forest)."""
    if scorer.forest is None:
        return None
    fit, neighbours = scorer.reconstruction_r2, scorer.neighbours
    return EnsembleParts(parts=scorer.ensemble_parts,
                         reconstruction_r2=None if fit is None else round(fit, 4),
                         min_reconstruction_r2=MIN_RECONSTRUCTION_R2,
                         reference_rows=None if neighbours is None else len(neighbours.reference))


def attribution_card(scorer: ScoreGraph, card: ModelCard) -> ScoreAttribution:
    """The card's description of the scorer's attribution output."""
    quantile = ATTRIBUTION_QUANTILE if scorer.attribution.calibrated else None
    if card.kind == "table":
        return ScoreAttribution(unit="column", names=card.columns, quantile=quantile)
    return ScoreAttribution(unit="pixel", quantile=quantile)


def card_for(train, spec, encoding, label_counts: list[int] | None = None, **training) -> ModelCard:
    """The card of a model of `spec` fitted to `train` with `encoding`: what it takes and returns,
    plus `training`'s ModelCard fields (model_name, dataset, loss, epochs, seed, ...). `label_counts`:
    the training rows per label where `train` is a sample of them (else counted from `train`)."""
    return ModelCard(
        kind=train.kind, label_column=train.label_column, label_names=train.label_names,
        columns=getattr(train, "columns", None), shape=spec.shape, n_labels=spec.n_labels,
        noise_dim=spec.noise_dim, encoding=encoding_spec(encoding),
        label_counts=label_counts or np.bincount(train.labels, minlength=len(train.label_names)).tolist(),
        table_schema=getattr(train, "schema", None),
        flag_noise=sampling_uniforms(encoding.columns) if train.kind == "table" else 0, **training,
    )


def export_bundle(
    generator: nn.Module,
    discriminator: nn.Module,
    encoder: nn.Module,
    scales: ScoreScales | tuple[float, float],
    encoding,
    card: ModelCard,
    out_dir: Path,
    precisions: tuple[str, ...] = (),
    pixel_smoothing: tuple[float, ...] | None = PIXEL_SMOOTHING,
    knn_reference: bool = True,
) -> dict[str, float]:
    """Write model.onnx, discriminator.onnx (the scorer), encoder.onnx and `card` (with the files,
    parity figures, free shares and the calibrated encoding filled in) into `out_dir`; return the
    parity figures. A table `encoding`'s decoder is calibrated to `generator` first, in place
    (`calibrate_decoder`).
    `precisions` (opt-in, e.g. ("int8",)) adds reduced-precision generators (`export.precision`).
    `pixel_smoothing`: an image model's attribution smoothing (`attribution_for`; the benches' controls).
    `knn_reference` False: an image scorer without `knn`, holding no training image (`scorer_for`).

    Raises if any graph disagrees with torch by more than PARITY_TOLERANCE: a model whose
    export is wrong must never reach the registry.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    n_labels, noise_dim, shape = card.n_labels, card.noise_dim, card.shape
    shares = free_shares(generator.eval(), encoding, n_labels, noise_dim)  # categories: not the knots'
    # The scorer decodes the training rows (its forest's inputs): before the decoder is calibrated.
    scorer = scorer_for(discriminator, generator, encoder.eval(), encoding, scales,  # from raw values
                        pixel_smoothing, knn_reference, n_labels)
    calibrate_decoder(generator, encoding, card.label_counts, noise_dim, shares)
    labels = torch.arange(4) % n_labels
    g_graph, g_example, g_inputs = _generator_graph(generator, encoding, noise_dim, labels)
    g_diff = export_onnx(g_graph, g_example, out_dir / GENERATOR_FILE, g_inputs, "values", encoding.unit(),
                         encoding.flip_steps(), rows=GENERATOR_PARITY_ROWS)
    # The scorer's parity inputs are in the raw value range: decode random codes to get them.
    raw = encoding.decoder()(torch.randn(4, *shape)).detach()
    d_diff = export_scorer(scorer, (raw, labels), out_dir / SCORER_FILE)
    e_graph = EncodeGraph(encoder, scorer.value_encoder, card.flag_noise)  # noise as the generator takes it
    e_diff = export_onnx(e_graph, (raw,), out_dir / ENCODER_FILE, ["values"], "noise")
    diffs = {"generator": g_diff, "scorer": d_diff, "encoder": e_diff}
    for what, diff in diffs.items():
        if not diff <= PARITY_TOLERANCE:
            raise RuntimeError(
                f"ONNX export of the {what} differs from torch by {diff:.2e} (> {PARITY_TOLERANCE})"
            )
    write_card(out_dir, card.model_copy(update={
        "files": BundleFiles(generator=GENERATOR_FILE, scorer=SCORER_FILE, encoder=ENCODER_FILE),
        "score_methods": scorer.methods, "attribution": attribution_card(scorer, card),
        "ensemble": ensemble_card(scorer),
        "parity_max_abs_diff": diffs, "free_shares": shares, "encoding": encoding_spec(encoding)}))
    for precision in precisions:
        add_precision(out_dir, precision)
    return diffs
