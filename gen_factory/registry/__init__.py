"""MLflow at the edge: the experiment, runs, model versions with aliases, and resolving name@alias.

A registered version's files are exactly the export bundle (model.onnx, discriminator.onnx, encoder.onnx,
card.json, plus MLflow's MLmodel for the ONNX flavour with its signature and input example); consumers
download and run them with ONNX Runtime, so nothing is ever unpickled.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gen_factory import settings
from gen_factory.logs import held_to

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here, and no need for it
EXPERIMENT = "gen_factory"
RUN_NAME_TAG = "gen_factory.run_name"
# Set on a run once its version is registered (and aliased): the run is finished.
REGISTERED_TAG = "gen_factory.registered_version"
KILLED_TAG = "gen_factory.killed_attempts"  # how many attempts of the run ended without closing it
# On each version: what it was trained for, and the alias registration meant to give it ("" = none).
EPOCHS_TAG, ENCODER_EPOCHS_TAG = "gen_factory.epochs", "gen_factory.encoder_epochs"
ALIAS_TAG = "gen_factory.alias"
_ready: set[str] = set()  # tracking URIs whose store this process has created or found


class ModelNotFound(LookupError):
    """A model name, version or alias the registry does not have."""


class RegistryUnavailable(RuntimeError):
    """The registry could not be asked (server down, database locked or gone): not the model's fault."""


@dataclass
class ModelRef:
    """A resolved registry reference: `name` at `version`, reached through `alias` if one was given."""

    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def client():
    from mlflow import MlflowClient

    uri = settings.tracking_uri()
    # The URI is given to the client, never set globally: `mlflow.set_tracking_uri` also writes
    # MLFLOW_TRACKING_URI into this process's environment, which settings.tracking_uri() would then
    # prefer for good - a process whose data directory changes (tests, benches) would keep using
    # the first directory's database.
    if uri not in _ready:
        _create_store_once(uri)
    return MlflowClient(uri, registry_uri=uri)


def _create_store_once(uri: str) -> None:
    """Make a missing SQLite store appear complete, never half-made.

    MLflow creates the tables of an empty database on first use; two processes doing it at once (two
    `train` in a fresh data directory) crash one of them with a raw SQLAlchemy error. So the first
    process to find no database builds one in a temporary file, under a file lock beside it, and
    renames it into place: others wait for the lock, or find the finished file. An existing file is
    used as it is (no query here, so a locked store costs nothing extra); a server store makes its own.
    A failure here is left to the caller's first query, which reports it in its own terms.
    """
    from mlflow import MlflowClient

    from gen_factory.registry.runs import exclusive

    path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
    if path is not None and not path.exists():
        try:
            with exclusive(path.with_name(f"{path.name}.init.lock")):
                if not path.exists():
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    # MLflow logs INFO "Creating initial MLflow database tables..." when it builds a
                    # store: here the expected first use of a data directory.
                    with held_to("mlflow.store.db.utils", logging.WARNING):
                        c = MlflowClient(f"sqlite:///{tmp}", registry_uri=f"sqlite:///{tmp}")
                        c.search_experiments(max_results=1)  # the tracking store's tables
                        c.search_registered_models(max_results=1)  # the registry's (its own store object)
                    os.replace(tmp, path)
        except Exception:  # noqa: BLE001 - an unwritable directory, a full disk: MLflow will say which
            return
    _ready.add(uri)


def experiment_id() -> str:
    """The project experiment, created on first use with artifacts under the data directory."""
    return _get_or_create_experiment(client())


def _get_or_create_experiment(c) -> str:
    from mlflow.exceptions import MlflowException

    exp = c.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    location = None if settings.tracking_uri().startswith("http") else settings.artifact_root()
    try:
        return c.create_experiment(EXPERIMENT, artifact_location=location)
    except MlflowException:  # created by another process meanwhile (a server store takes no file lock)
        exp = c.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            raise
        return exp.experiment_id


def start_run(run_name: str, params: dict) -> tuple[str, bool]:
    """Open the MLflow run for `run_name`: the existing one (training resumes in it), else a new one.

    Returns (run_id, resumed).
    """
    c = client()
    exp = experiment_id()
    found = find_run(run_name)
    if found:
        run_id = found.info.run_id
        c.update_run(run_id, status="RUNNING")
        return run_id, True
    run = c.create_run(exp, run_name=run_name, tags={RUN_NAME_TAG: run_name})
    for key, value in params.items():
        c.log_param(run.info.run_id, key, str(value)[:6000])
    return run.info.run_id, False


def find_run(run_name: str):
    """The latest MLflow run of `run_name` (an mlflow Run), or None."""
    c = client()
    found = c.search_runs([experiment_id()], filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                          max_results=1, order_by=["attributes.start_time DESC"])
    return found[0] if found else None


def mark_killed(run_id: str) -> int:
    """Close a run an attempt left RUNNING as KILLED (the caller holds the run's lock, so no process is
    in it); count such attempts in a tag. Returns that count."""
    c = client()
    killed = int(c.get_run(run_id).data.tags.get(KILLED_TAG, "0")) + 1
    c.set_tag(run_id, KILLED_TAG, str(killed))
    c.set_terminated(run_id, status="KILLED")
    return killed


