"""The attack half: GAN priors (and, built on them, the model-inversion attacks)."""

from fisher_mi.attacks.priors import (
    GAN,
    PRIORS,
    GANArchitecture,
    build_gan,
    load_gan,
    save_gan,
)

__all__ = ["GAN", "PRIORS", "GANArchitecture", "build_gan", "load_gan", "save_gan"]
