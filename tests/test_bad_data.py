"""Bad training data, case by case: each table is either refused before Ray starts, with a
DataValidationError naming the column, the value and the fix, or it trains (one shared tiny run on a
table holding every such column) and the test checks what became of its column in what ships."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gen_factory import registry
from gen_factory.data.validate import DataValidationError
from gen_factory.services.pipeline import TrainJob, train_and_register

# The one size every training case shares; the refit on every row is exercised by test_e2e.
TINY = {"epochs": 2, "encoder_epochs": 1, "num_workers": 1, "refit": False}
RNG = np.random.default_rng(0)


def _table(n: int = 60, labels=("a", "b"), **columns) -> pd.DataFrame:
    """`n` rows with a numeric column `x` and the given extra columns, labels alternating."""
    frame = pd.DataFrame({"x": RNG.normal(size=n)})
    for name, values in columns.items():
        frame[name] = values
    frame["label"] = [labels[i % len(labels)] for i in range(n)]
    return frame


def _with(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def _write_duplicate_header(path: Path) -> None:
    path.write_text("a,b,a,label\n" + "".join(f"{i},{i % 3},{-i},{'xy'[i % 2]}\n" for i in range(40)))


@dataclass
class Refused:
    """A table that must not reach Ray: the error's field, value and fix must contain these."""

    frame: pd.DataFrame | None
    field: str
    value: str
    fix: str
    suffix: str = ".parquet"
    label_column: str = "label"


REFUSED = {
    "+inf": Refused(_with(_table(), "x", 7, np.inf), "column 'x'", "inf in 1 row(s) (first at row 7)",
                    "replace the infinite values"),
    "-inf": Refused(_with(_table(), "x", 3, -np.inf), "column 'x'", "-inf in 1 row(s) (first at row 3)",
                    "replace the infinite values"),
    "all-NaN column": Refused(_table(empty=np.nan), "column 'empty'", "missing in every row",
                              "drop the column or fill it"),
    "0 rows": Refused(_table().iloc[:0], "dataset", "0 rows", "at least 2 rows per label"),
    "1 row": Refused(_table(1), "column 'label'", "only one label value ['a']", "at least 2 label values"),
    "too few rows per label to train and hold out": Refused(
        _table(6, labels=("a", "b", "c")), "column 'label'",
        "label 'a' has 2 row(s): 1 to train on and 1 held out at --holdout 0.3",
        "give each label at least 3 rows (more rows per label"),
    "one class": Refused(_table(50, labels=("a",)), "column 'label'", "only one label value ['a']",
                         "at least 2 label values"),
    "missing label column": Refused(_table().rename(columns={"label": "target"}), "label_column", "'label'",
                                    "--label-column (columns: x, target)"),
    "5,000 categories over 20,000 rows": Refused(
        _table(20_000, customer=[f"c{i % 5000}" for i in range(20_000)]), "column 'customer'",
        "5000 distinct values", "at most 1000 categories"),
    "duplicate column names": Refused(None, "column 'a'", "appears 2 times", "rename or drop the duplicates",
                                      suffix=".csv"),
    "duration column": Refused(_table(took=pd.to_timedelta(np.arange(60), unit="s")),
                               "column 'took'", "of a type that cannot be modelled",
                               "convert it to numbers, strings, datetimes or dates"),
    "every feature constant": Refused(_table(x=1.5, city="lima"), "columns",
                                      "every feature column is constant ('x', 'city')",
                                      "give at least one column whose values vary"),
}


