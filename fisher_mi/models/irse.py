"""face.evoLVe's IR (improved-residual) backbones and the MI literature's face classifiers on them.

One backbone class, :class:`IRBackbone`, parametrised by depth (50 or 152 layers) and input
size, gives the ``evolve.IR_50_64`` / ``IR_152_64`` / ``IR_50_112`` builders of the GMI and
KEDMI code (``evolve.py``, a copy of face.evoLVe's ``model_irse.py``); :class:`IR152`,
:class:`FaceNet64` and :class:`FaceNet` wrap it exactly as those papers' classes do, so their
checkpoints load with the same parameter and buffer names.

Shapes, for input size s: the input layer keeps s x s; each of the four stages starts with a
stride-2 unit, so the body ends at 512 x s/16 x s/16 (4x4 at 64, 7x7 at 112), which the
embedding head (BatchNorm2d, Dropout, Flatten, Linear(512*(s/16)^2, 512), BatchNorm1d) maps
to a 512-d feature.
"""

from __future__ import annotations

from torch import Tensor, nn

from fisher_mi.errors import ConfigError
from fisher_mi.models.registry import register_architecture
from fisher_mi.models.weight_init import evolve_init

STAGE_WIDTHS = (64, 128, 256, 512)
# Units per stage (evolve.get_blocks); the first unit of each stage has stride 2.
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STRIDES_PER_BODY = 2 ** len(STAGE_WIDTHS)
EMBEDDING_DIM = 512


