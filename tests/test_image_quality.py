"""Image metrics, DiffAugment, the variant presets and export at 28x28 / 32x32 RGB (in process)."""

import numpy as np
import pytest
import torch

from gen_factory.card import ModelCard
from gen_factory.data import load_dataset, split
from gen_factory.data.transform import ImageEncoding, encoding_spec
from gen_factory.evaluate import images
from gen_factory.evaluate.images import (
    FeatureSpace,
    class_diversity,
    classification_accuracy_score,
    cnn_classification_accuracy_score,
    frechet_distance,
    image_quality,
    precision_recall,
    save_class_grids,
)
from gen_factory.export.bundle import export_bundle
from gen_factory.models import ModelSpec, build_models
from gen_factory.models.diffaugment import diff_augment
from gen_factory.models.encoder import build_encoder
from gen_factory.models.variants import VARIANTS
from gen_factory.train.hyper import default_hyper
from gen_factory.train.loop import GANTrainer


@pytest.fixture(scope="module")
def digits():
    return split(load_dataset("digits"), 0.3, 0)


def test_frechet_and_precision_recall_separate_good_from_collapsed_samples():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    same = rng.normal(size=(400, 8))
    collapsed = rng.normal(scale=0.05, size=(400, 8))  # every sample near the centre
    assert frechet_distance(real, same) < 0.5 < frechet_distance(real, collapsed)
    p, r = precision_recall(real, same)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.2  # realistic but not diverse: recall, not precision, catches it
    labels = np.repeat([0, 1], 200)
    ratio = class_diversity(collapsed, labels, 2) / class_diversity(real, labels, 2)
    assert np.all(ratio < 0.1)


def test_image_quality_on_real_digits_is_near_the_ceiling_and_flags_a_collapsed_class(digits, tmp_path):
    train, test = digits
    space = FeatureSpace(train.images, train.labels, 10, seed=0, epochs=10)
    # "Generated" = real held-out digits: CAS and fidelity must be high, no class flagged.
    m = image_quality(train.images, train.labels, test.images, test.labels, test.images, test.labels,
                      train.label_names, space=space)
    assert m["cas"] > 0.9 and m["label_fidelity"] > 0.95 and m["feature_net_accuracy"] > 0.9
    assert m["precision"] > 0.8 and m["recall"] > 0.8 and m["mode_collapse"] == []
    # Class 3 collapsed to copies of one image: flagged, and its diversity ratio is ~0.
    fake = test.images.copy()
    threes = np.flatnonzero(test.labels == 3)
    fake[threes] = fake[threes[0]]
    m = image_quality(
        train.images,
        train.labels,
        test.images,
        test.labels,
        fake,
        test.labels,
        train.label_names,
        space=space,
    )
    assert m["mode_collapse"] == ["3"] and m["diversity_ratio_3"] < 0.01
    assert classification_accuracy_score(fake, test.labels, test.images, test.labels) < 0.99
    paths = save_class_grids(fake, test.labels, train.label_names, tmp_path)
    assert [p.name for p in paths] == [f"class_{k}.png" for k in range(10)]


def test_the_cas_cnn_trains_every_epoch_with_a_decaying_rate_the_feature_space_stays_as_it_was(monkeypatch):
    """The MNIST CAS's CNN once stopped at FEATURE_SAMPLES (3 of its 20 epochs on 10k images: 0.96 on
    real digits), then at a constant rate reached 0.9747, both under the 0.98 goal it measures; it now
    decays its rate. The pipeline's feature space keeps its cap and its constant rate."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 17, (40, 1, 8, 8)).astype(np.float32), np.arange(40) % 2
    assert FeatureSpace(x, y, 2, epochs=5, max_samples=80).epochs == 2
    assert FeatureSpace(x, y, 2, epochs=5, max_samples=10).epochs == 1  # at least one
    assert FeatureSpace(x, y, 2, epochs=5, max_samples=None).epochs == 5
    trained = []

    class Spy(FeatureSpace):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trained.append((self.epochs, kwargs.get("decay", False)))

    monkeypatch.setattr(images, "FeatureSpace", Spy)
    monkeypatch.setattr(images, "FEATURE_SAMPLES", 40)
    acc = cnn_classification_accuracy_score(x, y, x, y, 2, epochs=4)
    assert trained == [(4, True)] and 0 <= acc <= 1
    image_quality(x, y, x, y, x, y, ["0", "1"])
    assert trained[1] == (20, False)  # the pipeline's feature space: its 20 epochs (40 images), no decay


def test_diff_augment_keeps_shape_moves_pixels_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    x.requires_grad_(True)
    moved = diff_augment("translation")(x)
    assert moved.shape == x.shape
    assert (moved.detach() != x.detach()).flatten(1).any(1).float().mean() > 0.5
    cut = diff_augment("translation,cutout,color")(x)
    cut.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment("") is None
    with pytest.raises(ValueError, match="unknown.*translation, cutout, color"):
        diff_augment("flip")


def _trainer(name, shape):
    torch.manual_seed(0)
    preset = VARIANTS[name]
    g, d = build_models(ModelSpec("image", 3, shape, **preset["spec"]))
    hyper = default_hyper("image")
    for key, value in preset["hyper"].items():
        setattr(hyper, key, value)
    trainer = GANTrainer(g, d, hyper, 64)
    for _ in range(2):
        out = trainer.step(torch.rand(8, *shape) * 2 - 1, torch.randint(0, 3, (8,)))
        assert np.isfinite(out["d_loss"])
    return trainer


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_trains_a_step(name):
    trainer = _trainer(name, [1, 8, 8])
    assert trainer.g_ema(torch.randn(3, 64), torch.arange(3)).shape == (3, 1, 8, 8)


@pytest.mark.parametrize("name, shape", [("vanilla", [1, 28, 28]), ("sngan", [3, 32, 32])])
def test_variants_export_with_parity_at_28_and_32_rgb(name, shape, tmp_path):
    trainer = _trainer(name, shape)
    card = ModelCard(model_name=name, kind="image", dataset="random", label_column="label",
                     label_names=["0", "1", "2"], shape=shape, n_labels=3, noise_dim=64,
                     encoding=encoding_spec(ImageEncoding(0.0, 255.0)), loss="wgan-gp", epochs=1, seed=0)
    encoder = build_encoder(ModelSpec(kind="image", n_labels=3, shape=shape)).eval()
    parity = export_bundle(
        trainer.g_ema,
        trainer.d.eval(),
        encoder,
        (1.0, 1.0),
        ImageEncoding(0.0, 255.0),
        card,
        tmp_path / "bundle",
    )
    assert max(parity.values()) <= 1e-4
