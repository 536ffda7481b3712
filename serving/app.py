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

What it survives (bench/api_faults.py): two replicas of each deployment, so a killed replica's
requests are retried by clients (`gen_factory.client` retries every idempotent call - both are,
by seed) on the other while Serve replaces it; the registry going away (the last resolution of
each reference is served on); floods (a bound on queued requests answers 503 + Retry-After);
oversized bodies (413 before parsing, serving/guard.py). With a token configured
(``GENFACTORY_API_TOKEN`` / ``GENFACTORY_API_TOKEN_FILE``) every route but /healthz needs
``Authorization: Bearer <token>``. The request and error contract is serving/contract.py.

One way in: the Serve proxy's port (8000 by default), which balances over the ingress replicas.
Serve's direct ingress (each replica's own port, ~7 ms less per request, bench/serve.py) is off
unless ``GENFACTORY_DIRECT_INGRESS=1``: its port moves on every replica restart and its replicas
drain for 30 s on shutdown, so it suits a single trusted client, not a service.

Run it with ``genfactory serve`` or ``serve run serving/config.yaml``.
"""
# No `from __future__ import annotations` here: FastAPI must see the request models as real
# classes through Serve's ingress wrapper, or bodies are mistaken for query parameters.

import asyncio
import os
from typing import Annotated

import numpy as np
from fastapi import Body, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException

from gen_factory import settings
from gen_factory.data.validate import DataValidationError
from serving import guard
from serving.contract import (
    REQUEST_SHAPES,
    AugmentRequest,
    CardResponse,
    ErrorBody,
    GenerateRequest,
    Health,
    ModelInfo,
    ScoreRequest,
    ScoreResponse,
    error_responses,
)

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MAX_MODELS_PER_REPLICA = 8
INGRESS_MAX_ROWS = 2_048  # ~15 ms of generation at most: the hop to a runner costs 6-7 ms (bench/serve.py)
RUNNER_BATCH_MAX_INPUTS = 100_000  # one ONNX call of the batching runner scores at most this many inputs
# No INFO access-log line per request in the proxy and in each replica it crosses (measured in
# bench/serve.py); errors and warnings are still logged.
LOGGING = {"enable_access_log": False}
# Two replicas of each deployment: a killed one's requests are retried on the other (clients retry)
# while Serve starts its replacement. Requests beyond the queue bound get 503 + Retry-After at once
# instead of waiting without limit.
BACKPRESSURE = BackpressureConfig(status_code=503, retry_after_s=1)
REPLICAS = 2
HEALTH_CHECK_PERIOD_S = 2.0  # how soon a dead replica is replaced (Serve's default: 10 s)

# Each API replica puts its token digest here (serving.guard): the environment is process-wide,
# while module globals may be copies once Serve has pickled the deployment class.
TOKEN_DIGEST_ENV = "GENFACTORY_API_TOKEN_SHA256"
bearer = HTTPBearer(auto_error=False, description="the token the server was started with "
                                                  "(GENFACTORY_API_TOKEN); required when one is configured")


async def require_token(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
    """401 unless the bearer token matches (constant-time); open when the server has no token."""
    digest = os.environ.get(TOKEN_DIGEST_ENV)
    if not digest:
        return
    if credentials is None or not guard.token_matches(credentials.credentials, digest):
        raise HTTPException(401, "Authorization: missing or wrong bearer token -- fix: send "
                                 "`Authorization: Bearer <token>` with the server's GENFACTORY_API_TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})


api = FastAPI(
    title="gen_factory",
    description="Labelled synthetic datasets as Parquet, and anomaly scores, from conditional GANs in the "
    "MLflow registry. Every error has one shape (ErrorBody) naming the field and the fix.",
    version="0.2.0",
    responses=error_responses(400, 404, 413, 422, 503),
)
api.add_middleware(guard.BodyLimit, max_bytes=settings.max_body_bytes())
SECURED = [Depends(require_token)]


class Problem(HTTPException):
    """An HTTP error that knows its field and fix: a DataValidationError's, or given."""

    def __init__(self, status: int, err: DataValidationError | str, headers: dict | None = None,
                 field: str | None = None, fix: str | None = None):
        super().__init__(status, str(err), headers)
        self.field = getattr(err, "field", field)
        self.fix = getattr(err, "fix", fix)


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Every HTTPException (ours, FastAPI's, routing's 404/405) in the one ErrorBody shape; its
    headers (Allow, WWW-Authenticate, Retry-After) are kept."""
    body = ErrorBody(detail=str(exc.detail), field=getattr(exc, "field", None), fix=getattr(exc, "fix", None))
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=getattr(exc, "headers", None))


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A schema violation as ErrorBody: the field, a short repr of its value (never the whole input
    echoed back) and the schema's rule as the fix."""
    field, value, fix = _first_violation(exc.errors())
    body = ErrorBody(detail=f"{field}: {value} -- fix: {fix}", field=field, fix=fix)
    return JSONResponse(body.model_dump(), status_code=422)


