"""The demo: TL-DMI end to end at demo scale, as resumable steps (``steps``).

(1) public pre-training (``public/``); (2) the undefended target trained from scratch on the
private split (``scratch/``); (3) the Fisher of the pre-trained model on private data and a
plan by the default rule, then (4) the TL-DMI target fine-tuned under it (``tl/``: the
``training_plan`` path of ``fisher-mi train --public --rule``); (5) an evaluator of another
architecture (``evaluator/``) and the GAN priors (one shared gmi prior ``gan/gmi``; kedmi and
plgmi priors per target, ``gan/<kind>-<target>``); (6) each attack against both targets
(``attacks/<target>-<method>/``, the same files as ``fisher-mi attack``); (7) the Fisher of each
target on the classification task (``private``) and on its own gmi reconstructions (the MI
task, split ``inverted``) in ``fisher/<target>/``. The report (8) is built from these files by
``fisher_mi.report.build_report``, a later stage, which the caller passes in.

Every length is in ``SCALES``, data, each labelled "demo scale, not the reference"; the
architectures per dataset are in ``DATA_SETTINGS``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fisher_mi.attacks.gan_training import GANTrainConfig
from fisher_mi.data import load_dataset, load_for
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.stages import (
    attack_step,
    classifier_step,
    fisher_step,
    prior_step,
    seeded,
    shaped,
    train_into,
    trained,
)
from fisher_mi.experiments.steps import Step, StepRecord, StepRun, run_steps
from fisher_mi.fisher.write import write_profile_tables
from fisher_mi.io import write_json
from fisher_mi.models import build_model
from fisher_mi.plan import DEFAULT_RULE, training_plan
from fisher_mi.rundir import RunFolder
from fisher_mi.training import (
    HEAD_EPOCHS,
    MODEL,
    Provenance,
    TrainConfig,
    fit_head,
    with_new_head,
)

TARGETS = ("scratch", "tl")
METHODS = ("gmi", "kedmi", "plgmi", "gmi+lomma")
MIN_RECONSTRUCTIONS = 100  # per attack: the MI-task Fisher rests on at least this many
# latents optimised at once: a small run's reconstructions in one batch, since batching spreads
# each iteration's fixed cost (benchmarks/RESULTS.md, "one at a time / batched": a batch of 32
# or 128 units ran 2-4x faster than the same units one at a time)
MAX_ATTACK_BATCH = 128
SCALE_NOTE = "demo scale, not the reference"
DEMO_RECORD = "demo.json"  # the demo's settings, beside report.md


@dataclass(frozen=True)
class DemoScale:
    """The lengths of one demo setting (demo scale, not the reference).

    Attributes:
        pretrain_epochs: public pre-training epochs.
        epochs: epochs of each target (scratch, and the TL fine-tuning) and of the evaluator.
        max_steps: optimiser steps of each classifier at most (None: the epochs decide).
        head_epochs: epochs of the TL target's fresh head trained alone before the pre-trained
            model is profiled and planned (``fit_head``).
        gan_steps: generator steps of every GAN prior (``cpu`` preset networks).
        iterations: attack optimiser steps, the same for every method.
        methods: the attacks run against both targets.
        profile_samples: samples per split of every Fisher profile (None: all).
        why: what the setting is for and what was measured to choose it.
    """

    pretrain_epochs: int
    epochs: int
    max_steps: int | None
    head_epochs: int
    gan_steps: int
    iterations: int
    methods: tuple[str, ...]
    profile_samples: int | None
    why: str


SCALES = {
    "quick": DemoScale(
        pretrain_epochs=1,
        epochs=1,
        max_steps=10,
        head_epochs=1,
        gan_steps=20,
        iterations=20,
        methods=("gmi",),
        profile_samples=200,
        why="CI's end-to-end check (budget 3 minutes on 2 CPU cores): every stage runs, "
        "nothing is trained long enough to mean anything",
    ),
    "default": DemoScale(
        pretrain_epochs=2,
        epochs=3,
        max_steps=None,
        head_epochs=2,
        gan_steps=150,
        iterations=150,
        methods=("gmi",),
        profile_samples=500,
        why="the README's main job (budget 10 minutes on 2 CPU cores). kedmi is in --full "
        "only: a kedmi prior (cpu preset) took 6-12 s a generator step here against 0.35 s "
        "for gmi, and it needs one prior per target",
    ),
    "full": DemoScale(
        pretrain_epochs=3,
        epochs=5,
        max_steps=None,
        head_epochs=HEAD_EPOCHS,
        gan_steps=400,
        iterations=600,
        methods=METHODS,
        profile_samples=1000,
        why="every method (gmi, kedmi, plgmi, gmi+lomma without surrogates); an hour or "
        "more on 2 CPU cores, minutes on a GPU",
    ),
}


@dataclass(frozen=True)
class DataSetting:
    """The architectures the demo uses on one dataset (target, evaluator)."""

    arch: str
    evaluator: str


DATA_SETTINGS = {
    "mnist": DataSetting("mcnn", "scnn"),
    "digits": DataSetting("mcnn", "scnn"),
    "att": DataSetting("vgg_small", "resnet18"),
    "celeba": DataSetting("vgg16", "facenet"),
}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs on.

    Attributes:
        data: ``mnist`` (bundled), ``att:ROOT`` or ``celeba:ROOT`` (a key of
            ``DATA_SETTINGS`` before the colon).
        scale: a key of ``SCALES`` (``quick``, ``default``, ``full``).
        seed: every model, prior and attack is seeded from it.
        device: ``cpu``, ``cuda``...; None is the CPU.
        lr: Adam's learning rate for every classifier (no schedule).
        batch_size: training and profiling batch size.
    """

    data: str = "mnist"
    scale: str = "default"
    seed: int = 0
    device: str | None = None
    lr: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(f"unknown demo scale {self.scale!r}; known: {', '.join(SCALES)}")
        name = self.data.partition(":")[0]
        if name not in DATA_SETTINGS:
            raise ConfigError(
                f"the demo has no setting for {self.data!r}; give one of "
                f"{', '.join(DATA_SETTINGS)} (ROOT after a colon for data on disk)"
            )

    @property
    def lengths(self) -> DemoScale:
        """The scale's lengths."""
        return SCALES[self.scale]

    @property
    def setting(self) -> DataSetting:
        """The dataset's architectures."""
        return DATA_SETTINGS[self.data.partition(":")[0]]

    def record(self) -> dict[str, Any]:
        """The demo's settings as plain data: the config, its scale's lengths, the models."""
        return {
            **asdict(self),
            "lengths": {**asdict(self.lengths), "methods": list(self.lengths.methods)},
            "models": asdict(self.setting),
            "note": SCALE_NOTE,
        }


