"""gen_factory vs SDV (CTGAN, GaussianCopula) on the same 70/30 stratified split (seed 0).

    python bench/tabular_quality.py [--tables breast_cancer customers wine] [--ray]
                                    [--draws N] [--peer-cache DIR]

gen_factory trains in-process (the same encoding, networks and GANTrainer a Ray worker runs;
`--ray` also times the full Ray Train + MLflow path once) and samples through its exported ONNX
graph. Every system draws DRAWS samples of as many rows as the training split; the scores are
their means (with the spread of quality and TSTR macro-F1), since one draw of a few hundred rows
moves them by several hundredths. SDV runs in its own venv (.venv-bench, `make bench-venv`)
through bench/sdv_runner.py; `--peer-cache DIR` keeps its draws there, keyed by the training rows,
seed, draws and runner, so iterating on gen_factory does not refit SDV (`--draws` fewer while iterating;
report figures from the default five).
Every system is scored by gen_factory.evaluate with SDMetrics' definitions; the SDMetrics
QualityReport itself scores gen_factory's rows too, as a check of those definitions.

That quality compares the synthetic rows with the TRAINING rows, so a generator gains by copying
the training sample's quirks. The same report is also taken against the HELD-OUT rows (never
trained on): there a generator that generalises scores well and one that memorises does not gain.
Two controls per table calibrate both: the held-out rows scored against the training rows (what a
perfect sampler of the real distribution reaches there, up to sample size), and, for the tables
with a recipe (gen_factory.data.procedural: customers, loans), fresh recipe rows (one per draw,
seeds 1..DRAWS, each table split 70/30 as the bench's, its training part) against both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen_factory.data import load_dataset, split  # noqa: E402
from gen_factory.data.datasets import frame_from_codes  # noqa: E402
from gen_factory.evaluate.quality import column_kinds, quality_report  # noqa: E402
from gen_factory.evaluate.tables import evaluate_table, headline  # noqa: E402

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
RUNNER = ROOT / "bench" / "sdv_runner.py"
SAMPLE_ROWS = 20_000
DRAWS = 5


def run_gen_factory(
    train, tmp: Path, epochs: int, seed: int = 0, critic=None
) -> tuple[list[pd.DataFrame], dict]:
    """DRAWS synthetic tables from an in-process model, and its fit seconds and sampling rows/s (and
    the exported model, under "model"); `critic(spec)` replaces the discriminator (bench/pacgan.py)."""
    import torch

    from gen_factory.export.bundle import card_for, export_bundle
    from gen_factory.models import build_models
    from gen_factory.models.encoder import build_encoder
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.sampling import generate_arrays, generate_table
    from gen_factory.train.local import train_table

    torch.set_num_threads(1)  # as SDV below; the machine's 2 cores are shared
    started = time.perf_counter()
    g, d, encoding, spec, hyper = train_table(train, epochs, seed=seed, critic=critic)
    fit_seconds = time.perf_counter() - started
    card = card_for(train, spec, encoding, model_name=f"bench-{train.name}", dataset=train.name,
                    loss=hyper.loss, epochs=epochs, seed=seed)
    # Only the generator is measured here: the scorer gets an untrained encoder (bench/anomaly.py trains one),
    # and a replaced critic that cannot score one row (PacGAN's) an untrained default one.
    d = build_models(spec)[1].eval() if critic else d
    export_bundle(g, d, build_encoder(spec).eval(), (1.0, 1.0), encoding, card, tmp / "gf")
    model = OnnxModel(tmp / "gf", threads=1)
    synth = []
    for draw in range(DRAWS):
        values, labels = generate_arrays(model, np.bincount(train.labels).tolist(), seed + draw)
        synth.append(frame_from_codes(values, labels, train.columns, train.categories, train.label_names,
                                      train.label_column))
    per_label = -(-SAMPLE_ROWS // len(train.label_names))
    started = time.perf_counter()
    generate_table(model, [per_label] * len(train.label_names), seed + DRAWS)
    return synth, {"fit_seconds": fit_seconds, "rows_per_second": per_label * len(train.label_names)
                   / (time.perf_counter() - started), "model": model}


def run_sdv(
    kind: str, train_frame: pd.DataFrame, label: str, tmp: Path, seed: int = 0, cache: Path | None = None
) -> tuple[list[pd.DataFrame], dict]:
    """DRAWS samples of SDV's `kind` fitted to `train_frame`, and its timings; from `cache` when that
    directory already holds them for the same rows, seed, draws and runner (SDV is not what changes)."""
    train_csv = tmp / "train.csv"
    train_frame.to_csv(train_csv, index=False)
    key = hashlib.sha256(train_csv.read_bytes() + RUNNER.read_bytes() + f"{kind} {seed} {DRAWS}".encode())
    out = (cache or tmp) / f"{kind}-{key.hexdigest()[:16]}"
    timing = Path(f"{out}.json")
    if cache is None or not timing.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(BENCH_PYTHON), str(RUNNER), "fit", kind, str(train_csv), label, str(out), str(seed),
             str(DRAWS)],
            check=True,
            capture_output=True,
            text=True,
        )
        timing.write_text(done.stdout.strip().splitlines()[-1])
    return [pd.read_csv(f"{out}_{draw}.csv") for draw in range(DRAWS)], json.loads(timing.read_text())


def sdmetrics_check(real: pd.DataFrame, synth: pd.DataFrame, kinds: dict, tmp: Path) -> dict:
    real.to_csv(tmp / "real.csv", index=False)
    synth.to_csv(tmp / "synth.csv", index=False)
    out = subprocess.run(
        [
            str(BENCH_PYTHON),
            str(RUNNER),
            "check",
            str(tmp / "real.csv"),
            str(tmp / "synth.csv"),
            json.dumps(kinds),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def roundtrip(name: str, train, model, seed: int = 0) -> dict:
    """Is what comes out the table that went in? The schema of `generate_table` (what sample, pull,
    generate and the API return) against the user's frame as loaded; and, on SAMPLE_ROWS rows in the
    training proportions, each column's value set, missing-value rate and range against the training
    rows (evaluate.shapes)."""
    import pyarrow as pa

    from gen_factory.data.datasets import bundled_frame
    from gen_factory.data.schema import to_pandas
    from gen_factory.evaluate.shapes import column_shapes, summary
    from gen_factory.runtime.sampling import generate_arrays, generate_table

    given = bundled_frame(name)[0]
    table = generate_table(model, [50] * len(train.label_names), seed)
    schema_equal = table.schema.equals(pa.Schema.from_pandas(given, preserve_index=False)) and bool(
        to_pandas(table).dtypes.equals(given.dtypes))
    counts = np.round(SAMPLE_ROWS * np.bincount(train.labels) / len(train.labels)).astype(int).tolist()
    values, labels = generate_arrays(model, counts, seed + 1)
    synthetic = frame_from_codes(values, labels, train.columns, train.categories, train.label_names,
                                 train.label_column)
    shapes = column_shapes(train.frame().drop(columns=[train.label_column]),
                           synthetic.drop(columns=[train.label_column]))
    has = [s for s in shapes if s.range_coverage is not None]
    worst = {"nan": max(shapes, key=lambda c: c.nan_rate_err_pts).column,
             "range": min(has, key=lambda c: c.range_coverage).column if has else None}
    return {"schema_equal": schema_equal, **summary(shapes), "worst": worst}


def recipe_rows(name: str, train, seed: int) -> pd.DataFrame | None:
    """The training part of a fresh table from `name`'s recipe (seed `seed`, as many rows as the
    bundled one, split 70/30 as the bench's), in the bench's frame; None where there is no recipe.
    Times are re-expressed in the bench's encoding (each table counts from its own first stamp)."""
    from gen_factory.data import procedural
    from gen_factory.data.datasets import bundled_frame, table_from_frame

    if name not in ("customers", "loans"):
        return None
    given, label, _ = bundled_frame(name)
    fresh = table_from_frame(getattr(procedural, name)(len(given), seed), label, name=name,
                             label_names=train.label_names)
    frame = split(fresh, 0.3, 0)[0].frame()
    ours = {c.name: c.time for c in train.schema.columns if c.time is not None}
    for c in fresh.schema.columns:
        if c.name in ours:
            ns = frame[c.name] * c.time.unit_ns + c.time.offset_ns
            frame[c.name] = (ns - ours[c.name].offset_ns) / ours[c.name].unit_ns
    return frame[list(train.frame().columns)]


