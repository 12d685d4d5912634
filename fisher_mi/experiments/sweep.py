"""``sweep``: TL-DMI at every cutoff, each model attacked the same way, against the undefended
model; and where each planner rule lands.

Per seed: one public pre-training (every layer, the public head), then a TL model at each
cutoff (the pre-trained weights with a new head for the private classes, seeded by the seed
and fitted alone on the private training part as ``train --public`` does, so every cutoff of a
seed starts from the same model; the first ``cutoff`` layers frozen, the rest fine-tuned on
the private data) and the undefended model (the same architecture trained
from scratch on the private data). One evaluator (another architecture, seed 0) and one
``gmi`` prior (trained on the public data, seed 0) serve the whole sweep; a ``kedmi`` prior,
when asked, is trained per model with the same settings and seed. Every model is attacked with
the same protocol (all identities, the same draws and seeds) and scored by ``score_run``.

Each of these stages is a ``steps.Step``: reused when its folder holds the outputs of the same
settings and inputs, resumed from its own checkpoint when interrupted. ``sweep.csv`` gets the
rows of a (cutoff, seed) unit as soon as the unit is done (rewritten atomically), and a unit
whose rows are there is not visited again, so an interrupted sweep resumes where it stopped.

Where the rules land: per seed, the pre-trained model (with the seed's fitted head) is profiled
on the private training data with the empirical Fisher (rules ``mass``/``auto``, ``knee``,
``rgn``), and on the private and the public data with the true Fisher for ``ratio``, which
divides one split by the other and so needs one estimator for both (labels drawn from the
model are defined on any data; the empirical Fisher of public images labelled with classes
the model does not predict is not). ``fixed`` is TL-DMI's hand-set cutoff carried over by its
share of trained parameters: the block boundary whose trainable fraction is nearest to
``PAPER_TRAINABLE_FRACTION``. A rule's cutoff inside a block lands at the block's start
(``plan.snap_to_block``).

Under ``torchrun`` the runs are split across ranks (``rank_share``): first the shared stages
(evaluator, prior, each seed's pre-training and rules), then the (cutoff, seed) units in
rounds of one unit per rank; each run is computed by one process alone (``solo``), and rank 0
appends the round's rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import torch
from torch import nn

from fisher_mi.attacks import load_gan
from fisher_mi.attacks.folder import METRICS, Scoring, prior_only_of, write_attack
from fisher_mi.attacks.gan_training import GANTrainConfig, train_gan_run
from fisher_mi.attacks.inversion import ATTACKS
from fisher_mi.attacks.runner import BATCHES, run_attack
from fisher_mi.data import load_dataset
from fisher_mi.distributed import is_distributed, is_main_process, rank, solo, world_size
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.steps import Step, run_steps
from fisher_mi.experiments.sweep_stats import auto_verdict
from fisher_mi.fisher import profile_splits
from fisher_mi.io import read_table, write_json, write_table
from fisher_mi.models import build_model, load_model, save_model
from fisher_mi.plan import block_starts, parse_cutoffs, plan_freeze, prefix_plan, snap_to_block
from fisher_mi.training import (
    CHECKPOINT,
    HEAD_EPOCHS,
    MODEL,
    HeadFit,
    Provenance,
    TrainConfig,
    fit_head,
    train,
    with_new_head,
)

# TL-DMI's hand-set cutoffs train 28.5% of IR-152's parameters (issue 11; Ho et al., CVPR 2024).
PAPER_TRAINABLE_FRACTION = 0.285
SWEPT_RULES = ("fixed", "mass", "knee", "ratio", "rgn", "auto")
COLUMNS = (
    "cutoff",
    "block",
    "trainable_fraction",
    "seed",
    "natural_accuracy",
    "attack",
    "top1",
    "top5",
    "knn_sq",
    "rule",
)
HIT_COLUMNS = ("cutoff", "seed", "attack", "identity", "draw", "top1")
SWEEP_CSV, HITS_CSV, SWEEP_JSON, SETTINGS_JSON = (
    "sweep.csv",
    "hits.csv",
    "sweep.json",
    "settings.json",
)
RULES_JSON, HEAD_JSON = "rules.json", "head.json"
SWEEP_PNG = "sweep.png"  # drawn by fisher_mi.report.plot_sweep (report comes after experiments)
# (target, evaluator) architectures by input size, as the README recommends
DEFAULT_ARCHS = {32: ("mcnn", "scnn"), 64: ("vgg_small", "resnet18")}
PRIOR_SEED = 0  # the shared gmi prior, the kedmi priors and the evaluator
# which rows a sweep holds, not how they are computed: may differ between runs into one folder
ROW_FIELDS = ("cutoffs", "attacks", "seeds", "device", "num_workers")
T = TypeVar("T")


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs.

    Attributes:
        data: the private data spec (``mnist``, ``att:ROOT``); its public split is the public
            data unless ``public`` is given.
        cutoffs: ``all`` (every block boundary but the last) or block boundaries.
        attacks: methods, each with its own protocol (``gmi``, ``kedmi``).
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
        unknown = [name for name in self.attacks if name not in ("gmi", "kedmi")]
        if not self.attacks or unknown:
            raise ConfigError(f"--attacks takes gmi and kedmi, got {','.join(self.attacks)!r}")
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


def rank_share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Rank ``rank``'s share of ``items`` among ``world`` ranks: items rank, rank + W, ...

    Round-robin, so consecutive (similar) runs go to different ranks and every item is done
    by exactly one rank.
    """
    if not 0 <= rank < world:
        raise ConfigError(f"rank {rank} is not in a group of {world} processes")
    return list(items[rank::world])


