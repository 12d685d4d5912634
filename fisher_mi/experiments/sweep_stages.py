"""The stages of one sweep as ``steps.Step`` s (the shared builders of ``stages``), where each
rule lands per seed, and a finished unit's rows (``fisher_mi.experiments.sweep``'s docstring
tells the whole flow)."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from fisher_mi.attacks.folder import METRICS
from fisher_mi.attacks.gan_training import GANTrainConfig
from fisher_mi.data import load_dataset, load_for
from fisher_mi.defenses import Defense
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.stages import (
    attack_step,
    classifier_step,
    given,
    prior_step,
    seeded,
    shaped,
    trained,
)
from fisher_mi.experiments.steps import Step
from fisher_mi.experiments.sweep_config import (
    DEFAULT_ARCHS,
    PRIOR_SEED,
    SWEPT_RULES,
    SweepConfig,
    Unit,
    paper_cutoff,
    trainable_fraction,
)
from fisher_mi.fisher import profile_splits
from fisher_mi.io import read_table, write_json, write_table
from fisher_mi.models import build_model, save_model
from fisher_mi.plan import block_starts, parse_cutoffs, plan_freeze, prefix_plan, snap_to_block
from fisher_mi.training import MODEL, HeadFit, Provenance, TrainConfig, fit_head, with_new_head

RULES_JSON, HEAD_JSON = "rules.json", "head.json"


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
        self.layers_model = build_model(self.arch, num_classes=self.classes)
        self.private, self.test = (
            load_for(self.layers_model, config.data, s) for s in ("private", "private-test")
        )
        self.public = load_for(self.layers_model, self.public_spec, "public")
        self.public_classes = self.public.num_classes
        self.starts = block_starts(self.layers_model)
        self.cutoffs = (
            parse_cutoffs(config.cutoffs, self.layers_model)
            if isinstance(config.cutoffs, str)
            else parse_cutoffs(",".join(map(str, config.cutoffs)), self.layers_model)
        )

    def units(self) -> list[Unit]:
        """Every (cutoff, seed) run, the undefended model of each seed first."""
        return [
            Unit(cutoff, seed) for seed in self.config.seeds for cutoff in (None, *self.cutoffs)
        ]

    def _run_options(self, seed: int) -> dict[str, Any]:
        """What every training of the sweep (classifiers and priors) takes alike."""
        c = self.config
        return {
            "batch_size": c.batch_size,
            "seed": seed,
            "device": c.device,
            "num_workers": c.num_workers,
        }

    def _train_config(self, seed: int, epochs: int) -> TrainConfig:
        c = self.config
        options = self._run_options(seed)
        return TrainConfig(epochs=epochs, lr=c.lr, max_steps=c.max_steps, **options)

    def _record(self, config: TrainConfig, **extra: Any) -> dict[str, Any]:
        kept = {k: v for k, v in config.to_dict().items() if k not in ("device", "num_workers")}
        return {"arch": self.arch, "data": self.config.data, "train": kept, **extra}

    # ---------------------------------------------------------------- shared stages

    def evaluator_step(self) -> Step:
        """The evaluator: another architecture trained on the private data, seed 0."""
        config = self._train_config(PRIOR_SEED, self.config.epochs)
        record = {**self._record(config), "arch": self.evaluator_arch, "role": "evaluator"}
        return classifier_step(
            "evaluator",
            self.out / "evaluator",
            record,
            model=seeded(self.evaluator_arch, self.classes, PRIOR_SEED),
            data=shaped(self.config.data, "private"),
            test=shaped(self.config.data, "private-test"),
            config=config,
            provenance=Provenance(data=self.config.data, role="evaluator"),
        )

    def gan_step(self, kind: str, unit: Unit | None = None) -> Step:
        """The shared gmi prior, or the kedmi or plgmi prior of one unit's model."""
        name = f"gan/{kind}" if unit is None else f"gan/{kind}-{unit.name.replace('/', '-')}"
        c = self.config
        config = GANTrainConfig(kind=kind, steps=c.gan_steps, **self._run_options(PRIOR_SEED))
        record = {"kind": kind, "public": self.public_spec, "steps": c.gan_steps}
        return prior_step(
            name,
            self.out / name,
            {**record, "batch_size": c.batch_size, "seed": PRIOR_SEED},
            config=config,
            public=given(self.public),
            target=None if unit is None else self.out / unit.name,
            meta={"data": self.public_spec, "split": "public"},
            inputs=() if unit is None else (unit.name,),
        )

    def pretrain_step(self, seed: int) -> Step:
        """Public pre-training of one seed: every layer, the public head."""
        config = self._train_config(seed, self.config.pretrain_epochs)
        name = f"seed-{seed}/pretrain"
        return classifier_step(
            name,
            self.out / name,
            self._record(config, public=self.public_spec),
            model=seeded(self.arch, self.public_classes, seed),
            data=given(self.public),
            config=config,
            provenance=Provenance(data=self.public_spec),
        )

    def head_step(self, seed: int) -> Step:
        """The seed's pre-trained model with a new head for the private classes, fitted alone
        (``fit_head``) on the private training part: the start of every TL model of the seed
        and the model the rules profile (``train --public`` does the same)."""
        config = self._train_config(seed, self.config.epochs)
        name = f"seed-{seed}/head"

        def run(folder: Path, resume: bool) -> list[Path]:
            model = trained(self.out / f"seed-{seed}" / "pretrain")
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
        return trained(self.out / f"seed-{seed}" / "head")

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
        # it profiles the head step's model: that step's manifest is part of its key
        return Step(name, self.out / name, {**record, "seed": seed}, run, (f"seed-{seed}/head",))

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

    def model_step(self, unit: Unit, defense: Defense | None = None) -> Step:
        """The unit's target: from scratch, or TL at its cutoff (the seed's fitted head);
        with a ``defense``, trained under it (``compare``; its record joins the step's)."""
        config = self._train_config(unit.seed, self.config.epochs)
        record = self._record(config, cutoff=unit.cutoff, public=self.public_spec)
        if defense is not None:
            record["defense"] = defense.record()
        common = {
            "data": given(self.private),
            "test": given(self.test),
            "config": config,
            "defense": defense,
        }
        if unit.cutoff is None:
            model = seeded(self.arch, self.classes, unit.seed)
            return classifier_step(
                unit.name,
                self.out / unit.name,
                record,
                model=model,
                provenance=Provenance(data=self.config.data),
                **common,
            )
        cutoff, public = unit.cutoff, self.public_spec
        return classifier_step(
            unit.name,
            self.out / unit.name,
            record,
            model=functools.partial(self.pretrained, unit.seed),
            plan=lambda model: prefix_plan(model, cutoff),
            provenance=Provenance(data=self.config.data, public=public, pretrained_on=public),
            inputs=(f"seed-{unit.seed}/head",),
            **common,
        )

    def attack_step(self, unit: Unit, method: str) -> Step:
        """``method`` (``gmi``, ``kedmi``, either with ``+sample`` against a MID model's
        sampling head) against the unit's model, scored by the evaluator; the prior is the
        shared gmi one or the unit's own (kedmi, plgmi)."""
        kind = method.partition("+")[0]
        prior = "gan/gmi" if kind == "gmi" else self.gan_step(kind, unit).name
        name = f"attacks/{unit.name.replace('/', '-')}-{method}"
        settings = {"per_identity": self.config.per_identity, "seed": PRIOR_SEED}
        if self.config.iterations is not None:
            settings["iterations"] = self.config.iterations
        return attack_step(
            name,
            self.out / name,
            {"method": method, **settings},
            method=method,
            target=self.out / unit.name,
            prior=self.out / prior,
            evaluator=self.out / "evaluator",
            private=given(self.private),
            test=given(self.test),
            identities=range(self.classes),
            settings=settings,
            protocol={"surrogates": [], "data": self.config.data, "public": self.public_spec},
            device=self.config.device,
            inputs=(unit.name, prior, "evaluator"),
        )

    def unit_steps(
        self, unit: Unit, defense: Defense | None = None, methods: Sequence[str] | None = None
    ) -> list[Step]:
        """Everything one unit needs, in order (shared stages are reused): a TL model reads
        its seed's pre-training and fitted head, a model from scratch neither; ``defense``
        goes to ``model_step``; ``methods`` are the attacks (default: the config's)."""
        steps = [self.evaluator_step(), self.gan_step("gmi")]
        if unit.cutoff is not None:
            steps += [self.pretrain_step(unit.seed), self.head_step(unit.seed)]
        steps.append(self.model_step(unit, defense))
        methods = methods or self.config.attacks
        kinds = {method.partition("+")[0] for method in methods}
        steps += [self.gan_step(kind, unit) for kind in sorted(kinds - {"gmi"})]
        steps += [self.attack_step(unit, method) for method in methods]
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
            scores, table = attack_scores(self.out / self.attack_step(unit, method).name)
            rows.append(
                {
                    "cutoff": unit.cutoff,
                    "block": None if unit.cutoff is None else self.starts.index(unit.cutoff),
                    "trainable_fraction": 1.0
                    if unit.cutoff is None
                    else trainable_fraction(self.layers_model, unit.cutoff),
                    "seed": unit.seed,
                    "attack": method,
                    "rule": landed if unit.cutoff is not None else "",
                    **scores,
                }
            )
            hits.append(table.assign(cutoff=unit.cutoff, seed=unit.seed, attack=method))
        return rows, hits


def attack_scores(folder: Path) -> tuple[dict[str, float], pd.DataFrame]:
    """An attack step's numbers for a results row (``natural_accuracy``, ``top1``, ``top5``,
    ``knn_sq``: the means of its ``metrics.json``) and its per-image hits (``identity``,
    ``draw``, ``top1``)."""
    metrics = json.loads((folder / METRICS).read_text())
    scores = {
        "natural_accuracy": metrics["natural_accuracy"],
        "top1": metrics["top1"]["mean"],
        "top5": (metrics["top5"] or {}).get("mean", math.nan),
        "knn_sq": metrics["knn_sq_mean"],
    }
    return scores, read_table(folder / "attack.csv")[["identity", "draw", "top1"]]
