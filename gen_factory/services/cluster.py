"""Connect to Ray: the cluster at RAY_ADDRESS if set, else a local one sized to this machine."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from gen_factory import settings
from gen_factory.logs import held_to


def ensure_ray(num_cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    # Ray Train drains worker reports on this interval (default 2 s): with small epochs that
    # wait, not the training, would dominate. Set before init so the controller inherits it.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    # Worker prints go straight to the driver's console (once, not also through Train's logger).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # Serve's direct ingress (each API replica on a port of its own, skipping the proxy hop: score
    # p50 10.2 -> 3.6 ms, bench/serve.py) only on request: its port moves when a replica restarts
    # and its replicas drain for 30 s on shutdown (serving/app.py).
    os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", os.environ.get("GENFACTORY_DIRECT_INGRESS", "0"))
    env = {"GENFACTORY_HOME": str(settings.data_dir()), "MLFLOW_TRACKING_URI": settings.tracking_uri(),
           "MLFLOW_DISABLE_TELEMETRY": "true",
           **{k: os.environ[k] for k in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_ENABLE_PRINT_PATCH",
                                         "RAY_SERVE_ENABLE_DIRECT_INGRESS")}}
    if os.environ.get("RAY_ADDRESS"):
        # Inside a Ray job the job's runtime env already carries some of these: merge, don't refuse.
        os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
        ray.init(runtime_env={"env_vars": env}, log_to_driver=True)
    else:
        # address="local": always a fresh local instance, never a `ray start` cluster found in
        # /tmp/ray. The dashboard serves the State API that Ray Train's placement-group cleaner
        # polls; it gets a free port so several local instances can coexist.
        # At least 4 logical CPUs: Serve replicas, Ray Data actors and training workers can then
        # coexist on a laptop-sized machine (the OS shares the physical cores).
        port = _free_port()
        # The State API (Train's placement-group cleaner polls it from a worker, which has no
        # RAY_ADDRESS) looks for "the" local cluster; with another local Ray on the machine it finds
        # two and its monitor thread dies with a 25-line ConnectionError. Name our dashboard instead.
        # Set before init: the Ray processes started here (and this one's own State API calls) inherit it.
        # Only for the processes started here: left in this process's environment, it would point
        # later Ray commands and clusters (a `ray start` from here, the next test) at a dead dashboard.
        api = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
        before = os.environ.get("RAY_API_SERVER_ADDRESS")
        os.environ.update(api)
        try:
            # A new local cluster gets token authentication, and Ray logs a WARNING saying so on every
            # start unless RAY_AUTH_MODE is set. Setting it is no cure: Ray reads the mode when first
            # imported, and a mode set later skips the refresh its default does (the GCS then refuses
            # our own token). So only that module's logger is held to errors, only for init.
            with held_to("ray._private.authentication.authentication_token_setup", logging.ERROR):
                _from_a_lasting_thread(lambda: ray.init(
                    address="local", num_cpus=num_cpus or max(4, os.cpu_count() or 4),
                    include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
                    runtime_env={"env_vars": {**env, **api, **_local_train_env()}},
                    configure_logging=True, logging_level="warning"))
        finally:
            if before is None:
                os.environ.pop("RAY_API_SERVER_ADDRESS", None)
            else:
                os.environ["RAY_API_SERVER_ADDRESS"] = before


def _from_a_lasting_thread(start: Callable[[], object]) -> None:
    """Run `start` (a local `ray.init`) so that the cluster outlives the calling thread.

    Ray starts its head processes (GCS, raylet) with PR_SET_PDEATHSIG, and Linux sends that signal
    when the *thread* that started them exits. Called from a pool thread (a ThreadPoolExecutor running
    `generate_dataset`), the local cluster was SIGKILLed the moment that thread ended, and every later
    Ray call of the process waited 60 s and exited. The main thread lives as long as the process; any
    other thread hands the start to a daemon thread that never ends."""
    if threading.current_thread() is threading.main_thread():
        start()
        return
    started, failed = threading.Event(), []

    def keeper() -> None:
        try:
            # Off the main thread Ray warns that it set no SIGTERM handler; none is needed: the head
            # processes die with this process (the signal above), and the process's own handling of
            # SIGTERM is the caller's main thread's.
            with held_to("ray._private.worker", logging.ERROR):
                start()
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            failed.append(err)
        started.set()
        if not failed:
            threading.Event().wait()  # the head processes' parent thread: lives as long as the process

    threading.Thread(target=keeper, name="ray-local-cluster", daemon=True).start()
    started.wait()
    if failed:
        raise failed[0]


def _local_train_env() -> dict[str, str]:
    """Ray Train's preemption watcher follows node drains (spot instances reclaimed on a cluster); one
    machine has none, and starting the watcher logs an error line per run (an actor restartable with
    arguments in the object store, ray-project/ray#53727). Off locally unless the user set it."""
    return {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ.get("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
