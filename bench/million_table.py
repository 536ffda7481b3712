"""A realistic million-row table for the scale bench (issue 17 part 2), written as Parquet row groups.

    .venv/bin/python bench/million_table.py [--rows 1000000] [--out /tmp/gf_million/million.parquet]

100 columns: 99 features and the label `outcome`. Every row comes from 8 latent factors, so the
columns correlate and the label depends on them:
- 60 floats: skewed (log-normal), two- and three-mode mixtures, heavy tails, a spike at 0, each with
  0-8 % missing values;
- 29 integers (counts, ages, terms; whole numbers, some with missing values, stored as float64 there);
- 10 categoricals: `merchant` with 10,000 categories and Zipf-like frequencies (the commonest ~10 % of
  rows, half the categories under 20 rows), 9 more with 2-40 categories, some with missing values;
- `outcome`: "fraud" for about 1 % of the rows (a logistic function of three factors, a few columns
  and the merchant's frequency rank), else "ok".

Seeded (each row group its own generator from (seed, group)), so the same flags give the same file;
one row group in memory at a time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FACTORS = 8
FLOATS, INTEGERS = 60, 29
MERCHANTS = 10_000
SMALL_CATEGORICALS = (2, 3, 4, 5, 7, 10, 12, 20, 40)  # categories of cat_1 .. cat_9
LABEL = "outcome"
RARE_RATE = 0.01
GROUP_ROWS = 100_000


def _loadings(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, FACTORS] loadings: each column leans on 2-3 factors, so columns correlate in groups."""
    w = np.zeros((n, FACTORS))
    for i in range(n):
        picks = rng.choice(FACTORS, size=rng.integers(2, 4), replace=False)
        w[i, picks] = rng.normal(0, 1, len(picks))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


