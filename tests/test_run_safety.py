"""A run loses nothing and ships nothing broken: one training per run name (an OS lock that a killed
holder cannot leave behind), a finished run is not registered twice, an attempt killed mid-run is
closed as KILLED by the next, a run that exhausts its restarts ends with one line, and the MLflow
store survives two processes creating it at once. Real Ray, MLflow on SQLite and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gen_factory import registry
from gen_factory.registry import runs
from gen_factory.services.pipeline import TrainJob, champion_veto, train_and_register

TINY = {"epochs": 2, "encoder_epochs": 1, "num_workers": 1, "refit": False}


def _versions(name: str) -> list[str]:
    found = registry.client().search_model_versions(f"name = '{name}'")
    return sorted((str(v.version) for v in found), key=int)


def _holder(code: str, env: dict | None = None) -> subprocess.Popen:
    """A real second process running `code`; returns once it printed 'ready'."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture(scope="module")
def other_ray():
    """Another local Ray instance on the machine, as a second user's session would be."""
    proc = _holder("""
        import ray, time
        ray.init(address="local", num_cpus=1, include_dashboard=False)
        print("ready", flush=True)
        time.sleep(900)
    """, {"RAY_ADDRESS": ""})
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def trained(other_ray):
    """One tiny registered run shared by the tests below (with another local Ray running meanwhile)."""
    return train_and_register(TrainJob("breast_cancer", model_name="safety", **TINY), log=lambda *_: None)


def test_a_second_training_of_a_run_name_is_refused_before_ray_and_mlflow(tmp_path):
    import ray

    holder = _holder("""
        import time
        from gen_factory.registry.runs import run_lock
        with run_lock("busy-run"):
            print("ready", flush=True)
            time.sleep(300)
    """)
    try:
        was_up = ray.is_initialized()
        with pytest.raises(runs.RunBusy, match=rf"run 'busy-run' is being trained by pid {holder.pid}"):
            train_and_register(TrainJob("iris", model_name="busy", run_name="busy-run", **TINY))
        assert ray.is_initialized() == was_up  # refused before Ray started
        assert registry.find_run("busy-run") is None  # and before an MLflow run was opened
        assert runs.is_locked("busy-run")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not runs.is_locked("busy-run")  # the kernel released it with the killed holder: never stale


def test_two_processes_create_a_fresh_mlflow_store_at_once(tmp_path):
    code = """
        import sys
        from gen_factory import registry
        print("ready", flush=True)
        sys.stdin.readline()
        run_id, _ = registry.start_run(sys.argv[1], {"p": 1})
        print(run_id, flush=True)
    """
    for trial in range(2):
        home = tmp_path / f"home{trial}"
        procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), f"run-{i}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True,
                                  env={**os.environ, "GENFACTORY_HOME": str(home)}) for i in range(2)]
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # both go at once into a data directory without a database
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
        assert all(len(out.strip()) == 32 for out, _ in results)


@pytest.mark.ray
@pytest.mark.extended
def test_rerunning_a_finished_run_registers_nothing_new_unless_asked(trained):
    assert trained["ref"].alias == "champion"
    before = _versions("safety")
    lines: list[str] = []
    again = train_and_register(TrainJob("breast_cancer", model_name="safety", **TINY), log=lines.append)
    assert again["already_registered"] and again["ref"].version == trained["ref"].version
    assert _versions("safety") == before
    assert f"run 'safety' is finished: it registered safety version {trained['ref'].version}" in lines[-1]
    assert registry.client().get_run(trained["run_id"]).info.status == "FINISHED"

    forced = train_and_register(TrainJob("breast_cancer", model_name="safety", register_again=True, **TINY),
                                log=lambda *_: None)
    assert forced["run_id"] == trained["run_id"] and int(forced["ref"].version) == int(before[-1]) + 1
    assert registry.resolve("safety@champion").version == forced["ref"].version
    registry.client().set_registered_model_alias("safety", "champion", trained["ref"].version)  # as it was


