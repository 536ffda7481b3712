"""Does synthetic data help a downstream classifier? Accuracy on real held-out data, trained on
real rows only vs on the augmented set."""

from __future__ import annotations

import numpy as np


def augmentation_uplift(real_x: np.ndarray, real_y: np.ndarray, aug_x: np.ndarray, aug_y: np.ndarray,
                        test_x: np.ndarray, test_y: np.ndarray) -> dict:
    """SVC (sklearn defaults, as in the digits reference) trained on each set, scored on `test`.

    Images are flattened; tables are standardised on the real rows first (an SVC needs it).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # noqa: E731
    images = np.asarray(real_x).ndim > 2

    def score(x, y) -> float:
        clf = SVC(gamma="scale") if images else make_pipeline(StandardScaler(), SVC(gamma="scale"))
        return float(clf.fit(flat(x), y).score(flat(test_x), test_y))

    real_only, augmented = score(real_x, real_y), score(aug_x, aug_y)
    return {"real_only": real_only, "augmented": augmented, "uplift": augmented - real_only,
            "real_rows": int(len(real_y)), "augmented_rows": int(len(aug_y))}
