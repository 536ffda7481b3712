"""The refit on every row, warm against cold (issue 17, part 1: time-to-model without losing quality).

    python bench/refit_warm.py [--tables breast_cancer iris ...] [--seeds 0] [--draws 3]

`genfactory train` fits a model on 70 % of the rows (its quality and anomaly thresholds are measured on
the other 30 %) and then ships a refit on every row. Cold, the refit trains from noise for as many epochs
again; warm (the default), it goes on from the split model's networks for a quarter of them
(`pipeline.WARM_REFIT_SHARE`). The refit sees every row, so its quality can only be measured on rows
outside the table it was given: each bundled table is split 70/30 (stratified, seed 0) once more, the
70 % is what `train` gets, the 30 % is never seen. Three ways to ship, each trained through the real
pipeline (Ray Train, ONNX export, the MLflow registry) and sampled through its registered ONNX model:
- split: `--no-refit`, the model trained on 70 % of the given rows;
- cold: the refit from scratch;
- warm: the refit from the split's networks.
Scored on the unseen rows: quality (SDMetrics-style, `gen_factory.evaluate.quality`) and TSTR macro-F1
(a forest trained on the synthetic rows), each the mean of `--draws` samples as large as the given rows;
and the seconds the whole `train` took and the refit's epochs took. Ends with one line per table and way:
`RESULT refit_warm table=T refit=split|cold|warm seed=S train_s=X refit_epochs_s=X quality=X tstr_f1=X`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import header, temp_home  # noqa: E402

WAYS = ("split", "cold", "warm")


@dataclass
class Outcome:
    table: str
    refit: str
    seed: int
    train_s: float
    refit_epochs_s: float
    quality: float
    tstr_f1: float

    def line(self) -> str:
        return (f"RESULT refit_warm table={self.table} refit={self.refit} seed={self.seed} "
                f"train_s={self.train_s:.1f} refit_epochs_s={self.refit_epochs_s:.1f} "
                f"quality={self.quality:.4f} tstr_f1={self.tstr_f1:.4f}")


def numeric_times(frame):
    """Datetime columns as numbers, as the pipeline's own evaluation scores them: as categories, every
    distinct instant would be a category of its own and the column's shape score near 0."""
    import pandas as pd

    times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame.assign(**{c: (frame[c] - pd.Timestamp(0, tz=frame[c].dt.tz)).dt.total_seconds()
                           for c in times})


def run(table: str, way: str, seed: int, given: Path, unseen, label: str, categorical: set[str],
        draws: int) -> Outcome:
    """Train `given` the `way` way through the pipeline; score its registered model on `unseen`."""
    from gen_factory.evaluate.quality import quality_report
    from gen_factory.evaluate.utility import tstr
    from gen_factory.services.pipeline import TrainJob, train_and_register
    from gen_factory.synthesizer import Synthesizer

    job = TrainJob(str(given), model_name=f"{table}-{way}-{seed}", label_column=label, seed=seed,
                   refit=way != "split", warm_refit=way == "warm")
    summary = train_and_register(job, log=lambda *_: None)
    model = Synthesizer.load(f"{summary['ref'].name}/{summary['ref'].version}")
    rows = summary["rows_trained"]
    phases = summary["phases"]
    quality, f1 = [], []
    for draw in range(draws):
        synth = numeric_times(model.sample(rows, seed=draw))
        quality.append(quality_report(unseen, synth, categorical)["quality"])
        f1.append(tstr(synth, unseen, label, categorical, draw)["macro_f1"])
    return Outcome(table, way, seed, summary["seconds"],
                   phases.get("refit_gan_epochs", 0.0) + phases.get("refit_encoder_epochs", 0.0),
                   float(np.mean(quality)), float(np.mean(f1)))


def main() -> None:
    from gen_factory.data.datasets import BUNDLED_TABLES, bundled_frame, split_indices
    from gen_factory.evaluate.quality import column_kinds

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(BUNDLED_TABLES))
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds")
    parser.add_argument("--draws", type=int, default=3, help="samples scored per model")
    args = parser.parse_args()
    temp_home("gf-bench-refit-warm-")
    print(header("refit on every row: warm against cold"), flush=True)
    print(f"load before: {os.getloadavg()}", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for table in args.tables:
            frame, label, _ = bundled_frame(table)
            labels = frame[label].astype(str).to_numpy()
            _, codes = np.unique(labels, return_inverse=True)
            given_idx, unseen_idx = split_indices(codes, 0.3, 0)
            given = Path(tmp) / f"{table}.parquet"
            frame.iloc[np.sort(given_idx)].to_parquet(given, index=False)
            unseen = numeric_times(frame.iloc[np.sort(unseen_idx)].reset_index(drop=True))
            kinds = column_kinds(unseen, {label})
            categorical = {c for c, k in kinds.items() if k == "categorical"}
            for seed in args.seeds:
                for way in args.ways:
                    outcome = run(table, way, seed, given, unseen, label, categorical, args.draws)
                    print(outcome.line().replace("RESULT refit_warm ", "  "), flush=True)
                    outcomes.append(outcome)
    print(f"load after: {os.getloadavg()}", flush=True)
    for outcome in outcomes:
        print(outcome.line())


if __name__ == "__main__":
    main()
