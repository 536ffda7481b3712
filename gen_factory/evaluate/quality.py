"""Column shapes and column pair trends, with SDMetrics' definitions so figures compare.

- shapes: KSComplement (1 - two-sample KS statistic) for numeric columns, TVComplement
  (1 - total variation distance of the category frequencies) for categorical ones;
- pair trends: CorrelationSimilarity (1 - |r_real - r_synth| / 2, Pearson) for numeric pairs,
  ContingencySimilarity (1 - total variation distance of the joint frequencies) for every pair
  with a categorical column, numeric columns binned into 10 equal-width bins (`discretize`);
- as SDMetrics' QualityReport (0.32) does, a pair counts only where the real data has a trend to
  keep: |Pearson r| > 0.5, or Cramer's V > 0.3;
- quality: the mean of the two averages.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

N_BINS = 10
MIN_REAL_CORRELATION = 0.5
MIN_REAL_ASSOCIATION = 0.3


def column_kinds(frame: pd.DataFrame, categorical: set[str] | None = None) -> dict[str, str]:
    """'numerical' or 'categorical' per column: non-numeric and bool columns, plus `categorical`."""
    forced = categorical or set()
    return {c: "categorical" if c in forced or not pd.api.types.is_numeric_dtype(frame[c])
            or pd.api.types.is_bool_dtype(frame[c]) else "numerical" for c in frame.columns}


def ks_complement(real: pd.Series, synth: pd.Series) -> float:
    r, s = real.dropna().to_numpy(float), synth.dropna().to_numpy(float)
    if len(r) == 0 or len(s) == 0:
        return float("nan")
    return 1.0 - float(ks_2samp(r, s).statistic)


def tv_complement(real: pd.Series, synth: pd.Series) -> float:
    p = real.dropna().astype(object).value_counts(normalize=True)
    q = synth.dropna().astype(object).value_counts(normalize=True)
    if len(p) == 0 or len(q) == 0:
        return float("nan")
    p, q = p.align(q, fill_value=0.0)
    return 1.0 - 0.5 * float(np.abs(p - q).sum())


def correlation_similarity(real: pd.DataFrame, synth: pd.DataFrame) -> float:
    r = real.dropna().astype(float)
    s = synth.dropna().astype(float)
    return _similarity(r.iloc[:, 0].corr(r.iloc[:, 1]), s.iloc[:, 0].corr(s.iloc[:, 1]))


def _similarity(cr: float, cs: float) -> float:
    """1 - |r_real - r_synth| / 2 where the real pair has a trend to keep, else NaN (not counted)."""
    if np.isnan(cr) or np.isnan(cs) or abs(cr) <= MIN_REAL_CORRELATION:
        return float("nan")
    return 1.0 - abs(cr - cs) / 2.0


def contingency_similarity(real: pd.DataFrame, synth: pd.DataFrame) -> float:
    from scipy.stats.contingency import association

    table = real.groupby(list(real.columns), dropna=False).size().unstack(fill_value=0)
    if min(table.shape) < 2 or association(table.to_numpy(), method="cramer") <= MIN_REAL_ASSOCIATION:
        return float("nan")
    p = real.astype(object).value_counts(normalize=True, dropna=False)
    q = synth.astype(object).value_counts(normalize=True, dropna=False)
    p, q = p.align(q, fill_value=0.0)
    return 1.0 - 0.5 * float(np.abs(p - q).sum())


def discretize(col: pd.Series) -> pd.Series:
    """10 equal-width bins over the column's own range, as SDMetrics' QualityReport bins each table
    (real and synthetic separately); NaN falls into its own bin."""
    edges = np.histogram_bin_edges(col.dropna().to_numpy(float), bins=N_BINS)
    return pd.Series(np.digitize(col.to_numpy(float), edges), index=col.index)


def quality_report(real: pd.DataFrame, synth: pd.DataFrame, categorical: set[str] | None = None) -> dict:
    """Shapes, pair trends and overall quality, with the per-column and per-pair scores."""
    kinds = column_kinds(real, categorical)
    cols = list(real.columns)
    shapes = {
        c: ks_complement(real[c], synth[c]) if kinds[c] == "numerical" else tv_complement(real[c], synth[c])
        for c in cols
    }
    binned_real, binned_synth = {}, {}
    for c in cols:
        if kinds[c] == "numerical":
            binned_real[c], binned_synth[c] = discretize(real[c]), discretize(synth[c])
        else:
            binned_real[c], binned_synth[c] = real[c], synth[c]
    numeric = [c for c in cols if kinds[c] == "numerical"]
    # Every numeric pair's Pearson r at once (pairwise-complete rows, as correlation_similarity drops
    # NaN per pair): 200 columns make 19,900 pairs, a minute one pair at a time.
    r_real, r_synth = (f[numeric].astype(float).corr() for f in (real, synth))
    pairs = {}
    for a, b in itertools.combinations(cols, 2):
        if kinds[a] == kinds[b] == "numerical":
            pairs[(a, b)] = _similarity(r_real.at[a, b], r_synth.at[a, b])
        else:
            pairs[(a, b)] = contingency_similarity(pd.concat([binned_real[a], binned_real[b]], axis=1),
                                                   pd.concat([binned_synth[a], binned_synth[b]], axis=1))
    shape_score = float(np.nanmean(list(shapes.values())))
    pair_score = float(np.nanmean(list(pairs.values()))) if pairs else float("nan")
    return {"quality": float(np.nanmean([shape_score, pair_score])), "column_shapes": shape_score,
            "column_pair_trends": pair_score, "shapes": shapes,
            "pairs": {f"{a}|{b}": v for (a, b), v in pairs.items()}, "kinds": kinds}