def _first_violation(errors: list[dict]) -> tuple[str, str, str]:
    """(field, short value, fix) of the error that matters. A body is one of two closed shapes
    (serving/contract.py); pydantic reports every shape's errors, so take the shape the body came
    closest to (fewest errors); a tie means it named both shapes' fields, or neither."""
    by_shape: dict[str, list[dict]] = {}
    for err in errors:
        loc = err["loc"]
        shape = loc[1] if len(loc) > 1 and loc[1] in REQUEST_SHAPES else ""
        by_shape.setdefault(shape, []).append(err)
    ranked = sorted(by_shape.values(), key=len)
    if len(ranked) > 1 and len(ranked[0]) == len(ranked[1]) and "" not in by_shape:
        names = " / ".join(str(errs[0]["loc"][-1]) for errs in ranked)
        return "body", "(both or neither)", f"send exactly one of {names} (see /openapi.json)"
    first = ranked[0][0]
    field = ".".join(str(part) for part in first["loc"] if part not in REQUEST_SHAPES)
    value = repr(first.get("input"))
    value = value if len(value) <= 80 else value[:77] + "..."
    return field, value, f"{first['msg']} (see /openapi.json)"


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug still answers in the one shape (and is logged by Serve); the fuzz test counts these."""
    body = ErrorBody(detail=f"internal error ({exc.__class__.__name__}); the server logged it")
    return JSONResponse(body.model_dump(), status_code=500)


def _pin_stores(data_dir: str | None, tracking_uri: str | None) -> None:
    """Replicas run in other processes (other nodes): point them at the caller's stores, and fail
    fast when an MLflow server is down (its client retries for minutes by default)."""
    if data_dir:
        os.environ["GENFACTORY_HOME"] = data_dir
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


class _ModelHost:
    """Registered models as ONNX Runtime sessions, at most MAX_MODELS_PER_REPLICA per replica (least
    recently used out): the runner holds them, and so does the ingress for the requests it runs."""

    @serve.multiplexed(max_num_models_per_replica=MAX_MODELS_PER_REPLICA)
    async def get_model(self, model_id: str):
        from gen_factory import registry
        from gen_factory.runtime.onnx_model import OnnxModel

        name, version = model_id.rsplit("/", 1)
        path = await asyncio.to_thread(registry.download, registry.ModelRef(name, version))
        return OnnxModel(path)


def _generate(
    model, model_id: str, counts: list[int], seed: int, conditions: dict | list | None
) -> tuple[bytes, int]:
    from gen_factory.runtime.sampling import generate_table, to_parquet_bytes

    name, version = model_id.rsplit("/", 1)
    table = generate_table(model, counts, seed, {"model": name, "version": version}, conditions)
    return to_parquet_bytes(table), table.num_rows


def _augment(model, model_id: str, request) -> tuple[bytes, int]:
    """An augment request's Parquet bytes and rows (`services.augmentation`), the synthetic rows within
    the model's per-request limit."""
    import pandas as pd

    from gen_factory.runtime.sampling import request_row_limit, to_parquet_bytes
    from gen_factory.services.augmentation import build_augmentation, frame_real, synthetic_counts

    real, rows = frame_real(model, pd.DataFrame(request.rows))
    asked = sum(synthetic_counts(real.labels, real.label_names, request.ratio, request.classes))
    if asked > request_row_limit(model):
        raise DataValidationError("ratio", request.ratio, f"ask for at most {request_row_limit(model)} "
                                  f"synthetic rows per request ({asked} asked): lower the ratio, or use "
                                  "genfactory augment for more")
    name, version = model_id.rsplit("/", 1)
    table = build_augmentation(model, real, request.ratio, request.classes, request.synthetic_only,
                               request.seed, {"model": name, "version": version}, real_rows=rows)
    return to_parquet_bytes(table), table.num_rows


