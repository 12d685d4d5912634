"""Saving and loading models: fisher_mi's self-describing format and foreign state dicts.

Our format is a ``torch.save``d dict ``{"format": "fisher_mi/1", "arch", "arch_kwargs",
"state_dict", "meta"}``. Foreign checkpoints (a raw state dict, ``{"state_dict": ...}`` or
``{"model": ...}`` nesting, DataParallel's ``module.`` prefixes) are accepted too; their
architecture is given or recognised by building every registered one on the ``meta`` device
(no memory, no compute) and comparing parameter names and shapes. Everything is read with
``weights_only=True`` and loaded strictly.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fisher_mi.data.labels import MAX_CLASSES
from fisher_mi.errors import ArchitectureMismatchError, CheckpointError, ConfigError
from fisher_mi.io import load_checkpoint, save_checkpoint
from fisher_mi.models.registry import (
    ARCHITECTURES,
    ArchEntry,
    build_model,
    require_arch,
)

FORMAT = "fisher_mi/1"
NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
MAX_KEYS_SHOWN = 3
REQUIRED_FIELDS = ("arch", "arch_kwargs", "state_dict")
RESAVE = "re-save it with fisher_mi.save_model"


def save_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` as a self-describing checkpoint, atomically.

    The model must come from ``build_model`` or ``load_model`` (it then knows its
    architecture); ``meta`` holds plain values (numbers, strings, lists, dicts).
    """
    spec = require_arch(
        model, "its architecture is unknown (or save model.state_dict() with torch.save)"
    )
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    meta = plain_values(meta or {})
    save_checkpoint(
        path,
        {
            "format": FORMAT,
            "arch": spec.name,
            "arch_kwargs": dict(spec.kwargs),
            "state_dict": state,
            "meta": meta,
        },
    )


def _plain(value: Any) -> Any:
    """JSON's fallback: numpy scalars and arrays, paths and the like as plain values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(type(value).__name__)


def plain_values(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` as plain numbers, strings, lists and dicts, which ``weights_only`` loading
    accepts (a numpy scalar or Path would make the saved file unreadable)."""
    try:
        return json.loads(json.dumps(dict(meta), default=_plain))
    except TypeError as err:
        raise ConfigError(
            f"meta holds a {err} value, which a safe checkpoint cannot store; pass numbers, "
            "strings, lists or dicts"
        ) from None


