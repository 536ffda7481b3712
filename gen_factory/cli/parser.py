"""The `genfactory` argument parser: one function per subcommand, each naming the function it runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gen_factory import settings
from gen_factory.cli import commands, datasets

EPILOG = """environment:
  GENFACTORY_HOME       project data directory (default: ./data): MLflow store, checkpoints, datasets
  GENFACTORY_PROGRESS   bar | lines | off: progress on stderr (default: a bar on a terminal, else a line
                        per tenth of a long step)
  MLFLOW_TRACKING_URI   an MLflow server instead of the SQLite file in the data directory
  RAY_ADDRESS           a Ray cluster instead of a local Ray started on this machine
"""
JSON_HELP = "print the result as one JSON document on stdout (everything else goes to stderr)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genfactory", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Synthetic-data factory: train conditional GANs on Ray, register them in MLflow, "
                    "serve labelled Parquet datasets and anomaly scores from ONNX.")
    sub = p.add_subparsers(metavar="COMMAND")
    for add in (_train, _serve, _pull, _score, _augment, _baseline, _generate, _verify, _jobs, _evaluate,
                _models, _demo):
        add(sub)
    return p


def _train(sub) -> None:
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
    t.add_argument("--no-label", dest="label_column", action="store_const", const=None,
                   help="a table without a label column: train it as one class, every row normal (an anomaly "
                        "model of 'what normal looks like'; generated rows have no label column)")
    t.add_argument("--loss", choices=["nonsaturating", "hinge", "wgan-gp"],
                   help="GAN objective (default: wgan-gp; overrides the image variant's)")
    t.add_argument("--variant", choices=["vanilla", "cgan", "dcgan", "wgan-gp", "sngan", "projgan-gp"],
                   help="image GAN preset (default: projgan-gp = projection D + WGAN-GP + EMA generator, "
                        "the one that learns MNIST; the classics are there to compare against: at a 5-min "
                        "CPU budget on MNIST they collapse or ignore the label - README, 'Which --variant'; "
                        "one-class models default to sngan)")
    t.add_argument("--epochs", type=int, help="passes over the data (default: images 200, or 4000 steps if "
                                              "more; tables 3000 steps, 150-600 epochs)")
    t.add_argument("--batch-size", type=int, default=64,
                   help="global batch, split over workers (default: 64)")
    t.add_argument("--workers", dest="num_workers", type=int, default=2,
                   help="Ray Train workers (default: 2)")
    t.add_argument("--gpu", dest="use_gpu", action="store_true", help="one GPU per worker (nccl)")
    t.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (implies --gpu)")
    t.add_argument("--seed", type=int, default=0, help="seed for the split, weights and noise (default: 0)")
    t.add_argument("--holdout", type=float, default=0.3,
                   help="held-out fraction the quality and anomaly thresholds are measured on, by a model "
                        "trained on the rest (default: 0.3); see --refit")
    t.add_argument("--alias", default=settings.DEFAULT_ALIAS,
                   help="alias to set on the new version (default: champion)")
    t.add_argument("--run-name",
                   help="Ray Train / MLflow run name (default: the model name); reuse it to resume")
    t.add_argument("--normal-label", dest="normal_labels", action="append", metavar="LABEL",
                   help="train a one-class anomaly model on this label's rows only (repeatable); the other "
                        "labels of the hold-out measure its anomaly scores")
    t.add_argument("--encoder-epochs", type=int,
                   help="f-AnoGAN encoder epochs after the GAN (default: half of --epochs)")
    t.add_argument("--patience", type=int,
                   help="end the GAN after this many checks (one each 2%% of the run) without a generator "
                        "closer to the training rows; the closest one ships either way (default: train every "
                        "epoch)")
    t.add_argument("--fpr", type=float, default=0.05,
                   help="false-positive rate of the anomaly threshold on held-out normal data "
                        "(default: 0.05)")
    t.add_argument("--column-type", action="append", metavar="NAME=categorical", dest="column_types",
                   help="model a numeric column as categories (repeatable; other types are inferred)")
    t.add_argument("--max-failures", type=int, default=3,
                   help="times a failed worker group is restarted from the latest checkpoint before the run "
                        "gives up (default: 3); the same command later resumes it")
    t.add_argument("--register-again", action="store_true",
                   help="register a new version even if this run already registered one (default: a finished "
                        "run reports the version it registered and registers nothing)")
    t.add_argument("--refit", dest="refit", action=argparse.BooleanOptionalAction, default=None,
                   help="after the fit on the split (which measures quality on --holdout and sets the "
                        "anomaly thresholds), train the model that ships on every row with the same "
                        "settings, warm by default (see --warm-refit) (default: tables yes, images no; "
                        "--no-refit ships the split's model, in less time)")
    t.add_argument("--warm-refit", dest="warm_refit", action=argparse.BooleanOptionalAction, default=True,
                   help="the refit goes on from the split model's networks for a quarter of the epochs, "
                        "where both encode the columns alike (default; the card's `warm_start` says so); "
                        "--no-warm-refit trains it from scratch for all of them")
    t.add_argument("--knn", dest="knn_reference", action=argparse.BooleanOptionalAction, default=True,
                   help="images: the anomaly scorer holds up to 5,000 normal training images and scores "
                        "the distance to the 5th-nearest of them (`knn`, part of the default score; the "
                        "card's ensemble.reference_rows) (default); --no-knn ships no training image in "
                        "the scorer file, and the default score uses the isolation forest instead")
    t.add_argument("--precisions", nargs="+", choices=("int8",), default=None, metavar="P",
                   help="also export the generator in these reduced precisions (int8: for `generate "
                        "--precision int8`, faster GEMMs on CPUs with VNNI/AMX; fp32 is always exported "
                        "and stays the default)")
    t.add_argument("--json", action="store_true",
                   help=JSON_HELP + ": model (name, version, alias, uri), run_id, metrics, anomaly, parity, "
                        "epochs, rows_trained, seconds, phases (seconds per step of the run)")
    t.set_defaults(func=commands.train)


def _serve(sub) -> None:
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
    s.add_argument("--port", type=int, default=8000, help="the API's port (default: 8000)")
    s.add_argument("--insecure", action="store_true",
                   help="listen on a non-loopback host without a token: anyone who reaches the port may "
                        "call it")
    s.set_defaults(func=commands.serve)


def _add_counts_and_conditions(parser, total: str, total_help: str) -> None:
    """`--<total>` or repeated `--count LABEL=N` (one of them), and `--condition COLUMN=CATEGORY:N`."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(f"--{total}", type=int, help=total_help)
    group.add_argument("--count", action="append", metavar="LABEL=N", help="rows for one label (repeatable)")
    parser.add_argument("--condition", action="append", metavar="COLUMN=CATEGORY:N",
                        help="fix a categorical column exactly in N rows (repeatable), "
                             "e.g. --condition city=lima:30")