def _input_error(err: DataValidationError) -> dict:
    """An input error as the runner returns it: Ray would wrap a raised one beyond recognition."""
    return {"input_error": str(err), "field": err.field, "fix": err.fix}


@serve.deployment(ray_actor_options={"num_cpus": 1}, logging_config=LOGGING, num_replicas=REPLICAS,
                  max_ongoing_requests=8, max_queued_requests=64, backpressure_config=BACKPRESSURE,
                  health_check_period_s=HEALTH_CHECK_PERIOD_S)
class ModelRunner(_ModelHost):
    """Requests too large for the ingress: one CPU each, multiplexed by model. Row work runs on a
    thread, so the replica's event loop keeps answering (health checks, other requests)."""

    def __init__(self, data_dir: str | None = None, tracking_uri: str | None = None):
        _pin_stores(data_dir, tracking_uri)

    async def generate(
        self, counts: list[int], seed: int, conditions: dict | list | None
    ) -> tuple[bytes, int] | dict:
        model_id = serve.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        try:
            return await asyncio.to_thread(_generate, model, model_id, counts, seed, conditions)
        except DataValidationError as err:
            return _input_error(err)

    async def score(
        self, rows: list | None, images: list | None, labels: list | None, method: str | None,
        attribution: str = "top_k", top_k: int | None = None,
    ) -> dict:
        from gen_factory.runtime import scoring

        model_id = serve.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        try:
            values, label_ids, method = await asyncio.to_thread(
                scoring.prepare, model, rows, images, labels, method
            )
            top_k = scoring.resolve_top_k(model, top_k) if attribution == "top_k" else 0
        except DataValidationError as err:
            return _input_error(err)
        scored = await self._score_batch(model_id, values, label_ids)
        return scoring.respond(model, scored, method, label_ids is not None, attribution, top_k)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)  # = max_ongoing_requests: a batch can fill
    async def _score_batch(self, model_ids: list[str], values: list[np.ndarray],
                           label_ids: list[np.ndarray | None]) -> list:
        """Concurrent requests for the same model (and labelling mode) run as few ONNX calls as fit
        in RUNNER_BATCH_MAX_INPUTS inputs each; every method's scores and the contributions come back
        (`scoring.Scored`), each request picks its own."""
        from gen_factory.runtime import scoring

        out: list = [None] * len(model_ids)
        for model_id, best_of_labels, idx in _batch_groups(model_ids, values, label_ids):
            model = await self.get_model(model_id)
            stacked = np.concatenate([values[i] for i in idx])
            labels = None if best_of_labels else np.concatenate([label_ids[i] for i in idx])
            scored = await asyncio.to_thread(scoring.score_attributed, model, stacked, labels)
            cuts = np.cumsum([len(values[i]) for i in idx])[:-1]
            contributions = np.split(scored.contributions, cuts) if scored.contributions is not None \
                else [None] * len(idx)
            for i, matrix, part, chosen in zip(idx, np.split(scored.matrix, cuts), contributions,
                                               np.split(scored.labels, cuts), strict=True):
                out[i] = scoring.Scored(matrix, part, chosen)
        return out


