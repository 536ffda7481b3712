"""Model references end to end: `NAME/VERSION`, `NAME@ALIAS` and `NAME` (its @champion) name the right
version in the registry, in the Python API (`Synthesizer.load`), in `genfactory score --local` and
over HTTP (Ray Serve); an alias moved to another version is followed while `NAME/1` stays on
version 1; an unknown version or alias is an error (HTTP 404, exit code 2) naming the reference.

The model is `refs-table`: two versions of the session's CLI-trained bundle (registered again from
its artifacts, so nothing is trained here), @champion on version 1 and @staging on version 2."""

import json
import re
import socket
import time

import pytest
import requests

from gen_factory import client, registry, settings
from gen_factory.cli import main as cli
from gen_factory.synthesizer import Synthesizer

pytestmark = pytest.mark.ray  # the shared model is trained with Ray Train (once per session)

REFS = "refs-table"
# Each reference and the version it names while @champion is on 1, and once @champion moved to 2.
BEFORE = {f"{REFS}/1": "1", f"{REFS}/2": "2", f"{REFS}@champion": "1", REFS: "1", f"{REFS}@staging": "2"}
AFTER = {**BEFORE, f"{REFS}@champion": "2", REFS: "2"}
UNKNOWN = [  # a reference the registry does not have, and words the error must contain
    (f"{REFS}/9", f"'{REFS}/9'"),
    (f"{REFS}@nope", f"'{REFS}@nope'"),
    ("no-such-model", "'no-such-model'"),
    (f"{REFS}/one", "not a number"),
    (f"{REFS}@", "NAME@alias"),
]


@pytest.fixture(scope="module")
def refs(cli_trained_table):
    assert cli_trained_table["code"] == 0, cli_trained_table["err"][-3000:]
    c = registry.client()
    trained = c.get_model_version("cli-table", registry.resolve("cli-table@staging").version)
    c.create_registered_model(REFS)
    for _ in range(2):
        c.create_model_version(REFS, source=trained.source, run_id=trained.run_id)
    c.set_registered_model_alias(REFS, "champion", "1")
    c.set_registered_model_alias(REFS, "staging", "2")
    return REFS


@pytest.fixture
def rows_file(cli_trained_table, tmp_path):
    path = tmp_path / "rows.parquet"
    cli_trained_table["frame"].drop(columns=["segment"]).head(3).to_parquet(path)
    return path


@pytest.fixture
def champion_on_2(refs):
    """@champion moved to version 2 for one test, and back to 1 after it."""
    c = registry.client()
    c.set_registered_model_alias(REFS, "champion", "2")
    yield
    c.set_registered_model_alias(REFS, "champion", "1")


