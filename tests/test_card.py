"""Model cards of every shape the registry may hold read as the current typed card; a card written
reads back the same."""

import json

import pytest

from gen_factory.card import CARD_VERSION, ModelCard, card_from_json, read_card, write_card
from gen_factory.data.columns import CategoricalColumn, ContinuousColumn, ImageEncodingSpec, width

# Version 0 (no schema_version), as the first tables were exported (e90ee6b): one standardisation
# per column, no label counts, a scorer of the negated critic alone.
V0_FIRST_TABLE = """{
  "model_name": "iris-cgan", "kind": "table", "dataset": "iris", "label_column": "species",
  "label_names": ["setosa", "versicolor"], "columns": ["petal", "sepal"], "shape": [2],
  "n_labels": 2, "noise_dim": 64,
  "encoding": {"type": "TableEncoding", "mean": [1.5, 5.8], "std": [0.7, 0.8], "low": [0.1, 4.3],
               "high": [2.5, 7.9], "integer": [false, false]},
  "loss": "wgan-gp", "epochs": 300, "seed": 0, "mlflow_run_id": "abc",
  "files": {"generator": "model.onnx", "scorer": "discriminator.onnx"},
  "parity_max_abs_diff": {"generator": 1e-06, "discriminator": 2e-06},
  "metrics": {"quality": 0.9}
}"""

# Version 0 of an image model after anomaly scoring (02fc29f), before the encoder file shipped
# (b454f98) and before the image encoding said whether pixels are whole numbers.
V0_IMAGE_BEFORE_ENCODER = """{
  "model_name": "digits-cgan", "kind": "image", "dataset": "digits", "label_column": "label",
  "label_names": ["0", "1"], "columns": null, "shape": [1, 8, 8], "label_counts": [120, 118],
  "n_labels": 2, "noise_dim": 64, "encoding": {"type": "ImageEncoding", "low": 0.0, "high": 16.0},
  "loss": "wgan-gp", "variant": "projgan-gp", "epochs": 200, "encoder_epochs": 100, "seed": 0,
  "mlflow_run_id": "def",
  "files": {"generator": "model.onnx", "scorer": "discriminator.onnx"},
  "score_methods": ["critic", "fanogan"], "parity_max_abs_diff": {"generator": 1e-06, "scorer": 3e-06},
  "metrics": {"cas": 0.95, "mode_collapse": [], "diversity_ratio_0": 0.9},
  "anomaly": {"fpr": 0.05, "default_method": "fanogan", "anomaly_labels": [],
              "thresholds": {"critic": {"given_label": 1.0, "best_label": 0.5},
                             "fanogan": {"given_label": 2.5, "best_label": 2.0}}}
}"""

# Version 0 as the last unversioned gen_factory wrote it: quantile and categorical columns with
# training counts, free shares, the encoder, checkpoint selection, a one-class calibration.
V0_LAST = """{
  "model_name": "customers-cgan", "kind": "table", "dataset": "customers", "label_column": "label",
  "label_names": ["a"], "columns": ["spend", "city"], "shape": [4], "label_counts": [10],
  "n_labels": 1, "noise_dim": 64,
  "encoding": {"type": "TableEncoding", "columns": [
    {"name": "spend", "kind": "continuous", "method": "quantile", "low": 1.0, "high": 9.5,
     "integer": false, "decimals": null, "missing": false, "fill": 4.0,
     "values": [1.0, 9.5], "scores": [-1.0, 1.0]},
    {"name": "city", "kind": "categorical", "categories": ["lima", "oslo"], "missing": true,
     "label_counts": [[6, 3, 1]]}]},
  "loss": "wgan-gp", "variant": null, "epochs": 300, "encoder_epochs": 150, "seed": 3,
  "mlflow_run_id": "ghi", "selected_epoch": 240, "selected_train_frechet": 0.12,
  "files": {"generator": "model.onnx", "scorer": "discriminator.onnx", "encoder": "encoder.onnx"},
  "score_methods": ["critic", "fanogan"],
  "parity_max_abs_diff": {"generator": 1e-06, "scorer": 2e-06, "encoder": 1e-06},
  "free_shares": [[[0.7, 0.3, 0.0]]],
  "metrics": {"quality": 0.88, "dcr_ratio": NaN, "column_shapes_per_column": {"spend": 0.9}},
  "anomaly": {"fpr": 0.05, "default_method": "fanogan", "anomaly_labels": ["b"],
              "thresholds": {"critic": {"given_label": 1.0, "best_label": 0.5},
                             "fanogan": {"given_label": 2.5, "best_label": 2.0}},
              "holdout": {"fanogan": {"auroc": 0.9, "auprc": 0.8}},
              "baseline": {"iforest": {"real": 0.9, "synthetic": 0.85, "loss": 0.05}}}
}"""


