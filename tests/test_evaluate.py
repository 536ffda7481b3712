"""Evaluation: SDMetrics-definition scores on hand-checkable tables, TSTR, DCR, the report and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from gen_factory.cli import main as cli
from gen_factory.evaluate.quality import (
    contingency_similarity,
    correlation_similarity,
    ks_complement,
    quality_report,
    tv_complement,
)
from gen_factory.evaluate.tables import evaluate_table


@pytest.fixture
def tables():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=n)
    label = np.where(x + rng.normal(0, 0.3, n) > 0, "hi", "lo")
    frame = pd.DataFrame(
        {
            "x": x,
            "y": 2 * x + rng.normal(0, 0.5, n),
            "city": np.where(x > 0.5, "paris", "rome"),
            "label": label,
        }
    )
    return frame.iloc[:200].reset_index(drop=True), frame.iloc[200:].reset_index(drop=True)


def test_single_column_and_pair_scores_match_their_definitions():
    a = pd.Series(["x"] * 6 + ["y"] * 4)
    b = pd.Series(["x"] * 3 + ["y"] * 7)
    assert tv_complement(a, b) == pytest.approx(0.7)  # 1 - (|0.6-0.3| + |0.4-0.7|) / 2
    assert ks_complement(pd.Series([1.0, 2, 3, 4]), pd.Series([3.0, 4, 5, 6])) == pytest.approx(0.5)
    r = pd.DataFrame({"u": np.arange(10.0), "v": np.arange(10.0)})
    s = pd.DataFrame({"u": np.arange(10.0), "v": -np.arange(10.0)})
    assert correlation_similarity(r, s) == pytest.approx(0.0)  # r = 1 vs -1
    weak = pd.DataFrame({"u": [0.0, 1, 0, 1], "v": [0.0, 0, 1, 1]})  # no real correlation: not scored
    assert np.isnan(correlation_similarity(weak, weak))
    pairs = pd.DataFrame({"a": ["p", "p", "q", "q"], "b": ["m", "m", "n", "n"]})
    assert contingency_similarity(pairs, pairs) == 1.0
    assert contingency_similarity(pairs, pairs.assign(b=["n", "n", "m", "m"])) == 0.0


def test_identical_tables_score_one_and_a_shift_scores_lower(tables):
    train, _ = tables
    same = quality_report(train, train, {"city", "label"})
    assert same["quality"] == pytest.approx(1.0) and same["kinds"]["city"] == "categorical"
    shifted = quality_report(train, train.assign(x=train["x"] + 1.0), {"city", "label"})
    assert shifted["shapes"]["x"] < 0.8 and shifted["shapes"]["y"] == 1.0


def test_tstr_and_privacy_see_copies_and_noise(tables):
    train, holdout = tables
    copies = evaluate_table(train, train, holdout, "label")
    assert copies["tstr"] == copies["trtr"] and copies["tstr"]["accuracy"] > 0.8
    assert copies["privacy"]["exact_copies_fraction"] == 1.0 and copies["privacy"]["dcr_ratio"] == 0.0
    rng = np.random.default_rng(1)
    noise = train.assign(x=rng.normal(size=len(train)), y=rng.normal(size=len(train)))
    useless = evaluate_table(train, noise, holdout, "label")
    assert useless["tstr"]["accuracy"] < copies["tstr"]["accuracy"] - 0.1
    assert useless["privacy"]["exact_copies_fraction"] == 0.0


def test_distance_to_closest_record_keeps_its_transient_bounded_on_a_large_table():
    # 5,000 training rows x 40 columns: 256 rows at a time against all of them were 410 MB of differences
    # (and as much again for their absolute values); at 50,000 x 100, what `train` evaluates, 10 GB.
    import tracemalloc

    from gen_factory.evaluate.privacy import distance_to_closest_record

    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(5_000, 40)), columns=[f"c{i}" for i in range(40)])
    holdout = pd.DataFrame(rng.normal(size=(3_000, 40)), columns=train.columns)
    tracemalloc.start()
    try:
        dcr = distance_to_closest_record(train.iloc[:3_000], train, holdout, set())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500 * 2**20
    assert dcr["exact_copies_fraction"] == 1.0 and dcr["dcr_holdout_median"] > 0


def test_cli_evaluate_writes_a_report_with_plots(tables, tmp_path, capsys):
    train, holdout = tables
    train.to_parquet(tmp_path / "real.parquet")
    train.sample(frac=1.0, random_state=0).to_csv(tmp_path / "synth.csv", index=False)
    holdout.to_parquet(tmp_path / "hold.parquet")
    assert cli(["evaluate", str(tmp_path / "real.parquet"), str(tmp_path / "synth.csv"), "--holdout",
                str(tmp_path / "hold.parquet"), "--report", str(tmp_path / "r.html")]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["quality"] == pytest.approx(1.0) and 0 <= figures["tstr_macro_f1"] <= 1
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") == 1 + len(train.columns)  # heat maps + one per column
    assert cli(["evaluate", str(tmp_path / "real.parquet"), str(tmp_path / "synth.csv"), "--holdout",
                str(tmp_path / "hold.parquet"), "--label-column", "nope"]) == 2
    assert "--label-column" in capsys.readouterr().err


def test_a_wide_tables_report_plots_the_columns_with_the_lowest_shape_scores():
    from gen_factory.evaluate.report import MAX_COLUMN_PLOTS, _columns_to_plot

    columns = [f"c{i}" for i in range(MAX_COLUMN_PLOTS + 6)]
    shapes = {c: 1.0 - (i % 7) / 10 for i, c in enumerate(columns)}
    shown = _columns_to_plot(columns, shapes)
    assert len(shown) == MAX_COLUMN_PLOTS and shown == [c for c in columns if c in shown]  # table order
    assert max(shapes[c] for c in shown) <= min(shapes[c] for c in columns if c not in shown)
    assert _columns_to_plot(columns[:5], shapes) == columns[:5]
