import numpy as np
import pytest
import torch

from gen_factory.data import load_dataset
from gen_factory.data.columns import ContinuousColumn
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
    kinds = {c.name: (c.kind, getattr(c, "integer", None), getattr(c, "decimals", None), c.missing)
             for c in enc.columns}
    assert kinds["count"] == ("continuous", True, None, False)
    assert kinds["price"] == ("continuous", False, 2, True)
    assert kinds["city"] == ("categorical", None, None, True)
    codes = enc.encode(data.features)
    assert codes.shape == (len(data.labels), enc.width)
    back = enc.decoder()(torch.from_numpy(codes)).numpy()
    span = np.nanmax(data.features, axis=0) - np.nanmin(data.features, axis=0)
    same = (np.abs(back - data.features) <= 1e-4 * span) | (np.isnan(back) & np.isnan(data.features))
    assert np.array_equal(
        back[:, 2:], data.features[:, 2:], equal_nan=True
    )  # integers, cents, categories: exact
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


def _segment_reference(x: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    """f(x) by comparing with every knot, in float32 as the graph computes it."""
    xs64, ys64 = np.asarray(xs), np.asarray(ys)
    knots = xs64.astype(np.float32)
    y0, slope, x0 = (
        ys64[:-1].astype(np.float32),
        (np.diff(ys64) / np.diff(xs64)).astype(np.float32),
        knots[:-1],
    )
    t = np.clip(x, knots[0], knots[-1])
    i = (t[:, None] >= knots[1:-1]).sum(axis=1)
    return y0[i] + slope[i] * (t - x0[i])


def _probes(xs: list[float], cells: int, rng) -> np.ndarray:
    """Each knot and each cell edge, one float32 step either side of them, outside the range, at random."""
    k = np.asarray(xs, np.float32)
    edges = (np.float64(k[0]) + (np.float64(k[-1]) - np.float64(k[0])) / cells * np.arange(cells + 1)).astype(
        np.float32
    )
    at = np.concatenate([k, edges])
    return np.concatenate([at, np.nextafter(at, np.float32(-np.inf)), np.nextafter(at, np.float32(np.inf)),
                           [k[0] - 1, k[-1] + 1], rng.uniform(k[0], k[-1], 3000)]).astype(np.float32)


def _on_cell_edges(low: float, high: float) -> tuple[list[float], list[float]]:
    """A map with a knot on every third cell edge of its grid: where a float32 cell index that
    rounds the wrong way (no margin) picks the wrong segment for values one step off an edge."""
    from gen_factory.data.table_transformer import GRID_CELLS

    low, high = float(np.float32(low)), float(np.float32(high))
    knots = (low + (high - low) / GRID_CELLS * np.arange(1, GRID_CELLS, 3)).astype(np.float32)
    return np.r_[low, knots, high].tolist(), np.arange(len(knots) + 2.0).tolist()


def test_quantile_maps_find_the_exact_segment_of_every_value():
    """The grid lookup agrees bit for bit with comparing each value against every knot - at each
    knot and cell edge and one float32 step either side, outside the range, with knots on cell
    edges, crowded into one cell or squeezed by an outlier, at magnitudes where float32 steps are
    coarse, for a constant column, and for the maps of the bundled tables - and NaN stays NaN."""
    from gen_factory.data.table_transformer import GRID_CELLS, MAX_REACH, _quantile_banks

    rng = np.random.default_rng(0)
    maps = [(np.sort(rng.normal(size=100)).tolist(), np.sort(rng.gamma(2.0, 10.0, 100)).tolist()),
            ([0.0, 0.5, 0.5001, 0.5002, 0.5003, 1000.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),  # crowded
            _on_cell_edges(-0.009195034598372231, 2.5007607017491917),
            ((1e6 + np.arange(50) * 1e-2).tolist(), np.arange(50.0).tolist()),
            (np.r_[np.sort(rng.normal(size=60)), 1e6].tolist(), np.arange(61.0).tolist()),  # an outlier
            ([20241124.0, 20241125.0], [0.0, 1.0]),  # a constant column: v and v + 1 equal in float32
            ([3.0, 4.0], [7.0, 8.0])]
    for name in ("breast_cancer", "wine", "customers"):
        for c in fit_encoding(load_dataset(name)).columns:
            if c.kind == "continuous":
                maps += [(c.values, c.scores), (c.scores, c.values)]
    columns = [ContinuousColumn(name=f"c{i}", method="quantile", low=0, high=1, integer=False,
                                values=ys, scores=xs) for i, (xs, ys) in enumerate(maps)]
    banks = _quantile_banks(columns, inverse=True)  # decoder direction: maps xs -> ys
    assert [bank.cells for _, bank in banks] == [GRID_CELLS, 1]  # the outlier's map compares every knot
    assert banks[0][1].reach <= MAX_REACH and 4 in banks[1][0]
    for cols, bank in banks:
        probes = [_probes(maps[i][0], bank.cells, rng) for i in cols]
        n = max(map(len, probes))
        x = np.stack([np.resize(p, n) for p in probes], axis=1)
        x[::97] = np.nan
        got = bank(torch.from_numpy(x)).numpy()
        for j, i in enumerate(cols):
            np.testing.assert_array_equal(got[:, j], _segment_reference(x[:, j], *maps[i]))


def test_missing_flags_are_sampled_at_their_generated_rate_and_discrete_columns_stay_on_their_values():
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    x[rng.random(400) < 0.03] = np.nan  # a rare missing value
    frame = pd.DataFrame({"x": x, "k": rng.choice([1, 2, 3, 5, 8, 13], 400), "label": ["a", "b"] * 200})
    enc = fit_encoding(table_from_frame(frame, "label"))
    decoder = enc.decoder()
    assert decoder.n_uniforms == 1
    e = torch.randn(20_000, enc.width)
    at = 1  # column x: its value (linear), then the [present, missing] flag
    e[:, at:at + 2] = torch.tensor([0.9, 0.1])  # a generator that says "missing" with probability 0.1
    flags = torch.from_numpy(rng.random((20_000, 1), dtype=np.float32))
    sampled, argmax = decoder(e, flags).numpy(), decoder(e).numpy()
    assert abs(np.isnan(sampled[:, 0]).mean() - 0.1) < 0.01  # as the Gumbel-softmax trained it
    assert not np.isnan(argmax[:, 0]).any()  # the likelier side always wins: the rare value vanishes
    assert set(np.unique(sampled[:, 1])) <= {1, 2, 3, 5, 8, 13}  # not 245 values in between


def test_categories_are_sampled_at_their_generated_shares_and_a_forced_one_stays():
    import pandas as pd

    rng = np.random.default_rng(0)
    city = rng.choice(["paris", "rome", "oslo"], 400, p=[0.7, 0.25, 0.05]).astype(object)
    city[::40] = None  # the missing slot comes last
    enc = fit_encoding(table_from_frame(pd.DataFrame({"city": city, "label": ["a", "b"] * 200}), "label"))
    decoder = enc.decoder()
    assert decoder.n_uniforms == 1 and enc.width == 4
    shares = torch.tensor([0.6, 0.25, 0.1, 0.05])  # a generator's softmax: the Gumbel-softmax trained on it
    e = shares.repeat(40_000, 1)
    uniforms = torch.from_numpy(rng.random((40_000, 1), dtype=np.float32))
    got = decoder(e, uniforms).numpy()[:, 0]
    codes = np.nan_to_num(got, nan=3).astype(int)
    np.testing.assert_allclose(np.bincount(codes, minlength=4) / len(codes), shares.numpy(), atol=0.01)
    assert (decoder(e).numpy()[:, 0] == 0).all()  # the likeliest always wins: rome, oslo and missing vanish
    forced = torch.tensor([[0.0, 0.0, 1.0, 0.0]]).repeat(3, 1)  # a condition: exactly oslo, whatever u
    assert (decoder(forced, torch.tensor([[0.0], [0.5], [1.0]])).numpy()[:, 0] == 2).all()


def test_a_value_holding_a_share_of_a_continuous_column_keeps_that_share():
    import pandas as pd

    rng = np.random.default_rng(1)
    amount = np.where(rng.random(2000) < 0.3, 0.0, np.round(rng.lognormal(3, 1, 2000), 2))  # 30 % zeros
    frame = pd.DataFrame({"amount": amount, "label": ["a", "b"] * 1000})
    enc = fit_encoding(table_from_frame(frame, "label"))
    (column,) = enc.columns
    assert column.cuts is None and [s[2] for s in column.spikes] == [0.0]
    decoded = enc.decoder()(torch.randn(50_000, enc.width)).numpy()[:, 0]  # scores as the data has them
    assert abs((decoded == 0.0).mean() - (amount == 0.0).mean()) < 0.01  # not smeared over (0, 0.8)
    encoded = torch.from_numpy(enc.encode(amount[:, None].astype(np.float32)))
    np.testing.assert_allclose(enc.decoder()(encoded).numpy()[:, 0], amount, rtol=1e-5, atol=1e-3)


def test_calibrated_decoder_maps_a_narrow_generator_onto_the_training_marginal_and_its_extremes():
    import pandas as pd

    rng = np.random.default_rng(2)
    x = np.round(rng.gamma(2.0, 10.0, 125), 2)
    frame = pd.DataFrame({"x": x, "n": rng.choice([0, 0, 0, 1, 2, 5], 125), "label": ["a", "b"] * 62 + ["a"]})
    enc = fit_encoding(table_from_frame(frame, "label"))
    narrow = torch.from_numpy(0.4 * rng.standard_normal((50_000, enc.width), dtype=np.float32) + 0.2)
    before = enc.decoder()(narrow).numpy()
    assert before[:, 0].max() < x.max() - 0.05 * np.ptp(x)  # a GAN's short tails: the range not covered
    encoder_scores = list(enc.columns[0].scores)
    enc.calibrate(narrow.numpy(), before)
    assert enc.columns[0].scores == encoder_scores  # the encoder is what the networks were trained on
    fresh = torch.from_numpy(0.4 * rng.standard_normal((50_000, enc.width), dtype=np.float32) + 0.2)
    after = enc.decoder()(fresh).numpy()
    assert after[:, 0].min() == np.float32(x.min()) and after[:, 0].max() == np.float32(x.max())
    np.testing.assert_allclose(np.quantile(after[:, 0], [0.1, 0.5, 0.9]), np.quantile(x, [0.1, 0.5, 0.9]),
                               rtol=0.1)
    shares = [np.mean(frame["n"] == v) for v in (0, 1, 2, 5)]  # a discrete column keeps its value shares
    np.testing.assert_allclose([np.mean(after[:, 1] == v) for v in (0, 1, 2, 5)], shares, atol=0.02)
