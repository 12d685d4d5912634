"""``TrainConfig``: every option of a training run in one frozen, validated record.

The record is written into each checkpoint, and ``--resume`` refuses to continue a run with
different options (except where it runs: ``device`` and ``num_workers``), so a resumed run is
the run that was started. The optimiser and the learning-rate schedule are built from it here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from fisher_mi.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "cosine", "step")
STEP_DECAY = 0.1  # the "step" schedule multiplies the rate by this, STEPS_PER_RUN times a run
STEPS_PER_RUN = 3
RUN_LOCAL = ("device", "num_workers")  # may change on resume: where, not what, is computed
SEED_LIMIT = 2**63  # torch generators take int64 seeds; the shuffling seed adds the epoch


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training stage (pre-training or fine-tuning).

    Attributes:
        epochs: passes over the training part of the data.
        batch_size: samples per optimiser step (per process under ``torchrun``).
        optimizer: ``"sgd"`` (with ``momentum``, Nesterov off) or ``"adam"``.
        lr: the initial learning rate.
        momentum: SGD momentum; ignored by Adam.
        weight_decay: L2 penalty, applied by the optimiser to trained parameters only.
        schedule: ``"none"``; ``"cosine"`` (lr_e = lr * (1 + cos(pi * e / epochs)) / 2 after
            epoch e); ``"step"`` (lr times 0.1 every ``ceil(epochs / 3)`` epochs).
        seed: every random choice (hold-out, shuffling, dropout) is a function of it; in
            [0, 2**63), the seeds torch's generators accept.
        device: ``cpu``, ``cuda``, ``cuda:1``...; None is the CPU.
        amp: float16 mixed precision with loss scaling (CUDA only).
        max_steps: stop after this many optimiser steps in all (smoke runs); None: no limit.
        validation_fraction: share of the private training data held out to pick the best
            epoch, in [0, 1); 0 keeps the last epoch.
        num_workers: DataLoader worker processes.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    seed: int = 0
    device: str | None = None
    amp: bool = False
    max_steps: int | None = None
    validation_fraction: float = 0.1
    num_workers: int = 0

    def __post_init__(self) -> None:
        _whole("epochs", self.epochs, low=1)
        _whole("batch_size", self.batch_size, low=1)
        _seed(self.seed)
        _whole("num_workers", self.num_workers, low=0)
        if self.max_steps is not None:
            _whole("max_steps", self.max_steps, low=1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _number("lr", self.lr, positive=True)
        _number("momentum", self.momentum)
        _number("weight_decay", self.weight_decay)
        if self.momentum >= 1:
            raise ConfigError(f"momentum must be below 1, got {self.momentum!r}")
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise ConfigError(f"validation_fraction must be a number in [0, 1), got {fraction!r}")
        if not 0 <= fraction < 1:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {fraction!r}")
        kind = self.torch_device.type
        if self.amp and kind != "cuda":
            raise ConfigError(
                f"mixed precision (amp) runs on CUDA only, but the device is {kind!r}; "
                "pass device='cuda' or drop amp"
            )

    @property
    def torch_device(self) -> torch.device:
        """``device`` as a ``torch.device`` (None is the CPU); an unparsable name is refused
        here, when the options are made, not at the first tensor moved."""
        try:
            return torch.device(self.device if self.device is not None else "cpu")
        except RuntimeError:
            raise ConfigError(f"device must be cpu, cuda or cuda:N, got {self.device!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values, as checkpoints and ``model.pt`` meta store them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The options ``to_dict`` wrote, validated again; keys this version does not know
        are ignored and missing ones take their defaults, so older records still read."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def differences(self, now: TrainConfig) -> list[str]:
        """``name: then X, now Y`` for every option of ``now`` that differs from these (the
        saved ones) and changes what a run computes (all but ``RUN_LOCAL``)."""
        return [
            f"{f.name}: then {getattr(self, f.name)!r}, now {getattr(now, f.name)!r}"
            for f in fields(self)
            if f.name not in RUN_LOCAL and getattr(self, f.name) != getattr(now, f.name)
        ]


def _whole(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")


def _seed(value: object) -> None:
    """Refuse a seed outside [0, 2**63): a larger one overflows deep inside torch."""
    _whole("seed", value, low=0)
    if value >= SEED_LIMIT:  # type: ignore[operator]
        raise ConfigError(f"seed must be a whole number in [0, 2**63), got {value!r}")


def _number(name: str, value: object, *, positive: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "positive" if positive else "zero or more"
        raise ConfigError(f"{name} must be a finite number, {bound}, got {value!r}")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def make_optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser over ``parameters`` (the trained ones only: frozen parameters never get
    a momentum buffer or weight decay)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule (stepped once after every epoch), or None."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        every = math.ceil(config.epochs / STEPS_PER_RUN)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=STEP_DECAY)
    return None