def _train_config(demo: DemoConfig, epochs: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=demo.batch_size,
        optimizer="adam",
        lr=demo.lr,
        schedule="none",
        seed=demo.seed,
        device=demo.device,
        max_steps=demo.lengths.max_steps,
    )


def _tl_step(demo: DemoConfig, root: Path, folder: Path, resume: bool) -> list[Path]:
    """(3) the pre-trained model with a fresh private head, the head fitted alone
    (``fit_head``), profiled on private and public and planned by the default rule
    (``training_plan``); (4) fine-tuned under that plan."""
    torch.manual_seed(demo.seed)  # the fresh head
    pretrained = trained(root / "public")
    model = with_new_head(pretrained, load_dataset(demo.data, "private").num_classes)
    private = load_for(model, demo.data, "private")
    config = _train_config(demo, demo.lengths.epochs)
    head = fit_head(model, private, config=config, epochs=demo.lengths.head_epochs)
    plan, run = training_plan(
        model,
        rule=DEFAULT_RULE,
        datasets={"private": private, "public": load_for(model, demo.data, "public")},
        batch_size=config.batch_size,
        max_samples=demo.lengths.profile_samples,
        device=config.device,
        seed=config.seed,
    )
    record = {
        "model": str(root / "public" / MODEL),
        "data": demo.data,
        "rule": DEFAULT_RULE,
        "head_fit": head.to_dict(),
    }
    profiled = write_profile_tables(run, folder, record=record) if run is not None else {}
    provenance = Provenance(
        data=demo.data, public=demo.data, role="target", pretrained_on=demo.data
    )
    files = train_into(
        model,
        private,
        folder=folder,
        resume=resume,
        config=config,
        provenance=provenance,
        test=load_for(model, demo.data, "private-test"),
        plan=plan,
        progress=True,
    )
    return [*profiled.values(), *files]


