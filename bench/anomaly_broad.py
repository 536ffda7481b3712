"""A broad anomaly benchmark (ADBench-style): gen_factory's default score against PyOD's detectors.

Tables that ship inside packages (nothing is downloaded): sklearn's breast_cancer, iris and wine
(bundled with gen_factory), statsmodels' anes96 (label: vote), modechoice (the chosen mode of each
traveller) and grunfeld (firm), and gen_factory's procedural loans table. Each runs under two protocols
on one class c, the most frequent (ties: the last in label order), chosen by that rule alone:
- `one-normal`: c is normal, every other class is an anomaly;
- `one-anomalous`: every other class is normal, c is the anomaly.
Plus one-class digit cases (sklearn's 8x8 digits, one digit normal, the nine others anomalous).

Every case is a 70/30 stratified split (seed 0); every detector is fitted on the same normal
training rows and scores the same hold-out. gen_factory's model is trained as a user's is, with its
default settings: tables in-process (`train.local`: the Ray worker's networks, encoding and trainer;
the f-AnoGAN encoder; `export_bundle` to ONNX), digits through `train_and_register` (Ray Train, MLflow),
and scored by the exported ONNX scorer with the default method, without labels (the best over the
model's labels), as `genfactory score` does. PyOD 3.6.7: IForest (seeded), KNN, ECOD and AutoEncoder,
fitted on the standardised normal training rows.

Printed: AUROC / AUPRC per case, the f-AnoGAN's reconstruction R^2 on the normal training inputs
(under `export.bundle.MIN_RECONSTRUCTION_R2` the ensemble is the forest alone), the mean per
detector, each detector's rank per case and its mean rank, then `RESULT anomaly_bench cases=N
default_mean_auroc=X best_classic_mean_auroc=X worst_gap_vs_iforest=X` (worst gap: the largest
IForest - default AUROC over the cases).

Run: `python bench/anomaly_broad.py [--cases iris:one-anomalous,...] [--digits 3,8]` (needs statsmodels).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import header, temp_home

CLASSIC = ("iforest", "knn", "ecod", "autoencoder")
DETECTORS = ("default",) + CLASSIC
PROTOCOLS = ("one-normal", "one-anomalous")
BUNDLED = ("breast_cancer", "iris", "wine", "loans")
STATSMODELS = {"anes96": "vote", "modechoice": "mode", "grunfeld": "firm"}


def load_table(name: str):
    """A TableData of a bundled table or of a statsmodels dataset (shipped inside the package)."""
    from gen_factory.data import load_dataset
    from gen_factory.data.datasets import table_from_frame

    if name in BUNDLED:
        return load_dataset(name)
    import statsmodels.api as sm

    frame = getattr(sm.datasets, name).load_pandas().data
    if name == "modechoice":  # one row per traveller and mode: keep the mode each traveller chose
        frame = frame[frame.choice == 1].drop(columns=["individual", "choice"])
    if name == "grunfeld":  # the same years for every firm: the year says nothing about the firm
        frame = frame.drop(columns=["year"])
    label = STATSMODELS[name]
    frame[label] = frame[label].astype(str)
    return table_from_frame(frame.reset_index(drop=True), label, name=name)


def chosen_class(data) -> str:
    """The protocols' class: the most frequent label, ties to the last in label order."""
    counts = np.bincount(data.labels, minlength=len(data.label_names))
    return data.label_names[len(counts) - 1 - int(np.argmax(counts[::-1]))]


def table_cases() -> list[tuple[str, str, str]]:
    """(case name, dataset, protocol) for every table under both protocols."""
    return [(f"{d}:{p}", d, p) for d in (*BUNDLED, *STATSMODELS) for p in PROTOCOLS]


def normal_labels(data, protocol: str) -> list[str]:
    c = chosen_class(data)
    return [c] if protocol == "one-normal" else [n for n in data.label_names if n != c]


def default_scores_table(train, test) -> tuple[np.ndarray, float]:
    """Train as a user's model trains (default settings), export to ONNX, score `test` with the
    exported scorer's default method over the best label; also the card's reconstruction R^2."""
    from gen_factory.data.datasets import values_of
    from gen_factory.runtime import scoring

    with tempfile.TemporaryDirectory() as tmp:
        model = table_bundle(train, Path(tmp) / "bundle")
        return scoring.score(model, values_of(test)), model.card.ensemble.reconstruction_r2


def table_bundle(train, out: Path, epochs: int | None = None, name: str = "bench"):
    """A one-class model of `train` at the default settings (`epochs` if given), trained in this
    process with the pipeline's networks and trainer and exported to `out`; the opened bundle."""
    import torch

    from gen_factory.export.bundle import card_for, export_bundle
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.local import train_encoder, train_table

    recipe = resolve_hyper("table", len(train.labels), one_class=True, epochs=epochs)
    g, d, enc, spec, hyper = train_table(train, recipe.epochs, seed=0)
    x, labels = torch.from_numpy(enc.encode(train.features)), torch.from_numpy(train.labels)
    encoder, scales = train_encoder(g, d, spec, x, labels, recipe.encoder_epochs)
    card = card_for(train, spec, enc, model_name=name, dataset=train.name, loss=hyper.loss,
                    epochs=recipe.epochs, encoder_epochs=recipe.encoder_epochs, seed=0)
    export_bundle(g, d, encoder, scales, enc, card, out)
    return OnnxModel(out)


