"""``GANTrainConfig``: every option of a GAN-prior training run, and how long a run lasts.

A *step* is one generator update together with its ``n_critic`` discriminator updates (the
unit of PLG-MI's ``max_iteration``); an *epoch* is one pass over the training images, one
discriminator update per batch. ``epochs`` or ``steps`` (not both) sets the length; neither
takes the preset's length (``default_length``):

- ``reference``: GMI-Attack ``MNIST/MNIST.json`` 100 epochs at 32 px and ``Celeba/celeba.json``
  280 epochs at 64 px (gmi); Knowledge-Enriched-DMI ``config/celeba.json`` 120 epochs
  (kedmi); PLG-MI-Attack ``train_cgan.py`` ``--max_iteration 30000`` steps (plgmi).
- ``cpu``: ``CPU_STEPS`` steps, measured on 2 CPU cores on the bundled digits (see the
  constant); *not the reference*.

The record is written into each checkpoint, and a resumed run must have the same options
except where it runs (``device``, ``num_workers``) and how long (``epochs``, ``steps``: no
schedule depends on the length, so a run resumed with a longer one is the longer run, as long
as the saved run ended with a whole epoch; ``state.check_same_run``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from fisher_mi.attacks.priors import PRESETS, PRIORS
from fisher_mi.errors import ConfigError

RUN_LOCAL = ("device", "num_workers")  # may change on resume: where, not what, is computed
LENGTH = ("epochs", "steps")  # may change on resume too: an epoch does not depend on them
SEED_LIMIT = 2**63
TOP_N = 30  # PLG-MI top_n_selection.py --top_n, 30 in the paper's CelebA runs
INVERSION_WEIGHT = 0.2  # PLG-MI train_cgan.py --alpha: weight of the max-margin loss on G
# cpu preset: 400 generator steps (2000 critic steps) of a gmi prior at batch 64 on the
# bundled digits (896 public images) took 179 s on 2 shared CPU cores (0.26 s a step
# at the quietest): blurred but recognisable digits (100 steps: 63 s, noise; 300: 148 s, blobs;
# 600: 236 s, clearer), leaving time for an attack within the 5 minutes. kedmi and
# plgmi take the same count.
CPU_STEPS = 400
REFERENCE_EPOCHS = {("gmi", 32): 100, ("gmi", 64): 280, ("kedmi", 32): 120, ("kedmi", 64): 120}
REFERENCE_STEPS = {"plgmi": 30000}


@dataclass(frozen=True)
class GANTrainConfig:
    """Options of one GAN-prior training run.

    Attributes:
        kind: the prior kind (a key of ``PRIORS``: gmi, kedmi, plgmi).
        preset: ``cpu`` (narrow networks, short runs; not the reference) or ``reference``.
        epochs: passes over the training images; None: ``steps`` or the preset's length.
        steps: generator steps; None: ``epochs`` or the preset's length.
        batch_size: images per discriminator update (and latents per generator update).
        seed: the initial weights and every draw (shuffles, latents, penalty weights,
            pseudo-label classes, augmentations) are functions of it.
        device: ``cpu``, ``cuda``, ``cuda:1``...; None is the CPU.
        num_workers: DataLoader worker processes.
        top_n: public images kept per target class as PLG-MI's pseudo-labelled data.
        inversion_weight: weight of the max-margin inversion loss in PLG-MI's generator loss.
    """

    kind: str
    preset: str = "cpu"
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    seed: int = 0
    device: str | None = None
    num_workers: int = 0
    top_n: int = TOP_N
    inversion_weight: float = INVERSION_WEIGHT

    def __post_init__(self) -> None:
        PRIORS.get(self.kind)  # an unknown kind: the message lists the registered ones
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError(
                f"both epochs ({self.epochs}) and steps ({self.steps}) were given; pass one"
            )
        for name in ("epochs", "steps"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), low=1)
        _whole("batch_size", self.batch_size, low=2)  # BatchNorm cannot train on one image
        _whole("seed", self.seed, low=0)
        if self.seed >= SEED_LIMIT:
            raise ConfigError(f"seed must be a whole number in [0, 2**63), got {self.seed!r}")
        _whole("num_workers", self.num_workers, low=0)
        _whole("top_n", self.top_n, low=1)
        weight = self.inversion_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"inversion_weight must be a number, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"inversion_weight must be finite and >= 0, got {weight!r}")
        self.torch_device  # noqa: B018  (refuse an unparsable device now)

    @property
    def torch_device(self) -> torch.device:
        """``device`` as a ``torch.device`` (None is the CPU)."""
        try:
            return torch.device(self.device if self.device is not None else "cpu")
        except RuntimeError:
            raise ConfigError(f"device must be cpu, cuda or cuda:N, got {self.device!r}") from None

    def length(self, image_size: int) -> tuple[int | None, int | None]:
        """``(epochs, steps)`` of the run, exactly one of them None."""
        if self.epochs is not None or self.steps is not None:
            return self.epochs, self.steps
        return default_length(self.kind, self.preset, image_size)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain values, as checkpoints and GAN meta store them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANTrainConfig:
        """The options ``to_dict`` wrote, validated again; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def differences(self, now: GANTrainConfig, *, length: bool = False) -> list[str]:
        """``name: then X, now Y`` for each option of ``now`` that differs from these (the
        saved ones) and changes what an epoch computes (all but ``RUN_LOCAL`` and
        ``LENGTH``), or, with ``length``, for the length options only."""
        names = LENGTH if length else [f.name for f in fields(self) if f.name not in LENGTH]
        return [
            f"{name}: then {getattr(self, name)!r}, now {getattr(now, name)!r}"
            for name in names
            if name not in RUN_LOCAL and getattr(self, name) != getattr(now, name)
        ]


def default_length(kind: str, preset: str, image_size: int) -> tuple[int | None, int | None]:
    """The preset's ``(epochs, steps)`` for ``kind`` at ``image_size`` (module docstring)."""
    if preset == "reference":
        if kind in REFERENCE_STEPS:
            return None, REFERENCE_STEPS[kind]
        return REFERENCE_EPOCHS[(kind, image_size)], None
    return None, CPU_STEPS


def _whole(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")