def prior_folder(method: str, target: str) -> str:
    """The prior a method uses against a target: ``gan/gmi`` shared, else per target."""
    kind = method.partition("+")[0]
    return "gan/gmi" if kind == "gmi" else f"gan/{kind}-{target}"


class _Demo:
    """The demo's steps below ``root``: its settings turned into the shared stages' arguments
    (``stages``), each step's config the demo's common settings plus its own."""

    def __init__(self, demo: DemoConfig, root: Path) -> None:
        self.demo, self.root, self.lengths = demo, root, demo.lengths
        self.classes = load_dataset(demo.data, "private").num_classes
        self.private, self.test, self.public = (
            shaped(demo.data, split) for split in ("private", "private-test", "public")
        )

    def record(self, **config: Any) -> dict[str, Any]:
        """A step's config: the settings every step shares, then its own."""
        demo = self.demo
        common = {"data": demo.data, "seed": demo.seed, "lr": demo.lr}
        return {**common, "batch_size": demo.batch_size, **config}

    def classifier(self, name: str, arch: str, role: str, public: bool = False) -> Step:
        """(1) public pre-training (``public``: every layer, its own head); (2), (5) a target
        or the evaluator trained from scratch on the private split."""
        demo, lengths = self.demo, self.lengths
        epochs = lengths.pretrain_epochs if public else lengths.epochs
        classes = load_dataset(demo.data, "public").num_classes if public else self.classes
        return classifier_step(
            name,
            self.root / name,
            self.record(arch=arch, epochs=epochs, max_steps=lengths.max_steps),
            model=seeded(arch, classes, demo.seed),
            data=self.public if public else self.private,
            test=None if public else self.test,
            config=_train_config(demo, epochs),
            provenance=Provenance(data=demo.data, role=role),
            progress=True,
        )

    def tl(self) -> Step:
        """(3), (4) the TL-DMI target (``_tl_step``)."""
        lengths = self.lengths
        record = self.record(
            rule=DEFAULT_RULE,
            profile_samples=lengths.profile_samples,
            head_epochs=lengths.head_epochs,
            epochs=lengths.epochs,
            max_steps=lengths.max_steps,
        )
        run = functools.partial(_tl_step, self.demo, self.root)
        return Step("tl", self.root / "tl", record, run, ("public",))

    def prior(self, name: str) -> Step:
        """(5) the GAN prior ``gan/<kind>[-<target>]`` on the public split."""
        demo = self.demo
        kind, _, target = name.removeprefix("gan/").partition("-")
        return prior_step(
            name,
            self.root / name,
            self.record(kind=kind, steps=self.lengths.gan_steps),
            config=GANTrainConfig(
                kind=kind, steps=self.lengths.gan_steps, seed=demo.seed, device=demo.device
            ),
            public=self.public,
            target=self.root / target if target else None,
            # without a target, the images take the targets' input shape (an untrained model's)
            shape=functools.partial(build_model, demo.setting.arch, num_classes=2),
            meta={"data": demo.data, "split": "public"},
            inputs=[target] if target else [],
            progress=True,
        )

    def attack(self, target: str, method: str) -> Step:
        """(6) ``method`` against ``target``: every identity, enough draws for 100 images."""
        demo, classes = self.demo, self.classes
        per_identity = math.ceil(MIN_RECONSTRUCTIONS / classes)
        settings = {
            "iterations": self.lengths.iterations,
            "per_identity": per_identity,
            "seed": demo.seed,
            "batch_size": min(per_identity * classes, MAX_ATTACK_BATCH),
        }
        name, prior = f"attacks/{target}-{method}", prior_folder(method, target)
        record = self.record(
            method=method, iterations=self.lengths.iterations, reconstructions=MIN_RECONSTRUCTIONS
        )
        return attack_step(
            name,
            self.root / name,
            record,
            method=method,
            target=self.root / target,
            prior=self.root / prior,
            evaluator=self.root / "evaluator",
            private=self.private,
            test=self.test,
            identities=range(classes),
            settings=settings,
            public=self.public,
            protocol={"surrogates": [], "data": demo.data, "public": demo.data},
            device=demo.device,
            inputs=[target, "evaluator", prior],
            progress=True,
        )

    def fisher(self, target: str) -> Step:
        """(7) the target's Fisher on the classification task and on its own gmi
        reconstructions (the MI task, ``inverted``)."""
        demo, attack = self.demo, f"attacks/{target}-gmi"
        options = {"batch_size": demo.batch_size, "max_samples": self.lengths.profile_samples}
        return fisher_step(
            f"fisher/{target}",
            self.root / "fisher" / target,
            self.record(profile_samples=self.lengths.profile_samples),
            target=self.root / target,
            attack=self.root / attack,
            private=self.private,
            options={**options, "device": demo.device, "seed": demo.seed},
            about={"data": demo.data, "target": target},
            inputs=[target, attack],
        )