def load_model(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """Load a checkpoint as a model in eval mode (see the module docstring for formats).

    Nothing is allocated before the file is known to fit: its tensors are dense
    (``load_checkpoint``), the class count it claims is at most ``MAX_CLASSES`` unless
    ``num_classes`` is given, and its names and shapes match the architecture built on the
    ``meta`` device. Only then is the model built for real and loaded strictly.

    Args:
        path: the checkpoint file.
        arch: architecture name; overrides the file's own or the recognised one.
        num_classes: classifier width; by default read from the classifier's shape.

    Returns:
        The model, in eval mode, knowing its architecture (``arch_of``).
    """
    source = Path(path)
    payload = load_checkpoint(source)
    if is_own_format(payload):
        arch_name, kwargs, state = _read_own_format(source, payload, arch)
    else:
        state = strip_prefixes(find_state_dict(source, payload))
        entry = ARCHITECTURES.get(arch) if arch else _recognise(source, state)
        arch_name, kwargs = entry.name, entry.kwargs_for(state)
    if num_classes is None:
        _check_class_claim(source, kwargs)
    else:
        kwargs["num_classes"] = num_classes
    _require_fit(source, arch_name, kwargs, state)
    model = build_model(arch_name, **kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


def is_own_format(payload: Any) -> bool:
    """A payload meant to be in fisher_mi's format: a dict whose ``format`` names fisher_mi
    (this version, another, or a GAN file) or that holds our ``arch_kwargs`` key, so that a
    damaged one is refused as such instead of being searched for a foreign state dict."""
    return isinstance(payload, Mapping) and (
        "arch_kwargs" in payload or str(payload.get("format", "")).startswith("fisher_mi")
    )


def _check_class_claim(source: Path, kwargs: Mapping[str, Any]) -> None:
    """Refuse a file claiming fewer than 1 or more than ``MAX_CLASSES`` classes.

    Shapes are read before anything is built, and a zero-size or expanded tensor claims any
    size at no cost in the file: 4 MB claiming 10^9 classes would make ``build_model``
    allocate a terabyte. The bound is the one the data readers use (``MAX_CLASSES``, above
    every label set in use); a model with more classes loads when its count is given, since
    the file's shapes must then match a count the caller chose.
    """
    claimed = kwargs.get("num_classes")
    if claimed is not None and not 1 <= claimed <= MAX_CLASSES:
        raise CheckpointError(
            f"checkpoint {source} claims {claimed} classes, outside 1 to {MAX_CLASSES}, so it is "
            "damaged or hostile; if the model really has that many, pass num_classes to "
            "fisher_mi.load_model"
        )


def _read_own_format(
    source: Path, payload: Mapping[str, Any], arch: str | None
) -> tuple[str, dict[str, Any], Mapping[str, Tensor]]:
    """Architecture name, keyword arguments and state dict of a fisher_mi checkpoint, its
    structure validated first (``_own_format_problem``) so nothing is built from a bad one."""
    problem = _own_format_problem(payload, arch)
    if problem is not None:
        raise CheckpointError(f"checkpoint {source} {problem}")
    return arch or payload["arch"], dict(payload["arch_kwargs"]), payload["state_dict"]


def _own_format_problem(payload: Mapping[str, Any], arch: str | None) -> str | None:
    """The first structural defect of a fisher_mi checkpoint, as the end of a sentence that
    starts with the file's name, or None: the format, the required fields, each field's
    kind (``FIELDS``), the architecture (unless ``arch`` overrides it), the size keywords."""
    found = payload.get("format")
    if found != FORMAT:
        return (
            f"has format {shown(found)}, which load_model does not read (it reads {FORMAT} "
            "classifier checkpoints); use the fisher_mi version or the reader that wrote it"
        )
    missing = [key for key in REQUIRED_FIELDS if key not in payload]
    if missing:
        return f"lacks {', '.join(missing)}; {RESAVE}"
    for key, (accepts, what) in FIELDS.items():
        if key in payload and not accepts(payload[key]):
            return f"has a malformed {key} ({shown(payload[key])}): expected {what}; {RESAVE}"
    if arch is None and payload["arch"] not in ARCHITECTURES:
        return (
            f"names architecture {shown(payload['arch'])}, which this fisher_mi does not "
            f"know; pass --arch NAME (known: {', '.join(ARCHITECTURES.names())})"
        )
    return _size_problem(ARCHITECTURES.get(arch or payload["arch"]), payload["arch_kwargs"])


def _size_problem(entry: ArchEntry, kwargs: Mapping[str, Any]) -> str | None:
    """The first size keyword (one read from shapes, e.g. ``num_classes``) in ``kwargs`` that
    is not a whole number of at least 1, as in ``_own_format_problem``; or None."""
    for name in entry.kwargs_from_state:
        value = kwargs.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return (
                f"has arch_kwargs {name}={shown(value)}, not a whole number of at least 1; {RESAVE}"
            )
    return None


def shown(value: Any) -> str:
    """A file's value in a one-line message: a short repr of a number or string, else the
    type's name (a tensor's or a container's repr may run to many lines)."""
    if value is None or isinstance(value, str | int | float):
        return reprlib.repr(value)
    return f"a {type(value).__name__}"


def _is_kwargs(value: Any) -> bool:
    """A dict of keyword arguments: names (strings) to values."""
    return isinstance(value, Mapping) and all(isinstance(key, str) for key in value)


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping of parameter names (strings) to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(key, str) and isinstance(value, Tensor) for key, value in obj.items())
    )


FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "arch": (lambda value: isinstance(value, str), "an architecture name"),
    "arch_kwargs": (_is_kwargs, "a dict of keyword arguments by name"),
    "state_dict": (is_state_dict, "a non-empty dict of tensors by parameter name"),
    "meta": (lambda value: isinstance(value, Mapping), "a dict of plain values"),
}
"""Each field of our format: what accepts its value, and what that is in words."""


def find_state_dict(source: Path, payload: Any) -> Mapping[str, Tensor]:
    """The tensors of a raw state dict or of one nested under a usual key."""
    candidates = [payload]
    if isinstance(payload, Mapping):
        candidates += [payload[key] for key in NESTING_KEYS if key in payload]
    for candidate in candidates:
        if is_state_dict(candidate):
            return candidate
    found = list(payload)[:5] if isinstance(payload, Mapping) else type(payload).__name__
    raise CheckpointError(
        f"checkpoint {source} holds no state dict (found {found}); save model.state_dict(), "
        f"optionally under one of the keys {', '.join(NESTING_KEYS)}"
    )


