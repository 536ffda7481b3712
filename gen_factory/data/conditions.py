"""The conditional vector over categorical columns (CTGAN's, Xu et al. 2019), in plain NumPy.

Layout: one block per categorical column, in column order, as wide as that column's one-hot span
in the encoded row (its categories, then a missing slot where the column has missing values), so
block and span line up and a set block can replace the generator's span (exact conditions).
A row conditions on at most one value per column; an all-zero block leaves the column free.

Two users: training draws conditions by log-frequency (`CondSampler`, rare categories get seen)
and sampling turns a request's conditions into per-row codes (`resolve_conditions`) - or, for a
request without conditions, conditions just enough rows to keep each category's training share
(`implicit_codes`). No torch here: serving and bulk actors import this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen_factory.data.columns import CategoricalColumn, ContinuousColumn, width
from gen_factory.data.validate import DataValidationError

FREE = -1  # the code of a column left unconditioned in a row


@dataclass(frozen=True)
class Block:
    """One categorical column: its index among the features, its name, and where its block lies."""

    column: int
    name: str
    offset: int  # in the cond vector
    width: int
    span: int  # offset of the column's one-hot span in the encoded row
    categories: tuple[str, ...]


Columns = list[CategoricalColumn | ContinuousColumn]


def cond_blocks(columns: Columns) -> list[Block]:
    """The blocks of an encoding's columns (`TableEncoding.columns`, or the card's copy of them)."""
    blocks, offset, span = [], 0, 0
    for i, c in enumerate(columns):
        if c.kind == "categorical":
            blocks.append(Block(i, c.name, offset, width(c), span, tuple(c.categories)))
            offset += width(c)
        span += width(c)
    return blocks


def cond_width(columns: Columns) -> int:
    return sum(b.width for b in cond_blocks(columns))


def one_hot(codes: np.ndarray, blocks: list[Block]) -> np.ndarray:
    """Per-row codes [n, len(blocks)] (FREE = unconditioned) -> cond vectors [n, width] float32."""
    out = np.zeros((len(codes), sum(b.width for b in blocks)), dtype=np.float32)
    for k, b in enumerate(blocks):
        rows = np.flatnonzero(codes[:, k] != FREE)
        out[rows, b.offset + codes[rows, k]] = 1.0
    return out


class CondSampler:
    """Training-by-sampling: a column uniformly, then one of its values with probability
    proportional to log(1 + frequency), then a real row holding that value; with probability
    `uncond_prob` no condition and a uniformly drawn real row, so that the generator also learns
    the unconditioned joint distribution (zero cond) that plain sampling uses."""

    def __init__(self, features: np.ndarray, blocks: list[Block], uncond_prob: float):
        self.blocks, self.uncond_prob, self.n = blocks, uncond_prob, len(features)
        self.rows_of: list[list[np.ndarray]] = []
        self.probs: list[np.ndarray] = []
        for b in blocks:
            x = features[:, b.column]
            codes = np.where(np.isnan(x), len(b.categories), np.nan_to_num(x)).astype(np.int64)
            rows = [np.flatnonzero(codes == v) for v in range(b.width)]
            logf = np.log1p([len(r) for r in rows])
            self.rows_of.append(rows)
            self.probs.append(logf / logf.sum())

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(real row indices [n], codes [n, len(blocks)]) for one batch."""
        rows = rng.integers(0, self.n, n)
        codes = np.full((n, len(self.blocks)), FREE, dtype=np.int64)
        conditioned = np.flatnonzero(rng.random(n) >= self.uncond_prob)
        which = rng.integers(0, len(self.blocks), len(conditioned))
        for k in range(len(self.blocks)):  # vectorised per column and value: this runs every batch
            idx = conditioned[which == k]
            values = rng.choice(len(self.probs[k]), len(idx), p=self.probs[k])
            codes[idx, k] = values
            for value in np.unique(values):
                at = idx[values == value]
                rows[at] = rng.choice(self.rows_of[k][value], len(at))
        return rows, codes


def resolve_conditions(columns: Columns, conditions: dict | list | None, total: int,
                       rng: np.random.Generator) -> np.ndarray | None:
    """Per-row codes [total, len(blocks)] for a request, or None without conditions.

    `conditions` is either {column: {category: rows}} - exactly that many rows get each category,
    placed at random (by `rng`) among the requested rows, the others leave the column free - or a
    list of one {column: category} dict per row, in the order of the rows (labels in label order).
    """
    if not conditions:
        return None
    blocks = cond_blocks(columns)
    codes = np.full((total, len(blocks)), FREE, dtype=np.int64)
    if isinstance(conditions, dict):
        for k, per_code in condition_counts(columns, conditions, total).items():
            wanted = np.repeat(np.arange(len(per_code)), per_code)
            codes[rng.permutation(total)[:len(wanted)], k] = wanted
        return codes
    if not isinstance(conditions, list) or len(conditions) != total:
        raise DataValidationError(
            "conditions",
            f"a list of {len(conditions) if isinstance(conditions, list) else 0}",
            f"give one {{column: category}} object per requested row ({total})",
        )
    for i, row in enumerate(conditions):
        if not isinstance(row, dict):
            raise DataValidationError(
                f"conditions[{i}]", repr(row), 'give an object such as {"city": "lima"} or {}'
            )
        for name, value in row.items():
            k, block = _block(blocks, columns, name, f"conditions[{i}][{name!r}]")
            codes[i, k] = _code(block, value, f"conditions[{i}][{name!r}]")
    return codes


