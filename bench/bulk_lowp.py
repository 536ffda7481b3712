"""int8 vs fp32 generators: bulk rows/s against the fp32 FLOP bound, and what int8 costs in quality.

    python bench/bulk_lowp.py [--tables breast_cancer customers wine loans] [--draws 5] [--reps 5]

Per bundled table: train in-process at the default settings (tabular_quality's split, seed 0),
export with the opt-in int8 generator (`export_bundle(..., precisions=("int8",))`), then through
the runtime both precisions run:
- `graph`: `generate_arrays` (noise + ONNX graph: what a served request costs);
- `shard`: `generate_table` + `to_parquet_bytes` of one 262,144-row shard, one thread: exactly
  what a bulk `ShardWriter` actor does per file (Ray's scheduling aside).
Rates are the best of `--reps` runs, fp32 and int8 interleaved (the machine is shared: the best
run is the least disturbed one); `% bound` divides by one core's fp32 FLOP bound (the fp32
graph's GEMM FLOPs per row at bench/bulk.py's measured matmul peak, the best of 3 windows).
Quality (SDMetrics-style QualityReport) and TSTR macro-F1 come from gen_factory.evaluate on
`--draws` draws of as many rows as the training split, the same seeds for both precisions; the
loss is the mean paired difference (fp32 - int8), shown beside fp32's spread over the seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent)]

from bulk import generator_flops_per_row, matmul_peak_flops  # noqa: E402

TABLES = ("breast_cancer", "customers", "wine", "loans")
SHARD_ROWS = 262_144


def trained_bundle(name: str, out: Path):
    """(train split, hold-out split, bundle dir): the default fit, exported with the int8 generator."""
    import torch

    from gen_factory.data import load_dataset, split
    from gen_factory.export.bundle import card_for, export_bundle
    from gen_factory.models.encoder import build_encoder
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.local import train_table

    torch.set_num_threads(1)
    train, holdout = split(load_dataset(name), 0.3, 0)
    epochs = resolve_hyper("table", len(train.labels)).epochs
    g, d, encoding, spec, hyper = train_table(train, epochs, seed=0)
    card = card_for(train, spec, encoding, model_name=f"bench-lowp-{name}", dataset=name, loss=hyper.loss,
                    epochs=epochs, seed=0)
    export_bundle(g, d, build_encoder(spec).eval(), (1.0, 1.0), encoding, card, out, precisions=("int8",))
    return train, holdout, out


def rates(models: dict, counts: list[int], reps: int) -> dict[str, dict[str, float]]:
    """{precision: {"graph": rows/s, "shard": rows/s}}, each the best of `reps`, precisions interleaved."""
    from gen_factory.runtime.sampling import generate_arrays, generate_table, to_parquet_bytes

    best = {p: {"graph": 0.0, "shard": 0.0} for p in models}
    rows = sum(counts)
    for rep in range(reps):
        for precision, model in models.items():
            started = time.perf_counter()
            generate_arrays(model, counts, [rep])
            graph = time.perf_counter() - started
            started = time.perf_counter()
            to_parquet_bytes(generate_table(model, counts, [rep]))
            shard = time.perf_counter() - started
            best[precision]["graph"] = max(best[precision]["graph"], rows / graph)
            best[precision]["shard"] = max(best[precision]["shard"], rows / shard)
    return best


def scores(model, train, holdout, draws: int) -> np.ndarray:
    """[draw, (quality, tstr macro-F1)] on `draws` seeded draws of the training split's size."""
    from gen_factory.data.datasets import frame_from_codes
    from gen_factory.evaluate.quality import column_kinds, quality_report
    from gen_factory.evaluate.utility import tstr
    from gen_factory.runtime.sampling import generate_arrays

    real, hold = train.frame(), holdout.frame()
    kinds = column_kinds(real, {train.label_column})
    cats = {c for c, k in kinds.items() if k == "categorical"}
    out = []
    for seed in range(draws):
        values, labels = generate_arrays(model, np.bincount(train.labels).tolist(), seed)
        synth = frame_from_codes(values, labels, train.columns, train.categories, train.label_names,
                                 train.label_column)[list(real.columns)]
        out.append((quality_report(real, synth, cats)["quality"],
                    tstr(synth, hold, train.label_column, cats, seed)["macro_f1"]))
    return np.array(out)


def bench_table(name: str, tmp: Path, draws: int, reps: int) -> dict:
    from gen_factory.runtime.onnx_model import OnnxModel

    started = time.perf_counter()
    train, holdout, bundle = trained_bundle(name, tmp / name)
    fit_s = time.perf_counter() - started
    models = {p: OnnxModel(bundle, threads=1, precision=p) for p in ("fp32", "int8")}
    n_labels = len(train.label_names)
    counts = [SHARD_ROWS // n_labels] * n_labels
    peak = max(matmul_peak_flops(1, seconds=1.0) for _ in range(3))
    bound = peak / generator_flops_per_row(bundle)
    speed = rates(models, counts, reps)
    quality = {p: scores(m, train, holdout, draws) for p, m in models.items()}
    loss = (quality["fp32"] - quality["int8"]).mean(axis=0)
    return {"table": name, "fit_s": fit_s, "bound": bound, "peak": peak, "speed": speed,
            "quality": quality, "loss": loss}


def report(r: dict) -> None:
    fp32, int8 = r["quality"]["fp32"], r["quality"]["int8"]
    print(f"\n{r['table']}: fit+export {r['fit_s']:.0f} s; fp32 FLOP bound {r['bound']:,.0f} rows/s per core "
          f"(matmul peak {r['peak'] / 1e9:.1f} GFLOP/s)")
    print(f"{'precision':>9} {'graph rows/s':>13} {'% bound':>8} {'shard rows/s':>13} {'% bound':>8} "
          f"{'quality':>8} {'sd':>6} {'tstr f1':>8} {'sd':>6}")
    for p, q in (("fp32", fp32), ("int8", int8)):
        s = r["speed"][p]
        print(f"{p:>9} {s['graph']:>13,.0f} {100 * s['graph'] / r['bound']:>7.1f}% {s['shard']:>13,.0f} "
              f"{100 * s['shard'] / r['bound']:>7.1f}% {q[:, 0].mean():>8.4f} {q[:, 0].std():>6.4f} "
              f"{q[:, 1].mean():>8.4f} {q[:, 1].std():>6.4f}")
    diff = fp32 - int8
    print(f"paired loss fp32 - int8: quality {r['loss'][0]:+.4f} (sd {diff[:, 0].std():.4f}), "
          f"tstr {r['loss'][1]:+.4f} (sd {diff[:, 1].std():.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(f"# bench/bulk_lowp.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory(prefix="gf-lowp-") as tmp:
        for name in args.tables:
            results.append(bench_table(name, Path(tmp), args.draws, args.reps))
            report(results[-1])
    print(f"\n# done {time.strftime('%H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}; "
          "pct_bound: the bulk shard path (graph + Arrow + zstd Parquet), one thread")
    for r in results:
        print(f"RESULT bulk_lowp table={r['table']} precision=int8 "
              f"pct_bound={100 * r['speed']['int8']['shard'] / r['bound']:.1f} "
              f"quality_loss={r['loss'][0]:.4f} tstr_loss={r['loss'][1]:.4f}")


if __name__ == "__main__":
    main()
