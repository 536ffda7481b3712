"""Shared fixtures. Every test run gets its own project data directory (MLflow store, checkpoints)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """In-process training on one thread: the small networks of the tests run as fast or faster, the
    seeded results do not depend on the machine's core count (margins were measured this way), and
    no OpenMP thread spins against the Ray workers the e2e tests start."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("genfactory_home")
    os.environ["GENFACTORY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("RAY_ADDRESS", None)
    yield home


@pytest.fixture
def gauss_table():
    """Two labels, three columns with class-dependent means: small enough to learn in seconds."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    label = np.array(["a", "b"])[rng.integers(0, 2, n)]
    shift = np.where(label == "a", -2.0, 2.0)
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0),
        "y": rng.normal(-shift, 0.5),
        "count": rng.integers(0, 10, n),  # an integer column must come back as whole numbers
        "label": label,
    })


TINY_TABLE = {"common": 100, "mid": 55, "rare": 25}  # rows per label: uneven, so proportions mean something


@pytest.fixture(scope="session")
def cli_trained_table(tmp_path_factory):
    """One tiny three-label table trained and registered through the CLI, `genfactory train --json`
    (Ray Train, 1 worker, 1 GAN + 1 encoder epoch, label column `segment`, alias `staging`, an int8
    generator beside fp32), once per
    session: the CLI, reference and Synthesizer tests share it. Returns the data file, the command's
    exit code, stdout and stderr; the tests check what it registered."""
    import contextlib
    import io

    import numpy as np
    import pandas as pd

    from gen_factory.cli import main as cli

    rng = np.random.default_rng(3)
    segment = np.repeat(list(TINY_TABLE), list(TINY_TABLE.values()))
    shift = pd.Series(segment).map({"common": -2.0, "mid": 0.0, "rare": 2.0}).to_numpy()
    frame = pd.DataFrame({"x": rng.normal(shift, 1.0), "y": rng.normal(-shift, 0.5), "segment": segment})
    path = tmp_path_factory.mktemp("cli-table") / "segments.parquet"
    frame.sample(frac=1.0, random_state=0).to_parquet(path, index=False)  # labels interleaved, as in files
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(["train", str(path), "--name", "cli-table", "--label-column", "segment", "--epochs", "1",
                    "--encoder-epochs", "1", "--workers", "1", "--batch-size", "32", "--seed", "3",
                    "--alias", "staging", "--no-refit", "--precisions", "int8", "--json"])
    return {"path": path, "frame": frame, "code": code, "out": out.getvalue(), "err": err.getvalue(),
            "name": "cli-table", "alias": "staging", "seed": 3}
