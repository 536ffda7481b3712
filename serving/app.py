"""Ray Serve + FastAPI: generate labelled Parquet and score anomalies with registered ONNX models.

Models are resolved from the MLflow registry by ``name@alias`` (or ``name/version``) on every
request, so moving an alias is picked up without a restart; the ONNX sessions of each version
are cached. Bad requests get a 4xx whose message names the field, the value and the fix.

Run it with ``genfactory serve`` or ``serve run serving/config.yaml``.
"""
# No `from __future__ import annotations` here: FastAPI must see the request models as real
# classes through Serve's ingress wrapper, or bodies are mistaken for query parameters.

import os
from collections import OrderedDict

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field
from ray import serve

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MAX_CACHED_MODELS = 8

api = FastAPI(
    title="gen_factory",
    description="Labelled synthetic datasets as Parquet, and anomaly scores, from conditional GANs in the MLflow registry.",
    version="0.1.0",
)


class GenerateRequest(BaseModel):
    counts: dict[str, int] | None = Field(None, description="rows per label name, e.g. {\"0\": 100, \"7\": 50}")
    rows_per_label: int | None = Field(None, description="the same number of rows for every label")
    seed: int = Field(0, description="the same model, counts and seed give identical Parquet bytes")


class ScoreRequest(BaseModel):
    rows: list[list[float | str | None]] | list[dict[str, float | str | None]] | None = Field(
        None, description="table rows: lists in the model's column order, or {column: value} objects; "
                          "categories as strings, null where a value is missing")
    images: list | None = Field(None, description="images as nested lists [n, H, W] or [n, C, H, W]")
    labels: list[str] | None = Field(None, description="score against these labels; omitted: best over all labels")


class ScoreResponse(BaseModel):
    model: str
    version: str
    scores: list[float]


@serve.deployment(ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class GenFactoryAPI:
    def __init__(self, data_dir: str | None = None, tracking_uri: str | None = None):
        # Replicas run in other processes (other nodes): pin them to the caller's stores.
        if data_dir:
            os.environ["GENFACTORY_HOME"] = data_dir
        if tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        self._models: OrderedDict = OrderedDict()

    def _load(self, ref_text: str):
        from gen_factory import registry
        from gen_factory.onnx_model import OnnxModel

        try:
            ref = registry.resolve(ref_text)
        except registry.ModelNotFound as err:
            raise HTTPException(status_code=404, detail=str(err)) from err
        key = (ref.name, ref.version)
        if key not in self._models:
            self._models[key] = OnnxModel(registry.download(ref))
            while len(self._models) > MAX_CACHED_MODELS:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return ref, self._models[key]

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/v1/models")
    def models(self) -> list[dict]:
        from gen_factory import registry

        return registry.list_models()

    @api.post("/v1/models/{name}/generate", response_class=Response,
              responses={200: {"content": {PARQUET_MEDIA_TYPE: {}}, "description": "a Parquet file"}})
    def generate(self, name: str, request: GenerateRequest) -> Response:
        """`name` is `model`, `model@alias` (default alias: champion) or `model/version`."""
        from gen_factory.data.validate import DataValidationError
        from gen_factory.sampling import generate_table, resolve_counts, to_parquet_bytes

        ref, model = self._load(name)
        try:
            counts = resolve_counts(model.label_names, request.counts, request.rows_per_label)
        except DataValidationError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        table = generate_table(model, counts, request.seed, {"model": ref.name, "version": ref.version})
        return Response(to_parquet_bytes(table), media_type=PARQUET_MEDIA_TYPE,
                        headers={"X-Model-Version": ref.version, "X-Rows": str(table.num_rows)})

    @api.post("/v1/models/{name}/score", response_model=ScoreResponse)
    def score(self, name: str, request: ScoreRequest) -> ScoreResponse:
        from gen_factory import anomaly
        from gen_factory.data.validate import DataValidationError

        ref, model = self._load(name)
        try:
            if model.kind == "table":
                if request.rows is None:
                    raise DataValidationError("rows", "missing", "send table rows in `rows` for a table model")
                values = anomaly.rows_to_array(model, request.rows)
            else:
                if request.images is None:
                    raise DataValidationError("images", "missing", "send `images` for an image model")
                values = anomaly.images_to_array(model, request.images)
            labels = anomaly.label_ids(model, request.labels, len(values))
            scores = anomaly.score(model, values, labels)
        except DataValidationError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        return ScoreResponse(model=ref.name, version=ref.version, scores=scores.tolist())


def build_app(args: dict) -> serve.Application:
    """Application builder for `serve run` / `serve deploy` (args: data_dir, tracking_uri)."""
    return GenFactoryAPI.bind(args.get("data_dir"), args.get("tracking_uri"))


def start(host: str = "127.0.0.1", port: int = 8000) -> str:
    """Start Serve on the connected (or a new local) Ray cluster and deploy the API; returns its URL."""
    from gen_factory import settings
    from gen_factory.cluster import ensure_ray

    ensure_ray()
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app({"data_dir": str(settings.data_dir()), "tracking_uri": settings.tracking_uri()}),
              name="gen_factory", route_prefix="/")
    return f"http://{host}:{port}"
