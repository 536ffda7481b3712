"""Each worker reads its own shard of a Parquet table (gen_factory.train.shards): together the shards are
exactly the driver's training rows, encoded exactly as the driver's encoding encodes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gen_factory.data import load_dataset, training_split
from gen_factory.data.conditions import CondSampler, cond_blocks
from gen_factory.data.transform import encoding_from_dict, encoding_to_dict, fit_encoding
from gen_factory.data.validate import DataValidationError
from gen_factory.train.shards import can_shard, read_shard, shard_batches, values_from_arrow

ROWS = 3000


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 1001) ** 1.2
    merchant = np.asarray([f"m{r:04d}" for r in rng.choice(1000, ROWS, p=p / p.sum())], dtype=object)
    amount = rng.lognormal(2, 1, ROWS)
    amount[rng.random(ROWS) < 0.05] = np.nan
    frame = pd.DataFrame({
        "amount": amount,
        "visits": pd.array(rng.poisson(3, ROWS), dtype="Int64"),
        "merchant": merchant,
        "region": pd.Series(rng.choice(["north", "south", None], ROWS), dtype=object),
        "member": rng.random(ROWS) < 0.4,
        "label": np.where(rng.random(ROWS) < 0.05, "10", np.where(rng.random(ROWS) < 0.5, "2", "1")),
    })
    path = tmp_path_factory.mktemp("shards") / "t.parquet"
    frame.to_parquet(path, row_group_size=700)
    data = load_dataset(str(path))
    assert "merchant" in data.folded  # its rare values come back as "other"
    return str(path), data


@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_shards_are_the_drivers_training_rows_encoded_alike(table, world):
    path, data = table
    train, _ = training_split(data, 0.3, 7)
    encoding = encoding_from_dict(encoding_to_dict(fit_encoding(train)))  # as the config carries it
    shards = [read_shard(path, encoding, "label", rank, world, holdout=0.3, seed=7) for rank in range(world)]
    assert sum(len(s.labels) for s in shards) == len(train.labels)
    for rank, shard in enumerate(shards):
        assert shard.label_names == train.label_names == ["1", "2", "10"]  # natural order
        assert shard.table_rows == len(train.labels)
        np.testing.assert_array_equal(shard.labels, train.labels[rank::world])
        np.testing.assert_array_equal(shard.features, train.features[rank::world])
        np.testing.assert_allclose(shard.encoded, encoding.encode(train.features[rank::world]), atol=1e-6)


def test_batches_per_epoch_are_a_sharded_loaders(table):
    path, data = table
    train, _ = training_split(data, 0.3, 0)
    encoding = fit_encoding(train)
    shard = read_shard(path, encoding, "label", 1, 2)
    blocks = cond_blocks(encoding.columns)
    sampler = CondSampler(shard.features, blocks, 0.5)
    batches = list(shard_batches(shard, sampler, 64, 2, np.random.default_rng(0)))
    assert len(batches) == len(train.labels) // 64
    real, labels, cond = batches[0]
    assert real.shape == (32, encoding.width) and labels.shape == (32,) and cond.shape[0] == 32
    plain = list(shard_batches(shard, None, 64, 2, np.random.default_rng(0)))
    assert len(plain) == len(batches) and len(plain[0]) == 2
    encoded, labels = shard.sample(100, seed=0)
    assert encoded.shape == (100, encoding.width) and len(labels) == 100


def test_one_class_shards_keep_the_normal_labels_renumbered(table):
    path, data = table
    train, _ = training_split(data, 0.3, 0, normal_labels=["2"])
    encoding = fit_encoding(train)
    shard = read_shard(path, encoding, "label", 0, 1, normal_labels=["2"])
    assert shard.label_names == ["2"] and (shard.labels == 0).all()
    np.testing.assert_array_equal(shard.features, train.features)


def test_arrow_batches_give_the_same_values_as_the_loader(table):
    path, data = table
    encoding = fit_encoding(data)
    values = np.concatenate([values_from_arrow(pa.Table.from_batches([batch]), encoding)
                             for batch in pq.ParquetFile(path).iter_batches(batch_size=1000)])
    np.testing.assert_array_equal(values, data.features)


def test_a_value_outside_an_unfolded_column_is_refused(table, tmp_path):
    path, data = table
    encoding = fit_encoding(data)
    frame = pd.read_parquet(path)
    frame.loc[5, "region"] = "east"
    other = tmp_path / "other.parquet"
    frame.to_parquet(other)
    with pytest.raises(DataValidationError, match="'east' not among its categories"):
        read_shard(str(other), encoding, "label", 0, 1, holdout=0)


def test_only_parquet_tables_without_times_are_sharded(table, tmp_path):
    assert can_shard(table[0]) and not can_shard("breast_cancer") and not can_shard(str(tmp_path / "x.csv"))
    timed = tmp_path / "timed.parquet"
    pd.DataFrame({"t": pd.date_range("2020-01-01", periods=4), "label": list("abab")}).to_parquet(timed)
    assert not can_shard(str(timed))
