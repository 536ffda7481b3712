"""The classic image GANs as named presets, so they can be trained and compared by one setting.

Each preset fixes the networks (ModelSpec fields) and the objective (Hyper fields). Our product
needs a label per sample, so every generator takes one; what differs is whether and how the
discriminator sees it. The EMA generator is always on. `projgan-gp`, the default, won on digits
(bench/RESULTS.md): a projection discriminator trained with the WGAN-GP objective - as sharp about
classes as `sngan` (projection + hinge + spectral norm, the StudioGAN recipe) but with far more
diversity per class (recall 0.79 vs 0.35 at 80 epochs).
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
    # Miyato et al. 2018 + StudioGAN: projection D, hinge loss, spectral norm.
    "sngan": {"spec": {"arch": "conv", "conditioning": "projection", "spectral_norm": True},
              "hyper": {"loss": "hinge", "betas": (0.0, 0.9), "n_critic": 1}},
    # Projection D (Miyato & Koyama 2018) with the WGAN-GP objective, one critic step per G step.
    "projgan-gp": {"spec": {"arch": "conv", "conditioning": "projection", "spectral_norm": False},
                   "hyper": {"loss": "wgan-gp", "betas": (0.0, 0.9), "n_critic": 1}},
}
DEFAULT_VARIANT = "projgan-gp"
# One-class (anomaly) models: with ~130 images of one digit, WGAN-GP's samples were far off the real
# ones (IsolationForest fitted on them: AUROC 0.65-0.77 vs 0.94 fitted on real); hinge + spectral
# norm reached 0.93 in the same steps (bench/RESULTS.md, anomaly section).
ONE_CLASS_VARIANT = "sngan"


def variant(name: str) -> dict:
    """The preset's {"spec": ..., "hyper": ...} overrides; an unknown name is an error naming the choices."""
    if name not in VARIANTS:
        raise ValueError(f"image variant {name!r} is unknown; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
