"""HTTP client of the serving API: pull a Parquet dataset to a file, score a file's rows.

Both calls are idempotent (the same model version, body and seed give the same answer), so a
failure that is the server's and not the request's - a refused connection, a replica killed
mid-request (500 from Serve's proxy), overload (503) - is retried with backoff, honouring the
server's Retry-After, for up to `RETRY_S` seconds. A 4xx is the request's fault and is never retried.
The bearer token is read from GENFACTORY_API_TOKEN (or _FILE), as the server reads it.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from gen_factory import settings
from gen_factory.progress import progress

RETRY_S = 30.0  # give up on a server that has not answered for this long
RETRY_STATUSES = (500, 502, 503, 504)
CHUNK_BYTES = 1 << 20
_local = threading.local()  # a Session per thread: keep-alive, and Sessions are not thread-safe


class ApiError(RuntimeError):
    """The API answered with an error; the message is the server's explanation."""


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _headers() -> dict:
    token = settings.api_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _post(url: str, payload: dict, timeout: float, retry_s: float = RETRY_S,
          stream: bool = False) -> requests.Response:
    """POST with retries of the server's failures (see the module docstring); raises ApiError. With
    `stream`, the body is read by the caller (`iter_content`)."""
    body = {key: value for key, value in payload.items() if value is not None}  # omitted, never null
    deadline, delay = time.monotonic() + retry_s, 0.05
    while True:
        try:
            resp = _session().post(url, json=body, timeout=timeout, headers=_headers(), stream=stream)
            failure = f"HTTP {resp.status_code}" if resp.status_code in RETRY_STATUSES else None
        except (requests.ConnectionError, requests.Timeout) as err:
            resp, failure = None, err.__class__.__name__
        if failure is None:
            break
        if time.monotonic() + delay > deadline:
            if resp is None:
                raise ApiError(f"no API answering at {url} ({failure}); start it with `genfactory serve`")
            break
        wait = _retry_after(resp) if resp is not None else None
        if resp is not None:
            resp.close()  # a streamed response holds its connection until closed
        time.sleep(min(wait, 5.0) if wait is not None else delay)
        delay = min(delay * 2, 1.0)
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise ApiError(f"HTTP {resp.status_code}: {detail}")
    return resp


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def generate(
    api_url: str,
    model: str,
    *,
    rows_per_label: int | None = None,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    conditions: dict | list | None = None,
    timeout: float = 600,
    retry_s: float = RETRY_S,
    stream: bool = False,
) -> requests.Response:
    """A labelled dataset as the API's response: Parquet bytes in `.content` (or `iter_content` with
    `stream`), version in X-Model-Version."""
    payload = {"seed": seed, "rows_per_label": rows_per_label, "counts": counts, "conditions": conditions}
    return _post(f"{api_url.rstrip('/')}/v1/models/{model}/generate", payload, timeout, retry_s, stream)


def pull(api_url: str, model: str, out: Path, *, rows_per_label: int | None = None,
         counts: dict[str, int] | None = None, seed: int = 0, conditions: dict | list | None = None,
         timeout: float = 600) -> dict:
    """Request a labelled dataset and stream it to `out` atomically (temp file + rename), with progress
    on stderr. A download that breaks off is asked for again: the same seed gives the same bytes."""
    deadline = time.monotonic() + RETRY_S
    while True:
        resp = generate(api_url, model, rows_per_label=rows_per_label, counts=counts, seed=seed,
                        conditions=conditions, timeout=timeout, stream=True)
        try:
            written = _save(resp, Path(out), f"{model}: {resp.headers.get('X-Rows', '?')} rows")
            break
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            if time.monotonic() > deadline:
                raise ApiError(f"the download from {api_url} kept breaking off ({err.__class__.__name__}); "
                               "run the same command again") from None
    return {"path": str(out), "bytes": written, "rows": int(resp.headers.get("X-Rows", 0)),
            "version": resp.headers.get("X-Model-Version")}


def _save(resp: requests.Response, out: Path, desc: str) -> int:
    """Write the response body to `out` through a temp file beside it; returns the bytes written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    total = int(resp.headers.get("Content-Length", 0)) or None
    written = 0
    try:
        with resp, os.fdopen(fd, "wb") as fh, progress(total, "B", desc) as bar:
            for chunk in resp.iter_content(CHUNK_BYTES):
                fh.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def score(api_url: str, model: str, *, rows: list | None = None, images: np.ndarray | list | None = None,
          labels: list[str] | None = None, method: str | None = None, timeout: float = 600,
          retry_s: float = RETRY_S) -> dict:
    payload: dict = {"labels": labels, "method": method, "rows": rows}
    if images is not None:
        payload["images"] = np.asarray(images).tolist()
    return _post(f"{api_url.rstrip('/')}/v1/models/{model}/score", payload, timeout, retry_s).json()
