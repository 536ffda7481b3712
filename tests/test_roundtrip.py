"""Property: whatever mix of column types a user's frame has, generated rows come back in its schema.

Hypothesis draws the frame (column kinds, their order, where the label sits, missing values, size,
values); each is fitted for one epoch in-process, exported to ONNX and sampled through
`sampling.generate_table`, the function behind `Synthesizer.sample`, `pull`, `generate` and the API.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gen_factory.data.datasets import table_from_frame
from gen_factory.data.schema import to_pandas
from gen_factory.export.bundle import card_for, export_bundle
from gen_factory.models.encoder import build_encoder
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_table
from gen_factory.train.local import train_table

KINDS = ("float", "int", "nullable_int", "bool", "object_str", "str", "category", "datetime",
         "datetime_tz", "date")


def _column(kind: str, n: int, rng: np.random.Generator, missing: bool) -> pd.Series:
    words = np.array(["lima", "oslo", "rome", "kyiv"], dtype=object)
    start = pd.Timestamp("2024-03-01 08:00")
    values = {
        "float": lambda: pd.Series(np.round(rng.gamma(2.0, 3.0, n), 2)),
        "int": lambda: pd.Series(rng.integers(-5, 40, n), dtype=np.int64),
        "nullable_int": lambda: pd.Series(rng.integers(0, 9, n), dtype="Int64"),
        "bool": lambda: pd.Series(np.arange(n) % 3 == 0),
        "object_str": lambda: pd.Series(words[rng.integers(0, 4, n)], dtype=object),
        "str": lambda: pd.Series(words[rng.integers(0, 3, n)], dtype="string"),
        "category": lambda: pd.Series(pd.Categorical(words[rng.integers(0, 3, n)],
                                                     categories=["rome", "lima", "oslo", "unused"])),
        "datetime": lambda: pd.Series(start + pd.to_timedelta(rng.integers(0, 90 * 24, n), unit="h")),
        "datetime_tz": lambda: pd.Series(
            (start + pd.to_timedelta(rng.integers(0, 5000, n), unit="min")).tz_localize("America/Lima")),
        "date": lambda: pd.Series([dt.date(2024, 1, 1) + dt.timedelta(days=int(d))
                                   for d in rng.integers(0, 400, n)], dtype=object),
    }[kind]()
    if missing and kind not in ("bool", "int"):  # those dtypes hold no missing value
        values = values.mask(rng.random(n) < 0.1)
    return values


@st.composite
def frames(draw) -> pd.DataFrame:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    n, seed = draw(st.integers(30, 60)), draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    columns = {f"c{i}_{kind}": _column(kind, n, rng, draw(st.booleans())) for i, kind in enumerate(kinds)}
    labels = np.where(np.arange(n) % 2 == 0, "yes", "no")
    label = pd.Series(labels, dtype=draw(st.sampled_from([object, "string"])))
    if draw(st.booleans()):
        label = pd.Series((labels == "yes").astype(np.int64))
    position = draw(st.integers(0, len(columns)))
    items = list(columns.items())
    items.insert(position, ("target", label))
    return pd.DataFrame(dict(items))


def _every_kind(n: int = 48) -> pd.DataFrame:
    """A column of every kind, each with missing values where its dtype holds them, the label among
    them: whatever hypothesis draws besides, every kind goes through once."""
    rng = np.random.default_rng(0)
    items = [(f"c{i}_{kind}", _column(kind, n, rng, True)) for i, kind in enumerate(KINDS)]
    items.insert(4, ("target", pd.Series(np.where(np.arange(n) % 2 == 0, "yes", "no"), dtype=object)))
    return pd.DataFrame(dict(items))


# Each example fits and exports a model (seconds each): 6 drawn ones plus the every-kind frame.
@pytest.mark.slow
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=frames())
@example(frame=_every_kind())
def test_generated_rows_come_back_in_the_input_schema(frame, tmp_path_factory):
    data = table_from_frame(frame, "target")
    generator, discriminator, encoding, spec, hyper = train_table(data, epochs=1)
    card = card_for(data, spec, encoding, model_name="roundtrip", dataset="frame", loss=hyper.loss, epochs=1,
                    seed=0)
    out = tmp_path_factory.mktemp("roundtrip") / "model"
    export_bundle(generator, discriminator, build_encoder(spec).eval(), (1.0, 1.0), encoding, card, out)
    table = generate_table(OnnxModel(out, threads=1), [40, 40], seed=3)

    assert table.schema.equals(pa.Schema.from_pandas(frame, preserve_index=False))
    sampled = to_pandas(table)
    assert list(sampled.columns) == list(frame.columns)
    assert sampled.dtypes.equals(frame.dtypes), (sampled.dtypes, frame.dtypes)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):  # every category kept, used or not
            assert list(sampled[name].cat.categories) == list(frame[name].cat.categories)
    assert set(sampled["target"]) == set(frame["target"])
