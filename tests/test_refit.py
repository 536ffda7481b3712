"""The refit on every row goes on from the split model's networks (warm, the default) for a share of the
epochs, where both encode the columns alike; from scratch where they do not. Real Ray Train."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gen_factory import settings
from gen_factory.models import build_models
from gen_factory.models.encoder import build_encoder
from gen_factory.services.pipeline import WARM_REFIT_SHARE, TrainJob, _fit, prepare, prepare_refit


def _distance(a: dict, b: dict) -> float:
    return float(torch.sqrt(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a)))


@pytest.mark.ray
def test_the_warm_refit_goes_on_from_the_split_models_networks():
    from gen_factory.services.cluster import ensure_ray

    ensure_ray()
    job = TrainJob("breast_cancer", model_name="refit-warm", run_name="refit-warm", epochs=8, num_workers=1)
    split = prepare(job)
    every = prepare_refit(job, split)
    assert every.config["warm_start"] and every.recipe.epochs == math.ceil(WARM_REFIT_SHARE * 8) == 2
    assert every.recipe.encoder_epochs == 1 and len(every.train.labels) == len(split.data.labels)

    state = _fit(job, split, every, run_id="")
    torch.manual_seed(split.config["seed"])  # the weights every stage's networks are built with
    start = build_models(split.spec)[0].state_dict()
    first, refit = state["first"]["trainer"]["generator"], state["trainer"]["generator"]
    # Warm: the refit's 2 epochs moved the split's last generator a little way, and it stays about as far
    # from the start as the split's 8 epochs took that. A cold refit would be 2 epochs from `start`.
    assert _distance(refit, first) < 0.7 * _distance(refit, start)
    _assert_warm_encoder(state, split)

    # More epochs resume both stages from their checkpoints; the refit's GAN gets 1 more epoch, and its
    # encoder, made afresh after it, still starts from the split's (now retrained) encoder.
    job = TrainJob("breast_cancer", model_name="refit-warm", run_name="refit-warm", epochs=12, num_workers=1)
    split = prepare(job)
    state = _fit(job, split, prepare_refit(job, split), run_id="")
    assert state["gan_epochs_done"] == 3 and state["first"]["gan_epochs_done"] == 12
    _assert_warm_encoder(state, split)


def _assert_warm_encoder(state: dict, split) -> None:
    """The refit's encoder is far nearer the split's than a newly built encoder is: one warm epoch."""
    first, refit = state["first"]["encoder"]["encoder"], state["encoder"]["encoder"]
    fresh = build_encoder(split.spec).state_dict()
    assert _distance(refit, first) < 0.5 * _distance(fresh, first)


def test_a_refit_whose_encoding_is_wider_starts_from_scratch():
    # x is missing in 2 rows of 40: where a seeded 30 % holdout takes both, the split's encoding has no
    # missing-value flag for x and the refit's has: other network shapes, nothing to go on from.
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    x[:2] = np.nan
    path = settings.data_dir() / "refit-wider.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": x, "y": rng.normal(size=40), "label": ["a", "b"] * 20}).to_parquet(path)
    for seed in range(50):
        split = prepare(TrainJob(str(path), epochs=8, seed=seed))
        if not np.isnan(split.train.features).any():
            break
    else:
        pytest.fail("no seed held out both rows with x missing")
    every = prepare_refit(TrainJob(str(path), epochs=8, seed=seed), split)
    assert every.spec != split.spec
    assert "warm_start" not in every.config and every.recipe.epochs == 8  # cold, for all its epochs


def test_warm_refit_false_refits_from_scratch():
    job = TrainJob("iris", epochs=8, warm_refit=False)
    assert "warm_start" not in prepare_refit(job, split := prepare(job)).config
    assert prepare_refit(job, split).recipe.epochs == 8


def test_a_run_begun_with_a_cold_refit_is_told_how_to_resume(tmp_path):
    from gen_factory.data.validate import DataValidationError
    from gen_factory.train.distributed import REFIT_SETTINGS_FILE, check_resumable

    job = TrainJob("iris", epochs=8)
    split = prepare(job)
    cold = prepare_refit(TrainJob("iris", epochs=8, warm_refit=False), split)
    check_resumable(cold.config, "begun-cold", str(tmp_path), REFIT_SETTINGS_FILE)  # the run's first start
    with pytest.raises(DataValidationError, match=r"warm_start.*--no-warm-refit\) to resume"):
        check_resumable(prepare_refit(job, split).config, "begun-cold", str(tmp_path), REFIT_SETTINGS_FILE)
