"""Ray Serve + FastAPI: generate labelled Parquet and score anomalies with registered ONNX models.

Two deployments:
- `GenFactoryAPI`, the HTTP ingress, resolves ``name@alias`` (or ``name/version``) in the MLflow
  registry and keeps the answer for ``GENFACTORY_ALIAS_TTL_S`` (1 s): an alias moved to a new
  version is served within that, no restart. Requests of at most INGRESS_MAX_ROWS rows run
  here, on the ingress's own ONNX Runtime sessions: a second Serve hop would cost more than them;
- `ModelRunner` takes the larger requests. It is multiplexed by ``name/version`` (Serve keeps
  at most MAX_MODELS_PER_REPLICA per replica, least recently used out, and routes a request to a
  replica that already has its model) and batches concurrent score requests.
Bad requests get a 4xx whose message names the field, the value and the fix.

Two ways in: the Serve proxy's port (8000 by default; it balances over ingress replicas), and,
with Serve's direct ingress (on wherever `gen_factory.cluster` starts Ray), each ingress replica's
own port (`direct_url`): one HTTP hop fewer, about 7 ms less per request here (bench/serve.py).

Run it with ``genfactory serve`` or ``serve run serving/config.yaml``.
"""
# No `from __future__ import annotations` here: FastAPI must see the request models as real
# classes through Serve's ingress wrapper, or bodies are mistaken for query parameters.

import asyncio
import os

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from gen_factory.data.validate import DataValidationError

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MAX_MODELS_PER_REPLICA = 8
INGRESS_MAX_ROWS = 2_048  # ~15 ms of generation at most: the hop to a runner costs 6-7 ms (bench/serve.py)
# No INFO access-log line per request in the proxy and in each replica it crosses (measured in
# bench/serve.py); errors and warnings are still logged.
LOGGING = {"enable_access_log": False}

api = FastAPI(
    title="gen_factory",
    description="Labelled synthetic datasets as Parquet, and anomaly scores, from conditional GANs in the MLflow registry.",
    version="0.1.0",
)


class GenerateRequest(BaseModel):
    counts: dict[str, int] | None = Field(None, description="rows per label name, e.g. {\"0\": 100, \"7\": 50}")
    rows_per_label: int | None = Field(None, description="the same number of rows for every label")
    seed: int = Field(0, description="the same model, counts and seed give identical Parquet bytes")
    conditions: dict[str, dict[str, int]] | list[dict[str, str]] | None = Field(
        None, description="categorical columns forced exactly: {\"city\": {\"lima\": 30}} (rows per category, "
                          "placed at random by the seed) or one {column: category} object per row, in label order")


class ScoreRequest(BaseModel):
    rows: list[list[float | str | None]] | list[dict[str, float | str | None]] | None = Field(
        None, description="table rows: lists in the model's column order, or {column: value} objects; "
                          "categories as strings, null where a value is missing")
    images: list | None = Field(None, description="images as nested lists [n, H, W] or [n, C, H, W]")
    labels: list[str] | None = Field(None, description="score against these labels; omitted: best over all labels")
    method: str | None = Field(None, description="`fanogan` (default: the f-AnoGAN residual) or `critic` "
                                                 "(the negated discriminator output)")


class ScoreResponse(BaseModel):
    model: str
    version: str
    method: str
    scores: list[float] = Field(description="higher = less like the training data")
    threshold: float | None = Field(description="scores above it are anomalies (set at the model's false-positive "
                                                "rate on held-out normal data)")
    is_anomaly: list[bool] | None


def _pin_stores(data_dir: str | None, tracking_uri: str | None) -> None:
    """Replicas run in other processes (other nodes): point them at the caller's stores."""
    if data_dir:
        os.environ["GENFACTORY_HOME"] = data_dir
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


class _ModelHost:
    """Registered models as ONNX Runtime sessions, at most MAX_MODELS_PER_REPLICA per replica (least
    recently used out): the runner holds them, and so does the ingress for the requests it runs."""

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str):
        from gen_factory import registry
        from gen_factory.onnx_model import OnnxModel

        name, version = model_id.rsplit("/", 1)
        path = await asyncio.to_thread(registry.download, registry.ModelRef(name, version))
        return OnnxModel(path)


