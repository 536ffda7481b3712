import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gen_factory.data import DataValidationError, load_dataset, split
from gen_factory.data.datasets import images_from_arrays, table_from_frame


def test_bundled_datasets_load_with_named_labels():
    digits = load_dataset("digits")
    assert digits.kind == "image" and digits.images.shape == (1797, 1, 8, 8)
    assert digits.label_names == [str(i) for i in range(10)]
    bc = load_dataset("breast_cancer")
    assert bc.kind == "table" and bc.features.shape == (569, 30)
    assert bc.label_names == ["malignant", "benign"]
    assert np.bincount(bc.labels).tolist() == [212, 357]


def test_parquet_and_csv_tables_load(tmp_path, gauss_table):
    gauss_table.to_parquet(tmp_path / "t.parquet")
    gauss_table.to_csv(tmp_path / "t.csv", index=False)
    for path in ("t.parquet", "t.csv"):
        data = load_dataset(str(tmp_path / path))
        assert data.columns == ["x", "y", "count"]
        assert data.label_names == ["a", "b"]
        assert len(data.labels) == len(gauss_table)


def test_a_parquet_table_loads_a_column_at_a_time_as_its_frame_would(tmp_path):
    """`load_dataset` reads a Parquet table a column at a time (issue 17): the same features, labels and
    schema as `table_from_frame` of the frame read whole, with every kind of column, the label among them
    and a stored index (no column of the table). `table_from_frame` leaves the user's frame as it was."""
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({
        "when": pd.Timestamp("2024-03-01", tz="Europe/Oslo") + pd.to_timedelta(rng.integers(0, 500, n), "h"),
        "city": pd.Categorical(rng.choice(["rome", "lima"], n), categories=["rome", "lima", "unused"]),
        "x": np.where(np.arange(n) == 3, np.nan, rng.normal(size=n).round(2)),
        "label": np.where(np.arange(n) % 2 == 0, "yes", "no"),
        "count": pd.array(rng.integers(0, 9, n), dtype="Int64"),
        "day": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 400, n)],
        "word": np.where(np.arange(n) % 7 == 0, None, rng.choice(["a", "b", "c"], n)).astype(object),
    }, index=rng.permutation(n) + 100)
    frame.to_parquet(tmp_path / "t.parquet")
    read = pd.read_parquet(tmp_path / "t.parquet")
    kept = read.copy(deep=True)
    whole = table_from_frame(read, "label")
    pd.testing.assert_frame_equal(read, kept)
    loaded = load_dataset(str(tmp_path / "t.parquet"))
    np.testing.assert_array_equal(loaded.features, whole.features)
    np.testing.assert_array_equal(loaded.labels, whole.labels)
    assert (loaded.columns, loaded.label_names, loaded.categories) == (whole.columns, whole.label_names,
                                                                       whole.categories)
    assert loaded.schema == whole.schema and [c.name for c in loaded.schema.columns] == list(frame.columns)


