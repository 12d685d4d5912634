"""GAN priors of the model-inversion attacks: kinds (gmi, kedmi, plgmi), networks."""

from fisher_mi.attacks.priors import kinds  # noqa: F401  (importing registers the kinds)
from fisher_mi.attacks.priors.base import (
    GAN,
    PRESETS,
    PRIORS,
    GANArchitecture,
    NetworkSpec,
    Preset,
    PriorKind,
    build_gan,
    register_prior,
)

__all__ = [
    "GAN",
    "PRESETS",
    "PRIORS",
    "GANArchitecture",
    "NetworkSpec",
    "Preset",
    "PriorKind",
    "build_gan",
    "register_prior",
]
