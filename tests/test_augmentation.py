"""Augmentation counts and the uplift measure (the Parquet path runs in test_image_e2e)."""

import numpy as np
import pytest

from gen_factory.data import DataValidationError, load_dataset, split
from gen_factory.evaluate.uplift import augmentation_uplift
from gen_factory.services.augmentation import synthetic_counts


def test_synthetic_counts_follow_the_ratio_and_the_chosen_classes():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 6)
    assert synthetic_counts(labels, ["a", "b", "c"], 0.5) == [5, 2, 3]
    assert synthetic_counts(labels, ["a", "b", "c"], 2, classes=["b"]) == [0, 8, 0]
    with pytest.raises(DataValidationError, match="unknown label.*'z'"):
        synthetic_counts(labels, ["a", "b", "c"], 1, classes=["z"])
    with pytest.raises(DataValidationError, match="ratio: 0"):
        synthetic_counts(labels, ["a", "b", "c"], 0)


def test_uplift_is_positive_when_the_extra_rows_are_real_and_negative_when_they_are_noise():
    train, test = split(load_dataset("digits"), 0.3, 0)
    small, rest = split(train, 0.95, 0)  # ~5 % of the training digits
    more = augmentation_uplift(small.images, small.labels, np.concatenate([small.images, rest.images[:400]]),
                               np.concatenate([small.labels, rest.labels[:400]]), test.images, test.labels)
    assert more["uplift"] > 0.01 and more["augmented_rows"] == len(small.labels) + 400
    noise = np.random.default_rng(0).uniform(0, 16, (400, 1, 8, 8))
    worse = augmentation_uplift(small.images, small.labels, np.concatenate([small.images, noise]),
                                np.concatenate([small.labels, np.arange(400) % 10]), test.images, test.labels)
    assert worse["uplift"] < 0 and worse["real_only"] == more["real_only"]
