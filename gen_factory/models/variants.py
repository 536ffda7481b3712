"""The classic image GANs as named presets, so they can be trained and compared by one setting.

Each preset fixes the networks (ModelSpec fields) and the objective (Hyper fields). Our product
needs a label per sample, so every generator takes one; what differs is whether and how the
discriminator sees it. `sngan` (the default) is the StudioGAN recipe: projection discriminator,
hinge loss, spectral norm, EMA generator (always on) and DiffAugment.
"""

from __future__ import annotations

VARIANTS: dict[str, dict] = {
    # Goodfellow et al. 2014: MLPs, non-saturating loss; D ignores the label.
    "vanilla": {"spec": {"arch": "mlp", "conditioning": "none", "spectral_norm": False},
                "hyper": {"loss": "nonsaturating", "betas": (0.5, 0.999), "augment": ""}},
    # Mirza & Osindero 2014: the same MLPs, the label concatenated into D.
    "cgan": {"spec": {"arch": "mlp", "conditioning": "concat", "spectral_norm": False},
             "hyper": {"loss": "nonsaturating", "betas": (0.5, 0.999), "augment": ""}},
    # Radford et al. 2015: convolutional G and D, label concatenated.
    "dcgan": {"spec": {"arch": "conv", "conditioning": "concat", "spectral_norm": False},
              "hyper": {"loss": "nonsaturating", "betas": (0.5, 0.999), "augment": ""}},
    # Gulrajani et al. 2017: critic without spectral norm, gradient penalty, several critic steps.
    "wgan-gp": {"spec": {"arch": "conv", "conditioning": "concat", "spectral_norm": False},
                "hyper": {"loss": "wgan-gp", "betas": (0.5, 0.9), "n_critic": 2, "augment": ""}},
    # Miyato et al. 2018 + StudioGAN: projection D, hinge, spectral norm, DiffAugment.
    "sngan": {"spec": {"arch": "conv", "conditioning": "projection", "spectral_norm": True},
              "hyper": {"loss": "hinge", "betas": (0.0, 0.9)}},
}
DEFAULT_VARIANT = "sngan"


def variant(name: str) -> dict:
    """The preset's {"spec": ..., "hyper": ...} overrides; an unknown name is an error naming the choices."""
    if name not in VARIANTS:
        raise ValueError(f"image variant {name!r} is unknown; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
