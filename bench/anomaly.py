"""Anomaly scores of one-class models against the classic detectors, and synthetic vs real normal data.

Cases, each a 70/30 stratified split (seed 0) with a model trained through the pipeline
(`genfactory train DATASET --normal-label L`: Ray Train, f-AnoGAN encoder, ONNX export, MLflow) on
the normal training rows only:
- breast_cancer, benign normal, malignant the anomaly;
- digits, one digit normal and the nine others anomalous, for each of the ten digits.

Printed per case: AUROC / AUPRC on the real hold-out of each gen_factory score (from the exported
ONNX scorer, as the model card records it) next to PyOD's IsolationForest, ECOD and KNN fitted on
the same normal training rows (standardised), and the baseline comparison: the same detectors
fitted on the model's synthetic normal rows instead (AUROC loss against real).

Goals (issue 5): the best gen_factory score >= IsolationForest on the mean over the cases; detectors
fitted on synthetic data lose <= 0.02 AUROC against fitted on real.

Run: `python bench/anomaly.py [--cases breast_cancer,digits:3] [--workers 1]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import header, temp_home

DETECTORS = ("iforest", "ecod", "knn")


def cases() -> list[tuple[str, str, str]]:
    """(case name, dataset, normal label)."""
    return [("breast_cancer", "breast_cancer", "benign")] + [
        (f"digits:{d}", "digits", str(d)) for d in range(10)
    ]


def run_case(name: str, dataset: str, normal: str, workers: int, variant: str | None = None) -> dict:
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of
    from gen_factory.evaluate.anomaly import detection_metrics, detector_scores
    from gen_factory.services.pipeline import TrainJob, train_and_register

    started = time.time()
    result = train_and_register(
        TrainJob(
            dataset,
            model_name=f"bench-anomaly-{name.replace(':', '-')}",
            normal_labels=[normal],
            num_workers=workers,
            variant=variant if dataset == "digits" else None,
        ),
        log=lambda *_: None,
    )
    seconds = time.time() - started
    train, test = training_split(load_dataset(dataset), 0.3, 0, [normal])
    is_anomaly = (np.asarray(test.label_names)[test.labels] != normal).astype(int)
    classic = {
        k: detection_metrics(v, is_anomaly)
        for k, v in detector_scores(values_of(train), values_of(test)).items()
    }
    info = result["anomaly"]
    return {"scores": info["holdout"], "classic": classic, "baseline": info["baseline"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all eleven)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers per model (default: 2)")
    parser.add_argument(
        "--variant", help="image GAN variant of the digits cases (default: the one-class default)"
    )
    args = parser.parse_args()
    temp_home("gf-bench-anomaly-")
    chosen = [c for c in cases() if not args.cases or c[0] in args.cases.split(",")]
    print(header("gen_factory anomaly bench") + f", {args.workers} Ray Train worker(s)"
          + (f", digits variant {args.variant}" if args.variant else "") + "\n", flush=True)
    print("| case | fanogan AUROC / AUPRC | critic AUROC | IForest AUROC / AUPRC | ECOD | KNN | "
          "synthetic-vs-real AUROC loss (IF / ECOD / KNN) | train s |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    results = {}
    for name, dataset, normal in chosen:
        r = results[name] = run_case(name, dataset, normal, args.workers, args.variant)
        s, c, b = r["scores"], r["classic"], r["baseline"]
        print(
            f"| {name} | {s['fanogan']['auroc']:.3f} / {s['fanogan']['auprc']:.3f} | "
            f"{s['critic']['auroc']:.3f} | "
            f"{c['iforest']['auroc']:.3f} / {c['iforest']['auprc']:.3f} | {c['ecod']['auroc']:.3f} | "
            f"{c['knn']['auroc']:.3f} | "
            + " / ".join(f"{b[d]['loss']:+.3f}" for d in DETECTORS)
            + f" | {r['seconds']:.0f} |",
            flush=True,
        )
    def mean(*keys: str) -> float:
        """The mean over cases of results[case][keys[0]][keys[1]]..."""
        def pick(r: dict):
            for key in keys:
                r = r[key]
            return r
        return float(np.mean([pick(r) for r in results.values()]))

    print("\nmean over cases:")
    for method in ("fanogan", "critic"):
        print(f"  gen_factory {method:<8} AUROC {mean('scores', method, 'auroc'):.4f}  "
              f"AUPRC {mean('scores', method, 'auprc'):.4f}")
    for d in DETECTORS:
        print(f"  {d:<20} AUROC {mean('classic', d, 'auroc'):.4f}  "
              f"AUPRC {mean('classic', d, 'auprc'):.4f}")
    for d in DETECTORS:
        print(f"  {d} fitted on synthetic: AUROC {mean('baseline', d, 'synthetic'):.4f} vs real "
              f"{mean('baseline', d, 'real'):.4f} (loss {mean('baseline', d, 'loss'):+.4f})")
    best = max(mean("scores", m, "auroc") for m in ("fanogan", "critic"))
    print(
        f"\ngoal 1: best gen_factory score {best:.4f} vs IsolationForest "
        f"{mean('classic', 'iforest', 'auroc'):.4f}"
    )
    print(
        "goal 2: worst mean loss synthetic vs real "
        f"{max(mean('baseline', d, 'loss') for d in DETECTORS):+.4f} "
        "(goal <= 0.02)"
    )


if __name__ == "__main__":
    main()
