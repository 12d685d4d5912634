"""Starting or resuming a run: read ``checkpoint.pt`` back, check that it is whole and that it
belongs to the run being resumed, and put its state back.

A checkpoint is untrusted input (read with ``weights_only=True``; it may be damaged, edited by
hand or written by another version), so its structure is checked once, up front
(``check_structure``), and each defect is refused in one line naming it, rather than surfacing
later as a KeyError or a ``load_state_dict`` traceback. Then the run being started must be
the saved one (``check_same_run``), compared in this order, so the message names the first
thing that really differs: the architecture and its keyword arguments (the class count), the
shapes of the weights, the options, the objective (its loss and settings, a teacher by the
fingerprint of its weights), the freeze plan, and what it trains on (the data and public
specs and class names of the ``Provenance``, and the sizes of the training and validation
parts, which tell other data apart even when no spec was recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from fisher_mi.distributed import is_main_process
from fisher_mi.errors import CheckpointError, ConfigError
from fisher_mi.io import load_checkpoint
from fisher_mi.models.registry import require_arch
from fisher_mi.training.config import TrainConfig
from fisher_mi.training.objective import CrossEntropy
from fisher_mi.training.provenance import Provenance
from fisher_mi.training.state import (
    CHECKPOINT,
    MEASURED,
    PLAN,
    TRAINING_VERSION,
    Progress,
    Snapshot,
)

NONE = type(None)
FIELDS: dict[str, tuple[type, ...]] = {  # the "training" entry: key -> the types it may have
    "version": (int,),
    "config": (dict,),
    "objective": (dict,),
    "plan": (dict,),
    "provenance": (dict,),
    "sizes": (dict,),
    "epoch": (int,),
    "step": (int,),
    "history": (list,),
    "best_epoch": (int,),
    "best_validation": (float, int, NONE),
    "best_state": (dict,),
    "optimizer": (dict,),
    "scheduler": (dict, NONE),
    "scaler": (dict, NONE),
}
DAMAGED = "a damaged or hand-edited checkpoint; delete it to start again, or choose another folder"
OTHER_RUN = "resume with the same command or choose another output folder"


def start(folder: Path | None, resume: bool, snapshot: Snapshot) -> Progress:
    """A fresh ``Progress`` (writing ``plan.json``), or the saved one restored from ``folder``
    after checking that the checkpoint is whole and is the same run."""
    if folder is None:
        if resume:
            raise ConfigError("resume needs the output folder of the run (out=...)")
        return Progress()
    path = folder / CHECKPOINT
    if not resume:
        if path.exists():
            raise ConfigError(
                f"{folder} already holds a training checkpoint; pass --resume to continue that "
                "run or choose another output folder"
            )
        if is_main_process():
            snapshot.plan.save(folder / PLAN)
        return Progress()
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist; drop --resume to start")
    saved = read_training(path)
    check_same_run(path, saved, snapshot)
    return restore(path, saved, snapshot)


def read_training(path: Path) -> dict[str, Any]:
    """The ``"training"`` entry of a checkpoint written by ``state.save_training``, with the
    model's ``arch``, ``arch_kwargs`` and ``state_dict`` added, after ``check_structure``."""
    payload = load_checkpoint(path)
    training = payload.get("training") if isinstance(payload, dict) else None
    model_keys = {"arch": str, "arch_kwargs": dict, "state_dict": dict}
    whole = isinstance(training, dict) and all(
        isinstance(payload.get(key), kind) for key, kind in model_keys.items()
    )
    if not whole:
        raise CheckpointError(
            f"{path} is not a fisher_mi training checkpoint (no training entry); resume only "
            "from the checkpoint.pt a training run wrote"
        )
    saved = {**training, **{key: payload[key] for key in model_keys}}
    if saved.get("version") == TRAINING_VERSION - 1:  # before objectives: cross-entropy
        saved.update(version=TRAINING_VERSION, objective=CrossEntropy().record())
    check_structure(path, saved)
    return saved