def _pull(sub) -> None:
    pl = sub.add_parser("pull", help="download a labelled synthetic dataset from the API as Parquet")
    pl.add_argument("model", help="name, name@alias or name/version")
    pl.add_argument("--out", required=True, type=Path, help="Parquet file to write (atomically)")
    _add_counts_and_conditions(pl, "rows-per-label", "rows for every label")
    pl.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: 0)")
    pl.add_argument("--url", default=settings.DEFAULT_API_URL,
                    help=f"API URL (default: {settings.DEFAULT_API_URL})")
    pl.set_defaults(func=datasets.pull)


def _score(sub) -> None:
    sc = sub.add_parser(
        "score",
        help="anomaly scores for the rows of a Parquet/CSV file or an NPZ of images; with --out, a whole "
             "Parquet dataset of any size through Ray Data",
        description="Without --out: prints JSON - the scores (higher = stranger), the model's calibrated "
        "threshold and an is_anomaly flag per input - the same over HTTP and with --local. With --out DIR: "
        "scores a Parquet file (or a directory of them) of any size in this machine's Ray (or RAY_ADDRESS) "
        "with ONNX Runtime actors and writes DIR/part-NNNNN.parquet - every input row and column, in input "
        "order, plus `score` (float32), `is_anomaly` (bool) and, for models with attribution, each row's "
        "--top-k columns by contribution (attr_1_column, attr_1_value, ...) - and DIR/_manifest.json "
        "(rows, anomalies, sha256 per file, model version, method, threshold; check it with `genfactory "
        "verify DIR`). DIR appears only when complete: a bad value anywhere leaves nothing there.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sc.add_argument("model", help="name, name@alias or name/version")
    sc.add_argument("file", type=Path,
                    help=".parquet / .csv (columns as the model's) or .npz with `images`; with --out a "
                         ".parquet file or a directory of them, e.g. a `generate` output (other columns are "
                         "kept and not scored; Hive folders such as segment=a/ become columns)")
    sc.add_argument("--label-column",
                    help="score each row against this column's label (default: best over labels; the "
                         "model's label column in the file is then kept and ignored)")
    sc.add_argument("--method", choices=["ensemble", "fanogan", "iforest", "knn", "novelty", "critic"],
                    help="ensemble (the default of models that have it): f-AnoGAN and the isolation forest "
                         "(images: knn) on one scale, the f-AnoGAN left out where it does not rebuild its "
                         "inputs, plus for tables the row's novelty and the label's fit (the card's "
                         "`ensemble`); fanogan (older models' default): f-AnoGAN "
                         "residual through encoder and generator; iforest: an isolation forest of the "
                         "normal training values; knn (images): the distance to the 5th-nearest normal "
                         "training image; novelty (tables): standard deviations past each column's "
                         "training range, 4 per category never seen or new missing value; critic: "
                         "-discriminator")
    sc.add_argument("--local", action="store_true",
                    help="score in this process with ONNX Runtime (model from the MLflow registry), "
                         "no API needed (--out always scores locally, through Ray)")
    sc.add_argument("--url", default=settings.DEFAULT_API_URL, help="API URL when not --local")
    bulk = sc.add_argument_group("bulk scoring (--out)")
    bulk.add_argument("--out", help="write the scored rows here as a Parquet dataset (a directory or an "
                                    "object-store URI; must not exist unless --overwrite)")
    bulk.add_argument("--overwrite", action="store_true",
                      help="replace an existing dataset at --out, atomically (never a directory that is "
                           "not one)")
    bulk.add_argument("--workers", type=int, default=2, help="ONNX Runtime actors, one CPU each (default: 2)")
    bulk.add_argument("--top-k", type=int, default=None, metavar="K",
                      help="attribution columns per row: the K columns contributing most to its score, as "
                           "attr_K_column (name) and attr_K_value (1 = that column's 90th percentile on "
                           "normal rows); 0 for none (default: 3, or the model's columns if fewer)")
    bulk.add_argument("--block-rows", type=int, default=262_144,
                      help="rows per output file, in whole input row groups (default: 262144)")
    sc.set_defaults(func=datasets.score)


def _augment(sub) -> None:
    au = sub.add_parser(
        "augment",
        help="write a labelled Parquet of real + synthetic rows from a registered model",
        description="Mix the real dataset with rows from the model's ONNX generator: --ratio synthetic "
        "rows per real row, for every class or only --classes; --synthetic-only drops the "
        "real rows. Real rows are written as given, synthetic ones in the same schema, with a boolean "
        "`synthetic` column. Judge the written set on real rows it does not hold: --holdout (split off "
        "the dataset first, as training splits it) or --evaluate DATA. For a table, the rarest "
        "synthesised class's average precision (gradient boosting) is printed beside the controls "
        "that need no generator (real only, class weights, random oversampling, SMOTE/SMOTENC, "
        "ADASYN: each given as many extra rows) and the best of them; for images, --evaluate prints a "
        "small CNN's accuracy beside its controls, --holdout an SVC's.",
    )
    au.add_argument("model", help="name, name@alias or name/version")
    au.add_argument("dataset", help="the real data: bundled name or path (as for `train`)")
    au.add_argument("--out", required=True, type=Path, help="Parquet file to write (atomically)")
    au.add_argument("--ratio", type=float, default=1.0,
                    help="synthetic rows per real row of a class (default: 1.0)")
    au.add_argument("--classes", help="comma-separated labels to synthesise (default: all)")
    au.add_argument("--synthetic-only", action="store_true", help="write only the synthetic rows")
    au.add_argument("--spread", type=float,
                    help="make each synthetic row a variation of a real row of its class, "
                         "G(E(x) + SPREAD * noise, y), instead of a free sample; 0.25 stays close to the "
                         "real rows; measured on images (bench/RESULTS.md) (default: free samples)")
    au.add_argument("--label-column", help="the table's label column, where its name differs from the "
                                           "model's (default: the model card's)")
    au.add_argument("--holdout", type=float, help="hold this fraction of the dataset out and judge the "
                                                  "written set on it")
    au.add_argument("--seed", type=int, default=0, help="seed for the split and the noise (default: 0)")
    au.add_argument("--evaluate", metavar="DATA",
                    help="labelled real rows or images the written set does not hold (a path, as for "
                         "`train`). A table: the rare-class report above on them. Images: split in "
                         "stratified halves: one chooses the training length of a small CNN "
                         "(random shifts and rotations), the other scores it trained on the real rows "
                         "alone, on the real rows with those shifts and rotations (the controls), and on "
                         "the written set; prints the three accuracies and the uplift over the best control")
    au.set_defaults(func=datasets.augment)


def _baseline(sub) -> None:
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
    b.add_argument("--evaluate-on", metavar="DATASET",
                   help="the real data (as for `train`) for the detector report")
    b.add_argument("--label-column", default="label", help="label column of a table (default: label)")
    b.add_argument("--holdout", type=float, default=0.3,
                   help="held-out fraction, as in training (default: 0.3)")
    b.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    b.set_defaults(func=datasets.baseline)


def _generate(sub) -> None:
    g = sub.add_parser(
        "generate", help="bulk-generate a label-partitioned Parquet dataset with Ray Data",
        description="Writes DIR/<label column>=<name>/part-NNNNN.parquet (Hive partitioning: the label "
                    "is in the folder name, not in the files) and DIR/_manifest.json (rows, checksums, "
                    "model version, seed). The same seed gives byte-identical files whatever the number of "
                    "workers. DIR appears only when complete; files in progress are in a hidden "
                    ".DIR.tmp-* beside it, and a second run into DIR while one runs is refused (exit 1).")
    g.add_argument("model", help="name, name@alias or name/version")
    g.add_argument("--out", required=True,
                   help="output directory or object-store URI, e.g. s3://bucket/prefix (must not exist "
                        "unless --overwrite)")
    _add_counts_and_conditions(g, "rows", "total rows, spread evenly over the labels")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2, help="ONNX Runtime actors (default: 2)")
    g.add_argument("--block-rows", type=int, default=262_144, help="rows per Parquet file (default: 262144)")
    g.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="generator precision: int8 runs a model's opt-in int8 graph (faster GEMMs on CPUs "
                        "with VNNI/AMX, rows close to but not the same as fp32's); default: fp32")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset at DIR, atomically (never a directory that is not one)")
    g.set_defaults(func=datasets.generate)