def implicit_codes(columns: Columns, labels: np.ndarray, rng: np.random.Generator,
                   free_shares: list | None) -> np.ndarray | None:
    """Per-row codes for a request without conditions: just enough rows are conditioned on a value
    to bring each category's share up to its training share within the row's label; the others
    stay free (zero cond).

    `free_shares[k][label]`: the category shares the generator gives free rows (measured at export,
    `export.free_shares`). With training shares r and free shares g, conditioning a share
    c_v = r_v - s * g_v of the rows on v, with s = min(1, min_v r_v / g_v), leaves s free and gives
    exactly r in expectation. Why not simply leave rows free: the generator drops rare categories
    there (customers' 2 % `islands` came out 0 %, its 11 % `west` 3.6 %); why not condition every
    row, as CTGAN samples: that cost 0.04 of quality on customers (the conditional mode fits the
    other columns less well). A row conditions at most one column. None when no row is conditioned
    or the model's card has no `label_counts` / `free_shares` (trained before they were kept).
    """
    blocks = cond_blocks(columns)
    if not blocks or free_shares is None or any(columns[b.column].label_counts is None for b in blocks):
        return None
    codes = np.full((len(labels), len(blocks)), FREE, dtype=np.int64)
    free = np.ones(len(labels), dtype=bool)
    for k, b in enumerate(blocks):
        counts = np.asarray(columns[b.column].label_counts, dtype=np.float64)
        for label in np.unique(labels):
            if not counts[label].sum():
                continue
            r, g = counts[label] / counts[label].sum(), np.asarray(free_shares[k][label], dtype=np.float64)
            # A value the label never had in training but free rows give now and then is left to be
            # slightly over-produced: counting it (r = 0) would condition every row of the label.
            both = (g > 0) & (r > 0)
            s = min(1.0, float((r[both] / g[both]).min())) if both.any() else 0.0
            c = np.clip(r - s * g, 0.0, None)
            # Rows an earlier column conditioned are taken to hold this column about as the training
            # rows do, so the free rows left get the same per-row probabilities (an approximation
            # for the second and later categorical columns).
            rows = np.flatnonzero((labels == label) & free)
            # c_v <= r_v, so sum(c) <= 1: the rest of the probability leaves a row free.
            draw = rng.choice(b.width + 1, len(rows), p=np.append(c, max(0.0, 1.0 - c.sum())))
            hit = draw < b.width
            codes[rows[hit], k] = draw[hit]
            free[rows[hit]] = False
    return None if free.all() else codes


def condition_counts(columns: Columns, conditions: dict, total: int) -> dict[int, np.ndarray]:
    """{block index: rows per category code} of {column: {category: rows}}, validated."""
    blocks = cond_blocks(columns)
    out = {}
    for name, per_value in conditions.items():
        k, block = _block(blocks, columns, name, f"conditions[{name!r}]")
        if not isinstance(per_value, dict):
            raise DataValidationError(f"conditions[{name!r}]", repr(per_value),
                                      'give rows per category, e.g. {"lima": 30, "oslo": 20}')
        out[k] = np.zeros(block.width, dtype=np.int64)
        for value, n in per_value.items():
            field = f"conditions[{name!r}][{value!r}]"
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise DataValidationError(field, repr(n), "give a whole number >= 0")
            out[k][_code(block, value, field)] += int(n)
        if out[k].sum() > total:
            raise DataValidationError(f"conditions[{name!r}]", f"{int(out[k].sum())} rows conditioned",
                                      f"condition at most the {total} requested rows")
    return out


def split_conditions(columns: Columns, conditions: dict, sizes: list[int],
                     rng: np.random.Generator) -> list[dict]:
    """{column: {category: rows}} spread over parts of `sizes` rows as a random placement over all
    rows would spread them (multivariate hypergeometric draws): totals stay exact, and no per-row
    array is built (bulk datasets have millions of rows)."""
    blocks = cond_blocks(columns)
    parts: list[dict] = [{} for _ in sizes]
    for k, per_code in condition_counts(columns, conditions, sum(sizes)).items():
        left = np.append(per_code, sum(sizes) - per_code.sum())  # the last colour: rows left free
        for part, size in zip(parts, sizes, strict=True):
            draw = rng.multivariate_hypergeometric(left, size)
            left = left - draw
            part[blocks[k].name] = {blocks[k].categories[c]: int(n) for c, n in enumerate(draw[:-1]) if n}
    return parts


def _block(blocks: list[Block], columns: Columns, name: str, field: str) -> tuple[int, Block]:
    names = [b.name for b in blocks]
    if name in names:
        return names.index(name), blocks[names.index(name)]
    fix = f"condition on a categorical column: {', '.join(names)}" if names else \
        "this model has no categorical columns to condition on"
    if any(c.name == name for c in columns):
        raise DataValidationError(field, f"{name!r} is a numeric column", fix)
    raise DataValidationError(field, f"unknown column {name!r}", fix)


def _code(block: Block, value, field: str) -> int:
    if str(value) not in block.categories:
        raise DataValidationError(field, f"unknown category {value!r}",
                                  f"use one of the column's categories: {', '.join(block.categories)}")
    return block.categories.index(str(value))
