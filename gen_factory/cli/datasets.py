"""The commands that read or write data files: pull, generate, verify, score, augment, baseline, evaluate.

Heavy imports wait for the command; a bad file or argument raises DataValidationError (exit 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pull(args) -> None:
    from gen_factory import client

    counts = parse_counts(args.count)
    info = client.pull(
        args.url,
        args.model,
        args.out,
        rows_per_label=args.rows_per_label,
        counts=counts,
        seed=args.seed,
        conditions=parse_conditions(args.condition),
    )
    print(
        f"wrote {info['rows']} rows ({info['bytes']} bytes) from version {info['version']} to {info['path']}"
    )


def generate(args) -> int:
    from gen_factory.services.bulk import OutputError, generate_dataset

    try:
        manifest = generate_dataset(args.model, args.out, rows=args.rows, counts=parse_counts(args.count),
                                    seed=args.seed, workers=args.workers, block_rows=args.block_rows,
                                    overwrite=args.overwrite, conditions=parse_conditions(args.condition),
                                    precision=args.precision)
    except OutputError as err:  # another run, or something that appeared at DIR: not a usage error
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {manifest['rows']} rows in {len(manifest['files'])} files from {manifest['model_uri']} "
          f"to {args.out} (manifest: {args.out.rstrip('/')}/_manifest.json)")
    return 0


def verify(args) -> int:
    """One verdict line; the exit code is what scripts check (a missing PATH is a usage error: 2)."""
    from gen_factory.services.bulk import check_dataset

    result = check_dataset(args.path)
    print(result.summary())
    return 0 if result.ok else 1


def score(args) -> int | None:
    import numpy as np

    from gen_factory.data.validate import DataValidationError

    if args.out:
        return _score_to_dataset(args)
    suffix = args.file.suffix.lower()
    rows = images = labels = None
    if suffix == ".npz":
        try:
            with np.load(args.file, allow_pickle=False) as z:
                images = z["images"]
                labels = [str(v) for v in z["labels"]] if args.label_column else None
        except (OSError, ValueError, KeyError) as err:
            raise DataValidationError(
                "file",
                str(args.file),
                f"give an NPZ with an `images` array ({err.__class__.__name__}: {str(err)[:120]})",
            ) from err
    elif suffix in (".parquet", ".pq", ".csv"):
        df = _read_rows(args.file)
        if args.label_column:
            if args.label_column not in df.columns:
                raise DataValidationError(
                    "--label-column", repr(args.label_column), "name a column of the file"
                )
            labels = df.pop(args.label_column).astype(str).tolist()
        rows = df.astype(object).where(df.notna(), None).to_dict(orient="records")  # missing -> JSON null
    else:
        raise DataValidationError("file", str(args.file), "give a .parquet, .csv or .npz file")
    if args.local:
        result = _score_locally(args.model, rows, images, labels, args.method)
    else:
        from gen_factory import client

        result = client.score(
            args.url, args.model, rows=rows, images=images, labels=labels, method=args.method
        )
    json.dump(result, sys.stdout)
    print()


def _score_to_dataset(args) -> int:
    """`score --out`: the whole file through Ray Data into a scored dataset (`services.bulk_score`)."""
    from gen_factory.services.bulk import OutputError
    from gen_factory.services.bulk_score import score_dataset

    try:
        manifest = score_dataset(args.model, str(args.file), args.out, method=args.method,
                                 label_column=args.label_column, workers=args.workers,
                                 block_rows=args.block_rows, top_k=args.top_k, overwrite=args.overwrite)
    except OutputError as err:  # another run, or something that appeared at DIR: not a usage error
        print(f"error: {err}", file=sys.stderr)
        return 1
    flagged = "" if manifest["threshold"] is None else f", {manifest['anomalies']} above the threshold " \
                                                        f"{manifest['threshold']:.4g}"
    print(f"scored {manifest['rows']} rows ({manifest['method']}{flagged}) with {manifest['model_uri']} into "
          f"{len(manifest['files'])} files in {args.out} (manifest: {args.out.rstrip('/')}/_manifest.json)")
    return 0


def augment(args) -> None:
    from gen_factory.services.augmentation import augment_dataset

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    info = augment_dataset(args.model, args.dataset, args.out, ratio=args.ratio, classes=classes,
                           synthetic_only=args.synthetic_only, label_column=args.label_column,
                           holdout=args.holdout, seed=args.seed, spread=args.spread, evaluate=args.evaluate)
    print(
        f"wrote {info['rows']} rows ({info['synthetic_rows']} synthetic) from {info['model']} to "
        f"{info['path']}"
    )
    if "uplift" in info:
        u = info["uplift"]
        print(f"SVC accuracy on the {u['test_rows']} held-out rows: real only {u['real_only']:.4f}, "
              f"augmented {u['augmented']:.4f} (uplift {u['uplift']:+.4f})")
    if "controls" in info:
        print(controls_report(info["controls"]))
    if "rare" in info:
        print(rare_report(info["rare"]))


def rare_report(r) -> str:
    """A table's rare-class figures (`evaluate.rare.RareReport`): every arm, then the written set
    against the best control."""
    names = {"real_only": "real only", "class_weights": "class weights", "oversample": "random oversampling",
             "smote": "SMOTE", "adasyn": "ADASYN", "augmented": "written set"}
    lines = [f"rare class {r.rare_label!r}, {r.classifier.replace('_', ' ')} on {r.test_rows} real rows the "
             f"written set does not hold (each control adds {r.extra_rare_rows} rows of it):",
             f"  {'arm':<22} {'AP':>7} {'F1':>7} {'bal. acc':>9}"]
    lines += [f"  {names[a]:<22} {s.ap:7.4f} {s.f1:7.4f} {s.balanced_accuracy:9.4f}"
              for a, s in r.arms.items()]
    best = r.best_control
    verdict = "the synthetic rows help" if r.uplift > 0 else f"no gain over {names[best]}: prefer it"
    lines.append(f"written set AP {r.arms['augmented'].ap:.4f} vs best control {r.arms[best].ap:.4f} "
                 f"({names[best]}): {r.uplift:+.4f}, {verdict}")
    return "\n".join(lines)


def controls_report(c: dict) -> str:
    """The yardstick's three accuracies, the written set's beside the best control."""
    names = {"real_only": "real only", "real_standard": "real + standard augmentation"}
    return "\n".join([
        f"CNN accuracy on {c['test_rows']} evaluation images (training length chosen on "
        f"{c['val_rows']} others):",
        *(f"  {arm:<52} {acc:.4f}" for arm, acc in (
            (f"real only ({c['real_rows']} rows)", c["real_only"]),
            (f"real + standard augmentation ({c['real_rows']} rows)", c["real_standard"]),
            (f"written set + standard augmentation ({c['augmented_rows']} rows)", c["augmented"]))),
        f"augmented {c['augmented']:.4f} vs best control {c['best_control']:.4f} "
        f"({names[c['best_control_arm']]}): uplift {c['uplift']:+.4f}",
    ])


def baseline(args) -> None:
    from gen_factory.services.baseline import baseline_dataset

    info = baseline_dataset(
        args.model,
        args.out,
        args.normal_rows,
        args.anomaly_labels,
        args.anomaly_rows,
        args.seed,
        args.evaluate_on,
        args.label_column,
        args.holdout,
    )
    print(
        f"wrote {info['rows']} rows ({info['anomaly_rows']} anomalies) from {info['model']} to {info['path']}"
    )
    for name, r in info.get("report", {}).items():
        print(
            f"{name:<8} AUROC on the real hold-out: fitted on real {r['real']:.3f}, on synthetic "
            f"{r['synthetic']:.3f} "
            f"(loss {r['loss']:+.3f})"
        )


def evaluate(args) -> None:
    import pandas as pd

    from gen_factory.data.validate import DataValidationError
    from gen_factory.evaluate.report import html_report
    from gen_factory.evaluate.tables import evaluate_table, headline

    frames = []
    for path in (args.real, args.synthetic, args.holdout):
        if path.suffix.lower() not in (".parquet", ".pq", ".csv") or not path.exists():
            raise DataValidationError("file", str(path), "give an existing .parquet or .csv file")
        frames.append(pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path))
    real, synth, holdout = frames
    if args.label_column is None:  # a file gen_factory wrote names its label column
        args.label_column = _written_label_column(args.synthetic) or "label"
    if args.label_column not in real.columns:
        raise DataValidationError(
            "--label-column", repr(args.label_column), "name a column of the real table"
        )
    result = evaluate_table(real, synth, holdout, args.label_column, seed=args.seed)
    if args.report:
        args.report.write_text(html_report(result, real, synth, f"{args.synthetic.name} vs {args.real.name}"))
    json.dump(headline(result), sys.stdout, indent=1)
    print()


def _written_label_column(path: Path) -> str | None:
    """The label column a Parquet file written by gen_factory records in its metadata (None: none)."""
    import pyarrow.parquet as pq

    from gen_factory.runtime.sampling import METADATA_KEY

    if path.suffix.lower() not in (".parquet", ".pq"):
        return None
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]).get("label_column") if METADATA_KEY in meta else None


def parse_counts(items: list[str] | None) -> dict[str, int] | None:
    from gen_factory.data.validate import DataValidationError

    if not items:
        return None
    counts = {}
    for item in items:
        label, sep, n = item.rpartition("=")
        if not sep or not n.strip().lstrip("-").isdigit():
            raise DataValidationError("--count", repr(item), "write LABEL=N, e.g. --count 7=100")
        counts[label] = int(n)
    return counts


def parse_conditions(items: list[str] | None) -> dict[str, dict[str, int]] | None:
    """`--condition COLUMN=CATEGORY:N` items as {column: {category: N}} (checked against the model later)."""
    from gen_factory.data.validate import DataValidationError

    if not items:
        return None
    conditions: dict[str, dict[str, int]] = {}
    for item in items:
        column, sep, rest = item.partition("=")
        category, colon, n = rest.rpartition(":")
        if not sep or not colon or not column or not n.strip().isdigit():
            raise DataValidationError(
                "--condition", repr(item), "write COLUMN=CATEGORY:N, e.g. --condition city=lima:30"
            )
        per_value = conditions.setdefault(column, {})
        per_value[category] = per_value.get(category, 0) + int(n)
    return conditions


def _read_rows(path: Path):
    """A Parquet/CSV file as a frame of finite values (NaN = missing is fine), or an error naming it."""
    import numpy as np
    import pandas as pd

    from gen_factory.data.validate import DataValidationError

    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow, pandas and the OS each raise their own kinds
        raise DataValidationError("file", str(path), f"give a readable Parquet or CSV file "
                                                     f"({err.__class__.__name__}: {str(err)[:120]})") from err
    numeric = df.select_dtypes("number")
    infinite = [c for c in numeric.columns if np.isinf(numeric[c].to_numpy(dtype=float)).any()]
    if infinite:
        raise DataValidationError(
            f"column {infinite[0]!r}", "inf", "replace infinite values (e.g. by NaN) first"
        )
    return df


def _score_locally(ref_text: str, rows, images, labels, method) -> dict:
    """What the API's /score returns, computed here from the registered ONNX bundle."""
    from gen_factory import registry
    from gen_factory.runtime import scoring
    from gen_factory.runtime.onnx_model import OnnxModel

    ref = registry.resolve(ref_text)
    model = OnnxModel(registry.download(ref))
    body = scoring.score_request(model, rows, images, labels, method)  # a label column is ignored
    return {"model": ref.name, "version": ref.version, **body}