def check_structure(path: Path, saved: Mapping[str, Any]) -> None:
    """Refuse a training entry of another version, with a key missing or of the wrong type,
    or whose parts disagree (epochs, history, best epoch, best weights)."""
    version = saved.get("version")
    if version != TRAINING_VERSION:
        raise CheckpointError(
            f"{path} is a training checkpoint of version {version!r}, and this fisher_mi "
            f"resumes version {TRAINING_VERSION} only; start the run again in another folder"
        )
    missing = [key for key in FIELDS if key not in saved]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: {DAMAGED}")
    for key, kinds in FIELDS.items():
        value = saved[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join("None" if kind is NONE else kind.__name__ for kind in kinds)
            raise CheckpointError(
                f"{path}: {key} is {type(value).__name__}, not {expected}: {DAMAGED}"
            )
    _check_history(path, saved)
    if set(saved["best_state"]) != set(saved["state_dict"]):
        raise CheckpointError(
            f"{path}: best_state does not hold the same tensors as state_dict: {DAMAGED}"
        )


def _check_history(path: Path, saved: Mapping[str, Any]) -> None:
    """Epochs 1..epoch, one history row each with every measured column, and the best epoch
    one of them."""
    epoch, history = saved["epoch"], saved["history"]
    if epoch < 1 or saved["step"] < 0:
        raise CheckpointError(f"{path}: epoch {epoch}, step {saved['step']}: {DAMAGED}")
    numbers = [row.get("epoch") if isinstance(row, dict) else None for row in history]
    if numbers != list(range(1, epoch + 1)):
        raise CheckpointError(
            f"{path} records epoch {epoch} but {len(history)} history row(s) for epochs "
            f"{numbers[:5]}: {DAMAGED}"
        )
    incomplete = [row["epoch"] for row in history if not set(MEASURED) <= set(row)]
    if incomplete:
        raise CheckpointError(
            f"{path}: the history rows of epochs {incomplete[:5]} lack columns: {DAMAGED}"
        )
    if not 1 <= saved["best_epoch"] <= epoch:
        raise CheckpointError(
            f"{path}: best_epoch {saved['best_epoch']} is not one of the epochs 1 to {epoch} "
            f"it records: {DAMAGED}"
        )


def check_same_run(path: Path, saved: Mapping[str, Any], snapshot: Snapshot) -> None:
    """Refuse to resume a run other than the saved one (see the module docstring for what is
    compared, in which order), naming what differs, then and now."""
    _check_arch(path, saved, snapshot.model)
    for name in ("state_dict", "best_state"):
        _check_shapes(path, name, saved[name], snapshot.model)
    changed = TrainConfig.from_dict(saved["config"]).differences(snapshot.config)
    if changed:
        raise ConfigError(
            f"{path} was written with other options ({'; '.join(changed[:3])}); {OTHER_RUN}"
        )
    changed = _differences(saved["objective"], snapshot.objective)
    if changed:
        raise ConfigError(
            f"{path} was trained with another objective ({'; '.join(changed[:3])}); {OTHER_RUN}"
        )
    changed = _differences(saved["plan"], snapshot.plan.to_dict())
    if changed:
        raise ConfigError(
            f"{path} was trained under another freeze plan ({'; '.join(changed[:3])}); {OTHER_RUN}"
        )
    changed = snapshot.provenance.differences(Provenance.from_dict(saved["provenance"]))
    changed += _size_differences(saved["sizes"], snapshot.sizes)
    if changed:
        raise ConfigError(
            f"{path} was trained on other data ({'; '.join(changed[:3])}); resume with the "
            "same --data, --public and classes, or choose another output folder"
        )


def _check_arch(path: Path, saved: Mapping[str, Any], model: nn.Module) -> None:
    """The architecture and its keyword arguments (``num_classes``...), then and now."""
    spec = require_arch(model, "it cannot continue a saved run")
    then = _arch_text(saved["arch"], saved["arch_kwargs"])
    now = _arch_text(spec.name, spec.kwargs)
    if then != now:
        raise ConfigError(
            f"{path} holds another model (architecture: then {then}, now {now}); {OTHER_RUN}"
        )


def _arch_text(name: str, kwargs: Mapping[str, Any]) -> str:
    """``mcnn(in_channels=1, num_classes=5)``."""
    return f"{name}({', '.join(f'{key}={kwargs[key]!r}' for key in sorted(kwargs))})"


def _check_shapes(path: Path, name: str, state: Mapping[str, Any], model: nn.Module) -> None:
    """The saved tensors ``name`` are the model's, by name and shape."""
    target = model.state_dict()
    if set(state) != set(target):
        odd = sorted(set(state) ^ set(target))
        raise CheckpointError(
            f"{path}: {name} holds other tensors than the model ({', '.join(odd[:3])}): {DAMAGED}"
        )
    for key, tensor in target.items():
        found = getattr(state[key], "shape", None)
        if found != tensor.shape:
            raise CheckpointError(
                f"{path}: {name} holds weights of another shape: {key} {tuple(found or ())} "
                f"then, {tuple(tensor.shape)} now: {DAMAGED}"
            )


def _differences(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``key: then X, now Y`` for the plain values of two records (a plan, an objective) that
    differ; ``layers differ`` (and so on) for their lists and mappings."""
    changed = []
    for key in dict.fromkeys([*then, *now]):
        old, new = then.get(key), now.get(key)
        if old == new:
            continue
        plain = not isinstance(old, (list, dict)) and not isinstance(new, (list, dict))
        changed.append(f"{key}: then {old!r}, now {new!r}" if plain else f"{key} differ")
    return changed


def _size_differences(then: Mapping[str, Any], now: Mapping[str, int]) -> list[str]:
    """``train_samples: then 35, now 54`` for each hold-out size that differs."""
    return [
        f"{key}: then {then.get(key)!r}, now {value!r}"
        for key, value in now.items()
        if then.get(key) != value
    ]


def restore(path: Path, saved: Mapping[str, Any], snapshot: Snapshot) -> Progress:
    """Put the saved weights and optimiser/schedule/scaler states back; return the progress.
    A state that does not fit (parts of a checkpoint from different runs) is refused."""
    snapshot.model.load_state_dict(saved["state_dict"], strict=True)
    _load(path, "optimizer", snapshot.optimizer, saved["optimizer"])
    if snapshot.scheduler is not None:
        _load(path, "scheduler", snapshot.scheduler, saved["scheduler"])
    if snapshot.scaler is not None and saved["scaler"] is not None:
        _load(path, "scaler", snapshot.scaler, saved["scaler"])
    return Progress(
        epoch=saved["epoch"],
        step=saved["step"],
        history=[dict(row) for row in saved["history"]],
        best_epoch=saved["best_epoch"],
        best_validation=saved["best_validation"],
        best_state=dict(saved["best_state"]),
    )


def _load(path: Path, name: str, target: Any, state: Any) -> None:
    """``target.load_state_dict(state)``, its failures turned into one line."""
    try:
        target.load_state_dict(state)
    except (AttributeError, KeyError, ValueError, TypeError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: the saved {name} state does not fit this run ({reason}): {DAMAGED}"
        ) from None
