"""VGG16-BN at 64x64: the GMI / KEDMI / LOMMA / TL-DMI CelebA target (``VGG16``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fisher_mi.models.registry import register_architecture
from fisher_mi.models.vib import VIBClassifier
from fisher_mi.models.weight_init import torchvision_init

# torchvision's configuration "D" (VGG16): output channels of each 3x3 conv, "M" a 2x2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def vgg_bn_features(config: tuple[int | str, ...], in_channels: int = 3) -> nn.Sequential:
    """torchvision's ``make_layers(cfg, batch_norm=True)``: conv3x3(+bias) -> BN -> ReLU per
    channel count, ``MaxPool2d(2, 2)`` per "M", flattened into one ``Sequential`` so the keys
    are torchvision's (``0`` the first conv, ``1`` its BatchNorm, ..., ``40`` the last conv).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            width = int(item)
            layers += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
    return nn.Sequential(*layers)


@register_architecture(
    "vgg16",
    kwargs_from_state={"num_classes": ("fc_layer.weight", 0)},
    description="GMI/KEDMI/LOMMA/TL-DMI CelebA target: VGG16-BN features, 3x64x64, 2048-d",
    hidden_layers=("feature.6", "feature.13", "feature.23", "feature.33", "bn"),
)
class VGG16(nn.Module):
    """VGG16 with batch norm on 64x64 faces, laid out as the MI literature's ``VGG16`` class.

    Matches ``VGG16`` in ``sunblaze-ucb/GMI-attack`` ``Celeba/classify.py`` (identical in
    ``SCccc21/Knowledge-Enriched-DMI`` ``classify.py``, ``sutd-visual-computing-group/
    Re-thinking_MI`` and ``hosytuyen/TL-DMI`` ``models/classify.py``): ``feature`` is
    torchvision's ``vgg16_bn().features`` (same indices, so ``feature.0.weight``,
    ``feature.1.running_mean``, ..., ``feature.41.*``), five max-pools take 64x64 to 2x2, the
    flattened 512x2x2 = 2048 features pass ``bn`` (``BatchNorm1d``) and then ``fc_layer``.
    As in the original, ``bn.bias`` is frozen ("no shift"); it is still a parameter, so it is
    saved, loaded and profiled like any other.

    ``forward`` returns ``(features, logits)`` (the BatchNorm'd 2048-d features and raw logits),
    as the original ``forward`` does; its ``predict`` (softmax) has no counterpart here.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.input_shape = (3, 64, 64)
        self.feat_dim = 512 * 2 * 2
        self.feature = vgg_bn_features(VGG16_CONFIG)
        self.bn = nn.BatchNorm1d(self.feat_dim)
        self.bn.bias.requires_grad_(False)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)
        torchvision_init(self.feature)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)``, as the original ``forward`` returns.

        Args:
            x: N x 3 x 64 x 64 images in [0, 1].

        Returns:
            The N x 2048 BatchNorm'd features (512 x 2 x 2, flattened) and the
            N x num_classes raw logits.
        """
        features = self.bn(torch.flatten(self.feature(x), 1))
        return features, self.fc_layer(features)


@register_architecture(
    "vgg16_vib",
    kwargs_from_state={"num_classes": ("fc_layer.weight", 0)},
    description="MID's published VGG16_vib: VGG16-BN features and the VIB head (K = 1024)",
    hidden_layers=("feature.6", "feature.13", "feature.23", "feature.33", "feature.43"),
)
def vgg16_vib(num_classes: int = 1000) -> nn.Module:
    """The MID reference's ``VGG16_vib`` (``SCccc21/Knowledge-Enriched-DMI`` ``classify.py``,
    the defended target of the MI literature): torchvision's ``vgg16_bn().features`` flattened
    straight into the VIB head, without the ``BatchNorm1d`` of ``VGG16``, so its checkpoints
    (keys ``feature.*``, ``st_layer`` 2048 -> 2048, ``fc_layer`` 1024 -> classes) load
    strictly."""
    base = VGG16(num_classes)
    base.bn = nn.Identity()
    return VIBClassifier(base)
