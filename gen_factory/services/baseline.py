"""Anomaly-detection baseline datasets: synthetic normal rows and labelled synthetic anomalies, as Parquet.

From a registered generator: `normal_rows` spread over the normal labels in the proportions of the
training data, plus `anomaly_rows` over the labels named as anomalies (a conditional model of, say,
benign and malignant tumours can generate both; a one-class model has only normal labels). An
`is_anomaly` column marks each row. With real data beside it, the classic-detector report says
whether detectors fitted on the synthetic normal rows hold up against ones fitted on real rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gen_factory.data import DataValidationError
from gen_factory.evaluate.anomaly import baseline_report
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_arrays, to_arrow
from gen_factory.services.augmentation import write_parquet_atomic


def baseline_counts(label_names: list[str], label_counts: list[int], normal_rows: int,
                    anomaly_labels: list[str], anomaly_rows: int) -> list[int]:
    """Rows per label: normal rows in the training proportions (totals exact), anomaly rows evenly."""
    unknown = sorted(set(anomaly_labels) - set(label_names))
    if unknown:
        raise DataValidationError("anomaly_labels", repr(unknown),
                                  f"name labels the model can generate: {', '.join(label_names)}")
    for field, n in (("normal_rows", normal_rows), ("anomaly_rows", anomaly_rows)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise DataValidationError(field, repr(n), "give a whole number >= 0")
    if anomaly_rows and not anomaly_labels:
        raise DataValidationError(
            "anomaly_rows", anomaly_rows, "name the anomaly label(s) too (--anomaly-label)"
        )
    normal = [i for i, name in enumerate(label_names) if name not in anomaly_labels]
    if not normal:
        raise DataValidationError(
            "anomaly_labels", repr(anomaly_labels), "leave at least one label as normal"
        )
    counts = [0] * len(label_names)
    counts_normal = _spread(normal_rows, [label_counts[i] for i in normal])
    for i, n in zip(normal, counts_normal, strict=True):
        counts[i] = n
    for i, n in zip(
        [label_names.index(a) for a in anomaly_labels],
        _spread(anomaly_rows, [1] * len(anomaly_labels)),
        strict=True,
    ):
        counts[i] = n
    if sum(counts) == 0:
        raise DataValidationError("normal_rows", normal_rows, "ask for at least one row")
    return counts


def build_baseline(
    model: OnnxModel,
    normal_rows: int,
    anomaly_labels: list[str] | None = None,
    anomaly_rows: int = 0,
    seed: int = 0,
    extra_meta: dict | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """(table with `is_anomaly`, the generated values of its normal rows)."""
    anomaly_labels = list(anomaly_labels or [])
    names = model.label_names
    if model.card.label_counts is None:
        raise DataValidationError("model", "no training label counts on its card (trained before they "
                                  "were kept)", "train the model again")
    counts = baseline_counts(names, model.card.label_counts, normal_rows, anomaly_labels, anomaly_rows)
    values, labels = generate_arrays(model, counts, seed)
    flags = np.isin(labels, [names.index(a) for a in anomaly_labels])
    meta = {"seed": seed, "anomaly_labels": anomaly_labels, **(extra_meta or {})}
    table = to_arrow(model, values, labels, meta).append_column("is_anomaly", pa.array(flags))
    return table, values[~flags]


def baseline_dataset(model_ref: str, out: Path, normal_rows: int, anomaly_labels: list[str] | None = None,
                     anomaly_rows: int = 0, seed: int = 0, evaluate_on: str | None = None,
                     label_column: str = "label", holdout: float = 0.3) -> dict:
    """`genfactory baseline`: write the dataset; with `evaluate_on` (the real data), add the detector report:
    real normal training rows vs the synthetic normal rows, both scored on the real hold-out, where the
    anomalies are the anomaly labels and any label the model was not trained on."""
    from gen_factory import registry
    from gen_factory.data import load_dataset, training_split
    from gen_factory.data.datasets import values_of

    ref = registry.resolve(model_ref)
    model = OnnxModel(registry.download(ref))
    table, synthetic_normal = build_baseline(model, normal_rows, anomaly_labels, anomaly_rows, seed,
                                             {"model": f"{ref.name}/{ref.version}"})
    write_parquet_atomic(table, out)
    info = {
        "path": str(out),
        "rows": table.num_rows,
        "anomaly_rows": int(sum(table.column("is_anomaly").to_pylist())),
        "model": f"{ref.name}/{ref.version}",
    }
    if evaluate_on:
        normal_labels = [n for n in model.label_names if n not in (anomaly_labels or [])]
        train, test = training_split(
            load_dataset(evaluate_on, label_column), holdout, model.card.seed, normal_labels
        )
        is_anomaly = ~np.isin(np.asarray(test.label_names)[test.labels], normal_labels)
        if not is_anomaly.any() or is_anomaly.all():
            raise DataValidationError(
                "evaluate_on",
                evaluate_on,
                "give data whose hold-out has normal and anomaly rows "
                "(name the anomaly label with --anomaly-label)",
            )
        info["report"] = baseline_report(
            values_of(train), synthetic_normal, values_of(test), is_anomaly.astype(int), seed
        )
    return info


def _spread(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights`, largest remainders first, so the parts sum exactly."""
    if not weights:
        return []
    w = np.asarray(weights, dtype=np.float64)
    share = total * w / w.sum() if w.sum() > 0 else np.full(len(w), total / len(w))
    parts = np.floor(share).astype(int)
    for i in np.argsort(-(share - parts), kind="stable")[: total - parts.sum()]:
        parts[i] += 1
    return parts.tolist()
