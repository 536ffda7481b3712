"""Image loaders on files the tests write: MNIST IDX (raw and gzipped), PNG folders (gray, RGB)."""

import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from gen_factory.data import DataValidationError, load_dataset


def write_idx(path, array, gz=False):
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load_from_the_images_file_or_their_folder(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28)).astype(np.uint8)
    labels = np.array([3, 7, 3, 7, 3, 7, 9, 9, 3, 7, 9, 9], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    for spec in (tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path):
        data = load_dataset(str(spec))
        assert data.images.shape == (12, 1, 28, 28) and data.kind == "image"
        assert data.label_names == ["3", "7", "9"]
        np.testing.assert_array_equal(data.images[:, 0], images.astype(np.float32))
        assert [data.label_names[i] for i in data.labels] == [str(v) for v in labels]


def test_bad_idx_files_are_rejected_with_the_file_and_the_fix(tmp_path):
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x08\x03\x00\x00garbage")
    write_idx(tmp_path / "x-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DataValidationError, match="x-images-idx3-ubyte.*MNIST-format"):
        load_dataset(str(tmp_path / "x-images-idx3-ubyte"))
    write_idx(tmp_path / "y-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataValidationError, match="no labels file 'y-labels-idx1-ubyte'"):
        load_dataset(str(tmp_path / "y-images-idx3-ubyte"))
    write_idx(tmp_path / "y-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataValidationError, match="3 labels for 2 images"):
        load_dataset(str(tmp_path / "y-images-idx3-ubyte"))


def write_pngs(root, size, mode, per_label=3, labels=("cat", "dog")):
    rng = np.random.default_rng(1)
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(
                root / label / f"{i}.png"
            )


@pytest.mark.parametrize("size, mode, channels", [(32, "RGB", 3), (28, "L", 1), (8, "L", 1)])
def test_png_folders_load_gray_or_rgb(tmp_path, size, mode, channels):
    write_pngs(tmp_path / "pics", size, mode)
    data = load_dataset(str(tmp_path / "pics"))
    assert data.images.shape == (6, channels, size, size)
    assert data.label_names == ["cat", "dog"] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert 0 <= data.images.min() and data.images.max() <= 255


def test_png_folders_reject_mixed_sizes_and_empty_roots(tmp_path):
    write_pngs(tmp_path / "pics", 8, "L")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "pics" / "dog" / "odd.png")
    with pytest.raises(
        DataValidationError, match=r"image dog/odd.png: size 9x9 -- fix: resize every image to 8x8"
    ):
        load_dataset(str(tmp_path / "pics"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="sub-folder named after the label"):
        load_dataset(str(tmp_path / "empty"))


def test_one_colour_image_makes_a_png_folder_rgb(tmp_path):
    write_pngs(tmp_path / "pics", 8, "L")
    Image.fromarray(np.full((8, 8, 3), [255, 0, 0], np.uint8), "RGB").save(
        tmp_path / "pics" / "cat" / "red.png"
    )
    data = load_dataset(str(tmp_path / "pics"))
    assert data.images.shape == (7, 3, 8, 8)
    gray = data.images[0]
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[1], gray[2])  # gray copied to 3 channels
