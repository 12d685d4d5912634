"""How each prior kind is trained: its optimiser settings and the losses of one update.

A ``PriorTrainer`` states only what differs between the papers (the loop in ``loop.py`` does
the rest alike: shuffling, the order of updates, freezing, non-finite checks, checkpoints):
``n_critic`` discriminator updates per generator update and which comes first, Adam's rate
and betas, how many independently shuffled streams of real images an update reads, the
training images (``training_data``) and the two losses, computed with the kind's registered
``PriorLosses`` (``fisher_mi.attacks.priors.losses``). Each loss method returns the total to
minimise under ``discriminator_loss`` / ``generator_loss`` and its parts, detached, for
``history.csv``. Every random number comes from the epoch's ``Draws``.

Settings and their sources:

- gmi (GMI-Attack ``MNIST/train_gan.py``, ``Celeba/train_gan.py``): WGAN-GP, Adam 2e-4,
  betas (0.5, 0.999), 5 critic updates then one generator update, penalty weight 10.
- kedmi (Knowledge-Enriched-DMI ``k+1_gan.py``, ``config/celeba.json``): Adam 2e-4, betas
  (0.5, 0.999), n_critic 5, three shuffles of the public data (labelled, unlabelled for D,
  unlabelled for G); the config's ``unlabel_weight: 10`` is unused by the code, which weighs
  the unlabelled loss 0.5 (``losses.UNLABELLED_WEIGHT``), as here.
- plgmi (PLG-MI-Attack ``train_cgan.py``): hinge loss, Adam 2e-4, betas (0.0, 0.9),
  ``n_dis`` 5 with the generator update first in each iteration; pseudo-labels y ~ U{0..K-1}
  for the fakes; uniform noise in [0, 1/256) added to real images (its ``_noise_adder``); the
  generator's loss adds 0.2 x the max-margin loss of the target on augmented fakes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from fisher_mi.attacks.gan_training.config import GANTrainConfig
from fisher_mi.attacks.gan_training.data import pseudo_labelled, soft_labelled
from fisher_mi.attacks.inversion.augment import UNIFORMS_PER_IMAGE, augment
from fisher_mi.attacks.inversion.losses import max_margin
from fisher_mi.attacks.priors import GAN, PRIORS
from fisher_mi.attacks.priors.losses import (
    entropy,
    gradient_penalty,
    soft_cross_entropy,
    unlabelled_loss,
)
from fisher_mi.errors import ConfigError
from fisher_mi.models.outputs import logits_of
from fisher_mi.registry import Registry

Batch = tuple[Tensor, Tensor]  # images, labels (classes, soft-label logits, or unused)
DEQUANTISE = 1 / 256  # PLG-MI's _noise_adder: real images + U[0, 1/256)


@dataclass(frozen=True)
class Draws:
    """The epoch's random numbers: one seeded CPU generator, results moved to ``device``
    (so the numbers are the same on every device)."""

    generator: torch.Generator
    device: torch.device

    def normal(self, *shape: int) -> Tensor:
        """Standard normal draws."""
        return torch.randn(shape, generator=self.generator).to(self.device)

    def uniform(self, *shape: int) -> Tensor:
        """Uniform draws in [0, 1)."""
        return torch.rand(shape, generator=self.generator).to(self.device)

    def classes(self, count: int, num_classes: int) -> Tensor:
        """``count`` classes drawn uniformly from 0 to ``num_classes - 1``."""
        return torch.randint(num_classes, (count,), generator=self.generator).to(self.device)


class PriorTrainer(ABC):
    """The training of one prior kind; subclasses set the class attributes and the losses.

    Attributes:
        kind: the prior kind it trains (a key of ``PRIORS``).
        n_critic: discriminator updates per generator update.
        generator_first: the generator update opens each group of ``n_critic`` updates
            (PLG-MI) instead of closing it (GMI, KEDMI).
        lr: Adam's learning rate for both networks.
        betas: Adam's betas for both networks.
        streams: independently shuffled streams of real batches each update reads.
        needs_target: whether training uses the target (kedmi, plgmi).
        terms: the history columns of the losses' parts, beyond the two totals.
        source: the reference the settings come from.
    """

    kind: ClassVar[str]
    n_critic: ClassVar[int] = 5
    generator_first: ClassVar[bool] = False
    lr: ClassVar[float] = 2e-4
    betas: ClassVar[tuple[float, float]] = (0.5, 0.999)
    streams: ClassVar[int] = 1
    needs_target: ClassVar[bool] = False
    terms: ClassVar[tuple[str, ...]] = ()
    source: ClassVar[str] = ""

    def __init__(self, gan: GAN, target: nn.Module | None, config: GANTrainConfig) -> None:
        self.gan = gan
        self.target = target
        self.config = config
        self.losses = PRIORS.get(self.kind).losses

    @classmethod
    def training_data(
        cls, public: Dataset, logits: Tensor | None, config: GANTrainConfig
    ) -> Dataset:
        """The images the prior trains on (default: the public data as they are)."""
        return public

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """The kind's fixed settings, for GAN meta and the report."""
        return {
            "n_critic": cls.n_critic,
            "generator_first": cls.generator_first,
            "lr": cls.lr,
            "betas": list(cls.betas),
            "source": cls.source,
        }

    def optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        """Adam for the generator and for the discriminator."""
        return tuple(  # type: ignore[return-value]
            torch.optim.Adam(network.parameters(), lr=self.lr, betas=self.betas)
            for network in (self.gan.generator, self.gan.discriminator)
        )

    def fakes(self, count: int, draws: Draws) -> tuple[Tensor, Tensor | None]:
        """Generated images (the generator's raw output) and their classes (conditional)."""
        z = draws.normal(count, self.gan.latent_dim)
        labels = draws.classes(count, self.gan.num_classes) if self.gan.conditional else None
        return self.gan.raw(z, labels), labels

    @abstractmethod
    def discriminator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """``{"discriminator_loss": total, part: value...}`` for one discriminator update."""

    @abstractmethod
    def generator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """``{"generator_loss": total, part: value...}`` for one generator update (the
        discriminator's parameters are frozen by the caller)."""


