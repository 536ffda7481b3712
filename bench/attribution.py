"""Attribution bench: does the scorer's per-column contribution (per-pixel map) point at what was broken?

Tables: every bundled table, a model trained in-process with its default settings (`train.local`, the
f-AnoGAN encoder, `export_bundle` to ONNX, as bench/anomaly_broad.py trains its table cases) on a 70/30
stratified split (seed 0), every label normal. Into each held-out row, COPIES times, one column picked
at random is broken: a continuous one shifted by SIGMA standard deviations of its training values (sign
at random; whole-number columns rounded), a categorical one swapped to another category at random.
On a heavy-tailed column 4 sd can stay inside the bulk of the training values (loans' amount reaches
15 sd), so two controls: a marginal-rank oracle (the column whose value is rarest in its training
column, by exact tail share: the best any per-column method does) and the hit rate on the shifted
rows whose new value is rarer than RARE.
The exported scorer (default request: no labels, best label) gives each row's contributions; a hit is
the broken column among the top 1 / top 3. Baseline: each column's z-score against the training rows
(|x - mean| / std; a category's indicator, sqrt((1 - p) / p) for a category of training share p).

Images: sklearn's 8x8 digits through `train_and_register` (Ray Train, MLflow, every digit a label;
`--in-process`: the same recipe's networks and trainer without Ray),
a PATCH x PATCH patch of each held-out image inverted (16 - x) at a random place; pixel AUROC of the
scorer's map against the patch mask over all pixels of all images, beside the same for the raw
absolute difference to the training mean image (a map that needs no model). The served map is
smoothed over 3x3 neighbourhoods (`export.bundle.PIXEL_SMOOTHING`); in-process, the same networks are
also exported without smoothing and with a flat 3x3 box (controls), every map is measured on patches
of other sides too (PATCH_CONTROLS: a smoothing matched to 3x3 patches only would fall behind on
them) and scored against each image's true label besides its best one.

Prints per table the hit rates on shifted and swapped columns, then
`RESULT attribution table=T top1_4sigma=X top3_4sigma=X zscore_top1=X` per table (shifted columns:
the 4-sigma rows) and `RESULT pixel_attribution dataset=digits auroc=X`.

Real-size images (`--mnist-bundle DIR`): a registered MNIST model (every digit a label, as
`bench/image_quality.py mnist` trains and registers it; DIR its downloaded model directory) on the
first `--mnist-images` of the real 10k test set, patches of 3x3 and of 5, 7 and 10 pixels a side (the
digits' 3x3 of 8x8 scaled to 28x28 is ~10x10) inverted (255 - x); `RESULT pixel_attribution
dataset=mnist auroc=X` at 3x3.

Run: `python bench/attribution.py [--tables iris,wine] [--no-images] [--image-epochs N]
[--mnist-bundle DIR]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from anomaly_broad import table_bundle
from common import header, temp_home

SIGMA = 4.0
COPIES = 4  # broken copies of each held-out row, each with its own random column
PATCH = 3  # side of the image patch, in pixels
PATCH_CONTROLS = (1, 2, 4)  # other sides, measured besides
SMOOTHING_CONTROLS = {"unsmoothed": None, "box 3x3": (1.0, 1.0, 1.0)}  # exported besides, in-process
PIXEL_MAX = 16.0  # digits' pixel range is 0..16
MNIST_MAX, MNIST_SIDES = 255.0, (5, 7, 10)  # MNIST's pixel range; its patch sides besides PATCH
RARE = 0.01  # a shifted value is rare when fewer than this share of training values are as extreme


def inject(values: np.ndarray, specs: list, train: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """COPIES broken copies of each row of `values` and the column broken in each: one present value,
    a continuous one shifted by SIGMA training stds (whole numbers stay whole), a category swapped."""
    std = np.nanstd(train, axis=0)
    rows = np.repeat(values, COPIES, axis=0)
    target = np.empty(len(rows), dtype=np.int64)
    eligible = np.array([s.kind == "categorical" and len(s.categories) > 1
                         or s.kind == "continuous" and std[j] > 0 for j, s in enumerate(specs)])
    for i, row in enumerate(rows):
        j = int(rng.choice(np.flatnonzero(eligible & ~np.isnan(row))))
        spec, target[i] = specs[j], j
        if spec.kind == "categorical":
            others = [c for c in range(len(spec.categories)) if c != int(row[j])]
            row[j] = rng.choice(others)
        else:
            row[j] += rng.choice([-1.0, 1.0]) * SIGMA * std[j]
            row[j] = np.round(row[j]) if spec.integer else row[j]
    return rows, target


def zscores(values: np.ndarray, specs: list, train: np.ndarray) -> np.ndarray:
    """Per-column z-scores of `values` against the training rows (missing: 0)."""
    out = np.zeros(values.shape, dtype=np.float64)
    for j, spec in enumerate(specs):
        column = values[:, j]
        if spec.kind == "categorical":
            seen = train[:, j][~np.isnan(train[:, j])].astype(int)
            share = np.bincount(seen, minlength=len(spec.categories)) / max(1, len(seen))
            p = share[np.nan_to_num(column, nan=0).astype(int)]
            out[:, j] = np.sqrt((1 - p) / np.maximum(p, 1e-3))
        else:
            mean, std = np.nanmean(train[:, j]), np.nanstd(train[:, j])
            out[:, j] = np.abs(column - mean) / (std or 1.0)
    return np.nan_to_num(out)


def tail_probability(values: np.ndarray, specs: list, train: np.ndarray) -> np.ndarray:
    """Per value, the share of training values at least as extreme (two-sided; a category: its share;
    missing: 1). Ranking a row's columns by it is the best any per-column (marginal) method can do."""
    out = np.ones(values.shape)
    for j, spec in enumerate(specs):
        seen, v = train[:, j][~np.isnan(train[:, j])], values[:, j]
        if spec.kind == "categorical":
            share = np.bincount(seen.astype(int), minlength=len(spec.categories)) / max(1, len(seen))
            tail = share[np.nan_to_num(v).astype(int)]
        else:
            ordered = np.sort(seen)
            below = np.searchsorted(ordered, v, side="right") / len(ordered)
            above = 1 - np.searchsorted(ordered, v, side="left") / len(ordered)
            tail = np.minimum(1.0, 2 * np.minimum(below, above))
        out[:, j] = np.where(np.isnan(v), 1.0, tail)
    return out


