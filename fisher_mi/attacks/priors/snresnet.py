"""PLG-MI's networks: the conditional ResNet generator and the SN projection discriminator.

Names and shapes follow PLG-MI-Attack's ``models/generators/resnet64.py`` (``ResNetGenerator``)
with ``models/generators/resblocks.py`` (``Block``) and ``links/conditional_batchnorm.py``
(``CategoricalConditionalBatchNorm2d``), and ``models/discriminators/snresnet64.py``
(``SNResNetProjectionDiscriminator``) with ``models/discriminators/resblocks.py`` (``Block``,
``OptimizedBlock``), at 64 px. The 32 px variant for digits is ours (the reference has none):
one up block and one down block fewer, the same names otherwise.

Spectral norm: ``torch.nn.utils.parametrizations.spectral_norm``, whose state dict names a
layer's tensors ``parametrizations.weight.original``, ``parametrizations.weight.0._u`` and
``parametrizations.weight.0._v``. The published files were written by the old hook-based
``torch.nn.utils.spectral_norm`` (``weight_orig``, ``weight_u``, ``weight_v``: the same three
tensors, the same meaning; in eval mode both divide by sigma = u . (W v) with the stored u
and v, without a power iteration), so ``from_old_spectral_norm`` renames them on load. The
newer one is chosen because the old one is slated for deprecation and, in torch 2.13, a
module using it cannot be deep-copied after a forward pass ("Only Tensors created explicitly
by the user ... support the deepcopy protocol"), which training loops (best-epoch copies,
EMA) need; the parametrization copies and works with ``torch.func``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from fisher_mi.attacks.priors.base import GANArchitecture, has_tensor
from fisher_mi.attacks.priors.dcgan import BOTTOM, doublings

OLD_SPECTRAL_NORM = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}
"""Old ``spectral_norm`` tensor name -> the parametrization's name for the same tensor."""
DOWN_TO = 2  # the discriminator's last map is 2 x 2 (64 px: five halvings; 32 px: four)


def from_old_spectral_norm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with the old spectral-norm names (``c1.weight_orig``...) renamed to the
    parametrization's (``c1.parametrizations.weight.original``...); other keys as they are."""
    return {_new_name(key): value for key, value in state.items()}


def to_old_spectral_norm(shapes: Mapping[str, torch.Size]) -> dict[str, torch.Size]:
    """The inverse renaming, to describe a file in the names it uses."""
    return {_old_name(key): value for key, value in shapes.items()}


def uses_old_spectral_norm(state: Mapping[str, Tensor]) -> bool:
    """Whether ``state`` names its spectral-norm tensors the old way."""
    return any(_new_name(key) != key for key in state)


def _new_name(key: str) -> str:
    prefix, _, last = key.rpartition(".")
    return f"{prefix}.{OLD_SPECTRAL_NORM[last]}" if prefix and last in OLD_SPECTRAL_NORM else key


def _old_name(key: str) -> str:
    for old, new in OLD_SPECTRAL_NORM.items():
        if key.endswith(f".{new}"):
            return f"{key[: -len(new)]}{old}"
    return key


def _upsample(x: Tensor) -> Tensor:
    """Bilinear 2x upsampling (``align_corners=False``), as the reference's ``_upsample``."""
    return F.interpolate(x, size=(x.shape[2] * 2, x.shape[3] * 2), mode="bilinear")


class CategoricalConditionalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d without its own affine, scaled and shifted by the sample's class.

    y = gamma[c] * BN(x) + beta[c], with gamma (``weights``, ones at start) and beta
    (``biases``, zeros) embeddings of the class c; running statistics as BatchNorm2d's.
    """

    def __init__(self, num_classes: int, num_features: int) -> None:
        super().__init__(num_features, affine=False)
        self.weights = nn.Embedding(num_classes, num_features)
        self.biases = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.weights.weight)
        nn.init.zeros_(self.biases.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        """N x F x H x W maps normalised, then scaled and shifted per sample by its class."""
        normalised = super().forward(x)
        scale = self.weights(labels)[:, :, None, None]
        return scale * normalised + self.biases(labels)[:, :, None, None]


class UpBlock(nn.Module):
    """The generator's residual block (``Block`` with ``upsample=True``): doubles the side.

    residual: CBN(b1) -> ReLU -> upsample -> 3x3 conv (c1) -> CBN(b2) -> ReLU -> 3x3 (c2);
    shortcut: upsample -> 1x1 conv (c_sc).
    """

    def __init__(self, fan_in: int, fan_out: int, num_classes: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(fan_in, fan_out, 3, 1, 1)
        self.c2 = nn.Conv2d(fan_out, fan_out, 3, 1, 1)
        self.b1 = CategoricalConditionalBatchNorm2d(num_classes, fan_in)
        self.b2 = CategoricalConditionalBatchNorm2d(num_classes, fan_out)
        self.c_sc = nn.Conv2d(fan_in, fan_out, 1)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """N x fan_in x H x W -> N x fan_out x 2H x 2W."""
        hidden = self.c1(_upsample(F.relu(self.b1(x, labels))))
        hidden = self.c2(F.relu(self.b2(hidden, labels)))
        return self.c_sc(_upsample(x)) + hidden


def _block_count(state: Mapping[str, Tensor], key: str, first: int) -> int:
    """How many consecutive ``block<i>`` (from ``first``) hold ``block<i>.<key>``."""
    count = 0
    while f"block{first + count}.{key}" in state:
        count += 1
    return count


class ResNetGenerator(nn.Module):
    """PLG-MI's conditional generator: (z, labels) -> C x S x S images in [-1, 1] (tanh).

    z (128) -> Linear to ``top`` x 4 x 4, then ``k = log2(S / 4)`` up blocks ``block2``..
    halving the channels from ``top = width * 2^k`` to ``width``, then BatchNorm (b6), ReLU, a
    1x1 convolution to C (conv6) and tanh. At width 64 and 64 px: 1024 -> 512 -> 256 -> 128
    -> 64 (the reference); at 32 px: 512 -> 256 -> 128 -> 64.
    """

    def __init__(
        self, *, channels: int, image_size: int, width: int, latent_dim: int, num_classes: int
    ) -> None:
        super().__init__()
        stages = doublings(image_size)
        top = width * 2**stages
        self.l1 = nn.Linear(latent_dim, top * BOTTOM * BOTTOM)
        self.block_names = tuple(f"block{index + 2}" for index in range(stages))
        for index, name in enumerate(self.block_names):
            self.add_module(name, UpBlock(top >> index, top >> (index + 1), num_classes))
        self.b6 = nn.BatchNorm2d(width)
        self.conv6 = nn.Conv2d(width, channels, 1, 1)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        """Images for latents and their classes.

        Args:
            z: N x latent_dim.
            labels: N long class indices.

        Returns:
            N x C x S x S images in [-1, 1] (the raw output; ``GAN.generate`` clamps it).
        """
        hidden = self.l1(z).view(z.shape[0], -1, BOTTOM, BOTTOM)
        for name in self.block_names:
            hidden = getattr(self, name)(hidden, labels)
        return torch.tanh(self.conv6(F.relu(self.b6(hidden))))

    @classmethod
    def from_architecture(cls, architecture: GANArchitecture) -> ResNetGenerator:
        """The generator of ``architecture`` (its generator width and classes)."""
        return cls(
            channels=architecture.channels,
            image_size=architecture.image_size,
            width=architecture.generator_width,
            latent_dim=architecture.latent_dim,
            num_classes=architecture.num_classes,
        )

    @staticmethod
    def sizes_from_state(state: Mapping[str, Tensor]) -> dict[str, int]:
        """Sizes fixed by a state dict: latent from ``l1.weight`` (top*16 x latent), width
        and channels from ``conv6.weight`` (C x width x 1 x 1), the side from the number of
        up blocks, the classes from ``block2.b1.weights.weight`` (K x top)."""
        sizes = {}
        if has_tensor(state, "l1.weight", 2):
            sizes["latent_dim"] = int(state["l1.weight"].shape[1])
        if has_tensor(state, "conv6.weight", 4):
            channels, width = (int(size) for size in state["conv6.weight"].shape[:2])
            sizes.update(generator_width=width, channels=channels)
        blocks = _block_count(state, "c1.weight", first=2)
        if blocks:
            sizes["image_size"] = BOTTOM * 2**blocks
        if has_tensor(state, "block2.b1.weights.weight", 2):
            sizes["num_classes"] = int(state["block2.b1.weights.weight"].shape[0])
        return sizes


def _sn(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """``layer`` with Xavier-uniform weights (the reference's ``_initialize`` gains), then
    spectral norm (so its u and v start from the initialised weight)."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    return spectral_norm(layer)


def _sn_conv(fan_in: int, fan_out: int, kernel: int, gain: float) -> nn.Module:
    return _sn(nn.Conv2d(fan_in, fan_out, kernel, 1, kernel // 2), gain)


RESIDUAL_GAIN = math.sqrt(2)  # the reference's Xavier gain of c1 and c2 (shortcuts: 1)


class DownBlock(nn.Module):
    """The discriminator's residual block (``Block`` with ``downsample=True``): halves the side.

    residual: ReLU -> 3x3 SN conv (c1, fan_in) -> ReLU -> 3x3 SN conv (c2) -> avg-pool 2;
    shortcut: 1x1 SN conv (c_sc) -> avg-pool 2.
    """

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.c1 = _sn_conv(fan_in, fan_in, 3, RESIDUAL_GAIN)
        self.c2 = _sn_conv(fan_in, fan_out, 3, RESIDUAL_GAIN)
        self.c_sc = _sn_conv(fan_in, fan_out, 1, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """N x fan_in x H x W -> N x fan_out x H/2 x W/2."""
        hidden = self.c2(F.relu(self.c1(F.relu(x))))
        return F.avg_pool2d(self.c_sc(x), 2) + F.avg_pool2d(hidden, 2)


class OptimizedBlock(nn.Module):
    """The discriminator's first block (``OptimizedBlock``): no ReLU on the input image.

    residual: 3x3 SN conv (c1) -> ReLU -> 3x3 SN conv (c2) -> avg-pool 2;
    shortcut: avg-pool 2 -> 1x1 SN conv (c_sc).
    """

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.c1 = _sn_conv(fan_in, fan_out, 3, RESIDUAL_GAIN)
        self.c2 = _sn_conv(fan_out, fan_out, 3, RESIDUAL_GAIN)
        self.c_sc = _sn_conv(fan_in, fan_out, 1, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """N x C x H x W -> N x fan_out x H/2 x W/2."""
        hidden = self.c2(F.relu(self.c1(x)))
        return self.c_sc(F.avg_pool2d(x, 2)) + F.avg_pool2d(hidden, 2)


class SNResNetProjectionDiscriminator(nn.Module):
    """PLG-MI's spectral-norm ResNet discriminator with a class projection.

    ``block1`` (optimized) to width, then down blocks doubling the channels to ``top``
    (64 px: block2..block5, 16 width; 32 px: block2..block4, 8 width) until the map is 2 x 2;
    ReLU, sum over the map (h, N x top), and score = l6(h) + <l_y(y), h> (the projection).
    The reference returns N x 1; this returns one score per image, shape (N,), like the
    WGAN critic, so that losses read alike.
    """

    def __init__(self, *, channels: int, image_size: int, width: int, num_classes: int) -> None:
        super().__init__()
        blocks = doublings(image_size, start=DOWN_TO)
        self.block1 = OptimizedBlock(channels, width)
        self.block_names = tuple(f"block{index}" for index in range(1, blocks + 1))
        for index in range(2, blocks + 1):
            self.add_module(
                f"block{index}", DownBlock(width * 2 ** (index - 2), width * 2 ** (index - 1))
            )
        top = width * 2 ** (blocks - 1)
        self.l6 = _sn(nn.Linear(top, 1))
        self.l_y = _sn(nn.Embedding(num_classes, top))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Scores of images, projected on their classes when ``labels`` are given.

        Args:
            x: N x C x S x S images (the generator's raw output, or real images).
            labels: N long class indices, or None for the unconditional score l6(h).

        Returns:
            The N scores.
        """
        hidden = x
        for name in self.block_names:
            hidden = getattr(self, name)(hidden)
        pooled = F.relu(hidden).sum(dim=(2, 3))
        score = self.l6(pooled).squeeze(1)
        if labels is None:
            return score
        return score + (self.l_y(labels) * pooled).sum(dim=1)

    @classmethod
    def from_architecture(cls, architecture: GANArchitecture) -> SNResNetProjectionDiscriminator:
        """The discriminator of ``architecture`` (its discriminator width and classes)."""
        return cls(
            channels=architecture.channels,
            image_size=architecture.image_size,
            width=architecture.discriminator_width,
            num_classes=architecture.num_classes,
        )

    @staticmethod
    def sizes_from_state(state: Mapping[str, Tensor]) -> dict[str, int]:
        """Sizes fixed by a state dict (new spectral-norm names): width and channels from
        block1's c1 (width x C x 3 x 3), the side from the number of blocks (2 * 2^blocks),
        the classes from ``l_y`` (K x top)."""
        sizes = {}
        first = "block1.c1.parametrizations.weight.original"
        if has_tensor(state, first, 4):
            width, channels = (int(size) for size in state[first].shape[:2])
            sizes.update(discriminator_width=width, channels=channels)
        blocks = _block_count(state, "c1.parametrizations.weight.original", first=1)
        if blocks:
            sizes["image_size"] = DOWN_TO * 2**blocks
        embedding = "l_y.parametrizations.weight.original"
        if has_tensor(state, embedding, 2):
            sizes["num_classes"] = int(state[embedding].shape[0])
        return sizes
