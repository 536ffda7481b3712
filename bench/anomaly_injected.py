"""Injected anomalies: does the default score see every kind a data scientist tries first?

Each table (the bundled ones and the user-shaped tables of `data.procedural.user_shaped`) is split
70/30 (stratified, seed 0). The 70 % trains a model as a user's trains (`train_and_register`: Ray
Train, ONNX export, the anomaly thresholds at the default false-positive rate on its own hold-out,
MLflow); the 30 % are normal rows it never saw. Into copies of those rows one kind of anomaly at a
time is injected:

- `out_of_range`: one continuous column (drawn per row) set `strength` training standard deviations
  past its training range (above or below, drawn);
- `unseen_category`: one categorical column set to a category the model never saw (tables with one);
- `new_missing`: one column that was never missing in training set missing;
- `label_mismatch`: the row scored against a label it does not have (labels given, as `score
  --label-column` does);
- `joint`: a `strength` share of the columns (at least one) taken from a row of another label, so
  each value is ordinary and the combination is not.

Per kind and strength: the detection rate at the card's threshold (the row flagged), the AUROC of
the injected rows against the same rows clean, and PyOD's IsolationForest and ECOD fitted on the
training rows' raw values (the label code as one more column; missing values at the training mean,
as `evaluate.anomaly.detector_scores` does) on the same rows. Ends with one line per case:
`RESULT injected table=T kind=K strength=S detection=X auroc=X iforest_auroc=X ecod_auroc=X`.

Run: `python bench/anomaly_injected.py [--tables wine,wine_shop] [--epochs N]`
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from common import header, temp_home

TABLES = ("breast_cancer", "iris", "wine", "customers", "loans", "wine_shop", "clinic", "flowers")
STRENGTHS = {"out_of_range": (1.0, 3.0, 5.0), "unseen_category": (1.0,), "new_missing": (1.0,),
             "label_mismatch": (1.0,), "joint": (0.25, 0.5)}


def frame_of(name: str):
    """(frame, label column) of a bundled or user-shaped table."""
    from gen_factory.data.datasets import bundled_frame
    from gen_factory.data.procedural import USER_SHAPED, user_shaped

    if name in USER_SHAPED:
        return user_shaped(name)
    frame, label, _ = bundled_frame(name)
    return frame, label


def trained(name: str, root: Path, epochs: int | None):
    """(model, training codes, training labels, test codes, test labels): the model trained on the 70 %."""
    from gen_factory import registry
    from gen_factory.data import load_dataset
    from gen_factory.data.datasets import split_indices, table_from_frame
    from gen_factory.runtime.codes import table_values
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.scoring import UNSEEN
    from gen_factory.services.augmentation import model_codes
    from gen_factory.services.pipeline import TrainJob, train_and_register

    frame, label = frame_of(name)
    labels = table_from_frame(frame, label).labels
    keep, held = split_indices(labels, 0.3, 0)
    paths = {}
    for part, idx in (("train", keep), ("test", held)):
        paths[part] = root / f"{name}_{part}.parquet"
        frame.iloc[idx].reset_index(drop=True).to_parquet(paths[part], index=False)
    job = TrainJob(str(paths["train"]), model_name=f"injected-{name}".replace("_", "-"), label_column=label,
                   epochs=epochs)
    ref = train_and_register(job, log=lambda *_: None)["ref"]
    model = OnnxModel(registry.download(ref))
    cats = [c.name for c in model.card.encoding.columns if c.kind == "categorical"]
    train = model_codes(model, load_dataset(str(paths["train"]), label, categorical=cats or None))
    test = load_dataset(str(paths["test"]), label, categorical=cats or None)
    rows = pq.read_table(paths["test"])
    codes = np.concatenate([table_values(model, b, (str(paths["test"]), 0)) for b in rows.to_batches()])
    seen = ~(codes == UNSEEN).any(axis=1)  # a test row of a category training never had is no normal row
    if not seen.all():
        print(f"<!-- {name}: {int((~seen).sum())} test rows with a category the training rows lack, left "
              "out -->", flush=True)
    labels = np.array([model.card.label_names.index(str(v)) for v in rows.column(label).to_pylist()])
    test.features, test.labels = codes[seen], labels[seen]
    return model, train, test


def inject(kind: str, strength: float, model, train, test, rng: np.random.Generator):
    """(values, given labels or None) of the test rows with `kind` injected; None where the table has no
    column of that kind."""
    columns = model.card.encoding.columns
    x, y = test.features.copy(), test.labels.copy()
    rows = np.arange(len(x))
    if kind == "out_of_range":
        numeric = [j for j, c in enumerate(columns) if c.kind == "continuous"]
        if not numeric:
            return None
        j = rng.choice(numeric, len(x))
        sd = np.nanstd(train.features[:, j], axis=0)
        up = rng.random(len(x)) < 0.5
        low = np.array([columns[k].low for k in j])
        high = np.array([columns[k].high for k in j])
        x[rows, j] = np.where(up, high + strength * sd, low - strength * sd)
        return x, None
    if kind == "unseen_category":
        cats = [j for j, c in enumerate(columns) if c.kind == "categorical" and c.other_code is None]
        if not cats:
            return None
        from gen_factory.runtime.scoring import UNSEEN

        x[rows, rng.choice(cats, len(x))] = UNSEEN  # what scoring makes of a category the model never saw
        return x, None
    if kind == "new_missing":
        never = [j for j, c in enumerate(columns) if not c.missing]
        if not never:
            return None
        x[rows, rng.choice(never, len(x))] = np.nan
        return x, None
    if kind == "label_mismatch":
        n = len(model.card.label_names)
        return x, (y + rng.integers(1, n, len(y))) % n
    donors = [rng.choice(np.flatnonzero(test.labels != label)) for label in y]  # joint
    take = max(1, int(round(strength * x.shape[1])))
    for i, donor in enumerate(donors):
        cols = rng.choice(x.shape[1], take, replace=False)
        x[i, cols] = test.features[donor, cols]
    return x, None


def default_scores(model, x: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The default method's scores (over the best label, or against `labels`) and the card's threshold."""
    from gen_factory.runtime import scoring

    scores = scoring.score(model, x.astype(np.float32), labels)
    threshold, _ = scoring.verdict(model, scores, None, labels is not None)
    return scores, threshold


