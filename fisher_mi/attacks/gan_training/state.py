"""What a GAN training run writes each epoch, and reading ``checkpoint.pt`` back to resume.

Each epoch writes, in this order: ``samples/step_<n>.png`` (a grid of the generator's images,
in eval mode, for latents fixed by the seed; n = generator steps so far), ``history.csv``
(one row per epoch), ``generator.pt`` and ``discriminator.pt`` (``save_gan``), and last
``checkpoint.pt``: the options, the architecture, both networks, both optimisers, the epoch,
the generator and discriminator step counts, the history, and what the run trained on (the
image count, PLG-MI's pseudo-label selection). The checkpoint comes last, so a run
interrupted while writing resumes from the previous epoch and rewrites the rest identically.

No random-number state is stored: each epoch draws from a generator seeded from
``(seed, epoch)`` (``fisher_mi.training.epoch.epoch_seed``, as the classifier loop does), so
the epoch number is the state, and a resumed run repeats the next epoch exactly.
A checkpoint is untrusted input: read with ``weights_only=True``, its structure checked, and
refused in one line when it belongs to another run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch import Tensor

from fisher_mi.attacks.gan_training.config import GANTrainConfig
from fisher_mi.attacks.outputs import to_pil, write_png
from fisher_mi.attacks.priors import GAN
from fisher_mi.errors import CheckpointError, ConfigError
from fisher_mi.io import load_checkpoint, save_checkpoint
from fisher_mi.models.checkpoint import plain_values
from fisher_mi.training.state import cpu_state

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
SAMPLES = "samples"
FORMAT = "fisher_mi-gan-training/1"
COMMON_COLUMNS = ("epoch", "steps", "discriminator_steps", "discriminator_loss", "generator_loss")
GRID_COLUMNS = 8  # images per row of a sample grid (the references' nrow=8)
GRID_ROWS = 4  # rows of an unconditional grid: 32 images, as the references save
MAX_GRID_CLASSES = 10  # rows of a conditional grid: one per class, the first ten
GRID_GAP = 2  # pixels between grid cells
NONE = type(None)
FIELDS: dict[str, tuple[type, ...]] = {  # checkpoint key -> the types it may have
    "kind": (str,),
    "config": (dict,),
    "architecture": (dict,),
    "meta": (dict,),
    "generator": (dict,),
    "discriminator": (dict,),
    "generator_optimizer": (dict,),
    "discriminator_optimizer": (dict,),
    "epoch": (int,),
    "steps": (int,),
    "discriminator_steps": (int,),
    "partial": (bool,),
    "history": (list,),
    "data": (dict,),
}
DAMAGED = "a damaged or hand-edited checkpoint; delete it to start again, or choose another folder"
OTHER_RUN = "resume with the same command or choose another output folder"


def history_columns(terms: Sequence[str]) -> list[str]:
    """``history.csv``'s columns: the common ones, the kind's loss parts, ``seconds``."""
    return [*COMMON_COLUMNS, *terms, "seconds"]


@dataclass
class GANProgress:
    """How far a run got: epochs, generator steps, discriminator steps, whether the last
    epoch was cut short by the step limit, the history."""

    epoch: int = 0
    steps: int = 0
    discriminator_steps: int = 0
    partial: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def table(self, columns: Sequence[str]) -> pd.DataFrame:
        """The history as ``history.csv`` has it."""
        return pd.DataFrame(self.history, columns=list(columns))


@dataclass(frozen=True)
class Snapshot:
    """The objects whose state a checkpoint saves, and what the run trains on.

    Attributes:
        gan: the GAN being trained.
        config: the run's options.
        optimizers: Adam of the generator and of the discriminator.
        data: ``{"images": count, "selection": pseudo-label indices or None}``.
    """

    gan: GAN
    config: GANTrainConfig
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer]
    data: dict[str, Any]


def sample_latents(gan: GAN, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """The fixed latents of the sample grids: 4 x 8 images, or 8 of each of the first ten
    classes (a row each) for a conditional prior."""
    if not gan.conditional:
        return torch.randn(GRID_ROWS * GRID_COLUMNS, gan.latent_dim, generator=generator), None
    classes = min(gan.num_classes or 0, MAX_GRID_CLASSES)
    labels = torch.arange(classes).repeat_interleave(GRID_COLUMNS)
    return torch.randn(len(labels), gan.latent_dim, generator=generator), labels


@torch.no_grad()
def sample_grid(gan: GAN, latents: Tensor, labels: Tensor | None) -> Image.Image:
    """The generator's images (eval mode, clamped to [0, 1]) in rows of ``GRID_COLUMNS``;
    the generator's mode is restored."""
    generator = gan.generator
    training = generator.training
    device = next(generator.parameters()).device
    generator.eval()
    try:
        images = gan.generate(latents.to(device), None if labels is None else labels.to(device))
    finally:
        generator.train(training)
    _, height, width = images.shape[1:]
    rows = math.ceil(len(images) / GRID_COLUMNS)
    mode = "L" if images.shape[1] == 1 else "RGB"
    canvas = Image.new(
        mode,
        (GRID_COLUMNS * (width + GRID_GAP), rows * (height + GRID_GAP)),
        color=255 if mode == "L" else (255,) * 3,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, GRID_COLUMNS)
        canvas.paste(to_pil(image), (column * (width + GRID_GAP), row * (height + GRID_GAP)))
    return canvas