class BottleneckIR(nn.Module):
    """face.evoLVe's ``bottleneck_IR`` unit: ``res_layer(x) + shortcut_layer(x)``.

    ``res_layer`` = BN(in) -> conv3x3(in, out) -> PReLU(out) -> conv3x3(out, out, stride) ->
    BN(out), all convolutions without bias. ``shortcut_layer`` is a parameter-free
    ``MaxPool2d(1, stride)`` (plain subsampling) when the width does not change, else a
    strided conv1x1 + BN projection.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """The unit's output, ``res_layer(x) + shortcut_layer(x)``: N x out x H/s x W/s.

        Args:
            x: N x in x H x W feature maps.
        """
        return self.res_layer(x) + self.shortcut_layer(x)


def embedding_head(spatial: int) -> nn.Sequential:
    """The evoLVe output layer: BN2d -> Dropout(0.5) -> Flatten -> Linear -> BN1d, to 512-d.

    The indices (``3`` the linear map, ``4`` the final BatchNorm) are the checkpoints' keys.
    """
    return nn.Sequential(
        nn.BatchNorm2d(512),
        nn.Dropout(),
        nn.Flatten(),
        nn.Linear(512 * spatial * spatial, EMBEDDING_DIM),
        nn.BatchNorm1d(EMBEDDING_DIM),
    )


def _body(num_layers: int) -> nn.Sequential:
    units: list[nn.Module] = []
    in_channels = 64
    for width, count in zip(STAGE_WIDTHS, STAGE_UNITS[num_layers], strict=True):
        for index in range(count):
            units.append(BottleneckIR(in_channels, width, stride=2 if index == 0 else 1))
            in_channels = width
    return nn.Sequential(*units)


class IRBackbone(nn.Module):
    """face.evoLVe's IR backbone: ``Backbone64`` / ``Backbone112`` of the ``evolve.py`` that the
    GMI, KEDMI, LOMMA and TL-DMI classifiers import (read in ``JdYwz/Rethinking-MI``
    ``models/evolve.py``, a fork of LOMMA's repository), itself derived from face.evoLVe's
    ``Backbone`` in ``model_irse.py``.

    ``input_layer`` (conv3x3(3, 64, bias=False) -> BN -> PReLU) then ``body``, a ``Sequential``
    of :class:`BottleneckIR` units (IR-50: 3+4+14+3 = 24, IR-152: 3+8+36+3 = 50). With
    ``embedding=True`` it ends in its own ``output_layer`` to a 512-d vector (``IR_50_112``);
    without it returns the 512 x s/16 x s/16 map (``IR_50_64``, ``IR_152_64``), and the
    classifier wrapping it adds the head.

    The reference registers ``output_layer`` before ``body``; here it comes after, in forward
    order, so that layer depths in Fisher tables follow the data flow. Names and shapes, hence
    checkpoints, are unaffected.

    Args:
        num_layers: 50, 100 or 152.
        input_size: side of the square input; a multiple of 16.
        embedding: append the evoLVe output layer.
    """

    def __init__(self, num_layers: int, input_size: int, *, embedding: bool) -> None:
        super().__init__()
        if num_layers not in STAGE_UNITS:
            known = ", ".join(map(str, STAGE_UNITS))
            raise ConfigError(
                f"IR backbones have {known} layers, not {num_layers}; pick one of those"
            )
        if input_size <= 0 or input_size % STRIDES_PER_BODY:
            raise ConfigError(
                f"IR backbone input size must be a positive multiple of {STRIDES_PER_BODY} "
                f"(the body halves it four times), got {input_size}"
            )
        self.output_spatial = input_size // STRIDES_PER_BODY
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.PReLU(64),
        )
        self.body = _body(num_layers)
        self.output_layer = embedding_head(self.output_spatial) if embedding else None
        evolve_init(self)

    def forward(self, x: Tensor) -> Tensor:
        """The backbone's output: N x 512 x s x s maps (s = input size / 16), or with
        ``embedding`` the N x 512 embeddings of the evoLVe head.

        Args:
            x: N x 3 x H x W images.
        """
        x = self.body(self.input_layer(x))
        return x if self.output_layer is None else self.output_layer(x)


class FaceClassifier64(nn.Module):
    """The GMI/KEDMI 64x64 face classifier on an IR backbone (``IR152`` / ``FaceNet64``).

    ``feature`` = IR backbone without head (512x4x4), ``output_layer`` = the evoLVe head to
    512-d, ``fc_layer`` = Linear(512, num_classes). ``forward`` returns
    ``(features, logits)`` with the 512-d features.
    """

    def __init__(self, num_layers: int, num_classes: int) -> None:
        super().__init__()
        self.input_shape = (3, 64, 64)
        self.feat_dim = EMBEDDING_DIM
        self.feature = IRBackbone(num_layers, 64, embedding=False)
        self.output_layer = embedding_head(self.feature.output_spatial)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)`` of the MI literature's targets.

        Args:
            x: N x 3 x 64 x 64 images in [0, 1].

        Returns:
            The N x 512 embeddings of the evoLVe head and the N x num_classes raw logits.
        """
        features = self.output_layer(self.feature(x))
        return features, self.fc_layer(features)


@register_architecture(
    "ir152",
    kwargs_from_state={"num_classes": ("fc_layer.weight", 0)},
    description="GMI/KEDMI/LOMMA/TL-DMI CelebA target: IR-152 backbone, 3x64x64, 512-d",
    hidden_layers=(
        "feature.body.2",
        "feature.body.10",
        "feature.body.46",
        "feature.body.49",
        "output_layer",
    ),
)
class IR152(FaceClassifier64):
    """``IR152`` of the MI literature: ``evolve.IR_152_64`` + evoLVe head + ``fc_layer``.

    Matches ``IR152`` in ``SCccc21/Knowledge-Enriched-DMI`` ``classify.py`` (also
    ``sutd-visual-computing-group/Re-thinking_MI`` and ``hosytuyen/TL-DMI``
    ``models/classify.py``). The GMI original (``sunblaze-ucb/GMI-attack``
    ``Celeba/classify.py``) has the same modules but returns ``(feat, softmax, argmax)``;
    here the last output is always the raw logits.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(152, num_classes)


@register_architecture(
    "facenet64",
    kwargs_from_state={"num_classes": ("fc_layer.weight", 0)},
    description="KEDMI/LOMMA/TL-DMI CelebA target: IR-50 backbone, 3x64x64, 512-d",
    hidden_layers=(
        "feature.body.2",
        "feature.body.6",
        "feature.body.20",
        "feature.body.23",
        "output_layer",
    ),
)
class FaceNet64(FaceClassifier64):
    """``FaceNet64`` of the MI literature: ``evolve.IR_50_64`` + evoLVe head + ``fc_layer``.

    Matches ``FaceNet64`` in ``SCccc21/Knowledge-Enriched-DMI`` ``classify.py`` (also
    ``sutd-visual-computing-group/Re-thinking_MI`` and ``hosytuyen/TL-DMI``
    ``models/classify.py``), which returns ``(feat, logits)`` as here.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(50, num_classes)


@register_architecture(
    "facenet",
    kwargs_from_state={"num_classes": ("fc_layer.weight", 0)},
    description="GMI/KEDMI evaluation model: IR-50 backbone with head, 3x112x112, 512-d",
    hidden_layers=(
        "feature.body.2",
        "feature.body.6",
        "feature.body.20",
        "feature.body.23",
        "feature.output_layer",
    ),
)
class FaceNet(nn.Module):
    """``FaceNet``, the literature's evaluation classifier: ``evolve.IR_50_112((112, 112))``
    (backbone with its own 512-d head, so keys ``feature.output_layer.*``) + ``fc_layer``.

    Matches ``FaceNet`` in ``SCccc21/Knowledge-Enriched-DMI`` ``classify.py`` (also
    ``sutd-visual-computing-group/Re-thinking_MI`` and ``hosytuyen/TL-DMI``
    ``models/classify.py``); the GMI original (``sunblaze-ucb/GMI-attack``
    ``Celeba/classify.py``) returns ``[logits]`` only. Here: ``(features, logits)``.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.input_shape = (3, 112, 112)
        self.feat_dim = EMBEDDING_DIM
        self.feature = IRBackbone(50, 112, embedding=True)
        self.fc_layer = nn.Linear(self.feat_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The tuple ``(features, logits)`` (the GMI original returns ``[logits]`` only).

        Args:
            x: N x 3 x 112 x 112 images in [0, 1].

        Returns:
            The N x 512 embeddings and the N x num_classes raw logits.
        """
        features = self.feature(x)
        return features, self.fc_layer(features)
