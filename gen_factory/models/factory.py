"""Build the generator/discriminator pair a dataset needs from a small, JSON-able spec."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from gen_factory.data.conditions import cond_width
from gen_factory.models.image import (
    ImageDiscriminator,
    ImageGenerator,
    MLPImageDiscriminator,
    MLPImageGenerator,
)
from gen_factory.models.tabular import TabularDiscriminator, TabularGenerator


@dataclass
class ModelSpec:
    """What the networks must produce: `shape` is [n_features] for tables, [C, H, W] for images."""

    kind: str  # "table" | "image"
    n_labels: int
    shape: list[int]
    noise_dim: int = 64
    spectral_norm: bool = True
    widths: dict = field(default_factory=dict)  # optional overrides: hidden/depth, g_width/d_width
    arch: str = "conv"  # images: "conv" (DCGAN-shaped) | "mlp" (fully connected)
    conditioning: str = "projection"  # images: how D sees the label: "projection" | "concat" | "none"
    spans: list = field(default_factory=list)  # tables: [activation, width] blocks of the encoded row
    cond_dim: int = 0  # tables: width of the conditional vector over categorical columns (0: none)


def spec_for(data, encoding, **networks) -> ModelSpec:
    """The spec a dataset needs: encoded width and output activations for tables, image shape else;
    `networks` carries the other ModelSpec fields (spectral_norm, an image variant's arch, ...)."""
    if data.kind == "table":
        return ModelSpec(kind="table", n_labels=len(data.label_names), shape=[encoding.width],
                         spans=[list(s) for s in encoding.spans()], cond_dim=cond_width(encoding.columns),
                         **networks)
    return ModelSpec(
        kind="image", n_labels=len(data.label_names), shape=list(data.images.shape[1:]), **networks
    )


def build_models(spec: ModelSpec) -> tuple[nn.Module, nn.Module]:
    w = spec.widths
    if spec.kind == "table":
        (n_features,) = spec.shape
        g = TabularGenerator(
            spec.noise_dim,
            spec.n_labels,
            n_features,
            w.get("hidden", 256),
            w.get("depth", 2),
            spans=spec.spans,
            cond_dim=spec.cond_dim,
        )
        d = TabularDiscriminator(spec.n_labels, n_features, w.get("hidden", 256), w.get("depth", 2),
                                 spectral_norm=spec.spectral_norm, cond_dim=spec.cond_dim)
        return g, d
    if spec.kind == "image":
        channels, height, width = spec.shape
        if height != width:
            raise ValueError(f"image shape {spec.shape}: only square images are supported; crop or pad them")
        if spec.arch == "mlp":
            g = MLPImageGenerator(spec.noise_dim, spec.n_labels, spec.shape, w.get("hidden", 256))
            d = MLPImageDiscriminator(spec.n_labels, spec.shape, w.get("hidden", 256), spec.spectral_norm,
                                      spec.conditioning)
            return g, d
        if spec.arch != "conv":
            raise ValueError(f"image arch {spec.arch!r} is unknown; use 'conv' or 'mlp'")
        g = ImageGenerator(spec.noise_dim, spec.n_labels, channels, height, w.get("g_width", 128))
        d = ImageDiscriminator(spec.n_labels, channels, height, w.get("d_width", 64), spec.spectral_norm,
                               spec.conditioning)
        return g, d
    raise ValueError(f"model kind {spec.kind!r} is unknown; use 'table' or 'image'")