@pytest.mark.ray
@pytest.mark.extended
def test_a_retry_after_a_kill_during_registration_lands_exactly_one_version(trained):
    """The state a driver SIGKILLed between creating the version and aliasing it leaves behind: the
    version exists, the alias and the run's finished tag do not, the MLflow run is RUNNING."""
    c = registry.client()
    version = _versions("safety")[-1]  # the newest version of this run (and these epochs)
    c.delete_registered_model_alias("safety", "champion")
    c.delete_tag(trained["run_id"], registry.REGISTERED_TAG)
    c.update_run(trained["run_id"], status="RUNNING")
    before = _versions("safety")
    lines: list[str] = []
    retry = train_and_register(TrainJob("breast_cancer", model_name="safety", **TINY), log=lines.append)
    assert _versions("safety") == before and retry["ref"].version == version
    assert registry.resolve("safety@champion").version == version  # the cut-short registration completed
    assert any("left RUNNING" in line and "marked it KILLED" in line for line in lines)
    run = c.get_run(trained["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[registry.KILLED_TAG] == "1"


@pytest.mark.ray
@pytest.mark.extended
def test_a_stale_running_run_is_marked_killed_before_training_goes_on(trained, capfd):
    c = registry.client()
    c.update_run(trained["run_id"], status="RUNNING")  # a driver killed mid-training left it so
    killed = int(c.get_run(trained["run_id"]).data.tags.get(registry.KILLED_TAG, "0"))
    lines: list[str] = []
    more = train_and_register(TrainJob("breast_cancer", model_name="safety", epochs=3, encoder_epochs=1,
                                       num_workers=1), log=lines.append)
    assert "marked it KILLED" in lines[0] and "registered safety version" in lines[-1]
    run = c.get_run(more["run_id"])
    assert more["run_id"] == trained["run_id"] and run.info.status == "FINISHED"
    assert run.data.tags[registry.KILLED_TAG] == str(killed + 1)
    assert more["ref"].version == _versions("safety")[-1]  # more epochs: a new version, trained on
    printed = capfd.readouterr()  # what Ray's workers printed through this driver while another local Ray ran
    assert "multiple active Ray instances" not in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err


@pytest.mark.ray
def test_exhausted_restarts_end_with_one_line_naming_the_run_and_the_resume(tmp_path):
    from gen_factory import settings
    from gen_factory.services.cluster import ensure_ray
    from gen_factory.services.pipeline import prepare
    from gen_factory.train.distributed import fit

    prep = prepare(TrainJob("iris", model_name="doomed", run_name="doomed-run", **TINY))
    config = {**prep.config, "dataset": str(tmp_path / "gone.csv")}  # every worker start fails for real
    ensure_ray()
    started = time.monotonic()
    with pytest.raises(runs.TrainingFailed) as failed:
        fit(config, "doomed-run", 1, 0.0, settings.ray_storage(), max_failures=1)
    message = str(failed.value)
    assert "\n" not in message and time.monotonic() - started < 120
    assert message.startswith("training run 'doomed-run' failed after 1 restart(s): worker 0:")
    assert "gone.csv" in message and "--run-name doomed-run to resume from the start" in message


def test_max_failures_is_validated():
    from gen_factory.data.validate import DataValidationError

    assert TrainJob("iris").max_failures == 3
    with pytest.raises(DataValidationError, match="max_failures"):
        TrainJob("iris", max_failures=-1)


@pytest.mark.parametrize("metrics,selected,figure", [
    ({"quality": 0.5, "tstr_accuracy": 0.0}, {"selected_train_frechet": float("inf")},
     "selected_train_frechet=inf"),
    ({"quality": 1.0, "dcr_ratio": float("nan")}, {"selected_train_frechet": 3.0}, "dcr_ratio=nan"),
    ({"quality": float("nan")}, {}, "quality=nan"),
])
def test_a_model_with_non_finite_figures_is_not_made_champion(metrics, selected, figure):
    veto = champion_veto(metrics, selected)
    assert veto is not None and veto.startswith(figure) and "fix:" in veto


def test_finite_figures_pass_the_champion_check():
    assert champion_veto({"quality": 0.9, "dcr_ratio": 1.1, "mode_collapse": []},
                         {"selected_train_frechet": 2.0}) is None


@pytest.mark.ray
@pytest.mark.own_cluster
def test_a_local_cluster_started_from_a_pool_thread_outlives_that_thread():
    """`generate_dataset` from a ThreadPoolExecutor starts the local Ray in a pool thread. Ray's head
    processes die with the thread that started them (PR_SET_PDEATHSIG), so the cluster must be started
    from one that lasts: after the pool is gone, Ray still answers (before, the process waited 60 s for
    its dead GCS and exited with status 1). In a process of its own, which that failure would end."""
    code = textwrap.dedent("""
        from concurrent.futures import ThreadPoolExecutor
        import ray
        from gen_factory.services.cluster import ensure_ray
        with ThreadPoolExecutor(1) as pool:
            pool.submit(ensure_ray, 1).result()
        ray.get(ray.put(0), timeout=5)  # the pool thread has exited by now
        pid = ray.get(ray.remote(lambda: __import__("os").getpid()).remote(), timeout=30)
        print("answered", pid, flush=True)
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and "answered" in done.stdout, done.stderr[-3000:]
    assert "SIGTERM handler" not in done.stderr  # Ray's warning for a start off the main thread: held
