"""Output scripts can use: `--json` is one JSON document on stdout (human lines on stderr), and progress
never lands on stdout nor floods a log."""

import json
import math

import numpy as np
import pytest

from gen_factory import progress, registry
from gen_factory.cli import main as cli


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """An empty data directory (its own MLflow store) for this test only."""
    monkeypatch.setenv("GENFACTORY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_models_json_lists_nothing_then_the_registered_model(fresh_home, capsys):
    assert cli(["models", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "INFO" not in err  # MLflow's db-init lines are held back

    c = registry.client()
    c.create_registered_model("out-table", description="conditional GAN on x (table)")
    for _ in range(2):
        c.create_model_version("out-table", source=fresh_home.as_uri())
    c.set_registered_model_alias("out-table", "champion", "1")
    assert cli(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "out-table", "aliases": {"champion": 1},
                                                    "latest_version": 2,
                                                    "description": "conditional GAN on x (table)"}]


def test_train_json_is_the_result_alone_on_stdout(monkeypatch, capsys):
    """The pipeline itself is exercised end to end in test_e2e; here only what the CLI makes of its result."""
    from gen_factory.services import pipeline

    def fake_train(job, log=print):
        log(f"[train] training {job.model_name}")  # human lines, and a worker's, printed to stdout
        print("(RayTrainWorker pid=1) training on 2 worker(s) across 1 node(s)")
        return {"ref": registry.ModelRef("t-cgan", "3", "champion"), "run_id": "abc",
                "metrics": {"quality": np.float64(0.71), "dcr_ratio": math.inf, "per_column": np.arange(2)},
                "anomaly": {}, "parity": {"generator": 1e-6}, "epochs": 5, "seconds": 12.5}

    monkeypatch.setattr(pipeline, "train_and_register", fake_train)
    assert cli(["train", "breast_cancer", "--name", "t-cgan", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["model"] == {"name": "t-cgan", "version": "3", "alias": "champion",
                               "uri": "models:/t-cgan/3"}
    assert result["metrics"] == {"quality": 0.71, "dcr_ratio": None, "per_column": [0, 1]}  # strict JSON
    assert "[train] training t-cgan" in err and "RayTrainWorker" in err


@pytest.mark.parametrize("env, isatty, expected", [
    ("", True, "off"),  # under pytest, whatever stderr is
    ("lines", False, "lines"),
    ("BAR", False, "bar"),
])
def test_progress_mode_follows_stderr_pytest_and_the_override(monkeypatch, env, isatty, expected):
    monkeypatch.setenv("GENFACTORY_PROGRESS", env)
    monkeypatch.setattr("sys.stderr.isatty", lambda: isatty, raising=False)
    assert progress.mode() == expected


def test_progress_lines_come_once_per_tenth_on_stderr_after_a_quiet_start(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    with progress.progress(200, "epoch", "epoch", how="lines") as bar:
        for n in range(1, 201):
            now[0] = n * 0.05  # 10 s in all: the first tenth (1 s) is within QUIET_S
            bar.advance_to(n, train_frechet=1.5)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 9
    assert lines[0].startswith("epoch 40/200 (20%)  train_frechet=1.5  [2s elapsed, ETA 8s]")
    assert lines[-1].startswith("epoch 200/200 (100%)") and "ETA 0s" in lines[-1]


def test_progress_bar_goes_to_stderr(capsys):
    with progress.progress(3, "B", "pull", how="bar") as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == "" and "pull" in err and "100%" in err


def test_pull_streams_to_the_file_and_prints_only_its_summary(tmp_path, monkeypatch, capsys):
    """A stub API: the body arrives in pieces, the file is written whole, stdout has one line."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = bytes(range(256)) * 5000

    class Api(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            for key, value in (("Content-Length", len(body)), ("X-Rows", 40), ("X-Model-Version", "2")):
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GENFACTORY_PROGRESS", "bar")
    try:
        out = tmp_path / "rows.parquet"
        url = f"http://127.0.0.1:{server.server_port}"
        assert cli(["pull", "m", "--out", str(out), "--rows-per-label", "20", "--url", url]) == 0
    finally:
        server.shutdown()
    printed, err = capsys.readouterr()
    assert out.read_bytes() == body and not list(tmp_path.glob(".*partial"))
    assert printed == f"wrote 40 rows ({len(body)} bytes) from version 2 to {out}\n"
    assert "m: 40 rows" in err and "100%" in err