def hits(contributions: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Whether the broken column is among each row's k largest contributions (ties: the earlier)."""
    from gen_factory.runtime.scoring import top_k_indices

    return (top_k_indices(contributions, k)[0] == target[:, None]).any(axis=1)


def run_table(name: str, epochs: int | None, seed: int = 0) -> dict:
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of
    from gen_factory.runtime import scoring

    train, test = training_split(load_dataset(name), 0.3, 0)
    with tempfile.TemporaryDirectory() as tmp:
        model = table_bundle(train, Path(tmp) / "bundle", epochs, "bench-attribution")
        specs, reference = model.card.encoding.columns, values_of(train)
        broken, target = inject(values_of(test), specs, reference, np.random.default_rng(seed))
        contributions = scoring.score_attributed(model, broken).contributions
        clean = scoring.score_attributed(model, values_of(test)).contributions
    shifted = np.array([specs[j].kind == "continuous" for j in target])
    baseline = zscores(broken, specs, reference)
    tails = tail_probability(broken, specs, reference)
    rare = shifted & (tails[np.arange(len(target)), target] < RARE)
    rate = {f"{what}_top{k}": float(hits(c, target, k)[mask].mean()) if mask.any() else float("nan")
            for what, mask in (("shift", shifted), ("swap", ~shifted))
            for c, k in ((contributions, 1), (contributions, 3))}
    rate.update({f"{what}_zscore_top1": float(hits(baseline, target, 1)[mask].mean()) if mask.any()
                 else float("nan") for what, mask in (("shift", shifted), ("swap", ~shifted))})
    rate.update(shift_marginal_top1=float(hits(-np.log(tails + 1e-6), target, 1)[shifted].mean()),
                rare_top1=float(hits(contributions, target, 1)[rare].mean()), rare=int(rare.sum()))
    rate.update(rows=int(len(target)), shifted=int(shifted.sum()), columns=len(specs),
                clean_max=float(np.median(clean.max(axis=1))),
                broken_max=float(np.median(contributions.max(axis=1))))
    return rate


def digits_on_ray(workers: int, epochs: int | None) -> dict:
    """The digits model as `genfactory train digits` trains it (Ray Train, MLflow, its split)."""
    from gen_factory import registry
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.services.pipeline import TrainJob, train_and_register

    job = TrainJob("digits", model_name="attribution-digits", num_workers=workers, epochs=epochs)
    return {"served": OnnxModel(registry.download(train_and_register(job, log=lambda *_: None)["ref"]))}


def digits_in_process(train, out: Path, epochs: int | None) -> dict:
    """The same recipe's networks and GANTrainer in this process, the last EMA generator (no
    checkpoint selection): for a machine too loaded to start Ray. Exported as served and with each of
    SMOOTHING_CONTROLS' attribution smoothings: {name: OnnxModel}."""
    import torch

    from gen_factory.data.transform import fit_encoding
    from gen_factory.export.bundle import PIXEL_SMOOTHING, card_for, export_bundle
    from gen_factory.models import build_models, spec_for
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.local import train_encoder
    from gen_factory.train.loop import GANTrainer

    torch.manual_seed(0)
    recipe = resolve_hyper("image", len(train.labels), epochs=epochs)
    enc = fit_encoding(train)
    spec = spec_for(train, enc, **recipe.networks)
    trainer = GANTrainer(*build_models(spec), recipe.hyper, spec.noise_dim)
    x, y = torch.from_numpy(enc.encode(train.images)), torch.from_numpy(train.labels)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True,
                                         drop_last=True)
    for _ in range(recipe.epochs):
        trainer.epoch(loader)
    g, d = trainer.g_ema.eval(), trainer.d.eval()
    encoder, scales = train_encoder(g, d, spec, x, y, recipe.encoder_epochs)
    card = card_for(train, spec, enc, model_name="bench-attribution-digits", dataset="digits",
                    loss=recipe.hyper.loss, epochs=recipe.epochs, seed=0)
    models = {}
    for name, smoothing in {"served": PIXEL_SMOOTHING, **SMOOTHING_CONTROLS}.items():
        where = out / name.replace(" ", "-")
        export_bundle(g, d, encoder, scales, enc, card, where, pixel_smoothing=smoothing)
        models[name] = OnnxModel(where)
    return models