def _batch_groups(model_ids: list[str], values: list[np.ndarray], label_ids: list[np.ndarray | None]):
    """(model id, best-of-labels, request indices) groups of at most RUNNER_BATCH_MAX_INPUTS inputs:
    requests that may run as one ONNX call. Each request alone is within the limit (the contract's
    maxItems), so every request lands in some group."""
    groups: dict = {}
    for i, (model_id, labels) in enumerate(zip(model_ids, label_ids, strict=True)):
        key = (model_id, labels is None)
        current = groups.setdefault(key, [[]])
        if (
            current[-1]
            and sum(len(values[j]) for j in current[-1]) + len(values[i]) > RUNNER_BATCH_MAX_INPUTS
        ):
            current.append([])
        current[-1].append(i)
    return [(model_id, best, idx) for (model_id, best), chunks in groups.items() for idx in chunks]


async def _call(method, *args):
    """Call the runner; an input error it reports becomes HTTP 422 (the replica keeps serving)."""
    result = await method.remote(*args)
    if isinstance(result, dict) and "input_error" in result:
        raise Problem(422, result["input_error"], field=result["field"], fix=result["fix"])
    return result


async def _checked(fn, *args):
    """`fn(*args)` on a thread; an input error becomes HTTP 422 naming the field, the value and the fix."""
    try:
        return await asyncio.to_thread(fn, *args)
    except DataValidationError as err:
        raise Problem(422, err) from err


@serve.deployment(ray_actor_options={"num_cpus": 0}, logging_config=LOGGING, num_replicas=REPLICAS,
                  max_ongoing_requests=32, max_queued_requests=256, backpressure_config=BACKPRESSURE,
                  health_check_period_s=HEALTH_CHECK_PERIOD_S)
@serve.ingress(api)
class GenFactoryAPI(_ModelHost):
    """Requests of at most INGRESS_MAX_ROWS rows run here: the hop to a runner replica costs more
    than their ONNX call (bench/serve.py); larger ones go to the runner."""

    def __init__(self, runner: DeploymentHandle, data_dir: str | None = None, tracking_uri: str | None = None,
                 token_sha256: str | None = None):
        from gen_factory import registry

        _pin_stores(data_dir, tracking_uri)
        os.environ.pop(TOKEN_DIGEST_ENV, None)
        if token_sha256:
            os.environ[TOKEN_DIGEST_ENV] = token_sha256
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
            raise Problem(
                404, str(err), field="name", fix="list the registered models with GET /v1/models"
            ) from err
        except registry.RegistryUnavailable as err:
            raise Problem(
                503,
                f"{err} -- fix: retry shortly",
                headers={"Retry-After": "5"},
                field="name",
                fix="retry shortly",
            ) from err
        model_id = f"{ref.name}/{ref.version}"
        return ref, model_id, await self.get_model(model_id)

    @api.get("/healthz", response_model=Health)
    def healthz(self) -> Health:
        return Health(status="ok")

    @api.get(
        "/v1/models", response_model=list[ModelInfo], dependencies=SECURED, responses=error_responses(401)
    )
    async def models(self) -> list[ModelInfo]:
        from gen_factory import registry

        try:
            rows = await asyncio.to_thread(registry.list_models)
        except Exception as err:  # noqa: BLE001 - the registry's own error, whatever its kind
            raise Problem(503, f"registry: unavailable ({err.__class__.__name__}) -- fix: retry shortly",
                          headers={"Retry-After": "5"}, fix="retry shortly") from err
        return [ModelInfo(**row) for row in rows]

    @api.get("/v1/models/{name:path}/card", response_model=CardResponse, dependencies=SECURED,
             responses=error_responses(401))
    async def card(self, name: str) -> CardResponse:
        """`name` as for generate: the version's columns, labels, encoding, metrics and calibration."""
        ref, _, model = await self._model_for(name)
        return CardResponse(model=ref.name, version=ref.version, card=model.card)

    @api.post("/v1/models/{name:path}/generate", response_class=Response, dependencies=SECURED,
              responses={200: {"content": {PARQUET_MEDIA_TYPE: {}}, "description": "a Parquet file"},
                         **error_responses(401)})
    async def generate(self, name: str, request: Annotated[GenerateRequest, Body()]) -> Response:
        """`name` is `model`, `model@alias` (default alias: champion) or `model/version`."""
        from gen_factory.runtime.sampling import request_row_limit, resolve_counts

        ref, model_id, model = await self._model_for(name)
        try:
            counts = resolve_counts(model.label_names, getattr(request, "counts", None),
                                    getattr(request, "rows_per_label", None),
                                    limit=request_row_limit(model))
        except DataValidationError as err:
            raise Problem(422, err) from err
        if sum(counts) <= INGRESS_MAX_ROWS:
            data, rows = await _checked(_generate, model, model_id, counts, request.seed, request.conditions)
        else:
            runner = self.runner.options(multiplexed_model_id=model_id)
            data, rows = await _call(runner.generate, counts, request.seed, request.conditions)
        return Response(
            data, media_type=PARQUET_MEDIA_TYPE, headers={"X-Model-Version": ref.version, "X-Rows": str(rows)}
        )

    @api.post("/v1/models/{name:path}/augment", response_class=Response, dependencies=SECURED,
              responses={200: {"content": {PARQUET_MEDIA_TYPE: {}}, "description": "a Parquet file"},
                         **error_responses(401)})
    async def augment(self, name: str, request: Annotated[AugmentRequest, Body()]) -> Response:
        """`name` as for generate (a table model). The rows as given, then `ratio` synthetic rows per
        real row of each label (only `classes`), in the model's schema, with a `synthetic` column."""
        ref, model_id, model = await self._model_for(name)
        data, rows = await _checked(_augment, model, model_id, request)
        return Response(
            data, media_type=PARQUET_MEDIA_TYPE, headers={"X-Model-Version": ref.version, "X-Rows": str(rows)}
        )

    @api.post("/v1/models/{name:path}/score", response_model=ScoreResponse, dependencies=SECURED,
              responses=error_responses(401))
    async def score(self, name: str, request: Annotated[ScoreRequest, Body()]) -> ScoreResponse:
        """`name` as for generate. Rows (tables) or images, scored against `labels` or the best label;
        with each input's largest column (pixel) contributions, all of them, or none (`attribution`)."""
        from gen_factory.runtime.scoring import score_request

        ref, model_id, model = await self._model_for(name)
        rows, images = getattr(request, "rows", None), getattr(request, "images", None)
        args = (rows, images, request.labels, request.method, request.attribution, request.top_k)
        if len(rows or images) <= INGRESS_MAX_ROWS:
            result = await _checked(score_request, model, *args)
        else:
            result = await _call(self.runner.options(multiplexed_model_id=model_id).score, *args)
        return ScoreResponse(model=ref.name, version=ref.version, **result)


