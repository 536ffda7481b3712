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
from gen_factory.data.datasets import Dataset
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
                       spread: float | None = None) -> pa.Table:
    """Real rows (unless `synthetic_only`) followed by generated ones, with a boolean `synthetic` column.

    With a `spread`, each synthetic row varies a real row of its class, the class's rows taken in
    turn (so each is used about `ratio` times)."""
    card = model.card
    if list(real.label_names) != card.label_names:
        raise DataValidationError(
            "labels",
            f"data labels {real.label_names} != model labels {card.label_names}",
            "augment the dataset the model was trained on (same label values)",
        )
    values = real.images if real.kind == "image" else real.features
    if real.kind != model.kind or list(values.shape[1:]) != card.shape:
        raise DataValidationError(
            "dataset",
            f"{real.kind} of shape {list(values.shape[1:])}",
            f"give {model.kind} data of shape {card.shape} like the model's training data",
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
    parts = [] if synthetic_only else [(values, real.labels, False)]
    parts.append((fake, fake_labels, True))
    meta = {
        "ratio": ratio,
        "classes": classes,
        "synthetic_only": synthetic_only,
        "seed": seed,
        "spread": spread,
        "synthetic_rows": int(sum(counts)),
        **(extra_meta or {}),
    }
    tables = []
    for v, lab, synthetic in parts:
        t = to_arrow(model, v.astype(np.float32), lab, meta)
        tables.append(t.append_column("synthetic", pa.array(np.full(len(lab), synthetic))))
    return pa.concat_tables(tables)


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


def read_augmentation(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(values, label ids, synthetic flags, metadata) of a dataset written by `build_augmentation`."""
    table = pq.read_table(path)
    meta = read_metadata(table)
    label_col = meta.get("label_column", "label")
    labels = table.column(label_col).combine_chunks()
    index = {name: i for i, name in enumerate(meta["label_names"])}
    ids = np.array([index[v] for v in labels.to_pylist()], dtype=np.int64)
    if meta["kind"] == "image":
        pixels = table.column("pixels").combine_chunks()
        values = pixels.values.to_numpy(zero_copy_only=False).reshape(len(ids), *meta["shape"])
    else:
        drop = {label_col, "synthetic"}
        values = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in table.column_names
                                  if c not in drop])
    return values, ids, table.column("synthetic").to_numpy(), meta


def augment_dataset(
    model_ref: str,
    dataset: str,
    out: Path,
    ratio: float = 1.0,
    classes: list[str] | None = None,
    synthetic_only: bool = False,
    label_column: str = "label",
    holdout: float | None = None,
    seed: int = 0,
    spread: float | None = None,
    evaluate: str | None = None,
    yardstick: dict | None = None,
) -> dict:
    """`genfactory augment`: resolve the model in the registry, build the dataset, write it, and with a
    `holdout` measure an SVC's accuracy on the held-out real rows, real-only vs augmented. With
    `evaluate` (labelled real images the model never saw), report the CNN yardstick's accuracy of the
    written set beside its two controls (`evaluation_split`, `evaluate.yardstick.controlled_uplift`;
    `yardstick`: its protocol overrides, e.g. {"rounds": 2})."""
    from gen_factory import registry
    from gen_factory.data import load_dataset, split
    from gen_factory.evaluate.uplift import augmentation_uplift

    ref = registry.resolve(model_ref)
    model = OnnxModel(registry.download(ref))
    real = load_dataset(dataset, label_column)
    judged = evaluation_split(evaluate, real, label_column, seed) if evaluate else None
    test = None
    if holdout is not None:
        if not 0 < holdout < 1:
            raise DataValidationError("holdout", holdout, "use a fraction between 0 and 1, e.g. 0.3")
        real, test = split(real, holdout, seed)
    table = build_augmentation(model, real, ratio, classes, synthetic_only, seed,
                               {"model": f"{ref.name}/{ref.version}", "source": str(dataset)}, spread)
    write_parquet_atomic(table, out)
    info = {
        "path": str(out),
        "rows": table.num_rows,
        "synthetic_rows": int(sum(table.column("synthetic").to_pylist())),
        "model": f"{ref.name}/{ref.version}",
    }
    if test is not None or judged is not None:
        x, y, _, _ = read_augmentation(out)  # what was written, as a consumer reads it
    if test is not None:
        real_x = real.images if real.kind == "image" else real.features
        test_x = test.images if test.kind == "image" else test.features
        info["uplift"] = {**augmentation_uplift(real_x, real.labels, x, y, test_x, test.labels),
                          "test_rows": int(len(test.labels))}
    if judged is not None:
        from gen_factory.evaluate.yardstick import controlled_uplift

        (val_x, val_y), (test_x, test_y) = judged
        info["controls"] = controlled_uplift(real.images, real.labels, x, y, val_x, val_y, test_x, test_y,
                                             len(real.label_names), seed, **(yardstick or {}))
    return info


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
