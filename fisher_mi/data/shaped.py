"""Data at a model's input shape: the one way every stage feeds a model its split."""

from __future__ import annotations

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.data.registry import load_dataset


def load_for(model: nn.Module, spec: str, split: str) -> Dataset:
    """A split of ``spec`` resized and converted to ``model.input_shape`` (channels, size,
    size) when the model declares one; as stored otherwise. Only that attribute is read, so
    data needs no model import."""
    channels, size, _ = getattr(model, "input_shape", (None, None, None))
    return load_dataset(spec, split, image_size=size, channels=channels)
