"""Registry resolution on the real MLflow store (SQLite): the serving cache of name@alias."""

import time

import pytest

from gen_factory import registry


@pytest.fixture(scope="module", autouse=True)
def own_registry(tmp_path_factory):
    """A data directory (MLflow store) of this module's own: its versions have no files, and in the
    session's store the API tests would find, serve and fuzz them (a 500 from a version with no
    card.json failed the schemathesis test when this module ran first)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENFACTORY_HOME", str(tmp_path_factory.mktemp("registry-home")))
        yield


def _versions(name: str, n: int, source) -> None:
    c = registry.client()
    c.create_registered_model(name)
    for _ in range(n):
        c.create_model_version(name, source=source.as_uri())


def test_cached_resolver_keeps_an_answer_for_its_ttl_then_sees_the_alias_move(tmp_path):
    _versions("cache-a", 2, tmp_path)
    c = registry.client()
    c.set_registered_model_alias("cache-a", "champion", "1")
    kept, fresh = registry.CachedResolver(ttl_s=600), registry.CachedResolver(ttl_s=0)
    assert kept("cache-a@champion").version == fresh("cache-a@champion").version == "1"
    c.set_registered_model_alias("cache-a", "champion", "2")
    assert kept("cache-a@champion").version == "1"  # within its TTL: no registry query
    assert kept.cached("cache-a@champion").version == "1"
    # TTL 0: every call finds its answer expired, returns it at once and refreshes it behind.
    deadline = time.monotonic() + 10
    while fresh("cache-a@champion").version != "2":
        assert time.monotonic() < deadline, "the moved alias was never seen"
        time.sleep(0.05)
    assert fresh.cached("cache-a@champion").version == "2"
    c.delete_registered_model_alias("cache-a", "champion")
    deadline = time.monotonic() + 10
    while fresh.cached("cache-a@champion") is not None:  # a refresh that finds it gone drops it
        assert time.monotonic() < deadline, "the deleted alias was never dropped"
        time.sleep(0.05)
    with pytest.raises(registry.ModelNotFound):
        fresh("cache-a@champion")


def test_cached_resolver_does_not_keep_a_failed_lookup(tmp_path):
    kept = registry.CachedResolver(ttl_s=600)
    with pytest.raises(registry.ModelNotFound):
        kept("cache-b@champion")
    _versions("cache-b", 1, tmp_path)
    registry.client().set_registered_model_alias("cache-b", "champion", "1")
    assert kept("cache-b@champion").version == "1"  # registered a moment later: found at once