def _verify(sub) -> None:
    v = sub.add_parser(
        "verify", help="check a bulk dataset against its manifest (exit 0 intact, 1 not)",
        description="Every file the manifest lists is present with its sha256 and row count, and no other "
                    "file that a directory reader would pick up is there. Prints one line; exit 2 if PATH "
                    "is missing.")
    v.add_argument("path", help="the directory (or object-store URI) that `genfactory generate` wrote")
    v.set_defaults(func=datasets.verify)


def _jobs(sub) -> None:
    j = sub.add_parser("jobs", help="run training jobs on a Ray cluster through the Ray Jobs API")
    jsub = j.add_subparsers(metavar="ACTION")
    address = {"default": os.environ.get("RAY_JOBS_ADDRESS", "http://127.0.0.1:8265"),
               "help": "the cluster's dashboard URL (default: $RAY_JOBS_ADDRESS or http://127.0.0.1:8265)"}
    js = jsub.add_parser("submit", help="submit a YAML job spec (see jobs/)")
    js.add_argument("spec", type=Path)
    js.add_argument("--address", **address)
    js.add_argument("--wait", action="store_true", help="follow the job until it ends; exit 1 if it failed")
    js.set_defaults(func=commands.jobs_submit)
    for action, text in (("list", "list jobs"), ("status", "a job's status"), ("logs", "a job's logs"),
                         ("stop", "stop a running job")):
        ja = jsub.add_parser(action, help=text)
        if action != "list":
            ja.add_argument("job_id")
        ja.add_argument("--address", **address)
        ja.set_defaults(func=commands.jobs_action, action=action)


