"""Noise + labels -> labelled rows or images as an Arrow table / Parquet bytes, via ONNX Runtime.

Deterministic by construction: the noise comes from one NumPy generator seeded by the caller and
drawn label by label in the card's label order, so the same model, counts and seed give the
same rows - and the same Parquet bytes - in any process. Conditions on categorical columns
(`gen_factory.data.conditions`) are placed among the rows by a second generator spawned from
the same seed, and the exported graph forces them: exact counts, no rejection sampling. Without
conditions, that generator conditions just enough rows to keep each category at its training
share (`implicit_codes`).
"""

from __future__ import annotations

import io
import json
import numbers

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen_factory.data.columns import CategoricalColumn, ContinuousColumn
from gen_factory.data.conditions import cond_blocks, implicit_codes, one_hot, resolve_conditions
from gen_factory.data.schema import restore
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime.onnx_model import OnnxModel

MAX_ROWS_PER_REQUEST = 1_000_000
# A served request's output is capped by values (rows x values per row), not rows alone: 1M rows
# of 28x28 images would be 3 GB of float32 in one replica. 8M values is 32 MB: 266k rows of
# breast_cancer, 131k 8x8 digits, 10k 28x28 images - each a few seconds; more goes to bulk.
MAX_VALUES_PER_REQUEST = 8 * 2**20
CHUNK_ROWS = 8_192  # small enough for the GEMMs to stay in cache (measured fastest)
METADATA_KEY = b"gen_factory"