def build_app(args: dict) -> serve.Application:
    """Application builder for `serve run` / `serve deploy` (args: data_dir, tracking_uri). The
    token comes from the builder's environment (GENFACTORY_API_TOKEN or _FILE); replicas get its digest."""
    stores = (args.get("data_dir"), args.get("tracking_uri"))
    return GenFactoryAPI.bind(ModelRunner.bind(*stores), *stores, guard.token_digest(settings.api_token()))


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


def start(host: str = "127.0.0.1", port: int = 8000, insecure: bool = False) -> str:
    """Start Serve on the connected (or a new local) Ray cluster and deploy the API; returns its URL.

    A host other than loopback needs a token (GENFACTORY_API_TOKEN or _FILE) unless `insecure`:
    otherwise anyone on the network could list, generate and score."""
    from gen_factory.services.cluster import ensure_ray

    if not insecure and settings.api_token() is None and host not in ("127.0.0.1", "localhost", "::1"):
        raise DataValidationError(
            "--host",
            repr(host),
            "set GENFACTORY_API_TOKEN (or GENFACTORY_API_TOKEN_FILE) "
            "so callers must authenticate, or pass --insecure to serve without a token",
        )
    ensure_ray()
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING)
    serve.run(build_app({"data_dir": str(settings.data_dir()), "tracking_uri": settings.tracking_uri()}),
              name="gen_factory", route_prefix="/")
    return f"http://{host}:{port}"


def stop() -> None:
    """Stop Serve and the Ray this process started or joined, leaving no process of theirs behind."""
    import ray

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