def test_the_first_tables_get_column_specs_and_a_critic_only_scorer():
    card = card_from_json(json.loads(V0_FIRST_TABLE))
    assert card.schema_version == CARD_VERSION and card.label_column == "species"
    petal, sepal = card.encoding.columns
    assert isinstance(petal, ContinuousColumn) and petal.method == "standard"
    assert (petal.name, petal.mean, petal.std, petal.low, petal.high) == ("petal", 1.5, 0.7, 0.1, 2.5)
    assert sepal.name == "sepal" and not sepal.integer and not sepal.missing and width(sepal) == 1
    assert card.score_methods == ["critic"] and card.files.encoder is None
    assert card.label_counts is None and card.anomaly is None and card.free_shares is None


def test_image_cards_before_the_encoder_have_none_and_read_their_calibration():
    card = card_from_json(json.loads(V0_IMAGE_BEFORE_ENCODER))
    assert card.encoding == ImageEncodingSpec(low=0.0, high=16.0, integer=False)
    assert card.files.encoder is None and card.files.scorer == "discriminator.onnx"
    assert card.variant == "projgan-gp" and card.metrics["mode_collapse"] == []
    assert card.anomaly.thresholds["fanogan"].best_label == 2.0 and card.anomaly.holdout is None


def test_the_last_unversioned_cards_keep_every_field():
    raw = json.loads(V0_LAST)
    card = card_from_json(raw)
    spend, city = card.encoding.columns
    assert isinstance(city, CategoricalColumn) and city.label_counts == [[6, 3, 1]] and width(city) == 3
    assert spend.decimals is None and spend.values == [1.0, 9.5] and width(spend) == 1
    assert card.free_shares == [[[0.7, 0.3, 0.0]]] and card.files.encoder == "encoder.onnx"
    assert card.selected_epoch == 240 and card.anomaly.baseline["iforest"]["loss"] == 0.05
    assert card.metrics["column_shapes_per_column"] == {"spend": 0.9}
    added = {"schema_version", "flag_noise", "warm_start"}  # fields with a value for every card, added since
    assert card.model_dump(exclude_none=True, exclude=added).keys() == raw.keys() - {"variant"}


@pytest.mark.parametrize("text", [V0_FIRST_TABLE, V0_IMAGE_BEFORE_ENCODER, V0_LAST])
def test_a_written_card_reads_back_the_same(tmp_path, text):
    card = card_from_json(json.loads(text))
    write_card(tmp_path, card)
    again = read_card(tmp_path)
    assert json.loads((tmp_path / "card.json").read_text())["schema_version"] == CARD_VERSION
    # NaN != NaN: compare the JSON, where both write NaN
    assert json.dumps(again.model_dump()) == json.dumps(card.model_dump())


def test_a_card_from_a_newer_gen_factory_is_refused_by_name():
    raw = {**json.loads(V0_LAST), "schema_version": CARD_VERSION + 1}
    with pytest.raises(ValueError, match="newer than this gen_factory reads"):
        card_from_json(raw)


def test_a_misspelt_field_is_an_error_not_a_silent_default():
    raw = {**json.loads(V0_LAST), "schema_version": CARD_VERSION, "labels_names": ["a"]}
    with pytest.raises(ValueError, match="labels_names"):
        ModelCard.model_validate(raw)


def test_version_1_cards_read_without_a_table_schema_and_version_2_keeps_one(tmp_path):
    import pandas as pd

    from gen_factory.data.datasets import table_from_frame

    v1 = card_from_json({**json.loads(V0_LAST), "schema_version": 1})  # typed, before schemas were kept
    assert v1.schema_version == CARD_VERSION and v1.table_schema is None and v1.selected_epoch == 240
    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC"),
                          "spend": [1.0, 9.5] * 4, "city": pd.Categorical(["a", "b"] * 4, ["b", "a", "c"]),
                          "label": ["x", "y"] * 4})
    schema = table_from_frame(frame, "label").schema
    write_card(tmp_path, v1.model_copy(update={"table_schema": schema}))
    again = read_card(tmp_path).table_schema
    assert again == schema and [c.name for c in again.columns] == ["when", "spend", "city", "label"]
    assert again.columns[0].time.unit_ns == 86_400 * 10**9 and again.columns[2].categories == ["b", "a", "c"]
