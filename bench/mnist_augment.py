"""Augmentation with controls on real MNIST (issue 18, part 2): does a GAN trained on a few labelled
images add class information a well-trained small CNN cannot get from those images alone?

Protocol, fixed before the full run:
- Regimes of 100 and 1,000 labelled real training images, 3 stratified random subsets each (seeds
  0, 1, 2: the first N/10 images of each digit in a seeded permutation of the 60k training images).
- A validation set of `--val` real training images (stratified, disjoint from the subset, the same
  seed's next images) chooses the yardstick's training length; the real 10k test set scores it.
- Yardstick (`gen_factory.evaluate.yardstick`): a small CNN trained in rounds of 100 steps of 64
  images (Adam 2e-3), scored on the validation set after each round; the best round's weights are
  tested. Standard augmentation: random shifts of up to 2 px and rotations of up to 10 degrees.
- Arms: `real_only` (no augmentation) and `real_standard` (standard augmentation) are the controls;
  `free` = real + `--ratio` x free GAN samples per class, and `spread` = real + as many variations
  of the real images through the encoder (`--spread`), both with standard augmentation too.
- The GAN is trained on the subset only, through the product path: the subset written as an NPZ,
  `train_and_register(TrainJob(npz, ...))` (Ray Train, 2 workers, the default variant) with a
  fixed budget per regime (`BUDGET`: epochs, batch, hold-out, encoder epochs), then the registered
  model's `augment_dataset` writes the real + synthetic Parquet the yardstick reads.
- Uplift = accuracy(free) - the better control, per subset; mean with a 95 % t-interval over the
  subsets. `RESULT augment images=N subsets=K uplift=X ci_low=X ci_high=X best_control=X` per N
  (the headline arm is `free`; `spread_uplift` is the second arm's mean).

Run: `GENFACTORY_MNIST=DIR python bench/mnist_augment.py [--images 100,1000] [--tiny]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import header, temp_home

# GAN budget per regime, fixed before any accuracy was seen: about 400 generator steps (~2.5 min on 2
# shared cores). Steps, not images, cost here: a first try at batch 16 ran 3.4 steps/s (54 images/s)
# and would have taken 12 min per GAN, so it was stopped and the batches raised.
# (epochs, global batch, pipeline hold-out, encoder epochs)
BUDGET = {100: (200, 32, 0.1, 50), 1000: (30, 64, 0.05, 8)}
RATIO, SPREAD, VAL, SUBSETS = 2.0, 0.25, 2000, 3
ARMS = ("real_only", "real_standard", "free", "spread")


def pick(labels: np.ndarray, n: int, val: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(subset, validation) row numbers: per class, the first n/classes then the next val/classes of a
    seeded permutation of that class's rows."""
    rng = np.random.default_rng(seed)
    sub, held = [], []
    for k in range(classes):
        rows = rng.permutation(np.flatnonzero(labels == k))
        sub.append(rows[: n // classes])
        held.append(rows[n // classes : n // classes + val // classes])
    return np.sort(np.concatenate(sub)), np.sort(np.concatenate(held))


def run_subset(train, test, n: int, seed: int, args: argparse.Namespace, work: Path) -> dict:
    """Train the subset's GAN, write its augmented sets, run the four arms; accuracy per arm + timings."""
    from gen_factory.evaluate.yardstick import Yardstick
    from gen_factory.services.augmentation import augment_dataset, read_augmentation
    from gen_factory.services.pipeline import TrainJob, train_and_register

    sub, val = pick(train.labels, n, args.val, seed)
    x, y = train.images[sub], train.labels[sub]
    npz = work / f"mnist_{n}_{seed}.npz"
    np.savez_compressed(npz, images=x.astype(np.uint8), labels=y, label_names=np.array(train.label_names))
    epochs, batch, holdout, encoder_epochs = args.budget[n]
    started = time.time()
    name = f"mnist-augment-{n}-{seed}"
    out = train_and_register(
        TrainJob(
            str(npz),
            model_name=name,
            epochs=epochs,
            batch_size=batch,
            holdout=holdout,
            encoder_epochs=encoder_epochs,
            seed=seed,
            num_workers=2,
        ),
        log=lambda *_: None,
    )
    gan_s = time.time() - started
    sets = {}
    for arm, spread in (("free", None), ("spread", args.spread)):
        path = work / f"{name}-{arm}.parquet"
        augment_dataset(name, str(npz), path, ratio=args.ratio, seed=seed, spread=spread)
        sets[arm] = read_augmentation(path)[:2]
    stick = Yardstick(
        train.images[val],
        train.labels[val],
        test.images,
        test.labels,
        len(train.label_names),
        float(x.min()),
        float(x.max()),
        seed,
        rounds=args.rounds,
    )
    started = time.time()
    arms = {"real_only": stick.run(x, y, augment=False), "real_standard": stick.run(x, y, augment=True)}
    arms.update({arm: stick.run(*sets[arm], augment=True) for arm in ("free", "spread")})
    return {
        "arms": arms,
        "gan_rows": int(out["rows_trained"]),
        "gan_s": gan_s,
        "yardstick_s": time.time() - started,
        "gan_cas": out["metrics"].get("cas", float("nan")),
    }


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its two-sided 95 % Student-t interval."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="100,1000", help="labelled real images per regime")
    parser.add_argument("--subsets", type=int, default=SUBSETS, help=f"random subsets per regime ({SUBSETS})")
    parser.add_argument("--val", type=int, default=VAL, help=f"validation images ({VAL})")
    parser.add_argument("--ratio", type=float, default=RATIO, help=f"synthetic per real image ({RATIO:g})")
    parser.add_argument("--spread", type=float, default=SPREAD, help=f"the second arm's spread ({SPREAD:g})")
    parser.add_argument("--rounds", type=int, default=None, help="yardstick rounds of 100 steps (default 10)")
    parser.add_argument("--gan-epochs", type=int, help="GAN epochs for every regime (default: BUDGET's)")
    parser.add_argument("--encoder-epochs", type=int, help="encoder epochs, every regime (default: BUDGET's)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 100 images, 1 subset, 2 GAN epochs")
    args = parser.parse_args()
    args.budget = {
        n: (args.gan_epochs or e, b, h, args.encoder_epochs or enc) for n, (e, b, h, enc) in BUDGET.items()
    }
    if args.tiny:
        args.images, args.subsets, args.val, args.rounds = "100", 1, 200, 2
        args.budget[100] = (2, 16, 0.1, 1)
    if args.rounds is None:
        from gen_factory.evaluate.yardstick import ROUNDS

        args.rounds = ROUNDS
    temp_home("gf-bench-mnist-augment-")
    work = Path(tempfile.mkdtemp(prefix="gf-mnist-augment-"))
    from gen_factory.data import load_dataset
    from gen_factory.data.mnist import write_npz
    from gen_factory.evaluate.yardstick import best_control

    train_npz, test_npz = write_npz(Path(os.environ.get("GENFACTORY_MNIST", "data/mnist")))
    train, test = load_dataset(str(train_npz)), load_dataset(str(test_npz))
    print(
        header("gen_factory MNIST augmentation bench, with controls") + f"; load {os.getloadavg()}",
        flush=True,
    )
    print(
        f"validation {args.val} real training images, test {len(test.labels)}; yardstick {args.rounds} "
        f"rounds of 100 steps; ratio {args.ratio:g}, spread {args.spread:g}; GAN budgets (epochs, batch, "
        f"hold-out, encoder epochs): {args.budget}\n",
        flush=True,
    )
    print(
        "| images | subset | " + " | ".join(ARMS) + " | best rounds | uplift free | uplift spread | GAN rows "
        "| GAN CAS (SVC) | GAN s | yardstick s | load |\n|" + "---|" * (len(ARMS) + 10),
        flush=True,
    )
    results = {}
    for n in [int(v) for v in args.images.split(",")]:
        for seed in range(args.subsets):
            r = run_subset(train, test, n, seed, args, work)
            a = r["arms"]
            control = a[best_control(a)].accuracy
            results[n, seed] = {**{k: a[k].accuracy for k in ARMS}, "control": control}
            print(
                f"| {n} | {seed} | "
                + " | ".join(f"{a[k].accuracy:.4f}" for k in ARMS)
                + " | "
                + "/".join(str(a[k].best_round) for k in ARMS)
                + f" | {a['free'].accuracy - control:+.4f} | {a['spread'].accuracy - control:+.4f} | "
                f"{r['gan_rows']} | {r['gan_cas']:.4f} | {r['gan_s']:.0f} | {r['yardstick_s']:.0f} | "
                f"{os.getloadavg()[0]:.2f} |",
                flush=True,
            )
    summary(results)
    print(f"load at the end {os.getloadavg()}", flush=True)


def summary(results: dict) -> None:
    """Mean per arm and regime, the uplift intervals and the RESULT lines."""
    lines = []
    print(
        "\n| images | subsets | "
        + " | ".join(f"{k} mean" for k in ARMS)
        + " | best control mean | uplift free (95 % CI) | uplift spread (95 % CI) |\n|"
        + "---|" * (len(ARMS) + 5)
    )
    for n in sorted({k[0] for k in results}):
        rows = [v for k, v in results.items() if k[0] == n]
        means = {k: float(np.mean([r[k] for r in rows])) for k in (*ARMS, "control")}
        free = t_interval([r["free"] - r["control"] for r in rows])
        spread = t_interval([r["spread"] - r["control"] for r in rows])
        print(
            f"| {n} | {len(rows)} | "
            + " | ".join(f"{means[k]:.4f}" for k in ARMS)
            + f" | {means['control']:.4f} | {free[0]:+.4f} [{free[1]:+.4f}, {free[2]:+.4f}] | "
            f"{spread[0]:+.4f} [{spread[1]:+.4f}, {spread[2]:+.4f}] |"
        )
        lines.append(
            f"RESULT augment images={n} subsets={len(rows)} uplift={free[0]:.4f} ci_low={free[1]:.4f} "
            f"ci_high={free[2]:.4f} best_control={means['control']:.4f} spread_uplift={spread[0]:.4f} "
            f"spread_ci_low={spread[1]:.4f} spread_ci_high={spread[2]:.4f}"
        )
    print("\n" + "\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
