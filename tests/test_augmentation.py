"""Augmentation counts and the uplift measure (the Parquet path runs in test_image_e2e)."""

import copy

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


@pytest.fixture(scope="module")
def small_digits_model(tmp_path_factory):
    """A tiny digits GAN trained and registered through the pipeline (Ray Train, ONNX, MLflow), and the
    NPZs of its real training images and of unseen labelled digits to evaluate on."""
    import ray

    from gen_factory.services.pipeline import TrainJob, train_and_register

    root = tmp_path_factory.mktemp("aug-eval")
    rest, small = split(load_dataset("digits"), 0.1, 0)  # 10 %: ~180 real images
    _, unseen = split(rest, 0.1, 1)
    paths = {}
    for name, part in (("small", small), ("unseen", unseen)):
        paths[name] = root / f"{name}.npz"
        np.savez(paths[name], images=part.images, labels=part.labels, label_names=np.array(part.label_names))
    train_and_register(TrainJob(str(paths["small"]), model_name="aug-eval", epochs=1, batch_size=16,
                                num_workers=1, holdout=0.2), log=lambda *_: None)
    yield paths
    ray.shutdown()


@pytest.mark.ray
def test_augment_evaluate_reports_the_augmented_accuracy_beside_the_best_control(small_digits_model,
                                                                                 tmp_path):
    from gen_factory.cli.datasets import controls_report
    from gen_factory.services.augmentation import augment_dataset

    info = augment_dataset("aug-eval", str(small_digits_model["small"]), tmp_path / "aug.parquet",
                           ratio=1.0, evaluate=str(small_digits_model["unseen"]),
                           yardstick={"rounds": 2, "round_steps": 5})
    c = info["controls"]
    for arm in ("real_only", "real_standard", "augmented", "best_control"):
        assert 0.0 <= c[arm] <= 1.0
    assert c["best_control_arm"] in ("real_only", "real_standard")  # chosen on validation accuracy
    assert c["best_control"] == c[c["best_control_arm"]] and (c["rounds"], c["round_steps"]) == (2, 5)
    assert c["uplift"] == pytest.approx(c["augmented"] - c["best_control"])
    unseen = len(np.load(small_digits_model["unseen"])["labels"])
    assert c["augmented_rows"] == 2 * c["real_rows"] and c["val_rows"] + c["test_rows"] == unseen
    printed = controls_report(c)
    assert "best control" in printed and f"{c['augmented']:.4f}" in printed and "real only" in printed


def test_augment_evaluate_refuses_tables_and_mismatched_images_before_writing(tmp_path):
    from gen_factory.services.augmentation import evaluation_split

    table = load_dataset("iris")
    with pytest.raises(DataValidationError, match="measures images"):
        evaluation_split("iris", table, "label", 0)
    digits = load_dataset("digits")
    other = tmp_path / "two.npz"
    np.savez(other, images=digits.images[:20], labels=digits.labels[:20] % 2,
             label_names=np.array(["0", "1"]))
    with pytest.raises(DataValidationError, match="labelled images like the real data's"):
        evaluation_split(str(other), digits, "label", 0)
    own = tmp_path / "own.npz"  # 40 evaluation images, the first 5 of them in the real data too
    np.savez(own, images=digits.images[995:1035], labels=digits.labels[995:1035],
             label_names=np.array(digits.label_names))
    with pytest.raises(DataValidationError, match="5 of its 40 images are in the real data too"):
        evaluation_split(str(own), first(digits, 1000), "label", 0)
    (val, _), (test, _) = evaluation_split(str(own), first(digits, 995), "label", 0)
    assert len(val) + len(test) == 40


def first(data, n: int):
    """`data` cut to its first `n` images."""
    cut = copy.copy(data)
    cut.images, cut.labels = data.images[:n], data.labels[:n]
    return cut
