"""Reversible encodings between raw values and the scale the networks work in.

Each encoding is fitted once on the driver, travels as its typed spec (`data.columns`: JSON in the
config, a field of the model card), and turns into torch modules so that decoding is part of the
exported ONNX graph: serving needs no torch and no Python-side post-processing to return real
column values or pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import TypeAdapter
from torch import nn

from gen_factory.data.columns import EncodingSpec, ImageEncodingSpec, TableEncodingSpec
from gen_factory.data.datasets import Dataset, ImageData
from gen_factory.data.table_transformer import TableEncoding


@dataclass
class ImageEncoding:
    """Pixels mapped linearly from [low, high] to [-1, 1] (a tanh generator's range). `integer`: the
    data's pixels are whole numbers (8-bit images, digits' 0-16), so sampling rounds generated ones."""

    low: float
    high: float
    integer: bool = False

    @classmethod
    def fit(cls, data: ImageData) -> "ImageEncoding":
        integer = bool(np.all(np.mod(data.images, 1) == 0))
        return cls(low=float(data.images.min()), high=float(data.images.max()), integer=integer)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return ((images - self.low) / (self.high - self.low) * 2.0 - 1.0).astype(np.float32)

    def encoder(self) -> nn.Module:
        scale = 2.0 / (self.high - self.low)
        return _Affine(np.float32(scale), np.float32(-self.low * scale - 1.0))

    def decoder(self) -> nn.Module:
        return _ImageDecoder(self.low, self.high)

    def unit(self) -> float:
        """Size of one encoded unit in raw pixel values."""
        return (self.high - self.low) / 2.0

    def flip_steps(self) -> None:
        """No pixel is picked at a threshold inside the graph (sampling rounds whole-number pixels after)."""
        return None


Encoding = TableEncoding | ImageEncoding


def fit_encoding(data: Dataset) -> Encoding:
    return TableEncoding.fit(data) if data.kind == "table" else ImageEncoding.fit(data)


def encoding_spec(enc: Encoding) -> TableEncodingSpec | ImageEncodingSpec:
    """What the model card and the training config carry of an encoding."""
    if isinstance(enc, TableEncoding):
        return TableEncodingSpec(columns=enc.columns)
    return ImageEncodingSpec(low=enc.low, high=enc.high, integer=enc.integer)


def encoding_to_dict(enc: Encoding) -> dict:
    return encoding_spec(enc).model_dump(exclude_none=True)


def encoding_from_dict(d: dict) -> Encoding:
    spec = TypeAdapter(EncodingSpec).validate_python(d)
    if isinstance(spec, TableEncodingSpec):
        return TableEncoding(list(spec.columns))
    return ImageEncoding(spec.low, spec.high, spec.integer)


class _Affine(nn.Module):
    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class _ImageDecoder(nn.Module):
    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = low, high

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.clamp((z + 1.0) * 0.5 * (self.high - self.low) + self.low, self.low, self.high)