def patched(images: np.ndarray, side: int, seed: int,
            pixel_max: float = PIXEL_MAX) -> tuple[np.ndarray, np.ndarray]:
    """`images` [n, C, H, W] with a side x side patch inverted (pixel_max - x) at a random place in
    each, and the patch mask per pixel [n, H * W]."""
    rng, mask = np.random.default_rng(seed), np.zeros(images.shape, dtype=bool)
    h, w = images.shape[2:]
    for i in range(len(images)):
        r, c = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        mask[i, :, r:r + side, c:c + side] = True
    return np.where(mask, pixel_max - images, images).astype(np.float32), mask[:, 0].reshape(len(images), -1)


def pixel_aurocs(models: dict, clean: np.ndarray, labels: np.ndarray, mean_image: np.ndarray,
                 sides: tuple[int, ...], pixel_max: float, seed: int = 0) -> dict:
    """{side: {map name: pixel AUROC}}: each model's map (best label; for the first side also the
    true label's) and the mean-image difference, on `clean` images with an inverted patch."""
    from sklearn.metrics import roc_auc_score

    from gen_factory.runtime import scoring

    rows = {}
    for side in sides:
        images, truth = patched(clean, side, seed, pixel_max)
        plain = np.abs(images - mean_image)[:, 0].reshape(len(images), -1)
        row = {"mean image": roc_auc_score(truth.ravel(), plain.ravel())}
        for name, model in models.items():
            maps = scoring.score_attributed(model, images).contributions
            row[name] = roc_auc_score(truth.ravel(), maps.ravel())
            if side == sides[0]:
                given = scoring.score_attributed(model, images, labels.astype(np.int64)).contributions
                row[f"{name}, true label"] = roc_auc_score(truth.ravel(), given.ravel())
        rows[side] = row
    return rows


def run_images(workers: int, epochs: int | None, in_process: bool, seed: int = 0) -> dict:
    """Pixel AUROC of the map of a digits model on held-out digits with an inverted patch, per model
    variant (served; in-process also SMOOTHING_CONTROLS) and patch side, best label and true label."""
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of

    train, test = training_split(load_dataset("digits"), 0.3, 0)
    tmp = tempfile.mkdtemp(prefix="gf-attribution-digits-")
    models = digits_in_process(train, Path(tmp), epochs) if in_process else digits_on_ray(workers, epochs)
    rows = pixel_aurocs(models, values_of(test), test.labels, values_of(train).mean(axis=0),
                        (PATCH, *PATCH_CONTROLS), PIXEL_MAX, seed)
    return {"dataset": "digits", "auroc": float(rows[PATCH]["served"]), "by_patch": rows,
            "images": len(test.labels)}


