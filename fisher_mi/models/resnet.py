"""ResNet-18 at 64x64, wrapped as the LOMMA / TL-DMI code wraps it (``ResNet18``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fisher_mi.models.registry import register_architecture
from fisher_mi.models.weight_init import torchvision_init


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: conv3x3(stride)-BN-ReLU-conv3x3-BN plus the input, ReLU.

    ``downsample`` (strided conv1x1 + BN, keys ``downsample.0`` / ``downsample.1``) projects the
    input when the stride or width changes; otherwise it is absent, as in torchvision.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)): N x out x H/stride x W/stride.

        Args:
            x: N x in x H x W feature maps.
        """
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    first = BasicBlock(in_channels, out_channels, stride)
    rest = [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(first, *rest)


def resnet18_trunk(in_channels: int = 3) -> nn.Sequential:
    """torchvision ``resnet18`` without ``avgpool`` and ``fc``, as one ``Sequential``
    (``list(resnet18().children())[:-2]``): ``0`` conv7x7/2, ``1`` BN, ``2`` ReLU,
    ``3`` max-pool 3x3/2, ``4``-``7`` the four stages of two blocks (64, 128, 256, 512 wide).
    ``in_channels`` is conv1's input width (torchvision's is 3); nothing else depends on it.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        _stage(64, 64, 2, stride=1),
        _stage(64, 128, 2, stride=2),
        _stage(128, 256, 2, stride=2),
        _stage(256, 512, 2, stride=2),
    )


@register_architecture(
    "resnet18",
    kwargs_from_state={
        "num_classes": ("fc_layer.weight", 0),
        "in_channels": ("feature.0.weight", 1),
    },
    description="LOMMA/TL-DMI ResNet-18 target: torchvision trunk as feature, 3x64x64, 2048-d",
    hidden_layers=("feature.4", "feature.5", "feature.6", "feature.7"),
)
class ResNet18(nn.Module):
    """ResNet-18 on 64x64 faces, as ``ResNet18`` in ``hosytuyen/TL-DMI``
    ``models/classify.py`` (identical in ``sutd-visual-computing-group/Re-thinking_MI``
    ``models/classify.py``).

    ``feature`` = torchvision ``resnet18`` children minus ``avgpool`` and ``fc`` (keys
    ``feature.0.weight`` for conv1, ``feature.1.*`` for bn1, ``feature.4.0.conv1.weight`` for
    ``layer1.0.conv1``, ..., ``feature.7.*`` for ``layer4``); there is no global pooling, so at
    64x64 the 512x2x2 map is flattened to 2048 features (the original's ``feat_dim = 2048``) for
    ``fc_layer`` = Linear(2048, num_classes). ``forward`` returns ``(features, logits)`` as the
    original does. ``in_channels`` (default 3, the original's) sets conv1's input width only,
    so a 1-channel evaluator at 64 px (grey faces, digits) has the same keys and every other
    shape; the default model's state dict is the original's.

    TL-DMI's ``models/resnet.py`` has a second ResNet (``_resnetR``, "Resnet-R" in its
    configs, by default a plain [1, 1, 1, 1] net) with torchvision's top-level names
    (``conv1``, ``layer1``, ..., an unused ``fc`` and a 2048-input ``fc_layer``); its
    checkpoints are not this architecture.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.input_shape = (in_channels, 64, 64)
        self.feat_dim = 512 * 2 * 2
        self.feature = resnet18_trunk(in_channels)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)
        torchvision_init(self.feature)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)``, as the LOMMA / TL-DMI original returns.

        Args:
            x: N x in_channels x 64 x 64 images in [0, 1].

        Returns:
            The N x 2048 flattened trunk maps (512 x 2 x 2, no pooling) and the
            N x num_classes raw logits.
        """
        features = torch.flatten(self.feature(x), 1)
        return features, self.fc_layer(features)