def heldout_controls(name: str, train, real: pd.DataFrame, hold: pd.DataFrame, cats: set[str]) -> dict:
    """The two controls of the held-out measure: the real held-out rows against the training rows,
    and fresh recipe rows (DRAWS seeds) against the training and the held-out rows (nan: no recipe)."""
    oracle = [f for f in (recipe_rows(name, train, seed) for seed in range(1, DRAWS + 1)) if f is not None]
    vs_train = [quality_report(real, f, cats)["quality"] for f in oracle]
    vs_hold = [quality_report(hold, f, cats)["quality"] for f in oracle]
    nan = float("nan")
    return {"real_heldout_vs_train": quality_report(real, hold, cats)["quality"],
            "oracle_vs_train": float(np.mean(vs_train)) if oracle else nan,
            "oracle_vs_train_sd": float(np.std(vs_train, ddof=1)) if len(oracle) > 1 else nan,
            "oracle_vs_heldout": float(np.mean(vs_hold)) if oracle else nan,
            "oracle_vs_heldout_sd": float(np.std(vs_hold, ddof=1)) if len(oracle) > 1 else nan}


def rows_used_pct(name: str, tmp: Path, epochs: int | None) -> float:
    """The share of a user's table that trained the model `genfactory train` ships (Ray Train path,
    defaults): the table is the bench's training split, written as the user would hold it."""
    from gen_factory import registry
    from gen_factory.data.datasets import bundled_frame, split_indices
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.services.pipeline import TrainJob, train_and_register

    given, label, _ = bundled_frame(name)
    train_idx, _ = split_indices(load_dataset(name).labels, 0.3, 0)
    path = tmp / f"{name}-train.parquet"
    given.iloc[train_idx].to_parquet(path, index=False)
    summary = train_and_register(TrainJob(dataset=str(path), label_column=label, epochs=epochs, num_workers=1,
                                          run_name=f"bench-rows-{name}-{time.time():.0f}"),
                                 log=lambda *_: None)
    card = OnnxModel(registry.download(summary["ref"])).card
    return 100.0 * card.rows_trained / card.rows_given


