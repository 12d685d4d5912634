"""Small CNNs for the bundled data, laid out like the model-inversion literature's targets.

Both follow the literature's convention: ``forward`` returns ``(features, logits)``, with a
``feature`` extractor and a ``fc_layer`` classifier, so the layer names match the ones that
the MI papers and their checkpoints use.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fisher_mi.models.registry import register_architecture


@register_architecture(
    "mcnn",
    kwargs_from_state={
        "num_classes": ("fc_layer.weight", 0),
        "in_channels": ("feature.0.weight", 1),
    },
    description="GMI/KEDMI MNIST target: 3 conv blocks, 1x32x32 input, 256-d features",
)
class MCNN(nn.Module):
    """The GMI/KEDMI MNIST target (``MCNN``): three conv-BN-LeakyReLU blocks on 32x32 input.

    32 -> conv7 (pad 1) 28 -> pool 14 -> conv5 10 -> pool 5 -> conv5 1, so the features are
    the 256 channels of a 1x1 map.
    """

    def __init__(self, num_classes: int = 5, in_channels: int = 1) -> None:
        super().__init__()
        self.input_shape = (in_channels, 32, 32)
        self.feat_dim = 256
        self.feature = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=1, padding=1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 5, stride=1),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 256, 5, stride=1),
            nn.BatchNorm2d(256),
            nn.LeakyReLU(0.2),
        )
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)`` of the MI literature's targets.

        Args:
            x: N x in_channels x 32 x 32 images in [0, 1].

        Returns:
            The N x 256 features (the last block's 1 x 1 map, flattened) and the
            N x num_classes raw logits.
        """
        features = torch.flatten(self.feature(x), 1)
        return features, self.fc_layer(features)


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
    ]


@register_architecture(
    "vgg_small",
    kwargs_from_state={
        "num_classes": ("fc_layer.weight", 0),
        "in_channels": ("feature.0.weight", 1),
    },
    description="VGG-like CNN for 3x64x64 faces: the VGG16 target's layout at 1/50 the size",
)
class SmallVGG(nn.Module):
    """A VGG-like CNN for 64x64 input, shaped like the GMI VGG16 target.

    Four conv-BN-ReLU-pool stages (32, 64, 128, 256 channels) take 64x64 to 4x4; the flattened
    features pass a ``BatchNorm1d`` (``bn``) before ``fc_layer``, as in the VGG16 target.
    """

    def __init__(self, num_classes: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.input_shape = (in_channels, 64, 64)
        widths = (32, 64, 128, 256)
        blocks: list[nn.Module] = []
        for fan_in, fan_out in zip((in_channels, *widths[:-1]), widths, strict=True):
            blocks += _conv_block(fan_in, fan_out)
        self.feature = nn.Sequential(*blocks)
        self.feat_dim = widths[-1] * 4 * 4
        self.bn = nn.BatchNorm1d(self.feat_dim)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)``, as the VGG16 target it is shaped after.

        Args:
            x: N x in_channels x 64 x 64 images in [0, 1].

        Returns:
            The N x 4096 BatchNorm'd features (256 x 4 x 4, flattened) and the
            N x num_classes raw logits.
        """
        features = self.bn(torch.flatten(self.feature(x), 1))
        return features, self.fc_layer(features)
