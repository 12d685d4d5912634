"""The attack half: GAN priors (``priors``), their training (``gan_training``), and the
model-inversion attacks built on them (``inversion``, run into folders by ``runner`` and
``outputs``)."""

from fisher_mi.attacks.gan_training import train_gan
from fisher_mi.attacks.priors import (
    GAN,
    PRIORS,
    GANArchitecture,
    build_gan,
    load_gan,
    save_gan,
)

__all__ = ["GAN", "PRIORS", "GANArchitecture", "build_gan", "load_gan", "save_gan", "train_gan"]
