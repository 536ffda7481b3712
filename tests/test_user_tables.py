"""Commands x table kinds, on tables shaped the way users bring them (`data.procedural.user_shaped`: a
string label mid-table, a string column tied to the label, integers, missing values, one absurd
outlier) and on the bundled tables with categorical columns: augmentation and anomaly scoring.

Each model is trained in this process for a few epochs with the pipeline's networks and exported to
ONNX as the pipeline exports it (`export_bundle`); the tests then go through the functions behind
`genfactory augment` and `genfactory score` on the user's own CSV. The Ray path of both commands runs
in test_e2e.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from gen_factory.data import DataValidationError, load_dataset
from gen_factory.data.datasets import bundled_frame, read_csv, table_from_frame
from gen_factory.data.procedural import USER_SHAPED, user_shaped
from gen_factory.export.bundle import NOVEL_UNITS, card_for, export_bundle
from gen_factory.runtime import scoring
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.services.augmentation import (
    build_augmentation,
    load_real,
    read_augmentation,
    write_parquet_atomic,
)
from gen_factory.train.local import train_encoder, train_table

# loans (2,000 rows, a 300-value category, a datetime) is the slowest to fit: in `make test`, not test-fast
KINDS = (*USER_SHAPED, "customers", pytest.param("loans", marks=pytest.mark.slow))


def _frame(kind: str) -> tuple[pd.DataFrame, str]:
    if kind in USER_SHAPED:
        return user_shaped(kind)
    frame, label, _ = bundled_frame(kind)
    return frame, label


@pytest.fixture(scope="module", params=KINDS)
def user_model(request, tmp_path_factory):
    """(kind, CSV path, frame as read, label column, opened bundle) of a model trained on the CSV as
    `train` reads it."""
    kind = request.param
    frame, label = _frame(kind)
    root = tmp_path_factory.mktemp(kind)
    path = root / f"{kind}.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(str(path), label)
    g, d, enc, spec, hyper = train_table(data, epochs=1, seed=0)
    x, labels = torch.from_numpy(enc.encode(data.features)), torch.from_numpy(data.labels)
    encoder, scales = train_encoder(g, d, spec, x, labels, 1)
    card = card_for(data, spec, enc, model_name=kind, dataset=str(path), loss=hyper.loss, epochs=1,
                    encoder_epochs=1, seed=0)
    export_bundle(g, d, encoder, scales, enc, card, root / "model")
    return kind, path, read_csv(path), label, OnnxModel(root / "model", threads=1)


def test_augment_writes_the_users_rows_as_given_and_synthetic_rows_in_their_schema(user_model, tmp_path):
    kind, path, frame, label, model = user_model
    real, rows = load_real(model, str(path))  # the label column from the card, as `augment` reads it
    table = build_augmentation(model, real, ratio=0.5, seed=1, real_rows=rows)
    out = write_parquet_atomic(table, tmp_path / "aug.parquet")
    written = pq.read_table(out).to_pandas()
    assert list(written.columns) == [*frame.columns, "synthetic"]
    given = written[~written.synthetic].drop(columns="synthetic").reset_index(drop=True)
    pd.testing.assert_frame_equal(given, frame, check_dtype=False)  # every real value as the CSV holds it
    synthetic = written[written.synthetic]
    expected = np.round(frame[label].value_counts() * 0.5).astype(int)
    assert synthetic[label].value_counts().sort_index().tolist() == expected.sort_index().tolist()
    for column in frame.columns:  # the synthetic rows come back in the types the CSV read as
        assert synthetic[column].dtype == frame[column].dtype, column
    values, ids, flags, _ = read_augmentation(out, model)  # and read back in the model's codes
    assert values.shape == (len(written), len(model.card.columns)) and flags.sum() == len(synthetic)
    assert np.array_equal(values[~flags], real.features, equal_nan=True)


def test_augment_refuses_a_table_with_another_label_or_column_naming_them(user_model, tmp_path):
    kind, path, frame, label, model = user_model
    other = frame.assign(**{label: frame[label].astype(str) + "_x"})
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataValidationError, match="unknown label") as err:
        load_real(model, str(tmp_path / "other.csv"))
    assert label in err.value.field
    frame.assign(extra=1.0).to_csv(tmp_path / "extra.csv", index=False)
    with pytest.raises(DataValidationError, match="not a column of the model") as err:
        load_real(model, str(tmp_path / "extra.csv"))
    assert "'extra'" in err.value.field


@pytest.mark.slow  # five fits of a classifier per table kind
def test_rare_class_report_puts_the_written_set_beside_every_control(user_model, tmp_path):
    from gen_factory.evaluate.rare import CONTROLS, rare_class_report

    kind, path, frame, label, model = user_model
    real, rows = load_real(model, str(path))
    half = np.arange(len(real.labels)) % 2 == 0
    train, test = real.subset(np.flatnonzero(half)), real.subset(np.flatnonzero(~half))
    rare = int(np.argmin(np.bincount(train.labels)))
    table = build_augmentation(model, train, ratio=1.0, classes=[train.label_names[rare]], seed=0,
                               real_rows=rows.take(np.flatnonzero(half)))
    x, y, _, _ = read_augmentation(write_parquet_atomic(table, tmp_path / "aug.parquet"), model)
    categorical = np.array([c.kind == "categorical" for c in model.card.encoding.columns])
    report = rare_class_report((train.features, train.labels), (x, y), (test.features, test.labels),
                               categorical, rare, train.label_names[rare])
    assert set(report.arms) == {*CONTROLS, "augmented"}
    assert report.extra_rare_rows == int((train.labels == rare).sum())
    for arm in report.arms.values():
        assert 0.0 <= arm.ap <= 1.0 + 1e-9 and 0.0 <= arm.f1 <= 1.0, arm
        assert 0.0 <= arm.balanced_accuracy <= 1.0, arm
    assert report.best_control in CONTROLS
    assert report.uplift == pytest.approx(report.arms["augmented"].ap - report.arms[report.best_control].ap)


@pytest.mark.slow
def test_every_control_adds_exactly_the_rows_asked_of_the_rare_class():
    from gen_factory.evaluate.rare import CONTROLS, Imputer, resampled

    frame, label = user_shaped("clinic")
    data = table_from_frame(frame, label)
    categorical = np.array([c in data.categories for c in data.columns])
    x, y = Imputer(data.features, categorical)(data.features), data.labels
    rare = int(np.argmin(np.bincount(y)))
    for arm in CONTROLS:
        got_x, got_y = resampled(arm, x, y, rare, 40, categorical, seed=0)
        added = 0 if arm in ("real_only", "class_weights") else 40
        assert len(got_y) == len(y) + added and (got_y == rare).sum() == (y == rare).sum() + added, arm
        assert np.array_equal(got_x[: len(y)], x), arm  # the real rows first, unchanged
        if arm == "smote":  # SMOTENC: categorical columns keep codes the real rows have
            for j in np.flatnonzero(categorical):
                assert set(np.unique(got_x[:, j])) <= set(np.unique(x[:, j]))


def _row(frame: pd.DataFrame, label: str, i: int = 0) -> dict:
    row = frame.drop(columns=label).iloc[i]
    return {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def test_values_past_the_training_range_raise_the_default_score(user_model):
    kind, path, frame, label, model = user_model
    column = next(c for c in model.card.encoding.columns if c.kind == "continuous"
                  and pd.api.types.is_float_dtype(frame[c.name]))
    sd = float(np.nanstd(frame[column.name].to_numpy(dtype=float)))
    base = _row(frame, label)
    rows = [base] + [{**base, column.name: column.high + k * sd} for k in (3, 10, 1000)]
    scores = scoring.score(model, scoring.rows_to_array(model, rows))
    assert np.all(np.diff(scores) > 0), scores  # further out, stranger: no clamp at the range
    assert scores[1] - scores[0] >= 2.5, scores  # 3 sd past the range: about 3 points of the ensemble


def test_unseen_categories_and_new_missing_values_are_scored_not_refused(user_model):
    kind, path, frame, label, model = user_model
    base = _row(frame, label)
    categorical = [c for c in model.card.encoding.columns if c.kind == "categorical" and c.other_code is None]
    never = [c for c in model.card.encoding.columns if not c.missing]
    rows = [base]
    if categorical:
        rows.append({**base, categorical[0].name: "a-place-nobody-named"})
    rows.append({**base, never[0].name: None})
    values = scoring.rows_to_array(model, rows)
    if categorical:
        assert values[1, model.card.columns.index(categorical[0].name)] == scoring.UNSEEN
    scores = scoring.score(model, values)
    assert np.all(scores[1:] >= scores[0] + NOVEL_UNITS - 0.5), scores
    assert "novelty" in model.card.ensemble.parts
    blamed = scoring.score_attributed(model, values).contributions[1:].argmax(axis=1)
    changed = ([categorical[0].name] if categorical else []) + [never[0].name]
    assert [model.card.columns[j] for j in blamed] == changed  # the new value's column, first


def test_a_table_without_labels_trains_as_one_class_and_comes_back_without_a_label_column(tmp_path):
    from gen_factory.data.datasets import ONE_CLASS_COLUMN, ONE_CLASS_LABEL
    from gen_factory.data.schema import to_pandas
    from gen_factory.runtime.sampling import generate_table
    from gen_factory.services.bulk import partition_path
    from gen_factory.services.pipeline import TrainJob

    frame, label = user_shaped("wine_shop")
    frame = frame.drop(columns=label)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(DataValidationError, match="--no-label"):
        load_dataset(str(tmp_path / "rows.csv"))  # no `label` column: the error says how to go on
    data = load_dataset(str(tmp_path / "rows.csv"), None)
    assert data.label_names == [ONE_CLASS_LABEL] and data.label_column == ONE_CLASS_COLUMN
    assert data.columns == list(frame.columns) and (data.labels == 0).all()
    assert TrainJob(str(tmp_path / "rows.csv"), label_column=None).normal_labels == [ONE_CLASS_LABEL]
    g, d, enc, spec, hyper = train_table(data, epochs=1, seed=0)
    x, labels = torch.from_numpy(enc.encode(data.features)), torch.from_numpy(data.labels)
    encoder, scales = train_encoder(g, d, spec, x, labels, 1)
    card = card_for(data, spec, enc, model_name="nolabel", dataset="rows", loss=hyper.loss, epochs=1, seed=0)
    export_bundle(g, d, encoder, scales, enc, card, tmp_path / "model")
    model = OnnxModel(tmp_path / "model", threads=1)
    rows = to_pandas(generate_table(model, [20], seed=0))
    assert list(rows.columns) == list(frame.columns) and len(rows) == 20  # no label column shown
    assert partition_path(model.card.label_column, ONE_CLASS_LABEL, 0) == "part-00000.parquet"
    real, rows_given = load_real(model, str(tmp_path / "rows.csv"))  # augment: no label column needed
    table = build_augmentation(model, real, ratio=0.5, seed=0, real_rows=rows_given)
    assert table.column_names == [*frame.columns, "synthetic"] and table.num_rows == len(frame) + 89
    values, ids, flags, _ = read_augmentation(write_parquet_atomic(table, tmp_path / "aug.parquet"), model)
    assert len(values) == table.num_rows and not ids.any() and flags.sum() == 89
    probe = [_row(frame, "region"), {**_row(frame, "region"), "proline": 1e6}]
    probe = [{**r, "region": frame["region"].dropna().iloc[0]} for r in probe]
    scores = scoring.score(model, scoring.rows_to_array(model, probe))
    assert scores[1] > scores[0] + 100


def test_no_training_row_is_novel_missing_values_included(user_model):
    """Every row the model trained on - the ones with missing values too - scores 0 novelty: only a new
    kind of value raises it."""
    kind, path, frame, label, model = user_model
    real, _ = load_real(model, str(path))
    assert np.isnan(real.features).any()  # the user-shaped and bundled tables all have missing values
    novelty = scoring.score_matrix(model, real.features)[:, model.card.score_methods.index("novelty")]
    assert np.all(novelty == 0.0), novelty[novelty != 0][:5]


@pytest.mark.parametrize("rows", [
    [{}, {"\u00e9": 1.0, "": ""}],  # none of the model's columns
    "mixed",  # the model's columns, one of them numbers and strings at once
])
def test_the_api_augment_answers_bad_rows_with_an_input_error(user_model, rows):
    from serving.app import _augment
    from serving.contract import AugmentRequest

    kind, path, frame, label, model = user_model
    if rows == "mixed":
        rows = json.loads(frame.head(4).to_json(orient="records", date_format="iso"))  # as a client sends
        number = next(c.name for c in model.card.encoding.columns if c.kind == "continuous")
        rows[1][number] = "twelve"
    with pytest.raises(DataValidationError) as err:
        _augment(model, f"{kind}/1", AugmentRequest(rows=rows, ratio=2.0))
    assert len(str(err.value)) < 600 and "fix:" in str(err.value)


def test_the_api_augment_takes_json_rows_dates_included(user_model):
    from serving.app import _augment
    from serving.contract import AugmentRequest

    kind, path, frame, label, model = user_model
    rows = json.loads(frame.head(30).to_json(orient="records", date_format="iso"))
    data, n = _augment(model, f"{kind}/1", AugmentRequest(rows=rows, ratio=1.0, seed=4))
    written = pq.read_table(pa.BufferReader(data)).to_pandas()
    assert n == len(written) and list(written.columns) == [*frame.columns, "synthetic"]
    for column in frame.columns:  # JSON's strings and numbers back in the training types
        assert written[column].dtype == frame[column].dtype, column


def test_the_synthesizer_imports_from_the_package_as_users_type_it():
    import gen_factory
    from gen_factory import Synthesizer
    from gen_factory.synthesizer import Synthesizer as Direct

    assert Synthesizer is Direct and "Synthesizer" in gen_factory.__all__
    with pytest.raises(AttributeError):
        gen_factory.Nothing  # noqa: B018