def _generate(model, model_id: str, counts: list[int], seed: int, conditions: dict | list | None) -> tuple[bytes, int]:
    from gen_factory.sampling import generate_table, to_parquet_bytes

    name, version = model_id.rsplit("/", 1)
    table = generate_table(model, counts, seed, {"model": name, "version": version}, conditions)
    return to_parquet_bytes(table), table.num_rows


@serve.deployment(ray_actor_options={"num_cpus": 1}, logging_config=LOGGING)
class ModelRunner(_ModelHost):
    """Requests too large for the ingress: one CPU each, scaled on its own, multiplexed by model."""

    def __init__(self, data_dir: str | None = None, tracking_uri: str | None = None):
        _pin_stores(data_dir, tracking_uri)

    async def generate(self, counts: list[int], seed: int, conditions: dict | list | None) -> tuple[bytes, int] | dict:
        model_id = serve.get_multiplexed_model_id()
        try:
            return _generate(await self.get_model(model_id), model_id, counts, seed, conditions)
        except DataValidationError as err:  # returned, not raised: Ray would wrap it beyond recognition
            return {"input_error": str(err)}

    async def score(self, rows: list | None, images: list | None, labels: list | None, method: str | None) -> dict:
        from gen_factory import anomaly

        try:
            model_id = serve.get_multiplexed_model_id()
            model = await self.get_model(model_id)
            values, label_ids, method = anomaly.prepare(model, rows, images, labels, method)
        except DataValidationError as err:
            return {"input_error": str(err)}
        matrix = await self._score_batch(model_id, values, label_ids)
        return anomaly.respond(model, matrix, method, by_label=label_ids is not None)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _score_batch(self, model_ids: list[str], values: list[np.ndarray],
                           label_ids: list[np.ndarray | None]) -> list[np.ndarray]:
        """Concurrent requests for the same model (and labelling mode) run as one ONNX call; every
        method's scores come back ([n, methods]), each request picks its own."""
        from gen_factory import anomaly

        out: list = [None] * len(model_ids)
        groups: dict = {}
        for i, (model_id, labels) in enumerate(zip(model_ids, label_ids)):
            groups.setdefault((model_id, labels is None), []).append(i)
        for (model_id, best_of_labels), idx in groups.items():
            model = await self.get_model(model_id)
            stacked = np.concatenate([values[i] for i in idx])
            labels = None if best_of_labels else np.concatenate([label_ids[i] for i in idx])
            scores = anomaly.score_matrix(model, stacked, labels)
            for i, part in zip(idx, np.split(scores, np.cumsum([len(values[i]) for i in idx])[:-1])):
                out[i] = part
        return out


def _checked(fn, *args):
    """`fn(*args)`, with an input error as HTTP 422 that names the field, the value and the fix."""
    try:
        return fn(*args)
    except DataValidationError as err:
        raise HTTPException(status_code=422, detail=str(err)) from err


async def _call(method, *args):
    """Call the runner; an input error it reports becomes HTTP 422 (the replica keeps serving)."""
    result = await method.remote(*args)
    if isinstance(result, dict) and "input_error" in result:
        raise HTTPException(status_code=422, detail=result["input_error"])
    return result


