"""Images end to end on the real engines: a folder of 32x32 RGB PNGs -> Ray Train (2 workers) ->
ONNX -> MLflow (metrics, per-class grids) -> `genfactory augment` -> labelled Parquet + uplift."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gen_factory import registry
from gen_factory.cli import main as cli
from gen_factory.services.augmentation import read_augmentation
from gen_factory.services.pipeline import TrainJob, train_and_register

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.extended]  # images on Ray: also e2e's digits


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Two colours of blob: red blobs on the left, blue ones on the right (learnable, not trivial)."""
    root = tmp_path_factory.mktemp("pngs") / "blobs"
    rng = np.random.default_rng(0)
    for label, (channel, x0) in {"red": (0, 4), "blue": (2, 18)}.items():
        (root / label).mkdir(parents=True)
        for i in range(14):
            img = rng.integers(0, 40, (32, 32, 3)).astype(np.uint8)
            y = rng.integers(4, 18)
            img[y:y + 10, x0:x0 + 10, channel] = 255
            Image.fromarray(img, "RGB").save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(pngs):
    import ray

    summary = train_and_register(
        TrainJob(str(pngs), model_name="e2e-blobs", epochs=2, batch_size=8, num_workers=2)
    )
    yield summary
    ray.shutdown()


def test_png_folder_trains_on_ray_and_logs_image_metrics_and_class_grids(trained):
    m = trained["metrics"]
    for key in ("cas", "label_fidelity", "frechet_distance", "precision", "recall", "diversity_ratio_min"):
        assert key in m
    assert 0 <= m["cas"] <= 1 and m["frechet_distance"] >= 0 and isinstance(m["mode_collapse"], list)
    assert max(trained["parity"].values()) <= 1e-4
    c = registry.client()
    logged = c.get_run(trained["run_id"]).data.metrics
    assert {"cas", "frechet_distance", "precision", "recall", "label_fidelity_red"} <= set(logged)
    grids = {a.path for a in c.list_artifacts(trained["run_id"], "evaluation")}
    assert grids == {"evaluation/class_red.png", "evaluation/class_blue.png"}
    card = json.loads(open(registry.download(trained["ref"]) / "card.json").read())
    assert card["shape"] == [3, 32, 32] and card["variant"] == "projgan-gp"


def test_augment_cli_writes_mixed_parquet_and_reports_uplift(trained, pngs, tmp_path, capsys):
    out = tmp_path / "aug.parquet"
    assert (
        cli(["augment", "e2e-blobs", str(pngs), "--out", str(out), "--ratio", "2", "--holdout", "0.3"]) == 0
    )
    printed = capsys.readouterr().out
    assert "real only" in printed and "uplift" in printed
    values, labels, synthetic, meta = read_augmentation(out)
    n_real = int((~synthetic).sum())
    assert n_real == 20 and int(synthetic.sum()) == 40  # 70 % of 28 real rows, 2 synthetic per real row
    assert values.shape == (60, 3, 32, 32) and meta["ratio"] == 2.0 and meta["model"] == "e2e-blobs/1"
    assert np.bincount(labels[synthetic]).tolist() == [20, 20]
    assert not list(tmp_path.glob(".*partial"))

    only = tmp_path / "red_only.parquet"
    assert cli(["augment", "e2e-blobs@champion", str(pngs), "--out", str(only), "--classes", "red",
                "--synthetic-only", "--seed", "3"]) == 0
    table = pq.read_table(only)
    assert set(table.column("label").to_pylist()) == {"red"} and all(table.column("synthetic").to_pylist())
    assert table.num_rows == 14

    near = tmp_path / "near.parquet"  # variations of the real rows through the registered encoder.onnx
    assert (
        cli(["augment", "e2e-blobs", str(pngs), "--out", str(near), "--ratio", "1.5", "--spread", "0.25"])
        == 0
    )
    values, labels, synthetic, meta = read_augmentation(near)
    assert meta["spread"] == 0.25 and np.bincount(labels[synthetic]).tolist() == [21, 21]  # 14 real per class
    assert np.all(values[synthetic] == np.round(values[synthetic]))  # 8-bit pixels, as the real ones

    assert (
        cli(["augment", "e2e-blobs", str(pngs), "--out", str(tmp_path / "x.parquet"), "--classes", "green"])
        == 2
    )
    assert "unknown label(s) ['green']" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
