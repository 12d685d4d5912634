"""``FreezePlan``: which layers a fine-tuning run freezes, why, and at what cost; as JSON.

A plan is a prefix freeze of the model it was made from: ``layers`` in depth order
(``named_layers``), layers ``[:cutoff]`` frozen, ``[cutoff:]`` trained. It records the rule
and parameters that chose the cutoff, the per-layer scores the rule used, whether the cutoff
was overridden by hand, and two fractions of what stays trainable: of the parameters and of
the private Fisher mass (``None`` when the table has no private split or no private mass).
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fisher_mi.errors import ConfigError
from fisher_mi.io import write_json
from fisher_mi.plan.table import few

FORMAT = "fisher_mi/plan/1"
BN_STATS = ("frozen", "update")


@dataclass(frozen=True)
class FreezePlan:
    """A prefix freeze: layers with depth < ``cutoff`` frozen, the rest fine-tuned.

    Attributes:
        layers: layer names in depth order, as ``named_layers`` gives them.
        cutoff: number of frozen layers, 0 (train all) to len(layers) - 1: at least the last
            layer is always trained, a plan with nothing to fine-tune is refused.
        rule: the registered name of the rule that scored the layers (aliases resolved).
        params: the rule's parameters, defaults filled in.
        scores: layer -> the rule's score for it (empty for ``fixed``).
        rule_cutoff: the cutoff the rule chose; differs from ``cutoff`` only when overridden.
        override: True when ``cutoff`` was given by hand rather than taken from the rule.
        trainable_param_fraction: share of the model's parameters in trained layers.
        trainable_private_fisher_fraction: share of the private ``fisher_trace`` in trained
            layers, or None (no private split, or zero private Fisher).
        bn_stats: ``"frozen"``: normalisation layers in the frozen prefix keep their running
            statistics (they stay in eval mode under ``model.train()``); ``"update"``: they
            re-estimate them on the private data like any layer in train mode.
    """

    layers: tuple[str, ...]
    cutoff: int
    rule: str
    params: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    rule_cutoff: int | None = None
    override: bool = False
    trainable_param_fraction: float | None = None
    trainable_private_fisher_fraction: float | None = None
    bn_stats: str = "frozen"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ConfigError("a freeze plan needs at least one layer; make it from a Fisher table")
        repeated = sorted({name for name in self.layers if self.layers.count(name) > 1})
        if repeated:
            raise ConfigError(f"layers {few(repeated)} appear twice in the plan; remake the plan")
        object.__setattr__(self, "cutoff", check_cutoff(self.cutoff, len(self.layers)))
        if self.bn_stats not in BN_STATS:
            raise ConfigError(
                f"bn_stats must be one of {', '.join(BN_STATS)}, got {self.bn_stats!r}"
            )

    @property
    def frozen(self) -> tuple[str, ...]:
        """Layers kept at their pre-trained values: depth < cutoff."""
        return self.layers[: self.cutoff]

    @property
    def trained(self) -> tuple[str, ...]:
        """Layers fine-tuned on the private data: depth >= cutoff."""
        return self.layers[self.cutoff :]

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, with the frozen and trained lists spelled out for
        readers of ``plan.json`` (``from_dict`` checks they agree with layers and cutoff)."""
        return {
            "format": FORMAT,
            "rule": self.rule,
            "params": dict(self.params),
            "cutoff": self.cutoff,
            "rule_cutoff": self.rule_cutoff,
            "override": self.override,
            "n_layers": len(self.layers),
            "trainable_param_fraction": self.trainable_param_fraction,
            "trainable_private_fisher_fraction": self.trainable_private_fisher_fraction,
            "bn_stats": self.bn_stats,
            "layers": list(self.layers),
            "frozen": list(self.frozen),
            "trained": list(self.trained),
            "scores": dict(self.scores),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FreezePlan:
        """The inverse of ``to_dict``; refuses other formats and inconsistent plans."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(
                f"not a fisher_mi freeze plan (format {found!r}, expected {FORMAT!r}); "
                "make one with `fisher-mi plan`"
            )
        missing = [key for key in ("layers", "cutoff", "rule") if key not in data]
        if missing:
            raise ConfigError(f"the freeze plan lacks {', '.join(missing)}; remake the plan")
        plan = cls(
            layers=tuple(data["layers"]),
            cutoff=data["cutoff"],
            rule=data["rule"],
            params=dict(data.get("params", {})),
            scores=dict(data.get("scores", {})),
            rule_cutoff=data.get("rule_cutoff"),
            override=bool(data.get("override", False)),
            trainable_param_fraction=data.get("trainable_param_fraction"),
            trainable_private_fisher_fraction=data.get("trainable_private_fisher_fraction"),
            bn_stats=data.get("bn_stats", "frozen"),
        )
        for key in ("frozen", "trained"):
            if key in data and tuple(data[key]) != getattr(plan, key):
                raise ConfigError(
                    f"the plan's {key!r} list disagrees with its layers and cutoff "
                    f"{plan.cutoff}; remake the plan rather than editing the lists"
                )
        return plan

    def to_json(self) -> str:
        """``to_dict`` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FreezePlan:
        """Parse ``to_json``'s text; invalid JSON is one ``ConfigError`` naming the line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"the freeze plan is not valid JSON ({err.msg} at line {err.lineno}); "
                "remake it with `fisher-mi plan`"
            ) from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON, atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FreezePlan:
        """Read a plan written by ``save`` (``fisher-mi plan``)."""
        source = Path(path)
        if source.is_dir():
            raise ConfigError(
                f"freeze plan {source} is a folder; give the plan file, e.g. {source / 'plan.json'}"
            )
        if not source.is_file():
            raise ConfigError(
                f"freeze plan {source} does not exist; make one with `fisher-mi plan`"
            )
        return cls.from_json(source.read_text())

    def summary(self) -> str:
        """A few lines for the terminal: cutoff, frozen/trained counts, fractions."""
        params = ", ".join(f"{key}={value}" for key, value in self.params.items())
        how = f" (rule {self.rule} chose {self.rule_cutoff}; set by hand)" if self.override else ""
        lines = [
            f"rule {self.rule}({params}): cutoff {self.cutoff} of {len(self.layers)} layers{how}",
            f"frozen {_layers(len(self.frozen))}: {few(self.frozen) or '-'}",
            f"trained {_layers(len(self.trained))}: {few(self.trained)}",
            f"trainable parameters: {_percent(self.trainable_param_fraction)}; "
            f"trainable private Fisher mass: {_percent(self.trainable_private_fisher_fraction)}; "
            f"frozen BatchNorm statistics: {self.bn_stats}",
        ]
        return "\n".join(lines)


def _layers(count: int) -> str:
    return f"{count} layer" if count == 1 else f"{count} layers"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def check_cutoff(cutoff: object, n_layers: int) -> int:
    """Refuse a cutoff outside 0..n_layers-1 (n_layers would leave nothing to fine-tune)."""
    if (
        isinstance(cutoff, bool)
        or not isinstance(cutoff, numbers.Integral)
        or not 0 <= cutoff < n_layers
    ):
        raise ConfigError(
            f"cutoff must be a whole number from 0 (train all) to {n_layers - 1} (train only "
            f"the last layer) for {n_layers} layers, got {cutoff!r}"
        )
    return int(cutoff)
