"""Augmentation datasets: real rows plus rows from a registered generator, labelled, as Parquet.

Two shapes: every class topped up by `ratio` synthetic rows per real row, or synthetic rows only
for chosen classes (rare ones, say). The synthetic rows are free samples of the class, or, with a
`spread`, variations of the real rows (`sampling.generate_variations`): on digits at 10 % those
helped an SVC more than free samples, though no more than repeating the real rows did
(bench/RESULTS.md). A `synthetic` column marks each row's origin, so a consumer can weight or
filter. Written atomically: a reader never sees half a file. For images, `evaluate` reports a CNN's
accuracy on the written set beside the best control without any GAN (real only, real with standard
augmentation), so a user sees whether the synthetic images add anything a CNN could not get alone.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gen_factory.data import DataValidationError
from gen_factory.data.datasets import (
    BUNDLED_TABLES,
    ONE_CLASS_COLUMN,
    Dataset,
    TableData,
    bundled_frame,
    read_csv,
    split_indices,
)
from gen_factory.data.schema import restore
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_arrays, generate_variations, read_metadata, to_arrow


def synthetic_counts(real_labels: np.ndarray, label_names: list[str], ratio: float,
                     classes: list[str] | None = None) -> list[int]:
    """Synthetic rows per label: `ratio` per real row of that label, only for `classes` if given."""
    if not ratio > 0:
        raise DataValidationError(
            "ratio", ratio, "give a positive number of synthetic rows per real row, e.g. 1.0"
        )
    chosen = set(label_names if classes is None else classes)
    unknown = sorted(chosen - set(label_names))
    if unknown:
        raise DataValidationError(
            "classes", f"unknown label(s) {unknown}", f"use the model's labels: {', '.join(label_names)}"
        )
    real = np.bincount(real_labels, minlength=len(label_names))
    return [int(round(n * ratio)) if name in chosen else 0 for name, n in zip(label_names, real, strict=True)]


def build_augmentation(model: OnnxModel, real: Dataset, ratio: float = 1.0, classes: list[str] | None = None,
                       synthetic_only: bool = False, seed: int = 0, extra_meta: dict | None = None,
                       spread: float | None = None, real_rows: pa.Table | None = None) -> pa.Table:
    """Real rows (unless `synthetic_only`) followed by generated ones, with a boolean `synthetic` column.

    A table's `real` must be in the model's codes (`model_codes`) and `real_rows` the same rows as the
    user gave them: those are written as given (a folded rare category stays itself, a float keeps
    its digits) and the synthetic rows come back in the model's schema, so both parts have the user's
    column order and types. With a `spread`, each synthetic row varies a real row of its class, the
    class's rows taken in turn (so each is used about `ratio` times)."""
    card = model.card
    values = real.images if real.kind == "image" else real.features
    if real.kind != model.kind or (real.kind == "image" and list(values.shape[1:]) != card.shape) \
            or (real.kind == "table" and list(real.columns) != card.columns):
        got = f"shape {list(values.shape[1:])}" if real.kind == "image" else f"columns {list(real.columns)}"
        want = f"shape {card.shape}" if model.kind == "image" else f"columns {card.columns}"
        raise DataValidationError("dataset", f"{real.kind} of {got}",
                                  f"give {model.kind} data of {want} like the model's training data")
    if list(real.label_names) != card.label_names:
        raise DataValidationError(
            "labels",
            f"data labels {real.label_names} != model labels {card.label_names}",
            "augment the dataset the model was trained on (same label values)",
        )
    counts = synthetic_counts(real.labels, real.label_names, ratio, classes)
    if sum(counts) == 0:
        raise DataValidationError("ratio", ratio, "ask for at least one synthetic row (raise --ratio)")
    if spread is None:
        fake, fake_labels = generate_arrays(model, counts, seed)
    else:
        sources = np.concatenate(
            [np.resize(np.flatnonzero(real.labels == k), n) for k, n in enumerate(counts)]
        )
        fake, fake_labels = generate_variations(model, values, real.labels, sources, spread, seed)
    meta = {
        "ratio": ratio,
        "classes": classes,
        "synthetic_only": synthetic_only,
        "seed": seed,
        "spread": spread,
        "synthetic_rows": int(sum(counts)),
        **(extra_meta or {}),
    }
    synthetic = _in_schema(model, to_arrow(model, fake.astype(np.float32), fake_labels, meta))
    tables = [] if synthetic_only else [_real_part(model, real, real_rows, synthetic.schema, meta)]
    tables.append(synthetic)
    return pa.concat_tables([t.append_column("synthetic", pa.array(np.full(t.num_rows, i == len(tables) - 1)))
                             for i, t in enumerate(tables)])