def pyod_scores(train, x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from gen_factory.evaluate.anomaly import detector_scores

    with_label = lambda v, lab: np.column_stack([v, lab])  # noqa: E731
    out = detector_scores(with_label(train.features, train.labels), with_label(x, labels), seed)
    return {"iforest": out["iforest"], "ecod": out["ecod"]}


def run_table(name: str, root: Path, epochs: int | None) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    model, train, test = trained(name, root, epochs)
    rng = np.random.default_rng(0)
    clean, _ = default_scores(model, test.features, None)
    clean_given, _ = default_scores(model, test.features, test.labels)
    clean_pyod = pyod_scores(train, test.features, test.labels, 0)
    results = []
    for kind, strengths in STRENGTHS.items():
        for strength in strengths:
            injected = inject(kind, strength, model, train, test, rng)
            if injected is None:
                continue
            x, given = injected
            scores, threshold = default_scores(model, x, given)
            base = clean_given if given is not None else clean
            truth = np.r_[np.zeros(len(base)), np.ones(len(scores))]
            pyod = pyod_scores(train, x, test.labels if given is None else given, 0)
            results.append({
                "table": name, "kind": kind, "strength": strength,
                "detection": float(np.mean(scores > threshold)),
                "auroc": float(roc_auc_score(truth, np.r_[base, scores])),
                **{f"{k}_auroc": float(roc_auc_score(truth, np.r_[clean_pyod[k], pyod[k]])) for k in pyod},
                "clean_flagged": float(np.mean(base > threshold)),
            })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated tables (default: all)")
    parser.add_argument("--epochs", type=int, help="GAN epochs (default: the user's default)")
    args = parser.parse_args()
    temp_home("gf-bench-injected-")
    print(header("gen_factory injected anomalies") + f"; load {os.getloadavg()}\n", flush=True)
    print("| table | kind | strength | detection | clean flagged | AUROC | IForest | ECOD |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tables.split(","):
            started = time.time()
            for r in run_table(name, Path(tmp), args.epochs):
                results.append(r)
                print(f"| {name} | {r['kind']} | {r['strength']:g} | {r['detection']:.3f} | "
                      f"{r['clean_flagged']:.3f} | {r['auroc']:.3f} | {r['iforest_auroc']:.3f} | "
                      f"{r['ecod_auroc']:.3f} |", flush=True)
            seconds = time.time() - started
            print(f"<!-- {name}: {seconds:.0f} s, load {os.getloadavg()[0]:.1f} -->", flush=True)
    print()
    for r in results:
        print(f"RESULT injected table={r['table']} kind={r['kind']} strength={r['strength']:g} "
              f"detection={r['detection']:.4f} auroc={r['auroc']:.4f} iforest_auroc={r['iforest_auroc']:.4f} "
              f"ecod_auroc={r['ecod_auroc']:.4f}")


if __name__ == "__main__":
    main()
