"""The opt-in int8 generator: exported beside fp32, named by the card, picked by the runtime, and
generating rows of the same schema and nearly the same distribution (bench/bulk_lowp.py measures
speed and quality loss on the bundled tables)."""

import json

import numpy as np
import onnx
import pyarrow as pa
import pytest
import torch

from gen_factory.card import CARD_FILE, read_card
from gen_factory.cli.parser import build_parser
from gen_factory.data import DataValidationError
from gen_factory.data.datasets import table_from_frame
from gen_factory.data.transform import fit_encoding
from gen_factory.export.bundle import card_for, export_bundle
from gen_factory.export.precision import add_precision
from gen_factory.models import build_models, spec_for
from gen_factory.models.encoder import build_encoder
from gen_factory.runtime import sampling
from gen_factory.runtime.onnx_model import OnnxModel


@pytest.fixture(scope="module")
def frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200) * 1000, "count": rng.integers(0, 10, 200),
                       "city": rng.choice(["paris", "rome", "oslo"], 200),
                       "price": np.round(rng.gamma(2.0, 10.0, 200), 2), "label": np.repeat(["a", "b"], 100)})
    df.loc[::9, "price"] = np.nan
    return df


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, frame):
    data = table_from_frame(frame, "label")
    enc = fit_encoding(data)
    spec = spec_for(data, enc)
    torch.manual_seed(0)
    g, d = build_models(spec)
    card = card_for(data, spec, enc, model_name="lowp", dataset=data.name, loss="hinge", epochs=1, seed=0)
    out = tmp_path_factory.mktemp("lowp") / "m"
    export_bundle(g.eval(), d.eval(), build_encoder(spec).eval(), (1.0, 1.0), enc, card, out,
                  precisions=("int8",))
    return out


def test_the_card_names_the_int8_generator_and_only_generator_gemms_are_quantized(bundle):
    card = read_card(bundle)
    assert card.files.precisions == {"int8": "generator.int8.onnx"} and card.files.generator == "model.onnx"
    ops = [n.op_type for n in onnx.load(str(bundle / "generator.int8.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 3  # the generator's three Linear layers; the decoder stays fp32
    assert OnnxModel(bundle, precision="int8").precision == "int8"


def test_a_card_without_precisions_is_fp32_only_and_int8_is_refused_by_name(bundle, tmp_path):
    raw = json.loads((bundle / CARD_FILE).read_text())
    del raw["files"]["precisions"]  # as every card written before int8 existed
    for f in ("model.onnx", "discriminator.onnx", "encoder.onnx"):
        (tmp_path / f).write_bytes((bundle / f).read_bytes())
    (tmp_path / CARD_FILE).write_text(json.dumps(raw))
    assert read_card(tmp_path).files.precisions is None
    OnnxModel(tmp_path)  # fp32, the default
    with pytest.raises(DataValidationError, match="carries fp32") as err:
        OnnxModel(tmp_path, precision="int8")
    assert err.value.field == "--precision"
    with pytest.raises(ValueError, match="reduced precision"):
        add_precision(tmp_path, "fp32")


def test_int8_rows_have_the_schema_and_nearly_the_distribution_of_fp32(bundle, frame):
    fp32, int8 = OnnxModel(bundle), OnnxModel(bundle, precision="int8")
    a, b = (sampling.generate_table(m, [2000, 2000], seed=3) for m in (fp32, int8))
    assert b.schema.equals(pa.Schema.from_pandas(frame, preserve_index=False))
    assert a.schema.equals(b.schema)
    a, b = a.to_pandas(), b.to_pandas()
    assert set(b["city"].dropna()) <= {"oslo", "paris", "rome"} and b["price"].isna().any()
    price = b["price"].dropna().to_numpy()
    assert np.array_equal(price, np.round(price, 2))  # the fp32 decoder still rounds to cents
    for column in ("x", "count", "price"):  # same noise: the rows move by a small part of a column's spread
        sd = a[column].std()
        assert abs(a[column].mean() - b[column].mean()) < 0.05 * sd
        assert abs(a[column].median() - b[column].median()) < 0.1 * sd
    shares = [f["city"].value_counts(normalize=True, dropna=False).sort_index() for f in (a, b)]
    assert np.abs(shares[0] - shares[1]).max() < 0.03
    assert abs(a["price"].isna().mean() - b["price"].isna().mean()) < 0.02


def test_generate_takes_a_precision_flag():
    parse = build_parser().parse_args
    assert parse(["generate", "m", "--out", "o", "--rows", "10"]).precision == "fp32"
    assert parse(["generate", "m", "--out", "o", "--rows", "10", "--precision", "int8"]).precision == "int8"
    with pytest.raises(SystemExit):
        parse(["generate", "m", "--out", "o", "--rows", "10", "--precision", "fp16"])


def test_bulk_shards_come_from_the_int8_graph_and_name_it(bundle, tmp_path):
    """The bulk actor's own code (`ShardWriter`, what Ray Data runs), called without Ray: a registered
    int8 bundle writes Parquet whose metadata names the precision; fp32 shards stay as before."""
    import pyarrow.parquet as pq

    from gen_factory import registry
    from gen_factory.runtime.sampling import read_metadata
    from gen_factory.services import bulk

    run_id, _ = registry.start_run("lowp-bulk", {})
    ref = registry.register(run_id, bundle, "lowp-bulk", "champion")
    (tmp_path / "out").mkdir()
    writer = bulk.ShardWriter(ref.name, ref.version, str(tmp_path / "out"), 0, {}, precision="int8")
    done = writer({"label": [1], "index": [0], "rows": [50]})
    table = pq.read_table(tmp_path / "out" / str(done["path"][0]))
    assert table.num_rows == 50 and read_metadata(table)["precision"] == "int8"
    done = bulk.ShardWriter(ref.name, ref.version, str(tmp_path / "out"), 0, {})(
        {"label": [1], "index": [1], "rows": [50]})
    assert "precision" not in read_metadata(pq.read_table(tmp_path / "out" / str(done["path"][0])))
    with pytest.raises(DataValidationError, match="carries fp32, int8"):  # before any Ray work
        bulk.generate_dataset(f"{ref.name}@champion", tmp_path / "x", rows=10, precision="fp16")
