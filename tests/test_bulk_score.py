"""Bulk scoring (`genfactory score NAME data.parquet --out DIR`): a partitioned dataset with a manifest,
the input rows unchanged plus scores equal to the in-process scorer's, and bad inputs that leave
nothing at the output. Real engines (Ray Data actors, ONNX Runtime, Parquet files); the model is the
session's `cli_trained_table` (columns x, y; label column `segment`), not trained again here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gen_factory import registry
from gen_factory.card import default_method
from gen_factory.cli import main as cli
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime import scoring
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.services import bulk
from gen_factory.services.bulk_score import ScoreWriter, plan_shards, score_dataset

pytestmark = pytest.mark.ray  # bulk scoring runs through Ray Data

MODEL = "cli-table@staging"
ROWS = 3_000


@pytest.fixture(scope="module")
def model(cli_trained_table):
    assert cli_trained_table["code"] == 0, cli_trained_table["err"][-3000:]
    return OnnxModel(registry.download(registry.resolve(MODEL)))


@pytest.fixture(scope="module")
def source(cli_trained_table, tmp_path_factory):
    """ROWS training rows resampled with noise, an `id` column and the label column `segment` (kept,
    not scored), in row groups of 500: the 1000-row blocks below make three shards of two groups."""
    frame = cli_trained_table["frame"]
    rng = np.random.default_rng(0)
    rows = frame.iloc[rng.integers(0, len(frame), ROWS)].reset_index(drop=True)
    rows[["x", "y"]] += rng.normal(0.0, 0.3, (ROWS, 2))
    rows.insert(0, "id", np.arange(ROWS))
    path = tmp_path_factory.mktemp("bulk-score") / "rows.parquet"
    rows.to_parquet(path, index=False, row_group_size=500)
    return path


def in_process(model, frame: pd.DataFrame, labels: list | None = None, **attribution) -> dict:
    """What `genfactory score --local` returns for these rows (scores alone unless `attribution` says)."""
    return scoring.score_request(model, frame[["x", "y"]].to_dict(orient="records"), None, labels, None,
                                 **(attribution or {"attribution": "none"}))


def test_a_table_is_scored_into_a_dataset_with_the_in_process_scores(model, source, tmp_path, capsys):
    out = tmp_path / "scored"
    assert cli(["score", MODEL, str(source), "--out", str(out), "--workers", "2",
                "--block-rows", "1000"]) == 0
    assert f"scored {ROWS} rows" in capsys.readouterr().out
    manifest = json.loads((out / bulk.MANIFEST).read_text())
    assert [f["path"] for f in manifest["files"]] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert manifest["rows"] == ROWS and manifest["method"] == default_method(model.card.score_methods)
    assert bulk.check_dataset(out).ok and cli(["verify", str(out)]) == 0
    scored = pq.read_table(out).to_pandas()  # the directory, as any Parquet reader reads it
    given = pd.read_parquet(source)
    k = manifest["top_k"]
    assert k == (2 if scoring.has_attribution(model) else 0)  # default 3, capped at the model's 2 columns
    ranks = [f"attr_{r}_{part}" for r in range(1, k + 1) for part in ("column", "value")]
    assert list(scored.columns) == [*given.columns, "score", "is_anomaly", *ranks] == \
        [*given.columns, *manifest["columns"]]
    pd.testing.assert_frame_equal(scored[given.columns], given)  # every input row and column, in order
    expected = in_process(model, given)
    np.testing.assert_allclose(scored["score"], expected["scores"], rtol=1e-5, atol=1e-6)
    assert manifest["threshold"] == expected["threshold"]
    flags = scored["score"].to_numpy() > expected["threshold"]
    assert (scored["is_anomaly"].to_numpy() == flags).all() and manifest["anomalies"] == flags.sum()
    if k:  # the in-process top-k contributions, as `genfactory score --local` returns them
        top = in_process(model, given, attribution="top_k", top_k=k)["top"]
        for r in range(k):
            assert scored[f"attr_{r + 1}_column"].astype(str).tolist() == [row[r]["column"] for row in top]
            np.testing.assert_allclose(scored[f"attr_{r + 1}_value"], [row[r]["contribution"] for row in top],
                                       rtol=1e-4, atol=1e-5)


def test_without_out_a_file_that_still_has_the_label_column_is_scored(model, source, tmp_path, capsys):
    """The JSON path (`--local`, in this process) keeps the small-file behaviour, and ignores the label."""
    head, small = pd.read_parquet(source).head(600), tmp_path / "head.parquet"
    head[["x", "y", "segment"]].to_parquet(small, index=False)
    assert cli(["score", MODEL, str(small), "--local"]) == 0
    answer = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(answer["scores"], in_process(model, head)["scores"], rtol=1e-6)


def test_bad_inputs_are_one_line_errors_and_leave_nothing_at_the_output(model, source, tmp_path, capsys):
    frame, out = pd.read_parquet(source), tmp_path / "out"
    cases = {
        "missing.parquet": (frame.drop(columns="y"), "column 'y': missing"),
        "text.parquet": (frame.assign(x=frame["x"].astype(str)), "column 'x': type"),
        "taken.parquet": (frame.assign(score=0.0), "column 'score': already present"),
    }
    for name, (bad, words) in cases.items():
        bad.to_parquet(tmp_path / name, index=False)
        assert cli(["score", MODEL, str(tmp_path / name), "--out", str(out)]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and words in errors[0] and "fix:" in errors[0], errors
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert cli(["score", MODEL, str(tmp_path / "broken.parquet"), "--out", str(out)]) == 2
    assert "readable Parquet" in capsys.readouterr().err
    # A bad value in the last shard: met by an actor after the first shards were written. (A missing
    # value where none was is scored as the novelty it is; an infinite number is no value.)
    frame.loc[2_500, "x"] = np.inf
    frame.to_parquet(tmp_path / "inf.parquet", index=False, row_group_size=500)
    with pytest.raises(DataValidationError, match=r"row 2500, column 'x': inf"):
        score_dataset(MODEL, tmp_path / "inf.parquet", out, workers=1, block_rows=1_000)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    out.mkdir()  # an existing output is never touched without --overwrite
    (out / "keep.txt").write_text("mine")
    assert cli(["score", MODEL, str(source), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_hive_partitioned_directory_gives_its_folder_keys_as_columns(model, source, tmp_path):
    """A directory as `genfactory generate` writes it (the label in the folder names only): the planned
    shards carry the folder's key, the writer adds it as a column, and --label-column scores each row
    against it. The actor's code runs in this process here, in batches of 300 rows (the Ray runs
    above cover the pool)."""
    frame = pd.read_parquet(source).head(400)
    root = tmp_path / "generated"
    for label, rows in frame.groupby("segment", sort=True):
        (root / f"segment={label}").mkdir(parents=True)
        rows.drop(columns="segment").to_parquet(root / f"segment={label}" / "part-00000.parquet", index=False)
    shards, schemas = plan_shards(str(root), 1_000)
    assert all(s.field("segment").type == "string" for s in schemas.values())
    out = tmp_path / "out"
    out.mkdir()
    ref = registry.resolve(MODEL)
    writer = ScoreWriter(ref.name, ref.version, str(root), str(out), default_method(model.card.score_methods),
                         "segment", None, 300, 0, bulk.actor_env())
    for shard in shards:
        writer._score_shard(*(shard[k] for k in ("index", "file", "first_group", "groups", "first_row",
                                                 "partition")))
    scored = pd.concat([pd.read_parquet(out / f"part-{s['index']:05d}.parquet") for s in shards])
    given = pd.concat([rows for _, rows in frame.groupby("segment", sort=True)])
    assert scored["segment"].astype(str).tolist() == given["segment"].tolist()
    expected = in_process(model, given, given["segment"].tolist())
    np.testing.assert_allclose(scored["score"], expected["scores"], rtol=1e-5, atol=1e-6)