def _barrier() -> None:
    if is_distributed():
        torch.distributed.barrier()


def _trainable_fraction(model: nn.Module, cutoff: int) -> float:
    return float(prefix_plan(model, cutoff).trainable_param_fraction)


def paper_cutoff(model: nn.Module, cutoffs: Sequence[int]) -> int:
    """The cutoff among ``cutoffs`` whose trainable parameter fraction is nearest to
    ``PAPER_TRAINABLE_FRACTION`` (ties: the smaller cutoff, training more)."""
    return min(
        cutoffs, key=lambda c: (abs(_trainable_fraction(model, c) - PAPER_TRAINABLE_FRACTION), c)
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


class Sweep:
    """The stages of one sweep as steps, and its tables (module docstring)."""

    def __init__(self, config: SweepConfig, out: Path) -> None:
        self.config, self.out = config, Path(out)
        self.public_spec = config.public or config.data
        probe = load_dataset(config.data, "private")
        size = probe[0][0].shape[-1]
        arch, evaluator = DEFAULT_ARCHS.get(size, (None, None))
        self.arch, self.evaluator_arch = config.arch or arch, config.evaluator_arch or evaluator
        if self.arch is None or self.evaluator_arch is None:
            raise ConfigError(
                f"no default architectures for {size}-pixel images; pass arch and evaluator_arch"
            )
        self.classes = probe.num_classes
        shape = build_model(self.arch, num_classes=self.classes).input_shape
        self.private, self.test = (
            self._load(config.data, s, shape) for s in ("private", "private-test")
        )
        self.public = self._load(self.public_spec, "public", shape)
        self.public_classes = self.public.num_classes
        self.layers_model = build_model(self.arch, num_classes=self.classes)
        self.starts = block_starts(self.layers_model)
        self.cutoffs = (
            parse_cutoffs(config.cutoffs, self.layers_model)
            if isinstance(config.cutoffs, str)
            else parse_cutoffs(",".join(map(str, config.cutoffs)), self.layers_model)
        )

    @staticmethod
    def _load(spec: str, split: str, shape: tuple[int, int, int]) -> Any:
        return load_dataset(spec, split, image_size=shape[1], channels=shape[0])

    def units(self) -> list[Unit]:
        """Every (cutoff, seed) run, the undefended model of each seed first."""
        return [
            Unit(cutoff, seed) for seed in self.config.seeds for cutoff in (None, *self.cutoffs)
        ]

    def _train_config(self, seed: int, epochs: int) -> TrainConfig:
        c = self.config
        return TrainConfig(
            epochs=epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            seed=seed,
            device=c.device,
            max_steps=c.max_steps,
            num_workers=c.num_workers,
        )

    def _record(self, config: TrainConfig, **extra: Any) -> dict[str, Any]:
        kept = {k: v for k, v in config.to_dict().items() if k not in ("device", "num_workers")}
        return {"arch": self.arch, "data": self.config.data, "train": kept, **extra}

    # ---------------------------------------------------------------- shared stages

    def evaluator_step(self) -> Step:
        """The evaluator: another architecture trained on the private data, seed 0."""
        config = self._train_config(PRIOR_SEED, self.config.epochs)
        shape = build_model(self.evaluator_arch, num_classes=self.classes).input_shape
        private, test = (
            self._load(self.config.data, s, shape) for s in ("private", "private-test")
        )

        def run(folder: Path, resume: bool) -> list[Path]:
            torch.manual_seed(PRIOR_SEED)
            model = build_model(self.evaluator_arch, num_classes=self.classes)
            provenance = Provenance(data=self.config.data, role="evaluator")
            return _train_into(model, private, test, config, provenance, folder, resume)

        record = {**self._record(config), "arch": self.evaluator_arch, "role": "evaluator"}
        return Step("evaluator", self.out / "evaluator", record, run)

    def gan_step(self, kind: str, unit: Unit | None = None) -> Step:
        """The shared gmi prior, or the kedmi prior of one unit's model."""
        name = f"gan/{kind}" if unit is None else f"gan/{kind}-{unit.name.replace('/', '-')}"
        inputs = () if unit is None else (unit.name,)

        def run(folder: Path, resume: bool) -> list[Path]:
            target = None if unit is None else load_model(self.out / unit.name / MODEL)
            config = GANTrainConfig(
                kind=kind,
                steps=self.config.gan_steps,
                batch_size=self.config.batch_size,
                seed=PRIOR_SEED,
                device=self.config.device,
                num_workers=self.config.num_workers,
            )
            resume = resume and (folder / CHECKPOINT).is_file()
            run = train_gan_run(
                self.public, config=config, target=target, out=folder, resume=resume
            )
            return run.files

        record = {
            "kind": kind,
            "public": self.public_spec,
            "steps": self.config.gan_steps,
            "batch_size": self.config.batch_size,
        }
        return Step(name, self.out / name, {**record, "seed": PRIOR_SEED}, run, inputs)

    def pretrain_step(self, seed: int) -> Step:
        """Public pre-training of one seed: every layer, the public head."""
        config = self._train_config(seed, self.config.pretrain_epochs)

        def run(folder: Path, resume: bool) -> list[Path]:
            torch.manual_seed(seed)
            model = build_model(self.arch, num_classes=self.public_classes)
            provenance = Provenance(data=self.public_spec)
            return _train_into(model, self.public, None, config, provenance, folder, resume)

        name = f"seed-{seed}/pretrain"
        return Step(name, self.out / name, self._record(config, public=self.public_spec), run)

    def head_step(self, seed: int) -> Step:
        """The seed's pre-trained model with a new head for the private classes, fitted alone
        (``fit_head``) on the private training part: the start of every TL model of the seed
        and the model the rules profile (``train --public`` does the same)."""
        config = self._train_config(seed, self.config.epochs)
        name = f"seed-{seed}/head"

        def run(folder: Path, resume: bool) -> list[Path]:
            model = load_model(self.out / f"seed-{seed}" / "pretrain" / MODEL)
            torch.manual_seed(seed)  # the new head's initial weights
            model = with_new_head(model, self.classes)
            epochs = self.config.head_epochs  # 0: the head stays as initialised
            fitted = (
                fit_head(model, self.private, config=config, epochs=epochs)
                if epochs
                else HeadFit(epochs=0)
            )
            meta = {"data": self.config.data, "pretrained_on": self.public_spec}
            save_model(model, folder / MODEL, meta={**meta, "head_fit": fitted.to_dict()})
            return [folder / MODEL, write_json(folder / HEAD_JSON, fitted.to_dict())]

        record = self._record(config, head_epochs=self.config.head_epochs)
        return Step(name, self.out / name, record, run, (f"seed-{seed}/pretrain",))

    def pretrained(self, seed: int) -> nn.Module:
        """The seed's pre-trained model with its fitted head (``head_step``)."""
        return load_model(self.out / f"seed-{seed}" / "head" / MODEL)

    def rules_step(self, seed: int) -> Step:
        """Profile the seed's pre-trained model and record where each rule lands."""
        name = f"seed-{seed}/rules"

        def run(folder: Path, resume: bool) -> list[Path]:
            model = self.pretrained(seed)
            empirical, true = self._profiles(model, seed)
            rules = {rule: self._land(rule, model, empirical, true) for rule in SWEPT_RULES}
            return [
                write_table(folder / "fisher.csv", empirical),
                write_table(folder / "fisher_true.csv", true),
                write_json(folder / RULES_JSON, rules),
            ]

        record = {"samples": self.config.profile_samples, "rules": list(SWEPT_RULES)}
        return Step(
            name, self.out / name, {**record, "seed": seed}, run, (f"seed-{seed}/pretrain",)
        )

    def _profiles(self, model: nn.Module, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The empirical Fisher on private, the true Fisher on private and public."""
        options = {
            "max_samples": self.config.profile_samples,
            "seed": seed,
            "device": self.config.device,
            "num_workers": self.config.num_workers,
        }
        empirical = profile_splits(model, {"private": self.private}, fisher="empirical", **options)
        datasets = {"private": self.private, "public": self.public}
        true = profile_splits(model, datasets, fisher="true", **options)
        return empirical.table, true.table

    def _land(
        self, rule: str, model: nn.Module, empirical: pd.DataFrame, true: pd.DataFrame
    ) -> dict[str, Any]:
        """Where ``rule`` cuts (its layer cutoff) and lands (the block it falls in)."""
        params: dict[str, Any] = {}
        if rule == "fixed":
            params["depth"] = paper_cutoff(model, parse_cutoffs("all", model))
        if rule == "rgn":
            params["model"] = model
        try:
            plan = plan_freeze(true if rule == "ratio" else empirical, rule=rule, **params)
        except ConfigError as err:
            return {"error": str(err)}
        return {
            "cutoff": plan.rule_cutoff,
            "lands": snap_to_block(plan.rule_cutoff, self.starts),
            "trainable_fraction": plan.trainable_param_fraction,
            "params": json.loads(json.dumps(plan.params, default=str)),
        }

    def shared_steps(self) -> list[list[Step]]:
        """The stages every unit reads, in jobs (one rank each): the evaluator, the gmi prior,
        and per seed its pre-training, fitted head and rules."""
        jobs = [[self.evaluator_step()], [self.gan_step("gmi")]]
        return jobs + [
            [self.pretrain_step(s), self.head_step(s), self.rules_step(s)]
            for s in self.config.seeds
        ]

    # ---------------------------------------------------------------- per unit

    def model_step(self, unit: Unit) -> Step:
        """The unit's target: from scratch, or TL at its cutoff."""
        config = self._train_config(unit.seed, self.config.epochs)
        head = f"seed-{unit.seed}/head"

        def run(folder: Path, resume: bool) -> list[Path]:
            if unit.cutoff is None:
                torch.manual_seed(unit.seed)
                model, plan = build_model(self.arch, num_classes=self.classes), None
                provenance = Provenance(data=self.config.data)
            else:
                model = self.pretrained(unit.seed)
                plan = prefix_plan(model, unit.cutoff)
                provenance = Provenance(
                    data=self.config.data, public=self.public_spec, pretrained_on=self.public_spec
                )
            return _train_into(
                model, self.private, self.test, config, provenance, folder, resume, plan
            )

        record = self._record(config, cutoff=unit.cutoff, public=self.public_spec)
        inputs = () if unit.cutoff is None else (head,)
        return Step(unit.name, self.out / unit.name, record, run, inputs)

    def attack_step(self, unit: Unit, method: str) -> Step:
        """``method`` against the unit's model, scored by the evaluator."""
        prior = "gan/gmi" if method == "gmi" else self.gan_step(method, unit).name
        name = f"attacks/{unit.name.replace('/', '-')}-{method}"
        settings = {"per_identity": self.config.per_identity, "seed": PRIOR_SEED}
        if self.config.iterations is not None:
            settings["iterations"] = self.config.iterations

        def run(folder: Path, resume: bool) -> list[Path]:
            return self._attack(unit, method, self.out / prior, settings, folder, resume)

        record = {"method": method, **settings}
        return Step(name, self.out / name, record, run, (unit.name, prior, "evaluator"))

    def _attack(
        self,
        unit: Unit,
        method: str,
        prior: Path,
        settings: dict[str, Any],
        folder: Path,
        resume: bool,
    ) -> list[Path]:
        device = self.config.device or "cpu"
        target = load_model(self.out / unit.name / MODEL).to(device)
        gan = load_gan(prior)
        gan.generator.to(device)
        gan.discriminator.to(device)
        ids = list(range(self.classes))
        attack = ATTACKS.get(method)(target, gan, **settings)
        resume = resume and (folder / BATCHES).is_dir()
        inversion, protocol = run_attack(attack, ids, out=folder, resume=resume)
        evaluator = load_model(self.out / "evaluator" / MODEL).to(device)
        written = write_attack(
            folder,
            target,
            inversion,
            prior_only_of(attack, ids),
            protocol,
            scoring=Scoring(evaluator, self.private, self.test),
        )
        return [*written, *sorted((folder / BATCHES).glob("*.pt"))]

    def unit_steps(self, unit: Unit) -> list[Step]:
        """Everything one unit needs, in order (shared stages are reused)."""
        steps = [self.evaluator_step(), self.gan_step("gmi")]
        steps += [self.pretrain_step(unit.seed), self.head_step(unit.seed), self.model_step(unit)]
        for method in self.config.attacks:
            if method != "gmi":
                steps.append(self.gan_step(method, unit))
            steps.append(self.attack_step(unit, method))
        return steps

    # ---------------------------------------------------------------- tables

    def rules_of(self, seed: int) -> dict[str, dict[str, Any]]:
        """The seed's ``rules.json``."""
        return json.loads((self.out / f"seed-{seed}" / "rules" / RULES_JSON).read_text())

    def unit_rows(self, unit: Unit) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
        """The unit's ``sweep.csv`` rows (one per attack) and its per-image hits."""
        rules = self.rules_of(unit.seed)
        landed = ",".join(r for r in SWEPT_RULES if rules[r].get("lands", -1) == unit.cutoff)
        rows, hits = [], []
        for method in self.config.attacks:
            folder = self.out / self.attack_step(unit, method).name
            metrics = json.loads((folder / METRICS).read_text())
            rows.append(
                {
                    "cutoff": unit.cutoff,
                    "block": None if unit.cutoff is None else self.starts.index(unit.cutoff),
                    "trainable_fraction": 1.0
                    if unit.cutoff is None
                    else _trainable_fraction(self.layers_model, unit.cutoff),
                    "seed": unit.seed,
                    "natural_accuracy": metrics["natural_accuracy"],
                    "attack": method,
                    "top1": metrics["top1"]["mean"],
                    "top5": (metrics["top5"] or {}).get("mean", math.nan),
                    "knn_sq": metrics["knn_sq_mean"],
                    "rule": landed if unit.cutoff is not None else "",
                }
            )
            table = read_table(folder / "attack.csv")[["identity", "draw", "top1"]]
            hits.append(table.assign(cutoff=unit.cutoff, seed=unit.seed, attack=method))
        return rows, hits


def _train_into(
    model: nn.Module,
    data: Any,
    test: Any,
    config: TrainConfig,
    provenance: Provenance,
    folder: Path,
    resume: bool,
    plan: Any = None,
) -> list[Path]:
    """``train`` into a step's folder, continuing its checkpoint when resumed."""
    result = train(
        model,
        data,
        config=config,
        test=test,
        plan=plan,
        provenance=provenance,
        out=folder,
        resume=resume and (folder / CHECKPOINT).is_file(),
    )
    return list(result.files.values())


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: its table, per-image hits, verdicts by attack, files."""

    table: pd.DataFrame
    hits: pd.DataFrame
    verdicts: dict[str, dict[str, Any]]
    files: list[Path]


def _read(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(columns))
    text = ("attack", "rule")  # a rule column of "" is no rule, not a missing value
    header = pd.read_csv(path, nrows=0).columns
    missing = {column: [""] for column in header if column not in text}
    table = pd.read_csv(
        path, keep_default_na=False, na_values=missing, dtype=dict.fromkeys(text, str)
    )
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Cutoff and block as whole numbers with gaps (the undefended model has neither)."""
    present = [c for c in ("cutoff", "block") if c in table.columns]
    return table.astype({c: "Int64" for c in present})


def _of_unit(table: pd.DataFrame, unit: Unit) -> pd.Series:
    """Which rows of a ``sweep.csv`` or ``hits.csv`` table belong to ``unit``."""
    cutoff = table["cutoff"].astype("Int64")
    same = (cutoff.isna() if unit.cutoff is None else cutoff == unit.cutoff).fillna(False)
    return same & (table["seed"] == unit.seed)


def _done(table: pd.DataFrame, unit: Unit, attacks: Sequence[str]) -> bool:
    return set(attacks) <= set(table.loc[_of_unit(table, unit), "attack"])


def _check_settings(out: Path, config: SweepConfig) -> None:
    """Refuse to add rows to a sweep whose rows were computed with other settings."""
    path = out / SETTINGS_JSON
    now = json.loads(json.dumps(config.settings(), default=str))
    if path.is_file():
        then = json.loads(path.read_text())
        changed = sorted(k for k in now if then.get(k) != now[k])
        if changed:
            raise ConfigError(
                f"{out} holds a sweep with other settings ({', '.join(changed)}); rerun with "
                "them or choose another --out"
            )
    elif is_main_process():
        write_json(path, now)


def sweep(data: str, *, out: str | Path, quick: bool = False, **options: Any) -> SweepResult:
    """Run (or resume) a cutoff sweep of ``data`` into ``out`` (module docstring).

    ``options`` are ``SweepConfig`` fields (``cutoffs``, ``attacks``, ``seeds``, ...);
    ``quick`` fills the ones not given from ``QUICK``. See ``run_sweep``.
    """
    return run_sweep(quick_config(data, quick=quick, **options), out)


def run_sweep(config: SweepConfig, out: str | Path) -> SweepResult:
    """Run (or resume) the sweep ``config`` describes into ``out``; returns its tables.

    Writes ``sweep.csv`` (``COLUMNS``; the undefended model's rows have an empty cutoff and
    block), ``hits.csv`` (per reconstruction: ``HIT_COLUMNS``), ``settings.json``, and
    ``sweep.json`` (the verdict per attack, where the rules land per seed, the protocol).
    The figure is ``fisher_mi.report.plot_sweep``.
    """
    out = Path(out)
    plan = Sweep(config, out)
    _check_settings(out, config)
    me, width = rank(), world_size()  # read outside solo(), inside which every rank is 0 of 1
    mine = rank_share(plan.shared_steps(), me, width)
    with solo():
        run_steps([step for job in mine for step in job])
    _barrier()
    table, hits = _read(out / SWEEP_CSV, COLUMNS), _read(out / HITS_CSV, HIT_COLUMNS)
    todo = [u for u in plan.units() if not _done(table, u, config.attacks)]
    for start in range(0, len(todo), width):
        round_units = todo[start : start + width]
        mine = rank_share(round_units, me, width)
        with solo():
            for unit in mine:
                run_steps(plan.unit_steps(unit))
        _barrier()
        if is_main_process():
            table, hits = _append(plan, out, table, hits, round_units)
    table, hits = _read(out / SWEEP_CSV, COLUMNS), _read(out / HITS_CSV, HIT_COLUMNS)
    verdicts = {m: verdict_of(plan, table[table["attack"] == m]) for m in config.attacks}
    files = [out / SWEEP_CSV, out / HITS_CSV, out / SETTINGS_JSON]
    if is_main_process():
        files.append(write_json(out / SWEEP_JSON, _summary(plan, verdicts)))
    return SweepResult(table, hits, verdicts, files)


def _append(
    plan: Sweep, out: Path, table: pd.DataFrame, hits: pd.DataFrame, units: Sequence[Unit]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the units' rows to ``sweep.csv`` and ``hits.csv``, each rewritten atomically; a
    unit revisited for an attack it lacked gets all its rows anew (its other attacks' steps
    were reused, so their numbers are the same)."""
    for unit in units:
        rows, unit_hits = plan.unit_rows(unit)
        new = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
        kept, kept_hits = table[~_of_unit(table, unit)], hits[~_of_unit(hits, unit)]
        table = _typed(pd.concat([kept, new], ignore_index=True))
        hits = _typed(pd.concat([kept_hits, *unit_hits], ignore_index=True)[list(HIT_COLUMNS)])
    write_table(out / HITS_CSV, hits)
    write_table(out / SWEEP_CSV, table)
    return table, hits


def auto_cutoffs(plan: Sweep) -> dict[int, int]:
    """Seed -> the block boundary where ``auto`` lands (seeds where it could run)."""
    landed = {s: plan.rules_of(s)["auto"].get("lands") for s in plan.config.seeds}
    return {seed: cutoff for seed, cutoff in landed.items() if cutoff is not None}


def verdict_of(plan: Sweep, rows: pd.DataFrame) -> dict[str, Any]:
    """``auto_verdict`` of one attack's rows."""
    return auto_verdict(rows, auto_cutoffs(plan))


def _summary(plan: Sweep, verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config = plan.config
    return {
        "verdicts": verdicts,
        "rules": {str(s): plan.rules_of(s) for s in config.seeds},
        "protocol": {
            "arch": plan.arch,
            "evaluator_arch": plan.evaluator_arch,
            "cutoffs": plan.cutoffs,
            "block_starts": plan.starts,
            "paper_trainable_fraction": PAPER_TRAINABLE_FRACTION,
            "settings": config.settings(),
            "seeds": list(config.seeds),
            "attacks": list(config.attacks),
        },
    }
