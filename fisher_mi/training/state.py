"""Checkpoints of a training run: everything ``--resume`` needs, written atomically per epoch.

``checkpoint.pt`` is a self-describing model file (``{"format": "fisher_mi/1", "arch",
"arch_kwargs", "state_dict", "meta"}``, so ``load_model`` reads it) plus a ``"training"`` entry:
the options, the freeze plan, the provenance, the epoch and step reached, the optimiser,
schedule and loss-scaler states, the history, and the best epoch with its weights. All of it is
tensors and plain containers, readable with ``weights_only=True``.

No random-number state is stored: every epoch re-seeds from ``(seed, epoch, rank)`` (see
``epoch``), so the next epoch's randomness follows from the epoch number alone.
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

from fisher_mi.distributed import is_main_process
from fisher_mi.errors import CheckpointError, ConfigError
from fisher_mi.io import load_checkpoint, save_checkpoint, write_table
from fisher_mi.models.checkpoint import FORMAT, plain_values, save_model
from fisher_mi.models.registry import arch_of
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
TRAINING_VERSION = 2  # 2: validation_loss in the history rows, the provenance


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
        """The history as ``history.csv`` has it: ``COLUMNS``, with the kept epoch marked."""
        table = pd.DataFrame(self.history, columns=MEASURED)
        table["kept"] = table["epoch"] == self.best_epoch
        table["kept_because"] = kept_because(self.history, self.best_epoch) if self.history else []
        return table


@dataclass(frozen=True)
class Snapshot:
    """The objects whose state a checkpoint saves, the run's provenance and hold-out sizes."""

    model: nn.Module
    config: TrainConfig
    plan: FreezePlan
    provenance: Provenance
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler | None
    sizes: dict[str, int]


def cpu_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of the model's state dict (safe to keep while training goes on)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def start(folder: Path | None, resume: bool, snapshot: Snapshot) -> Progress:
    """A fresh ``Progress`` (writing ``plan.json``), or the saved one restored from ``folder``
    after checking that it is the same run."""
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
    check_same_run(path, saved, snapshot.config, snapshot.plan)
    return restore(saved, snapshot)


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
    ``class_names``, ``role``, ``pretrained_on``, ``init``, ``defense``, ``plan``), the
    selected epoch and its accuracies, and the options. ``defense`` is None: no training-time
    defense is implemented yet, and readers look the key up."""
    plan = snapshot.plan.to_dict()
    for key in ("layers", "scores"):  # a summary: the whole plan is in plan.json
        plan.pop(key)
    test = progress.best_row()["test_accuracy"]
    return {
        **snapshot.provenance.to_dict(),
        "defense": None,
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
    spec = arch_of(snapshot.model)
    if spec is None:  # train() refuses such a model before the first epoch
        raise ConfigError("only models built by fisher_mi.build_model can be checkpointed")
    scheduler, scaler = snapshot.scheduler, snapshot.scaler
    training = {
        "version": TRAINING_VERSION,
        "config": snapshot.config.to_dict(),
        "plan": snapshot.plan.to_dict(),
        "provenance": snapshot.provenance.to_dict(),
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


def read_training(path: Path) -> dict[str, Any]:
    """The ``"training"`` entry of a checkpoint written by ``save_training``, with the
    model's ``state_dict`` added."""
    payload = load_checkpoint(path)
    training = payload.get("training") if isinstance(payload, dict) else None
    if not isinstance(training, dict) or training.get("version") != TRAINING_VERSION:
        raise CheckpointError(
            f"{path} is not a fisher_mi training checkpoint (version {TRAINING_VERSION}); "
            "resume only from the checkpoint.pt a training run wrote"
        )
    return {**training, "state_dict": payload["state_dict"]}


def check_same_run(
    path: Path, saved: Mapping[str, Any], config: TrainConfig, plan: FreezePlan
) -> None:
    """Refuse to resume with options (other than device and workers) or a plan other than
    the run's own."""
    changed = TrainConfig.from_dict(saved["config"]).differences(config)
    if changed:
        raise ConfigError(
            f"{path} was written with other options (now vs then: {'; '.join(changed[:3])}); "
            "resume with the same options or choose another output folder"
        )
    if saved["plan"] != plan.to_dict():
        theirs = FreezePlan.from_dict(saved["plan"])
        raise ConfigError(
            f"{path} was trained under another freeze plan (cutoff {theirs.cutoff}, rule "
            f"{theirs.rule}; now cutoff {plan.cutoff}, rule {plan.rule}); resume with the "
            "same plan or choose another output folder"
        )


def restore(saved: Mapping[str, Any], snapshot: Snapshot) -> Progress:
    """Put the saved weights and optimiser/schedule/scaler states back; return the progress."""
    snapshot.model.load_state_dict(saved["state_dict"], strict=True)
    snapshot.optimizer.load_state_dict(saved["optimizer"])
    if snapshot.scheduler is not None:
        snapshot.scheduler.load_state_dict(saved["scheduler"])
    if snapshot.scaler is not None and saved["scaler"] is not None:
        snapshot.scaler.load_state_dict(saved["scaler"])
    return Progress(
        epoch=saved["epoch"],
        step=saved["step"],
        history=[dict(row) for row in saved["history"]],
        best_epoch=saved["best_epoch"],
        best_validation=saved["best_validation"],
        best_state=dict(saved["best_state"]),
    )