def run_mnist(bundle: str, images: int, seed: int = 0) -> dict:
    """The same on real-size images: a registered MNIST model (`bundle`, a downloaded model directory,
    e.g. from `bench/image_quality.py mnist`) on the first `images` of the real 10k test set, patches
    of PATCH and of MNIST_SIDES (the digits' 3x3 scaled to 28x28 is ~10x10)."""
    from gen_factory.data import load_dataset
    from gen_factory.data.datasets import values_of
    from gen_factory.data.mnist import write_npz
    from gen_factory.runtime.onnx_model import OnnxModel

    train_npz, test_npz = write_npz(Path(os.environ.get("GENFACTORY_MNIST", "data/mnist")))
    test, train = load_dataset(str(test_npz)), load_dataset(str(train_npz))
    clean, labels = values_of(test)[:images], test.labels[:images]
    rows = pixel_aurocs({"served": OnnxModel(bundle)}, clean, labels, values_of(train).mean(axis=0),
                        (PATCH, *MNIST_SIDES), MNIST_MAX, seed)
    return {"dataset": "mnist", "auroc": float(rows[PATCH]["served"]), "by_patch": rows, "images": len(clean)}


def print_images(image: dict, seconds: float) -> None:
    print(f"\n{image['dataset']}: {image['images']} held-out images with an inverted patch, pixel AUROC "
          f"({seconds:.0f} s):\n", flush=True)
    names = list(next(iter(image["by_patch"].values())))
    print("| patch | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for side, row in image["by_patch"].items():
        cells = [f"{row[n]:.4f}" if n in row else "" for n in names]
        print(f"| {side}x{side} | " + " | ".join(cells) + " |")


def main() -> None:
    from gen_factory.data.datasets import BUNDLED_TABLES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(BUNDLED_TABLES), help="comma-separated bundled tables")
    parser.add_argument("--epochs", type=int, help="GAN epochs of the table models (default: the recipe's)")
    parser.add_argument("--no-images", action="store_true", help="skip the digits model (Ray, minutes)")
    parser.add_argument("--image-epochs", type=int, help="GAN epochs of the digits model (default: recipe)")
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers of the digits model")
    parser.add_argument("--in-process", action="store_true", help="train the digits model without Ray "
                        "(the same recipe and trainer, no checkpoint selection): for a machine too loaded "
                        "for Ray")
    parser.add_argument("--mnist-bundle", help="also measure a registered MNIST model's maps (a model "
                        "directory; the data as bench/image_quality.py finds it: GENFACTORY_MNIST)")
    parser.add_argument("--mnist-images", type=int, default=2000, help="MNIST test images to patch")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # small MLPs on a shared 2-core machine
    temp_home("gf-bench-attribution-")
    print(header("gen_factory attribution bench") + f"; load {os.getloadavg()}\n", flush=True)
    print("| table | broken rows (shifted) | columns | top-1 / top-3 shifted | z-score top-1 shifted | "
          "marginal-rank top-1 shifted | top-1 shifted past 1 % tail (rows) | top-1 / top-3 swapped | "
          "z-score top-1 swapped | median max contribution clean / broken | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results = {}
    for name in [t for t in args.tables.split(",") if t]:
        started = time.time()
        r = results[name] = run_table(name, args.epochs)
        print(f"| {name} | {r['rows']} ({r['shifted']}) | {r['columns']} | {r['shift_top1']:.3f} / "
              f"{r['shift_top3']:.3f} | {r['shift_zscore_top1']:.3f} | {r['shift_marginal_top1']:.3f} | "
              f"{r['rare_top1']:.3f} ({r['rare']}) | {r['swap_top1']:.3f} / "
              f"{r['swap_top3']:.3f} | {r['swap_zscore_top1']:.3f} | {r['clean_max']:.2f} / "
              f"{r['broken_max']:.2f} | {time.time() - started:.0f} |", flush=True)
    images = []
    if not args.no_images:
        started = time.time()
        images.append(run_images(args.workers, args.image_epochs, args.in_process))
        print_images(images[-1], time.time() - started)
    if args.mnist_bundle:
        started = time.time()
        images.append(run_mnist(args.mnist_bundle, args.mnist_images))
        print_images(images[-1], time.time() - started)
    for name, r in results.items():
        print(f"RESULT attribution table={name} top1_4sigma={r['shift_top1']:.4f} "
              f"top3_4sigma={r['shift_top3']:.4f} zscore_top1={r['shift_zscore_top1']:.4f}")
    for image in images:
        print(f"RESULT pixel_attribution dataset={image['dataset']} auroc={image['auroc']:.4f}")

if __name__ == "__main__":
    main()