def _in_schema(model: OnnxModel, table: pa.Table) -> pa.Table:
    """Decoded rows in the user's schema where the card keeps it (tables since card v2)."""
    schema = model.card.table_schema if model.kind == "table" else None
    return table if schema is None else restore(table, schema)


def _real_part(model: OnnxModel, real: Dataset, rows: pa.Table | None, schema: pa.Schema,
               meta: dict) -> pa.Table:
    """The real rows in `schema` (the synthetic part's): as the user gave them where `rows` holds them,
    else decoded from their codes (images; tables of cards without a schema)."""
    if rows is None:
        values = real.images if real.kind == "image" else real.features
        return _in_schema(model, to_arrow(model, values.astype(np.float32), real.labels, meta))
    arrays = []
    for field in schema:
        try:
            arrays.append(rows.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DataValidationError(f"column {field.name!r}", f"type {rows.schema.field(field.name).type}",
                                      f"give values of the training data's type ({field.type})") from err
    return pa.Table.from_arrays(arrays, schema=schema)


def model_codes(model: OnnxModel, rows: pa.Table, where: str = "table") -> TableData:
    """A table's rows as the user gave them (Arrow, their types) in the model's codes: the card's
    columns, category codes, time units and label ids (`runtime.codes`), so the generator, encoder and
    scorer read them as they read the training rows. A column the model lacks or does not have, a label
    it does not know or a value of the wrong kind is an error naming it; a one-class model's rows need
    no label column. `where` names the source in errors."""
    from gen_factory.runtime.codes import label_codes, table_values

    card = model.card
    label = card.label_column
    one_class = label == ONE_CLASS_COLUMN
    check_columns(model, rows.column_names)
    values = np.concatenate([table_values(model, b, (where, 0)) for b in rows.to_batches()]
                            or [np.zeros((0, len(card.columns)), np.float32)])
    labels = np.zeros(rows.num_rows, dtype=np.int64) if one_class else \
        label_codes(model, rows.column(label).combine_chunks(), (where, 0), label)
    return TableData(where, values, labels, list(card.columns), list(card.label_names), label,
                     categories={c.name: list(c.categories) for c in card.encoding.columns
                                 if c.kind == "categorical"}, schema=card.table_schema)


def check_columns(model: OnnxModel, names: list[str]) -> None:
    """A table's columns against the model's: each of its columns, none other, and its label column
    (a one-class model has none), or an error naming the first that is not."""
    card = model.card
    label = card.label_column
    given = [c for c in names if c != label]
    missing = [c for c in card.columns if c not in given]
    if missing:
        raise DataValidationError(f"column {missing[0]!r}", "missing from the table",
                                  f"give the model's columns: {', '.join(card.columns)}")
    extra = [c for c in given if c not in card.columns]
    if extra:
        raise DataValidationError(f"column {str(extra[0])[:40]!r}", "not a column of the model",
                                  f"drop it (the model's columns: {', '.join(card.columns)}) or train a "
                                  "model with it: rows written without it would lose it")
    if label != ONE_CLASS_COLUMN and label not in names:
        raise DataValidationError(f"column {label!r}", "missing (the model's label column)",
                                  f"give each row's label in {label!r} (the table's columns: "
                                  f"{', '.join(map(str, names))[:200]})")


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Write to a hidden temp file beside `path`, then rename over it (atomic on one filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_augmentation(path: Path, model: OnnxModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(values in the model's codes, label ids, synthetic flags, metadata) of a dataset written by
    `build_augmentation`, read back as a consumer reads the file."""
    table = pq.read_table(path)
    meta = read_metadata(table)
    flags = table.column("synthetic").to_numpy()
    if meta["kind"] == "image":
        label_col = meta.get("label_column", "label")
        index = {name: i for i, name in enumerate(meta["label_names"])}
        ids = np.array([index[str(v)] for v in table.column(label_col).to_pylist()], dtype=np.int64)
        pixels = table.column("pixels").combine_chunks()
        values = pixels.values.to_numpy(zero_copy_only=False).reshape(len(ids), *meta["shape"])
        return values, ids, flags, meta
    coded = model_codes(model, table.drop_columns(["synthetic"]), str(path))
    return coded.features, coded.labels, flags, meta


def _time_columns(model: OnnxModel) -> set[str]:
    schema = model.card.table_schema
    return {c.name for c in schema.columns if c.time is not None} if schema else set()


def load_real(model: OnnxModel, dataset: str,
              label_column: str | None = None) -> tuple[Dataset, pa.Table | None]:
    """The user's real data for `model`: images as loaded, a table in the model's codes
    (`model_codes`) with its rows as given (Arrow; the label column renamed to the card's). A CSV's
    dates are parsed where the model learned a date (as `train` read them)."""
    from gen_factory.data import load_dataset

    card = model.card
    if model.kind == "image":
        return load_dataset(dataset, label_column or card.label_column), None
    suffix = Path(dataset).suffix.lower()
    if dataset in BUNDLED_TABLES:
        rows = pa.Table.from_pandas(bundled_frame(dataset)[0], preserve_index=False)
    elif suffix == ".csv" and Path(dataset).is_file():
        rows = pa.Table.from_pandas(read_csv(dataset, _time_columns(model)), preserve_index=False)
    elif suffix in (".parquet", ".pq") and Path(dataset).is_file():
        rows = pq.read_table(dataset)
    else:
        raise DataValidationError("dataset", repr(dataset), "give a bundled table name or an existing .csv "
                                  "or .parquet file with the model's columns")
    label = label_column or card.label_column
    if label != card.label_column and label in rows.column_names:
        rows = rows.rename_columns([card.label_column if c == label else c for c in rows.column_names])
    return model_codes(model, rows, str(dataset)), rows


def frame_real(model: OnnxModel, frame) -> tuple[TableData, pa.Table]:
    """A table model's real rows from a pandas frame: (in the model's codes, as given), as `load_real`."""
    from gen_factory.data.datasets import parse_iso_dates

    if model.kind != "table":
        raise DataValidationError("model", "an image model", "augment images from a file: genfactory augment")
    check_columns(model, [str(c) for c in frame.columns])
    frame = parse_iso_dates(frame.copy(), _time_columns(model))  # JSON rows carry datetimes as strings
    arrays = {}
    for col in frame.columns:
        try:
            arrays[col] = pa.array(frame[col], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise DataValidationError(f"rows[*][{str(col)[:40]!r}]", "values of several types",
                                      "give one type per column (numbers, strings or null)") from err
    rows = pa.table(arrays)
    return model_codes(model, rows, "rows"), rows


def augment_dataset(
    model_ref: str,
    dataset: str,
    out: Path,
    ratio: float = 1.0,
    classes: list[str] | None = None,
    synthetic_only: bool = False,
    label_column: str | None = None,
    holdout: float | None = None,
    seed: int = 0,
    spread: float | None = None,
    evaluate: str | None = None,
    yardstick: dict | None = None,
) -> dict:
    """`genfactory augment`: resolve the model in the registry, build the dataset, write it, and judge
    it on real rows it does not hold - the `holdout` share of `dataset` (split off first, as training
    splits) or the `evaluate` data. Tables: the rare class's AP beside the best control without a
    generator (`evaluate.rare`); images: with `evaluate`, the CNN yardstick beside its two controls
    (`evaluate.yardstick.controlled_uplift`; `yardstick`: its protocol overrides, e.g. {"rounds": 2}),
    with `holdout`, an SVC's accuracy real-only vs augmented. `label_column`: the table's label column
    where its name differs from the card's."""
    from gen_factory import registry

    ref = registry.resolve(model_ref)
    model = OnnxModel(registry.download(ref))
    if (holdout is not None or evaluate) and len(model.card.label_names) == 1:
        raise DataValidationError("holdout" if holdout is not None else "evaluate", "a one-class model",
                                  "augment without it: a model of one class has no rarer class to judge")
    real, rows = load_real(model, dataset, label_column)
    judged = None
    if evaluate and real.kind == "image":
        judged = evaluation_split(evaluate, real, real.label_column, seed)
    elif evaluate:
        judged = load_real(model, evaluate, label_column)[0]
    test = None
    if holdout is not None:
        if not 0 < holdout < 1:
            raise DataValidationError("holdout", holdout, "use a fraction between 0 and 1, e.g. 0.3")
        if evaluate:
            raise DataValidationError("holdout", holdout, "give --holdout or --evaluate, not both")
        keep, held = split_indices(real.labels, holdout, seed)
        real, test = real.subset(keep), real.subset(held)
        rows = None if rows is None else rows.take(keep)
    table = build_augmentation(model, real, ratio, classes, synthetic_only, seed,
                               {"model": f"{ref.name}/{ref.version}", "source": str(dataset)}, spread, rows)
    write_parquet_atomic(table, out)
    info = {
        "path": str(out),
        "rows": table.num_rows,
        "synthetic_rows": int(sum(table.column("synthetic").to_pylist())),
        "model": f"{ref.name}/{ref.version}",
    }
    if test is None and judged is None:
        return info
    x, y, _, _ = read_augmentation(out, model)  # what was written, as a consumer reads it
    if synthetic_only and real.kind == "table":  # what a user trains on: the real rows beside them
        x = np.concatenate([real.features, x])
        y = np.concatenate([real.labels, y])
    if real.kind == "table":
        info["rare"] = _table_report(model, real, (x, y), test if test is not None else judged, classes, seed)
    elif test is not None:
        from gen_factory.evaluate.uplift import augmentation_uplift

        info["uplift"] = {**augmentation_uplift(real.images, real.labels, x, y, test.images, test.labels),
                          "test_rows": int(len(test.labels))}
    else:
        from gen_factory.evaluate.yardstick import controlled_uplift

        (val_x, val_y), (test_x, test_y) = judged
        info["controls"] = controlled_uplift(real.images, real.labels, x, y, val_x, val_y, test_x, test_y,
                                             len(real.label_names), seed, **(yardstick or {}))
    return info


def _table_report(model: OnnxModel, real: TableData, augmented: tuple[np.ndarray, np.ndarray],
                  test: TableData, classes: list[str] | None, seed: int):
    """The rare-class report of a table's augmented set: the rarest of the synthesised classes."""
    from gen_factory.evaluate.rare import rare_class_report

    counts = np.bincount(real.labels, minlength=len(real.label_names))
    chosen = [k for k, name in enumerate(real.label_names) if classes is None or name in classes]
    rare = min(chosen, key=lambda k: counts[k])
    categorical = np.array([c.kind == "categorical" for c in model.card.encoding.columns])
    return rare_class_report((real.features, real.labels), augmented, (test.features, test.labels),
                             categorical, rare, real.label_names[rare], seed)


def evaluation_split(path: str, real: Dataset, label_column: str, seed: int
                     ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((validation images, labels), (test images, labels)): the evaluation data split in stratified
    halves, one to choose the yardstick's training length, the other to score it; checked against
    the real data first, so a wrong file fails before anything is written."""
    from gen_factory.data import load_dataset, split

    if real.kind != "image":
        raise DataValidationError("evaluate", path, "the CNN yardstick measures images; for a table use "
                                  "--holdout (an SVC, real only vs augmented)")
    data = load_dataset(path, label_column)
    if data.kind != "image" or list(data.label_names) != list(real.label_names) \
            or data.images.shape[1:] != real.images.shape[1:]:
        raise DataValidationError("evaluate", path, f"give labelled images like the real data's (labels "
                                  f"{', '.join(real.label_names)}, shape {list(real.images.shape[1:])})")
    shared = shared_images(data.images, real.images)
    if shared:
        raise DataValidationError("evaluate", f"{path}: {shared} of its {len(data.labels)} images are in the "
                                  "real data too", "give labelled images the augmented set does not hold "
                                  "(a held-out split): the CNN would be scored on images it trained on")
    val, test = split(data, 0.5, seed)
    return (val.images, val.labels), (test.images, test.labels)


def shared_images(images: np.ndarray, others: np.ndarray) -> int:
    """How many of `images` occur in `others`, pixel for pixel."""
    def key(image: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes()).digest()

    seen = {key(image) for image in others}
    return sum(key(image) in seen for image in images)
