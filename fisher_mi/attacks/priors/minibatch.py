"""KEDMI's inversion-specific discriminator: convolutions, minibatch discrimination, a class head.

Names and shapes follow ``MinibatchDiscriminator`` and ``MinibatchDiscrimination`` in
Knowledge-Enriched-DMI's ``discri.py`` (64 px; the published ``improved_celeba_D.tar``) and
``MinibatchDiscriminator_MNIST`` in TL-DMI's ``models/discri.py`` (32 px: the same layers,
the minibatch layer sized for the 2 x 2 map).

The class head has ``num_classes`` outputs, as the reference has it (1000 for CelebA, the
target's classes): there is no explicit "fake" output. Following Salimans et al. (2016), the
(K+1)-th logit is fixed at 0, so D(x) = Z / (Z + 1) with Z = sum_k exp(l_k): the real/fake
decision is read through logsumexp of the class logits (see ``losses.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fisher_mi.attacks.priors.base import GANArchitecture, has_tensor
from fisher_mi.attacks.priors.dcgan import conv_norm_lrelu

KERNELS = 64  # B: minibatch-discrimination kernels (the reference's out_features)
KERNEL_DIM = 50  # C: the length of each kernel's projection
REDUCTION = 16  # four stride-2 stages: the last map's side is image_size / 16


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al., 2016): features plus closeness to the batch.

    With T of shape A x B x C, each sample's features x_i (A) project to M_i = x_i T (B x C);
    kernel b's closeness of sample i to the others is
    o_b(x_i) = sum_{j != i} exp(-||M_{i,b} - M_{j,b}||_1), and the output is [x_i, o(x_i)]
    (A + B features). It is a function of the whole batch, as in the reference (its
    ``mean=False`` default: the sum, not the mean, over the others).
    """

    def __init__(self, in_features: int, kernels: int = KERNELS, kernel_dim: int = KERNEL_DIM):
        super().__init__()
        self.T = nn.Parameter(torch.empty(in_features, kernels, kernel_dim))
        nn.init.normal_(self.T, 0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """N x A features -> N x (A + B): the features and each kernel's closeness.

        The pairwise L1 distances come from ``torch.cdist`` per kernel (B x N x N), not from
        an N x N x B x C difference tensor: the same numbers, C times less memory.
        """
        _, kernels, kernel_dim = self.T.shape
        projected = (x @ self.T.flatten(1)).view(-1, kernels, kernel_dim).transpose(0, 1)
        distances = torch.cdist(projected, projected, p=1)  # B x N x N
        closeness = torch.exp(-distances).sum(dim=2) - 1.0  # drop exp(0) of the sample itself
        return torch.cat([x, closeness.t()], dim=1)


class MinibatchDiscriminator(nn.Module):
    """KEDMI's discriminator: ``(features, logits)`` for a batch of images.

    Four InstanceNorm blocks (5x5 stride 2 to width, 2 width, 4 width, then 3x3 stride 2 at
    4 width) take S to S / 16; the flattened map (A = 4 width (S/16)^2 features: 4096 at
    64 px and width 64) passes minibatch discrimination (A + 64) and ``fc_layer`` to
    ``num_classes`` logits.
    """

    def __init__(self, *, channels: int, image_size: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.layer1 = conv_norm_lrelu(channels, width)
        self.layer2 = conv_norm_lrelu(width, width * 2)
        self.layer3 = conv_norm_lrelu(width * 2, width * 4)
        self.layer4 = conv_norm_lrelu(width * 4, width * 4, kernel=3, stride=2, padding=1)
        features = width * 4 * (image_size // REDUCTION) ** 2
        self.mbd1 = MinibatchDiscrimination(features)
        self.fc_layer = nn.Linear(features + KERNELS, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The reference's ``(features, logits)``.

        Args:
            x: N x C x S x S images.

        Returns:
            The N x A features before minibatch discrimination (what KEDMI's generator
            matches in batch mean) and the N x num_classes class logits.
        """
        hidden = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = hidden.flatten(1)
        return features, self.fc_layer(self.mbd1(features))

    @classmethod
    def from_architecture(cls, architecture: GANArchitecture) -> MinibatchDiscriminator:
        """The discriminator of ``architecture`` (its discriminator width and classes)."""
        return cls(
            channels=architecture.channels,
            image_size=architecture.image_size,
            width=architecture.discriminator_width,
            num_classes=architecture.num_classes,
        )

    @staticmethod
    def sizes_from_state(state: Mapping[str, Tensor]) -> dict[str, int]:
        """Sizes fixed by a state dict: ``layer1.0.weight`` (width x C x 5 x 5), the classes
        from ``fc_layer.weight`` (K x (A + 64)) and the side from ``mbd1.T``
        (A x 64 x 50, A = 4 width (S/16)^2)."""
        sizes = {}
        if has_tensor(state, "layer1.0.weight", 4):
            width, channels = (int(size) for size in state["layer1.0.weight"].shape[:2])
            sizes.update(discriminator_width=width, channels=channels)
            if has_tensor(state, "mbd1.T", 3):
                cells = int(state["mbd1.T"].shape[0]) // (4 * width)
                sizes["image_size"] = REDUCTION * round(cells**0.5)
        if has_tensor(state, "fc_layer.weight", 2):
            sizes["num_classes"] = int(state["fc_layer.weight"].shape[0])
        return sizes
