"""Runs inside the SDV benchmark venv (.venv-bench; SDV is never a gen_factory dependency).

    python bench/sdv_runner.py fit   SYNTH TRAIN.csv LABEL OUT SEED DRAWS
        -> JSON {fit_seconds, rows_per_second}
    python bench/sdv_runner.py check REAL.csv SYNTH.csv KINDS_JSON
        -> JSON SDMetrics QualityReport scores
    python bench/sdv_runner.py conditional TRAIN.csv LABEL VALUE ROWS OUT.csv SEED
        -> JSON {fit_seconds, rows, failed}: CTGAN's conditional rows of LABEL = VALUE

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


def conditional(train_csv: str, label: str, value: str, rows: int, out: str, seed: int) -> dict:
    """CTGAN with defaults, then `rows` rows of `label` = `value` by SDV's conditional sampling
    (`sample_from_conditions`, rejection under the hood) to OUT; a failure to sample is counted."""
    import torch
    from sdv.metadata import Metadata
    from sdv.sampling import Condition
    from sdv.single_table import CTGANSynthesizer

    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    train = pd.read_csv(train_csv)
    train[label] = train[label].astype(str)
    metadata = Metadata.detect_from_dataframes({"table": train})
    metadata.update_column(label, table_name="table", sdtype="categorical")
    model = CTGANSynthesizer(metadata)
    started = time.perf_counter()
    model.fit({"table": train})
    fit_seconds = time.perf_counter() - started
    try:
        rows_out = model.sample_from_conditions([Condition(num_rows=rows, column_values={label: value})])
        rows_out = rows_out["table"] if isinstance(rows_out, dict) else rows_out
        failed = 0
    except Exception as err:  # noqa: BLE001 - SDV raises ValueError/RuntimeError kinds for "Unable to sample"
        print(f"conditional sampling failed: {err}", file=sys.stderr)
        rows_out, failed = train.iloc[:0], 1
    rows_out.to_csv(out, index=False)
    return {"fit_seconds": fit_seconds, "rows": len(rows_out), "failed": failed}


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
    if cmd == "fit":
        result = fit(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]))
    elif cmd == "conditional":
        result = conditional(args[0], args[1], args[2], int(args[3]), args[4], int(args[5]))
    else:
        result = check(*args)
    print(json.dumps(result))
