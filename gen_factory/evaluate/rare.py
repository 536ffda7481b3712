"""Do synthetic rare-class rows help a classifier more than what users would reach for instead?

A table's augmented set is judged on real held-out rows by the rare class's average precision (AP),
F1 and balanced accuracy, beside the controls that need no generator: the real rows alone, class
weights, random oversampling and SMOTE (SMOTENC where the table has categorical columns; ADASYN
where it has none), each control adding as many rare rows as the augmentation did. Published
benchmarks find GAN oversampling rarely beats SMOTE, so a user sees the best control's figure
beside the augmented one, never the augmented one alone.

Rows are the model's codes (`services.augmentation.model_codes`): missing numbers take the training
median and missing categories the commonest code (SMOTE and most classifiers take no NaN), fitted
on the real training rows and applied to every set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen_factory.data.validate import DataValidationError

CONTROLS = ("real_only", "class_weights", "oversample", "smote", "adasyn")
CLASSIFIERS = ("gradient_boosting", "random_forest", "logistic")
MAX_BOOSTED_CATEGORIES = 255  # scikit-learn's HistGradientBoosting takes no more categories in a column


@dataclass(frozen=True)
class ArmScore:
    """One training set's figures on the real test rows, for the rare class."""

    ap: float
    f1: float
    balanced_accuracy: float


@dataclass(frozen=True)
class RareReport:
    """Every arm's figures; the best control by AP and the augmented set's difference to it."""

    rare_label: str
    classifier: str
    arms: dict[str, ArmScore]
    test_rows: int
    extra_rare_rows: int

    @property
    def best_control(self) -> str:
        return max((a for a in self.arms if a in CONTROLS), key=lambda a: self.arms[a].ap)

    @property
    def uplift(self) -> float:
        return self.arms["augmented"].ap - self.arms[self.best_control].ap


class Imputer:
    """Median (numbers) / commonest code (categories) of the real training rows, for every NaN."""

    def __init__(self, x: np.ndarray, categorical: np.ndarray):
        fill = np.zeros(x.shape[1])
        for j in range(x.shape[1]):
            present = x[~np.isnan(x[:, j]), j]
            if len(present) == 0:
                continue
            if categorical[j]:
                values, counts = np.unique(present, return_counts=True)
                fill[j] = values[np.argmax(counts)]
            else:
                fill[j] = np.median(present)
        self.fill = fill

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        return np.where(np.isnan(x), self.fill, x)


def classifier(name: str, categorical: np.ndarray, seed: int, balanced: bool = False,
               n_categories: np.ndarray | None = None):
    """A fresh sklearn classifier: categories as categories (gradient boosting), as codes (a forest
    splits them fine), or one-hot (logistic regression on standardised numbers)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    weight = "balanced" if balanced else None
    n_categories = np.zeros(len(categorical)) if n_categories is None else n_categories
    if name == "gradient_boosting":  # it takes at most MAX_BOOSTED_CATEGORIES per column; more stay codes
        native = categorical & (n_categories <= MAX_BOOSTED_CATEGORIES)
        return HistGradientBoostingClassifier(categorical_features=native if native.any() else None,
                                              class_weight=weight, random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=200, class_weight=weight, random_state=seed, n_jobs=1)
    numeric, cats = np.flatnonzero(~categorical), np.flatnonzero(categorical)
    prep = ColumnTransformer([("num", StandardScaler(), numeric),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    return make_pipeline(prep, LogisticRegression(max_iter=2000, class_weight=weight))


def resampled(arm: str, x: np.ndarray, y: np.ndarray, rare: int, extra: int, categorical: np.ndarray,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The real rows plus `extra` rows of class `rare` made by a control (`oversample`, `smote`,
    `adasyn`); SMOTE is SMOTENC where the table has categorical columns, and ADASYN, which has no
    categorical form, falls back to SMOTENC there too."""
    if extra <= 0 or arm in ("real_only", "class_weights"):
        return x, y
    from imblearn.over_sampling import ADASYN, SMOTE, SMOTENC, RandomOverSampler

    target = {rare: int((y == rare).sum()) + extra}
    k = max(1, min(5, int((y == rare).sum()) - 1))
    if arm == "oversample":
        sampler = RandomOverSampler(sampling_strategy=target, random_state=seed)
    elif categorical.any():
        sampler = SMOTENC(np.flatnonzero(categorical).tolist(), sampling_strategy=target, k_neighbors=k,
                          random_state=seed)
    elif arm == "smote":
        sampler = SMOTE(sampling_strategy=target, k_neighbors=k, random_state=seed)
    else:
        sampler = ADASYN(sampling_strategy=target, n_neighbors=k, random_state=seed)
    try:
        return sampler.fit_resample(x, y)
    except (ValueError, RuntimeError):
        if arm != "adasyn" or categorical.any():
            raise
        return x, y  # ADASYN found no rare row among others to grow from: it adds none


def score_arm(model, x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
              rare: int) -> ArmScore:
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score

    model.fit(x, y)
    column = list(model.classes_).index(rare)
    proba = model.predict_proba(test_x)[:, column]
    predicted = model.predict(test_x)
    return ArmScore(float(average_precision_score(test_y == rare, proba)),
                    float(f1_score(test_y == rare, predicted == rare, zero_division=0.0)),
                    float(balanced_accuracy_score(test_y, predicted)))


def rare_class_report(real: tuple[np.ndarray, np.ndarray], augmented: tuple[np.ndarray, np.ndarray],
                      test: tuple[np.ndarray, np.ndarray], categorical: np.ndarray, rare: int,
                      rare_label: str, seed: int = 0, name: str = "gradient_boosting",
                      controls: tuple[str, ...] = CONTROLS) -> RareReport:
    """Every control and the augmented set, one classifier, scored on `test` for class `rare`."""
    if int((real[1] == rare).sum()) < 2:
        raise DataValidationError("classes", f"{rare_label!r} has {int((real[1] == rare).sum())} real row(s)",
                                  "judge a class with at least 2 real rows (SMOTE needs a neighbour)")
    impute = Imputer(real[0], categorical)
    x, y = impute(real[0]), real[1]
    n_categories = np.nanmax(np.vstack([x, test[0]]), axis=0) + 1  # the codes each column takes
    aug_x, aug_y = impute(augmented[0]), augmented[1]
    test_x, test_y = impute(test[0]), test[1]
    extra = int((aug_y == rare).sum() - (y == rare).sum())
    arms = {}
    for arm in controls:
        arm_x, arm_y = resampled(arm, x, y, rare, extra, categorical, seed)
        arms[arm] = score_arm(classifier(name, categorical, seed, arm == "class_weights", n_categories),
                              arm_x, arm_y, test_x, test_y, rare)
    arms["augmented"] = score_arm(classifier(name, categorical, seed, n_categories=n_categories),
                                  aug_x, aug_y, test_x, test_y, rare)
    return RareReport(rare_label, name, arms, int(len(test_y)), extra)
