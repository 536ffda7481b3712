"""Training settings, resolved in one place for every path that trains (the Ray pipeline, in-process
training, benches): the per-kind defaults, then the image variant's preset, then an explicit loss,
then field overrides; epochs from the data's size unless given."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from gen_factory.data.validate import DataValidationError
from gen_factory.models.variants import DEFAULT_VARIANT, ONE_CLASS_VARIANT, VARIANTS

# Tables: small tables give few batches per epoch, so the default is a number of optimizer steps
# (measured on breast_cancer, customers, wine: bench/RESULTS.md), within an epoch range.
TABLE_STEPS, TABLE_EPOCHS = 3000, (150, 600)
# Images: 200 epochs (digits: CAS 0.948 at 100, 0.970 at 200), and at least this many optimizer steps,
# so a small (one-class) image set trains as long as the 10-class digits do (one-class digits 3 and 8:
# KNN fitted on synthetic lost 0.033 / 0.074 AUROC at 2000 steps, 0.008 at 4000).
IMAGE_EPOCHS, IMAGE_STEPS = 200, 4000


@dataclass
class Hyper:
    """Optimisation settings; defaults per data kind come from `default_hyper`."""

    loss: str
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    n_critic: int = 1
    gp_weight: float = 10.0
    gp_every: int = 1  # lazy regularisation (StyleGAN2): the penalty every k-th critic step, weighted k
    ema_decay: float = 0.999
    augment: str = ""  # DiffAugment policy applied to real and fake before D, e.g. "translation,cutout"
    cond_weight: float = 1.0  # weight of the cond cross-entropy in the generator loss (CTGAN's)
    uncond_prob: float = 0.5  # share of rows trained with a zero cond vector (plain sampling's marginals)


@dataclass(frozen=True)
class Recipe:
    """What `resolve_hyper` settles: the optimisation, the ModelSpec overrides (`spec_for(...,
    **networks)`), the epochs of the GAN and of the f-AnoGAN encoder, and the image variant."""

    hyper: Hyper
    networks: dict
    epochs: int
    encoder_epochs: int
    variant: str | None


def default_hyper(kind: str, loss: str | None = None) -> Hyper:
    """Defaults chosen by measurement (bench/quality.py); see bench/RESULTS.md."""
    if kind == "image":  # bench/image_quality.py: WGAN-GP beat hinge + SN on CAS and recall
        hyper = Hyper(loss="wgan-gp", lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9))
    else:
        # Penalty every 4th critic step: fit 14.0 -> 11.0 s on customers, quality over 5 draws
        # 0.886 -> 0.902 there, 0.961 -> 0.960 on breast_cancer, 0.887 -> 0.879 on wine (bench/RESULTS.md).
        hyper = Hyper(loss="wgan-gp", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.9), n_critic=2, gp_every=4)
    return replace(hyper, loss=loss) if loss else hyper


def default_epochs(kind: str, rows: int, batch_size: int) -> int:
    if kind != "table":
        return max(IMAGE_EPOCHS, -(-IMAGE_STEPS // max(1, round(rows / batch_size))))
    batches = max(1, rows // batch_size)
    return min(TABLE_EPOCHS[1], max(TABLE_EPOCHS[0], -(-TABLE_STEPS // batches)))


def resolve_hyper(kind: str, rows: int, batch_size: int = 64, *, loss: str | None = None,
                  variant: str | None = None, one_class: bool = False, epochs: int | None = None,
                  encoder_epochs: int | None = None, **overrides) -> Recipe:
    """The settings of a training of `rows` rows of `kind` data. Images take `variant`'s preset
    (default: projgan-gp, sngan for `one_class` models); an explicit `loss` also sets spectral norm:
    off for WGAN-GP (the penalty does its job), on for the others (so hinge on the default variant
    is SNGAN). `overrides` set Hyper fields. The encoder trains half the GAN's epochs by default:
    the f-AnoGAN residual stops improving well before (bench/anomaly.py)."""
    hyper, networks = default_hyper(kind), {}
    if kind == "image":
        variant = variant or (ONE_CLASS_VARIANT if one_class else DEFAULT_VARIANT)
        preset = VARIANTS[variant]
        networks.update(preset["spec"])
        hyper = replace(hyper, **preset["hyper"])
    elif variant:
        raise DataValidationError("variant", repr(variant), "variants apply to images only; drop --variant")
    unknown = sorted(set(overrides) - {f.name for f in fields(Hyper)})
    if unknown:
        names = ", ".join(f.name for f in fields(Hyper))
        raise DataValidationError("hyper", repr(unknown), f"set Hyper's fields: {names}")
    hyper = replace(hyper, **{**({"loss": loss} if loss else {}), **overrides})
    if loss or "spectral_norm" not in networks:
        networks["spectral_norm"] = hyper.loss != "wgan-gp"
    epochs = epochs or default_epochs(kind, rows, batch_size)
    return Recipe(hyper, networks, epochs, encoder_epochs or max(1, epochs // 2), variant)