def _evaluate(sub) -> None:
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
    ev.add_argument("--label-column", help="label column (default: the one the synthetic file records, "
                                          "as gen_factory writes it; else label)")
    ev.add_argument("--report", type=Path, help="write the HTML report here")
    ev.add_argument("--seed", type=int, default=0, help="seed of the TSTR classifier (default: 0)")
    ev.set_defaults(func=datasets.evaluate)


def _models(sub) -> None:
    m = sub.add_parser("models", help="list registered models, their aliases and latest versions")
    m.add_argument("--json", action="store_true",
                   help=JSON_HELP + ": a list of {name, aliases, latest_version, description}")
    m.set_defaults(func=commands.models)


def _demo(sub) -> None:
    d = sub.add_parser("demo", help="train both demo models, serve them, pull datasets and score over HTTP",
                       description="Train the digits and breast_cancer models at their defaults with "
                       "Ray Train, register them in MLflow, serve them with Ray Serve, pull a labelled "
                       "Parquet dataset of each over HTTP and score real and perturbed rows over HTTP "
                       "(about 5-10 min on 2 CPU cores).")
    d.add_argument("--port", type=int, default=8000, help="the API's port on 127.0.0.1 (default: 8000)")
    d.add_argument("--workers", type=int, default=2, help="Ray Train workers per model (default: 2)")
    d.add_argument("--keep-serving", action="store_true", help="keep the API up at the end until Ctrl-C")
    d.set_defaults(func=commands.demo)
