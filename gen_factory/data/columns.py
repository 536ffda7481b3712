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
# A string column with more categories keeps its MAX_KEPT_CATEGORIES commonest and folds the rest into one
# explicit "other" category (`fold_rare`), so a 10,000-value column is 257 one-hot slots, not 10,000. A
# column whose kept categories hold less than MIN_KEPT_SHARE of its rows is identifier-like: refused.
MAX_KEPT_CATEGORIES = 256  # above the bundled tables' largest (loans' branch: 237)
MIN_KEPT_SHARE = 0.5
OTHER = "__other__"


def is_discrete(distinct: int, integer: bool) -> bool:
    """Whether a numeric column of `distinct` values (whole numbers if `integer`) keeps to them."""
    return 1 < distinct <= (MAX_KNOTS if integer else DISCRETE_VALUES)


class FoldedCategories(BaseModel):
    """A column's rare values folded into one category: every value not among the column's other
    categories was (or, at generation, stands for) `other`; generation never emits a folded value."""

    model_config = SPEC

    other: str  # the category they became (the column's last)
    values: int  # distinct values folded
    share: float  # of the rows with a value


def fold_rare(values: list[str], counts: list[int], max_kept: int = MAX_KEPT_CATEGORIES,
              min_share: float = MIN_KEPT_SHARE) -> tuple[list[str], FoldedCategories | None]:
    """(kept values, fold) of a column's distinct `values` with their row `counts`: the `max_kept`
    commonest (ties: first in `values`) when there are more, the rest folded into OTHER (underscores
    added until it is no value of the column); all values and None when there are at most `max_kept`
    or when the kept ones would hold less than `min_share` of the rows (identifier-like: no fold helps)."""
    if len(values) <= max_kept:
        return list(values), None
    order = sorted(range(len(values)), key=lambda i: -counts[i])  # stable: ties keep the given order
    keep = set(order[:max_kept])
    total = float(sum(counts))
    kept_rows = sum(counts[i] for i in keep)
    if kept_rows < min_share * total:
        return list(values), None
    other, taken = OTHER, set(values)
    while other in taken:
        other = f"_{other}_"
    kept = [v for i, v in enumerate(values) if i in keep]
    return kept + [other], FoldedCategories(other=other, values=len(values) - max_kept,
                                            share=round(1.0 - kept_rows / total, 6))


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
    folded: FoldedCategories | None = None  # None: every value of the column is a category

    def spans(self) -> list[tuple[str, int]]:
        return [("softmax", len(self.categories) + int(self.missing))]

    @property
    def other_code(self) -> int | None:
        """The code a value outside `categories` takes: the folded "other" (last), or None (refused)."""
        return len(self.categories) - 1 if self.folded is not None else None


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