def request_row_limit(model: OnnxModel) -> int:
    """The most rows one API request may ask of `model` (see MAX_VALUES_PER_REQUEST)."""
    width = len(model.card.columns) if model.kind == "table" else int(np.prod(model.shape))
    return max(1, min(MAX_ROWS_PER_REQUEST, MAX_VALUES_PER_REQUEST // max(width, 1)))


def resolve_counts(label_names: list[str], counts: dict[str, int] | None = None,
                   rows_per_label: int | None = None, limit: int = MAX_ROWS_PER_REQUEST) -> list[int]:
    """Requested rows per label, in label order; rejects unknown labels, negatives and over-limit totals."""
    if (counts is None) == (rows_per_label is None):
        raise DataValidationError("counts", "both or neither of counts / rows_per_label",
                                  "give either counts per label or rows_per_label")
    if rows_per_label is not None:
        if (
            isinstance(rows_per_label, bool)
            or not isinstance(rows_per_label, (int, np.integer))
            or rows_per_label < 0
        ):
            raise DataValidationError("rows_per_label", repr(rows_per_label), "give a whole number >= 0")
        counts = {name: rows_per_label for name in label_names}
    out = [0] * len(label_names)
    for label, n in counts.items():
        if str(label) not in label_names:
            raise DataValidationError(f"counts[{label!r}]", f"unknown label {label!r}",
                                      f"use one of the model's labels: {', '.join(label_names)}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise DataValidationError(f"counts[{label!r}]", repr(n), "give a whole number >= 0")
        out[label_names.index(str(label))] = int(n)
    total = sum(out)
    if total == 0:
        raise DataValidationError("counts", "0 rows in total", "ask for at least one row")
    if total > limit:
        raise DataValidationError(
            "counts",
            f"{total} rows in total",
            f"ask for at most {limit} rows per request; split larger datasets over several "
            "seeds, or write them with `genfactory generate` (bulk)",
        )
    return out


def generate_arrays(model: OnnxModel, counts: list[int], seed: int | list[int],
                    conditions: dict | list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, label ids) for the requested counts; values are decoded (real columns / pixels).

    `conditions`: {column: {category: rows}} or one {column: category} per row (see
    `resolve_conditions`); categorical columns of table models only.
    """
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    codes = _condition_codes(model, conditions, labels, seed)
    return _run_generator(model, labels, np.random.default_rng(seed), codes=codes), labels


def _run_generator(
    model: OnnxModel,
    labels: np.ndarray,
    rng: np.random.Generator,
    codes: np.ndarray | None = None,
    centres: np.ndarray | None = None,
    spread: float = 1.0,
) -> np.ndarray:
    """The generator's decoded output for `labels`, chunk by chunk, the noise drawn from `rng` in
    row order (so the chunk size never changes a row): standard normal, or `centres` + `spread` x
    standard normal; `codes` per row give the cond vectors (conditional tables)."""
    blocks = cond_blocks(model.card.encoding.columns) if codes is not None else []
    parts = []
    for start in range(0, len(labels), CHUNK_ROWS):
        chunk = labels[start:start + CHUNK_ROWS]
        noise = rng.standard_normal((len(chunk), model.card.noise_dim + model.card.flag_noise),
                                    dtype=np.float32)
        if centres is not None:  # the flag columns stay free noise: the encoder gives only the generator's
            centre = centres[start:start + CHUNK_ROWS]
            noise[:, :centre.shape[1]] = centre + np.float32(spread) * noise[:, :centre.shape[1]]
        cond = one_hot(codes[start:start + CHUNK_ROWS], blocks) if codes is not None else None
        parts.append(model.generate_raw(noise, chunk, cond))
    values = np.concatenate(parts)
    if model.kind == "image" and model.card.encoding.integer:  # whole-number pixels, as in training
        np.round(values, out=values)
    return values


def generate_variations(model: OnnxModel, values: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                        spread: float, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(values, label ids) of one variation per index in `sources`: G(E(x) + spread * noise, y) for
    the real row x = values[i] and its label y. E is the f-AnoGAN encoder, which places x where the
    generator rebuilds it, so a small `spread` stays near x and a large one moves towards free
    samples. Table models draw every categorical column freely (no cond vector), as the encoder
    was trained."""
    if not model.has_encoder:
        raise DataValidationError(
            "spread", spread, "this model was exported without an encoder: train it again"
        )
    if (
        isinstance(spread, bool)
        or not isinstance(spread, numbers.Real)
        or not (np.isfinite(spread) and spread >= 0)
    ):
        raise DataValidationError("spread", repr(spread), "give a number >= 0, e.g. 0.25")
    sources = np.asarray(sources, dtype=np.int64)
    if len(sources) == 0 or sources.min() < 0 or sources.max() >= len(values):
        raise DataValidationError("sources", f"{len(sources)} indices into {len(values)} rows",
                                  "give at least one index of a real row")
    used, at_used = np.unique(sources, return_inverse=True)  # encode only the rows varied
    rows = np.asarray(values, dtype=np.float32)[used]
    codes = np.concatenate(
        [model.encode_raw(rows[i : i + CHUNK_ROWS]) for i in range(0, len(rows), CHUNK_ROWS)]
    )
    out_labels = np.asarray(labels, dtype=np.int64)[sources]
    out = _run_generator(
        model, out_labels, np.random.default_rng(seed), centres=codes[at_used], spread=spread
    )
    return out, out_labels


def _condition_codes(model: OnnxModel, conditions: dict | list | None, labels: np.ndarray,
                     seed: int | list[int]) -> np.ndarray | None:
    placement = np.random.default_rng(
        np.random.SeedSequence(seed).spawn(1)[0]
    )  # leaves the noise stream as it was
    if not conditions:
        return implicit_codes(model.card.encoding.columns, labels, placement,
                              model.card.free_shares) if model.conditional else None
    if model.kind != "table" or not model.conditional:
        raise DataValidationError(
            "conditions",
            repr(conditions)[:80],
            "this model takes no conditions: it has no categorical columns, or was trained "
            "before conditions existed (train it again)",
        )
    return resolve_conditions(model.card.encoding.columns, conditions, len(labels), placement)


def to_arrow(
    model: OnnxModel, values: np.ndarray, labels: np.ndarray, extra_meta: dict | None = None
) -> pa.Table:
    """Columns named as in the source (tables) or one `pixels` list column (images), plus `label`.

    The label is dictionary-encoded with every label name, and the schema metadata carries the
    label names, the image shape and the model reference.
    """
    card = model.card
    label_col = card.label_column
    names = pa.array(card.label_names, type=pa.string())
    label_array = pa.DictionaryArray.from_arrays(pa.array(labels.astype(np.int32)), names)
    if model.kind == "table":
        columns = np.ascontiguousarray(values.T)  # one contiguous buffer per column: fast to wrap
        arrays = [
            column_array(col_values, col)
            for col_values, col in zip(columns, card.encoding.columns, strict=True)
        ]
        fields = list(card.columns)
    else:
        flat = values.reshape(len(values), -1)
        arrays = [pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])]
        fields = ["pixels"]
    meta = {"label_names": card.label_names, "label_column": label_col, "kind": model.kind,
            "shape": card.shape, **(extra_meta or {})}
    table = pa.Table.from_arrays(arrays + [label_array], names=fields + [label_col])
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def column_array(values: np.ndarray, column: CategoricalColumn | ContinuousColumn) -> pa.Array:
    """One decoded column as Arrow: categories as dictionary strings, whole numbers as int64, values
    with a fixed number of decimals rounded in float64 (exact cents), NaN as null.

    A column without NaN gets no validity mask (the same Parquet bytes): building one cost more
    than the conversion itself (bench/bulk.py); so did a separate widening pass before rounding.
    """
    missing = np.isnan(values)
    mask = missing if missing.any() else None
    if column.kind == "categorical":
        codes = pa.array(np.where(missing, 0, values).astype(np.int32), mask=mask)
        return pa.DictionaryArray.from_arrays(codes, pa.array(column.categories, type=pa.string()))
    if column.integer:
        return pa.array(np.where(missing, 0, values).astype(np.int64), mask=mask)
    if column.decimals is None:
        return pa.array(values.astype(np.float64), mask=mask)
    scale = 10.0 ** column.decimals  # np.round(x, d) exactly: x * 10**d, rint, / 10**d, in float64
    wide = np.multiply(values, scale, dtype=np.float64)
    np.rint(wide, out=wide)
    np.divide(wide, scale, out=wide)
    return pa.array(wide, mask=mask)


def generate_table(model: OnnxModel, counts: list[int], seed: int | list[int], extra_meta: dict | None = None,
                   conditions: dict | list | None = None, drop: tuple[str, ...] = ()) -> pa.Table:
    """Generated rows in the schema the model was trained on (the user's column order and types, where
    the card keeps it: `data.schema`), without the `drop` columns."""
    values, labels = generate_arrays(model, counts, seed, conditions)
    table = to_arrow(model, values, labels, {"seed": seed, **(extra_meta or {})})
    if model.card.table_schema is not None:
        return restore(table, model.card.table_schema, drop)
    return table.drop_columns(list(drop))


def to_parquet_bytes(table: pa.Table) -> bytes:
    """zstd, dictionary pages only for the (dictionary) label column: trying dictionaries on
    continuous floats cost 8x the write time for larger files (measured in bench/bulk.py)."""
    sink = io.BytesIO()
    dictionary = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary)
    return sink.getvalue()


def read_metadata(table: pa.Table) -> dict:
    """The gen_factory metadata of a table produced here (label names, shape, model, seed)."""
    return json.loads(table.schema.metadata[METADATA_KEY])
