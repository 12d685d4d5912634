"""What a comparison of defenses runs: the defenses by name (``parse_defenses``), each one's
strengths (``DEFAULT_GRIDS``, or a grid given as ``K=V1,V2,...``: ``parse_grid``,
``strengths``), its units (one model per (defense, strength, seed): ``DefenseUnit``) and its
settings (``CompareConfig``).

A defense name is ``none`` (the undefended model, trained from scratch), ``tl`` (TL-DMI:
public pre-training, a fitted head, the prefix up to where ``auto`` lands frozen, as the
sweep's TL models), a registered defense (``mid``, ``bido``, ``nls``) trained from scratch
under it, or ``tl+NAME``: TL-DMI with that defense while fine-tuning (the paper's combined
setting is ``tl+bido``).

A given grid value list sets the strengths of every chosen defense that has that parameter
(``beta=0.003,0.01,0.02``: three MID models; ``a1=...`` sets both ``bido`` and ``tl+bido``);
several parameters of one defense give their product, the first one varying slowest; a
defense none of whose parameters is given keeps its default grid.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fisher_mi.defenses import DEFENSES, Defense, build_defense, parse_defense_params
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.sweep_config import SweepConfig, Unit

NONE, TL = "none", "tl"
DEFAULT_DEFENSES = ("none", "mid", "bido", "nls", "tl", "tl+bido")


class Strengths(NamedTuple):
    """A defense's default strengths (parameter values, weakest first) and why."""

    points: tuple[dict[str, Any], ...]
    why: str


# the one table of default strengths: each a grid around the published setting, because a
# strength tuned for VGG16 on CelebA may do nothing to, or ruin, a small model
DEFAULT_GRIDS: dict[str, Strengths] = {
    NONE: Strengths(({},), "the undefended model: nothing to vary"),
    TL: Strengths(
        ({},),
        "its strength is the frozen prefix, set per seed by the auto rule (fisher-mi sweep "
        "trains every cutoff)",
    ),
    "mid": Strengths(
        ({"beta": 0.003}, {"beta": 0.01}, {"beta": 0.02}),
        "beta 0.003 is MID's published VGG16/CelebA setting; 0.01 and 0.02 are the stronger "
        "ones the MI literature attacks MID at",
    ),
    "bido": Strengths(
        ({"a1": 0.05, "a2": 0.5}, {"a1": 0.1, "a2": 1.0}, {"a1": 0.2, "a2": 2.0}),
        "(0.05, 0.5) is BiDO-HSIC's published CelebA setting, then twice and four times it: "
        "the ratio a2/a1 = 10 kept, so one number is the strength",
    ),
    "nls": Strengths(
        ({"alpha": -0.025}, {"alpha": -0.05}, {"alpha": -0.1}),
        "alpha -0.05 is the published setting, halved and doubled: the loss is unbounded "
        "below (mean_c -log p_c grows as p_c -> 0), so much stronger smoothing risks "
        "diverging on a small model",
    ),
}


def known_defenses() -> list[str]:
    """Every name ``--defenses`` takes: none, tl, the registered defenses, tl+each."""
    registered = DEFENSES.names()
    return [NONE, TL, *registered, *(f"{TL}+{name}" for name in registered)]


def registered_of(name: str) -> str | None:
    """The registered defense a name trains under (``tl+bido`` -> ``bido``), or None."""
    return None if name in (NONE, TL) else name.removeprefix(f"{TL}+")


def parse_defenses(given: str | Sequence[str]) -> tuple[str, ...]:
    """The defenses of ``--defenses`` (``none,mid,tl+bido`` or a sequence), checked.

    Raises:
        ConfigError: an unknown or repeated name (the message lists the known ones), or none.
    """
    parts = given.split(",") if isinstance(given, str) else list(given)
    names = tuple(part.strip() for part in parts if part.strip())
    known = ", ".join(known_defenses())
    unknown = [name for name in names if name not in known_defenses()]
    if unknown:
        raise ConfigError(f"--defenses: unknown defense {unknown[0]!r}; known: {known}")
    if not names:
        raise ConfigError(f"--defenses names no defense; give some of: {known}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--defenses names a defense twice ({','.join(names)}); name each once")
    return names