def strip_prefixes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop DataParallel/DistributedDataParallel ``module.`` prefixes (possibly repeated)."""
    stripped = {}
    for key, value in state.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        stripped[key] = value
    return stripped


def _shapes_on_meta(entry: ArchEntry, state: Mapping[str, Tensor]) -> dict[str, torch.Size] | None:
    """Parameter/buffer shapes of ``entry`` built for ``state``, without allocating memory."""
    try:
        with torch.device("meta"):
            model = entry.build(**entry.kwargs_for(state))
    except (TypeError, ValueError, RuntimeError):
        return None
    return {key: value.shape for key, value in model.state_dict().items()}


def key_difference(
    expected: Mapping[str, torch.Size], state: Mapping[str, Tensor]
) -> dict[str, list[str]]:
    """The keys ``state`` lacks, the keys it has in excess, and those of another shape."""
    return {
        "missing": [key for key in expected if key not in state and not _optional(key)],
        "unexpected": [key for key in state if key not in expected],
        "wrong shape": [
            f"{key} {tuple(state[key].shape)} vs {tuple(shape)}"
            for key, shape in expected.items()
            if key in state and state[key].shape != shape
        ],
    }


def _optional(key: str) -> bool:
    """Keys a checkpoint may lack: BatchNorm's ``num_batches_tracked`` (absent from files of
    PyTorch < 0.4.1; ``load_state_dict`` fills it in)."""
    return key.endswith("num_batches_tracked")


def describe_difference(difference: Mapping[str, list[str]]) -> str:
    """``key_difference`` in one line: counts and the first few keys of each kind."""
    parts = []
    for what, keys in difference.items():
        if keys:
            shown = ", ".join(keys[:MAX_KEYS_SHOWN]) + (
                ", ..." if len(keys) > MAX_KEYS_SHOWN else ""
            )
            parts.append(f"{len(keys)} {what} ({shown})")
    return "; ".join(parts)


def _ranked_architectures(
    state: Mapping[str, Tensor],
) -> list[tuple[int, str, dict[str, list[str]]]]:
    """Every architecture with its mismatch count against ``state``, best first."""
    ranked = []
    for name, entry in ARCHITECTURES.items():
        shapes = _shapes_on_meta(entry, state)
        if shapes is not None:
            difference = key_difference(shapes, state)
            ranked.append((sum(map(len, difference.values())), name, difference))
    return sorted(ranked, key=lambda item: item[0])


def _recognise(source: Path, state: Mapping[str, Tensor]) -> ArchEntry:
    ranked = _ranked_architectures(state)
    exact = [name for score, name, _ in ranked if score == 0]
    if len(exact) == 1:
        return ARCHITECTURES.get(exact[0])
    if exact:
        raise ArchitectureMismatchError(
            f"checkpoint {source} fits several architectures ({', '.join(exact)}); "
            "choose one with --arch"
        )
    if not ranked:
        raise ArchitectureMismatchError(f"checkpoint {source} fits no registered architecture")
    _, closest, difference = ranked[0]
    raise ArchitectureMismatchError(
        f"checkpoint {source} fits no registered architecture; closest is {closest!r} with "
        f"{describe_difference(difference)}; pass --arch NAME "
        f"(known: {', '.join(ARCHITECTURES.names())})"
    )


def _require_fit(
    source: Path, arch_name: str, kwargs: Mapping[str, Any], state: Mapping[str, Tensor]
) -> None:
    """Refuse ``state`` unless it fits ``arch_name`` built with ``kwargs``, name for name and
    shape for shape; the model is built on the ``meta`` device (no memory), so a file that
    claims a huge model but holds a small one is refused before anything is allocated."""
    with torch.device("meta"):
        expected = {
            key: v.shape for key, v in build_model(arch_name, **kwargs).state_dict().items()
        }
    difference = key_difference(expected, state)
    if any(difference.values()):
        raise ArchitectureMismatchError(
            f"checkpoint {source} does not fit architecture {arch_name!r}: "
            f"{describe_difference(difference)}; {_fix(arch_name, state)}"
        )


def _fix(arch_name: str, state: Mapping[str, Tensor]) -> str:
    """How to load a file that does not fit ``arch_name``: the architecture it does fit."""
    ranked = _ranked_architectures(state)
    fits = ranked[0][1] if ranked and ranked[0][0] == 0 else None
    if fits == arch_name:
        return (
            f"the file fits {arch_name!r} built from its own shapes: drop the num_classes override"
        )
    if fits:
        return f"the file fits {fits!r}: pass --arch {fits}"
    return f"pass the right --arch (known: {', '.join(ARCHITECTURES.names())})"
