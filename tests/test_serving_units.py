"""The API's guards and the client's retries, in-process: no Ray, no Serve (the e2e tests run them served)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from gen_factory import client, registry
from serving import guard
from serving.app import RUNNER_BATCH_MAX_INPUTS, _batch_groups


def test_the_token_is_compared_by_digest_and_an_unset_token_configures_nothing():
    digest = guard.token_digest("s3cret")
    assert digest and "s3cret" not in digest and guard.token_digest(None) is None
    assert guard.token_matches("s3cret", digest)
    assert not guard.token_matches("s3cret ", digest) and not guard.token_matches(None, digest)


def test_runner_batches_never_exceed_the_input_limit_and_keep_every_request():
    """Five concurrent 25k-row requests once became one 125k-row call over the limit (HTTP 500)."""
    sizes = [25_000] * 5 + [3, 99_999, 1]
    values = [np.zeros((n, 2), np.float32) for n in sizes]
    ids = ["m/1"] * len(sizes)
    labels = [None] * 5 + [np.zeros(3, np.int64), None, None]
    groups = _batch_groups(ids, values, labels)
    assert sorted(i for _, _, idx in groups for i in idx) == list(range(len(sizes)))
    for _, best_of_labels, idx in groups:
        assert sum(sizes[i] for i in idx) <= RUNNER_BATCH_MAX_INPUTS
        assert {labels[i] is None for i in idx} == {best_of_labels}


@pytest.mark.slow
def test_resolver_serves_known_names_at_once_while_the_registry_is_locked(tmp_path, monkeypatch):
    """A real MLflow registry on SQLite, made unreadable by another process's exclusive lock (MLflow
    then waits 20 s for it and fails): known names answer at once, an unknown one fails clearly."""
    import sqlite3
    import time

    monkeypatch.setenv("GENFACTORY_HOME", str(tmp_path))
    c = registry.client()
    c.create_registered_model("m")
    version = str(c.create_model_version("m", source=str(tmp_path)).version)
    c.set_registered_model_alias("m", "champion", version)
    cached = registry.CachedResolver(ttl_s=0)
    assert cached("m@champion").version == version
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        assert cached("m@champion").version == version  # expired (ttl 0): refreshed in the background
        assert time.monotonic() - started < 1
        with pytest.raises(registry.RegistryUnavailable, match="did not answer"):
            cached("m/1")  # never resolved: nothing to fall back on
    finally:
        holder.execute("ROLLBACK")
    with pytest.raises(registry.ModelNotFound):
        cached("nope@champion")  # the registry answers again: a real "not found"


class _Flaky(BaseHTTPRequestHandler):
    """A real HTTP server that fails the first `failures` calls (503 with Retry-After, then a 500)."""

    calls: list = []
    failures = 2
    final = 200

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append((json.loads(body), self.headers.get("Authorization")))
        n = len(type(self).calls)
        status = (
            503 if n == 1 <= type(self).failures else 500 if n <= type(self).failures else type(self).final
        )
        payload = json.dumps({"detail": "busy"} if status != 200 else {"scores": [1.0]}).encode()
        self.send_response(status)
        if status == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    _Flaky.calls, _Flaky.failures, _Flaky.final = [], 2, 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_client_retries_server_failures_sends_the_token_and_omits_nulls(flaky_server, monkeypatch):
    monkeypatch.setenv("GENFACTORY_API_TOKEN", "tok")
    assert client.score(flaky_server, "m", rows=[[1.0]]) == {"scores": [1.0]}
    assert len(_Flaky.calls) == 3
    assert all(body == {"rows": [[1.0]]} and auth == "Bearer tok" for body, auth in _Flaky.calls)


def test_client_gives_up_after_its_deadline_and_never_retries_a_4xx(flaky_server):
    _Flaky.failures = 10**6
    with pytest.raises(client.ApiError, match="HTTP 500"):
        client._post(f"{flaky_server}/x", {"a": 1}, timeout=5, retry_s=0.5)
    with pytest.raises(client.ApiError, match="no API answering"):
        client._post("http://127.0.0.1:9/x", {"a": 1}, timeout=5, retry_s=0.2)
    _Flaky.calls, _Flaky.failures, _Flaky.final = [], 0, 422
    with pytest.raises(client.ApiError, match="HTTP 422: busy"):
        client._post(f"{flaky_server}/x", {"a": 1}, timeout=5)
    assert len(_Flaky.calls) == 1


def test_the_card_route_answers_with_the_model_card_type():
    """GET /v1/models/{name}/card describes a model with the type card.json is read into."""
    from gen_factory.card import ModelCard
    from serving.app import api
    from serving.contract import CardResponse

    schema = api.openapi()
    route = schema["paths"]["/v1/models/{name}/card"]["get"]
    body = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/CardResponse")
    assert CardResponse.model_fields["card"].annotation is ModelCard
    fields = schema["components"]["schemas"]["ModelCard"]["properties"]
    assert {"label_names", "encoding", "schema_version"} <= set(fields)
