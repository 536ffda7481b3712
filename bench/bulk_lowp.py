"""int8 vs fp32 generators: bulk rows/s against the fp32 FLOP bound, and what int8 costs in quality.

    python bench/bulk_lowp.py [--tables breast_cancer customers wine loans] [--draws 12] [--reps 5]

Per bundled table: train in-process at the default settings (tabular_quality's split, seed 0),
export with the opt-in int8 generator (`export_bundle(..., precisions=("int8",))`), then through
the runtime both precisions run:
- `graph`: `generate_arrays` (noise + ONNX graph: what a served request costs);
- `shard`: `generate_table` + `to_parquet_bytes` of one 262,144-row shard, one thread: exactly
  what a bulk `ShardWriter` actor does per file (Ray's scheduling aside).
Rates are rows per CPU second (process time; the wall rate of the shard is shown beside), the
best of `--reps` runs, fp32 and int8 interleaved: the machine is shared, and CPU time leaves out
the time the process waits for a core. `% bound` divides by one core's fp32 FLOP bound: the fp32
graph's GEMM FLOPs per row (bench/bulk.py) at a one-thread torch matmul peak measured the same
way (best of 3 one-second windows).
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
    """{precision: {stage: rows per CPU second, stage_wall: rows per wall second}} for `graph`
    (noise + ONNX graph) and `shard` (+ Arrow + zstd Parquet), each the best of `reps`, the
    precisions interleaved; also the noise draw alone (`noise`)."""
    from gen_factory.runtime.sampling import generate_arrays, generate_table, to_parquet_bytes

    stages = {"graph": lambda m, seed: generate_arrays(m, counts, [seed]),
              "shard": lambda m, seed: to_parquet_bytes(generate_table(m, counts, [seed])),
              "noise": lambda m, seed: np.random.default_rng(seed).standard_normal(
                  (sum(counts), m.card.noise_dim + m.card.flag_noise), dtype=np.float32)}
    best = {p: {} for p in models}
    for rep in range(reps):
        for precision, model in models.items():
            for stage, run in stages.items():
                cpu, wall = time.process_time(), time.perf_counter()
                run(model, rep)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                for key, seconds in ((stage, cpu), (f"{stage}_wall", wall)):
                    best[precision][key] = max(best[precision].get(key, 0.0), sum(counts) / seconds)
    return best


GEMM_OPS = {"Gemm", "MatMul", "MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
            "MatMulIntegerToFloat"}
NET_OPS = {"LayerNormalization", "Relu", "Concat", "Gather"}  # the network around its GEMMs (and decoding)


def op_profile(model, rows: int = 8192, runs: int = 20) -> dict[str, float]:
    """ns per row by op type of `model`'s generator graph (ONNX Runtime's profiler, one thread, each
    node's best run), grouped as GEMMs (with int8's activation quantization), the rest."""
    import json

    import onnxruntime as ort

    from gen_factory.runtime.onnx_model import generator_file

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "gf-lowp-profile")
    session = ort.InferenceSession(str(model.dir / generator_file(model.card, model.precision)), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"noise": rng.standard_normal((rows, model.card.noise_dim + model.card.flag_noise),
                                          dtype=np.float32),
             "labels": np.arange(rows, dtype=np.int64) % len(model.label_names)}
    if model.conditional:
        feeds["cond"] = np.zeros((rows, session.get_inputs()[2].shape[1]), dtype=np.float32)
    for _ in range(runs):
        session.run(None, feeds)
    path = Path(session.end_profiling())
    best: dict[tuple[str, str], float] = {}
    for event in json.loads(path.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            key = (event["args"]["op_name"], event["name"])
            best[key] = min(best.get(key, float("inf")), event["dur"])
    path.unlink()
    groups = {"gemm": 0.0, "net": 0.0, "decode": 0.0}
    for (op, _), us in best.items():
        groups["gemm" if op in GEMM_OPS else "net" if op in NET_OPS else "decode"] += us * 1e3 / rows
    return groups


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
    peak = max(matmul_peak_flops(1, seconds=1.0, clock=time.process_time) for _ in range(3))
    bound = peak / generator_flops_per_row(bundle)
    speed = rates(models, counts, reps)
    profile = {p: op_profile(m) for p, m in models.items()}
    quality = {p: scores(m, train, holdout, draws) for p, m in models.items()}
    loss = (quality["fp32"] - quality["int8"]).mean(axis=0)
    return {"table": name, "fit_s": fit_s, "bound": bound, "peak": peak, "speed": speed,
            "quality": quality, "loss": loss,
            "profile": profile}


def report(r: dict) -> None:
    fp32, int8 = r["quality"]["fp32"], r["quality"]["int8"]
    print(f"\n{r['table']}: fit+export {r['fit_s']:.0f} s; fp32 FLOP bound {r['bound']:,.0f} rows/s per core "
          f"(matmul peak {r['peak'] / 1e9:.1f} GFLOP/s per CPU second)")
    print(f"{'precision':>9} {'noise us':>9} {'graph us':>9} {'shard us':>9} {'graph %':>8} {'shard %':>8} "
          f"{'shard wall r/s':>15} {'quality':>8} {'sd':>6} {'tstr f1':>8} {'sd':>6}")
    for p, q in (("fp32", fp32), ("int8", int8)):
        s = r["speed"][p]
        print(f"{p:>9} {1e6 / s['noise']:>9.3f} {1e6 / s['graph']:>9.3f} {1e6 / s['shard']:>9.3f} "
              f"{100 * s['graph'] / r['bound']:>7.1f}% {100 * s['shard'] / r['bound']:>7.1f}% "
              f"{s['shard_wall']:>15,.0f} {q[:, 0].mean():>8.4f} {q[:, 0].std():>6.4f} "
              f"{q[:, 1].mean():>8.4f} {q[:, 1].std():>6.4f}")
    for p, groups in r["profile"].items():
        print(f"{p} graph by ORT profiler, ns/row: " + ", ".join(f"{k} {v:.0f}" for k, v in groups.items()))
    diff = fp32 - int8
    print(f"paired loss fp32 - int8 over {len(diff)} draws: quality {r['loss'][0]:+.4f} "
          f"(sd {diff[:, 0].std():.4f}), tstr {r['loss'][1]:+.4f} (sd {diff[:, 1].std():.4f}); "
          f"fp32 seed-to-seed sd: quality {fp32[:, 0].std():.4f}, tstr {fp32[:, 1].std():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=list(TABLES))
    parser.add_argument("--draws", type=int, default=12)
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