def sample_path(folder: Path, steps: int) -> Path:
    """``samples/step_<n>.png``."""
    return folder / SAMPLES / f"step_{steps}.png"


def write_sample_grid(
    folder: Path, gan: GAN, fixed: tuple[Tensor, Tensor | None], steps: int
) -> Path:
    """Write this epoch's sample grid; return its path."""
    return write_png(sample_grid(gan, *fixed), sample_path(folder, steps))


def save_training(
    path: Path, snapshot: Snapshot, progress: GANProgress, meta: Mapping[str, Any]
) -> Path:
    """Write ``checkpoint.pt`` atomically (see the module docstring for its contents)."""
    gan = snapshot.gan
    generator_optimizer, discriminator_optimizer = snapshot.optimizers
    payload = {
        "format": FORMAT,
        "kind": gan.kind,
        "config": snapshot.config.to_dict(),
        "architecture": gan.architecture.to_meta(),
        "meta": plain_values(meta),
        "generator": cpu_state(gan.generator),
        "discriminator": cpu_state(gan.discriminator),
        "generator_optimizer": generator_optimizer.state_dict(),
        "discriminator_optimizer": discriminator_optimizer.state_dict(),
        "epoch": progress.epoch,
        "steps": progress.steps,
        "discriminator_steps": progress.discriminator_steps,
        "partial": progress.partial,
        "history": [dict(row) for row in progress.history],
        "data": dict(snapshot.data),
    }
    return save_checkpoint(path, payload)


def read_training(path: Path) -> dict[str, Any]:
    """A checkpoint written by ``save_training``, its structure checked."""
    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a fisher_mi GAN training checkpoint ({FORMAT}); resume only from "
            "the checkpoint.pt that train-gan wrote"
        )
    missing = [key for key in FIELDS if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: {DAMAGED}")
    for key, kinds in FIELDS.items():
        value = payload[key]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            raise CheckpointError(
                f"{path}: {key} is {type(value).__name__}, not {expected}: {DAMAGED}"
            )
    numbers = [row.get("epoch") if isinstance(row, dict) else None for row in payload["history"]]
    if numbers != list(range(1, payload["epoch"] + 1)):
        raise CheckpointError(
            f"{path} records epoch {payload['epoch']} but history rows for epochs "
            f"{numbers[:5]}: {DAMAGED}"
        )
    return payload


def check_same_run(path: Path, saved: Mapping[str, Any], snapshot: Snapshot) -> None:
    """Refuse to resume another run: another kind, options, architecture or training data."""
    gan = snapshot.gan
    if saved["kind"] != gan.kind:
        raise ConfigError(f"{path} trains a {saved['kind']} prior, not {gan.kind}; {OTHER_RUN}")
    changed = GANTrainConfig.from_dict(saved["config"]).differences(snapshot.config)
    then, now = saved["architecture"], gan.architecture.to_meta()
    changed += [
        f"{key}: then {then.get(key)!r}, now {value!r}"
        for key, value in now.items()
        if then.get(key) != value
    ]
    if changed:
        raise ConfigError(
            f"{path} was written with other options ({'; '.join(changed[:3])}); {OTHER_RUN}"
        )
    longer = GANTrainConfig.from_dict(saved["config"]).differences(snapshot.config, length=True)
    if longer and saved["partial"]:
        raise ConfigError(
            f"{path} stopped inside epoch {saved['epoch']} at step {saved['steps']}, so a run "
            f"of another length ({'; '.join(longer)}) cannot continue it exactly; start "
            "again in another folder with the new length"
        )
    changed = _data_differences(saved["data"], snapshot.data)
    if changed:
        raise ConfigError(
            f"{path} was trained on other data ({'; '.join(changed)}); resume with the same "
            "--data, --split and --target, or choose another output folder"
        )


def _data_differences(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between the saved and the present training data, in words."""
    changed = []
    if then.get("images") != now.get("images"):
        changed.append(f"images: then {then.get('images')!r}, now {now.get('images')!r}")
    old, new = then.get("selection"), now.get("selection")
    same = (old is None and new is None) or (
        isinstance(old, Tensor)
        and new is not None
        and old.shape == new.shape
        and torch.equal(old, new)
    )
    if not same:
        changed.append("other public images chosen (the target's pseudo-labels differ)")
    shas = (then.get("target_sha256"), now.get("target_sha256"))
    if all(shas) and shas[0] != shas[1]:
        changed.append("another target (its sha256 differs)")
    return changed


def restore(path: Path, saved: Mapping[str, Any], snapshot: Snapshot) -> GANProgress:
    """Put the saved networks and optimisers back; return the progress."""
    targets = (
        ("generator", snapshot.gan.generator),
        ("discriminator", snapshot.gan.discriminator),
        ("generator_optimizer", snapshot.optimizers[0]),
        ("discriminator_optimizer", snapshot.optimizers[1]),
    )
    for name, target in targets:
        try:
            target.load_state_dict(saved[name])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(
                f"{path}: the saved {name} state does not fit this run ({reason}): {DAMAGED}"
            ) from None
    return GANProgress(
        epoch=saved["epoch"],
        steps=saved["steps"],
        discriminator_steps=saved["discriminator_steps"],
        partial=saved["partial"],
        history=[dict(row) for row in saved["history"]],
    )
