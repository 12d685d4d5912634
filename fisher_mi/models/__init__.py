"""Architectures, the definition of a layer, the output convention, and checkpoints."""

from fisher_mi.models import (  # noqa: F401  (importing registers the architectures)
    irse,
    resnet,
    small,
    vgg,
)
from fisher_mi.models.checkpoint import load_model, save_model
from fisher_mi.models.layers import LayerInfo, named_layers
from fisher_mi.models.outputs import logits_of
from fisher_mi.models.registry import ARCHITECTURES, ArchEntry, ArchSpec, arch_of, build_model

__all__ = [
    "ARCHITECTURES",
    "ArchEntry",
    "ArchSpec",
    "LayerInfo",
    "arch_of",
    "build_model",
    "load_model",
    "logits_of",
    "named_layers",
    "save_model",
]
