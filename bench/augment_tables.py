"""Rare-class augmentation of tables, against what users reach for instead.

Binary tasks from packaged tables, the rare class subsampled to 5 % and to 1 % of the training rows:
breast_cancer (malignant; numbers only), customers (churn = yes; categorical columns), loans
(outcome = default against late and repaid; categorical columns, a datetime, a 300-value category)
and clinic (the user-shaped breast_cancer of `data.procedural.user_shaped`: a string column tied to
the label, integers, missing values, an outlier). Each task has one fixed real test set (a stratified
30 %, seed 0); the training pool is the other 70 %, and per subsample seed (5) the rare rows kept are
drawn anew.

Arms, each adding rare rows until both classes are as large (the controls and the product alike):
real only; class weights; random oversampling; SMOTE (SMOTENC with categorical columns); ADASYN
(SMOTENC there too: it has no categorical form) - imbalanced-learn 0.14.2 (`evaluate.rare`); and the
product's model, trained on the subsample in this process with the pipeline's networks, recipe and
ONNX export (`train.local`, `export_bundle`), at its default epochs: free samples of the rare class
(`product_free`) and variations of the real rare rows through the f-AnoGAN encoder, spread 0.25
(`product_near`). Classifiers: gradient boosting (categories native), random forest, logistic
regression (one-hot, standardised); missing values at the training median / commonest code.

Per task, rate and arm: the rare class's average precision (AP), F1 and balanced accuracy, the mean
over the classifiers, then over the seeds with a 95 % t-interval. The product's better arm against
the best control (by mean AP): the per-seed difference and its 95 % interval.
`RESULT augment_table task=T rare_pct=P best_arm=A ap=X best_control=C control_ap=X diff_ci_low=X
diff_ci_high=X` per task and rate.

And SDV CTGAN (2.0, defaults, in its own venv `.venv-bench`: `make bench-venv`) fitted on the same
subsample, its rare rows drawn by its conditional sampling (`sdv_ctgan`; its failures counted).

Run: `python bench/augment_tables.py [--tasks breast_cancer,customers] [--seeds 5] [--rates 5,1]`
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import header

TASKS = {"breast_cancer": "malignant", "customers": "yes", "loans": "default", "clinic": "malignant"}
PRODUCT = ("product_free", "product_near")
SPREAD = 0.25
BENCH_PYTHON = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "python"
SDV = True  # `--no-sdv` leaves SDV CTGAN's arm out


def task_data(name: str):
    """A TableData of the task's table, its label the task's rare class or `other` (loans' `late` and
    `repaid` become `other`: every task is binary)."""
    from gen_factory.data.datasets import bundled_frame, table_from_frame
    from gen_factory.data.procedural import USER_SHAPED, user_shaped

    if name in USER_SHAPED:
        frame, label = user_shaped(name)
    else:
        frame, label, _ = bundled_frame(name)
    rare = TASKS[name]
    frame[label] = frame[label].where(frame[label] == rare, "other")
    return table_from_frame(frame, label, name=name)


def subsample(pool, rare: int, rate: float, seed: int):
    """Every majority row of `pool` and enough rare rows (at least 3) that they are `rate` of the result."""
    rng = np.random.default_rng(seed)
    major = np.flatnonzero(pool.labels != rare)
    n_rare = max(3, int(round(rate * len(major) / (1 - rate))))
    chosen = rng.choice(np.flatnonzero(pool.labels == rare), n_rare, replace=False)
    return pool.subset(np.sort(np.concatenate([major, chosen])))


def sdv_rows(train, rare: int, extra: int, seed: int, root: Path, model) -> np.ndarray | None:
    """SDV CTGAN's (defaults, its own venv) conditional rows of the rare class, in `model`'s codes; None
    where its conditional sampling fails or the venv is missing (`make bench-venv`)."""
    import json
    import subprocess

    import pandas as pd
    import pyarrow as pa

    from gen_factory.services.augmentation import model_codes

    if not BENCH_PYTHON.exists():
        return None
    frame = train.frame()
    csv, out = root / f"sdv_train_{seed}.csv", root / f"sdv_rows_{seed}.csv"
    frame.to_csv(csv, index=False)
    done = subprocess.run([str(BENCH_PYTHON), str(Path(__file__).with_name("sdv_runner.py")), "conditional",
                           str(csv), train.label_column, train.label_names[rare], str(extra), str(out),
                           str(seed)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failed"] or result["rows"] == 0:
        return None
    rows = pd.read_csv(out).astype({c: str for c in [*train.categories, train.label_column]})
    rows = rows.where(pd.read_csv(out).notna(), None)  # missing stays missing, not "nan"
    return model_codes(model, pa.Table.from_pandas(rows, preserve_index=False), str(out)).features


def product_rows(train, rare: int, extra: int, seed: int, root: Path) -> dict[str, np.ndarray]:
    """The product's extra rare rows (model codes), free and near the real rare rows; SDV CTGAN's
    conditional ones (`sdv_ctgan`) in the same codes where they could be drawn."""
    import torch

    from gen_factory.export.bundle import card_for, export_bundle
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.sampling import generate_arrays, generate_variations
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.local import train_encoder, train_table

    recipe = resolve_hyper("table", len(train.labels))
    g, d, enc, spec, hyper = train_table(train, recipe.epochs, seed=seed)
    x, labels = torch.from_numpy(enc.encode(train.features)), torch.from_numpy(train.labels)
    encoder, scales = train_encoder(g, d, spec, x, labels, recipe.encoder_epochs, seed=seed)
    card = card_for(train, spec, enc, model_name="bench", dataset=train.name, loss=hyper.loss,
                    epochs=recipe.epochs, encoder_epochs=recipe.encoder_epochs, seed=seed)
    export_bundle(g, d, encoder, scales, enc, card, root / f"m{seed}")
    model = OnnxModel(root / f"m{seed}", threads=1)
    counts = [extra if k == rare else 0 for k in range(len(train.label_names))]
    free, _ = generate_arrays(model, counts, seed)
    sources = np.resize(np.flatnonzero(train.labels == rare), extra)
    near, _ = generate_variations(model, train.features, train.labels, sources, SPREAD, seed)
    rows = {"product_free": free, "product_near": near}
    peer = sdv_rows(train, rare, extra, seed, root, model) if SDV else None
    return rows if peer is None else {**rows, "sdv_ctgan": peer}


def one_run(name: str, data, test, rare: int, rate: float, seed: int, root: Path) -> dict[str, dict]:
    """{arm: {metric: mean over the classifiers}} for one subsample."""
    from gen_factory.evaluate.rare import CLASSIFIERS, CONTROLS, rare_class_report

    train = subsample(data, rare, rate, seed)
    extra = int((train.labels != rare).sum() - (train.labels == rare).sum())
    categorical = np.array([c in train.categories for c in train.columns])
    synthetic = product_rows(train, rare, extra, seed, root)
    per: dict[str, list] = {}
    for clf in CLASSIFIERS:
        for i, arm in enumerate(synthetic):
            aug = (np.concatenate([train.features, synthetic[arm]]),
                   np.concatenate([train.labels, np.full(len(synthetic[arm]), rare)]))
            report = rare_class_report((train.features, train.labels), aug, (test.features, test.labels),
                                       categorical, rare, data.label_names[rare], seed, clf,
                                       controls=() if i else CONTROLS)
            for a, s in report.arms.items():
                per.setdefault(arm if a == "augmented" else a, []).append(
                    (s.ap, s.f1, s.balanced_accuracy))
    return {arm: dict(zip(("ap", "f1", "bal_acc"), np.mean(v, axis=0), strict=True))
            for arm, v in per.items()}


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, 95 % t-interval low, high) over seeds."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def summarise(name: str, rate: float, runs: list[dict]) -> str:
    from gen_factory.evaluate.rare import CONTROLS

    arms = list(dict.fromkeys(a for r in runs for a in r))  # SDV's arm is absent where it failed to sample
    failures = sum("sdv_ctgan" not in r for r in runs)
    print(f"\n### {name}, rare class at {rate * 100:g} % ({len(runs)} seeds; mean over the 3 classifiers)\n")
    print("| arm | AP (95 % CI) | F1 | balanced accuracy |\n|---|---|---|---|")
    mean_ap = {}
    for arm in arms:
        held = [r for r in runs if arm in r]
        ap = interval([r[arm]["ap"] for r in held])
        mean_ap[arm] = ap[0]
        f1, ba = (np.mean([r[arm][k] for r in held]) for k in ("f1", "bal_acc"))
        print(f"| {arm} | {ap[0]:.4f} ({ap[1]:.4f}-{ap[2]:.4f}) | {f1:.4f} | {ba:.4f} |")
    if SDV:
        print(f"\nSDV CTGAN's conditional sampling failed on {failures} of {len(runs)} seeds.")
    control = max(CONTROLS, key=lambda a: mean_ap[a])
    best = max(PRODUCT, key=lambda a: mean_ap[a])
    diff = interval([r[best]["ap"] - r[control]["ap"] for r in runs])
    return (f"RESULT augment_table task={name} rare_pct={rate * 100:g} best_arm={best} "
            f"ap={mean_ap[best]:.4f} best_control={control} control_ap={mean_ap[control]:.4f} "
            f"diff_ci_low={diff[1]:.4f} diff_ci_high={diff[2]:.4f}"
            + (f" sdv_ap={mean_ap.get('sdv_ctgan', float('nan')):.4f} sdv_failures={failures}"
               if SDV else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rates", default="5,1", help="rare-class shares of the training rows, in %%")
    parser.add_argument("--no-sdv", action="store_true", help="leave SDV CTGAN's arm out")
    args = parser.parse_args()
    global SDV
    SDV = not args.no_sdv
    import torch

    from gen_factory.data import split

    torch.set_num_threads(1)
    print(header("gen_factory rare-class augmentation of tables") + f"; load {os.getloadavg()}", flush=True)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            data = task_data(name)
            rare = data.label_names.index(TASKS[name])
            pool, test = split(data, 0.3, 0)
            for rate in (float(r) / 100 for r in args.rates.split(",")):
                started, runs = time.time(), []
                for seed in range(args.seeds):
                    runs.append(one_run(name, pool, test, rare, rate, seed, Path(tmp)))
                lines.append(summarise(name, rate, runs))
                print(f"\n{name} at {rate * 100:g} %: {time.time() - started:.0f} s, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