def parse_grid(pairs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``K=V1,V2,...`` strings (the repeatable ``--defense-param``) as parameter -> values
    (text, converted to each parameter's type by ``build_defense``)."""
    grid = {}
    for key, text in parse_defense_params(pairs).items():
        values = tuple(value.strip() for value in text.split(","))
        if not all(values):
            raise ConfigError(f"--defense-param {key}: empty value in {text!r}; give V1,V2,...")
        grid[key] = values
    return grid


def _parameters(name: str) -> tuple[str, ...]:
    return tuple(build_defense(name).params())


def strengths(name: str, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The parameter values of each model of defense ``name``: the product of the grid's
    values of its parameters (module docstring), else its ``DEFAULT_GRIDS`` points; values
    typed and checked by ``build_defense``."""
    registered = registered_of(name)
    if registered is None:
        return [{}]
    given = {key: values for key, values in grid.items() if key in _parameters(registered)}
    if not given:
        return [dict(point) for point in DEFAULT_GRIDS[registered].points]
    points = [
        dict(zip(given, values, strict=True)) for values in itertools.product(*given.values())
    ]
    return [{k: build_defense(registered, point).params()[k] for k in point} for point in points]


def check_grid(defenses: Sequence[str], grid: Mapping[str, Sequence[Any]]) -> None:
    """Refuse a grid parameter that none of ``defenses`` has (the message lists theirs)."""
    registered = sorted({r for r in map(registered_of, defenses) if r is not None})
    has = {name: _parameters(name) for name in registered}
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"--defense-param {key} has no values; give {key}=V1,V2,...")
        if not any(key in names for names in has.values()):
            listed = "; ".join(f"{n}: {', '.join(p)}" for n, p in has.items()) or "none"
            raise ConfigError(
                f"--defense-param {key}: none of the defenses has it; their parameters: {listed}"
            )


def params_text(params: Iterable[tuple[str, Any]]) -> str:
    """``a1=0.05,a2=0.5`` (``compare.csv``'s ``params``; empty for none and tl)."""
    return ",".join(f"{key}={value}" for key, value in params)


@dataclass(frozen=True)
class DefenseUnit(Unit):
    """One (defense, strength, seed) model: the sweep's unit (from scratch, or TL-DMI at a
    cutoff) trained under a defense.

    Attributes:
        cutoff: the frozen prefix (block boundary) of a TL model: where ``auto`` lands for the
            seed (set once the seed's rules are known); None: from scratch.
        seed: the training seed.
        defense: its name (``none``, ``mid``, ``tl+bido``).
        params: the defense's parameters that vary in the grid, as (name, value) pairs.
    """

    defense: str = NONE
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """The strength as ``compare.csv`` writes it (``params_text``)."""
        return params_text(self.params)

    @property
    def name(self) -> str:
        """``seed-0/none``, ``seed-0/tl+bido-a1=0.05,a2=0.5``: its folder under the run."""
        return f"seed-{self.seed}/{self.defense}" + (f"-{self.label}" if self.label else "")

    @property
    def transfer(self) -> bool:
        """TL-DMI: starts from the seed's pre-trained model with its fitted head."""
        return self.defense == TL or self.defense.startswith(f"{TL}+")

    def key(self) -> dict[str, Any]:
        """The columns naming it in ``compare.csv`` and ``hits.csv``."""
        return {"defense": self.defense, "params": self.label, "seed": self.seed}

    @property
    def attack_variants(self) -> tuple[str, ...]:
        """The attack options its defense adds (``Defense.attack_variants``; MID: sample)."""
        registered = registered_of(self.defense)
        return () if registered is None else DEFENSES.get(registered).attack_variants

    def build(self) -> Defense | None:
        """A fresh instance of its defense with its parameters (None: none and tl)."""
        registered = registered_of(self.defense)
        return None if registered is None else build_defense(registered, dict(self.params))


@dataclass(frozen=True)
class CompareConfig:
    """What a comparison runs.

    Attributes:
        run: the settings it shares with the sweep (data, attacks, seeds, architectures,
            sizes, device; its ``cutoffs`` are not read).
        defenses: names (``parse_defenses``).
        grid: parameter -> values (``parse_grid``); empty: every defense's default grid.
    """

    run: SweepConfig
    defenses: tuple[str, ...] = DEFAULT_DEFENSES
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_defenses(self.defenses)
        check_grid(self.defenses, self.grid)

    def units(self) -> list[DefenseUnit]:
        """Every (defense, strength, seed), seed by seed, defenses in the given order."""
        return [
            DefenseUnit(None, seed, name, tuple(point.items()))
            for seed in self.run.seeds
            for name in self.defenses
            for point in strengths(name, self.grid)
        ]

    def settings(self) -> dict[str, Any]:
        """What the rows' numbers depend on: the run's settings (``SweepConfig.settings``);
        the defenses, grid, attacks and seeds only say which rows there are."""
        return self.run.settings()
