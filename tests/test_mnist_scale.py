"""Export in bounded memory at MNIST's size (issue 18): the training images the scorer is calibrated
on are a seeded sample (held-out rows are scored in bounded calls: tests/test_attribution.py). The
first MNIST run through the pipeline (42k training, 18k held-out 28x28 images) was killed for memory."""

from __future__ import annotations

import numpy as np
import torch

from gen_factory.data.datasets import ImageData
from gen_factory.data.transform import ImageEncoding
from gen_factory.models import ModelSpec, build_models
from gen_factory.models.encoder import build_encoder
from gen_factory.services import pipeline


def test_the_export_calibrates_on_a_seeded_sample_of_the_training_images(monkeypatch):
    spec = ModelSpec(kind="image", n_labels=2, shape=[1, 8, 8])
    g, d = build_models(spec)
    encoder = build_encoder(spec)
    rng = np.random.default_rng(0)
    images = ImageData("x", rng.integers(0, 17, (30, 1, 8, 8)).astype(np.float32), np.arange(30) % 2,
                       ["0", "1"])
    encoding = ImageEncoding(0.0, 16.0, True)
    monkeypatch.setattr(pipeline, "CALIBRATION_IMAGES", 10)
    with torch.no_grad():
        scales = pipeline._residual_scales(encoder.eval(), g.eval(), d.eval(), encoding, images, seed=0)
        again = pipeline._residual_scales(encoder, g, d, encoding, images, seed=0)
    assert len(scales.x) == 10 and torch.equal(scales.x, again.x)
    monkeypatch.setattr(pipeline, "CALIBRATION_IMAGES", 100)  # a set under the cap is used whole
    with torch.no_grad():
        assert len(pipeline._residual_scales(encoder, g, d, encoding, images).x) == 30
