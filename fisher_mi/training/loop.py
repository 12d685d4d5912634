"""``train``: the one training loop, for training from scratch, public pre-training and
fine-tuning under a freeze plan, on one process or under ``torchrun``.

The loss is the ``objective``'s batch mean (the labels' cross-entropy by default; KL to a
teacher for a surrogate, ``distill.Distillation``), minimised with SGD or Adam over the
*trained* parameters only: the plan's frozen layers are not given to the optimiser, so no
update, weight decay or momentum can touch them, and ``apply_plan`` holds the frozen BatchNorm
layers in eval mode, so their running statistics stay as they were.

Model selection: the kept epoch is the one with the highest accuracy (the objective's hit
rate: agreement with the teacher for a surrogate) on a hold-out of the training data
(``split_validation``); a tie (common on small data, where a validation part of 16 images is
at 100% after an epoch) goes to the lower validation loss, then to the later epoch
(``selection``), and ``history.csv`` says which epoch was kept and why (``kept``,
``kept_because``). Without a hold-out the last epoch is kept. The test data (the
private-test split) are measured after each epoch and reported, never used to choose. The
BatchNorm statistics of each epoch are recomputed over the training part before it is
measured (``norm_stats``), so the kept model is evaluated as it was trained.

Resume: the weights, optimiser and schedule are saved after every epoch, and an epoch's
randomness depends only on (seed, epoch, rank) (see ``epoch``), so ``resume=True`` reaches
the result of an uninterrupted run, bit for bit on the CPU. The caller's random state is left
as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fisher_mi.defenses import Defense
from fisher_mi.distributed import is_distributed, is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.models.registry import require_arch
from fisher_mi.plan import FreezePlan, apply_plan, prefix_plan
from fisher_mi.training.config import TrainConfig, make_optimizer, make_scheduler
from fisher_mi.training.distill import Distillation
from fisher_mi.training.epoch import EpochRunner
from fisher_mi.training.objective import CrossEntropy, Objective, attached, epoch_values
from fisher_mi.training.provenance import Provenance
from fisher_mi.training.resume import start
from fisher_mi.training.split import split_validation
from fisher_mi.training.state import OUTPUTS, Progress, Snapshot, cpu_state, write_epoch


@dataclass(frozen=True)
class TrainResult:
    """What a run produced; the model itself is trained in place and holds the best epoch.

    Attributes:
        history: one row per epoch, columns ``state.COLUMNS`` (NaN where a split is absent).
        best_epoch: the kept epoch (highest validation accuracy, ties to the lower validation
            loss, then the later epoch; the last without a validation part).
        validation_accuracy: of the selected epoch, or None without a hold-out.
        test_accuracy: of the selected epoch on ``test`` (the private-test split), or None.
        plan: the freeze plan trained under.
        steps: optimiser steps taken in all.
        files: name -> path of what was written under ``out`` (empty without it).
    """

    history: pd.DataFrame
    best_epoch: int
    validation_accuracy: float | None
    test_accuracy: float | None
    plan: FreezePlan
    steps: int
    files: dict[str, Path] = field(default_factory=dict)


def train(
    model: nn.Module,
    private_train: Dataset,
    *,
    config: TrainConfig,
    test: Dataset | None = None,
    plan: FreezePlan | None = None,
    provenance: Provenance | None = None,
    objective: Objective | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place on ``private_train`` under ``plan``; keep the best epoch.

    Args:
        model: the classifier (logits, or a tuple with logits last). With ``out`` it must come
            from ``build_model``/``load_model``, so its checkpoints describe themselves.
        private_train: the training data; ``config.validation_fraction`` of it is held out.
        config: the options (``TrainConfig``).
        test: data measured after each epoch and reported (the private-test split); never
            used to select the epoch.
        plan: which layers to freeze; None trains every layer (cutoff 0). Applied with
            ``apply_plan``, which also overrides any ``requires_grad`` set by hand.
        provenance: what the model is trained on and for, written into ``model.pt`` and
            ``checkpoint.pt`` and compared on resume; None: ``Provenance()``. Its
            ``class_names`` default to those of ``private_train`` (``Provenance.for_data``).
            Role ``surrogate`` needs a ``Distillation`` objective.
        objective: the batch loss and hits (``objective.Objective``); None: ``CrossEntropy()``
            on the labels. ``Distillation(teacher)`` trains a surrogate on the teacher's soft
            labels (``private_train`` is then the public data); a ``Defense``
            (``fisher_mi.defenses.build_defense``) trains a defended model (MID's: on
            ``defense.model_for(model)``, with ``plan`` passed through ``defense.plan_for``).
            Its ``record`` is written into ``model.pt`` and the checkpoint (a defense's also
            as ``defense``), and a resume with another is refused.
        out: folder for ``model.pt`` (the best epoch), ``checkpoint.pt`` (the last epoch,
            with everything ``resume`` needs), ``history.csv`` and ``plan.json``, each written
            atomically, by rank 0 only under ``torchrun``; None writes nothing.
        resume: continue the run whose ``checkpoint.pt`` is in ``out`` (a finished run is
            returned as it is); without it, an existing checkpoint there is refused.
        progress: show a progress bar and one line per epoch.
    """
    if test is private_train:
        raise ConfigError("the test data are the training data; pass the private-test split")
    folder = Path(out) if out is not None else None
    if folder is not None:
        require_arch(model, "its checkpoints could not be read back (or pass out=None)")
    objective = objective if objective is not None else CrossEntropy()
    plan = plan if plan is not None else prefix_plan(model)
    if isinstance(objective, Defense):
        plan = objective.plan_for(plan, model)  # MID: its head appended to the plan, trained
    provenance = provenance or Provenance()
    if provenance.role == "surrogate" and not isinstance(objective, Distillation):
        raise ConfigError(
            "a surrogate learns its teacher's soft labels; pass objective=Distillation(teacher)"
        )
    device = _device(config)
    apply_plan(model.to(device), plan)  # first: a defense reads which layers are trained
    with attached(objective, model, device):  # hooks a defense attached go in the end
        fit_part, validation = split_validation(
            private_train, config.validation_fraction, seed=config.seed
        )
        sizes = {
            "train_samples": len(fit_part),
            "validation_samples": len(validation) if validation is not None else 0,
        }
        snapshot = _snapshot(
            model, config, plan, provenance.for_data(private_train), objective, sizes
        )
        state = start(folder, resume, snapshot)
        runner = EpochRunner(
            model,
            _wrap(model, device),
            config,
            device,
            snapshot.optimizer,
            snapshot.scaler,
            objective,
            progress,
        )
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            while not _finished(state, config):
                row = _epoch(runner, state, fit_part, validation, test)
                improved = state.record(row)
                if improved:
                    state.best_state = cpu_state(model)
                if snapshot.scheduler is not None:
                    snapshot.scheduler.step()
                if folder is not None and is_main_process():
                    write_epoch(folder, snapshot, state, improved=improved)
                if progress and is_main_process():
                    tqdm.write(_describe(row, config.epochs))
    model.load_state_dict(state.best_state)
    model.eval()
    test_accuracy = state.best_row()["test_accuracy"]
    return TrainResult(
        history=state.table(),
        best_epoch=state.best_epoch,
        validation_accuracy=state.best_validation,
        test_accuracy=test_accuracy if test is not None else None,
        plan=plan,
        steps=state.step,
        files={name: folder / name for name in OUTPUTS} if folder is not None else {},
    )


