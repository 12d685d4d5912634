"""GAN priors of the model-inversion attacks: kinds, their networks and losses, GAN files."""

from fisher_mi.attacks.priors import kinds  # noqa: F401  (importing registers the kinds)
from fisher_mi.attacks.priors.base import (
    GAN,
    PRESETS,
    PRIORS,
    GANArchitecture,
    NetworkSpec,
    Preset,
    PriorKind,
    PriorLosses,
    build_gan,
    register_prior,
)
from fisher_mi.attacks.priors.files import GAN_FORMAT, load_gan, save_gan

__all__ = [
    "GAN",
    "GAN_FORMAT",
    "PRESETS",
    "PRIORS",
    "GANArchitecture",
    "NetworkSpec",
    "Preset",
    "PriorKind",
    "PriorLosses",
    "build_gan",
    "load_gan",
    "register_prior",
    "save_gan",
]
