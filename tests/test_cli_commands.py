"""`genfactory train`, `generate` and `jobs status/logs/stop` through `gen_factory.cli.main`, on the real
engines: what each writes (the registered version and its alias; the label-partitioned dataset, its
manifest and what `genfactory verify` says of it; a job's state and output) and the exit codes of
their refusals.

The jobs tests use the Jobs API of the local Ray that `ensure_ray` starts (its dashboard is the job
server): no `ray start` cluster, and here, after the training, that Ray is already up (~4 s in all)."""

import json
import shlex
import socket
import sys
import time

import pyarrow.parquet as pq
import pytest

from gen_factory import registry
from gen_factory.cli import main as cli
from gen_factory.services import jobs
from gen_factory.synthesizer import Synthesizer


@pytest.fixture
def table_file(tmp_path):
    """A small valid table (labels in `segment`) for the refusals: none of them gets as far as Ray."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"x": rng.normal(size=60), "segment": np.repeat(["p", "q"], 30)}).to_parquet(path)
    return path


@pytest.mark.ray  # the session's shared model, trained by this command with Ray Train
def test_train_registers_a_version_under_the_alias_it_was_given(cli_trained_table):
    trained = cli_trained_table
    assert trained["code"] == 0, trained["err"][-3000:]
    result = json.loads(trained["out"])  # --json: the result alone on stdout
    ref = registry.resolve("cli-table@staging")
    assert result["model"] == {"name": "cli-table", "version": ref.version, "alias": "staging",
                               "uri": f"models:/cli-table/{ref.version}"}
    c = registry.client()
    assert dict(c.get_registered_model("cli-table").aliases) == {"staging": int(ref.version)}  # no champion
    run = c.get_run(c.get_model_version("cli-table", ref.version).run_id)
    assert run.info.status == "FINISHED" and result["run_id"] == run.info.run_id
    assert [m.step for m in c.get_metric_history(run.info.run_id, "d_loss")] == [1]  # --epochs 1
    assert run.data.params["label_column"] == "segment" and run.data.params["seed"] == "3"
    files = {a.path.split("/")[-1] for a in c.list_artifacts(run.info.run_id, "model")}
    assert {"model.onnx", "discriminator.onnx", "card.json"} <= files
    rows = Synthesizer.load("cli-table@staging").sample(counts={"rare": 4, "common": 2}, seed=0)
    assert list(rows.columns) == ["x", "y", "segment"]  # --label-column named the label column
    assert rows["segment"].tolist() == ["common"] * 2 + ["rare"] * 4


@pytest.mark.parametrize("run_name, extra, words", [
    ("refused-label", ["--label-column", "tier"], "'tier'"),
    ("refused-type", ["--column-type", "x"], "--column-type"),
    ("refused-epochs", ["--epochs", "0"], "epochs"),
    ("refused-variant", ["--variant", "dcgan"], "variant"),
])
def test_train_refuses_bad_arguments_before_anything_runs(table_file, capsys, run_name, extra, words):
    argv = ["train", str(table_file), "--name", run_name, "--label-column", "segment", *extra]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
    assert registry.find_run(run_name) is None  # no MLflow run opened, nothing registered
    assert run_name not in {m["name"] for m in registry.list_models()}


def test_train_refuses_a_missing_file_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    assert cli(["train", str(missing), "--name", "never-trained"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert registry.find_run("never-trained") is None


@pytest.mark.ray
def test_train_precisions_ships_an_int8_generator_that_samples_the_same_schema(cli_trained_table):
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.sampling import generate_table

    assert cli_trained_table["code"] == 0, cli_trained_table["err"][-3000:]
    bundle = registry.download(registry.resolve("cli-table@staging"))
    fp32, int8 = OnnxModel(bundle), OnnxModel(bundle, precision="int8")
    assert fp32.card.files.precisions == {"int8": "generator.int8.onnx"} and int8.precision == "int8"
    rows = [generate_table(model, [30, 20, 10], seed=1) for model in (fp32, int8)]
    assert rows[0].schema == rows[1].schema and rows[1].num_rows == 60
    assert rows[0].column("x").to_pylist() != rows[1].column("x").to_pylist()  # the int8 graph ran


@pytest.mark.ray
@pytest.mark.extended  # Ray Data, ~5 s; bulk generation is in the default run (test_e2e, test_bulk_integrity)
def test_generate_writes_the_partitioned_dataset_and_manifest_that_verify_accepts(
        cli_trained_table, tmp_path, capsys):
    assert cli_trained_table["code"] == 0
    version = registry.resolve("cli-table@staging").version
    out = tmp_path / "bulk"
    argv = ["generate", "cli-table@staging", "--out", str(out), "--count", "rare=7", "--count", "common=5",
            "--workers", "1", "--block-rows", "4"]
    assert cli([*argv, "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "_manifest.json").read_text())
    files = len(manifest["files"])
    assert printed.startswith(f"wrote 12 rows in {files} files from models:/cli-table/{version} to {out}")
    assert manifest["rows"] == 12 and manifest["counts"] == {"common": 5, "mid": 0, "rare": 7}
    assert manifest["model_uri"] == f"models:/cli-table/{version}" and manifest["seed"] == 4
    assert {f["path"].split("/")[0] for f in manifest["files"]} == {"segment=common", "segment=rare"}
    assert sum(f["rows"] for f in manifest["files"]) == 12 and max(f["rows"] for f in manifest["files"]) <= 4
    table = pq.read_table(out).to_pandas()  # Hive partitions: the label comes back from the folder names
    assert table["segment"].astype(str).value_counts().to_dict() == {"rare": 7, "common": 5}
    assert cli(["verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {out}: {files} files, 12 rows")

    assert cli([*argv, "--seed", "5"]) == 2  # DIR exists: refused without --overwrite, nothing touched
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((out / "_manifest.json").read_text()) == manifest
    assert cli([*argv, "--seed", "5", "--overwrite"]) == 0
    assert json.loads((out / "_manifest.json").read_text())["seed"] == 5
    assert cli(["verify", str(out)]) == 0

    assert cli(["generate", "cli-table@staging", "--out", str(tmp_path / "x"), "--count", "zebra=1"]) == 2
    assert "zebra" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert cli(["generate", "cli-table/99", "--out", str(tmp_path / "y"), "--rows", "3"]) == 2
    assert "'cli-table/99'" in capsys.readouterr().err and not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def job_server():
    """The dashboard URL of the local Ray (`ensure_ray` always starts it with the dashboard, which
    serves the Jobs API); shut down after the module unless it was up before."""
    import ray

    from gen_factory.services.cluster import ensure_ray

    was_up = ray.is_initialized()
    ensure_ray()
    yield "http://" + ray._private.worker.get_dashboard_url()  # no public getter for a running Ray's URL
    if not was_up:
        ray.shutdown()


def _submit(address: str, code: str) -> str:
    """A job whose driver runs `code` in this interpreter; returns its submission id. A Ray that has
    just started may not have its job agent up yet: that answer is retried, as `jobs.submit` does."""
    deadline = time.monotonic() + 180  # the agent may take over a minute on a loaded 2-core machine
    while True:
        try:
            return jobs.client(address).submit_job(entrypoint=shlex.join([sys.executable, "-c", code]))
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.ray
def test_jobs_status_logs_and_stop_follow_a_real_job(job_server, capsys):
    address = ["--address", job_server]
    running = _submit(job_server, "import time; print('gf-job-started', flush=True); time.sleep(600)")
    failing = _submit(job_server, "print('gf-job-failing', flush=True); raise SystemExit(3)")
    c = jobs.client(job_server)
    _wait_for(lambda: "gf-job-started" in c.get_job_logs(running), "the job's first line")

    assert cli(["jobs", "status", running, *address]) == 0
    assert capsys.readouterr().out == "RUNNING\n"
    assert cli(["jobs", "logs", running, *address]) == 0
    assert "gf-job-started" in capsys.readouterr().out
    assert cli(["jobs", "list", *address]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert listed[running] == "RUNNING"

    assert cli(["jobs", "stop", running, *address]) == 0
    assert capsys.readouterr().out == "stopped\n"
    _wait_for(lambda: c.get_job_status(running).value == "STOPPED", "the stopped job to end")
    assert cli(["jobs", "status", running, *address]) == 0
    assert capsys.readouterr().out == "STOPPED\n"
    assert cli(["jobs", "stop", running, *address]) == 0  # nothing left to stop: said so, not an error
    assert capsys.readouterr().out == "not running\n"

    _wait_for(lambda: c.get_job_status(failing).value == "FAILED", "the failing job to end")
    assert cli(["jobs", "status", failing, *address]) == 0
    assert capsys.readouterr().out == "FAILED\n"
    assert cli(["jobs", "logs", failing, *address]) == 0
    assert "gf-job-failing" in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.parametrize("action", ["status", "logs", "stop"])
def test_jobs_on_an_unknown_job_is_one_line_naming_it(job_server, capsys, action):
    assert cli(["jobs", action, "gf-no-such-job", "--address", job_server]) == 2  # the input's fault
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gf-no-such-job" in err and "Traceback" not in err


def test_jobs_on_an_unreachable_cluster_is_one_line_naming_it(capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert cli(["jobs", "status", "some-job", "--address", address]) == 1  # not the input's fault
    err = capsys.readouterr().err
    assert err.startswith("error: ") and address in err and "Traceback" not in err