def _snapshot(
    model: nn.Module,
    config: TrainConfig,
    plan: FreezePlan,
    provenance: Provenance,
    objective: Objective,
    sizes: dict[str, int],
) -> Snapshot:
    """The run's snapshot: the optimiser over the trained parameters only, its schedule and
    loss scaler, and the objective's record (taken after ``prepare``)."""
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config)
    record = objective.record()
    return Snapshot(
        model=model,
        config=config,
        plan=plan,
        provenance=provenance,
        objective=record,
        defense=record if isinstance(objective, Defense) else None,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config),
        scaler=torch.amp.GradScaler("cuda") if config.amp else None,
        sizes=sizes,
    )


def _epoch(
    runner: EpochRunner,
    state: Progress,
    fit_part: Dataset,
    validation: Dataset | None,
    test: Dataset | None,
) -> dict[str, float]:
    """Train one epoch and measure it: its history row (``state.MEASURED``, then what the
    objective's schedule logs, e.g. NLS's ``alpha``); advances ``state.step``."""
    start = time.perf_counter()
    epoch = state.epoch + 1
    lr = runner.optimizer.param_groups[0]["lr"]
    scheduled = epoch_values(runner.objective, epoch, runner.config.epochs)
    loss, train_accuracy, state.step = runner.train_epoch(fit_part, epoch, state.step)
    validation_accuracy, validation_loss = runner.evaluate(validation)
    return {
        "epoch": epoch,
        "loss": loss,
        "train_accuracy": train_accuracy,
        "validation_accuracy": validation_accuracy,
        "validation_loss": validation_loss,
        "test_accuracy": runner.evaluate(test)[0],
        "lr": lr,
        "seconds": time.perf_counter() - start,
        **scheduled,
    }


def _device(config: TrainConfig) -> torch.device:
    device = config.torch_device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} was asked for but CUDA is not available; use cpu")
    return device


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel under ``torchrun``. Frozen parameters (requires_grad=False) are
    not registered for gradient reduction, and every trained parameter gets a gradient in a
    classifier's forward, so ``find_unused_parameters`` is not needed."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _finished(state: Progress, config: TrainConfig) -> bool:
    out_of_steps = config.max_steps is not None and state.step >= config.max_steps
    return state.epoch >= config.epochs or out_of_steps


def _describe(row: dict[str, float], epochs: int) -> str:
    """``epoch 3/10, loss 0.2100, train 0.93, validation 0.95, test 0.94 (12.3 s)``."""
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.4f}"]
    for key in ("train", "validation", "test"):
        value = row[f"{key}_accuracy"]
        if value == value:  # not NaN
            parts.append(f"{key} {value:.4f}")
    return ", ".join(parts) + f" ({row['seconds']:.1f} s)"
