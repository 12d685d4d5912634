"""``train_gan``: one loop for every GAN prior kind, with checkpoints and exact resume.

The loop does what every kind does alike; the kind's ``PriorTrainer`` says only its settings
and losses. Per batch of real images (a tuple of ``streams`` batches): a discriminator
update, and every ``n_critic``-th time a generator update, after it (GMI, KEDMI: the
reference's ``if step % n_critic == 0``) or before it (PLG-MI: its ``i == 0`` of ``n_dis``),
counted over the whole run, not per epoch. During a generator update the discriminator's
parameters are frozen (the references' ``freeze``); both networks stay in train mode, as in
the references (the generator's BatchNorm statistics follow the training batches), and the
target, when there is one, is in eval mode and frozen throughout (``frozen_eval``).

Length: ``epochs`` passes over the training images or ``steps`` generator steps (the run
stops after the step's group of discriminator updates is complete), or the preset's length
(``config``). Randomness: each epoch draws every random number from a CPU generator seeded
from ``(seed, epoch)``, and the initial weights from ``seed``, so ``resume=True`` reaches
the result of an uninterrupted run, bit for bit on the CPU; the caller's random state is
left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fisher_mi.attacks.gan_training.config import GANTrainConfig
from fisher_mi.attacks.gan_training.data import (
    RelabelledImages,
    check_batches,
    epoch_batches,
    target_logits,
)
from fisher_mi.attacks.gan_training.kinds import TRAINERS, Batch, Draws, PriorTrainer
from fisher_mi.attacks.gan_training.state import (
    CHECKPOINT,
    HISTORY,
    GANProgress,
    Snapshot,
    check_same_run,
    history_columns,
    read_training,
    restore,
    sample_latents,
    sample_path,
    save_training,
    write_sample_grid,
)
from fisher_mi.attacks.inversion.attack import frozen_eval, target_classes
from fisher_mi.attacks.priors import GAN, build_gan, save_gan
from fisher_mi.attacks.priors.files import FILE_NAMES
from fisher_mi.errors import ConfigError, NonFiniteError
from fisher_mi.io import write_table
from fisher_mi.training.epoch import epoch_seed

SAMPLE_EPOCH = 0  # the sample grids' latents come from the seed's "epoch 0" (epochs start at 1)


@dataclass(frozen=True)
class GANRun:
    """What ``train_gan_run`` produced.

    Attributes:
        gan: the trained prior, both networks in eval mode; its meta records the run.
        history: one row per epoch (``state.history_columns`` of the kind).
        files: what was written under ``out`` (empty without it).
    """

    gan: GAN
    history: pd.DataFrame
    files: list[Path]


def train_gan(
    public: Dataset,
    *,
    kind: str,
    target: nn.Module | None = None,
    preset: str = "cpu",
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    device: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    num_workers: int = 0,
    top_n: int = 30,
    inversion_weight: float = 0.2,
    meta: Mapping[str, Any] | None = None,
) -> GAN:
    """Train a GAN prior of ``kind`` on public images (see ``GANTrainConfig`` for options).

    Args:
        public: ``(image, label)`` items, images in [0, 1] at the target's input shape when
            there is a target (labels are not used).
        kind: ``gmi`` (WGAN-GP, shared by every target), ``kedmi`` or ``plgmi`` (one prior
            per target: both need ``target``).
        target: the attacked classifier (logits, or a tuple with logits last); held in eval
            mode and frozen, moved to ``device``. With gmi it only fixes the image shape.
        preset: ``cpu`` (narrow networks, short; not the reference) or ``reference``.
        epochs: passes over the training images; or ``steps`` generator steps; neither:
            the preset's length.
        steps: generator steps (each with its 5 discriminator updates).
        batch_size: images per update.
        seed: initial weights and every random draw.
        device: ``cpu``, ``cuda``, ``cuda:N``; None is the CPU.
        out: folder for ``generator.pt``, ``discriminator.pt``, ``checkpoint.pt``,
            ``history.csv`` and ``samples/step_<n>.png``, written each epoch; None writes
            nothing.
        resume: continue the run whose ``checkpoint.pt`` is in ``out``.
        progress: show a progress bar with the losses.
        num_workers: DataLoader worker processes.
        top_n: PLG-MI's public images per class (pseudo-labels).
        inversion_weight: PLG-MI's weight of the max-margin loss.
        meta: plain values recorded in the GAN's meta (data spec, target path and sha256).

    Returns:
        The trained GAN, both networks in eval mode.
    """
    config = GANTrainConfig(
        kind=kind,
        preset=preset,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        device=device,
        num_workers=num_workers,
        top_n=top_n,
        inversion_weight=inversion_weight,
    )
    run = train_gan_run(
        public, config=config, target=target, out=out, resume=resume, progress=progress, meta=meta
    )
    return run.gan


def train_gan_run(
    public: Dataset,
    *,
    config: GANTrainConfig,
    target: nn.Module | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    meta: Mapping[str, Any] | None = None,
) -> GANRun:
    """``train_gan`` from a ``GANTrainConfig``, returning the history and files as well."""
    trainer_class = TRAINERS.get(config.kind)
    device = _device(config)
    folder = Path(out) if out is not None else None
    if resume and folder is None:
        raise ConfigError("resume needs the output folder of the run (out=...)")
    image_shape = _image_shape(public, target, config.kind)
    networks = [target] if target is not None else []
    with torch.random.fork_rng(devices=_cuda(device)), frozen_eval(networks):
        if target is not None:
            target.to(device)
        gan, data = _setup(trainer_class, public, target, config, image_shape, device)
        trainer = trainer_class(gan, target, config)
        snapshot = Snapshot(gan, config, trainer.optimizers(), _fingerprint(data, meta))
        record = _record(trainer_class, config, meta, target is not None)
        state = _start(folder, resume, snapshot)
        loop = _Loop(trainer, snapshot, data, state, folder, record, progress)
        loop.run()
    gan.generator.eval()
    gan.discriminator.eval()
    final = dataclasses.replace(gan, meta={**gan.meta, **loop.meta()})
    return GANRun(final, state.table(loop.columns), loop.files())


def _device(config: GANTrainConfig) -> torch.device:
    device = config.torch_device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} was asked for but CUDA is not available; use cpu")
    return device


def _cuda(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []


def _image_shape(public: Dataset, target: nn.Module | None, kind: str) -> tuple[int, int, int]:
    """(C, H, W) of the public images, refused when they are not the target's input or not
    square, and the kind's need of a target checked."""
    if TRAINERS.get(kind).needs_target and target is None:
        raise ConfigError(
            f"the {kind} prior is trained against the target (one prior per target); pass "
            "target=model (--target model.pt)"
        )
    if len(public) == 0:
        raise ConfigError("the public data are empty; give a split with images")
    shape = tuple(public[0][0].shape)
    wanted = tuple(getattr(target, "input_shape", ()) or ()) if target is not None else ()
    if wanted and shape != wanted:
        raise ConfigError(
            f"the public images are {shape} but the target takes {wanted}; load the data at "
            "the target's input shape (load_dataset(..., image_size=, channels=))"
        )
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"the public images are {shape}, not square C x S x S images")
    return shape  # type: ignore[return-value]


