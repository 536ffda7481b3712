"""`genfactory demo` / `make demo`: the whole flow on the embedded defaults, end to end.

Trains a conditional GAN on digits (images) and on breast_cancer (a table) with Ray Train,
registers both in MLflow as @champion, serves them with Ray Serve, pulls a labelled Parquet
dataset of each over HTTP, and scores real and perturbed inputs over HTTP.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq

from gen_factory import client, settings
from gen_factory.data import load_dataset, split
from gen_factory.services.pipeline import TrainJob, train_and_register

MODELS = (("digits", "digits-cgan"), ("breast_cancer", "breast-cancer-cgan"))


def run_demo(port: int = 8000, workers: int = 2, keep_serving: bool = False) -> dict:
    from serving.app import direct_url, start

    started = time.time()
    home = settings.data_dir()
    print(f"[demo] project data directory: {home}")
    for dataset, name in MODELS:
        train_and_register(TrainJob(dataset, model_name=name, num_workers=workers))

    url = start(port=port)
    direct = direct_url()
    print(
        f"[demo] API up at {url} (docs: {url}/docs)"
        + (f"; the API replica directly: {direct}" if direct else "")
    )
    outputs = {}
    for dataset, name in MODELS:
        out = home / "datasets" / f"{name}-100-per-label.parquet"
        pulled = client.pull(url, f"{name}@{settings.DEFAULT_ALIAS}", out, rows_per_label=100, seed=0)
        table = pq.read_table(out)
        counts = table.column("label").to_pandas().value_counts().sort_index().to_dict()
        print(
            f"[demo] pulled {pulled['rows']} rows of {name} v{pulled['version']} -> {out} (rows per label: "
            f"{counts})"
        )
        outputs[name] = {"parquet": str(out), "scores": _score_demo(url, dataset, name)}

    print(f"\n[demo] done in {time.time() - started:.0f}s")
    print(f"  datasets:     {home / 'datasets'}")
    print(
        f"  MLflow store: {settings.tracking_uri()}  (browse: mlflow ui --backend-store-uri "
        f"{settings.tracking_uri()})"
    )
    print(
        f"  API docs:     {url}/docs"
        + ("" if keep_serving else "  (stopped now; `genfactory serve` starts it again)")
    )
    if keep_serving:
        print("[demo] serving until Ctrl-C")
        _wait_forever()
    return outputs


def _score_demo(url: str, dataset: str, name: str, n: int = 5) -> dict:
    """Score n real held-out inputs and n perturbed copies; perturbed ones should score higher."""
    data = load_dataset(dataset)
    _, holdout = split(data)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(holdout.labels), n, replace=False)
    if holdout.kind == "table":
        real = holdout.features[pick]
        perturbed = real + 4.0 * holdout.features.std(axis=0) * rng.choice([-1.0, 1.0], size=real.shape)
        payload = lambda x: {"rows": x.tolist()}  # noqa: E731
    else:
        real = holdout.images[pick]
        perturbed = rng.uniform(holdout.images.min(), holdout.images.max(), size=real.shape).astype(
            np.float32
        )
        payload = lambda x: {"images": x}  # noqa: E731
    real_res = client.score(url, f"{name}@{settings.DEFAULT_ALIAS}", **payload(real))
    bad_res = client.score(url, f"{name}@{settings.DEFAULT_ALIAS}", **payload(perturbed))
    print(f"[demo] {name} {real_res['method']} anomaly scores (threshold {real_res['threshold']:.2f})  "
          f"real: {np.round(real_res['scores'], 2).tolist()} flagged {sum(real_res['is_anomaly'])}/{n}  "
          f"perturbed: {np.round(bad_res['scores'], 2).tolist()} flagged {sum(bad_res['is_anomaly'])}/{n}")
    return {"real": real_res["scores"], "perturbed": bad_res["scores"]}


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
