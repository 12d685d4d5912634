"""Small CNNs for the bundled data, laid out like the model-inversion literature's models.

All follow the literature's convention: ``forward`` returns ``(features, logits)``, with a
``feature`` extractor and a ``fc_layer`` classifier, so the layer names match the ones that
the MI papers and their checkpoints use.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fisher_mi.models.registry import register_architecture


class _LeakyCNN(nn.Module):
    """GMI's MNIST CNNs: a ``feature`` stack of conv-BN-LeakyReLU(0.2) blocks, some followed
    by a 2x2 max-pool, flattened into ``fc_layer``.

    A layout row ``(out_channels, kernel, padding, pool)`` is one block; the conv has stride 1.
    The layouts take 32x32 input to a 1x1 map, so the features are the last block's channels.
    """

    def __init__(
        self, layout: tuple[tuple[int, int, int, bool], ...], num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, 32, 32)
        self.feat_dim = layout[-1][0]
        blocks: list[nn.Module] = []
        fan_in = in_channels
        for fan_out, kernel, padding, pool in layout:
            blocks += [
                nn.Conv2d(fan_in, fan_out, kernel, stride=1, padding=padding),
                nn.BatchNorm2d(fan_out),
                nn.LeakyReLU(0.2),
            ]
            blocks += [nn.MaxPool2d(2, 2)] if pool else []
            fan_in = fan_out
        self.feature = nn.Sequential(*blocks)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)`` of the MI literature's targets.

        Args:
            x: N x in_channels x 32 x 32 images in [0, 1].

        Returns:
            The N x feat_dim features (the last block's 1 x 1 map, flattened) and the
            N x num_classes raw logits.
        """
        features = torch.flatten(self.feature(x), 1)
        return features, self.fc_layer(features)


@register_architecture(
    "mcnn",
    kwargs_from_state={
        "num_classes": ("fc_layer.weight", 0),
        "in_channels": ("feature.0.weight", 1),
    },
    description="GMI/KEDMI MNIST target: 3 conv blocks, 1x32x32 input, 256-d features",
    hidden_layers=("feature.3", "feature.7", "feature.10"),
)
class MCNN(_LeakyCNN):
    """The GMI/KEDMI MNIST target (``MCNN``): three conv-BN-LeakyReLU blocks on 32x32 input.

    32 -> conv7 (pad 1) 28 -> pool 14 -> conv5 10 -> pool 5 -> conv5 1, so the features are
    the 256 channels of a 1x1 map.
    """

    LAYOUT = ((64, 7, 1, True), (128, 5, 0, True), (256, 5, 0, False))

    def __init__(self, num_classes: int = 5, in_channels: int = 1) -> None:
        super().__init__(self.LAYOUT, num_classes, in_channels)


@register_architecture(
    "scnn",
    kwargs_from_state={
        "num_classes": ("fc_layer.weight", 0),
        "in_channels": ("feature.0.weight", 1),
    },
    description="GMI MNIST evaluator: 5 conv blocks, 1x32x32 input, 512-d features",
    hidden_layers=("feature.3", "feature.7", "feature.10", "feature.13", "feature.16"),
)
class SCNN(_LeakyCNN):
    """The GMI MNIST evaluation classifier (``SCNN`` in ``AI-secure/GMI-Attack``
    ``MNIST/classify.py``, the ``E`` of its ``MNIST/attack.py``), another architecture than the
    ``mcnn`` target, as the evaluation protocol asks.

    32 -> conv7 (pad 1) 28 -> pool 14 -> conv5 10 -> pool 5 -> conv5 1 -> conv3 (pad 1) 1 ->
    conv3 (pad 1) 1, with 32, 64, 128, 256, 512 channels: keys ``feature.0`` / ``.1`` (conv,
    BN), ``feature.4`` / ``.5``, ``feature.8`` / ``.9``, ``feature.11`` / ``.12``,
    ``feature.14`` / ``.15`` and ``fc_layer`` = Linear(512, num_classes), as the original, so
    its weights load. The original's ``forward`` returns ``[logits]`` only; this one returns
    ``(features, logits)`` (the 512 channels of the 1x1 map), which the KNN distance needs.
    """

    LAYOUT = (
        (32, 7, 1, True),
        (64, 5, 0, True),
        (128, 5, 0, False),
        (256, 3, 1, False),
        (512, 3, 1, False),
    )

    def __init__(self, num_classes: int = 5, in_channels: int = 1) -> None:
        super().__init__(self.LAYOUT, num_classes, in_channels)


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
    hidden_layers=("feature.3", "feature.7", "feature.11", "feature.15", "bn"),
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