@pytest.fixture
def ray_down():
    """No Ray in this process, so a case refused before Ray leaves it that way."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield ray


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refused_before_ray_naming_column_value_and_fix(case, tmp_path, ray_down):
    spec = REFUSED[case]
    path = tmp_path / f"data{spec.suffix}"
    if spec.frame is None:
        _write_duplicate_header(path)
    else:
        spec.frame.to_parquet(path)
    run_name = f"bad-{abs(hash(case))}"
    started = time.monotonic()
    with pytest.raises(DataValidationError) as refused:
        train_and_register(TrainJob(str(path), model_name="bad", run_name=run_name,
                                    label_column=spec.label_column, **TINY), log=lambda *_: None)
    err = refused.value
    assert spec.field in err.field and spec.value in str(err.value) and spec.fix in err.fix, str(err)
    assert ray_down.is_initialized() is False and time.monotonic() - started < 30
    assert registry.find_run(run_name) is None  # nothing opened in MLflow either


# ---- the cases that train: one table holding each such column, trained once ----

NAN_COL, CONST_COL, UNICODE_COL = "with nan", "constant", "größe (cm) ü"
WIDE = 200  # feature columns in the shared table


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shared table trained and registered; returns (real frame, loaded model, synthetic frame,
    summary)."""
    from gen_factory.synthesizer import Synthesizer

    n = 120
    label = np.array(["a", "b"])[np.arange(n) % 2]
    shift = np.where(label == "a", -1.0, 1.0)
    columns = {NAN_COL: np.where(RNG.random(n) < 0.25, np.nan, RNG.normal(shift, 1.0)),
               CONST_COL: np.full(n, 7.0), UNICODE_COL: RNG.normal(170 + 5 * shift, 3.0)}
    columns.update({f"f{i:03d}": RNG.normal(shift * (i % 3), 1.0) for i in range(WIDE - len(columns))})
    real = pd.DataFrame({**columns, "label": label})
    path = tmp_path_factory.mktemp("bad-data") / "wide.parquet"
    real.to_parquet(path)
    summary = train_and_register(TrainJob(str(path), model_name="bad-data-shared", **TINY), log=print)
    synth = Synthesizer.load(f"bad-data-shared/{summary['ref'].version}")
    return real, synth.model, synth.sample(400, seed=0), summary


def _column(card, name: str):
    return next(c for c in card.encoding.columns if c.name == name)


@pytest.mark.ray
def test_nan_values_are_modelled_as_missing(shipped):
    real, model, synth, _ = shipped
    assert _column(model.card, NAN_COL).missing is True  # a missing flag is part of the encoding
    values = synth[NAN_COL].to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    low, high = real[NAN_COL].min(), real[NAN_COL].max()
    slack = np.finfo(np.float32).eps * max(abs(low), abs(high))  # the graph computes in float32
    assert len(present) > 0 and low - slack <= present.min() <= present.max() <= high + slack


@pytest.mark.ray
def test_a_constant_column_ships_as_that_constant(shipped):
    _, model, synth, _ = shipped
    assert _column(model.card, CONST_COL).missing is False
    assert (synth[CONST_COL] == 7.0).all()


@pytest.mark.ray
def test_a_new_value_in_a_constant_column_is_blamed_with_a_finite_contribution(shipped):
    """Its training sd is 0: the contribution is measured against a floor, never infinite (JSON has no
    inf) and the column that moved is the one blamed."""
    from gen_factory.runtime import scoring

    real, model, _, _ = shipped
    values = real.drop(columns="label").to_numpy(dtype=np.float32)[:8].copy()
    column = model.card.columns.index(CONST_COL)
    values[4:, column] = 1_000.0  # 993 past a column whose training sd is 0
    scored = scoring.score_attributed(model, values)
    assert np.isfinite(scored.matrix).all() and np.isfinite(scored.contributions).all()
    assert (scored.contributions[4:].argmax(axis=1) == column).all()


@pytest.mark.ray
def test_unicode_and_space_in_a_column_name_survive_to_the_output(shipped):
    _, model, synth, _ = shipped
    assert UNICODE_COL in model.card.columns and UNICODE_COL in synth.columns
    assert synth[UNICODE_COL].between(100, 250).all()


@pytest.mark.ray
def test_200_columns_all_come_back_in_order(shipped):
    real, model, synth, summary = shipped
    card = model.card
    assert card.columns == [c for c in real.columns if c != "label"] and len(card.columns) == WIDE
    assert list(synth.columns) == list(real.columns)
    assert summary["ref"].alias == "champion" and np.isfinite(summary["metrics"]["quality"])
