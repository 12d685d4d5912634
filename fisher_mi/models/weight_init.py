"""Weight initialisations of the reference implementations the literature's models start from.

Only fresh models use these (a checkpoint overwrites every parameter), but a model trained
from scratch with fisher_mi should start where the original code started: torchvision's
VGG/ResNet initialisation, and face.evoLVe's for the IR backbones.
"""

from __future__ import annotations

from torch import nn


def torchvision_init(module: nn.Module) -> None:
    """torchvision's VGG/ResNet scheme: He-normal (fan-out) convolutions, zero conv biases,
    BatchNorm scale 1 and shift 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def evolve_init(module: nn.Module) -> None:
    """face.evoLVe's scheme (``_initialize_weights`` of its backbones): Xavier-uniform
    convolutions and linear maps, zero biases, BatchNorm scale 1 and shift 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
