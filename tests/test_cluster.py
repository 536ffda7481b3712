"""A real two-node Ray cluster and a real MLflow server, started on this machine.

`ray start --head` (with the dashboard / Jobs API) plus a second node joined with `ray start
--address`, each with one CPU so a two-worker training must span both; `mlflow server` with a
SQLite backend and proxied artifacts. A job spec is submitted through the Ray Jobs API; the
test then finds the new version and alias in the MLflow server's registry. Processes are
started in their own sessions and stopped by signal (never `ray stop`, which would end every
Ray on the machine).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
import yaml

from gen_factory.cli import main as cli

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_args(root: Path) -> list[str]:
    """`ray start` flags of one node; its agent gets a free port, as the default (52365) may be held
    by any other Ray on the machine."""
    return ["--block", "--num-cpus=1", f"--temp-dir={root}/ray", f"--dashboard-agent-listen-port={_port()}"]


def _get(url: str) -> requests.Response:
    """GET with the cluster's token: Ray's local clusters require token authentication."""
    token_file = Path.home() / ".ray" / "auth_token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else {}
    return requests.get(url, headers=headers, timeout=5)


def _wait(check, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f}s")


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="gfc", dir="/tmp"))  # short: Ray's socket paths have a length limit
    gcs, dash, mlflow_port = _port(), _port(), _port()
    # Token auth on every node (Ray >= 2.59): a joining node must present the head's token.
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
           "RAY_AUTH_MODE": "token"}
    procs = [
        subprocess.Popen(
            [
                BIN / "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--backend-store-uri",
                f"sqlite:///{root}/mlflow.db",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                BIN / "ray",
                "start",
                "--head",
                f"--port={gcs}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
                *_node_args(root),
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        dashboard = f"http://127.0.0.1:{dash}"
        _wait(lambda: _get(f"{dashboard}/api/version").ok, "the Ray head")
        procs.append(subprocess.Popen([BIN / "ray", "start", f"--address=127.0.0.1:{gcs}", *_node_args(root)],
                                      env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait(lambda: len(_get(f"{dashboard}/nodes?view=summary").json()["data"]["summary"]) == 2,
              "the second Ray node")
        tracking = f"http://127.0.0.1:{mlflow_port}"
        _wait(lambda: requests.get(f"{tracking}/health", timeout=5).ok, "the MLflow server")
        yield {"dashboard": dashboard, "tracking": tracking, "root": root}
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.extended  # a 2-node cluster, an MLflow server: ~95 s; `make test-all`
def test_job_spec_trains_across_two_nodes_and_registers_in_the_mlflow_server(cluster, tmp_path, capsys):
    from mlflow import MlflowClient

    spec = yaml.safe_load(Path("jobs/breast_cancer.yaml").read_text())
    spec.update(name="cluster-table", model={**spec["model"], "epochs": 3}, registry={"alias": "staging"},
                env={"MLFLOW_TRACKING_URI": cluster["tracking"],
                     "GENFACTORY_RAY_STORAGE": str(cluster["root"] / "shared-checkpoints"),
                     "GENFACTORY_HOME": str(cluster["root"] / "home")})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))

    assert cli(["jobs", "submit", str(path), "--address", cluster["dashboard"], "--wait"]) == 0
    out = capsys.readouterr().out
    assert "training on 2 worker(s) across 2 node(s)" in out and "SUCCEEDED" in out

    registry = MlflowClient(cluster["tracking"])
    version = registry.get_model_version_by_alias("cluster-table", "staging")
    assert registry.get_run(version.run_id).data.tags["gen_factory.nodes"] == "2"
    assert {a.path for a in registry.list_artifacts(version.run_id, "model")} >= {
        "model/model.onnx",
        "model/card.json",
    }
    assert (cluster["root"] / "shared-checkpoints" / "cluster-table").is_dir()
    assert cli(["jobs", "list", "--address", cluster["dashboard"]]) == 0
    assert "cluster-table" in capsys.readouterr().out


@pytest.mark.extended  # a 2-node cluster, an MLflow server: ~95 s; `make test-all`
def test_serve_config_deploys_on_the_cluster_and_serves_from_the_mlflow_server(cluster, tmp_path):
    """`serve deploy` of serving/config.yaml (port and tracking URI changed for the test)."""
    config = yaml.safe_load(Path("serving/config.yaml").read_text())
    port = _port()
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    config["applications"][0]["args"] = {
        "tracking_uri": cluster["tracking"],
        "data_dir": str(cluster["root"] / "serve"),
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    subprocess.run(
        [BIN / "serve", "deploy", str(path), "--address", cluster["dashboard"]],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    api = f"http://127.0.0.1:{port}"
    _wait(lambda: requests.get(f"{api}/healthz", timeout=5).ok, "the Serve application")
    assert "cluster-table" in {m["name"] for m in requests.get(f"{api}/v1/models", timeout=30).json()}
    resp = requests.post(
        f"{api}/v1/models/cluster-table@staging/generate", json={"rows_per_label": 5}, timeout=120
    )
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/vnd.apache.parquet"


def test_bad_spec_is_rejected_before_submission(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndataset: digits\nmodel: {epoch: 3}\n")
    assert cli(["jobs", "submit", str(path), "--address", "http://127.0.0.1:1"]) == 2
    assert "model.epoch" in capsys.readouterr().err
