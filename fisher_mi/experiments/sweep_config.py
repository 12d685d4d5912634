"""What a sweep runs: its settings (``SweepConfig``, ``QUICK``), its units (one model per
(cutoff, seed)) and where TL-DMI's hand-set cutoff lands (``paper_cutoff``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from fisher_mi.errors import ConfigError
from fisher_mi.plan import prefix_plan
from fisher_mi.training import HEAD_EPOCHS

# TL-DMI's hand-set cutoffs train 28.5% of IR-152's parameters (issue 11; Ho et al., CVPR 2024).
PAPER_TRAINABLE_FRACTION = 0.285
SWEPT_RULES = ("fixed", "mass", "knee", "ratio", "rgn", "auto")
# (target, evaluator) architectures by input size, as the README recommends
DEFAULT_ARCHS = {32: ("mcnn", "scnn"), 64: ("vgg_small", "resnet18")}
PRIOR_SEED = 0  # the shared gmi prior, the kedmi priors and the evaluator
# which rows a sweep holds, not how they are computed: may differ between runs into one folder
SWEPT_ATTACKS = ("gmi", "kedmi", "plgmi")
ROW_FIELDS = ("cutoffs", "attacks", "seeds", "device", "num_workers")


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs.

    Attributes:
        data: the private data spec (``mnist``, ``att:ROOT``); its public split is the public
            data unless ``public`` is given.
        cutoffs: ``all`` (every block boundary but the last) or block boundaries.
        attacks: methods, each with its own protocol (``SWEPT_ATTACKS``: gmi with the one
            shared prior, kedmi and plgmi with a prior per model).
        seeds: training seeds; each gets its own pre-training, TL models and undefended model.
        arch: the targets' architecture (default by image size: mcnn at 32 px, vgg_small at 64).
        evaluator_arch: another architecture (default: scnn at 32 px, resnet18 at 64).
        public: the public data spec (default: ``data``).
        epochs: fine-tuning and from-scratch epochs; ``pretrain_epochs`` for the public stage,
            ``head_epochs`` for the new head fitted alone after it (``fit_head``).
        batch_size: images per step of every training and of the priors.
        lr, max_steps: training options (SGD, cosine schedule).
        gan_steps: generator steps of each prior (None: the ``cpu`` preset's length).
        iterations: attack iterations (None: each method's default).
        per_identity: reconstructions per identity.
        profile_samples: samples per split profiled for the rules.
        device, num_workers: where it runs.
    """

    data: str
    cutoffs: str | tuple[int, ...] = "all"
    attacks: tuple[str, ...] = ("gmi",)
    seeds: tuple[int, ...] = (0,)
    arch: str | None = None
    evaluator_arch: str | None = None
    public: str | None = None
    epochs: int = 10
    pretrain_epochs: int = 10
    head_epochs: int = HEAD_EPOCHS
    batch_size: int = 64
    lr: float = 0.01
    max_steps: int | None = None
    gan_steps: int | None = None
    iterations: int | None = None
    per_identity: int = 5
    profile_samples: int = 500
    device: str | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        unknown = [name for name in self.attacks if name not in SWEPT_ATTACKS]
        if not self.attacks or unknown:
            raise ConfigError(
                f"--attacks takes {', '.join(SWEPT_ATTACKS)}, got {','.join(self.attacks)!r}"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds must be distinct seeds, got {list(self.seeds)}")

    def settings(self) -> dict[str, Any]:
        """What the rows' numbers depend on (all but ``ROW_FIELDS``)."""
        return {k: v for k, v in asdict(self).items() if k not in ROW_FIELDS}


# --quick: a sweep in minutes on two CPU cores (fewer epochs, steps, draws)
QUICK = {
    "epochs": 3,
    "pretrain_epochs": 3,
    "head_epochs": 2,
    "gan_steps": 100,
    "iterations": 100,
    "per_identity": 2,
    "profile_samples": 200,
}


def quick_config(data: str, *, quick: bool = False, **given: Any) -> SweepConfig:
    """A ``SweepConfig`` from the given fields, ``QUICK`` filling the others when ``quick``."""
    known = {f.name for f in fields(SweepConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"sweep has no option {unknown[0]!r}; its options: {sorted(known)}")
    return SweepConfig(data=data, **{**(QUICK if quick else {}), **given})


def trainable_fraction(model: nn.Module, cutoff: int) -> float:
    """The share of ``model``'s parameters trained when the first ``cutoff`` layers are frozen."""
    return float(prefix_plan(model, cutoff).trainable_param_fraction)


def paper_cutoff(model: nn.Module, cutoffs: Sequence[int]) -> int:
    """The cutoff among ``cutoffs`` whose trainable parameter fraction is nearest to
    ``PAPER_TRAINABLE_FRACTION`` (ties: the smaller cutoff, training more)."""
    return min(
        cutoffs, key=lambda c: (abs(trainable_fraction(model, c) - PAPER_TRAINABLE_FRACTION), c)
    )


@dataclass(frozen=True)
class Unit:
    """One (cutoff, seed) run; ``cutoff`` None is the undefended model."""

    cutoff: int | None
    seed: int

    @property
    def name(self) -> str:
        """``seed-0/cutoff-4`` or ``seed-0/scratch``."""
        model = "scratch" if self.cutoff is None else f"cutoff-{self.cutoff}"
        return f"seed-{self.seed}/{model}"
