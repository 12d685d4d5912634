"""GMI's networks: the DCGAN generator (shared with KEDMI) and the WGAN-GP critics.

Parameter names and shapes follow the reference code so that the published checkpoints
(``celeba_G.tar``, ``celeba_D.tar``, ``improved_celeba_G.tar``) load strictly:

- generator: ``Generator`` (64 px) and ``GeneratorMNIST`` (32 px) in GMI-Attack's
  ``Celeba/generator.py`` and ``MNIST/generator.py`` (the same classes in
  Knowledge-Enriched-DMI's ``generator.py``); one class here, the number of stages set by
  the image size;
- critics: ``DGWGAN`` (64 px, its layers in one ``ls`` Sequential) and ``DGWGAN32`` (32 px,
  ``layer1`` to ``layer4``) in GMI-Attack's ``Celeba/discri.py`` and ``MNIST/discri.py``; two
  classes here because the published names differ, their layers built by the same helpers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor, nn

from fisher_mi.attacks.priors.base import GANArchitecture, has_tensor

BOTTOM = 4  # the generator's first feature map is BOTTOM x BOTTOM
KERNEL = 5  # every strided (transposed) convolution is 5 x 5, stride 2, padding 2
LEAK = 0.2  # LeakyReLU slope of the critics and of KEDMI's discriminator


def doublings(image_size: int, start: int = BOTTOM) -> int:
    """How many stride-2 stages take a ``start``-pixel map to ``image_size`` pixels."""
    return round(math.log2(image_size / start))


def _up_block(fan_in: int, fan_out: int) -> nn.Sequential:
    """Transposed 5x5 stride-2 convolution (no bias), BatchNorm, ReLU: doubles the side."""
    return nn.Sequential(
        nn.ConvTranspose2d(fan_in, fan_out, KERNEL, 2, padding=2, output_padding=1, bias=False),
        nn.BatchNorm2d(fan_out),
        nn.ReLU(),
    )


class DCGANGenerator(nn.Module):
    """DCGAN generator of GMI and KEDMI: z -> C x S x S images in [0, 1] (sigmoid).

    z (``latent_dim``) -> Linear (no bias) to ``top`` x 4 x 4 + BatchNorm1d + ReLU, then
    ``k = log2(S / 4)`` transposed 5x5 stride-2 convolutions, channels halving from
    ``top = width * 2^(k-1)`` down to ``width`` (BatchNorm + ReLU after each but the last),
    the last one to C channels with a bias, then Sigmoid. At the reference width 64: 64 px
    is 512x4x4 -> 256 -> 128 -> 64 -> C (``Generator``); 32 px is 256x4x4 -> 128 -> 64 -> C
    (``GeneratorMNIST``).
    """

    def __init__(self, *, channels: int, image_size: int, width: int, latent_dim: int) -> None:
        super().__init__()
        stages = doublings(image_size)
        top = width * 2 ** (stages - 1)
        self.l1 = nn.Sequential(
            nn.Linear(latent_dim, top * BOTTOM * BOTTOM, bias=False),
            nn.BatchNorm1d(top * BOTTOM * BOTTOM),
            nn.ReLU(),
        )
        blocks = [_up_block(width * 2**i, width * 2 ** (i - 1)) for i in range(stages - 1, 0, -1)]
        self.l2_5 = nn.Sequential(
            *blocks,
            nn.ConvTranspose2d(width, channels, KERNEL, 2, padding=2, output_padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Images for a batch of latents.

        Args:
            z: N x latent_dim.

        Returns:
            N x C x S x S images in [0, 1].
        """
        hidden = self.l1(z).view(z.shape[0], -1, BOTTOM, BOTTOM)
        return self.l2_5(hidden)

    @classmethod
    def from_architecture(cls, architecture: GANArchitecture) -> DCGANGenerator:
        """The generator of ``architecture`` (its generator width)."""
        return cls(
            channels=architecture.channels,
            image_size=architecture.image_size,
            width=architecture.generator_width,
            latent_dim=architecture.latent_dim,
        )

    @staticmethod
    def sizes_from_state(state: Mapping[str, Tensor]) -> dict[str, int]:
        """Sizes fixed by a state dict: latent from ``l1.0.weight`` (top*16 x latent); the
        last convolution ``l2_5.<k-1>.weight`` (width x C x 5 x 5, the only one not nested in
        a block) gives width, channels and, by its index, the image side 4 * 2^k."""
        sizes = {}
        if has_tensor(state, "l1.0.weight", 2):
            sizes["latent_dim"] = int(state["l1.0.weight"].shape[1])
        last = [int(key.split(".")[1]) for key in state if _is_last_deconv(key, state)]
        if len(last) == 1:
            width, channels = state[f"l2_5.{last[0]}.weight"].shape[:2]
            sizes.update(
                generator_width=int(width),
                channels=int(channels),
                image_size=BOTTOM * 2 ** (last[0] + 1),
            )
        return sizes


