"""Training settings resolve in one place: per-kind defaults, variant presets, an explicit loss, overrides."""

import pytest

from gen_factory.data import DataValidationError
from gen_factory.train.hyper import TABLE_EPOCHS, default_hyper, resolve_hyper


def test_images_take_their_variant_and_one_class_models_sngan():
    default = resolve_hyper("image", 1797)
    assert default.variant == "projgan-gp" and default.hyper.loss == "wgan-gp"
    assert default.networks["conditioning"] == "projection" and default.networks["spectral_norm"] is False
    one_class = resolve_hyper("image", 130, one_class=True)
    assert one_class.variant == "sngan" and one_class.hyper.loss == "hinge"
    assert one_class.epochs > default.epochs  # at least IMAGE_STEPS optimizer steps on a small set


def test_an_explicit_loss_sets_spectral_norm_and_overrides_set_fields():
    hinge = resolve_hyper("image", 1797, loss="hinge")
    assert hinge.hyper.loss == "hinge" and hinge.networks["spectral_norm"] is True
    table = resolve_hyper("table", 500, cond_weight=2.0)
    assert table.hyper.cond_weight == 2.0 and table.networks == {"spectral_norm": False}
    assert default_hyper("table").cond_weight == 1.0  # the defaults are never changed in place


def test_table_epochs_follow_the_rows_within_their_range_unless_given():
    assert resolve_hyper("table", 50).epochs == TABLE_EPOCHS[1]
    assert resolve_hyper("table", 10**6).epochs == TABLE_EPOCHS[0]
    given = resolve_hyper("table", 500, epochs=7)
    assert given.epochs == 7 and given.encoder_epochs == 3 and given.variant is None


def test_wrong_settings_are_refused_by_name():
    with pytest.raises(DataValidationError, match="images only"):
        resolve_hyper("table", 500, variant="sngan")
    with pytest.raises(DataValidationError, match="lr_gen"):
        resolve_hyper("table", 500, lr_gen=1e-3)
