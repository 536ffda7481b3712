"""`genfactory`: train, serve, pull, generate, augment, baseline, evaluate, score, jobs, models, demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gen_factory import settings

EPILOG = """environment:
  GENFACTORY_HOME       project data directory (default: ./data): MLflow store, checkpoints, datasets
  MLFLOW_TRACKING_URI   an MLflow server instead of the SQLite file in the data directory
  RAY_ADDRESS           a Ray cluster instead of a local Ray started on this machine
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from gen_factory.client import ApiError
    from gen_factory.data.validate import DataValidationError
    from gen_factory.registry import ModelNotFound, RegistryUnavailable
    from gen_factory.registry.runs import RunError

    try:
        return args.func(args) or 0
    except (DataValidationError, ApiError, ModelNotFound) as err:  # the input's fault
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RunError, RegistryUnavailable) as err:  # not the input's: the message says how to go on
        print(f"error: {err}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genfactory", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Synthetic-data factory: train conditional GANs on Ray, register them in MLflow, "
                    "serve labelled Parquet datasets and anomaly scores from ONNX.")
    sub = p.add_subparsers(metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a conditional GAN with Ray Train and register it in MLflow",
        description="Train on a bundled dataset (digits, breast_cancer, iris, wine), a Parquet/CSV "
        "table with a label column, or an NPZ file with `images` and `labels`. Runs "
        "with the same --run-name resume from their latest checkpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("dataset", help="bundled name or path to .parquet / .csv / .npz")
    t.add_argument("--name", dest="model_name", help="registered model name (default: <dataset>-cgan)")
    t.add_argument("--label-column", default="label", help="label column of a table (default: label)")
    t.add_argument("--loss", choices=["nonsaturating", "hinge", "wgan-gp"],
                   help="GAN objective (default: wgan-gp; overrides the image variant's)")
    t.add_argument("--variant", choices=["vanilla", "cgan", "dcgan", "wgan-gp", "sngan", "projgan-gp"],
                   help="image GAN preset (default: projgan-gp = projection D + WGAN-GP + EMA generator)")
    t.add_argument(
        "--epochs",
        type=int,
        help="passes over the data (default: images 200, or 4000 steps if more; tables 3000 steps, "
        "150-600 epochs)",
    )
    t.add_argument(
        "--batch-size", type=int, default=64, help="global batch, split over workers (default: 64)"
    )
    t.add_argument(
        "--workers", dest="num_workers", type=int, default=2, help="Ray Train workers (default: 2)"
    )
    t.add_argument("--gpu", dest="use_gpu", action="store_true", help="one GPU per worker (nccl)")
    t.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (implies --gpu)")
    t.add_argument("--seed", type=int, default=0, help="seed for the split, weights and noise (default: 0)")
    t.add_argument(
        "--holdout", type=float, default=0.3, help="held-out fraction for evaluation (default: 0.3)"
    )
    t.add_argument(
        "--alias", default=settings.DEFAULT_ALIAS, help="alias to set on the new version (default: champion)"
    )
    t.add_argument(
        "--run-name", help="Ray Train / MLflow run name (default: the model name); reuse it to resume"
    )
    t.add_argument(
        "--normal-label",
        dest="normal_labels",
        action="append",
        metavar="LABEL",
        help="train a one-class anomaly model on this label's rows only (repeatable); the other labels "
        "of the hold-out measure its anomaly scores",
    )
    t.add_argument(
        "--encoder-epochs", type=int, help="f-AnoGAN encoder epochs after the GAN (default: half of --epochs)"
    )
    t.add_argument(
        "--patience",
        type=int,
        help="end the GAN after this many checks (one each 2%% of the run) without a generator closer "
        "to the training rows; the closest one ships either way (default: train every epoch)",
    )
    t.add_argument(
        "--fpr",
        type=float,
        default=0.05,
        help="false-positive rate of the anomaly threshold on held-out normal data (default: 0.05)",
    )
    t.add_argument("--column-type", action="append", metavar="NAME=categorical", dest="column_types",
                   help="model a numeric column as categories (repeatable; other types are inferred)")
    t.add_argument("--max-failures", type=int, default=3,
                   help="times a failed worker group is restarted from the latest checkpoint before the run "
                        "gives up (default: 3); the same command later resumes it")
    t.add_argument("--register-again", action="store_true",
                   help="register a new version even if this run already registered one (default: a finished "
                        "run reports the version it registered and registers nothing)")
    t.set_defaults(func=_train)

    s = sub.add_parser(
        "serve",
        help="start the HTTP API (Ray Serve) and keep it running",
        description="Serves every registered model by name, name@alias or name/version; docs at "
        "/docs. With GENFACTORY_API_TOKEN (or GENFACTORY_API_TOKEN_FILE) set, every "
        "route but /healthz needs `Authorization: Bearer <token>`. Ctrl-C or SIGTERM "
        "stops it and the local Ray it started.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1; any other needs a token or --insecure)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--insecure",
        action="store_true",
        help="listen on a non-loopback host without a token: anyone who reaches the port may call it",
    )
    s.set_defaults(func=_serve)

    pl = sub.add_parser("pull", help="download a labelled synthetic dataset from the API as Parquet")
    pl.add_argument("model", help="name, name@alias or name/version")
    pl.add_argument("--out", required=True, type=Path, help="Parquet file to write (atomically)")
    group = pl.add_mutually_exclusive_group(required=True)
    group.add_argument("--rows-per-label", type=int, help="rows for every label")
    group.add_argument("--count", action="append", metavar="LABEL=N", help="rows for one label (repeatable)")
    pl.add_argument(
        "--condition",
        action="append",
        metavar="COLUMN=CATEGORY:N",
        help="fix a categorical column exactly in N rows (repeatable), e.g. --condition city=lima:30",
    )
    pl.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: 0)")
    pl.add_argument(
        "--url", default=settings.DEFAULT_API_URL, help=f"API URL (default: {settings.DEFAULT_API_URL})"
    )
    pl.set_defaults(func=_pull)

    sc = sub.add_parser(
        "score",
        help="anomaly scores for the rows of a Parquet/CSV file or an NPZ of images",
        description="Prints JSON: the scores (higher = stranger), the model's calibrated threshold "
        "and an is_anomaly flag per input - the same over HTTP and with --local.",
    )
    sc.add_argument("model", help="name, name@alias or name/version")
    sc.add_argument("file", type=Path, help=".parquet / .csv (columns as the model's) or .npz with `images`")
    sc.add_argument(
        "--label-column", help="score each row against this column's label (default: best over labels)"
    )
    sc.add_argument(
        "--method",
        choices=["fanogan", "critic"],
        help="fanogan (default): f-AnoGAN residual through encoder and generator; critic: -discriminator",
    )
    sc.add_argument(
        "--local",
        action="store_true",
        help="score in this process with ONNX Runtime (model from the MLflow registry), no API needed",
    )
    sc.add_argument("--url", default=settings.DEFAULT_API_URL, help="API URL when not --local")
    sc.set_defaults(func=_score)

    au = sub.add_parser(
        "augment",
        help="write a labelled Parquet of real + synthetic rows from a registered model",
        description="Mix the real dataset with rows from the model's ONNX generator: --ratio synthetic "
        "rows per real row, for every class or only --classes; --synthetic-only drops the "
        "real rows. With --holdout, the real data is split first (as training splits it), "
        "only its training part is written, and an SVC's accuracy on the held-out part is "
        "printed for real-only vs augmented.",
    )
    au.add_argument("model", help="name, name@alias or name/version")
    au.add_argument("dataset", help="the real data: bundled name or path (as for `train`)")
    au.add_argument("--out", required=True, type=Path, help="Parquet file to write (atomically)")
    au.add_argument(
        "--ratio", type=float, default=1.0, help="synthetic rows per real row of a class (default: 1.0)"
    )
    au.add_argument("--classes", help="comma-separated labels to synthesise (default: all)")
    au.add_argument("--synthetic-only", action="store_true", help="write only the synthetic rows")
    au.add_argument(
        "--spread",
        type=float,
        help="make each synthetic row a variation of a real row of its class, G(E(x) + SPREAD * noise, "
        "y), instead of a free sample; 0.25 stays close to the real rows; measured on images "
        "(bench/RESULTS.md) (default: free samples)",
    )
    au.add_argument("--label-column", default="label", help="label column of a table (default: label)")
    au.add_argument("--holdout", type=float, help="hold this fraction out and measure the uplift on it")
    au.add_argument("--seed", type=int, default=0, help="seed for the split and the noise (default: 0)")
    au.set_defaults(func=_augment)

    b = sub.add_parser(
        "baseline",
        help="write an anomaly-detection baseline dataset (synthetic normal + labelled "
        "anomaly rows) and optionally the classic-detector report",
        description="Rows from a registered generator with an is_anomaly column: --normal-rows over the "
        "normal labels (training proportions), --anomaly-rows over the --anomaly-label "
        "labels. With --evaluate-on DATASET, IsolationForest, ECOD and KNN are fitted on "
        "real vs on the synthetic normal rows and scored (AUROC) on the real hold-out.",
    )
    b.add_argument("model", help="name, name@alias or name/version")
    b.add_argument("--out", required=True, type=Path, help="Parquet file to write (atomically)")
    b.add_argument("--normal-rows", type=int, default=1000, help="synthetic normal rows (default: 1000)")
    b.add_argument("--anomaly-label", dest="anomaly_labels", action="append", metavar="LABEL",
                   help="a label of the model that is an anomaly class (repeatable)")
    b.add_argument("--anomaly-rows", type=int, default=0, help="synthetic anomaly rows (default: 0)")
    b.add_argument(
        "--evaluate-on", metavar="DATASET", help="the real data (as for `train`) for the detector report"
    )
    b.add_argument("--label-column", default="label", help="label column of a table (default: label)")
    b.add_argument(
        "--holdout", type=float, default=0.3, help="held-out fraction, as in training (default: 0.3)"
    )
    b.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    b.set_defaults(func=_baseline)

    g = sub.add_parser(
        "generate", help="bulk-generate a label-partitioned Parquet dataset with Ray Data",
        description="Writes DIR/<label column>=<name>/part-NNNNN.parquet (Hive partitioning: the label "
                    "is in the folder name, not in the files) and DIR/_manifest.json (rows, checksums, "
                    "model version, seed). The same seed gives byte-identical files whatever the number of "
                    "workers. DIR appears only when complete; files in progress are in a hidden "
                    ".DIR.tmp-* beside it, and a second run into DIR while one runs is refused (exit 1).")
    g.add_argument("model", help="name, name@alias or name/version")
    g.add_argument("--out", required=True, type=Path,
                   help="output directory (must not exist unless --overwrite)")
    group = g.add_mutually_exclusive_group(required=True)
    group.add_argument("--rows", type=int, help="total rows, spread evenly over the labels")
    group.add_argument("--count", action="append", metavar="LABEL=N", help="rows for one label (repeatable)")
    g.add_argument("--condition", action="append", metavar="COLUMN=CATEGORY:N",
                   help="fix a categorical column exactly in N rows (repeatable), "
                        "e.g. --condition city=lima:30")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2, help="ONNX Runtime actors (default: 2)")
    g.add_argument("--block-rows", type=int, default=262_144, help="rows per Parquet file (default: 262144)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset at DIR, atomically (never a directory that is not one)")
    g.set_defaults(func=_generate)

    v = sub.add_parser(
        "verify", help="check a bulk dataset against its manifest (exit 0 intact, 1 not)",
        description="Every file the manifest lists is present with its sha256 and row count, and no other "
                    "file that a directory reader would pick up is there. Prints one line; exit 2 if PATH "
                    "is missing.")
    v.add_argument("path", help="the directory (or object-store URI) that `genfactory generate` wrote")
    v.set_defaults(func=_verify)

    j = sub.add_parser("jobs", help="run training jobs on a Ray cluster through the Ray Jobs API")
    jsub = j.add_subparsers(metavar="ACTION")
    address = {"default": os.environ.get("RAY_JOBS_ADDRESS", "http://127.0.0.1:8265"),
               "help": "the cluster's dashboard URL (default: $RAY_JOBS_ADDRESS or http://127.0.0.1:8265)"}
    js = jsub.add_parser("submit", help="submit a YAML job spec (see jobs/)")
    js.add_argument("spec", type=Path)
    js.add_argument("--address", **address)
    js.add_argument("--wait", action="store_true", help="follow the job until it ends; exit 1 if it failed")
    js.set_defaults(func=_jobs_submit)
    for action, text in (("list", "list jobs"), ("status", "a job's status"), ("logs", "a job's logs"),
                         ("stop", "stop a running job")):
        ja = jsub.add_parser(action, help=text)
        if action != "list":
            ja.add_argument("job_id")
        ja.add_argument("--address", **address)
        ja.set_defaults(func=_jobs_action, action=action)

    ev = sub.add_parser(
        "evaluate",
        help="score a synthetic table against the real one; write an HTML report",
        description="Quality (SDMetrics definitions: column shapes, column pair trends), TSTR "
        "(RandomForest trained on SYNTHETIC, tested on HOLDOUT) and distance to "
        "closest record. Files are .parquet or .csv with the same columns.",
    )
    ev.add_argument("real", type=Path, help="the real rows the generator was trained on")
    ev.add_argument("synthetic", type=Path, help="the generated rows")
    ev.add_argument("--holdout", type=Path, required=True, help="real rows not used for training (for TSTR)")
    ev.add_argument("--label-column", default="label", help="label column (default: label)")
    ev.add_argument("--report", type=Path, help="write the HTML report here")
    ev.add_argument("--seed", type=int, default=0, help="seed of the TSTR classifier (default: 0)")
    ev.set_defaults(func=_evaluate)

    m = sub.add_parser("models", help="list registered models, their aliases and latest versions")
    m.set_defaults(func=_models)

    d = sub.add_parser("demo", help="train both demo models, serve them, pull datasets and score over HTTP")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--keep-serving", action="store_true", help="keep the API up at the end until Ctrl-C")
    d.set_defaults(func=_demo)
    return p


