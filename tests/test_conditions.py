"""Conditional vector over categorical columns: its layout, training-by-sampling, exact conditions
through the exported ONNX graph, unconditioned marginals, and the errors of bad conditions."""

import numpy as np
import pandas as pd
import pytest

from gen_factory.cli.datasets import parse_conditions as _parse_conditions
from gen_factory.data import DataValidationError, load_dataset
from gen_factory.data.columns import CategoricalColumn, ContinuousColumn
from gen_factory.data.conditions import (
    FREE,
    CondSampler,
    cond_blocks,
    implicit_codes,
    one_hot,
    split_conditions,
)
from gen_factory.data.datasets import table_from_frame
from gen_factory.data.table_transformer import TableEncoding
from gen_factory.data.transform import fit_encoding
from gen_factory.export.bundle import card_for, export_bundle
from gen_factory.models import build_models, spec_for
from gen_factory.models.encoder import build_encoder
from gen_factory.runtime import sampling
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.services.pipeline import TrainJob
from gen_factory.train.local import train_table


def _city_frame(n=400, seed=0):
    """x depends on the city, and city 'c' is rare: conditioning must reach it and carry x along."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["a", "b", "c"], n, p=[0.7, 0.27, 0.03])
    x = np.select([city == "a", city == "b"], [-3.0, 3.0], 10.0) + rng.normal(0, 0.5, n)
    return pd.DataFrame({"city": city, "x": x, "label": rng.choice(["p", "q"], n)})


def _export(tmp_path, train, g, d, enc, spec):
    card = card_for(train, spec, enc, model_name="city", dataset=train.name, loss="wgan-gp", epochs=1, seed=0)
    export_bundle(
        g, d, build_encoder(spec).eval(), (1.0, 1.0), enc, card, tmp_path
    )  # generation only: any encoder
    return OnnxModel(tmp_path)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A model trained in-process for a few seconds (200 epochs of 6 batches), exported to ONNX."""
    train = table_from_frame(_city_frame(), "label")
    g, d, enc, spec, _ = train_table(train, 200)
    return _export(tmp_path_factory.mktemp("city"), train, g, d, enc, spec), train


@pytest.mark.parametrize("method", ["quantile", "modes"])
def test_cond_blocks_line_up_with_the_encoded_one_hot_spans(method):
    frame = _city_frame(200).assign(plan=lambda f: np.where(f.x > 0, "pro", "basic"), y=np.arange(200) % 7)
    frame.loc[::10, "plan"] = None
    frame.loc[::15, "y"] = np.nan
    data = table_from_frame(frame[["y", "city", "x", "plan", "label"]], "label")
    enc = TableEncoding.fit(data, method=method)
    encoded = enc.encode(data.features)
    blocks = cond_blocks(enc.columns)
    assert [(b.name, b.width) for b in blocks] == [("city", 3), ("plan", 3)]  # plan: 2 categories + missing
    for b in blocks:
        codes = np.nan_to_num(data.features[:, b.column], nan=len(b.categories)).astype(int)
        np.testing.assert_array_equal(encoded[:, b.span:b.span + b.width], np.eye(b.width)[codes])
    codes = np.array([[2, FREE], [FREE, FREE]])
    np.testing.assert_array_equal(one_hot(codes, blocks), [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])


def test_training_by_sampling_draws_values_by_log_frequency_and_real_rows_holding_them():
    values = np.repeat([0.0, 1.0, 2.0], [900, 90, 10])[:, None].astype(np.float32)
    blocks = cond_blocks(
        [CategoricalColumn(name="k", categories=["u", "v", "w"], missing=False)]
    )
    rows, codes = CondSampler(values, blocks, uncond_prob=0.0).sample(20_000, np.random.default_rng(0))
    logf = np.log1p([900, 90, 10])
    np.testing.assert_allclose(np.bincount(codes[:, 0]) / 20_000, logf / logf.sum(), atol=0.015)
    np.testing.assert_array_equal(values[rows, 0], codes[:, 0])  # each real row holds its condition
    rows, codes = CondSampler(values, blocks, uncond_prob=0.3).sample(20_000, np.random.default_rng(1))
    assert abs((codes[:, 0] == FREE).mean() - 0.3) < 0.02
    free = rows[codes[:, 0] == FREE]  # unconditioned rows are drawn uniformly: the real frequencies
    assert (
        abs((values[free, 0] == 2).mean() - 0.01) < 0.01 and abs((values[free, 0] == 0).mean() - 0.9) < 0.02
    )


