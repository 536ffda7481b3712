"""Do generated images keep their class?"""

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
