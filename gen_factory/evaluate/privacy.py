"""Distance to closest record (DCR): are synthetic rows copies of training rows?

Columns are scaled to [0, 1] by the training range (categorical: 0 if equal, 1 if not); the
distance is the mean absolute difference over columns. Synthetic rows should be about as far
from the training rows as unseen real rows (the hold-out) are: a ratio well below 1 means copying.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _scaled(frame: pd.DataFrame, train: pd.DataFrame, categorical: set[str]) -> np.ndarray:
    cols = []
    for c in train.columns:
        if c in categorical:
            vocab = {v: i for i, v in enumerate(pd.unique(train[c].astype(object)))}
            cols.append(np.array([vocab.get(v, -1) if not pd.isna(v) else -2 for v in frame[c]], dtype=float))
        else:
            lo, hi = float(train[c].min()), float(train[c].max())
            cols.append((frame[c].to_numpy(float) - lo) / ((hi - lo) or 1.0))
    return np.nan_to_num(np.column_stack(cols), nan=-1.0)


def _nearest(a: np.ndarray, b: np.ndarray, categorical_mask: np.ndarray, budget: int = 2**22) -> np.ndarray:
    """Each row of `a`'s distance to its nearest row of `b`, `a` in chunks of about `budget` differences
    (32 MiB, a few times that with the temporaries; one row at a time when `b` alone is larger): a fixed
    256 rows against 50,000 training rows x 100 columns was a 10 GB transient."""
    chunk = max(1, budget // max(1, b.size))
    out = []
    for start in range(0, len(a), chunk):
        diff = np.abs(a[start:start + chunk, None, :] - b[None, :, :])
        diff[..., categorical_mask] = diff[..., categorical_mask] > 0
        out.append(diff.mean(axis=2).min(axis=1))
    return np.concatenate(out)


def distance_to_closest_record(synth: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                               categorical: set[str], max_rows: int = 2000, seed: int = 0) -> dict:
    """Median DCR of synthetic and of hold-out rows to the training rows, their ratio, exact copies. At
    most `max_rows` seeded rows of each of the synthetic and hold-out sides are measured, against every
    training row."""
    rng = np.random.default_rng(seed)
    synth = synth.iloc[np.sort(rng.permutation(len(synth))[:max_rows])]
    if len(holdout) > max_rows:  # (smaller hold-outs are taken whole, as before: no draw)
        holdout = holdout.iloc[np.sort(rng.permutation(len(holdout))[:max_rows])]
    mask = np.array([c in categorical for c in train.columns])
    t, s, h = (_scaled(f[train.columns], train, categorical) for f in (train, synth, holdout))
    d_synth, d_hold = _nearest(s, t, mask), _nearest(h, t, mask)
    median_hold = float(np.median(d_hold))
    return {"dcr_synthetic_median": float(np.median(d_synth)), "dcr_holdout_median": median_hold,
            "dcr_ratio": float(np.median(d_synth) / median_hold) if median_hold > 0 else float("nan"),
            "exact_copies_fraction": float(np.mean(d_synth == 0))}
