"""The models benchmarked and the one seeded batch every process builds for a case.

A model is one ``MODELS.add`` line: a factory, the input shape, the class count and the timed
repetitions it gets by default. Every worker of a case rebuilds the same model and batch from
the seed, so their results can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from fisher_mi.models import build_model
from fisher_mi.registry import Registry


@dataclass(frozen=True)
class ModelCase:
    """A model to benchmark: a zero-argument factory, its input shape, its class count and the
    timed repetitions it gets unless ``--repeats`` says otherwise."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    repeats: int = 5


def architecture(
    arch: str, input_shape: tuple[int, ...], num_classes: int, *, repeats: int = 5
) -> ModelCase:
    """A ``fisher_mi`` registered architecture with ``num_classes`` outputs."""
    build = partial(build_model, arch, num_classes=num_classes)
    return ModelCase(build, input_shape, num_classes, repeats)


MODELS: Registry[ModelCase] = Registry("benchmark model")
# (a) the GMI MNIST-style CNN, and a 1/50-size VGG-like net for quick checks.
MODELS.add("mcnn", architecture("mcnn", (1, 32, 32), 10))
MODELS.add("vgg_small", architecture("vgg_small", (3, 64, 64), 100))
# (b)-(d) the literature's CelebA targets at 1000 classes: 3 repeats keep the run ~40 min.
MODELS.add("vgg16", architecture("vgg16", (3, 64, 64), 1000, repeats=3))
MODELS.add("resnet18", architecture("resnet18", (3, 64, 64), 1000, repeats=3))
MODELS.add("ir152", architecture("ir152", (3, 64, 64), 1000, repeats=3))


def build_case(
    model_name: str, batch: int, *, seed: int, dtype: torch.dtype, device: torch.device
) -> tuple[nn.Module, Tensor, Tensor]:
    """The seeded model and a seeded random batch, identical in every process.

    The model is in eval mode with every parameter trainable (VGG16's frozen ``bn.bias``
    too), as ``profile`` profiles frozen layers; the images are N(0, 1), drawn in float32 for
    every dtype so the float64 reference sees the same inputs, and the labels uniform.
    """
    case = MODELS.get(model_name)
    torch.manual_seed(seed)
    model = case.build().to(dtype=dtype).eval()
    for param in model.parameters():
        param.requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *case.input_shape), generator=generator)
    y = torch.randint(0, case.num_classes, (batch,), generator=generator)
    return model.to(device), x.to(device, dtype), y.to(device)
