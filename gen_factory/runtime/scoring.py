"""Anomaly scores from the exported scorer graph, and their calibration: higher = less like the training data.

The graph returns every method at once (card `score_methods`): the negated critic, the f-AnoGAN
residual through the encoder and generator, the isolation forest's score, the ensemble (the default)
and, for images, `knn`, the distance to the nearest normal training images, which takes the forest's
place in their ensemble (models exported before the forest have the first two, f-AnoGAN their
default). Without a label, an input is scored against every label and keeps its lowest score (its most
plausible class), so a normal row of any class scores low; in one call, where the graph's label-free
parts (value encoding, encoder, the critic's features of the input, the forest, knn) run once per input
(`every_label`). A threshold per method, set at a false-positive rate on
held-out normal data when the model was trained (card `anomaly`), turns a score into an
`is_anomaly` flag.

Attribution (bundles exported since the card has `attribution`): the scorer graph's second output
gives each table column's (each pixel's) calibrated share of the f-AnoGAN reconstruction residual
(`export.bundle.Attribution`); `score_attributed` returns it beside the scores, against the label
each input was scored by, and `respond` turns it into the top-k columns or the full vectors/maps.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gen_factory.card import ATTRIBUTION_OUTPUT, default_method
from gen_factory.data.columns import CategoricalColumn, ContinuousColumn
from gen_factory.data.schema import TimeEncoding
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime.onnx_model import OnnxModel

MAX_INPUTS_PER_REQUEST = 100_000
UNSEEN = -1  # the code of a category the model never saw, where its score sees novelty (`sees_novelty`)
# Scorer metadata (bundles exported since): the graph takes k labels per row of `values` (`labels`
# [k * n]) and runs what does not depend on the label once per row (`export.bundle.ScoreGraph`).
LABELS_PER_ROW_KEY = "gen_factory.labels_per_row"
DEFAULT_TOP_K = 3
# Scorer inputs per ONNX Runtime call (a row scored against every label counts once per label): memory
# stays bounded whatever the call (every label of MNIST's 18k held-out images at once held ~18 GB),
# and the [inputs, ...] intermediates stay in cache: 512-1024 rows score ~25 % faster per CPU second
# than 4096 (breast_cancer; bench/RESULTS.md, session 9).
INPUTS_PER_CALL = 1024
AttributionMode = Literal["top_k", "full", "none"]
NO_ATTRIBUTION = ("this model version was exported before attribution: scores only -- fix: train it "
                  "again (or re-export it) with this gen_factory to get per-column contributions")


@dataclass(frozen=True)
class Scored:
    """Scores of n inputs, every method ([n, methods], as `score_matrix`); and, where the bundle has
    attribution, each input's contributions [n, columns or H * W] (card `attribution`) against the
    label it was scored by (`labels`: the given one, else the one whose f-AnoGAN reconstruction is
    closest). `contributions` is None for bundles exported before attribution."""

    matrix: np.ndarray
    contributions: np.ndarray | None
    labels: np.ndarray


def rows_to_array(model: OnnxModel, rows: list) -> np.ndarray:
    """Table rows as lists in column order, or as {column: value} dicts, to a float32 [n, d] array.

    Categorical values are given as their strings and become the card's category codes; a missing
    value (None) is accepted in the columns the model saw missing values in (in every column where
    the score sees novelty, as an unseen category is: `sees_novelty`). A dict's label column is
    ignored: scores against a label take it in `labels`.
    """
    columns = model.card.columns
    if not rows:
        raise DataValidationError("rows", "an empty list", "send at least one row")
    if isinstance(rows[0], dict):  # the model's label column, where a row has it, is kept and ignored
        unknown = sorted({k for row in rows for k in row} - set(columns) - {model.card.label_column})
        if unknown:
            raise DataValidationError("rows", f"unknown column(s) {unknown[:5]}",
                                      f"use the model's columns: {', '.join(columns)}")
        missing = [c for c in columns if any(c not in row for row in rows)]
        if missing:
            raise DataValidationError(f"rows[*][{missing[0]!r}]", "missing",
                                      f"give every column ({len(columns)}): {', '.join(columns)}")
        rows = [[row[c] for c in columns] for row in rows]
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != len(columns):
            raise DataValidationError(
                f"rows[{i}]",
                f"{len(row) if isinstance(row, (list, tuple)) else row!r} value(s)",
                f"send rows of {len(columns)} values (the model's columns: {', '.join(columns)})",
            )
    out = np.empty((len(rows), len(columns)), dtype=np.float32)
    novel = sees_novelty(model)
    schema = model.card.table_schema
    times = {c.name: c.time for c in schema.columns if c.time is not None} if schema else {}
    for j, spec in enumerate(model.card.encoding.columns):
        column = [row[j] for row in rows]
        if spec.name in times:
            column = [_time_number(v, times[spec.name], i, spec.name) for i, v in enumerate(column)]
        out[:, j] = _column_codes(column, spec, novel)
    return out


def _time_number(value, time: TimeEncoding, i: int, name: str):
    """A datetime or date (an ISO 8601 string, a datetime, a number already in the model's units) as the
    number the model learned it as (`data.schema.time_to_numbers`); None stays missing."""
    if value is None or isinstance(value, numbers.Number):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise DataValidationError(f"rows[{i}][{name!r}]", repr(value)[:80],
                                  "send a date or time in ISO 8601, e.g. 2024-03-01T08:00:00Z") from err
    if stamp is pd.NaT:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return float((stamp.as_unit("ns").value - time.offset_ns) // time.unit_ns)


def sees_novelty(model: OnnxModel) -> bool:
    """Whether the model's default score sees a row's novelty (`export.bundle.Novelty`): then a category
    it never saw (as code UNSEEN) and a missing value in a column never missing are scored, as the
    anomalies they are, instead of refused."""
    ensemble = model.card.ensemble
    return ensemble is not None and "novelty" in ensemble.parts


def category_index(spec: CategoricalColumn) -> dict[str, int]:
    """A categorical column's codes by its category strings, and by the canonical text of those that are
    numbers (training writes a float column's 1 as `1.0`, JSON and Arrow as `1`)."""
    index = {c: k for k, c in enumerate(spec.categories)}
    for k, c in enumerate(spec.categories):
        key = _number_key(c)
        if key is not None:
            index.setdefault(key, k)
    return index


def category_code(index: dict[str, int], value) -> int | None:
    """`value`'s code in `category_index`'s `index`, its string or the number it writes (None: unknown)."""
    code = index.get(str(value))
    if code is None and not isinstance(value, bool):
        key = _number_key(value)
        code = None if key is None else index.get(key)
    return code


def _number_key(value) -> str | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if np.isfinite(number) else None


def _column_codes(values: list, spec: CategoricalColumn | ContinuousColumn,
                  novel: bool = False) -> np.ndarray:
    """One column's values to floats: category strings to codes, None to NaN where allowed (`novel`:
    anywhere; an unknown category to UNSEEN)."""
    name, out = spec.name, np.empty(len(values), dtype=np.float32)
    index = category_index(spec) if spec.kind == "categorical" else {}
    unknown = spec.other_code if spec.kind == "categorical" and spec.other_code is not None else \
        UNSEEN if novel else None
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            if not spec.missing and not novel:
                raise DataValidationError(
                    f"rows[{i}][{name!r}]",
                    "missing",
                    "send a value: this column was never missing in the training data",
                )
            out[i] = np.nan
        elif spec.kind == "categorical":
            code = category_code(index, v)
            code = unknown if code is None else code  # a folded column's rare value: its "other"
            if code is None:
                raise DataValidationError(f"rows[{i}][{name!r}]", f"unknown category {v!r}",
                                          f"use one of: {', '.join(spec.categories[:20])}")
            out[i] = code
        else:
            try:
                out[i] = float(v)
            except (TypeError, ValueError) as err:
                raise DataValidationError(f"rows[{i}][{name!r}]", repr(v), "send a number") from err
            if not np.isfinite(out[i]):
                raise DataValidationError(
                    f"rows[{i}][{name!r}]", repr(v), "send a finite number (or null if missing)"
                )
    return out


def images_to_array(model: OnnxModel, images: list | np.ndarray) -> np.ndarray:
    """Images as [n, H, W] (gray) or [n, C, H, W] to float32 [n, C, H, W]."""
    c, h, w = model.shape
    arr = _as_array(images, "images")
    if arr.ndim == 3 and c == 1:
        arr = arr[:, None]
    if arr.shape[1:] != (c, h, w):
        raise DataValidationError(
            "images",
            f"shape {list(arr.shape)}",
            f"send images shaped [n, {c}, {h}, {w}]" + (f" or [n, {h}, {w}]" if c == 1 else ""),
        )
    return arr


def label_ids(model: OnnxModel, labels: list | None, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    if len(labels) != n:
        raise DataValidationError(
            "labels", f"{len(labels)} labels for {n} inputs", "give one label per input, or none"
        )
    names = model.label_names
    unknown = sorted({str(v) for v in labels} - set(names))
    if unknown:
        raise DataValidationError(
            "labels", f"unknown label(s) {unknown[:5]}", f"use the model's labels: {', '.join(names)}"
        )
    return np.array([names.index(str(v)) for v in labels], dtype=np.int64)


def prepare(model: OnnxModel, rows: list | None, images, labels: list | None,
            method: str | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A score request checked and turned into (values, label ids or None, method): shared by every
    path that scores (ingress, batching runner, `genfactory score --local`), so all score the same inputs."""
    if model.kind == "table":
        if rows is None:
            raise DataValidationError("rows", "missing", "send table rows in `rows` for a table model")
        _check_size(rows)
        values = rows_to_array(model, rows)
    else:
        if images is None:
            raise DataValidationError("images", "missing", "send `images` for an image model")
        _check_size(images)
        values = images_to_array(model, images)
    method = method or default_method(model.card.score_methods)
    method_index(model, method)
    return values, label_ids(model, labels, len(values)), method


def respond(model: OnnxModel, scored: Scored | np.ndarray, method: str, by_label: bool,
            attribution: AttributionMode = "top_k", top_k: int = DEFAULT_TOP_K) -> dict:
    """The response body: the method's scores, its threshold and the flags; with `attribution`
    `top_k` the k largest contributions per input (`top`), `full` every one (`contributions`: per
    row in `attribution_columns` order, per image an [H, W] map). A bare score matrix, or a bundle
    without attribution, answers the scores alone and says why in `attribution_note`."""
    matrix = scored.matrix if isinstance(scored, Scored) else scored
    scores = matrix[:, method_index(model, method)]
    threshold, flags = verdict(model, scores, method, by_label)
    body = {"method": method, "scores": scores.tolist(), "threshold": threshold, "is_anomaly": flags}
    if attribution == "none":
        return body
    contributions = scored.contributions if isinstance(scored, Scored) else None
    if contributions is None:
        return {**body, "attribution_note": NO_ATTRIBUTION}
    if attribution == "full":
        return {**body, **full_contributions(model, contributions)}
    return {**body, "top": top_contributions(model, contributions, top_k)}


def full_contributions(model: OnnxModel, contributions: np.ndarray) -> dict:
    """Every contribution: tables per row in the card's column order (`attribution_columns`), images
    as one [H, W] map each."""
    if model.kind == "table":
        return {"contributions": contributions.tolist(), "attribution_columns": model.card.columns}
    _, h, w = model.shape
    return {"contributions": contributions.reshape(len(contributions), h, w).tolist()}


def top_contributions(model: OnnxModel, contributions: np.ndarray, k: int) -> list[list[dict]]:
    """Per input its k largest contributions, largest first: {column, contribution} for tables,
    {pixel: [row, col], contribution} for images."""
    order, top = top_k_indices(contributions, k)
    names, w = model.card.columns, model.shape[-1]

    def item(j: int, value: float) -> dict:
        where = {"column": names[j]} if model.kind == "table" else {"pixel": [j // w, j % w]}
        return {**where, "contribution": float(value)}

    return [[item(int(j), v) for j, v in zip(idx, vals, strict=True)]
            for idx, vals in zip(order, top, strict=True)]


def top_k_indices(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices [n, k], values [n, k]) of each row's k largest contributions, largest first (ties:
    the earlier column): what `genfactory score` writes as columns too."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(contributions, order, axis=1)


def resolve_top_k(model: OnnxModel, top_k: int | None) -> int:
    """The top_k to answer: unset, DEFAULT_TOP_K or the model's columns if fewer (a two-column model
    answers its top 2); a given one must lie between 1 and the model's columns (pixels)."""
    units = len(model.card.columns or []) if model.kind == "table" else model.shape[1] * model.shape[2]
    if top_k is None:
        return min(DEFAULT_TOP_K, units)
    if not 1 <= top_k <= units:
        what = "columns" if model.kind == "table" else "pixels"
        raise DataValidationError("top_k", repr(top_k), f"ask for 1 to {units} (this model's {what}), or "
                                                       "attribution='full' for every contribution")
    return top_k


def score_request(
    model: OnnxModel, rows: list | None, images, labels: list | None, method: str | None,
    attribution: AttributionMode = "top_k", top_k: int | None = None,
) -> dict:
    """A whole score request in this process: checked inputs -> one ONNX call -> the response body.
    `top_k` unset: `resolve_top_k`'s default."""
    values, label_ids, method = prepare(model, rows, images, labels, method)
    top_k = resolve_top_k(model, top_k) if attribution == "top_k" else 0
    scored = score_attributed(model, values, label_ids)
    return respond(model, scored, method, label_ids is not None, attribution, top_k)


def has_attribution(model: OnnxModel) -> bool:
    """Whether the bundle's scorer graph has the attribution output (exported since it was added)."""
    return any(o.name == ATTRIBUTION_OUTPUT for o in model.scorer.get_outputs())


def score_attributed(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None = None,
                     inputs_per_call: int = INPUTS_PER_CALL) -> Scored:
    """Scores [n, methods] as `score_matrix`, and each input's contributions where the bundle has
    them. Without labels every label is tried: scores take each method's minimum (as `score_matrix`),
    contributions come from the label with the lowest f-AnoGAN score (the reconstruction the row is
    closest to), which is also the ensemble's. In calls of at most `inputs_per_call` scorer inputs."""
    _check_labels(values, labels)
    if not len(values):  # nothing to score: the shapes of one row's answer, with no row
        one = _score_attributed(model, np.zeros((1, *values.shape[1:]), values.dtype), None)
        return Scored(one.matrix[:0], None if one.contributions is None else one.contributions[:0],
                      one.labels[:0])
    parts = [_score_attributed(model, *piece) for piece in pieces(model, values, labels, inputs_per_call)]
    contributions = None if parts[0].contributions is None else \
        np.concatenate([p.contributions for p in parts])
    return Scored(np.concatenate([p.matrix for p in parts]), contributions,
                  np.concatenate([p.labels for p in parts]))


def _score_attributed(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None) -> Scored:
    if not has_attribution(model):
        matrix = _score_matrix(model, values, labels)
        return Scored(matrix, None, labels if labels is not None else np.zeros(len(values), np.int64))
    outputs = ["scores", ATTRIBUTION_OUTPUT]
    if labels is not None:
        scores, contributions = model.scorer.run(outputs, {"values": values, "labels": labels})
        return Scored(scores.astype(np.float32), contributions.astype(np.float32), labels)
    n_labels = len(model.label_names)
    scores, contributions = every_label(model, values, outputs)
    scores = scores.reshape(len(values), n_labels, -1)
    best = np.argmin(scores[:, :, model.card.score_methods.index("fanogan")], axis=1)
    chosen = contributions.reshape(len(values), n_labels, -1)[np.arange(len(values)), best]
    return Scored(scores.min(axis=1).astype(np.float32), chosen.astype(np.float32), best.astype(np.int64))


def score_matrix(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None = None,
                 inputs_per_call: int = INPUTS_PER_CALL) -> np.ndarray:
    """Scores [n, methods]: against each input's label, else the minimum over all labels (per method),
    in calls of at most `inputs_per_call` scorer inputs."""
    _check_labels(values, labels)
    if not len(values):  # nothing to score (the graph cannot take zero rows): one row's shape, no row
        return _score_matrix(model, np.zeros((1, *values.shape[1:]), values.dtype), None)[:0]
    return np.concatenate([_score_matrix(model, *piece)
                           for piece in pieces(model, values, labels, inputs_per_call)])


def _score_matrix(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is not None:
        return model.score_raw(values, labels).astype(np.float32)
    scores = every_label(model, values, None)[0]  # (a scorer from before f-AnoGAN returns [n]: one column)
    return scores.reshape(len(values), len(model.label_names), -1).min(axis=1).astype(np.float32)


def pieces(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None,
           inputs_per_call: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """`values` (and their `labels`) in consecutive pieces of at most `inputs_per_call` scorer inputs,
    a row without a label counting once per label it is scored against."""
    step = max(1, inputs_per_call // (1 if labels is not None else len(model.label_names)))
    return [(values[i:i + step], None if labels is None else labels[i:i + step])
            for i in range(0, len(values), step)]


def every_label(model: OnnxModel, values: np.ndarray, outputs: list[str] | None) -> list[np.ndarray]:
    """The scorer's `outputs` (None: all) for each row against each label, row by row ([n * labels,
    ...], labels in order within a row). A graph that takes several labels per row (`LABELS_PER_ROW_KEY`)
    gets each row once, so its label-free parts, the isolation forest among them, run once per row;
    an older one gets each row repeated once per label."""
    n_labels = len(model.label_names)
    ids = np.tile(np.arange(n_labels, dtype=np.int64), len(values))
    rows = values if labels_per_row(model) else np.repeat(values, n_labels, axis=0)
    return model.scorer.run(outputs, {"values": rows, "labels": ids})


def labels_per_row(model: OnnxModel) -> bool:
    """Whether the bundle's scorer graph takes several labels per row (exported since it does)."""
    return LABELS_PER_ROW_KEY in model.scorer.get_modelmeta().custom_metadata_map


def _check_size(inputs) -> None:
    """A request's size limit, at the request (`prepare`): scoring itself goes in calls of bounded size,
    so in-process callers (calibration, bulk batches) may score any number."""
    if len(inputs) > MAX_INPUTS_PER_REQUEST:
        raise DataValidationError(
            "inputs", f"{len(inputs)} inputs", f"send at most {MAX_INPUTS_PER_REQUEST} per request"
        )


def _check_labels(values: np.ndarray, labels: np.ndarray | None) -> None:
    if labels is not None and len(labels) != len(values):
        raise DataValidationError(
            "labels", f"{len(labels)} labels for {len(values)} inputs", "give one label per input, or none"
        )


def method_index(model: OnnxModel, method: str | None) -> int:
    """Column of `method` (default: the model's default) in the scorer's output."""
    methods = model.card.score_methods
    method = method or default_method(methods)
    if method not in methods:
        raise DataValidationError("method", repr(method), f"use one of: {', '.join(methods)}")
    return methods.index(method)


def score(model: OnnxModel, values: np.ndarray, labels: np.ndarray | None = None,
          method: str | None = None) -> np.ndarray:
    """One score per input with one method (default: the card's default)."""
    return score_matrix(model, values, labels)[:, method_index(model, method)]


def thresholds(methods: list[str], given: np.ndarray, best: np.ndarray, fpr: float) -> dict:
    """Per method, the score above which at most `fpr` of these (normal, held-out) inputs fall: one
    threshold for scoring against the given label (`given`: [n, methods]), one for the best over
    all labels (`best`)."""
    return {
        method: {
            "given_label": _upper_quantile(given[:, k], fpr),
            "best_label": _upper_quantile(best[:, k], fpr),
        }
        for k, method in enumerate(methods)
    }


def _upper_quantile(scores: np.ndarray, fpr: float) -> float:
    return float(np.quantile(scores, 1.0 - fpr, method="higher"))


def verdict(
    model: OnnxModel, scores: np.ndarray, method: str | None, by_label: bool
) -> tuple[float | None, list[bool] | None]:
    """(threshold, is_anomaly per score) from the card's calibration; (None, None) if it has none."""
    anomaly = model.card.anomaly
    method = method or default_method(model.card.score_methods)
    calibration = anomaly.thresholds.get(method) if anomaly else None
    if calibration is None:
        return None, None
    threshold = calibration.given_label if by_label else calibration.best_label
    return threshold, (np.asarray(scores) > threshold).tolist()


def _as_array(data, field: str) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataValidationError(
            field, f"not a numeric array ({err})", "send numbers in equal-length lists"
        ) from err
    if arr.ndim == 0 or len(arr) == 0:
        raise DataValidationError(field, "no inputs", "send at least one input")
    bad = ~np.isfinite(arr.reshape(len(arr), -1))
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise DataValidationError(f"{field}[{row}]", "NaN or inf", "send finite numbers only")
    return arr
