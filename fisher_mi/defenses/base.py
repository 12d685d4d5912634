"""The defense plug-in: ``Defense`` (a training objective with settings), its registry, and
``build_defense`` (the one way to make a defense from a name and parameters).

A defense is an objective of the one training loop (``fisher_mi.training.objective``): it
may change the model before training (``model_for``: MID's VIB head) and the freeze plan it is
trained under (``plan_for``), turns each batch's model output into a ``BatchLoss``, may look
at the model once before the
first step (``prepare``: BiDO hooks the hidden layers it regularises), may change with the
epoch (``start_epoch``: negative label smoothing's schedule, whose values the loop writes
into ``history.csv``), and lets go of what it attached at the end (``release``). Its
``record`` (``{"name", "params"}``) lands in ``model.pt``'s meta under ``defense``, and
``build_defense(**record)`` makes the same defense again, so a comparison can rebuild any
defended run from its file.

``BatchLoss`` lives here, not in ``training``, because defenses come before training in the
import order and must return it; ``fisher_mi.training`` re-exports it.
"""

from __future__ import annotations

import contextlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from fisher_mi.errors import ConfigError
from fisher_mi.plan import FreezePlan
from fisher_mi.registry import Registry


@dataclass(frozen=True)
class BatchLoss:
    """What an objective makes of one batch.

    Attributes:
        loss: scalar, the batch mean (what the optimiser minimises; evaluation sums
            ``loss * batch size`` over the data).
        hits: scalar count of the batch's samples counted as correct.
    """

    loss: Tensor
    hits: Tensor


def top1_hits(logits: Tensor, y: Tensor) -> Tensor:
    """The number of top-1 predictions equal to the label (the loop's accuracy)."""
    return (logits.detach().argmax(dim=1) == y).sum()


class Defense(ABC):
    """Base of the registered defenses: a dataclass whose init fields are its parameters.

    Subclasses are dataclasses that define ``__call__`` (the batch loss) and validate their
    parameters in ``__post_init__``; ``name`` is set by ``register_defense``.
    """

    name: ClassVar[str] = ""
    # method options (experiments.stages.METHOD_OPTIONS) its models are also attacked with
    attack_variants: ClassVar[tuple[str, ...]] = ()

    def model_for(self, model: nn.Module) -> nn.Module:
        """The model this defense trains, made from ``model`` before it is planned and
        trained: ``model`` itself by default (MID: a copy with its VIB head)."""
        return model

    def plan_for(self, plan: FreezePlan, model: nn.Module) -> FreezePlan:
        """The freeze plan ``train`` applies to ``model`` (the one ``model_for`` made) when
        asked for ``plan``: ``plan`` itself by default (MID: with its head trained)."""
        return plan

    def prepare(self, model: nn.Module, device: torch.device) -> None:  # noqa: B027 (no-op hook)
        """Check ``model`` (already under its freeze plan) and attach what the loss needs;
        nothing by default."""

    @abstractmethod
    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """The batch's loss and hits from the model's raw ``output``, its inputs ``x`` and
        labels ``y``."""

    def start_epoch(self, epoch: int, epochs: int) -> dict[str, float]:
        """Called before epoch ``epoch`` (1-based) of ``epochs``; returns values to log in
        that epoch's ``history.csv`` row (none by default)."""
        return {}

    def release(self) -> None:  # noqa: B027 (a no-op unless prepare attached something)
        """Remove what ``prepare`` attached (nothing by default)."""

    def params(self) -> dict[str, Any]:
        """The parameters (the dataclass's init fields) and their values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}  # type: ignore[arg-type]

    def record(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}``: written into checkpoints, compared on resume,
        and enough for ``build_defense(**record)``."""
        return {"name": self.name, "params": self.params()}


DEFENSES: Registry[type[Defense]] = Registry("defense")
D = TypeVar("D", bound=type[Defense])


def register_defense(name: str) -> Callable[[D], D]:
    """Class decorator: register a ``Defense`` dataclass under ``name``."""

    def decorate(cls: D) -> D:
        cls.name = name
        DEFENSES.add(name, cls)
        return cls

    return decorate


def build_defense(name: str, params: Mapping[str, Any] | None = None) -> Defense:
    """The registered defense ``name`` with ``params`` (others at their defaults).

    Values may be given as text (the CLI's ``--defense-param K=V``): each is converted to the
    type of the parameter's default, so ``beta="0.01"`` and ``beta=0.01`` build the same
    defense.

    Raises:
        RegistryError: ``name`` is not a registered defense (the message lists them).
        ConfigError: a parameter the defense does not have, or a value of the wrong kind.
    """
    cls = DEFENSES.get(name)
    known = {f.name: f for f in fields(cls) if f.init}  # type: ignore[arg-type]
    given = dict(params or {})
    unknown = [key for key in given if key not in known]
    if unknown:
        listed = ", ".join(known) or "none"
        raise ConfigError(
            f"defense {name!r} has no parameter {unknown[0]!r}; its parameters: {listed}"
        )
    return cls(**{key: _converted(name, known[key], value) for key, value in given.items()})


def _converted(defense: str, field: Field[Any], value: Any) -> Any:
    """``value`` as the type of ``field``'s default (float, int or str)."""
    kind = type(field.default) if field.default is not MISSING else str
    if isinstance(value, str) and kind is not str:
        with contextlib.suppress(json.JSONDecodeError):  # text stays text
            value = json.loads(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is float and number:
        return float(value)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ConfigError(
        f"defense {defense!r} parameter {field.name} must be a {kind.__name__}, got {value!r}"
    )


def parse_defense_params(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (the CLI's repeatable ``--defense-param``) as a dict of text
    values, converted to each parameter's type by ``build_defense``."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or not text.strip():
            raise ConfigError(f"a defense parameter is KEY=VALUE (e.g. beta=0.01), got {pair!r}")
        if key in params:
            raise ConfigError(f"defense parameter {key!r} is given twice; give it once")
        params[key] = text.strip()
    return params


def check_number(defense: str, name: str, value: Any, *, low: float | None = None) -> None:
    """Refuse a parameter that is not a finite number, or (with ``low``) below ``low``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or (low is not None and value < low):
        bound = f" of at least {low:g}" if low is not None else ""
        raise ConfigError(
            f"defense {defense!r} parameter {name} must be a finite number{bound}, got {value!r}"
        )