def ray_path_seconds(dataset: str, epochs: int | None) -> float:
    from gen_factory.services.pipeline import TrainJob, train_and_register

    started = time.perf_counter()
    train_and_register(
        TrainJob(
            dataset=dataset, epochs=epochs, num_workers=1, run_name=f"bench-{dataset}-{time.time():.0f}"
        ),
        log=lambda *_: None,
    )
    return time.perf_counter() - started


def main() -> None:
    global DRAWS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", nargs="+", default=["breast_cancer", "customers"])
    parser.add_argument(
        "--epochs", type=int, default=None, help="gen_factory epochs (default: the pipeline's)"
    )
    parser.add_argument("--ray", action="store_true", help="also time the Ray Train + MLflow path once")
    parser.add_argument("--rows-used", action="store_true",
                        help="also train each table through `train_and_register` (Ray Train, defaults) and "
                             "read from its card how many of the given rows trained the shipped model")
    parser.add_argument("--draws", type=int, default=DRAWS,
                        help="synthetic draws per system (fewer while iterating)")
    parser.add_argument("--peer-cache", type=Path, default=None,
                        help="keep SDV's draws in this directory and reuse them on the next run")
    args = parser.parse_args()
    DRAWS = args.draws
    from gen_factory.train.hyper import resolve_hyper

    if not BENCH_PYTHON.exists():
        sys.exit(f"{BENCH_PYTHON} is missing: run `make bench-venv` (SDV lives in its own venv)")
    rows, checks, trips, used, controls = [], [], {}, {}, {}
    for name in args.tables:
        train, holdout = split(load_dataset(name), 0.3, 0)
        epochs = resolve_hyper("table", len(train.labels), epochs=args.epochs).epochs
        real, hold = train.frame(), holdout.frame()
        kinds = column_kinds(real, {train.label_column})
        cats = {c for c, k in kinds.items() if k == "categorical"}
        controls[name] = heldout_controls(name, train, real, hold, cats)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            systems = {"gen_factory": run_gen_factory(train, tmp, epochs)}
            for kind, label in (("ctgan", "SDV CTGAN"), ("copula", "SDV GaussianCopula")):
                systems[label] = run_sdv(kind, real, train.label_column, tmp, cache=args.peer_cache)
            checks.append((name, sdmetrics_check(real, systems["gen_factory"][0][0], kinds, tmp)))
            trips[name] = roundtrip(name, train, systems["gen_factory"][1].pop("model"))
            if args.rows_used:
                used[name] = rows_used_pct(name, tmp, args.epochs)
        for system, (draws, timing) in systems.items():
            results = [evaluate_table(real, synth, hold, train.label_column) for synth in draws]
            heads = pd.DataFrame([headline(r) for r in results])
            heldout = pd.Series([quality_report(hold, synth[list(real.columns)], cats)["quality"]
                                 for synth in draws])
            rows.append(
                {
                    "table": name,
                    "system": system,
                    **heads.mean().to_dict(),
                    "quality_sd": heads["quality"].std(),
                    "tstr_f1_sd": heads["tstr_macro_f1"].std(),
                    "quality_heldout": heldout.mean(),
                    "quality_heldout_sd": heldout.std(),
                    **timing,
                    "epochs": epochs if system == "gen_factory" else None,
                }
            )
            if system == "gen_factory":
                checks[-1] = (*checks[-1], results[0]["quality"])
    frame = pd.DataFrame(rows)
    cols = [
        "table",
        "system",
        "quality",
        "quality_sd",
        "column_shapes",
        "column_pair_trends",
        "tstr_accuracy",
        "tstr_macro_f1",
        "tstr_f1_sd",
        "real_accuracy",
        "dcr_ratio",
        "fit_seconds",
        "rows_per_second",
        "epochs",
    ]
    print(f"\n70/30 stratified split, seed 0; TSTR = RandomForest(200, seed 0) on the real hold-out; "
          f"scores are means over {DRAWS} synthetic draws (sd = their standard deviation)")
    print(
        frame[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}")
    )
    print("\nSDMetrics QualityReport on gen_factory's first draw vs gen_factory.evaluate (same definitions):")
    for name, sdm, ours in checks:
        print(
            f"  {name}: SDMetrics quality {sdm['quality']:.4f} shapes {sdm['column_shapes']:.4f} "
            f"trends {sdm['column_pair_trends']:.4f} | ours {ours['quality']:.4f} "
            f"{ours['column_shapes']:.4f} "
            f"{ours['column_pair_trends']:.4f}"
        )
    print_results(frame, trips, used)
    print_heldout(frame, controls)
    if args.ray:
        print(f"\nRay Train path (1 worker, train + export + evaluate + register), {args.tables[0]}: "
              f"{ray_path_seconds(args.tables[0], args.epochs):.1f} s")


