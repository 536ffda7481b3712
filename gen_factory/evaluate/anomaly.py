"""Anomaly-detection measures: AUROC / AUPRC of a score, and the classic-detector baseline report.

The baseline report answers "can synthetic normal data stand in for real normal data?": PyOD's
IsolationForest, ECOD and KNN are fitted once on real and once on synthetic normal rows
(standardised with the training rows' statistics, flattened for images) and scored on the same
real hold-out. A small loss means the generator's normal data is good enough to build detectors on.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC (anomalies positive, higher score = more anomalous)."""
    return {
        "auroc": float(roc_auc_score(is_anomaly, scores)),
        "auprc": float(average_precision_score(is_anomaly, scores)),
    }


def detectors(seed: int = 0, deep: bool = False, rows: int = 32) -> dict:
    """The classic detectors at their PyOD defaults (IsolationForest seeded); `deep` adds PyOD's
    AutoEncoder (seeded, quiet), the deep baseline of bench/anomaly_broad.py, in batches of at most
    `rows` (it drops a last partial batch, so fewer training rows than a batch would train nothing)."""
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    found = {"iforest": IForest(random_state=seed), "ecod": ECOD(), "knn": KNN()}
    if deep:
        from pyod.models.auto_encoder import AutoEncoder

        found["autoencoder"] = AutoEncoder(random_state=seed, verbose=0, device="cpu",
                                           batch_size=min(32, rows))
    return found


def detector_scores(train_normal: np.ndarray, test: np.ndarray, seed: int = 0,
                    deep: bool = False) -> dict[str, np.ndarray]:
    """Each detector fitted on `train_normal` (standardised by its own statistics), scoring `test`."""
    train, test = _flat(train_normal), _flat(test)
    with warnings.catch_warnings():  # a column missing in every training row: its mean is NaN, then 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(train, axis=0))
    train, test = (
        np.where(np.isnan(train), mean, train),
        np.where(np.isnan(test), mean, test),
    )  # missing -> mean
    std = train.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # constant columns (image borders) stay at 0
    train, test = (train - mean) / std, (test - mean) / std
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, detector in detectors(seed, deep, len(train)).items():
            out[name] = detector.fit(train).decision_function(test)
    return out


def baseline_report(real_normal: np.ndarray, synthetic_normal: np.ndarray, test: np.ndarray,
                    is_anomaly: np.ndarray, seed: int = 0) -> dict[str, dict[str, float]]:
    """{detector: {real, synthetic, loss}}: AUROC on the real hold-out, fitted on real vs on synthetic
    normal data."""
    real = detector_scores(real_normal, test, seed)
    synth = detector_scores(synthetic_normal, test, seed)
    report = {}
    for name in real:
        r, s = roc_auc_score(is_anomaly, real[name]), roc_auc_score(is_anomaly, synth[name])
        report[name] = {"real": float(r), "synthetic": float(s), "loss": float(r - s)}
    return report


def _flat(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)
