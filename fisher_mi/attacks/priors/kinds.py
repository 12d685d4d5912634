"""The registered GAN prior kinds: each states its latent, conditioning, networks and losses."""

from __future__ import annotations

from fisher_mi.attacks.priors.base import NetworkSpec, PriorKind, register_prior
from fisher_mi.attacks.priors.dcgan import DCGANGenerator, build_critic, critic_sizes
from fisher_mi.attacks.priors.losses import HINGE, KEDMI, WGAN_GP
from fisher_mi.attacks.priors.minibatch import MinibatchDiscriminator
from fisher_mi.attacks.priors.snresnet import ResNetGenerator, SNResNetProjectionDiscriminator

DCGAN_GENERATOR = NetworkSpec(
    name="DCGAN generator (GMI's Generator / GeneratorMNIST)",
    build=DCGANGenerator.from_architecture,
    sizes=DCGANGenerator.sizes_from_state,
)


@register_prior
class GMIPrior(PriorKind):
    """GMI (Zhang et al., CVPR 2020, "The Secret Revealer"; AI-secure/GMI-Attack).

    Unconditional DCGAN generator (z in R^100, sigmoid output) trained against a WGAN-GP
    critic on public data; the critic scores one number per image.
    """

    name = "gmi"
    latent_dim = 100
    conditional = False
    generator = DCGAN_GENERATOR
    discriminator = NetworkSpec(
        name="WGAN-GP critic (GMI's DGWGAN / DGWGAN32)",
        build=build_critic,
        sizes=critic_sizes,
    )
    losses = WGAN_GP
    paper = "Zhang et al., The Secret Revealer (CVPR 2020)"


@register_prior
class KEDMIPrior(GMIPrior):
    """KEDMI (Chen et al., ICCV 2021, "Knowledge-Enriched Distributional Model Inversion";
    SCccc21/Knowledge-Enriched-DMI).

    GMI's generator, against an inversion-specific discriminator that also classifies public
    images into the target's classes (soft labels from the target) and returns
    ``(features, logits)``.
    """

    name = "kedmi"
    class_head = True
    discriminator = NetworkSpec(
        name="KEDMI's MinibatchDiscriminator",
        build=MinibatchDiscriminator.from_architecture,
        sizes=MinibatchDiscriminator.sizes_from_state,
    )
    losses = KEDMI
    paper = "Chen et al., Knowledge-Enriched Distributional Model Inversion (ICCV 2021)"


@register_prior
class PLGMIPrior(PriorKind):
    """PLG-MI (Yuan et al., AAAI 2023, "Pseudo Label-Guided Model Inversion";
    LetheSec/PLG-MI-Attack).

    Class-conditional ResNet generator (z in R^128, conditional BatchNorm, tanh output)
    trained with hinge losses against a spectral-norm projection discriminator on public
    images pseudo-labelled by the target.
    """

    name = "plgmi"
    latent_dim = 128
    conditional = True
    generator = NetworkSpec(
        name="PLG-MI's conditional ResNetGenerator",
        build=ResNetGenerator.from_architecture,
        sizes=ResNetGenerator.sizes_from_state,
    )
    discriminator = NetworkSpec(
        name="PLG-MI's SNResNetProjectionDiscriminator",
        build=SNResNetProjectionDiscriminator.from_architecture,
        sizes=SNResNetProjectionDiscriminator.sizes_from_state,
    )
    losses = HINGE
    paper = "Yuan et al., Pseudo Label-Guided Model Inversion (AAAI 2023)"
