"""The stages every experiment runs, each built as one ``steps.Step``: train a classifier, train
a GAN prior, run one attack, profile a target on its task and on its reconstructions.

The demo and the sweep (and ``compare``) register their stages by calling these builders with
their own names, folders, config records and data; what a stage does is written once, here.
Data are given as ``DataFor``: a function of the model that reads them, so each model gets its
split at its own input shape (``shaped``) unless the caller holds one dataset for all
(``given``). Each builder reads its input models from their step folders, checking that the
folder's manifest lists them (``rundir.check_listed``), and resumes only what left a
checkpoint (``resumable``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from fisher_mi.attacks.folder import Scoring, prior_only_of, public_feature_mean, write_attack
from fisher_mi.attacks.gan_training import GANTrainConfig, train_gan_run
from fisher_mi.attacks.inversion import ATTACKS, LOMMA
from fisher_mi.attacks.priors import load_gan
from fisher_mi.attacks.runner import BATCHES, run_attack
from fisher_mi.data import load_for
from fisher_mi.defenses import Defense
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.steps import Step
from fisher_mi.fisher import profile_splits
from fisher_mi.fisher.write import write_profile_tables
from fisher_mi.io import load_checkpoint
from fisher_mi.models import build_model, load_model
from fisher_mi.plan import FreezePlan
from fisher_mi.rundir import check_listed, sha256
from fisher_mi.training import CHECKPOINT, MODEL, Objective, Provenance, TrainConfig, train

DataFor = Callable[[nn.Module], Dataset]
GAN_FILES = ("generator.pt", "discriminator.pt")
SAMPLE_HEAD = "sample"  # the option that queries MID's head by sampling
# A method's options after "+": LOMMA's losses, or MID's head queried by sampling.
METHOD_OPTIONS: dict[str, dict[str, Any]] = {"lomma": LOMMA, SAMPLE_HEAD: {"sample_head": True}}


def with_option(method: str, option: str) -> str:
    """``method`` with ``option`` (a ``METHOD_OPTIONS`` key) after "+": ``gmi+sample``."""
    return f"{method}+{option}"


def has_option(method: str, option: str) -> bool:
    """Whether ``method`` (``gmi+lomma+sample``) names ``option`` after a "+"."""
    return option in method.split("+")[1:]


def without_option(method: str, option: str) -> str:
    """``method`` with ``option`` removed: ``gmi`` for ``gmi+sample``."""
    kind, *options = method.split("+")
    return "+".join([kind, *(o for o in options if o != option)])


def shaped(spec: str, split: str) -> DataFor:
    """``split`` of ``spec`` at the input shape of whichever model reads it (``load_for``)."""
    return functools.partial(load_for, spec=spec, split=split)


def given(dataset: Dataset) -> DataFor:
    """The same dataset for every model (a caller that loaded it once at the shape of all)."""
    return lambda _model: dataset


def seeded(arch: str, classes: int, seed: int) -> Callable[[], nn.Module]:
    """A fresh ``arch`` for ``classes`` classes, its initial weights drawn from ``seed``."""

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return build_model(arch, num_classes=classes)

    return build


def trained(folder: Path) -> nn.Module:
    """The model a finished step left in ``folder`` (refused unless its manifest lists it)."""
    return load_model(check_listed(folder / MODEL))


def resumable(folder: Path, resume: bool, marker: str = CHECKPOINT) -> bool:
    """Resume only a run that left its checkpoint (``marker``); an interrupted run that never
    saved one starts again."""
    return resume and (folder / marker).exists()


def train_into(
    model: nn.Module,
    data: Dataset,
    *,
    folder: Path,
    resume: bool,
    config: TrainConfig,
    provenance: Provenance,
    test: Dataset | None = None,
    plan: FreezePlan | None = None,
    objective: Objective | None = None,
    progress: bool = False,
) -> list[Path]:
    """``train`` into a step's folder, continuing its checkpoint when resumed; its files."""
    result = train(
        model,
        data,
        config=config,
        test=test,
        plan=plan,
        provenance=provenance,
        objective=objective,
        out=folder,
        resume=resumable(folder, resume),
        progress=progress,
    )
    return list(result.files.values())


def classifier_step(
    name: str,
    folder: Path,
    record: Mapping[str, Any],
    *,
    model: Callable[[], nn.Module],
    data: DataFor,
    config: TrainConfig,
    provenance: Provenance,
    test: DataFor | None = None,
    plan: Callable[[nn.Module], FreezePlan] | None = None,
    defense: Defense | None = None,
    inputs: Sequence[str] = (),
    progress: bool = False,
) -> Step:
    """A classifier trained on ``data`` (target, evaluator, public pre-training): ``model()``
    builds it (seeded, or loaded from an input step), ``plan(model)`` freezes its prefix;
    with a ``defense``, the model is ``defense.model_for(model())`` (MID: its VIB head) and
    the defense is the objective."""

    def run(out: Path, resume: bool) -> list[Path]:
        built = model() if defense is None else defense.model_for(model())
        return train_into(
            built,
            data(built),
            folder=out,
            resume=resume,
            config=config,
            provenance=provenance,
            test=None if test is None else test(built),
            plan=None if plan is None else plan(built),
            objective=defense,
            progress=progress,
        )

    return Step(name, folder, record, run, tuple(inputs))


