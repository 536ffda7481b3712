"""Image loaders for real formats: MNIST-style IDX files (raw or gzipped) and folders of PNGs
with one sub-folder per label. Both end in `images_from_arrays`, which validates shape and labels.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gen_factory.data.datasets import ImageData, _natural_key, images_from_arrays
from gen_factory.data.validate import DataValidationError

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_SUFFIXES = (".png",)


def is_idx(path: Path) -> bool:
    """An IDX file by name: MNIST's `*-idx3-ubyte`, `*.idx3`, optionally `.gz`."""
    name = path.name.lower().removesuffix(".gz")
    return "-idx" in name or ".idx" in name


def read_idx(path: Path) -> np.ndarray:
    """The array in one IDX file: 2 zero bytes, a type code, the rank, big-endian int32 dims, data."""
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataValidationError(
            f"file {path.name!r}",
            f"header {raw[:4].hex() or 'empty'}",
            "give an MNIST-format IDX file (magic 0x0000 + type + rank), gzipped or raw",
        )
    rank = raw[3]
    dims = np.frombuffer(raw, ">i4", count=rank, offset=4).astype(int).tolist()
    dtype = np.dtype(IDX_TYPES[raw[2]])
    start = 4 + 4 * rank
    if len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
        raise DataValidationError(f"file {path.name!r}", f"{len(raw) - start} data bytes for dims {dims}",
                                  "the file is truncated or not IDX; download or write it again")
    return np.frombuffer(raw, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(path: Path) -> ImageData:
    """Images from an IDX images file and labels from its sibling (`images-idx3` -> `labels-idx1`),
    or from a directory holding exactly one of each."""
    images_file, labels_file = _idx_pair(path)
    images, labels = read_idx(images_file), read_idx(labels_file)
    if labels.ndim != 1:
        raise DataValidationError(f"file {labels_file.name!r}", f"labels of shape {labels.shape}",
                                  "give a rank-1 IDX labels file (one label per image)")
    return images_from_arrays(images, labels, name=images_file.name.split("-")[0].split(".")[0])


def _idx_pair(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and is_idx(p)]
        imgs = [p for p in files if "idx1" not in p.name]
        labs = [p for p in files if "idx1" in p.name]
        if len(imgs) != 1 or len(labs) != 1:
            raise DataValidationError(
                "dataset",
                f"{path} holds {len(imgs)} image and {len(labs)} label IDX files",
                "keep exactly one images (idx3) and one labels (idx1) file in the folder",
            )
        return imgs[0], labs[0]
    name = path.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"), ("idx3", "idx1")):
        if a in name:
            sibling = path.with_name(name.replace(a, b))
            if sibling.exists():
                return path, sibling
            raise DataValidationError(
                "dataset",
                f"no labels file {sibling.name!r} beside {name!r}",
                "put the MNIST labels file (…-labels-idx1-ubyte[.gz]) next to the images file",
            )
    raise DataValidationError(
        "dataset", repr(name), "give the images IDX file (…-images-idx3-ubyte[.gz]) or its folder"
    )


def load_png_folders(root: Path) -> ImageData:
    """`root/<label>/*.png`, gray or colour (a folder with any colour image is loaded as RGB)."""
    from PIL import Image

    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))
    files = [(f, d.name) for d in folders for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataValidationError("dataset", f"{root} has no <label>/*.png files",
                                  "put each label's PNG images in a sub-folder named after the label")
    arrays, size = [], None
    for f, _ in files:
        with Image.open(f) as im:
            if size is not None and im.size != size:
                raise DataValidationError(
                    f"image {f.relative_to(root)}",
                    f"size {im.size[0]}x{im.size[1]}",
                    f"resize every image to {size[0]}x{size[1]} (the size of the first one)",
                )
            size = im.size
            gray = im.mode in ("L", "1", "I", "I;16", "F", "LA")
            arrays.append(np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32))
    if any(a.ndim == 3 for a in arrays):  # one colour image makes the set RGB
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    present = {lbl for _, lbl in files}
    names = [d.name for d in folders if d.name in present]
    return images_from_arrays(np.stack(arrays), np.array([lbl for _, lbl in files]), names, name=root.name)


def load_image_source(path: Path) -> ImageData:
    """Dispatch a path to the loader its form asks for: IDX file / folder of IDX files / PNG folders."""
    if path.is_dir():
        return (
            load_idx(path)
            if any(is_idx(p) for p in path.iterdir() if p.is_file())
            else load_png_folders(path)
        )
    return load_idx(path)
