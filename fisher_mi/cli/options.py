"""Option groups, defined once and shared by every command that needs them.

Flag names follow DESIGN.md. Each option's destination is the field name of the library
config it feeds (``TrainConfig`` fields, ``fisher_mi.profile`` keywords), so configs are built
from the parsed arguments by field name and a command that profiles always takes the same
Fisher options. Defaults come from the library (the dataclass or the function signature), not
from a second copy here.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from fisher_mi.data import DATASETS
from fisher_mi.defenses import DEFENSES, Defense, build_defense, parse_defense_params
from fisher_mi.errors import ConfigError
from fisher_mi.fisher import BACKENDS, FISHER_CHOICES, profile
from fisher_mi.fisher.profile import MAX_MC_SAMPLES
from fisher_mi.models import ARCHITECTURES
from fisher_mi.training import OPTIMIZERS, SCHEDULES, TrainConfig

MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds; numpy and Python agree below 2**63


def _whole_number(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole_number(text, 1, None, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0, None, "a whole number of at least 0")


def seed_value(text: str) -> int:
    """argparse type: a seed, a whole number from 0 to 2**63 - 1."""
    return _whole_number(text, 0, MAX_SEED, f"a seed from 0 to {MAX_SEED}")


def real_number(text: str) -> float:
    """argparse type: a finite decimal number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def extra_split(text: str) -> tuple[str, str]:
    """argparse type: ``NAME=SPEC``, a further labelled split to profile."""
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SPEC (e.g. inverted=folder:runs/gmi/images), got {text!r}"
        )
    return name, spec


@dataclass(frozen=True)
class Option:
    """One flag: the field it fills (argparse ``dest``) and its argparse settings."""

    dest: str
    flag: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def add_to(self, parser: argparse.ArgumentParser, *, flag: str | None = None) -> None:
        """Add the flag (optionally under another name) to ``parser``."""
        name = flag or self.flag
        settings = dict(self.settings)
        if settings.get("action") is None and "choices" not in settings:
            settings.setdefault("metavar", name.lstrip("-").upper().replace("-", "_"))
        parser.add_argument(name, dest=self.dest, **settings)


def add_group(
    parser: argparse.ArgumentParser,
    options: Iterable[Option],
    *,
    skip: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
) -> None:
    """Add a group's options to ``parser``, leaving out the fields in ``skip``."""
    left_out, names = set(skip), dict(rename or {})
    for option in options:
        if option.dest not in left_out:
            option.add_to(parser, flag=names.get(option.dest))


