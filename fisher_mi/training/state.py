"""Checkpoints of a training run: everything ``--resume`` needs, written atomically per epoch.

``checkpoint.pt`` is a self-describing model file (``{"format": "fisher_mi/1", "arch",
"arch_kwargs", "state_dict", "meta"}``, so ``load_model`` reads it) plus a ``"training"`` entry:
the options, the objective's record, the freeze plan, the provenance and the hold-out sizes,
the epoch and step reached, the optimiser, schedule and loss-scaler states, the history, and
the best epoch with its weights. All of it is tensors and plain containers, readable with
``weights_only=True``.

No random-number state is stored: every epoch re-seeds from ``(seed, epoch, rank)`` (see
``epoch``), so the next epoch's randomness follows from the epoch number alone. Reading a
checkpoint back, and checking that it belongs to the run being resumed, is ``resume``'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from fisher_mi.io import save_checkpoint, write_table
from fisher_mi.models.checkpoint import FORMAT, plain_values, save_model
from fisher_mi.models.registry import require_arch
from fisher_mi.plan import FreezePlan
from fisher_mi.training.config import TrainConfig
from fisher_mi.training.provenance import Provenance
from fisher_mi.training.selection import has_validation, kept_because, selection_key

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
HISTORY = "history.csv"
PLAN = "plan.json"
OUTPUTS = (MODEL, HISTORY, PLAN, CHECKPOINT)
MEASURED = [  # what each epoch measures: the history rows a checkpoint stores
    "epoch",
    "loss",
    "train_accuracy",
    "validation_accuracy",
    "validation_loss",
    "test_accuracy",
    "lr",
    "seconds",
]
COLUMNS = [*MEASURED, "kept", "kept_because"]  # history.csv: which epoch is kept, and why
TRAINING_VERSION = 3  # 2: validation_loss in the rows, provenance, sizes; 3: the objective


@dataclass
class Progress:
    """How far a run got: epochs and steps done, the history, and the best epoch so far.

    ``best_validation`` is None without a validation hold-out (the last epoch is then the
    best); ``best_state`` holds CPU copies of the best epoch's weights and buffers (kept by
    the caller when ``record`` says the epoch is the best).
    """

    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_validation: float | None = None
    best_state: dict[str, Tensor] = field(default_factory=dict)

    def record(self, row: dict[str, float]) -> bool:
        """Append an epoch's history row; return whether it becomes the kept epoch (the
        largest ``selection_key``; without validation, every epoch replaces the last)."""
        improves = (
            not self.history
            or not has_validation(row)
            or selection_key(row) > selection_key(self.best_row())
        )
        self.history.append(row)
        self.epoch = int(row["epoch"])
        if improves:
            self.best_epoch = self.epoch
            self.best_validation = row["validation_accuracy"] if has_validation(row) else None
        return improves

    def best_row(self) -> dict[str, float]:
        """The history row of the kept epoch."""
        return next(row for row in self.history if row["epoch"] == self.best_epoch)

    def table(self) -> pd.DataFrame:
        """The history as ``history.csv`` has it: ``COLUMNS``, with the kept epoch marked, and
        before ``kept`` the values an objective's schedule logged (NLS's ``alpha``)."""
        logged = [key for row in self.history for key in row if key not in MEASURED]
        table = pd.DataFrame(self.history, columns=[*MEASURED, *dict.fromkeys(logged)])
        table["kept"] = table["epoch"] == self.best_epoch
        table["kept_because"] = kept_because(self.history, self.best_epoch) if self.history else []
        return table


@dataclass(frozen=True)
class Snapshot:
    """The objects whose state a checkpoint saves, the run's provenance and hold-out sizes,
    and the objective's ``record`` (taken once: a teacher's fingerprint hashes its weights);
    ``defense`` is that record when the objective is a defense (``model.pt``'s ``defense``),
    else None."""

    model: nn.Module
    config: TrainConfig
    objective: dict[str, Any]
    plan: FreezePlan
    provenance: Provenance
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler | None
    sizes: dict[str, int]
    defense: dict[str, Any] | None = None


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of the model's state dict (safe to keep while training goes on)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def write_epoch(folder: Path, snapshot: Snapshot, progress: Progress, *, improved: bool) -> None:
    """Write this epoch's outputs: ``model.pt`` when the epoch is the best so far, then
    ``history.csv``, then ``checkpoint.pt``. The checkpoint comes last, so a run interrupted
    while writing resumes from the previous epoch and rewrites the rest identically."""
    meta = model_meta(snapshot, progress)
    if improved:
        save_model(snapshot.model, folder / MODEL, meta=meta)
    write_table(folder / HISTORY, progress.table())
    save_training(folder / CHECKPOINT, snapshot, progress, meta={**meta, "epoch": progress.epoch})


def model_meta(snapshot: Snapshot, progress: Progress) -> dict[str, Any]:
    """``model.pt``'s meta: the provenance (DESIGN.md, Outputs: ``data``, ``public``,
    ``class_names``, ``role``, ``pretrained_on``, ``init``, ``defense``, ``plan``; a
    surrogate's ``teacher`` and ``teacher_sha256``), the objective's record, the selected epoch
    and its accuracies, and the options. ``defense`` is the defense's record (``{"name",
    "params", ...}``), None for an undefended model."""
    plan = snapshot.plan.to_dict()
    for key in ("layers", "scores"):  # a summary: the whole plan is in plan.json
        plan.pop(key)
    test = progress.best_row()["test_accuracy"]
    return {
        **snapshot.provenance.to_dict(),
        "defense": snapshot.defense,
        "objective": snapshot.objective,
        "best_epoch": progress.best_epoch,
        "validation_accuracy": progress.best_validation,
        "private_test_accuracy": None if math.isnan(test) else test,
        "epochs_run": progress.epoch,
        "steps": progress.step,
        **snapshot.sizes,
        "plan": plan,
        "config": snapshot.config.to_dict(),
    }


def save_training(
    path: Path, snapshot: Snapshot, progress: Progress, *, meta: Mapping[str, Any]
) -> Path:
    """Write ``checkpoint.pt`` atomically (see the module docstring for its contents)."""
    spec = require_arch(snapshot.model, "its checkpoints could not be read back")
    scheduler, scaler = snapshot.scheduler, snapshot.scaler
    training = {
        "version": TRAINING_VERSION,
        "config": snapshot.config.to_dict(),
        "objective": dict(snapshot.objective),
        "plan": snapshot.plan.to_dict(),
        "provenance": snapshot.provenance.to_dict(),
        "sizes": dict(snapshot.sizes),
        "epoch": progress.epoch,
        "step": progress.step,
        "history": [dict(row) for row in progress.history],
        "best_epoch": progress.best_epoch,
        "best_validation": progress.best_validation,
        "best_state": progress.best_state,
        "optimizer": snapshot.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    payload = {
        "format": FORMAT,
        "arch": spec.name,
        "arch_kwargs": dict(spec.kwargs),
        "state_dict": cpu_state(snapshot.model),
        "meta": plain_values(meta),
        "training": training,
    }
    return save_checkpoint(path, payload)