def _given(logits: Tensor | None, kind: str) -> Tensor:
    """The target's logits on the public data, which the kind's training data need."""
    if logits is None:
        raise ConfigError(f"the {kind} prior is trained with a target; pass target=model")
    return logits


TRAINERS: Registry[type[PriorTrainer]] = Registry("GAN prior trainer")


def register_trainer(trainer: type[PriorTrainer]) -> type[PriorTrainer]:
    """Class decorator: register a ``PriorTrainer`` under its kind."""
    return TRAINERS.add(trainer.kind, trainer)


@register_trainer
class GMITrainer(PriorTrainer):
    """GMI's WGAN-GP (GMI-Attack ``train_gan.py``): critic -(mean D(x) - mean D(G(z))) +
    10 GP with the interpolation weights drawn per image; generator -mean D(G(z))."""

    kind = "gmi"
    terms = ("wasserstein", "gradient_penalty")
    source = "GMI-Attack MNIST/train_gan.py, Celeba/train_gan.py"

    def discriminator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """The critic's WGAN-GP loss on a real batch and as many fakes."""
        real = batches[0][0]
        with torch.no_grad():
            fake, _ = self.fakes(len(real), draws)
        critic = self.gan.discriminator
        real_scores, fake_scores = critic(real), critic(fake)
        penalty = gradient_penalty(critic, real, fake, draws.uniform(len(real)))
        return {
            "discriminator_loss": self.losses.discriminator(real_scores, fake_scores, penalty),
            "wasserstein": (real_scores.mean() - fake_scores.mean()).detach(),
            "gradient_penalty": penalty.detach(),
        }

    def generator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """-mean D(G(z)) over a batch of fresh latents."""
        fake, _ = self.fakes(self.config.batch_size, draws)
        return {"generator_loss": self.losses.generator(self.gan.discriminator(fake))}