def values(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The parsed values of a group's options present in ``args``, by field name."""
    return {o.dest: getattr(args, o.dest) for o in options if hasattr(args, o.dest)}


def flag_of(name: str) -> str:
    """The flag of a field: ``weight_decay`` -> ``--weight-decay``."""
    return "--" + name.replace("_", "-")


# -------------------------------------------------------------- every command that computes

RUN_OPTIONS = (
    Option("device", "--device", {"default": None, "help": "cpu, cuda, cuda:1 (default: cpu)"}),
    Option(
        "num_workers",
        "--workers",
        {"type": non_negative_int, "default": 0, "help": "data-loading worker processes"},
    ),
    Option("seed", "--seed", {"type": seed_value, "default": 0, "help": "every random choice"}),
)


def add_out_option(
    parser: argparse.ArgumentParser, *, help: str, default: Path | None = None
) -> None:
    """``--out``: where the command writes; required when it has no ``default``."""
    parser.add_argument("--out", type=Path, default=default, required=default is None, help=help)


def add_data_option(parser: argparse.ArgumentParser, *, help: str, required: bool = True) -> None:
    """``--data SPEC``, listing the registered datasets."""
    parser.add_argument(
        "--data",
        required=required,
        metavar="SPEC",
        help=f"{help}: NAME or NAME:ROOT (known: {', '.join(DATASETS.names())})",
    )


def add_arch_option(
    parser: argparse.ArgumentParser, *, help: str, required: bool = False, default: Any = None
) -> None:
    """``--arch NAME``, listing the registered architectures."""
    parser.add_argument(
        "--arch",
        required=required,
        default=default,
        help=f"{help} (known: {', '.join(ARCHITECTURES.names())})",
    )


# -------------------------------------------------------------- Fisher options

_PROFILE_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(profile).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
# profile() keywords that are not Fisher options: the split label (a command's own business),
# where it runs (RUN_OPTIONS) and the progress bar (always on in the CLI).
NOT_FISHER_OPTIONS = ("split", "device", "num_workers", "seed", "progress")
_FISHER_SETTINGS: dict[str, dict[str, Any]] = {
    "fisher": {
        "choices": FISHER_CHOICES,
        "help": "auto (empirical on private, private-test and inverted splits, true on the "
        "others, both on inverted), empirical (the given labels) or true (the model's)",
    },
    "backend": {"choices": BACKENDS.names(), "help": "how per-sample norms are computed"},
    "batch_size": {"type": positive_int, "help": "samples per forward/backward"},
    "max_samples": {
        "type": positive_int,
        "help": "profile a seeded random subset of at most this many samples per split",
    },
    "mc_samples": {
        "type": positive_int,
        "help": f"label draws per input for --fisher true, at most {MAX_MC_SAMPLES}",
    },
    "chunk_size": {"type": positive_int, "help": "per-sample gradients held at once by vmap"},
    "trainable_only": {"action": "store_true", "help": "skip parameters with requires_grad=False"},
}
FISHER_OPTIONS = tuple(
    Option(
        name,
        flag_of(name),
        {"default": _PROFILE_DEFAULTS[name], **settings}
        | ({"help": f"{settings['help']} (default: {_PROFILE_DEFAULTS[name]})"}),
    )
    for name, settings in _FISHER_SETTINGS.items()
)

# -------------------------------------------------------------- training options

_TRAIN_SETTINGS: dict[str, dict[str, Any]] = {
    "epochs": {"type": positive_int},
    "batch_size": {"type": positive_int},
    "optimizer": {"choices": OPTIMIZERS},
    "lr": {"type": real_number},
    "momentum": {"type": real_number},
    "weight_decay": {"type": real_number},
    "schedule": {"choices": SCHEDULES},
    "amp": {"action": "store_true", "help": "mixed precision (CUDA)"},
    "max_steps": {"type": positive_int, "help": "stop after N steps (smoke runs)"},
    "validation_fraction": {
        "type": real_number,
        "help": "share of the training data held out to pick the best epoch",
    },
}
RUN_FIELDS = tuple(option.dest for option in RUN_OPTIONS)


def _train_option(name: str, default: Any) -> Option:
    settings = dict(_TRAIN_SETTINGS[name])
    if settings.get("action") != "store_true":
        settings.setdefault("help", name.replace("_", " "))
        settings["help"] += f" (default: {default})"
    return Option(name, flag_of(name), {"default": default, **settings})


TRAIN_OPTIONS = tuple(
    _train_option(f.name, f.default)
    for f in fields(TrainConfig)
    if f.name not in RUN_FIELDS and f.default is not MISSING
)


def train_config(args: argparse.Namespace, **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` from the parsed training and run options, by field name."""
    given = values(args, (*TRAIN_OPTIONS, *RUN_OPTIONS))
    return TrainConfig(**{**given, **overrides})


# -------------------------------------------------------------- defenses

DEFENSE_OPTIONS = (
    Option(
        "defense",
        "--defense",
        {
            "default": None,
            "choices": DEFENSES.names(),
            "help": "train with a defense against model inversion, applied while fine-tuning "
            "on the private data (default: none)",
        },
    ),
    Option(
        "defense_params",
        "--defense-param",
        {
            "action": "append",
            "default": [],
            "metavar": "KEY=VALUE",
            "help": "a parameter of --defense, e.g. beta=0.01 (mid), a1=0.05, a2=0.5, "
            "measure=coco (bido), alpha=-0.1 (nls); repeatable",
        },
    ),
)


def defense_from_args(args: argparse.Namespace) -> Defense | None:
    """The defense of ``--defense`` and ``--defense-param`` (``build_defense``), or None."""
    if args.defense is None:
        if args.defense_params:
            raise ConfigError("--defense-param sets a parameter of --defense; pass --defense NAME")
        return None
    return build_defense(args.defense, parse_defense_params(args.defense_params))
