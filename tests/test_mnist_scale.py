"""Export in bounded memory at MNIST's size (issue 18) and at a million rows (issue 17): the training
images or rows the scorer is calibrated on are a seeded sample (held-out rows are scored in bounded
calls: tests/test_attribution.py). The first MNIST run through the pipeline (42k training, 18k held-out
28x28 images) was killed for memory; the first million-row `train` passed 13 GB in the export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gen_factory.data.datasets import ImageData, table_from_frame
from gen_factory.data.transform import ImageEncoding, fit_encoding
from gen_factory.models import ModelSpec, build_models, spec_for
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


def test_the_export_calibrates_on_a_seeded_sample_of_a_large_tables_rows(monkeypatch):
    rng = np.random.default_rng(0)
    table = table_from_frame(pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60),
                                           "label": np.arange(60) % 2}), "label")
    encoding = fit_encoding(table)
    g, d = build_models(spec := spec_for(table, encoding))
    monkeypatch.setattr(pipeline, "SCORER_CALIBRATION_ROWS", 25)
    with torch.no_grad():
        scales = pipeline._residual_scales(build_encoder(spec).eval(), g.eval(), d.eval(), encoding, table, 0)
    sample = pipeline._calibration_rows(table, 0)  # what the refit's thresholds are carried over on too
    assert len(scales.x) == len(sample.labels) == 25
    torch.testing.assert_close(scales.x, torch.from_numpy(encoding.encode(sample.features)))
    assert set(map(tuple, sample.features.tolist())) < set(map(tuple, table.features.tolist()))


def test_the_decoder_is_calibrated_in_pieces_with_the_knots_of_one_pass(monkeypatch):
    from gen_factory.data import load_dataset, training_split
    from gen_factory.export import bundle

    train, _ = training_split(load_dataset("customers"), 0.3, 0)
    knots = []
    for piece in (bundle.CALIBRATION_ROWS, 777):  # one pass, then 65 pieces
        monkeypatch.setattr(bundle, "DECODE_PIECE_ROWS", piece)
        encoding = fit_encoding(train)
        torch.manual_seed(0)
        g = build_models(spec := spec_for(train, encoding))[0].eval()
        with torch.no_grad():
            shares = bundle.free_shares(g, encoding, spec.n_labels, spec.noise_dim)
            bundle.calibrate_decoder(g, encoding, np.bincount(train.labels).tolist(), spec.noise_dim, shares)
        knots.append([c.model_dump() for c in encoding.columns])
    assert knots[0] == knots[1] and knots[0] != [c.model_dump() for c in fit_encoding(train).columns]


def test_a_large_tables_driver_keeps_samples_and_the_whole_sets_counts(monkeypatch):
    job = pipeline.TrainJob("customers", epochs=2)
    whole = pipeline.prepare(job)
    prep = pipeline.prepare(job)
    monkeypatch.setattr(pipeline, "EVALUATION_ROWS", 100)
    pipeline._keep_samples(prep, job.seed)
    assert [len(d.labels) for d in (prep.data, prep.train, prep.holdout)] == [100, 100, 100]
    assert prep.counts == whole.counts and prep.counts.given == len(whole.data.labels)
    assert prep.counts.per_label == np.bincount(whole.train.labels).tolist()
    card = pipeline.card_for(prep.train, prep.spec, prep.encoding, label_counts=prep.counts.per_label,
                             model_name="m", dataset="customers", loss="wgan-gp", epochs=2, seed=0)
    assert card.label_counts == prep.counts.per_label != np.bincount(prep.train.labels).tolist()
    monkeypatch.setattr(pipeline, "EVALUATION_ROWS", 50_000)  # under the cap: the sets themselves
    pipeline._keep_samples(whole, job.seed)
    assert len(whole.train.labels) == whole.counts.trained