@register_trainer
class KEDMITrainer(PriorTrainer):
    """KEDMI's inversion-specific GAN (Knowledge-Enriched-DMI ``k+1_gan.py``).

    Discriminator: soft cross-entropy to the target's softmax on a labelled public batch +
    0.5 x the unlabelled real/fake loss (logsumexp of the class logits) on a second public
    batch and the fakes. Generator: L1 distance of the batch-mean discriminator features of
    the fakes and of a third public batch + 1e-4 x the entropy of the fakes' class logits.
    """

    kind = "kedmi"
    streams = 3
    needs_target = True
    terms = ("labelled_loss", "unlabelled_loss", "accuracy", "feature_matching", "entropy")
    source = "Knowledge-Enriched-DMI k+1_gan.py, config/celeba.json"

    @classmethod
    def training_data(
        cls, public: Dataset, logits: Tensor | None, config: GANTrainConfig
    ) -> Dataset:
        """Every public image, labelled with the target's logits on it (its soft labels)."""
        return soft_labelled(public, _given(logits, cls.kind))

    def discriminator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """Soft labels on stream 0, the unlabelled loss on stream 1 and the fakes."""
        (labelled, target_logits), (unlabelled, _) = batches[0], batches[1]
        with torch.no_grad():
            fake, _ = self.fakes(len(labelled), draws)
        network = self.gan.discriminator
        _, labelled_out = network(labelled)
        _, unlabelled_out = network(unlabelled)
        _, fake_out = network(fake)
        total = self.losses.discriminator(labelled_out, target_logits, unlabelled_out, fake_out)
        agree = labelled_out.argmax(dim=1) == target_logits.argmax(dim=1)
        return {
            "discriminator_loss": total,
            "labelled_loss": soft_cross_entropy(labelled_out, target_logits).detach(),
            "unlabelled_loss": unlabelled_loss(unlabelled_out, fake_out).detach(),
            "accuracy": agree.float().mean(),
        }

    def generator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """Feature matching against stream 2 plus the entropy term."""
        network = self.gan.discriminator
        fake, _ = self.fakes(self.config.batch_size, draws)
        fake_features, fake_logits = network(fake)
        with torch.no_grad():
            public_features, _ = network(batches[2][0])
        total = self.losses.generator(fake_features, public_features, fake_logits)
        matching = (fake_features.mean(dim=0) - public_features.mean(dim=0)).abs().mean()
        return {
            "generator_loss": total,
            "feature_matching": matching.detach(),
            "entropy": entropy(fake_logits).detach(),
        }


@register_trainer
class PLGMITrainer(PriorTrainer):
    """PLG-MI's pseudo-label-guided conditional GAN (PLG-MI-Attack ``train_cgan.py``).

    Real images are the top-n public images of each target class, labelled by it. The
    generator update (first of each group of 5) minimises the hinge loss -mean D(G(z, y), y)
    + 0.2 x mean max-margin(T(aug(G(z, y))), y) with y drawn uniformly; the discriminator's
    hinge loss compares the pseudo-labelled real images with fakes of random classes.
    """

    kind = "plgmi"
    generator_first = True
    betas = (0.0, 0.9)
    needs_target = True
    terms = ("adversarial_loss", "inversion_loss", "target_accuracy")
    source = "PLG-MI-Attack train_cgan.py, top_n_selection.py"

    @classmethod
    def training_data(
        cls, public: Dataset, logits: Tensor | None, config: GANTrainConfig
    ) -> Dataset:
        """The top-n public images of each class by the target's softmax, labelled by it."""
        return pseudo_labelled(public, _given(logits, cls.kind), config.top_n)

    def discriminator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """Hinge loss on dequantised pseudo-labelled real images and fakes."""
        real, classes = batches[0]
        with torch.no_grad():
            fake, fake_classes = self.fakes(len(real), draws)
        real = real + DEQUANTISE * draws.uniform(*real.shape)
        network = self.gan.discriminator
        total = self.losses.discriminator(network(real, classes), network(fake, fake_classes))
        return {"discriminator_loss": total}

    def generator_loss(self, batches: Sequence[Batch], draws: Draws) -> dict[str, Tensor]:
        """Hinge loss plus the weighted max-margin loss of the target on augmented fakes."""
        fake, classes = self.fakes(self.config.batch_size, draws)
        adversarial = self.losses.generator(self.gan.discriminator(fake, classes))
        uniforms = draws.uniform(len(fake), UNIFORMS_PER_IMAGE)
        logits = logits_of(self.target(augment(fake, uniforms)))
        inversion = max_margin(logits, classes).mean()
        return {
            "generator_loss": adversarial + self.config.inversion_weight * inversion,
            "adversarial_loss": adversarial.detach(),
            "inversion_loss": inversion.detach(),
            "target_accuracy": (logits.argmax(dim=1) == classes).float().mean(),
        }
