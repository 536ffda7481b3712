"""`genfactory serve` as an operator runs it: it refuses an open non-loopback port, and SIGINT or
SIGTERM stop it - Serve, the local Ray it started and every process of theirs - within 10 s."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.ray, pytest.mark.own_cluster]  # each `genfactory serve` starts its own


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_with(marker: str) -> list[str]:
    """Command lines of live processes whose environment carries `marker` (inherited by every
    process Ray starts for this server: raylet, GCS, dashboard, agents, workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _genfactory(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gen_factory.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_serve_refuses_a_non_loopback_host_without_a_token(tmp_path):
    env = {**os.environ, "GENFACTORY_HOME": str(tmp_path)}
    env.pop("GENFACTORY_API_TOKEN", None)
    proc = _genfactory("serve", "--host", "0.0.0.0", "--port", str(_free_port()), env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "GENFACTORY_API_TOKEN" in out and "--insecure" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.extended)])
def test_a_signal_stops_serve_and_its_ray_within_10_s(tmp_path, sig):
    marker = f"GF_LIFECYCLE_{uuid.uuid4().hex}"
    port = _free_port()
    env = {**os.environ, "GENFACTORY_HOME": str(tmp_path), marker: "1"}
    env.pop("GENFACTORY_API_TOKEN", None)
    proc = _genfactory("serve", "--port", str(port), env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                break  # no token configured on loopback: open
        except requests.RequestException:  # not listening yet, or listening before the app is deployed
            pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(1)
    else:
        pytest.fail("the API did not come up in 180 s")
    assert len(_processes_with(marker)) > 3  # the server, raylet, GCS, Serve's actors...
    proc.send_signal(sig)
    started = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    stopped_in = time.monotonic() - started
    assert proc.returncode == 0 and stopped_in < 10, (stopped_in, out[-3000:])
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == [], out[-3000:]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
