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
