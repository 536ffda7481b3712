"""Runs inside the SDV benchmark venv (.venv-bench; SDV is never a gen_factory dependency).

    python bench/sdv_runner.py fit   SYNTH TRAIN.csv LABEL OUT SEED DRAWS
        -> JSON {fit_seconds, rows_per_second}
    python bench/sdv_runner.py check REAL.csv SYNTH.csv KINDS_JSON
        -> JSON SDMetrics QualityReport scores

`fit` trains SDV's CTGANSynthesizer or GaussianCopulaSynthesizer with defaults and writes DRAWS
samples of as many synthetic rows as the training table has (OUT_0.csv, OUT_1.csv, ...); `check`
scores a pair of tables with SDMetrics' own QualityReport so gen_factory's re-implementation of
the definitions can be compared.
"""

import json
import sys
import time

import numpy as np
import pandas as pd


def fit(synth: str, train_csv: str, label: str, out: str, seed: int, draws: int) -> dict:
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    train = pd.read_csv(train_csv)
    metadata = Metadata.detect_from_dataframes({"table": train})
    metadata.update_column(label, table_name="table", sdtype="categorical")
    model = {"ctgan": CTGANSynthesizer, "copula": GaussianCopulaSynthesizer}[synth](metadata)
    started = time.perf_counter()
    model.fit({"table": train})
    fit_seconds = time.perf_counter() - started
    for draw in range(draws):
        model.sample(len(train))["table"].to_csv(f"{out}_{draw}.csv", index=False)
    started = time.perf_counter()
    model.sample(20_000)
    return {"fit_seconds": fit_seconds, "rows_per_second": 20_000 / (time.perf_counter() - started)}


def check(real_csv: str, synth_csv: str, kinds_json: str) -> dict:
    from sdmetrics.reports.single_table import QualityReport

    kinds = json.loads(kinds_json)
    real, synth = pd.read_csv(real_csv), pd.read_csv(synth_csv)
    report = QualityReport()
    report.generate(real, synth, {"columns": {c: {"sdtype": k} for c, k in kinds.items()}}, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"quality": report.get_score(), "column_shapes": props["Column Shapes"],
            "column_pair_trends": props["Column Pair Trends"]}


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    result = (
        fit(args[0], args[1], args[2], args[3], int(args[4]), int(args[5])) if cmd == "fit" else check(*args)
    )
    print(json.dumps(result))
