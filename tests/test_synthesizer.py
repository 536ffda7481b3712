"""`Synthesizer.sample(n)` promises `n` rows "in the training label proportions": each label gets its
share of n by largest remainders, so every label's count is within one row of n times its share of
the training rows, and the counts add up to n exactly. Checked on the session's CLI-trained model
(its registered ONNX generator) against class counts computed here from its data file."""

import numpy as np
import pytest

from gen_factory.data import DataValidationError, load_dataset, training_split
from gen_factory.synthesizer import Synthesizer

pytestmark = pytest.mark.ray  # the shared model is trained with Ray Train (once per session)


@pytest.fixture(scope="module")
def model(cli_trained_table):
    assert cli_trained_table["code"] == 0, cli_trained_table["err"][-3000:]
    return Synthesizer.load("cli-table@staging")


@pytest.fixture(scope="module")
def training_shares(cli_trained_table):
    """Each label's share of the rows the model was trained on: the file's stratified training split
    (holdout 0.3, the CLI's default, with the run's seed), counted here."""
    data = load_dataset(str(cli_trained_table["path"]), "segment")
    train, _ = training_split(data, 0.3, cli_trained_table["seed"])
    counts = np.bincount(train.labels, minlength=len(train.label_names))
    return dict(zip(train.label_names, counts / counts.sum(), strict=True)), counts


@pytest.mark.parametrize("n", [1, 7, 100, 10_001])
def test_sample_n_keeps_the_training_label_proportions_within_one_row(model, training_shares, n):
    shares, _ = training_shares
    rows = model.sample(n, seed=n)
    assert len(rows) == n and set(rows["segment"].astype(str)) <= set(shares)
    got = rows["segment"].astype(str).value_counts()
    for label, share in shares.items():
        assert abs(got.get(label, 0) - n * share) < 1, (label, got.to_dict(), n * share)


def test_the_proportions_are_the_training_rows_not_the_whole_file(model, training_shares, cli_trained_table):
    """The card carries the training split's class counts (what `sample(n)` divides by), and they
    are the file's proportions up to the split's rounding: at most one row per label."""
    _, counts = training_shares
    assert model.model.card.label_counts == counts.tolist()
    whole = cli_trained_table["frame"]["segment"].value_counts()
    kept = counts.sum() / whole.sum()  # the training fraction, about 0.7
    for label, count in zip(model.model.label_names, counts, strict=True):
        assert abs(count - whole[label] * kept) <= 1.0, (label, count, whole[label] * kept)


@pytest.mark.parametrize("kwargs, field", [
    ({"n": 0}, "n"),
    ({"n": -3}, "n"),
    ({"n": 2.5}, "n"),
    ({"n": True}, "n"),
    ({}, "sample"),
    ({"n": 5, "counts": {"rare": 1}}, "sample"),
])
def test_sample_refuses_what_is_not_a_row_count(model, kwargs, field):
    with pytest.raises(DataValidationError) as err:
        model.sample(**kwargs)
    assert err.value.field == field


def test_augment_keeps_the_users_rows_and_reads_the_label_column_from_the_card(model, cli_trained_table,
                                                                                tmp_path, capsys):
    import pandas as pd
    import pyarrow.parquet as pq

    from gen_factory.cli import main as cli

    frame = cli_trained_table["frame"]
    out = model.augment(frame, ratio=0.5, classes=["rare"], seed=2)
    assert list(out.columns) == [*frame.columns, "synthetic"]
    pd.testing.assert_frame_equal(out[~out.synthetic].drop(columns="synthetic").reset_index(drop=True), frame)
    synthetic = out[out.synthetic]
    assert synthetic["segment"].tolist() == ["rare"] * round(0.5 * (frame["segment"] == "rare").sum())
    code = cli(["augment", "cli-table@staging", str(cli_trained_table["path"]), "--classes", "rare",
                "--holdout", "0.3", "--out", str(tmp_path / "aug.parquet")])  # no --label-column
    printed = capsys.readouterr().out
    assert code in (0, None) and "rare class 'rare'" in printed and "best control" in printed, printed
    assert "segment" in pq.read_schema(tmp_path / "aug.parquet").names


def test_evaluate_reads_the_label_column_a_generated_file_records(model, cli_trained_table, tmp_path, capsys):
    import json

    import pyarrow.parquet as pq

    from gen_factory.cli import main as cli
    from gen_factory.runtime.sampling import generate_table

    frame = cli_trained_table["frame"]
    real, holdout = tmp_path / "real.parquet", tmp_path / "holdout.parquet"
    frame.iloc[::2].to_parquet(real, index=False)
    frame.iloc[1::2].to_parquet(holdout, index=False)
    pq.write_table(generate_table(model.model, [40, 30, 20], seed=1), tmp_path / "synth.parquet")
    code = cli(["evaluate", str(real), str(tmp_path / "synth.parquet"), "--holdout", str(holdout)])
    printed = capsys.readouterr().out  # no --label-column: the file says `segment`
    assert code in (0, None) and 0 <= json.loads(printed)["quality"] <= 1, printed
