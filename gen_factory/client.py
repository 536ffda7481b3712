"""HTTP client of the serving API: pull a Parquet dataset to a file, score a file's rows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import requests


class ApiError(RuntimeError):
    """The API answered with an error; the message is the server's explanation."""


def _post(url: str, payload: dict, timeout: float) -> requests.Response:
    try:
        resp = requests.post(url, json=payload, timeout=timeout)
    except requests.ConnectionError as err:
        raise ApiError(f"no API at {url} ({err.__class__.__name__}); start it with `genfactory serve`") from err
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise ApiError(f"HTTP {resp.status_code}: {detail}")
    return resp


def pull(api_url: str, model: str, out: Path, *, rows_per_label: int | None = None,
         counts: dict[str, int] | None = None, seed: int = 0, conditions: dict | list | None = None,
         timeout: float = 600) -> dict:
    """Request a labelled dataset and write it to `out` atomically (temp file + rename)."""
    payload = {"seed": seed, "rows_per_label": rows_per_label, "counts": counts, "conditions": conditions}
    resp = _post(f"{api_url.rstrip('/')}/v1/models/{model}/generate", payload, timeout)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(resp.content)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(out), "bytes": len(resp.content), "rows": int(resp.headers.get("X-Rows", 0)),
            "version": resp.headers.get("X-Model-Version")}


def score(api_url: str, model: str, *, rows: list | None = None, images: np.ndarray | list | None = None,
          labels: list[str] | None = None, method: str | None = None, timeout: float = 600) -> dict:
    payload: dict = {"labels": labels, "method": method}
    if rows is not None:
        payload["rows"] = rows
    if images is not None:
        payload["images"] = np.asarray(images).tolist()
    return _post(f"{api_url.rstrip('/')}/v1/models/{model}/score", payload, timeout).json()
