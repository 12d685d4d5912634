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
from torch import nn
from torch.utils.data import TensorDataset

from fisher_mi.attacks.folder import Scoring, prior_only_of, public_feature_mean, write_attack
from fisher_mi.attacks.gan_training import GANTrainConfig, train_gan_run
from fisher_mi.attacks.inversion import ATTACKS, LOMMA
from fisher_mi.attacks.priors import load_gan
from fisher_mi.attacks.runner import BATCHES, run_attack
from fisher_mi.data import load_dataset, load_for
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.steps import Step, StepRecord, StepRun, run_steps
from fisher_mi.fisher import profile_splits
from fisher_mi.fisher.write import write_profile_tables
from fisher_mi.io import load_checkpoint, write_json
from fisher_mi.models import build_model, load_model
from fisher_mi.plan import DEFAULT_RULE, training_plan
from fisher_mi.rundir import RunFolder, check_listed, sha256
from fisher_mi.training import (
    CHECKPOINT,
    HEAD_EPOCHS,
    MODEL,
    Provenance,
    TrainConfig,
    fit_head,
    pretrain_public,
    train,
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


def _model(folder: Path) -> nn.Module:
    return load_model(check_listed(folder / MODEL))


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


def _resumable(folder: Path, resume: bool, checkpoint: str = CHECKPOINT) -> bool:
    """Resume only a run that left its checkpoint; an interrupted run that never saved one
    starts again."""
    return resume and (folder / checkpoint).is_file()


def _public_step(demo: DemoConfig, folder: Path, resume: bool) -> list[Path]:
    """(1) every layer trained on the labelled public split (its own head)."""
    public_classes = load_dataset(demo.data, "public").num_classes
    torch.manual_seed(demo.seed)
    model = build_model(demo.setting.arch, num_classes=public_classes)
    _, result = pretrain_public(
        model,
        load_for(model, demo.data, "public"),
        num_classes=load_dataset(demo.data, "private").num_classes,
        config=_train_config(demo, demo.lengths.pretrain_epochs),
        provenance=Provenance(data=demo.data),
        out=folder,
        resume=_resumable(folder, resume),
        progress=True,
    )
    return list(result.files.values())


def _classifier_step(
    demo: DemoConfig, arch: str, role: str, folder: Path, resume: bool
) -> list[Path]:
    """(2), (5) a classifier trained from scratch on the private split: target or evaluator."""
    torch.manual_seed(demo.seed)
    model = build_model(arch, num_classes=load_dataset(demo.data, "private").num_classes)
    result = train(
        model,
        load_for(model, demo.data, "private"),
        config=_train_config(demo, demo.lengths.epochs),
        test=load_for(model, demo.data, "private-test"),
        provenance=Provenance(data=demo.data, role=role),
        out=folder,
        resume=_resumable(folder, resume),
        progress=True,
    )
    return list(result.files.values())


def _tl_step(demo: DemoConfig, root: Path, folder: Path, resume: bool) -> list[Path]:
    """(3) the pre-trained model with a fresh private head, the head fitted alone
    (``fit_head``), profiled on private and public and planned by the default rule
    (``training_plan``); (4) fine-tuned under that plan."""
    torch.manual_seed(demo.seed)  # the fresh head
    pretrained = _model(root / "public")
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
    result = train(
        model,
        private,
        config=config,
        test=load_for(model, demo.data, "private-test"),
        plan=plan,
        provenance=Provenance(
            data=demo.data, public=demo.data, role="target", pretrained_on=demo.data
        ),
        out=folder,
        resume=_resumable(folder, resume),
        progress=True,
    )
    return [*profiled.values(), *result.files.values()]


def _prior_step(
    demo: DemoConfig, kind: str, target: str | None, root: Path, folder: Path, resume: bool
) -> list[Path]:
    """(5) a GAN prior on the public split: gmi for every target, kedmi/plgmi against one."""
    model = _model(root / target) if target is not None else None
    # without a target, the images take the targets' input shape (an untrained model's)
    shape_of = model if model is not None else build_model(demo.setting.arch, num_classes=2)
    meta: dict[str, Any] = {"data": demo.data, "split": "public"}
    if target is not None:
        path = root / target / MODEL
        meta.update(target=str(path), target_sha256=sha256(path))
    config = GANTrainConfig(
        kind=kind, steps=demo.lengths.gan_steps, seed=demo.seed, device=demo.device
    )
    result = train_gan_run(
        load_for(shape_of, demo.data, "public"),
        config=config,
        target=model,
        out=folder,
        resume=_resumable(folder, resume),
        progress=True,
        meta=meta,
    )
    return list(result.files)


def prior_folder(method: str, target: str) -> str:
    """The prior a method uses against a target: ``gan/gmi`` shared, else per target."""
    kind = method.partition("+")[0]
    return "gan/gmi" if kind == "gmi" else f"gan/{kind}-{target}"


def _attack_step(
    demo: DemoConfig, target: str, method: str, root: Path, folder: Path, resume: bool
) -> list[Path]:
    """(6) ``method`` against ``target``: every identity, enough draws for 100 images."""
    device = demo.device or "cpu"
    model = _model(root / target).to(device)
    gan_folder = root / prior_folder(method, target)
    for name in ("generator.pt", "discriminator.pt"):
        check_listed(gan_folder / name)
    gan = load_gan(gan_folder)
    gan.generator.to(device)
    gan.discriminator.to(device)
    kind, _, option = method.partition("+")
    settings: dict[str, Any] = {**(LOMMA if option == "lomma" else {})}
    public_mean = None
    if option == "lomma":
        public_mean = public_feature_mean(model, load_for(model, demo.data, "public"))
    classes = load_dataset(demo.data, "private").num_classes
    per_identity = math.ceil(MIN_RECONSTRUCTIONS / classes)
    settings.update(
        iterations=demo.lengths.iterations,
        per_identity=per_identity,
        seed=demo.seed,
        batch_size=min(per_identity * classes, MAX_ATTACK_BATCH),
    )
    attack = ATTACKS.get(kind)(model, gan, public_mean=public_mean, **settings)
    ids = list(range(classes))
    inversion, protocol = run_attack(attack, ids, out=folder, resume=resume, progress=True)
    target_path = root / target / MODEL
    protocol = {
        **protocol,
        "target": {"path": str(target_path), "sha256": sha256(target_path)},
        "gan": {"path": str(gan_folder), "sha256": sha256(gan_folder / "generator.pt")},
        "surrogates": [],
        "data": demo.data,
        "public": demo.data,
    }
    evaluator = _model(root / "evaluator").to(device)
    scoring = Scoring(
        evaluator,
        load_for(evaluator, demo.data, "private"),
        load_for(model, demo.data, "private-test"),
    )
    written = write_attack(
        folder, model, inversion, prior_only_of(attack, ids), protocol, scoring=scoring
    )
    return written + sorted((folder / BATCHES).glob("*.pt"))


def _fisher_step(demo: DemoConfig, target: str, root: Path, folder: Path, _: bool) -> list[Path]:
    """(7) the target's Fisher on the classification task (private images, their labels) and
    on the MI task (its own gmi reconstructions labelled with their identity: ``inverted``)."""
    model = _model(root / target)
    attack = root / "attacks" / f"{target}-gmi"
    saved = load_checkpoint(check_listed(attack / "inversions.pt"))
    inverted = TensorDataset(saved["images"].float(), saved["identities"].long())
    run = profile_splits(
        model,
        {"private": load_for(model, demo.data, "private"), "inverted": inverted},
        batch_size=demo.batch_size,
        max_samples=demo.lengths.profile_samples,
        device=demo.device,
        seed=demo.seed,
    )
    record = {
        "model": str(root / target / MODEL),
        "data": demo.data,
        "inverted": str(attack / "inversions.pt"),
        "target": target,
    }
    return list(write_profile_tables(run, folder, record=record).values())


def demo_steps(demo: DemoConfig, root: Path) -> list[Step]:
    """The demo's steps in dependency order, writing below ``root`` (DESIGN.md's layout)."""
    setting, lengths = demo.setting, demo.lengths
    common = {"data": demo.data, "seed": demo.seed, "lr": demo.lr, "batch_size": demo.batch_size}
    trained = {"epochs": lengths.epochs, "max_steps": lengths.max_steps}

    def step(name: str, run: Callable, inputs: Sequence[str] = (), **config: Any) -> Step:
        return Step(name, root / name, {**common, **config}, run, tuple(inputs))

    steps = [
        step("public", functools.partial(_public_step, demo), arch=setting.arch,
             **{**trained, "epochs": lengths.pretrain_epochs}),
        step("scratch", functools.partial(_classifier_step, demo, setting.arch, "target"),
             arch=setting.arch, **trained),
        step("tl", functools.partial(_tl_step, demo, root), ["public"], rule=DEFAULT_RULE,
             profile_samples=lengths.profile_samples, head_epochs=lengths.head_epochs,
             **trained),
        step("evaluator", functools.partial(_classifier_step, demo, setting.evaluator,
             "evaluator"), arch=setting.evaluator, **trained),
    ]  # fmt: skip
    priors = {prior_folder(method, target) for method in lengths.methods for target in TARGETS}
    for name in sorted(priors):
        kind, _, target = name.removeprefix("gan/").partition("-")
        steps.append(
            step(
                name,
                functools.partial(_prior_step, demo, kind, target or None, root),
                [target] if target else [],
                kind=kind,
                steps=lengths.gan_steps,
            )
        )
    for method in lengths.methods:
        for target in TARGETS:
            steps.append(
                step(
                    f"attacks/{target}-{method}",
                    functools.partial(_attack_step, demo, target, method, root),
                    [target, "evaluator", prior_folder(method, target)],
                    method=method,
                    iterations=lengths.iterations,
                    reconstructions=MIN_RECONSTRUCTIONS,
                )
            )
    for target in TARGETS:
        steps.append(
            step(
                f"fisher/{target}",
                functools.partial(_fisher_step, demo, target, root),
                [target, f"attacks/{target}-gmi"],
                profile_samples=lengths.profile_samples,
            )
        )
    return steps


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