def test_exact_counts_per_category_and_label_through_the_onnx_graph(city):
    model, _ = city
    assert [i.name for i in model.generator.get_inputs()] == ["noise", "labels", "cond"]
    conditions = {"city": {"c": 70, "b": 30, "a": 20}}
    frame = sampling.generate_table(model, [60, 60], seed=3, conditions=conditions).to_pandas()
    assert frame["label"].value_counts().to_dict() == {"p": 60, "q": 60}
    assert frame["city"].value_counts().to_dict() == {"c": 70, "b": 30, "a": 20}
    # the rest of the row follows the condition: x near 10 for the rare city, as in the real data
    assert frame.loc[frame.city == "c", "x"].mean() > 6 and frame.loc[frame.city == "a", "x"].mean() < 0
    per_row = [{"city": "c"}] * 5 + [{}] * 5 + [{"city": "b"}] * 3
    rows = sampling.generate_table(model, [8, 5], seed=1, conditions=per_row).to_pandas()
    assert rows["city"].tolist()[:5] == ["c"] * 5 and rows["city"].tolist()[10:] == ["b"] * 3


def test_conditioned_rows_reproduce_for_a_seed_in_any_chunking(city, monkeypatch):
    model, _ = city
    conditions = {"city": {"c": 40, "a": 10}}
    whole, _ = sampling.generate_arrays(model, [50, 50], seed=3, conditions=conditions)
    monkeypatch.setattr(sampling, "CHUNK_ROWS", 7)
    chunked, _ = sampling.generate_arrays(model, [50, 50], seed=3, conditions=conditions)
    np.testing.assert_array_equal(whole, chunked)
    other, _ = sampling.generate_arrays(model, [50, 50], seed=4, conditions=conditions)
    assert not np.array_equal(whole[:, 0], other[:, 0])  # the seed also places the conditions


def test_unconditioned_sampling_keeps_the_real_marginals(city):
    model, train = city
    frame = sampling.generate_table(model, [1000, 1000], seed=0).to_pandas()
    real = train.frame()
    share = frame["city"].value_counts(normalize=True)
    for value in ("a", "b"):
        assert abs(share.get(value, 0.0) - (real["city"] == value).mean()) < 0.1, share
    # the rare city survives at about its real share (zero-cond sampling used to drop it)
    assert abs(share.get("c", 0.0) - (real["city"] == "c").mean()) < 0.015, share
    assert abs(frame["x"].median() - real["x"].median()) < 1.5


def test_implicit_conditions_fill_exactly_the_categories_free_rows_miss():
    """Free rows of label 0 give k's values at 0.9 / 0.1 / 0 against training shares 0.6 / 0.3 / 0.1: just
    enough rows get conditioned that conditioned + free rows come out at the training shares."""
    columns = [ContinuousColumn(name="x", method="quantile", low=0, high=1, integer=False),
               CategoricalColumn(name="k", categories=["u", "v"], missing=True,
                                 label_counts=[[60, 30, 10], [0, 50, 50]])]
    free_shares = [[[0.9, 0.1, 0.0], [0.0, 0.5, 0.5]]]  # label 1's free rows are already right
    labels = np.repeat([0, 1], 20_000)
    rng = np.random.default_rng(0)
    codes = implicit_codes(columns, labels, rng, free_shares)[:, 0]
    assert (codes[20_000:] == FREE).all()  # nothing to fix for label 1
    # s = min(0.6/0.9, 0.3/0.1) = 2/3 of the rows stay free; 0.1 + 0.1 are conditioned on v and 'missing'
    assert abs((codes[:20_000] == FREE).mean() - 2 / 3) < 0.01
    free = codes[:20_000] == FREE
    final = codes[:20_000].copy()
    final[free] = rng.choice(3, free.sum(), p=free_shares[0][0])  # what the generator gives the free rows
    np.testing.assert_allclose(np.bincount(final, minlength=3) / 20_000, [0.6, 0.3, 0.1], atol=0.01)
    # a value label 0 never had, which free rows give now and then, must not condition every row
    leaky = implicit_codes(columns, labels, rng, [[[0.6, 0.3, 0.1], [0.001, 0.5, 0.499]]])
    assert leaky is None or (leaky[20_000:, 0] != FREE).mean() < 0.01
    assert implicit_codes(columns, labels, rng, None) is None  # a card from before: zero cond everywhere
    assert (
        implicit_codes(columns, labels, rng, [[[0.6, 0.3, 0.1], [0.0, 0.5, 0.5]]]) is None
    )  # nothing missing