def print_results(frame: pd.DataFrame, trips: dict, used: dict) -> None:
    """The issue-16 figures: per table against the best SDV peer, and the round trip over all tables."""
    print("\nround trip (generate_table vs the user's frame; per-column shapes on "
          f"{SAMPLE_ROWS} rows vs the training rows):")
    for name, trip in trips.items():
        print(f"  {name}: schema_equal={trip['schema_equal']} "
              f"discrete_on_grid={trip['discrete_on_grid']:.4f} "
              f"nan_rate_max_err_pts={trip['nan_rate_max_err_pts']:.3f} "
              f"min_range_coverage={trip['min_range_coverage']:.3f} inside={trip['all_inside_range']:.0f} "
              f"(worst columns: {trip['worst']})")
    for name, group in frame.groupby("table", sort=False):
        ours = group[group["system"] == "gen_factory"].iloc[0]
        peers = group[group["system"] != "gen_factory"]
        print(f"RESULT tabular table={name} quality={ours['quality']:.4f} "
              f"tstr_f1={ours['tstr_macro_f1']:.4f} best_peer_quality={peers['quality'].max():.4f} "
              f"best_peer_tstr_f1={peers['tstr_macro_f1'].max():.4f} "
              f"rows_used_pct={used.get(name, float('nan')):.1f}")
    trip = list(trips.values())
    on_grid = [t["discrete_on_grid"] for t in trip if not np.isnan(t["discrete_on_grid"])]
    print(f"RESULT roundtrip tables={len(trip)} schema_equal={sum(t['schema_equal'] for t in trip)} "
          f"discrete_on_grid={min(on_grid, default=float('nan')):.4f} "
          f"nan_rate_max_err_pts={max(t['nan_rate_max_err_pts'] for t in trip):.3f} "
          f"min_range_coverage={min(t['min_range_coverage'] for t in trip):.3f}")


def print_heldout(frame: pd.DataFrame, controls: dict) -> None:
    """The same quality against the held-out rows, with its controls, per table."""
    fmt = "{:.4f}".format
    print(f"\nquality vs the HELD-OUT rows (never trained on), mean (sd) over {DRAWS} draws, next to the "
          "quality vs the training rows; controls: real held-out rows vs the training rows, fresh "
          "recipe rows (oracle, seeds 1..DRAWS) vs the training / held-out rows")
    for name, group in frame.groupby("table", sort=False):
        c = controls[name]
        print(f"  {name}: real_heldout_vs_train={fmt(c['real_heldout_vs_train'])} "
              f"oracle_vs_train={fmt(c['oracle_vs_train'])} ({fmt(c['oracle_vs_train_sd'])}) "
              f"oracle_vs_heldout={fmt(c['oracle_vs_heldout'])} ({fmt(c['oracle_vs_heldout_sd'])})")
        for _, row in group.iterrows():
            print(f"    {row['system']:<20} vs_train={fmt(row['quality'])} ({fmt(row['quality_sd'])}) "
                  f"vs_heldout={fmt(row['quality_heldout'])} ({fmt(row['quality_heldout_sd'])})")
    for name, group in frame.groupby("table", sort=False):
        ours = group[group["system"] == "gen_factory"].iloc[0]
        peers = group[group["system"] != "gen_factory"]
        c = controls[name]
        print(f"RESULT tabular_heldout table={name} quality={ours['quality_heldout']:.4f} "
              f"best_peer_quality={peers['quality_heldout'].max():.4f} "
              f"real_heldout_vs_train={c['real_heldout_vs_train']:.4f} "
              f"oracle_vs_train={c['oracle_vs_train']:.4f} "
              f"oracle_vs_heldout={c['oracle_vs_heldout']:.4f}")


if __name__ == "__main__":
    main()
