"""Runs inside the SDV benchmark venv (.venv-bench): how long SDV CTGAN's `fit` takes on a table, as a
user would run it (defaults, torch's own thread count), for bench/time_to_model.py.

    python bench/sdv_fit_time.py TRAIN.csv LABEL SEED  -> JSON {fit_seconds, threads}
"""

import json
import sys
import time

import numpy as np
import pandas as pd


def fit_seconds(train_csv: str, label: str, seed: int) -> dict:
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer

    np.random.seed(seed)
    torch.manual_seed(seed)
    train = pd.read_csv(train_csv)
    metadata = Metadata.detect_from_dataframes({"table": train})
    metadata.update_column(label, table_name="table", sdtype="categorical")
    model = CTGANSynthesizer(metadata)
    started = time.perf_counter()
    model.fit({"table": train})
    return {"fit_seconds": time.perf_counter() - started, "threads": torch.get_num_threads()}


if __name__ == "__main__":
    print(json.dumps(fit_seconds(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
