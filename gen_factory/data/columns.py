"""Typed descriptions of a fitted encoding: one spec per table column, or the pixel range of images.

The same objects drive the torch encoder/decoder (`table_transformer`), the cond vector
(`conditions`), and travel in the Ray config and the model card (`gen_factory.card`). Torch-free:
serving and bulk read them. The encoded width of a column is defined here once (`spans`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC = ConfigDict(extra="forbid", frozen=True)  # a field nobody reads is a mistake, and specs are shared
MAX_KNOTS = 100  # knots of a quantile map (value -> normal score)
# A numeric column stays on its value set when it has at most this many distinct values, or is
# whole-numbered with at most MAX_KNOTS (counts, ages, terms: issue 16 found 6 values come back as 245).
DISCRETE_VALUES = 32


def is_discrete(distinct: int, integer: bool) -> bool:
    """Whether a numeric column of `distinct` values (whole numbers if `integer`) keeps to them."""
    return 1 < distinct <= (MAX_KNOTS if integer else DISCRETE_VALUES)


class CategoricalColumn(BaseModel):
    """One-hot over `categories`, then a slot for missing values where the column had any."""

    model_config = SPEC

    name: str
    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    missing: bool
    # [label][category code, missing last]: training rows, for unconditioned sampling's shares;
    # None in cards from before they were kept.
    label_counts: list[list[int]] | None = None

    def spans(self) -> list[tuple[str, int]]:
        return [("softmax", len(self.categories) + int(self.missing))]


class ContinuousColumn(BaseModel):
    """`quantile`: values/scores knots of the empirical CDF; `modes`: CTGAN's mixture (means, stds,
    weights); `standard`: the first tables' (mean, std) standardisation, read from old cards only."""

    model_config = SPEC

    name: str
    kind: Literal["continuous"] = "continuous"
    method: Literal["quantile", "modes", "standard"]
    low: float
    high: float
    integer: bool
    decimals: int | None = None  # places that hold every value; None: not rounded
    missing: bool = False
    fill: float | None = None  # what a missing value is encoded as (the median)
    values: list[float] | None = None
    scores: list[float] | None = None
    # A discrete column (few distinct values, all of them knots): where decoded values are cut between
    # consecutive `values`, so every generated value is one the column holds (None: not discrete).
    cuts: list[float] | None = None
    # [low, high, value] per value holding >= 1 % of the rows of a non-discrete column: decoded values
    # in (low, high) become `value`, keeping a 0 or a list price at its rate (None: no such value).
    spikes: list[list[float]] | None = None
    # The decoder's scores for `values` (None: `scores`): set at export to the trained generator's own
    # quantiles at each knot's training share, so a generator whose scores come out narrower or
    # shifted still gives the training marginal and reaches the extremes (`TableEncoding.calibrate`).
    decode_scores: list[float] | None = None
    means: list[float] | None = None
    stds: list[float] | None = None
    weights: list[float] | None = None
    mean: float | None = None
    std: float | None = None

    def spans(self) -> list[tuple[str, int]]:
        value = [("tanh", 1), ("softmax", len(self.means))] if self.method == "modes" else [("linear", 1)]
        return value + ([("softmax", 2)] if self.missing else [])


ColumnSpec = Annotated[CategoricalColumn | ContinuousColumn, Field(discriminator="kind")]


def width(column: CategoricalColumn | ContinuousColumn) -> int:
    """Encoded width of one column: the sum of its spans."""
    return sum(w for _, w in column.spans())


class TableEncodingSpec(BaseModel):
    model_config = SPEC

    type: Literal["TableEncoding"] = "TableEncoding"
    columns: list[ColumnSpec]


class ImageEncodingSpec(BaseModel):
    model_config = SPEC

    type: Literal["ImageEncoding"] = "ImageEncoding"
    low: float
    high: float
    integer: bool = False  # whole-number pixels: sampling rounds generated ones


EncodingSpec = Annotated[TableEncodingSpec | ImageEncodingSpec, Field(discriminator="type")]
