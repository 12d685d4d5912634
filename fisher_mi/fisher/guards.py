"""Preconditions of a Fisher computation, each refused with a one-line error.

Fisher information is only meaningful on fixed inputs with valid labels and finite losses;
every check here turns a silent wrong number (or a cryptic traceback deep in autograd) into a
message that names the problem and its fix.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from fisher_mi.errors import ConfigError, DataError, NonFiniteError
from fisher_mi.fisher.backends import BatchNorms
from fisher_mi.models.layers import LayerInfo


def check_at_least_one(name: str, value: int | None) -> None:
    """Refuse counts below 1 (``None`` means "no limit" and passes)."""
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")


def check_has_layers(layers: Sequence[LayerInfo], *, trainable_only: bool) -> None:
    """Refuse a model without (trainable) parameters: it has no Fisher information, and the
    fix differs (a frozen model: drop ``trainable_only``; no parameters: wrong object)."""
    if not layers:
        what = "trainable parameters" if trainable_only else "parameters"
        fix = (
            "unfreeze some layers or drop trainable_only"
            if trainable_only
            else "pass a trained classifier"
        )
        raise ConfigError(f"the model has no {what}, so it has no Fisher information; {fix}")


def _first_input(item: Any) -> Tensor | None:
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], Tensor):
        return item[0]
    return None


def check_deterministic(dataset: Dataset) -> None:
    """Refuse a dataset whose first item changes between reads (random augmentation).

    The Fisher of a dataset is a property of fixed inputs; random crops or flips would make
    the estimate depend on the draw.
    """
    first, again = _first_input(dataset[0]), _first_input(dataset[0])
    if first is not None and again is not None and not torch.equal(first, again):
        raise DataError(
            "the dataset returns a different image each time item 0 is read (random "
            "augmentation?); Fisher information needs fixed inputs: use a deterministic transform"
        )


def _labels_of(split: str | None) -> str:
    return f"labels of split {split!r}" if split is not None else "labels"


def check_label_format(labels: Tensor, split: str | None = None) -> None:
    """Refuse labels that are not one integer class index per sample (before any forward)."""
    if labels.dim() != 1:
        raise DataError(
            f"{_labels_of(split)} must be one class index per sample, got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise DataError(f"{_labels_of(split)} must be integer class indices, got {labels.dtype}")


def check_label_range(labels: Tensor, num_classes: int, split: str | None = None) -> None:
    """Refuse labels outside 0..num_classes-1, the class count of the model's logits (known
    once a backend has run its forward)."""
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{_labels_of(split)} range over {int(labels.min())}..{int(labels.max())} but "
            f"the model has {num_classes} classes (0..{num_classes - 1}); check the dataset or "
            "the model"
        )


@contextlib.contextmanager
def _record_outputs(model: nn.Module) -> Iterator[list[tuple[str, Any]]]:
    """Record (module name, output) of every module in execution order; hooks removed after."""
    records: list[tuple[str, Any]] = []
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: records.append((name, out)))
        for name, module in model.named_modules()
        if name
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _has_non_finite(output: Any) -> bool:
    tensors = output if isinstance(output, (tuple, list)) else (output,)
    return any(
        isinstance(t, Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
        for t in tensors
    )


def first_non_finite_module(model: nn.Module, x: Tensor) -> str | None:
    """Name of the first module whose output on ``x`` holds a NaN or infinity."""
    with torch.no_grad(), _record_outputs(model) as records:
        model(x)
    return next((name for name, output in records if _has_non_finite(output)), None)


def check_finite(
    result: BatchNorms,
    layers: Sequence[LayerInfo],
    model: nn.Module,
    x: Tensor,
    *,
    split: str,
    first_row: int,
    repeats: int = 1,
) -> None:
    """Refuse NaN/inf losses (naming the first module that produced one) and gradients.

    The split's rows are its (input, draw) pairs, input by input (each input appears
    ``repeats`` times when labels are drawn by Monte Carlo); row ``n`` of ``x`` and ``result``
    is row ``first_row + n``, i.e. sample ``(first_row + n) // repeats`` of the split.
    """
    bad_loss = (~torch.isfinite(result.losses)).nonzero()
    if bad_loss.numel():
        n = int(bad_loss[0, 0])
        origin = first_non_finite_module(model, x[n : n + 1])
        where = f"; the first non-finite output comes from module {origin!r}" if origin else ""
        raise NonFiniteError(
            f"the loss of sample {(first_row + n) // repeats} of split {split!r} is "
            f"{float(result.losses[n])}{where}; "
            "check the model's weights and the input values"
        )
    bad_grad = (~torch.isfinite(result.squared_norms)).nonzero()
    if bad_grad.numel():
        n, column = (int(v) for v in bad_grad[0])
        layer = layers[column]
        value = float(result.squared_norms[n, column])
        kind = "NaN" if math.isnan(value) else "infinite"
        raise NonFiniteError(
            f"the gradient of layer {layer.name!r} ({layer.kind}) is {kind} for sample "
            f"{(first_row + n) // repeats} "
            f"of split {split!r} although the loss is finite; check that layer's weights and inputs"
        )