def _setup(
    trainer_class: type[PriorTrainer],
    public: Dataset,
    target: nn.Module | None,
    config: GANTrainConfig,
    image_shape: tuple[int, int, int],
    device: torch.device,
) -> tuple[GAN, Dataset]:
    """The GAN (seeded initial weights, on ``device``) and its training images (built
    from the target's logits on the public data for kedmi and plgmi)."""
    channels, size, _ = image_shape
    classes = target_classes(target, image_shape) if trainer_class.needs_target else None
    gan = build_gan(
        config.kind,
        channels=channels,
        image_size=size,
        preset=config.preset,
        num_classes=classes,
        seed=config.seed,
    ).to(device)
    logits = None
    if trainer_class.needs_target:
        logits = target_logits(
            target,  # type: ignore[arg-type]
            public,
            batch_size=config.batch_size,
            device=device,
            num_workers=config.num_workers,
        )
    data = trainer_class.training_data(public, logits, config)
    check_batches(data, config.batch_size)
    return gan, data


def _fingerprint(data: Dataset, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a resumed run must train on again: the image count, the public images chosen
    (PLG-MI's pseudo-labels; all of them for KEDMI), the target's sha256 when recorded."""
    chosen = data.indices if isinstance(data, RelabelledImages) else None
    return {
        "images": len(data),
        "selection": None if chosen is None else torch.tensor(chosen, dtype=torch.long),
        "target_sha256": (meta or {}).get("target_sha256"),
    }


def _record(
    trainer_class: type[PriorTrainer],
    config: GANTrainConfig,
    meta: Mapping[str, Any] | None,
    has_target: bool,
) -> dict[str, Any]:
    """The run's entries of the GAN meta (the step counts are added as the run goes)."""
    extra = dict(meta or {})
    if not trainer_class.needs_target:  # a gmi prior is shared: it records no target
        extra = {k: v for k, v in extra.items() if not k.startswith("target")}
    return {
        **extra,
        "kind": config.kind,
        "preset": config.preset,
        "seed": config.seed,
        "trained_by": "fisher_mi.attacks.gan_training.train_gan",
        "training": config.to_dict(),
        "settings": trainer_class.settings(),
        "target_used": has_target and trainer_class.needs_target,
    }


def _start(folder: Path | None, resume: bool, snapshot: Snapshot) -> GANProgress:
    """A fresh progress, or the saved one restored from ``folder/checkpoint.pt``."""
    if folder is None:
        return GANProgress()
    path = folder / CHECKPOINT
    if not resume:
        if path.exists():
            raise ConfigError(
                f"{folder} already holds a GAN training checkpoint; pass --resume to continue "
                "that run or choose another output folder"
            )
        return GANProgress()
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist; drop --resume to start")
    saved = read_training(path)
    check_same_run(path, saved, snapshot)
    return restore(path, saved, snapshot)


@contextlib.contextmanager
def _frozen_parameters(network: nn.Module) -> Iterator[None]:
    """The network's parameters without gradients inside the block (the references'
    ``freeze``), restored afterwards."""
    flags = [parameter.requires_grad for parameter in network.parameters()]
    network.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(network.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


class _Sums:
    """Running sums of the logged terms over an epoch, and their means."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, terms: Mapping[str, Tensor]) -> None:
        for name, value in terms.items():
            self.totals[name] = self.totals.get(name, 0.0) + float(value.detach())
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self, names: Sequence[str]) -> dict[str, float]:
        return {
            name: self.totals[name] / self.counts[name] if name in self.counts else float("nan")
            for name in names
        }


class _Loop:
    """One run's loop state: the trainer, what it checkpoints, where it writes."""

    def __init__(
        self,
        trainer: PriorTrainer,
        snapshot: Snapshot,
        data: Dataset,
        state: GANProgress,
        folder: Path | None,
        record: dict[str, Any],
        progress: bool,
    ) -> None:
        self.trainer = trainer
        self.snapshot = snapshot
        self.data = data
        self.state = state
        self.folder = folder
        self.record = record
        self.progress = progress
        self.config = snapshot.config
        self.device = snapshot.config.torch_device
        self.columns = history_columns(trainer.terms)
        self.limits = self.config.length(trainer.gan.architecture.image_size)
        sample_seed = epoch_seed(self.config.seed, SAMPLE_EPOCH, 0)
        self.fixed = sample_latents(trainer.gan, torch.Generator().manual_seed(sample_seed))
        self.bar = tqdm(disable=True)

    def meta(self) -> dict[str, Any]:
        """The run's GAN meta entries, with the steps reached."""
        return {
            **self.record,
            "epochs": self.state.epoch,
            "steps": self.state.steps,
            "discriminator_steps": self.state.discriminator_steps,
        }

    def files(self) -> list[Path]:
        """Every file of the run folder: the networks, checkpoint, history, sample grids."""
        if self.folder is None:
            return []
        fixed = [self.folder / name for name in (*FILE_NAMES.values(), HISTORY, CHECKPOINT)]
        steps = dict.fromkeys(int(row["steps"]) for row in self.state.history)
        return [*fixed, *(sample_path(self.folder, step) for step in steps)]

    def run(self) -> None:
        """Train until the run's length is reached, writing each epoch's outputs; the bar
        counts generator steps and shows the last epoch's mean losses."""
        self.bar = tqdm(
            total=self._total_steps(),
            initial=self.state.steps,
            desc=f"{self.trainer.kind} prior",
            unit="step",
            disable=not self.progress,
        )
        with self.bar:
            while not self._finished():
                row = self._epoch()
                self.state.history.append(row)
                self.state.epoch = row["epoch"]
                if self.folder is not None:
                    self._write(self.folder)
                self.bar.set_postfix(_postfix(row, self.columns))

    def _total_steps(self) -> int:
        """The generator steps the run will have taken at its end."""
        epochs, steps = self.limits
        if epochs is None:
            return steps
        updates = epochs * (len(self.data) // self.config.batch_size)
        whole, left = divmod(updates, self.trainer.n_critic)
        return whole + int(bool(left) and self.trainer.generator_first)

    def _finished(self) -> bool:
        epochs, steps = self.limits
        if epochs is not None:
            return self.state.epoch >= epochs
        complete = self.state.discriminator_steps % self.trainer.n_critic == 0
        return self.state.steps >= steps and complete

    def _epoch(self) -> dict[str, float]:
        """Train one epoch (or up to the step limit); its history row."""
        start = time.perf_counter()
        epoch = self.state.epoch + 1
        generator = torch.Generator().manual_seed(epoch_seed(self.config.seed, epoch, 0))
        draws = Draws(generator, self.device)
        sums = _Sums()
        batches = epoch_batches(
            self.data,
            streams=self.trainer.streams,
            batch_size=self.config.batch_size,
            generator=generator,
            num_workers=self.config.num_workers,
        )
        done = 0
        for group in batches:
            done += 1
            self._updates(tuple(self._to_device(batch) for batch in group), draws, sums)
            if self._finished():
                break
        self.state.partial = done < len(self.data) // self.config.batch_size
        return {
            "epoch": epoch,
            "steps": self.state.steps,
            "discriminator_steps": self.state.discriminator_steps,
            **sums.means(self.columns[3:-1]),
            "seconds": time.perf_counter() - start,
        }

    def _to_device(self, batch: Batch) -> Batch:
        images, labels = batch
        return images.to(self.device), labels.to(self.device)

    def _updates(self, batches: tuple[Batch, ...], draws: Draws, sums: _Sums) -> None:
        """The discriminator update of this batch, and the generator's when it is due."""
        due = self.state.discriminator_steps % self.trainer.n_critic == 0
        if self.trainer.generator_first and due:
            self._generator_update(batches, draws, sums)
        terms = self.trainer.discriminator_loss(batches, draws)
        self.state.discriminator_steps += 1
        _update(self.snapshot.optimizers[1], terms, "discriminator", self.state.discriminator_steps)
        sums.add(terms)
        due = self.state.discriminator_steps % self.trainer.n_critic == 0
        if not self.trainer.generator_first and due:
            self._generator_update(batches, draws, sums)

    def _generator_update(self, batches: tuple[Batch, ...], draws: Draws, sums: _Sums) -> None:
        with _frozen_parameters(self.trainer.gan.discriminator):
            terms = self.trainer.generator_loss(batches, draws)
            self.state.steps += 1
            _update(self.snapshot.optimizers[0], terms, "generator", self.state.steps)
        sums.add(terms)
        self.bar.update(1)

    def _write(self, folder: Path) -> None:
        """Samples, history, the two networks, then the checkpoint (last)."""
        gan = self.trainer.gan
        write_sample_grid(folder, gan, self.fixed, self.state.steps)
        write_table(folder / HISTORY, self.state.table(self.columns))
        save_gan(gan, folder, meta=self.meta())
        save_training(folder / CHECKPOINT, self.snapshot, self.state, self.meta())


def _update(optimizer: torch.optim.Optimizer, terms: Mapping[str, Tensor], role: str, step: int):
    """One optimiser step on ``terms["<role>_loss"]``, refused when it is not finite."""
    loss = terms[f"{role}_loss"]
    if not torch.isfinite(loss):
        raise NonFiniteError(
            f"the {role} loss became {float(loss)} at {role} step {step}; lower the learning "
            "rate or check the public images for NaN"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _postfix(row: Mapping[str, float], columns: Sequence[str]) -> dict[str, str]:
    """The epoch and its mean losses (``nan`` parts left out), for the progress bar."""
    shown = {"epoch": str(row["epoch"])}
    for name in columns[3:-1]:
        if row[name] == row[name]:
            shown[name.replace("_loss", "")] = f"{row[name]:.4g}"
    return shown