class Design:
    """Everything fixed across row groups: loadings, shapes, category names and frequencies."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 0])
        self.float_w = _loadings(rng, FLOATS)
        self.int_w = _loadings(rng, INTEGERS)
        self.cat_w = [rng.normal(0, 1, (FACTORS, k)) for k in SMALL_CATEGORICALS]
        self.shape = rng.integers(0, 5, FLOATS)  # 0 lognormal, 1 bimodal, 2 trimodal, 3 heavy tail, 4 spike
        self.scale = np.exp(rng.normal(2, 2, FLOATS))
        self.missing = np.where(rng.random(FLOATS) < 0.6, rng.uniform(0, 0.08, FLOATS), 0.0)
        self.int_kind = rng.integers(0, 3, INTEGERS)  # 0 counts, 1 ages/terms, 2 small ordinal
        self.int_missing = np.where(rng.random(INTEGERS) < 0.3, rng.uniform(0, 0.05, INTEGERS), 0.0)
        self.cat_missing = np.where(rng.random(len(SMALL_CATEGORICALS)) < 0.4, 0.03, 0.0)
        freq = 1.0 / np.arange(1, MERCHANTS + 1) ** 1.1
        self.merchant_p = freq / freq.sum()
        self.merchant_names = np.asarray([f"m{i:05d}" for i in rng.permutation(MERCHANTS)], dtype=object)
        self.cat_names = [np.asarray([f"c{j}_{v}" for v in range(k)], dtype=object)
                          for j, k in enumerate(SMALL_CATEGORICALS, start=1)]
        self.label_w = np.zeros(FACTORS)
        self.label_w[[0, 3, 5]] = [1.6, -1.2, 0.9]
        self.bias = None  # set on the first group so ~RARE_RATE of rows are rare

    def columns(self) -> list[str]:
        return ([f"num_{i:02d}" for i in range(FLOATS)] + [f"int_{i:02d}" for i in range(INTEGERS)]
                + ["merchant"] + [f"cat_{j}" for j in range(1, len(SMALL_CATEGORICALS) + 1)] + [LABEL])


def _float_column(z_col: np.ndarray, shape: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    x = z_col + 0.5 * rng.normal(0, 1, len(z_col))
    if shape == 0:
        return scale * np.exp(0.8 * x)
    if shape == 1:
        return scale * (np.where(x > 0.3, 3.0, -1.0) + 0.4 * rng.normal(0, 1, len(x)))
    if shape == 2:
        mode = np.digitize(x, [-0.6, 0.7])
        return scale * (np.array([0.0, 2.5, 6.0])[mode] + 0.3 * rng.normal(0, 1, len(x)))
    if shape == 3:
        return scale * x * np.exp(0.3 * np.minimum(np.abs(rng.standard_t(3, len(x))), 12.0))  # float32-safe
    return np.where(x < -0.5, 0.0, scale * np.exp(0.5 * x))  # a spike at 0 (no purchase) and amounts


def _int_column(z_col: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
    if kind == 0:
        return rng.poisson(np.exp(1.0 + 0.7 * z_col)).astype(np.float64)
    if kind == 1:
        return np.clip(np.round(40 + 12 * z_col + 5 * rng.normal(0, 1, len(z_col))), 18, 95)
    return np.clip(np.round(3 + 1.2 * z_col + 0.5 * rng.normal(0, 1, len(z_col))), 1, 5)


def _with_missing(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    if rate > 0:
        values = values.astype(np.float64, copy=True)
        values[rng.random(len(values)) < rate] = np.nan
    return values


def row_group(design: Design, seed: int, group: int, rows: int) -> pa.Table:
    """Rows of one row group: `rows` rows from their own generator (seed, group + 1)."""
    rng = np.random.default_rng([seed, group + 1])
    z = rng.normal(0, 1, (rows, FACTORS))
    out: dict[str, pa.Array] = {}
    for i in range(FLOATS):
        v = _float_column(z @ design.float_w[i], int(design.shape[i]), float(design.scale[i]), rng)
        v = np.round(_with_missing(v, design.missing[i], rng), 4)
        out[f"num_{i:02d}"] = pa.array(v, from_pandas=True)
    for i in range(INTEGERS):
        v = _with_missing(_int_column(z @ design.int_w[i], int(design.int_kind[i]), rng),
                          design.int_missing[i], rng)
        out[f"int_{i:02d}"] = (pa.array(v.astype(np.int64)) if design.int_missing[i] == 0
                               else pa.array(v, from_pandas=True).cast(pa.int64()))
    # merchant: Zipf ranks, shifted towards the head for rows high on factor 1 (merchant <-> amounts)
    rank = rng.choice(MERCHANTS, size=rows, p=design.merchant_p)
    head = z[:, 1] > 1.0
    rank[head] = rank[head] // 4
    out["merchant"] = pa.array(design.merchant_names[rank].tolist(), pa.string())
    for j, (w, names) in enumerate(zip(design.cat_w, design.cat_names, strict=True), start=1):
        logits = z @ w + rng.gumbel(0, 1, (rows, len(names)))
        picked = names[np.argmax(logits, axis=1)]
        missing = rng.random(rows) < design.cat_missing[j - 1]
        picked = [None if m else p for p, m in zip(picked, missing, strict=True)]
        out[f"cat_{j}"] = pa.array(picked, pa.string())
    score = z @ design.label_w + 0.8 * (rank < 20) + 0.3 * rng.normal(0, 1, rows)
    if design.bias is None:
        design.bias = float(np.quantile(score, 1 - RARE_RATE))
    out[LABEL] = pa.array(np.where(score > design.bias, "fraud", "ok").tolist(), pa.string())
    return pa.table(out).select(design.columns())


def write(path: Path, rows: int, seed: int = 0, group_rows: int = GROUP_ROWS) -> Path:
    """Write the table to `path` group by group (one group in memory at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    design = Design(seed)
    writer = None
    try:
        for group, start in enumerate(range(0, rows, group_rows)):
            table = row_group(design, seed, group, min(group_rows, rows - start))
            writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=group_rows)
    finally:
        if writer is not None:
            writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", default="/tmp/gf_million/million.parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-rows", type=int, default=GROUP_ROWS)
    args = parser.parse_args()
    started = time.perf_counter()
    path = write(Path(args.out), args.rows, args.seed, args.group_rows)
    meta = pq.ParquetFile(path).metadata
    print(f"{path}: {meta.num_rows} rows x {meta.num_columns} columns in {meta.num_row_groups} row groups, "
          f"{path.stat().st_size / 2**20:.0f} MiB, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