def _locally(ref: str, rows_file, capsys) -> str:
    """The version `ref` names in the registry, which must be the one the Python API loads and the
    one `genfactory score --local` scores with."""
    version = registry.resolve(ref).version
    loaded = Synthesizer.load(ref)
    assert (loaded.ref.name, loaded.ref.version) == (REFS, version)
    assert loaded.model.dir == settings.data_dir() / "model_cache" / REFS / version  # that version's files
    assert cli(["score", ref, str(rows_file), "--local"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model"] == REFS and len(scored["scores"]) == 3
    assert scored["version"] == version, (ref, scored["version"], version)
    return version


def test_references_resolve_to_their_versions_locally(refs, rows_file, capsys):
    assert {ref: _locally(ref, rows_file, capsys) for ref in BEFORE} == BEFORE


def test_a_moved_alias_is_followed_locally_and_a_version_stays_put(refs, champion_on_2, rows_file, capsys):
    assert {ref: _locally(ref, rows_file, capsys) for ref in AFTER} == AFTER
    assert cli(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}[REFS]
    assert listed["aliases"] == {"champion": 2, "staging": 2} and listed["latest_version"] == 2


@pytest.mark.parametrize("ref, words", UNKNOWN)
def test_an_unknown_reference_is_an_error_naming_it_locally(refs, rows_file, capsys, ref, words):
    with pytest.raises(registry.ModelNotFound) as resolving:
        registry.resolve(ref)
    assert words in str(resolving.value)
    with pytest.raises(registry.ModelNotFound, match=re.escape(words)):
        Synthesizer.load(ref)
    assert cli(["score", ref, str(rows_file), "--local"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err


# ---- the same over HTTP: the API on Ray Serve (`extended`: Serve's resolution of NAME/1, a moved
# alias and an unknown alias or version are also checked once in test_e2e, in the default run) ----


@pytest.fixture(scope="module")
def api_url(refs):
    """The API as `genfactory serve` starts it (no token), on a free port; Serve is shut down after,
    and the local Ray too unless it was up before."""
    import ray
    from ray import serve

    from serving.app import start

    was_up = ray.is_initialized()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield start(port=port)
    serve.shutdown()
    if not was_up:
        ray.shutdown()


def _served(url: str, ref: str, rows: list[dict]) -> str:
    """The version the API generates and scores with for `ref` (both must agree)."""
    resp = requests.post(f"{url}/v1/models/{ref}/generate", json={"rows_per_label": 1}, timeout=60)
    assert resp.status_code == 200, (ref, resp.text)
    scored = client.score(url, ref, rows=rows)
    assert scored["model"] == REFS and scored["version"] == resp.headers["X-Model-Version"], ref
    return scored["version"]


def _generated_by(url: str, ref: str) -> str:
    resp = requests.post(f"{url}/v1/models/{ref}/generate", json={"rows_per_label": 1}, timeout=60)
    assert resp.status_code == 200, (ref, resp.text)
    return resp.headers["X-Model-Version"]


def _until_served(url: str, ref: str, version: str) -> None:
    """Wait until every API replica serves `ref` as `version` (8 answers in a row): each keeps its last
    answer for the alias TTL, and answers once more from it while it refreshes."""
    deadline, streak = time.monotonic() + settings.alias_ttl_s() + 20, 0
    while streak < 8:
        assert time.monotonic() < deadline, f"{ref} was not served as version {version}"
        streak = streak + 1 if _generated_by(url, ref) == version else 0
        time.sleep(0.05)


@pytest.mark.extended  # Serve for this module: ~15 s
def test_references_over_http_follow_a_moved_alias_and_keep_versions(refs, api_url, cli_trained_table):
    rows = cli_trained_table["frame"].drop(columns=["segment"]).head(2).to_dict(orient="records")
    assert {ref: _served(api_url, ref, rows) for ref in BEFORE} == BEFORE
    c = registry.client()
    c.set_registered_model_alias(REFS, "champion", "2")
    try:
        assert _generated_by(api_url, f"{REFS}/1") == "1"  # a version is no alias: it stays put at once
        for ref in (REFS, f"{REFS}@champion"):
            _until_served(api_url, ref, "2")
        assert {ref: _served(api_url, ref, rows) for ref in AFTER} == AFTER
    finally:
        c.set_registered_model_alias(REFS, "champion", "1")


@pytest.mark.extended  # shares the module's Serve
@pytest.mark.parametrize("ref, words", UNKNOWN)
def test_an_unknown_reference_is_a_404_naming_it_over_http(refs, api_url, tmp_path, capsys, ref, words):
    for op, body in (("generate", {"rows_per_label": 1}), ("score", {"rows": [[0.0, 0.0]]})):
        resp = requests.post(f"{api_url}/v1/models/{ref}/{op}", json=body, timeout=60)
        assert resp.status_code == 404, (ref, op, resp.status_code, resp.text)
        assert words in resp.json()["detail"] and resp.json()["field"] == "name"
    out = tmp_path / "pulled.parquet"
    assert cli(["pull", ref, "--rows-per-label", "1", "--out", str(out), "--url", api_url]) == 2
    assert words in capsys.readouterr().err and not out.exists()
