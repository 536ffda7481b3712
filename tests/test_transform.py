import numpy as np
import pytest
import torch

from gen_factory.data import load_dataset
from gen_factory.data.datasets import table_from_frame
from gen_factory.data.transform import encoding_from_dict, encoding_to_dict, fit_encoding


@pytest.fixture
def mixed_table(gauss_table):
    """Continuous, integer, 2-decimal, categorical (with a rare value) and missing values."""
    rng = np.random.default_rng(1)
    df = gauss_table.assign(price=np.round(rng.gamma(2.0, 10.0, len(gauss_table)), 2),
                            city=rng.choice(["paris", "rome", "oslo"], len(gauss_table), p=[0.6, 0.38, 0.02]))
    df.loc[::7, "price"] = np.nan
    df.loc[::11, "city"] = None
    return df


@pytest.mark.parametrize("method", ["quantile", "modes"])
def test_table_encoding_round_trips_exactly(mixed_table, method):
    data = table_from_frame(mixed_table, "label")
    enc = encoding_from_dict(encoding_to_dict(fit_encoding(data)))  # through JSON, as workers get it
    if method == "modes":
        enc = type(enc).fit(data, method="modes")
    kinds = {c["name"]: (c["kind"], c.get("integer"), c.get("decimals"), c["missing"]) for c in enc.columns}
    assert kinds["count"] == ("continuous", True, None, False)
    assert kinds["price"] == ("continuous", False, 2, True)
    assert kinds["city"] == ("categorical", None, None, True)
    codes = enc.encode(data.features)
    assert codes.shape == (len(data.labels), enc.width)
    back = enc.decoder()(torch.from_numpy(codes)).numpy()
    span = np.nanmax(data.features, axis=0) - np.nanmin(data.features, axis=0)
    same = (np.abs(back - data.features) <= 1e-4 * span) | (np.isnan(back) & np.isnan(data.features))
    assert np.array_equal(back[:, 2:], data.features[:, 2:], equal_nan=True)  # integers, cents, categories: exact
    if method == "quantile":  # a monotone map and its inverse (float32 rounding only)
        assert same.all()
    else:  # CTGAN clips offsets beyond 4 sigma of a mode: the odd extreme value moves
        assert same.mean() > 0.99 and same[:, [2, 4]].all()


def test_decoder_restores_types_from_any_generator_output(mixed_table):
    data = table_from_frame(mixed_table, "label")
    enc = fit_encoding(data)
    out = enc.decoder()(torch.randn(500, enc.width) * 3).numpy()
    count, price, city = out[:, 2], out[:, 3], out[:, 4]
    assert np.all(count == np.round(count)) and count.min() >= 0 and count.max() <= 9
    p = price[~np.isnan(price)]
    assert np.allclose(p * 100, np.round(p * 100), atol=1e-2) and p.min() >= 0
    assert np.isnan(price).any() and np.isnan(city).any()  # missing values come back
    assert set(np.unique(city[~np.isnan(city)])) <= {0.0, 1.0, 2.0}


def test_image_encoding_maps_to_tanh_range_and_back():
    data = load_dataset("digits")
    enc = fit_encoding(data)
    codes = enc.encode(data.images)
    assert codes.min() == -1.0 and codes.max() == 1.0
    back = enc.decoder()(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(back, data.images, atol=1e-5)
    np.testing.assert_allclose(enc.encoder()(torch.from_numpy(data.images)).numpy(), codes, atol=1e-6)