def demo_steps(demo: DemoConfig, root: Path) -> list[Step]:
    """The demo's steps in dependency order, writing below ``root`` (DESIGN.md's layout)."""
    setting, methods, made = demo.setting, demo.lengths.methods, _Demo(demo, root)
    steps = [
        made.classifier("public", setting.arch, "target", public=True),
        made.classifier("scratch", setting.arch, "target"),
        made.tl(),
        made.classifier("evaluator", setting.evaluator, "evaluator"),
    ]
    priors = {prior_folder(method, target) for method in methods for target in TARGETS}
    steps += [made.prior(name) for name in sorted(priors)]
    steps += [made.attack(target, method) for method in methods for target in TARGETS]
    return steps + [made.fisher(target) for target in TARGETS]


def run_demo(
    demo: DemoConfig,
    *,
    out: str | Path,
    report: Callable[[Sequence[Path]], Iterable[Path]] | None = None,
    progress: Callable[[StepRecord], None] | None = None,
) -> tuple[StepRun, list[Path]]:
    """Run (or resume, or reuse) every step of the demo into ``out``; then the report.

    Args:
        demo: the data, scale and seed.
        out: the demo folder.
        report: builds the report from the run folders it is given (``[out]``) and returns
            its files (``fisher_mi.report.build_report``); None: no report.
        progress: called with each step's record (default: one printed line per step).

    Returns:
        The steps' records, and the files the demo's ``manifest.json`` lists (written here,
        last): each step's ``manifest.json`` (which vouches for its files), ``demo.json``
        and the report's files.
    """
    root = Path(out)
    kwargs = {"report": progress} if progress is not None else {}
    done = run_steps(demo_steps(demo, root), **kwargs)
    record = {"command": "demo", "settings": demo.record()}
    with RunFolder(root, outputs=(root / DEMO_RECORD,), record=record) as held:
        written = [*(done.manifest(name) for name in done.records)]
        written.append(write_json(root / DEMO_RECORD, demo.record()))
        held.finish(written)  # listed before the report reads it
        if report is not None:
            written += list(report([root]))
            held.finish(written)
    return done, written