def _train(args) -> None:
    from gen_factory.data.validate import DataValidationError
    from gen_factory.services.pipeline import TrainJob, train_and_register

    fields = {k: v for k, v in vars(args).items() if k != "func"}
    types = {}
    for item in args.column_types or []:
        name, sep, kind = item.rpartition("=")
        if not sep or not name:
            raise DataValidationError("--column-type", repr(item),
                                      "write NAME=categorical, e.g. --column-type zip=categorical")
        types[name] = kind
    fields["column_types"] = types or None
    train_and_register(TrainJob(**fields))


def _serve(args) -> None:
    from gen_factory import settings
    from serving.app import direct_url, start, stop

    url = start(args.host, args.port, insecure=args.insecure)
    auth = "bearer token required" if settings.api_token() else "no token (open to whoever reaches the port)"
    print(f"gen_factory API at {url}  (docs: {url}/docs; {auth}); Ctrl-C stops it", flush=True)
    direct = direct_url()
    if direct:
        print(f"an API replica also answers directly at {direct} (Serve direct ingress: one hop fewer)")
    _wait_for_stop_signal()
    print("stopping the API and its Ray processes", flush=True)
    stop()


def _wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM. Ray's own SIGTERM handler exits at once without stopping Serve;
    these handlers replace it, so the caller can shut down in order."""
    import signal
    import threading

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        pass


def _parse_counts(items: list[str] | None) -> dict[str, int] | None:
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


def _parse_conditions(items: list[str] | None) -> dict[str, dict[str, int]] | None:
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


def _generate(args) -> int:
    from gen_factory.services.bulk import OutputError, generate_dataset

    try:
        manifest = generate_dataset(args.model, args.out, rows=args.rows, counts=_parse_counts(args.count),
                                    seed=args.seed, workers=args.workers, block_rows=args.block_rows,
                                    overwrite=args.overwrite, conditions=_parse_conditions(args.condition))
    except OutputError as err:  # another run, or something that appeared at DIR: not a usage error
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {manifest['rows']} rows in {len(manifest['files'])} files from {manifest['model_uri']} "
          f"to {args.out} (manifest: {args.out / '_manifest.json'})")
    return 0


def _verify(args) -> int:
    """One verdict line; the exit code is what scripts check (a missing PATH is a usage error: 2)."""
    from gen_factory.services.bulk import check_dataset

    result = check_dataset(args.path)
    print(result.summary())
    return 0 if result.ok else 1


def _pull(args) -> None:
    from gen_factory import client

    counts = _parse_counts(args.count)
    info = client.pull(
        args.url,
        args.model,
        args.out,
        rows_per_label=args.rows_per_label,
        counts=counts,
        seed=args.seed,
        conditions=_parse_conditions(args.condition),
    )
    print(
        f"wrote {info['rows']} rows ({info['bytes']} bytes) from version {info['version']} to {info['path']}"
    )


def _score(args) -> None:
    import numpy as np

    from gen_factory.data.validate import DataValidationError

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
    body = scoring.score_request(OnnxModel(registry.download(ref)), rows, images, labels, method)
    return {"model": ref.name, "version": ref.version, **body}


def _baseline(args) -> None:
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


def _augment(args) -> None:
    from gen_factory.services.augmentation import augment_dataset

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    info = augment_dataset(args.model, args.dataset, args.out, ratio=args.ratio, classes=classes,
                           synthetic_only=args.synthetic_only, label_column=args.label_column,
                           holdout=args.holdout, seed=args.seed, spread=args.spread)
    print(
        f"wrote {info['rows']} rows ({info['synthetic_rows']} synthetic) from {info['model']} to "
        f"{info['path']}"
    )
    if "uplift" in info:
        u = info["uplift"]
        print(f"SVC accuracy on the {u['test_rows']} held-out rows: real only {u['real_only']:.4f}, "
              f"augmented {u['augmented']:.4f} (uplift {u['uplift']:+.4f})")


def _jobs_submit(args) -> int:
    from gen_factory.services import jobs

    job_id = jobs.submit(args.spec, args.address)
    print(f"submitted {job_id} to {args.address}; follow it with `genfactory jobs logs {job_id}`")
    if args.wait:
        status = jobs.wait(args.address, job_id)
        print(jobs.client(args.address).get_job_logs(job_id))
        print(f"{job_id}: {status}")
        return 0 if status == "SUCCEEDED" else 1
    return 0


def _jobs_action(args) -> None:
    from gen_factory.services import jobs

    c = jobs.client(args.address)
    if args.action == "list":
        for info in c.list_jobs():
            print(f"{info.submission_id or info.job_id:<40} {info.status.value:<10} {info.entrypoint}")
    elif args.action == "status":
        print(c.get_job_status(args.job_id).value)
    elif args.action == "logs":
        print(c.get_job_logs(args.job_id), end="")
    else:
        print("stopped" if c.stop_job(args.job_id) else "not running")

def _evaluate(args) -> None:
    import pandas as pd

    from gen_factory.data.validate import DataValidationError
    from gen_factory.evaluate import evaluate_table, headline
    from gen_factory.evaluate.report import html_report

    frames = []
    for path in (args.real, args.synthetic, args.holdout):
        if path.suffix.lower() not in (".parquet", ".pq", ".csv") or not path.exists():
            raise DataValidationError("file", str(path), "give an existing .parquet or .csv file")
        frames.append(pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path))
    real, synth, holdout = frames
    if args.label_column not in real.columns:
        raise DataValidationError(
            "--label-column", repr(args.label_column), "name a column of the real table"
        )
    result = evaluate_table(real, synth, holdout, args.label_column, seed=args.seed)
    if args.report:
        args.report.write_text(html_report(result, real, synth, f"{args.synthetic.name} vs {args.real.name}"))
    json.dump(headline(result), sys.stdout, indent=1)
    print()


def _models(args) -> None:
    from gen_factory import registry

    rows = registry.list_models()
    if not rows:
        print("no registered models yet; train one with `genfactory train digits`")
    for row in rows:
        aliases = ", ".join(f"@{a}=v{v}" for a, v in row["aliases"].items()) or "-"
        print(f"{row['name']:<32} latest v{row['latest_version']}  {aliases}  {row['description']}")


def _demo(args) -> None:
    from gen_factory.cli.demo import run_demo

    run_demo(port=args.port, workers=args.workers, keep_serving=args.keep_serving)