PEAK_GROWTH = """
import sys
from pathlib import Path

from gen_factory.data import load_dataset


def peak():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024


load_dataset(sys.argv[1])  # the readers imported
before = peak()
load_dataset(sys.argv[2])
print(peak() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak resident set from /proc")
def test_a_parquet_table_loads_without_holding_its_frame(tmp_path):
    """Read whole, a Parquet table's load held the frame, its Arrow table and the file's pages at once: over
    4x the frame (a 1M x 100 table peaked at 2.4 GiB, issue 17). A column at a time, the peak of a fresh
    process grows by less than 2x the frame (its float32 features are half of it)."""
    rows, cols = 400_000, 40
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"x{i}" for i in range(cols)])
    frame["label"] = np.where(np.arange(rows) % 2 == 0, "a", "b")
    frame.to_parquet(tmp_path / "big.parquet", row_group_size=rows // 4)
    frame.head(40).to_parquet(tmp_path / "small.parquet")
    out = subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(tmp_path / "small.parquet"),
                          str(tmp_path / "big.parquet")], capture_output=True, text=True, check=True)
    grown, size = int(out.stdout), frame.memory_usage().sum()
    assert grown < 2 * size, f"peak grew {grown / 1e6:.0f} MB loading a {size / 1e6:.0f} MB frame"


def test_npz_images_load_in_any_layout(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([3, 5], 4)
    for name, images in (("nhw", rng.random((8, 6, 6))), ("nhwc", rng.random((8, 6, 6, 3))),
                         ("nchw", rng.random((8, 3, 6, 6)))):
        np.savez(tmp_path / f"{name}.npz", images=images, labels=labels)
        data = load_dataset(str(tmp_path / f"{name}.npz"))
        assert data.images.shape[0] == 8 and data.images.shape[2:] == (6, 6)
        assert data.label_names == ["3", "5"]


@pytest.mark.parametrize("mutate, field, words", [
    (lambda df: df.drop(columns=["label"]), "label_column", "--label-column"),
    (lambda df: df.assign(x=np.nan), "column 'x'", "missing in every row"),
    (lambda df: df.assign(y=df["y"].replace(df["y"].iloc[3], np.inf)), "column 'y'", "infinite"),
    (lambda df: df.assign(payload=[{"k": 1}] * len(df)), "column 'payload'", "cannot be modelled"),
    (lambda df: df.assign(tags=[[1, 2]] * len(df)), "column 'tags'", "cannot be modelled"),
    (lambda df: pd.concat([df, df.iloc[:1].assign(label="lonely")]), "column 'label'", "lonely"),
    (lambda df: df.iloc[:0], "dataset", "at least 2 rows"),
    (lambda df: df.assign(label="a"), "column 'label'", "at least 2 label values"),
])
def test_bad_tables_get_an_error_naming_field_value_and_fix(gauss_table, mutate, field, words):
    with pytest.raises(DataValidationError) as err:
        table_from_frame(mutate(gauss_table), "label")
    assert err.value.field == field
    assert "fix:" in str(err.value) and words in str(err.value)


def test_bad_images_are_rejected():
    with pytest.raises(DataValidationError, match="one label per image"):
        images_from_arrays(np.zeros((4, 8, 8)), np.zeros(3))
    bad = np.zeros((4, 8, 8))
    bad[2, 1, 1] = np.nan
    with pytest.raises(DataValidationError, match="NaN"):
        images_from_arrays(bad, np.array([0, 0, 1, 1]))
    with pytest.raises(DataValidationError, match="dataset"):
        load_dataset("no_such_dataset.parquet")


def test_split_is_stratified_and_deterministic():
    data = load_dataset("breast_cancer")
    train_a, test_a = split(data, 0.3, seed=0)
    train_b, test_b = split(data, 0.3, seed=0)
    np.testing.assert_array_equal(test_a.labels, test_b.labels)
    np.testing.assert_array_equal(train_a.features, train_b.features)
    assert len(test_a.labels) == round(212 * 0.3) + round(357 * 0.3)
    _, test_c = split(data, 0.3, seed=1)
    assert not np.array_equal(test_a.features, test_c.features)


def test_mixed_tables_keep_categories_and_missing_values(gauss_table):
    df = gauss_table.assign(city=np.where(gauss_table["x"] > 0, "paris", "rome"), flag=gauss_table["y"] > 0)
    df.loc[3, "city"] = None
    df.loc[5, "x"] = np.nan
    data = table_from_frame(df, "label", categorical=["count"])
    assert data.categories["city"] == ["paris", "rome"] and data.categories["flag"] == ["False", "True"]
    assert data.categories["count"] == [str(i) for i in range(10)]
    assert np.isnan(data.features[3, data.columns.index("city")]) and np.isnan(data.features[5, 0])
    back = data.frame()
    assert back["city"].tolist()[:3] == df["city"].tolist()[:3] and back["city"].isna().sum() == 1
    assert back["label"].tolist() == df["label"].tolist()
    with pytest.raises(DataValidationError, match="categorical"):
        table_from_frame(df, "label", categorical=["nope"])
