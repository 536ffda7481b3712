"""Calibrate a freshly exported scorer on held-out data, and measure it where anomalies are known.

Runs on the exported ONNX graphs (what ships), after training: thresholds at a false-positive rate
on the held-out rows of the model's own labels; for a one-class model, whose hold-out also has the
labels it never saw, AUROC / AUPRC of every score method and the classic-detector baseline report
(real vs synthetic normal training data).
"""

from __future__ import annotations

import numpy as np

from gen_factory.card import NOVELTY_METHOD, AnomalyCalibration, Thresholds, default_method
from gen_factory.data.datasets import values_of
from gen_factory.evaluate.anomaly import baseline_report, detection_metrics
from gen_factory.runtime import scoring
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_arrays

DEFAULT_FPR = 0.05


def calibrate_bundle(model: OnnxModel, train, holdout, fpr: float = DEFAULT_FPR,
                     seed: int = 0) -> AnomalyCalibration:
    """The card's `anomaly` section for an exported model: thresholds, and (one-class models)
    detection metrics and baselines."""
    names, methods = model.label_names, model.card.score_methods
    values = values_of(holdout)
    holdout_names = np.asarray(holdout.label_names)[holdout.labels]
    normal = np.isin(holdout_names, names)
    ids = np.array([names.index(n) for n in holdout_names[normal]], dtype=np.int64)
    best = scoring.score_matrix(model, values)  # best over labels: no label is known for an anomaly
    given = scoring.score_matrix(model, values[normal], ids)
    info = {"fpr": fpr, "default_method": default_method(methods),
            "thresholds": scoring.thresholds(methods, *_without_novelty(methods, given, best[normal]), fpr),
            "anomaly_labels": sorted(set(holdout.label_names) - set(names))}
    if not normal.all():
        is_anomaly = (~normal).astype(int)
        synthetic, _ = generate_arrays(model, np.bincount(train.labels, minlength=len(names)).tolist(), seed)
        info["holdout"] = {m: detection_metrics(best[:, k], is_anomaly) for k, m in enumerate(methods)}
        info["baseline"] = baseline_report(values_of(train), synthetic, values, is_anomaly, seed)
    return AnomalyCalibration.model_validate(info)


def _without_novelty(methods: list[str], *matrices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Hold-out scores with a table's `ensemble` less its novelty (`export.bundle.Novelty`), for the
    thresholds: a held-out row's value past the split's training range, or its missing value where the
    split had none, is novel only to the split model - the model that ships trained on it too - and
    one such row among 30 held-out ones set the threshold above what any in-range row reaches. The
    novelty is measured against the training rows of the model that scores; thresholds on the rest."""
    if NOVELTY_METHOD not in methods:
        return matrices
    ensemble, novelty = methods.index("ensemble"), methods.index(NOVELTY_METHOD)
    out = []
    for m in matrices:
        m = m.copy()
        m[:, ensemble] -= m[:, novelty]
        out.append(m)
    return tuple(out)


def transfer_calibration(calibration: AnomalyCalibration, first: OnnxModel, first_train,
                         refit: OnnxModel, refit_train) -> AnomalyCalibration:
    """Thresholds for a model refit on every row, which has no held-out rows left to set them on.

    The first model's threshold at `fpr` on held-out rows is exceeded by some share of its own training
    rows (lower: rows a model trained on score as more normal); the refit's threshold is exceeded by
    that same share of its training rows. So the false-positive rate on new rows stays what the
    held-out rows measured, while every row trains the model that ships."""
    given_a, best_a = _training_scores(first, first_train)
    given_b, best_b = _training_scores(refit, refit_train)
    thresholds = {}
    for k, method in enumerate(first.card.score_methods):
        held = calibration.thresholds[method]
        thresholds[method] = Thresholds(
            given_label=_same_share(held.given_label, given_a[:, k], given_b[:, k]),
            best_label=_same_share(held.best_label, best_a[:, k], best_b[:, k]))
    return calibration.model_copy(update={"thresholds": thresholds})


def _training_scores(model: OnnxModel, data) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the model's own (normal-label) training rows: against their label, and the best label."""
    names = np.asarray(data.label_names)[data.labels]
    normal = np.isin(names, model.label_names)
    ids = np.array([model.label_names.index(n) for n in names[normal]], dtype=np.int64)
    values = values_of(data)[normal]
    return scoring.score_matrix(model, values, ids), scoring.score_matrix(model, values)


def _same_share(threshold: float, before: np.ndarray, after: np.ndarray) -> float:
    """The value of `after` exceeded by the share of `before` that exceeds `threshold`."""
    share = float(np.mean(before > threshold))
    return float(np.quantile(after, 1.0 - share, method="higher"))


def flat_metrics(info: AnomalyCalibration) -> dict[str, float]:
    """The `anomaly` section as MLflow metrics: anomaly_<method>_auroc, baseline_<detector>_<source>_auroc."""
    out = {f"anomaly_{m}_{k}": v for m, d in (info.holdout or {}).items() for k, v in d.items()}
    out.update({f"baseline_{name}_{source}_auroc": d[source] for name, d in (info.baseline or {}).items()
                for source in ("real", "synthetic")})
    return out
