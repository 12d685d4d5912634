"""``load_init``: start from a local pre-trained file (an ImageNet or MS1M backbone, a
public-pretrained model), and say how much of it was actually loaded.

The released TL-DMI code loaded FaceNet64's MS1M backbone only when the model name matched a
string; a typo meant the backbone was silently never loaded, and the "pre-trained" model was
trained from scratch. Here loading is explicit and counted: every tensor of the model is
matched by name (after dropping DataParallel ``module.`` prefixes) and by shape, and anything
short of a complete match is an error unless ``partial=True`` is asked for; a file matching
nothing is always an error.

A backbone saved on its own (keys ``input_layer.*``, ``body.*``) fits a model that holds it as
a child (``feature.input_layer.*``): the file's keys are tried at the model's root and under
each direct child, and the placement matching the most tensors is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from fisher_mi.errors import ArchitectureMismatchError
from fisher_mi.io import load_checkpoint
from fisher_mi.models.checkpoint import find_state_dict, strip_prefixes
from fisher_mi.plan.table import few


def load_init(model: nn.Module, path: str | os.PathLike[str], *, partial: bool = False) -> int:
    """Copy the tensors of the checkpoint at ``path`` into ``model``; return how many.

    Args:
        model: the model to initialise, in place.
        path: a fisher_mi checkpoint or a foreign state dict (raw, nested under
            ``state_dict``/``model``/..., ``module.``-prefixed), read with ``weights_only``.
        partial: load the tensors that match and leave the rest as they are (e.g. a new
            classifier head); without it, every tensor of the model must be matched (BatchNorm's
            ``num_batches_tracked`` may be absent from old files).

    Raises:
        ArchitectureMismatchError: no tensor matched, or (without ``partial``) some did not.
    """
    source = Path(path)
    state = strip_prefixes(find_state_dict(source, load_checkpoint(source)))
    target = model.state_dict()
    prefix, matched = _best_placement(model, target, state)
    where = f" under {prefix[:-1]!r}" if prefix else ""
    if not matched:
        raise ArchitectureMismatchError(
            f"--init {source} matched none of the model's {len(target)} tensors by name and "
            f"shape (file keys: {few(list(state), 3)}); check --arch and the file"
        )
    unmatched = [
        _why(key, target[key], state.get(key[len(prefix) :]))
        for key in target
        if key not in matched and not key.endswith("num_batches_tracked")
    ]
    if unmatched and not partial:
        unused = len(state) - len(matched)
        raise ArchitectureMismatchError(
            f"--init {source} matched {len(matched)} of the model's {len(target)} tensors"
            f"{where}; {len(unmatched)} not matched ({few(unmatched, 3)}), {unused} of the "
            "file's left over; pass --init-partial (partial=True) to load only the matching ones"
        )
    with torch.no_grad():
        for key, tensor in matched.items():
            target[key].copy_(tensor)
    return len(matched)


def _placements(model: nn.Module) -> list[str]:
    """Where a file's keys may start in the model: its root, or one of its direct children."""
    return ["", *(f"{name}." for name, _ in model.named_children())]


def _matches(target: Mapping[str, Tensor], state: Mapping[str, Tensor], prefix: str) -> dict:
    return {
        prefix + key: value
        for key, value in state.items()
        if prefix + key in target and target[prefix + key].shape == value.shape
    }


def _best_placement(
    model: nn.Module, target: Mapping[str, Tensor], state: Mapping[str, Tensor]
) -> tuple[str, dict[str, Tensor]]:
    """The placement matching the most tensors (the root on a tie)."""
    found = [(prefix, _matches(target, state, prefix)) for prefix in _placements(model)]
    return max(found, key=lambda item: len(item[1]))


def _why(key: str, expected: Tensor, found: Tensor | None) -> str:
    if found is None:
        return f"{key} (missing)"
    return f"{key} {tuple(found.shape)} vs {tuple(expected.shape)}"