def default_scores_digit(digit: str, workers: int) -> tuple[np.ndarray, float]:
    """A one-class digit model through `train_and_register` (Ray Train, ONNX, MLflow), as
    `genfactory train digits --normal-label D` trains it; its scores on the hold-out."""
    from gen_factory import registry
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of
    from gen_factory.runtime import scoring
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.services.pipeline import TrainJob, train_and_register

    job = TrainJob("digits", model_name=f"broad-digits-{digit}", normal_labels=[digit], num_workers=workers)
    ref = train_and_register(job, log=lambda *_: None)["ref"]
    _, test = training_split(load_dataset("digits"), 0.3, 0, [digit])
    model = OnnxModel(registry.download(ref))
    return scoring.score(model, values_of(test)), model.card.ensemble.reconstruction_r2


def evaluate(train, test, normal: list[str], default: tuple[np.ndarray, float]) -> dict:
    """{detector: {auroc, auprc}} on the hold-out, anomalies = labels outside `normal` (`default`: the
    served scores and the model's reconstruction R^2, kept as `r2`)."""
    from gen_factory.data.datasets import values_of
    from gen_factory.evaluate.anomaly import detection_metrics, detector_scores

    is_anomaly = (~np.isin(np.asarray(test.label_names)[test.labels], normal)).astype(int)
    scores = {"default": default[0], **detector_scores(values_of(train), values_of(test), deep=True)}
    return {**{k: detection_metrics(scores[k], is_anomaly) for k in DETECTORS}, "r2": default[1]}


def run_table_case(dataset: str, protocol: str) -> tuple[dict, int]:
    from gen_factory.data import training_split

    data = load_table(dataset)
    normal = normal_labels(data, protocol)
    train, test = training_split(data, 0.3, 0, normal)
    return evaluate(train, test, normal, default_scores_table(train, test)), len(train.labels)


def run_digit_case(digit: str, workers: int) -> tuple[dict, int]:
    from gen_factory.data import load_dataset, training_split

    train, test = training_split(load_dataset("digits"), 0.3, 0, [digit])
    return evaluate(train, test, [digit], default_scores_digit(digit, workers)), len(train.labels)


def ranks(result: dict) -> dict[str, float]:
    """Rank of each detector by AUROC in one case (1 = best; ties share the mean rank)."""
    from scipy.stats import rankdata

    values = [-result[k]["auroc"] for k in DETECTORS]
    return dict(zip(DETECTORS, rankdata(values).tolist(), strict=True))


def print_row(name: str, rows: int, result: dict, seconds: float) -> None:
    cells = " | ".join(f"{result[k]['auroc']:.3f} / {result[k]['auprc']:.3f}" for k in DETECTORS)
    print(f"| {name} | {rows} | {cells} | {result['r2']:.3f} | {seconds:.0f} | {os.getloadavg()[0]:.1f} |",
          flush=True)


def summary(results: dict[str, dict]) -> None:
    """Means, mean ranks, the gap to IForest and the RESULT line."""
    mean = {k: float(np.mean([r[k]["auroc"] for r in results.values()])) for k in DETECTORS}
    auprc = {k: float(np.mean([r[k]["auprc"] for r in results.values()])) for k in DETECTORS}
    rank = {k: float(np.mean([ranks(r)[k] for r in results.values()])) for k in DETECTORS}
    print("\n| detector | mean AUROC | mean AUPRC | mean rank |\n|---|---|---|---|")
    for k in DETECTORS:
        print(f"| {k} | {mean[k]:.4f} | {auprc[k]:.4f} | {rank[k]:.2f} |")
    gaps = {n: r["iforest"]["auroc"] - r["default"]["auroc"] for n, r in results.items()}
    worst = max(gaps, key=gaps.get)
    print("\nrank per case (1 = best AUROC): " + "; ".join(
        f"{n} " + " ".join(f"{k}={v:g}" for k, v in ranks(r).items()) for n, r in results.items()))
    print(f"worst case against IForest: {worst} ({gaps[worst]:+.4f}); load {os.getloadavg()}")
    best = max(mean[k] for k in CLASSIC)
    print(f"RESULT anomaly_bench cases={len(results)} default_mean_auroc={mean['default']:.4f} "
          f"best_classic_mean_auroc={best:.4f} worst_gap_vs_iforest={gaps[worst]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated table case names (default: every table case)")
    parser.add_argument("--digits", default="3,8", help="normal digits of the digit cases ('' for none; "
                        "default 3,8: each trains ~3 min on Ray)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers per digit model")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # small MLPs: on a shared 2-core machine two threads mostly wait on each other
    temp_home("gf-bench-anomaly-broad-")
    chosen = [c for c in table_cases() if not args.cases or c[0] in args.cases.split(",")]
    digits = [d for d in args.digits.split(",") if d]
    print(header("gen_factory broad anomaly bench") + f"; load {os.getloadavg()}\n", flush=True)
    print("| case | normal train rows | " + " | ".join(f"{k} AUROC / AUPRC" for k in DETECTORS)
          + " | f-AnoGAN R² | s | load |\n|" + "---|" * (len(DETECTORS) + 5), flush=True)
    results = {}
    for name, dataset, protocol in chosen:
        started = time.time()
        results[name], rows = run_table_case(dataset, protocol)
        print_row(name, rows, results[name], time.time() - started)
    for digit in digits:
        started = time.time()
        results[f"digits:{digit}"], rows = run_digit_case(digit, args.workers)
        print_row(f"digits:{digit}", rows, results[f"digits:{digit}"], time.time() - started)
    summary(results)


if __name__ == "__main__":
    main()
