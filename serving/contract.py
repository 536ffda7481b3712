"""The HTTP contract: strict request models, the one error shape, and the limits the API enforces.

Everything a client can send is declared here, so the OpenAPI schema (what schemathesis fuzzes,
tests/test_e2e.py) and the checks the server runs are the same thing: unknown fields, a bool or a
string where a number belongs, a negative seed or an over-limit row count are refused by the
schema with a 422 before any work. What only the model can judge (its label names, its columns)
is checked after the model is resolved, and answered in the same error shape.
"""

# No `from __future__ import annotations`: FastAPI must see the annotations as real classes.

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from gen_factory.card import ModelCard
from gen_factory.runtime.sampling import MAX_ROWS_PER_REQUEST
from gen_factory.runtime.scoring import DEFAULT_TOP_K, MAX_INPUTS_PER_REQUEST

MAX_SEED = 2**32 - 1  # exact in every JSON parser (a float64 cannot hold 2**63 - 1)
MAX_LABELS_PER_REQUEST = 10_000
MAX_TOP_K = 10_000  # the schema's bound; the model's own (its columns or pixels) is checked after it


def _json_number(value: object) -> object:
    """A count or seed must be a JSON number: `true` or `"10"` is refused (pydantic's lax int would
    take both), while 10.0 stays a valid integer as JSON Schema says it is."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


def _json_int(ge: int, le: int):
    """An integer in [ge, le] sent as a JSON number. (The bounds come before the validator, or
    pydantic leaves them out of the JSON schema.)"""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_number)]


Count = _json_int(0, MAX_ROWS_PER_REQUEST)
TopK = _json_int(1, MAX_TOP_K)
Seed = _json_int(0, MAX_SEED)
Value = StrictFloat | StrictInt | StrictStr | None
Number = StrictFloat | StrictInt
Image = list[list[Number]] | list[list[list[Number]]]  # [H, W] or [C, H, W]
Rows = (Annotated[list[list[Value]], Field(min_length=1, max_length=MAX_INPUTS_PER_REQUEST)]
        | Annotated[list[dict[str, Value]], Field(min_length=1, max_length=MAX_INPUTS_PER_REQUEST)])


def _no_default(schema: dict) -> None:
    """An optional field may be omitted but not sent as null: its schema has no `default: null`."""
    schema.pop("default", None)


STRICT = ConfigDict(extra="forbid")  # an unknown field is refused, never silently ignored


class _GenerateOptions(BaseModel):
    model_config = STRICT

    seed: Seed = Field(
        0, description="the same model, counts and seed give identical Parquet bytes")
    conditions: dict[str, dict[str, Count]] | list[dict[str, StrictStr]] = Field(
        None,
        description='categorical columns forced exactly: {"city": {"lima": 30}} (rows per category, '
        "placed at random by the seed) or one {column: category} object per row, in label order",
        json_schema_extra=_no_default,
    )


class GenerateCounts(_GenerateOptions):
    """Rows per label name."""

    counts: dict[str, Count] = Field(description="rows per label name, e.g. {\"0\": 100, \"7\": 50}",
                                     max_length=MAX_LABELS_PER_REQUEST)


class GeneratePerLabel(_GenerateOptions):
    """The same number of rows for every label."""

    rows_per_label: Count = Field(description="rows for every label")


# Exactly one of `counts` / `rows_per_label`: two closed shapes (no extra fields), so a body with
# both or neither matches none of them - in the schema and in the check alike.
GenerateRequest = GenerateCounts | GeneratePerLabel


class _ScoreOptions(BaseModel):
    model_config = STRICT

    labels: list[StrictStr] = Field(None, max_length=MAX_INPUTS_PER_REQUEST,
                                    description="score against these labels (one per input); omitted: "
                                                "the best over all labels", json_schema_extra=_no_default)
    method: Literal["ensemble", "fanogan", "iforest", "knn", "novelty", "critic"] = Field(
        None, description="`ensemble` (default for models that have it: f-AnoGAN and the isolation forest "
                          "- for images the `knn` distance - on one scale; for tables plus the row's "
                          "novelty and the label's fit), `fanogan` (the f-AnoGAN "
                          "residual; the default of older models), `iforest` (an isolation forest of the "
                          "normal training values, in the graph), `knn` (images: the distance to the "
                          "5th-nearest normal training image), `novelty` (tables: training standard "
                          "deviations past each column's range, 4 per unseen category or new missing "
                          "value) or `critic` (the negated discriminator "
                          "output); a model's card lists the methods it has", json_schema_extra=_no_default)
    attribution: Literal["top_k", "full", "none"] = Field(
        "top_k", description="why each input scores as it does, from the f-AnoGAN reconstruction: "
        "`top_k` (default) the `top_k` largest contributions per input (`top`), `full` every column's "
        "contribution (`contributions`; images: an [H, W] map each), `none` scores only. A "
        "contribution is the column's (pixel's) residual over its 90th percentile on normal training "
        "rows: above 1 is unusual, and columns compare")
    top_k: TopK | None = Field(None, description="how many columns (pixels) `top` lists per input: "
                               f"1 to the model's number of columns (pixels); unset: {DEFAULT_TOP_K}, or "
                               "every column of a model with fewer", json_schema_extra=_no_default)


class ScoreRows(_ScoreOptions):
    """Table rows."""

    rows: Rows = Field(
        description="table rows: lists in the model's column order, or {column: value} objects; "
        "categories as strings, null where a value is missing"
    )


class ScoreImages(_ScoreOptions):
    """Images."""

    images: list[Image] = Field(min_length=1, max_length=MAX_INPUTS_PER_REQUEST,
                                description="images as nested lists [n, H, W] or [n, C, H, W] of numbers")


ScoreRequest = ScoreRows | ScoreImages


class AugmentRequest(BaseModel):
    """A table's real rows, to be answered with them and synthetic rows (Parquet, as `genfactory augment`
    writes it)."""

    model_config = STRICT

    rows: Annotated[list[dict[str, Value]], Field(min_length=1, max_length=MAX_INPUTS_PER_REQUEST)] = Field(
        description="the real rows as {column: value} objects, the label column among them; categories "
        "as strings, null where a value is missing")
    ratio: Annotated[float, Field(gt=0, le=100)] = Field(
        1.0, description="synthetic rows per real row of a label")
    classes: list[StrictStr] = Field(None, max_length=MAX_LABELS_PER_REQUEST,
                                     description="the labels to synthesise (omitted: every label)",
                                     json_schema_extra=_no_default)
    synthetic_only: bool = Field(False, description="answer the synthetic rows alone")
    seed: Seed = Field(0, description="the same rows, settings and seed give identical Parquet bytes")


REQUEST_SHAPES = ("GenerateCounts", "GeneratePerLabel", "ScoreRows", "ScoreImages")


class ColumnContribution(BaseModel):
    column: str
    contribution: float = Field(description="the column's residual over its 90th percentile on normal "
                                            "training rows (1: as large as one normal row in ten)")


class PixelContribution(BaseModel):
    pixel: list[int] = Field(description="[row, column] of the pixel")
    contribution: float = Field(description="the pixel's residual over its 90th percentile on normal "
                                            "training images")


class ScoreResponse(BaseModel):
    model: str
    version: str
    method: str
    scores: list[float] = Field(description="higher = less like the training data")
    threshold: float | None = Field(
        description="scores above it are anomalies (set at the model's false-positive "
        "rate on held-out normal data)"
    )
    is_anomaly: list[bool] | None
    top: list[list[ColumnContribution]] | list[list[PixelContribution]] | None = Field(
        None, description="attribution `top_k`: per input its `top_k` largest contributions, largest first")
    contributions: list[list[float]] | list[list[list[float]]] | None = Field(
        None, description="attribution `full`: per row every column's contribution (in "
        "`attribution_columns` order); per image an [H, W] map")
    attribution_columns: list[str] | None = Field(None, description="the columns of `contributions`")
    attribution_note: str | None = Field(
        None, description="why attribution is absent although asked for (a model exported before it)")


class ModelInfo(BaseModel):
    name: str
    aliases: dict[str, int] = Field(description="alias -> version")
    latest_version: int | None
    description: str


class CardResponse(BaseModel):
    """A registered version's model card: the same type the bundle's card.json is read into."""

    model: str
    version: str
    card: ModelCard


class Health(BaseModel):
    status: Literal["ok"]


class ErrorBody(BaseModel):
    """Every error the API returns, whatever its status: `detail` is one sentence a person can act on."""

    detail: str = Field(description="what is wrong: the field, the value and the fix")
    field: str | None = Field(None, description="the request field at fault (e.g. `body.rows_per_label`)")
    fix: str | None = Field(None, description="what to send instead")


def error_responses(*statuses: int) -> dict:
    """OpenAPI `responses` entries documenting `statuses` with the one error shape."""
    meaning = {
        400: "malformed request",
        401: "missing or wrong bearer token",
        404: "no such model or route",
        413: "request body too large",
        422: "invalid request",
        503: "overloaded or registry unreachable; retry after the Retry-After header's seconds",
    }
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}
