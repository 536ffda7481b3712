"""First quality figures: do images keep their class, do table columns keep their moments?"""

from __future__ import annotations

import numpy as np


def label_fidelity(real_x: np.ndarray, real_y: np.ndarray, fake_x: np.ndarray, fake_y: np.ndarray,
                   n_labels: int) -> dict:
    """Accuracy, overall and per label, of an SVC trained on real data when it labels generated data.

    A conditional generator that ignores its label scores about 1/n_labels; one that holds its
    classes scores close to the classifier's accuracy on real held-out data.
    """
    from sklearn.svm import SVC

    clf = SVC(gamma="scale").fit(real_x.reshape(len(real_x), -1), real_y)
    pred = clf.predict(fake_x.reshape(len(fake_x), -1))
    per_label = [float(np.mean(pred[fake_y == k] == k)) if np.any(fake_y == k) else float("nan")
                 for k in range(n_labels)]
    return {"accuracy": float(np.mean(pred == fake_y)), "per_label": per_label}


def column_moments(real: np.ndarray, fake: np.ndarray, columns: list[str]) -> dict:
    """Per-column mean and std, real vs synthetic, and the errors in units of the real std."""
    r_mean, r_std = real.mean(axis=0), real.std(axis=0)
    f_mean, f_std = fake.mean(axis=0), fake.std(axis=0)
    scale = np.where(r_std > 0, r_std, 1.0)
    mean_err = np.abs(f_mean - r_mean) / scale
    std_ratio = f_std / scale
    return {
        "columns": {c: {"real_mean": float(a), "synth_mean": float(b), "real_std": float(s), "synth_std": float(t)}
                    for c, a, b, s, t in zip(columns, r_mean, f_mean, r_std, f_std)},
        "mean_abs_error_in_std": float(mean_err.mean()),
        "max_abs_error_in_std": float(mean_err.max()),
        "std_ratio_mean": float(std_ratio.mean()),
    }