def finish_run(run_id: str, failed: bool = False) -> None:
    client().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def log_metrics(run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    c = client()
    for key, value in metrics.items():
        c.log_metric(run_id, key, float(value), step=step)


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    client().log_artifact(run_id, str(path), artifact_path)


def register(run_id: str, bundle_dir: Path, name: str, alias: str | None, description: str = "",
             epochs: tuple[int, int] = (0, 0), again: bool = False) -> ModelRef:
    """Log the bundle (with an MLmodel for the ONNX flavour) and register it as a version of `name`.

    Check, then register, keyed by the run: a version this run already registered for the same
    (GAN, encoder) `epochs` is reused, not duplicated (a retry after a kill between the version and
    the end of registration lands exactly one); `again` registers a new one regardless. The caller
    holds the run's lock, so no other process registers for this run meanwhile.
    """
    c = client()
    existing = None if again else version_for(run_id, name, epochs)
    if existing is None:
        _write_flavor_metadata(bundle_dir)
        c.log_artifacts(run_id, str(bundle_dir), "model")
        source = f"{c.get_run(run_id).info.artifact_uri}/model"
        if not c.search_registered_models(filter_string=f"name = '{name}'"):
            c.create_registered_model(name, description=description)
        tags = {EPOCHS_TAG: str(epochs[0]), ENCODER_EPOCHS_TAG: str(epochs[1]), ALIAS_TAG: alias or ""}
        existing = c.create_model_version(name, source=source, run_id=run_id, description=description,
                                          tags=tags)
    return complete_registration(run_id, existing)


def version_for(run_id: str, name: str, epochs: tuple[int, int], at_least: bool = False):
    """The latest version of `name` that run `run_id` registered for `epochs` (for at least as many
    epochs with `at_least`), or None. Versions from before these tags count as (0, 0)."""
    found = []
    for mv in client().search_model_versions(f"run_id = '{run_id}'"):
        if mv.name != name:
            continue
        trained = (int(mv.tags.get(EPOCHS_TAG, 0)), int(mv.tags.get(ENCODER_EPOCHS_TAG, 0)))
        enough = all(t >= e for t, e in zip(trained, epochs, strict=True))
        if trained == tuple(epochs) or (at_least and enough):
            found.append(mv)
    return max(found, key=lambda mv: int(mv.version), default=None)


def complete_registration(run_id: str, mv) -> ModelRef:
    """Give version `mv` the alias its registration meant (unless the run already finished: the alias may
    have moved on since, on purpose) and tag the run finished with it. Safe to repeat."""
    c = client()
    alias = mv.tags.get(ALIAS_TAG) or None
    if alias and c.get_run(run_id).data.tags.get(REGISTERED_TAG) != str(mv.version):
        c.set_registered_model_alias(mv.name, alias, mv.version)
    c.set_tag(run_id, REGISTERED_TAG, str(mv.version))
    return ModelRef(mv.name, str(mv.version), alias)


def parse_ref(ref: str, default_alias: str = settings.DEFAULT_ALIAS) -> tuple[str, str | None, str | None]:
    """'name@alias' | 'name/3' | 'name' -> (name, alias, version); ModelNotFound for anything else
    (an empty part, a version that is not a number), so no malformed name reaches the registry."""
    name, alias, version = ref, default_alias, None
    if "@" in ref:
        name, alias = ref.split("@", 1)
    elif "/" in ref:
        name, version = ref.split("/", 1)
        alias = None
        if not version.isdigit():
            raise ModelNotFound(
                f"model {ref!r}: version {version!r} is not a number; write NAME/3 or NAME@alias"
            )
    if not name.strip() or (alias is not None and not alias.strip()):
        raise ModelNotFound(f"model {ref!r}: write NAME, NAME@alias or NAME/version")
    return name, alias, version


def resolve(ref: str) -> ModelRef:
    """Look up `ref` in the registry now (an alias moved to a new version is seen at once)."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_ref(ref)
    c = client()
    try:
        if alias:
            mv = c.get_model_version_by_alias(name, alias)
        else:
            mv = c.get_model_version(name, version)
    except MlflowException as err:
        if err.error_code not in _NOT_FOUND_CODES:
            raise RegistryUnavailable(f"the model registry at {settings.tracking_uri()} did not answer for "
                                      f"{ref!r} ({_first_line(err)})") from err
        raise ModelNotFound(f"model {ref!r} is not in the registry ({_first_line(err)}); "
                            "list the registered models with `genfactory models`") from err
    except Exception as err:  # noqa: BLE001 - a database or network error below MLflow's own
        raise RegistryUnavailable(f"the model registry at {settings.tracking_uri()} did not answer for "
                                  f"{ref!r} ({_first_line(err)})") from err
    return ModelRef(name, str(mv.version), alias)


_NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


class CachedResolver:
    """`resolve` with each answer kept for `ttl_s` seconds: the API then makes no registry query (a
    thread hop and a SQLite read) per request, and still serves a moved alias within `ttl_s` plus
    one registry round trip.

    Once a reference has been resolved, its answer is returned at once even when expired, while one
    background query refreshes it: a registry that is slow or down (MLflow waits 20 s on a locked
    SQLite file; a stopped server refuses) never stalls or fails requests for a model already
    served - its files are local. A refresh that finds the name gone drops it (the next request
    gets the 404). A reference never resolved is looked up on the caller's thread: ModelNotFound
    or RegistryUnavailable reach the caller, and failures are not kept, so a model registered a
    moment later is found at once."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._found: dict[str, tuple[float, ModelRef]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, ref: str) -> ModelRef:
        found = self.cached(ref)
        if found is None:
            found = resolve(ref)
            self._found[ref] = (time.monotonic() + self.ttl_s, found)
        return found

    def cached(self, ref: str) -> ModelRef | None:
        """The known answer for `ref` (refreshed in the background once expired), else None: no
        query on the caller's thread, so no thread hop either."""
        hit = self._found.get(ref)
        if hit is None:
            return None
        if time.monotonic() >= hit[0]:
            self._refresh_in_background(ref)
        return hit[1]

    def _refresh_in_background(self, ref: str) -> None:
        with self._lock:
            if ref in self._refreshing:
                return
            self._refreshing.add(ref)
        threading.Thread(target=self._refresh, args=(ref,), daemon=True, name=f"resolve {ref}").start()

    def _refresh(self, ref: str) -> None:
        try:
            self._found[ref] = (time.monotonic() + self.ttl_s, resolve(ref))
        except RegistryUnavailable:  # keep serving what we know; ask again after another TTL
            self._found[ref] = (time.monotonic() + self.ttl_s, self._found[ref][1])
        except ModelNotFound:
            self._found.pop(ref, None)
        finally:
            with self._lock:
                self._refreshing.discard(ref)


def download(ref: ModelRef) -> Path:
    """Local copy of a version's files, cached per version under the data directory."""
    import mlflow

    target = settings.data_dir() / "model_cache" / ref.name / ref.version
    if (target / "card.json").exists():
        return target
    tmp = target.with_name(f".{ref.version}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    source = client().get_model_version_download_uri(ref.name, ref.version)
    # A bundle is a few small files: MLflow's per-file tqdm bar would only print noise into logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The version's artifact folder lands as a folder of its own inside `tmp`.
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp),
                                                     tracking_uri=settings.tracking_uri()))
    if not (local / "card.json").exists():  # registered by hand, not by `genfactory train`
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelNotFound(f"{ref.name} version {ref.version} has no gen_factory model in its files (no "
                            "card.json) -- fix: register versions with `genfactory train`, or ask for "
                            "another version")
    shutil.rmtree(target, ignore_errors=True)
    local.rename(target)  # atomic: a half-downloaded model is never picked up
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def list_models() -> list[dict]:
    """Every registered model with its aliases and latest version."""
    c = client()
    out = []
    for rm in c.search_registered_models():
        versions = c.search_model_versions(f"name = '{rm.name}'")
        latest = max((int(v.version) for v in versions), default=None)
        out.append({"name": rm.name, "aliases": dict(rm.aliases or {}), "latest_version": latest,
                    "description": rm.description or ""})
    return out


