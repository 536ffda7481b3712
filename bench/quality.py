"""First quality figures of the two demo models, trained exactly as `make demo` trains them.

digits: accuracy, per label, of an SVC trained on the real training digits when it labels
generated digits (200 per label). breast_cancer: per-column mean and std, synthetic vs real,
plus a train-on-synthetic/test-on-real RandomForest accuracy. Run: `make bench` or
`python bench/quality.py`. Uses a throw-away data directory unless GENFACTORY_HOME is set.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time


def main() -> None:
    os.environ.setdefault("GENFACTORY_HOME", tempfile.mkdtemp(prefix="gf-bench-"))
    from gen_factory.pipeline import DEFAULT_EPOCHS, TrainJob, train_and_register

    started = time.time()
    digits = train_and_register(TrainJob("digits", model_name="bench-digits"), log=lambda *_: None)
    table = train_and_register(TrainJob("breast_cancer", model_name="bench-breast-cancer"), log=lambda *_: None)
    print(f"\n# gen_factory quality bench — {time.strftime('%Y-%m-%d')} — {platform.machine()}, "
          f"{os.cpu_count()} cores, 2 Ray Train workers\n")

    m = digits["metrics"]
    print(f"digits (projgan-gp: projection D + WGAN-GP + EMA, {DEFAULT_EPOCHS['image']} epochs, "
          f"{digits['seconds']:.0f} s incl. export):")
    print(f"  label fidelity (SVC trained on real labels 2000 generated digits): {m['label_fidelity']:.3f}"
          f"; CAS {m['cas']:.3f} (more in bench/image_quality.py)")
    print("  per label: " + "  ".join(f"{k[-1]}:{v:.2f}" for k, v in m.items() if k.startswith("label_fidelity_")))

    m = table["metrics"]
    print(f"\nbreast_cancer (WGAN-GP, 300 epochs, {table['seconds']:.0f} s incl. export):")
    print(f"  TSTR RandomForest accuracy on the real hold-out: {m['tstr_accuracy']:.3f} (trained on real: {m['real_accuracy']:.3f})")
    print(f"  column means off by {m['mean_abs_error_in_std']:.3f} real std on average (max {m['max_abs_error_in_std']:.3f}); "
          f"synthetic/real std ratio {m['std_ratio_mean']:.3f} on average")
    print(f"\n  {'column':<26}{'real mean':>12}{'synth mean':>12}{'real std':>11}{'synth std':>11}")
    for col, c in m["columns"].items():
        print(f"  {col:<26}{c['real_mean']:>12.4g}{c['synth_mean']:>12.4g}{c['real_std']:>11.4g}{c['synth_std']:>11.4g}")
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
