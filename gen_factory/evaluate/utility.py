"""Train on synthetic, test on real (TSTR): does generated data teach a classifier the real task?

The classifier is fixed (a seeded 200-tree RandomForest) so figures compare across systems;
categorical columns enter as codes of the real data's categories, missing values as NaN
(sklearn's forests handle them natively).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score


def to_matrix(frame: pd.DataFrame, vocab: dict[str, list]) -> np.ndarray:
    """Numeric matrix: categorical columns (those in `vocab`) as codes, unknown categories as -1."""
    cols = []
    for c in frame.columns:
        if c in vocab:
            index = {v: i for i, v in enumerate(vocab[c])}
            cols.append(np.array([np.nan if pd.isna(v) else index.get(v, -1) for v in frame[c]], dtype=float))
        else:
            cols.append(frame[c].to_numpy(dtype=float))
    return np.column_stack(cols)


def tstr(
    synth: pd.DataFrame, holdout: pd.DataFrame, label: str, categorical: set[str], seed: int = 0
) -> dict:
    """Accuracy and macro-F1 on the real hold-out of a forest trained on `synth`."""
    features = [c for c in holdout.columns if c != label]
    vocab = {c: sorted(holdout[c].dropna().unique().tolist(), key=str) for c in features if c in categorical}
    for c in vocab:
        vocab[c] = sorted(set(vocab[c]) | set(synth[c].dropna().unique().tolist()), key=str)
    clf = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    clf.fit(to_matrix(synth[features], vocab), synth[label].astype(str).to_numpy())
    pred = clf.predict(to_matrix(holdout[features], vocab))
    truth = holdout[label].astype(str).to_numpy()
    return {"accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro"))}