def prior_step(
    name: str,
    folder: Path,
    record: Mapping[str, Any],
    *,
    config: GANTrainConfig,
    public: DataFor,
    target: Path | None = None,
    shape: Callable[[], nn.Module] | None = None,
    meta: Mapping[str, Any] | None = None,
    inputs: Sequence[str] = (),
    progress: bool = False,
) -> Step:
    """A GAN prior trained on ``public``: against the model of the step folder ``target``
    (kedmi, plgmi; its path and sha256 go into the prior's meta), or for any target (gmi),
    the images then at the input shape of ``shape()`` (an untrained model)."""

    def run(out: Path, resume: bool) -> list[Path]:
        model = None if target is None else trained(target)
        shown = model if model is not None else (shape() if shape is not None else None)
        about = dict(meta or {})
        if target is not None:
            about.update(target=str(target / MODEL), target_sha256=sha256(target / MODEL))
        result = train_gan_run(
            public(shown),
            config=config,
            target=model,
            out=out,
            resume=resumable(out, resume),
            progress=progress,
            meta=about,
        )
        return list(result.files)

    return Step(name, folder, record, run, tuple(inputs))


def attack_step(
    name: str,
    folder: Path,
    record: Mapping[str, Any],
    *,
    method: str,
    target: Path,
    prior: Path,
    evaluator: Path,
    private: DataFor,
    test: DataFor,
    identities: Sequence[int],
    settings: Mapping[str, Any],
    public: DataFor | None = None,
    protocol: Mapping[str, Any] | None = None,
    device: str | None = None,
    inputs: Sequence[str] = (),
    progress: bool = False,
) -> Step:
    """``method`` (``gmi``, ``kedmi``, ``gmi+lomma``, ``gmi+sample``...) against the model in
    step folder ``target`` with the prior in ``prior``, scored by the model in ``evaluator``:
    the files of ``fisher-mi attack``. ``settings`` are the attack's options; ``+lomma`` adds
    ``LOMMA`` and the target's mean feature on ``public``, ``+sample`` queries a MID target's
    head by sampling (``sample_head``). The protocol records the target and prior (path,
    sha256) and ``protocol``'s extras (data specs, surrogates)."""
    kind, *extras = method.split("+")
    unknown = sorted(set(extras) - set(METHOD_OPTIONS))
    if unknown:
        raise ConfigError(
            f"attack {method!r} has unknown options {', '.join(unknown)}; known: "
            f"{', '.join(METHOD_OPTIONS)}"
        )
    lomma = "lomma" in extras
    if lomma and public is None:
        raise ConfigError(f"{method} needs the public data (its mean feature); pass public")

    def run(out: Path, resume: bool) -> list[Path]:
        where = device or "cpu"
        model = trained(target).to(where)
        for file in GAN_FILES:
            check_listed(prior / file)
        gan = load_gan(prior)
        gan.generator.to(where)
        gan.discriminator.to(where)
        mean = public_feature_mean(model, public(model)) if public and lomma else None
        options = {**{k: v for e in extras for k, v in METHOD_OPTIONS[e].items()}, **settings}
        attack = ATTACKS.get(kind)(model, gan, public_mean=mean, **options)
        ids = list(identities)
        inversion, ran = run_attack(
            attack, ids, out=out, resume=resumable(out, resume, BATCHES), progress=progress
        )
        sources = {
            "target": {"path": str(target / MODEL), "sha256": sha256(target / MODEL)},
            "gan": {"path": str(prior), "sha256": sha256(prior / GAN_FILES[0])},
        }
        judge = trained(evaluator).to(where)
        written = write_attack(
            out,
            model,
            inversion,
            prior_only_of(attack, ids),
            {**ran, **sources, **(protocol or {})},
            scoring=Scoring(judge, private(judge), test(model)),
        )
        return [*written, *sorted((out / BATCHES).glob("*.pt"))]

    return Step(name, folder, record, run, tuple(inputs))


def fisher_step(
    name: str,
    folder: Path,
    record: Mapping[str, Any],
    *,
    target: Path,
    attack: Path,
    private: DataFor,
    options: Mapping[str, Any],
    about: Mapping[str, Any] | None = None,
    inputs: Sequence[str] = (),
) -> Step:
    """The Fisher of the model in step folder ``target`` on the classification task (its
    private images and labels) and on the MI task (the reconstructions in step folder
    ``attack``, labelled with their identity: split ``inverted``); ``fisher.csv`` and
    ``fisher.json`` (``about`` added to what ``profile_splits`` records). ``options`` go to
    ``profile_splits`` (batch size, samples, device, seed)."""

    def run(out: Path, _resume: bool) -> Iterable[Path]:
        model = trained(target)
        saved = load_checkpoint(check_listed(attack / "inversions.pt"))
        inverted = TensorDataset(saved["images"].float(), saved["identities"].long())
        splits = {"private": private(model), "inverted": inverted}
        ran = profile_splits(model, splits, **options)
        facts = {
            "model": str(target / MODEL),
            "inverted": str(attack / "inversions.pt"),
            **(about or {}),
        }
        return write_profile_tables(ran, out, record=facts).values()

    return Step(name, folder, record, run, tuple(inputs))
