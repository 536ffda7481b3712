"""Declarative training jobs (YAML) sent to a Ray cluster through the Ray Jobs API.

A spec becomes one `train …` command run by the cluster's job driver with the cluster's own Python
(`entrypoint`), so it works whether or not the node's PATH has gen_factory on it; the runtime
environment carries where to track (an MLflow server) and where to keep checkpoints (storage
every node can reach). The driver connects to the cluster through the RAY_ADDRESS that the Jobs
API sets, so the training spreads over the cluster's nodes.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import yaml

from gen_factory.data.validate import DataValidationError

SPEC_KEYS = {"name", "dataset", "label_column", "model", "resources", "registry", "anomaly", "seed", "env"}
MODEL_KEYS = {"loss", "variant", "epochs", "encoder_epochs", "batch_size", "patience", "refit", "warm_refit"}
ANOMALY_KEYS = {"normal_labels", "fpr", "knn"}
RESOURCE_KEYS = {"workers", "gpus_per_worker"}


class JobNotFound(LookupError):
    """The cluster answers but has no job of that id (the input's fault)."""


class ClusterUnreachable(ConnectionError):
    """Nothing answers as a Ray Jobs API at the address (not the input's fault: start the cluster)."""


def load_spec(path: Path) -> dict:
    """Read and check a job spec; unknown keys are errors (a typo must not be silently ignored)."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataValidationError("spec", str(path), f"give a readable YAML job spec ({err})") from err
    if not isinstance(spec, dict):
        raise DataValidationError("spec", str(path), "the spec must be a YAML mapping (see jobs/digits.yaml)")
    for section, allowed in ((None, SPEC_KEYS), ("model", MODEL_KEYS), ("resources", RESOURCE_KEYS),
                             ("registry", {"alias"}), ("anomaly", ANOMALY_KEYS)):
        block = spec if section is None else spec.get(section) or {}
        unknown = sorted(set(block) - allowed)
        if unknown:
            where = f"{section}." if section else ""
            raise DataValidationError(
                f"spec {where}{unknown[0]}", "unknown key", f"use only: {', '.join(sorted(allowed))}"
            )
    for key in ("name", "dataset"):
        if not spec.get(key):
            raise DataValidationError(f"spec {key}", "missing", f"add `{key}:` to {path}")
    return spec


# The job's shell is a child of the job supervisor, a Ray worker, whose parent is the head's raylet: the
# raylet starts every Python worker with `--python_worker_command=<the cluster's Python> ...`. Running the
# module with that interpreter makes the job independent of the node's and the submitter's PATH (a head
# started as `.venv/bin/ray start` has no `genfactory` on it). `python3` only where /proc is missing.
CLUSTER_PYTHON = (
    'raylet=$(sed -n "s/^PPid:[[:space:]]*//p" /proc/$PPID/status 2>/dev/null); '
    'py=$(tr "\\0" "\\n" </proc/$raylet/cmdline 2>/dev/null '
    '| sed -n "s/^--python_worker_command=\\([^ ]*\\).*/\\1/p"); [ -x "$py" ] || py=python3; '
)


def entrypoint(spec: dict) -> str:
    """The shell command the job driver runs: `train_args` by the cluster's own Python."""
    return f'{CLUSTER_PYTHON}exec "$py" -m gen_factory.cli {shlex.join(train_args(spec))}'


def train_args(spec: dict) -> list[str]:
    """The `genfactory` arguments (from `train` on) that the spec stands for."""
    model, res, reg = spec.get("model") or {}, spec.get("resources") or {}, spec.get("registry") or {}
    anomaly = spec.get("anomaly") or {}
    label = spec.get("label_column", "label")  # null: a table without labels (one class)
    args = ["train", str(spec["dataset"]), "--name", spec["name"],
            *(["--no-label"] if label is None else ["--label-column", label]),
            "--seed", str(spec.get("seed", 0))]
    for flag, value in (("--loss", model.get("loss")), ("--variant", model.get("variant")),
                        ("--epochs", model.get("epochs")), ("--encoder-epochs", model.get("encoder_epochs")),
                        ("--batch-size", model.get("batch_size")), ("--patience", model.get("patience")),
                        ("--workers", res.get("workers")),
                        ("--gpus-per-worker", res.get("gpus_per_worker")), ("--alias", reg.get("alias")),
                        ("--fpr", anomaly.get("fpr"))):
        if value is not None:
            args += [flag, str(value)]
    if model.get("refit") is not None:
        args.append("--refit" if model["refit"] else "--no-refit")
    if model.get("warm_refit") is not None:
        args.append("--warm-refit" if model["warm_refit"] else "--no-warm-refit")
    if anomaly.get("knn") is not None:
        args.append("--knn" if anomaly["knn"] else "--no-knn")
    for label in anomaly.get("normal_labels") or []:  # a one-class anomaly model of these labels
        args += ["--normal-label", str(label)]
    return args


def runtime_env(spec: dict) -> dict:
    """Env for the job: the spec's `env`, plus this shell's MLflow / storage settings if set."""
    env = {k: str(v) for k, v in (spec.get("env") or {}).items()}
    for key in ("MLFLOW_TRACKING_URI", "GENFACTORY_RAY_STORAGE", "GENFACTORY_HOME"):
        if key in os.environ and key not in env:
            env[key] = os.environ[key]
    env.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    env.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    return {"env_vars": env}


def client(address: str):
    """A Jobs API client that sends the cluster token when this machine has one.

    Ray >= 2.59 clusters use token authentication; the token comes from RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, as for Ray's own CLI.
    """
    from ray.job_submission import JobSubmissionClient

    token = os.environ.get("RAY_AUTH_TOKEN")
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if not token and path.exists():
        token = path.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(address, headers=headers)
    except ConnectionError as err:
        raise ClusterUnreachable(
            f"no Ray Jobs API answers at {address} ({err}) -- fix: start the cluster (`ray start --head`) "
            "or pass its dashboard URL with --address (or RAY_JOBS_ADDRESS)") from err


def act(address: str, action: str, job_id: str):
    """`status` (a JobStatus), `logs` (text) or `stop` (True if it was running) of one job; a job the
    cluster does not have is JobNotFound, not Ray's HTTP 404 RuntimeError."""
    c = client(address)
    call = {"status": c.get_job_status, "logs": c.get_job_logs, "stop": c.stop_job}[action]
    try:
        return call(job_id)
    except RuntimeError as err:
        if "does not exist" not in str(err):
            raise
        raise JobNotFound(f"job {job_id!r} is not on the cluster at {address} -- list them with "
                          f"`genfactory jobs list --address {address}`") from err


def submit(spec_path: Path, address: str, agent_wait_s: float = 60.0) -> str:
    """Submit the spec as a Ray job; returns its id. A head that has just started may not have its
    job agent up yet (HTTP 500 "No available agent"): that answer is retried for `agent_wait_s`."""
    spec = load_spec(spec_path)
    job_id = f"{spec['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    c = client(address)
    deadline = time.time() + agent_wait_s
    while True:
        try:
            return c.submit_job(entrypoint=entrypoint(spec), runtime_env=runtime_env(spec),
                                submission_id=job_id, metadata={"gen_factory.spec": str(spec_path)})
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.time() > deadline:
                raise
            time.sleep(2.0)


def wait(address: str, job_id: str, timeout_s: float = 3600, poll_s: float = 2.0) -> str:
    """Block until the job ends; return its final status (SUCCEEDED, FAILED, STOPPED)."""
    from ray.job_submission import JobStatus

    c = client(address)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = c.get_job_status(job_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            return str(status.value)
        time.sleep(poll_s)
    raise TimeoutError(f"job {job_id} still running after {timeout_s:.0f}s")