@serve.deployment(ray_actor_options={"num_cpus": 0}, logging_config=LOGGING)
@serve.ingress(api)
class GenFactoryAPI(_ModelHost):
    """Requests of at most INGRESS_MAX_ROWS rows run here: the hop to a runner replica costs more
    than their ONNX call (bench/serve.py); larger ones go to the runner."""

    def __init__(self, runner: DeploymentHandle, data_dir: str | None = None, tracking_uri: str | None = None):
        from gen_factory import registry, settings

        _pin_stores(data_dir, tracking_uri)
        self.runner = runner
        self.resolve = registry.CachedResolver(settings.alias_ttl_s())

    async def _model_for(self, ref_text: str):
        """(resolved ref, multiplexed model id, ONNX model) for `name`, `name@alias` or `name/version`."""
        from gen_factory import registry

        ref = self.resolve.cached(ref_text)
        try:
            if ref is None:
                ref = await asyncio.to_thread(self.resolve, ref_text)
        except registry.ModelNotFound as err:
            raise HTTPException(status_code=404, detail=str(err)) from err
        model_id = f"{ref.name}/{ref.version}"
        return ref, model_id, await self.get_model(model_id)

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/v1/models")
    def models(self) -> list[dict]:
        from gen_factory import registry

        return registry.list_models()

    @api.post("/v1/models/{name}/generate", response_class=Response,
              responses={200: {"content": {PARQUET_MEDIA_TYPE: {}}, "description": "a Parquet file"}})
    async def generate(self, name: str, request: GenerateRequest) -> Response:
        """`name` is `model`, `model@alias` (default alias: champion) or `model/version`."""
        from gen_factory.sampling import resolve_counts

        ref, model_id, model = await self._model_for(name)
        counts = _checked(resolve_counts, model.label_names, request.counts, request.rows_per_label)
        if sum(counts) <= INGRESS_MAX_ROWS:
            data, rows = await asyncio.to_thread(_checked, _generate, model, model_id, counts, request.seed,
                                                 request.conditions)
        else:
            runner = self.runner.options(multiplexed_model_id=model_id)
            data, rows = await _call(runner.generate, counts, request.seed, request.conditions)
        return Response(data, media_type=PARQUET_MEDIA_TYPE, headers={"X-Model-Version": ref.version, "X-Rows": str(rows)})

    @api.post("/v1/models/{name}/score", response_model=ScoreResponse)
    async def score(self, name: str, request: ScoreRequest) -> ScoreResponse:
        from gen_factory.anomaly import score_request

        ref, model_id, model = await self._model_for(name)
        args = (request.rows, request.images, request.labels, request.method)
        if len(request.rows or request.images or ()) <= INGRESS_MAX_ROWS:
            result = await asyncio.to_thread(_checked, score_request, model, *args)
        else:
            result = await _call(self.runner.options(multiplexed_model_id=model_id).score, *args)
        return ScoreResponse(model=ref.name, version=ref.version, **result)


def build_app(args: dict) -> serve.Application:
    """Application builder for `serve run` / `serve deploy` (args: data_dir, tracking_uri)."""
    stores = (args.get("data_dir"), args.get("tracking_uri"))
    return GenFactoryAPI.bind(ModelRunner.bind(*stores), *stores)


def direct_url(app: str = "gen_factory", timeout_s: float = 10.0) -> str | None:
    """The URL of an ingress replica's own HTTP server (Serve direct ingress), or None when direct
    ingress is off or no replica reports a port in `timeout_s`. Replicas get their ports from Serve
    (30000 up), so ask the controller - through Serve internals, hence the broad fallback: this
    URL is an extra, and the proxy's URL always works."""
    import time

    import ray
    from ray.serve._private.common import RequestProtocol
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    # What the cluster was started with (`ensure_ray` sets it); Serve's own constant in this process
    # may have been read before that.
    if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS") != "1":
        return None
    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        http = ray.get(controller.get_http_config.remote())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # a replica reports its port once its server is up
            for group in ray.get(controller.get_target_groups.remote(app)):
                targets = [t for t in group.targets if t.port != http.port]
                if group.protocol == RequestProtocol.HTTP and targets:
                    # Replicas bind the proxy's host: a loopback host is reachable only as itself.
                    host = targets[0].ip if http.host in ("0.0.0.0", "::") else http.host
                    return f"http://{host}:{targets[0].port}"
            time.sleep(0.2)
    except Exception:  # noqa: BLE001 - a changed Serve internal must not take the API down with it
        return None
    return None


def start(host: str = "127.0.0.1", port: int = 8000) -> str:
    """Start Serve on the connected (or a new local) Ray cluster and deploy the API; returns its URL."""
    from gen_factory import settings
    from gen_factory.cluster import ensure_ray

    ensure_ray()
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING)
    serve.run(build_app({"data_dir": str(settings.data_dir()), "tracking_uri": settings.tracking_uri()}),
              name="gen_factory", route_prefix="/")
    return f"http://{host}:{port}"