def _write_flavor_metadata(bundle_dir: Path) -> None:
    """MLflow's ONNX-flavour metadata (MLmodel with a signature and an input example, requirements)
    beside our files, so MLflow tools recognise the generator and know what to feed it. The
    requirements name onnxruntime-gpu: the CPU package would shadow it."""
    import tempfile

    import mlflow.onnx
    import onnx

    signature, example = generator_signature(bundle_dir / "model.onnx")
    with tempfile.TemporaryDirectory() as tmp:
        flavored = Path(tmp) / "m"
        mlflow.onnx.save_model(onnx.load(str(bundle_dir / "model.onnx")), str(flavored),
                               pip_requirements=["onnxruntime-gpu", "onnx", "numpy"], signature=signature,
                               input_example=example)
        for item in flavored.iterdir():
            if item.name != "model.onnx":
                shutil.copy2(item, bundle_dir / item.name)


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
               "tensor(int32)": "int32"}


def generator_signature(model_path: Path, rows: int = 2) -> tuple[object, dict]:
    """(MLflow signature, input example) of an ONNX generator, read from the graph itself by running
    it on `rows` rows of zeros (noise 0, label 0, cond 0 = no condition): what it really takes and
    gives, whatever the card says."""
    import numpy as np
    import onnxruntime as ort
    from mlflow.models import infer_signature

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    example = {arg.name: np.zeros([rows] + [d if isinstance(d, int) else 1 for d in arg.shape[1:]],
                                  dtype=_ORT_DTYPES[arg.type]) for arg in session.get_inputs()}
    outputs = dict(zip([arg.name for arg in session.get_outputs()], session.run(None, example), strict=True))
    return infer_signature(example, outputs), example


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200]