def _is_last_deconv(key: str, state: Mapping[str, Tensor]) -> bool:
    parts = key.split(".")
    return (
        len(parts) == 3
        and parts[0] == "l2_5"
        and parts[1].isdigit()
        and parts[2] == "weight"
        and state[key].dim() == 4
    )


def conv_norm_lrelu(
    fan_in: int, fan_out: int, kernel: int = KERNEL, stride: int = 2, padding: int = 2
) -> nn.Sequential:
    """Convolution, InstanceNorm2d(affine=True), LeakyReLU(0.2).

    The reference code's ``conv_ln_lrelu``: InstanceNorm stands in for the LayerNorm of
    WGAN-GP critics (a critic must not normalise across the batch).
    """
    return nn.Sequential(
        nn.Conv2d(fan_in, fan_out, kernel, stride, padding),
        nn.InstanceNorm2d(fan_out, affine=True),
        nn.LeakyReLU(LEAK),
    )


def _critic_parts(
    channels: int, width: int, blocks: int
) -> tuple[list[nn.Module], list[nn.Module], nn.Module]:
    """Stem (5x5 stride-2 convolution + LeakyReLU, no norm), ``blocks`` normalised stride-2
    blocks doubling the channels, and the head: a 4x4 convolution of the 4x4 map to 1."""
    stem = [nn.Conv2d(channels, width, KERNEL, 2, 2), nn.LeakyReLU(LEAK)]
    middle = [conv_norm_lrelu(width * 2**i, width * 2 ** (i + 1)) for i in range(blocks)]
    return stem, middle, nn.Conv2d(width * 2**blocks, 1, BOTTOM)


class WGANCritic64(nn.Module):
    """GMI's WGAN-GP critic for 64 px (``DGWGAN``): one score per image, no sigmoid.

    64 -> 32 (stem) -> 16 -> 8 -> 4 (three InstanceNorm blocks, width x 2, 4, 8) -> 1x1.
    """

    def __init__(self, *, channels: int, width: int) -> None:
        super().__init__()
        stem, middle, head = _critic_parts(channels, width, blocks=3)
        self.ls = nn.Sequential(*stem, *middle, head)

    def forward(self, x: Tensor) -> Tensor:
        """Scores of a batch of N x C x 64 x 64 images, shape (N,)."""
        return self.ls(x).view(-1)


class WGANCritic32(nn.Module):
    """GMI's WGAN-GP critic for 32 px (``DGWGAN32``): one score per image, no sigmoid.

    32 -> 16 (``layer1``) -> 8 -> 4 (``layer2``, ``layer3``: width x 2, 4) -> 1x1
    (``layer4``).
    """

    def __init__(self, *, channels: int, width: int) -> None:
        super().__init__()
        stem, middle, head = _critic_parts(channels, width, blocks=2)
        self.layer1 = nn.Sequential(*stem)
        self.layer2, self.layer3 = middle
        self.layer4 = head

    def forward(self, x: Tensor) -> Tensor:
        """Scores of a batch of N x C x 32 x 32 images, shape (N,)."""
        hidden = self.layer3(self.layer2(self.layer1(x)))
        return self.layer4(hidden).view(-1)


CRITICS = {64: WGANCritic64, 32: WGANCritic32}
STEM_KEYS = {"ls.0.weight": 64, "layer1.0.weight": 32}  # first convolution -> image side


def build_critic(architecture: GANArchitecture) -> nn.Module:
    """The WGAN-GP critic for ``architecture``'s image side (its discriminator width)."""
    critic = CRITICS[architecture.image_size]
    return critic(channels=architecture.channels, width=architecture.discriminator_width)


def critic_sizes(state: Mapping[str, Tensor]) -> dict[str, int]:
    """Sizes fixed by a critic's state dict: the layout (``ls`` or ``layer1``..) gives the
    image side, the first convolution (width x C x 5 x 5) width and channels."""
    for key, image_size in STEM_KEYS.items():
        if has_tensor(state, key, 4):
            width, channels = state[key].shape[:2]
            return {
                "discriminator_width": int(width),
                "channels": int(channels),
                "image_size": image_size,
            }
    return {}
