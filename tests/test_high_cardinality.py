"""High-cardinality categoricals (issue 17): the commonest categories kept, the rest folded into one explicit
"other" that the encoding (and so the model card) records; bundled tables unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from gen_factory.data import load_dataset
from gen_factory.data.columns import MAX_KEPT_CATEGORIES, OTHER, CategoricalColumn, fold_rare
from gen_factory.data.datasets import BUNDLED_TABLES, table_from_frame
from gen_factory.data.schema import restore
from gen_factory.data.table_transformer import TableEncoding
from gen_factory.data.transform import encoding_from_dict, encoding_to_dict
from gen_factory.data.validate import DataValidationError


def _zipf_frame(rows: int = 6000, categories: int = 2000, seed: int = 0, dtype=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, categories + 1) ** 1.2
    rank = rng.choice(categories, size=rows, p=p / p.sum())
    merchant = pd.Series([f"m{r:05d}" for r in rank], dtype=dtype)
    merchant[rng.random(rows) < 0.02] = None
    return pd.DataFrame({"x": rng.normal(size=rows) + rank / categories, "merchant": merchant,
                         "label": np.where(rng.random(rows) < 0.3, "a", "b")})


def test_fold_rare_keeps_the_commonest_and_names_other_apart_from_the_values():
    values = [f"v{i}" for i in range(300)] + [OTHER]
    counts = [1000 - i for i in range(300)] + [1]
    kept, fold = fold_rare(values, counts)
    assert len(kept) == MAX_KEPT_CATEGORIES + 1 and kept[:-1] == values[:MAX_KEPT_CATEGORIES]
    assert kept[-1] == fold.other and fold.other not in values  # the value "__other__" was folded itself
    assert fold.values == 301 - MAX_KEPT_CATEGORIES
    assert fold.share == pytest.approx(sum(counts[MAX_KEPT_CATEGORIES:]) / sum(counts), abs=1e-6)


def test_fold_rare_leaves_few_categories_and_identifier_like_columns_alone():
    assert fold_rare(["a", "b"], [5, 7]) == (["a", "b"], None)
    ids = [f"id{i}" for i in range(5000)]
    assert fold_rare(ids, [1] * 5000) == (ids, None)  # the top 100 hold 2 % of rows: nothing to fold to


def test_a_zipf_column_is_folded_and_the_encoding_records_it():
    frame = _zipf_frame()
    data = table_from_frame(frame, "label")
    vocab = data.categories["merchant"]
    fold = data.folded["merchant"]
    assert len(vocab) == MAX_KEPT_CATEGORIES + 1 and vocab[-1] == OTHER == fold.other
    codes = data.features[:, data.columns.index("merchant")]
    present = frame["merchant"].notna().to_numpy()
    assert np.isnan(codes[~present]).all()  # missing stays missing, not "other"
    rare = present & ~frame["merchant"].isin(vocab[:-1]).to_numpy()
    assert rare.any() and (codes[rare] == len(vocab) - 1).all()
    assert fold.share == pytest.approx(rare.sum() / present.sum(), abs=1e-6)
    assert fold.values == frame["merchant"].nunique() - MAX_KEPT_CATEGORIES
    encoding = TableEncoding.fit(data)
    column = encoding.columns[data.columns.index("merchant")]
    assert column.folded == fold and column.spans() == [("softmax", MAX_KEPT_CATEGORIES + 2)]
    spec = encoding_to_dict(encoding)  # what the config and the card carry
    again = encoding_from_dict(spec).columns[data.columns.index("merchant")]
    assert again.folded == fold


def test_older_encodings_without_the_field_still_load():
    column = CategoricalColumn.model_validate({"name": "c", "categories": ["a", "b"], "missing": False})
    assert column.folded is None


def test_generated_codes_only_name_kept_categories_or_other():
    data = table_from_frame(_zipf_frame(), "label")
    encoding = TableEncoding.fit(data)
    noise = torch.softmax(torch.randn(4000, encoding.width) * 3, dim=1)  # any generator output
    uniforms = torch.rand(4000, 8)
    with torch.no_grad():
        decoded = encoding.decoder()(noise, uniforms).numpy()
    codes = decoded[:, data.columns.index("merchant")]
    codes = codes[~np.isnan(codes)]
    assert codes.min() >= 0 and codes.max() <= MAX_KEPT_CATEGORIES  # index MAX_KEPT_CATEGORIES: other
    frame = data.subset(np.arange(10)).frame()
    assert set(frame["merchant"].dropna()) <= set(data.categories["merchant"])


def test_a_pandas_category_column_gains_other_in_the_restored_schema():
    frame = _zipf_frame(dtype="category")
    data = table_from_frame(frame, "label")
    schema_column = next(c for c in data.schema.columns if c.name == "merchant")
    assert schema_column.categories[-1] == OTHER
    generated = pa.table({"x": [0.5, 1.0], "merchant": [OTHER, data.categories["merchant"][0]],
                          "label": ["a", "b"]})
    back = restore(generated, data.schema).column("merchant").to_pylist()
    assert back == [OTHER, data.categories["merchant"][0]]  # not a missing value


def test_identifier_columns_are_still_refused():
    rows = 20_000
    frame = pd.DataFrame({"x": np.arange(rows, dtype=float), "id": [f"c{i % 5000}" for i in range(rows)],
                          "label": ["a", "b"] * (rows // 2)})
    with pytest.raises(DataValidationError, match="5000 distinct values"):
        table_from_frame(frame, "label")


def test_numeric_categories_are_not_folded():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"zip": rng.integers(0, 300, 3000), "x": rng.normal(size=3000),
                          "label": ["a", "b", "c"] * 1000})
    data = table_from_frame(frame, "label", categorical=["zip"])
    assert data.folded == {} and len(data.categories["zip"]) == len(np.unique(frame["zip"]))


@pytest.mark.parametrize("name", BUNDLED_TABLES)
def test_bundled_tables_fold_nothing(name):
    data = load_dataset(name)
    assert data.folded == {}
    assert "folded" not in str(encoding_to_dict(TableEncoding.fit(data)))


def test_a_folded_columns_rare_or_new_value_scores_as_its_other_on_every_path(tmp_path):
    """Scoring (API rows, bulk Arrow batches) maps a value outside a folded column's kept categories
    to its "other", as training did; an unfolded column still refuses an unknown category."""
    from gen_factory.data.transform import fit_encoding
    from gen_factory.export.bundle import card_for, export_bundle
    from gen_factory.models import build_models, spec_for
    from gen_factory.models.encoder import build_encoder
    from gen_factory.runtime import scoring
    from gen_factory.runtime.codes import table_values
    from gen_factory.runtime.onnx_model import OnnxModel

    frame = _zipf_frame(rows=3000).assign(city=lambda f: np.where(f["x"] > 0.5, "lima", "oslo"))
    data = table_from_frame(frame, "label")
    encoding = fit_encoding(data)
    spec = spec_for(data, encoding)
    torch.manual_seed(0)
    g, d = build_models(spec)
    card = card_for(data, spec, encoding, model_name="folded", dataset="zipf", loss="wgan-gp", epochs=1,
                    seed=0)
    export_bundle(g.eval(), d.eval(), build_encoder(spec).eval(), (1.0, 1.0), encoding, card, tmp_path / "b")
    model = OnnxModel(tmp_path / "b")
    merchant = next(c for c in model.card.encoding.columns if c.name == "merchant")
    rare = frame["merchant"].value_counts().index[-1]  # folded at training
    assert merchant.folded is not None and rare not in merchant.categories[:-1]
    values = (rare, "m-never-seen", merchant.categories[0])
    rows = [{"x": 0.1, "merchant": value, "city": "lima"} for value in values]
    codes = scoring.rows_to_array(model, rows)[:, model.card.columns.index("merchant")]
    assert codes.tolist() == [merchant.other_code, merchant.other_code, 0]
    batch = pa.RecordBatch.from_pylist(rows)
    bulk = table_values(model, batch, ("f.parquet", 0))
    np.testing.assert_array_equal(bulk, scoring.rows_to_array(model, rows))
    with pytest.raises(DataValidationError, match="unknown category 'paris'"):
        scoring.rows_to_array(model, [{**rows[0], "city": "paris"}])
