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
    from gen_factory.services.pipeline import TrainJob, train_and_register

    started = time.time()
    digits = train_and_register(TrainJob("digits", model_name="bench-digits"), log=lambda *_: None)
    table = train_and_register(
        TrainJob("breast_cancer", model_name="bench-breast-cancer"), log=lambda *_: None
    )
    print(f"\n# gen_factory quality bench — {time.strftime('%Y-%m-%d')} — {platform.machine()}, "
          f"{os.cpu_count()} cores, 2 Ray Train workers\n")

    m = digits["metrics"]
    print(f"digits (projgan-gp: projection D + WGAN-GP + EMA, {digits['epochs']} epochs, "
          f"{digits['seconds']:.0f} s incl. export):")
    print(f"  label fidelity (SVC trained on real labels 2000 generated digits): {m['label_fidelity']:.3f}"
          f"; CAS {m['cas']:.3f} (more in bench/image_quality.py)")
    print(
        "  per label: "
        + "  ".join(f"{k[-1]}:{v:.2f}" for k, v in m.items() if k.startswith("label_fidelity_"))
    )

    m = table["metrics"]
    print(f"\nbreast_cancer (WGAN-GP, {table['epochs']} epochs, {table['seconds']:.0f} s incl. export):")
    print(
        f"  quality {m['quality']:.3f} (column shapes {m['column_shapes']:.3f}, pair trends "
        f"{m['column_pair_trends']:.3f})"
    )
    print(
        f"  TSTR RandomForest accuracy on the real hold-out: {m['tstr_accuracy']:.3f} (trained on real: "
        f"{m['real_accuracy']:.3f})"
    )
    real, synth = _table_samples(table["ref"])
    r_mean, r_std, s_mean, s_std = real.mean(), real.std(), synth.mean(), synth.std()
    err = ((s_mean - r_mean).abs() / r_std)
    print(f"  column means off by {err.mean():.3f} real std on average (max {err.max():.3f}); "
          f"synthetic/real std ratio {(s_std / r_std).mean():.3f} on average")
    print(f"\n  {'column':<26}{'real mean':>12}{'synth mean':>12}{'real std':>11}{'synth std':>11}")
    for col in real.columns:
        print(f"  {col:<26}{r_mean[col]:>12.4g}{s_mean[col]:>12.4g}{r_std[col]:>11.4g}{s_std[col]:>11.4g}")
    print(f"\ntotal {time.time() - started:.0f} s")


def _table_samples(ref):
    """Real training rows and as many generated rows, in the real label proportions (features only)."""
    import numpy as np

    from gen_factory import registry
    from gen_factory.data import load_dataset, split
    from gen_factory.runtime.onnx_model import OnnxModel
    from gen_factory.runtime.sampling import generate_table

    train, _ = split(load_dataset("breast_cancer"))
    model = OnnxModel(registry.download(ref))
    counts = np.bincount(train.labels, minlength=len(train.label_names)).tolist()
    synth = generate_table(model, counts, seed=0).to_pandas().drop(columns=[train.label_column])
    return train.frame().drop(columns=[train.label_column]), synth


if __name__ == "__main__":
    main()
