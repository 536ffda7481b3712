"""Where things live. One project data directory holds everything on the embedded defaults.

Environment overrides point the same code at a cluster:
``GENFACTORY_HOME`` (data directory), ``MLFLOW_TRACKING_URI`` (an MLflow server),
``RAY_ADDRESS`` (a Ray cluster, read by Ray itself).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ALIAS = "champion"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_ALIAS_TTL_S = 1.0
DEFAULT_MAX_BODY_MB = 32.0


def data_dir() -> Path:
    """The project data directory (created on first use)."""
    path = Path(os.environ.get("GENFACTORY_HOME", "data")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tracking_uri() -> str:
    """MLflow tracking + registry URI: the env override, else a SQLite file in the data dir."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir() / 'mlflow.db'}"


def alias_ttl_s() -> float:
    """How long the API may serve a resolved `name@alias` before asking the registry again
    (``GENFACTORY_ALIAS_TTL_S``; 0 asks on every request)."""
    return float(os.environ.get("GENFACTORY_ALIAS_TTL_S", DEFAULT_ALIAS_TTL_S))


def api_token() -> str | None:
    """The API's bearer token: ``GENFACTORY_API_TOKEN``, else the first line of the file named by
    ``GENFACTORY_API_TOKEN_FILE``; None when neither is set (the API is then open to whoever can
    reach its port, which `genfactory serve` allows on loopback only)."""
    token = os.environ.get("GENFACTORY_API_TOKEN")
    if not token and os.environ.get("GENFACTORY_API_TOKEN_FILE"):
        lines = Path(os.environ["GENFACTORY_API_TOKEN_FILE"]).read_text().splitlines()
        token = lines[0].strip() if lines else ""
    return token or None


def max_body_bytes() -> int:
    """The largest request body the API reads (``GENFACTORY_MAX_BODY_MB``, default 32)."""
    return int(float(os.environ.get("GENFACTORY_MAX_BODY_MB", DEFAULT_MAX_BODY_MB)) * 2**20)


def artifact_root() -> str:
    """Where MLflow stores artifacts when it runs on the embedded SQLite store."""
    return (data_dir() / "mlartifacts").as_uri()


def ray_storage() -> str:
    """Ray Train storage path: checkpoints of every run, shared by all workers of a node."""
    return os.environ.get("GENFACTORY_RAY_STORAGE") or str(data_dir() / "ray_results")


def filesystem(location: str):
    """(pyarrow filesystem, path) for a local path or a URI (s3://, gs://, file://, ...): checkpoint
    storage and bulk output can live on any of them."""
    from pyarrow.fs import FileSystem, LocalFileSystem

    if "://" not in location:
        return LocalFileSystem(), str(Path(location).resolve())
    return FileSystem.from_uri(location)