def test_split_conditions_keeps_totals_exact_within_each_part():
    columns = [CategoricalColumn(name="city", categories=["a", "b", "c"], missing=False)]
    parts = split_conditions(columns, {"city": {"a": 50, "c": 12}}, [5, 7, 100], np.random.default_rng(0))
    assert sum(p["city"].get("a", 0) for p in parts) == 50 and sum(p["city"].get("c", 0) for p in parts) == 12
    assert all(sum(p["city"].values()) <= size for p, size in zip(parts, [5, 7, 100], strict=True))


@pytest.mark.parametrize("conditions, field, words", [
    ({"zzz": {"a": 1}}, "conditions['zzz']", "unknown column"),
    ({"x": {"1": 1}}, "conditions['x']", "numeric column"),
    ({"city": {"lima": 1}}, "conditions['city']['lima']", "unknown category"),
    ({"city": {"a": -1}}, "conditions['city']['a']", "-1"),
    ({"city": {"a": 3, "b": 2}}, "conditions['city']", "5 rows conditioned"),
    ({"city": ["a"]}, "conditions['city']", "rows per category"),
    ([{"city": "a"}], "conditions", "one {column: category} object per requested row"),
    ([{"city": "a"}, {"city": "zz"}, {}, {}], "conditions[1]['city']", "unknown category"),
])
def test_bad_conditions_name_the_field_value_and_fix(city, conditions, field, words):
    with pytest.raises(DataValidationError) as err:
        sampling.generate_arrays(city[0], [2, 2], seed=0, conditions=conditions)
    assert err.value.field == field and words in str(err.value) and "fix:" in str(err.value)


def test_tables_without_categories_keep_the_two_input_graph_and_refuse_conditions(tmp_path, gauss_table):
    train = table_from_frame(gauss_table, "label")
    enc = fit_encoding(train)
    spec = spec_for(train, enc, spectral_norm=False)
    assert spec.cond_dim == 0
    g, d = build_models(spec)
    model = _export(tmp_path / "m", train, g.eval(), d.eval(), enc, spec)
    assert [i.name for i in model.generator.get_inputs()] == ["noise", "labels"]
    with pytest.raises(DataValidationError, match="takes no conditions"):
        sampling.generate_arrays(model, [2, 2], seed=0, conditions={"x": {"1": 1}})


def test_cli_condition_syntax():
    assert _parse_conditions(["city=lima:30", "city=oslo:2", "city=lima:1", "plan=a:b:4"]) == \
        {"city": {"lima": 31, "oslo": 2}, "plan": {"a:b": 4}}
    for bad in ("city=lima", "city:3", "city=lima:x"):
        with pytest.raises(DataValidationError, match="COLUMN=CATEGORY:N"):
            _parse_conditions([bad])


def test_column_type_overrides_model_a_numeric_column_as_categories(tmp_path):
    frame = _city_frame(60).assign(zip=lambda f: np.where(f.x > 0, 10001, 20002))
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_dataset(str(tmp_path / "t.csv"), "label", ["zip"])
    assert data.categories["zip"] == ["10001", "20002"] and "x" not in data.categories
    with pytest.raises(DataValidationError) as err:
        TrainJob(str(tmp_path / "t.csv"), column_types={"zip": "continuous"})
    assert err.value.field == "column_types['zip']"
    with pytest.raises(DataValidationError, match="unknown column"):
        load_dataset(str(tmp_path / "t.csv"), "label", ["nope"])
    with pytest.raises(DataValidationError, match="column types apply"):
        load_dataset("customers", "churn", ["age"])


def test_variations_of_table_rows_go_through_the_encoder_and_the_free_cond_graph(city):
    model, train = city
    sources = np.array([0, 3, 3, 10])
    out, labels = sampling.generate_variations(model, train.features, train.labels, sources, 0.0, seed=0)
    np.testing.assert_array_equal(labels, train.labels[sources])
    rows = train.features[sources].astype(np.float32)
    np.testing.assert_array_equal(
        out, model.generate_raw(model.encode_raw(rows), labels)
    )  # G(E(x)), free cond
    np.testing.assert_array_equal(out[1], out[2])  # the same row at spread 0
    assert set(out[:, train.columns.index("city")]) <= {0.0, 1.0, 2.0}
    with pytest.raises(DataValidationError, match="sources"):
        sampling.generate_variations(
            model, train.features, train.labels, np.array([len(train.labels)]), 0.5, 0
        )
    with pytest.raises(DataValidationError, match="spread"):
        sampling.generate_variations(model, train.features, train.labels, sources, True, 0)
