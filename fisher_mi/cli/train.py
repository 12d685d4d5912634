"""``fisher-mi train``: from scratch, or pre-trained on public data and fine-tuned under a plan;
an evaluator like a target; a surrogate distilled from a target (``--role surrogate --teacher``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import history_text, load_for, percent, say, write_run
from fisher_mi.cli.options import (
    DEFENSE_OPTIONS,
    FISHER_OPTIONS,
    RUN_OPTIONS,
    TRAIN_OPTIONS,
    add_arch_option,
    add_data_option,
    add_group,
    add_out_option,
    defense_from_args,
    non_negative_int,
    positive_int,
    real_number,
    train_config,
    values,
)
from fisher_mi.data import load_dataset
from fisher_mi.distributed import init_from_environment, is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.io import load_checkpoint
from fisher_mi.models import arch_of, build_model, load_model
from fisher_mi.models.registry import ARCHITECTURES
from fisher_mi.plan import (
    BN_STATS,
    MODEL_PROVENANCE,
    RULES,
    FreezePlan,
    parse_params,
    training_plan,
)
from fisher_mi.rundir import check_listed, sha256
from fisher_mi.training import (
    CHECKPOINT,
    HEAD_EPOCHS,
    ROLES,
    Distillation,
    HeadFit,
    Objective,
    Provenance,
    TrainConfig,
    build_surrogate,
    fit_head,
    load_init,
    pretrain_public,
    train,
)

DESCRIPTION = (
    "Train from scratch (the baseline), or start from --init and/or pre-train on --public, then "
    "fine-tune on the private data under --plan, --cutoff or --rule, with a --defense in that "
    "last stage if asked (mid's VIB head is added after the pre-training). With --role "
    "surrogate, "
    "distil --teacher on the public split of --data instead (LOMMA's model augmentation). "
    "Writes model.pt (best epoch on a validation hold-out), history.csv, plan.json and "
    "checkpoint.pt into --out; prints the private-test accuracy."
)
# Fisher options of `train --rule`: the training batch size is the profiling batch size too,
# and a plan covers every layer (so no --trainable-only).
RULE_FISHER_SKIP = ("batch_size", "trainable_only")
RULE_FISHER_OPTIONS = tuple(o for o in FISHER_OPTIONS if o.dest not in RULE_FISHER_SKIP)
# what a surrogate has no use for: it is trained on public data, every layer (dest, flag)
SURROGATE_REFUSES = (
    ("public", "--public"),
    ("plan", "--plan"),
    ("rule", "--rule"),
    ("cutoff", "--cutoff"),
    ("param", "--param"),
    ("head_epochs", "--head-epochs"),
    ("head_lr", "--head-lr"),
    ("channels", "--channels"),
    ("defense", "--defense"),
    ("defense_params", "--defense-param"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, architecture, the pre-training and plan sources, training and run options."""
    add_data_option(parser, help="private data spec")
    add_arch_option(parser, help="architecture", required=True)
    parser.add_argument(
        "--role",
        default="target",
        choices=ROLES,
        help="what the model is for: the attacked target, an evaluator of attacks (trained "
        "like a target, on the same private data), or a surrogate (distilled from --teacher "
        "on --data's public split); recorded in model.pt",
    )
    parser.add_argument(
        "--channels",
        type=positive_int,
        default=None,
        help="image channels the model takes (default: the architecture's, 3 for the 64 px "
        "faces models); 1 trains on grey images such as att's as they are, to match a grey "
        "GAN prior",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        metavar="PATH",
        help="the target model a --role surrogate learns (its soft labels, KL at temperature "
        "1); its input shape sets the images' size and channels, its classes the model's",
    )
    parser.add_argument(
        "--public",
        default=None,
        metavar="SPEC",
        help="pre-train on this spec's public split first (its own head), then swap in a "
        "fresh head for the private classes",
    )
    parser.add_argument(
        "--pretrain-epochs", type=positive_int, default=None, help="default: --epochs"
    )
    parser.add_argument(
        "--head-epochs",
        type=non_negative_int,
        default=None,
        help="after --public pre-training, train the fresh head alone this many epochs on the "
        "private training part (the validation hold-out left out) before the model is "
        f"profiled, planned and fine-tuned; 0 keeps the head as initialised (default: "
        f"{HEAD_EPOCHS})",
    )
    parser.add_argument(
        "--head-lr",
        type=real_number,
        default=None,
        help="learning rate of --head-epochs (default: --lr)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="PATH",
        help="start from a local pre-trained file (state dict or fisher_mi checkpoint)",
    )
    parser.add_argument(
        "--init-partial",
        action="store_true",
        help="load only the tensors of --init that match (by name and shape)",
    )
    parser.add_argument("--plan", type=Path, default=None, help="plan.json from `fisher-mi plan`")
    parser.add_argument("--cutoff", type=int, default=None, help="freeze the layers with depth < K")
    parser.add_argument(
        "--rule",
        default=None,
        help="profile the (pre-trained) model on private and public data and plan with this "
        f"rule (known: {', '.join(RULES.names())}); --cutoff then overrides its choice",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of --rule, e.g. p=0.8 (repeatable)",
    )
    parser.add_argument("--bn-stats", default="frozen", choices=BN_STATS)
    add_group(parser, DEFENSE_OPTIONS)
    add_group(parser, TRAIN_OPTIONS)
    add_group(parser, RULE_FISHER_OPTIONS, rename={"max_samples": "--profile-samples"})
    add_group(parser, RUN_OPTIONS)
    add_out_option(parser, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _resuming(args: argparse.Namespace, folder: Path) -> bool:
    """Resume a stage whose checkpoint exists; start a stage the interrupted run never began."""
    return args.resume and (folder / CHECKPOINT).is_file()


def _plan(
    args: argparse.Namespace,
    model: torch.nn.Module,
    private: torch.utils.data.Dataset,
    config: TrainConfig,
    head: HeadFit | None,
) -> tuple[FreezePlan | None, list[Path]]:
    """The plan from --plan, --rule (profiling the model first) or --cutoff; the files written."""
    datasets = None
    if args.rule is not None:
        datasets = {
            "private": private,
            "public": load_for(model, args.public or args.data, "public"),
        }
    fisher = values(args, RULE_FISHER_OPTIONS)
    plan, run = training_plan(
        model,
        plan=check_listed(args.plan) if args.plan is not None else None,
        rule=args.rule,
        cutoff=args.cutoff,
        rule_params=parse_params(args.param),
        bn_stats=args.bn_stats,
        datasets=datasets,
        **fisher,
        batch_size=config.batch_size,
        device=config.device,
        num_workers=config.num_workers,
        seed=config.seed,
        progress=True,
    )
    if run is None:
        return plan, []
    record = {
        "command": "train --rule",
        "arch": args.arch,
        "data": args.data,
        MODEL_PROVENANCE: {
            "pretrained_on": args.public,
            "role": args.role,
            "init": _text(args.init),
        },
        "head_fit": head.to_dict() if head is not None else None,
    }
    written = write_run(run, args.out, record)
    if plan is not None:
        say(plan.summary())
    return plan, written


def _pretrain(
    args: argparse.Namespace, model: torch.nn.Module, config: TrainConfig, classes: int
) -> tuple[torch.nn.Module, list[Path]]:
    """Pre-train on --public (its own head), then swap in a head for the private classes."""
    public = load_for(model, args.public, "public")
    stage = args.out / "pretrain"
    say(f"pre-training {args.arch} on {args.public} public ({len(public)} images)")
    model, result = pretrain_public(
        model,
        public,
        num_classes=classes,
        config=replace(config, epochs=args.pretrain_epochs or config.epochs),
        provenance=Provenance(data=args.public, init=_text(args.init)),
        out=stage,
        resume=_resuming(args, stage),
        progress=is_main_process(),
    )
    say(
        f"pre-trained: best epoch {result.best_epoch}, public validation accuracy "
        f"{percent(result.validation_accuracy)}; head replaced for {classes} classes"
    )
    return model, list(result.files.values())


@dataclass(frozen=True)
class Stage:
    """What the last training stage trains: the model, its data, plan, record and loss."""

    model: torch.nn.Module
    data: torch.utils.data.Dataset
    test: torch.utils.data.Dataset | None
    plan: FreezePlan | None
    provenance: Provenance
    objective: Objective | None
    written: list[Path]
    what: str  # "training mcnn on digits private (723 images)"
    measure: str  # what the validation accuracy is: "accuracy", "agreement with the teacher"


def _fit_head(
    args: argparse.Namespace,
    model: torch.nn.Module,
    private: torch.utils.data.Dataset,
    config: TrainConfig,
) -> HeadFit | None:
    """Train the fresh head alone after --public pre-training (``fit_head``); None without
    --public, where the head is not fresh (from scratch, or loaded by --init)."""
    if not args.public:
        given = [flag for flag in ("head_epochs", "head_lr") if getattr(args, flag) is not None]
        if given:
            raise ConfigError(
                f"--{given[0].replace('_', '-')} trains the fresh head after --public "
                "pre-training; pass --public SPEC or drop it"
            )
        return None
    epochs = HEAD_EPOCHS if args.head_epochs is None else args.head_epochs
    if epochs == 0:
        return HeadFit(epochs=0)
    say(f"fitting the new head alone for {epochs} epochs on the private training part")
    fitted = fit_head(
        model, private, config=config, epochs=epochs, lr=args.head_lr, progress=is_main_process()
    )
    say(
        f"head fitted: train accuracy {percent(fitted.train_accuracy)}, hold-out accuracy "
        f"{percent(fitted.holdout_accuracy)} ({fitted.holdout_samples} images, not trained on)"
    )
    return fitted


def _check_role(args: argparse.Namespace) -> None:
    """--teacher goes with --role surrogate, both ways; a surrogate takes no plan sources."""
    if args.teacher is not None and args.role != "surrogate":
        raise ConfigError(
            f"--teacher is for --role surrogate (a model distilled from the teacher), not "
            f"--role {args.role}; drop --teacher or pass --role surrogate"
        )
    if args.role != "surrogate":
        return
    if args.teacher is None:
        raise ConfigError("--role surrogate needs --teacher PATH, the target model to distil")
    given = [flag for dest, flag in SURROGATE_REFUSES if getattr(args, dest) not in (None, [])]
    if given:
        raise ConfigError(
            f"{', '.join(given)} cannot be used with --role surrogate: a surrogate learns the "
            "teacher on --data's public split with every layer trained; drop them"
        )


def channel_kwargs(arch: str, channels: int | None) -> dict[str, int]:
    """``{"in_channels": channels}`` for an architecture that takes it; ``{}`` for None.

    Raises:
        ConfigError: ``arch`` has a fixed number of input channels.
    """
    if channels is None:
        return {}
    if "in_channels" not in ARCHITECTURES.get(arch).kwargs_from_state:
        raise ConfigError(
            f"architecture {arch!r} takes a fixed number of image channels; drop --channels "
            "or pick one that takes any (mcnn, scnn, vgg_small, resnet18)"
        )
    return {"in_channels": channels}


def _init(args: argparse.Namespace, model: torch.nn.Module) -> None:
    """Load --init into ``model`` (when given) and say how much of it was loaded."""
    if args.init is not None:
        loaded = load_init(model, check_listed(args.init), partial=args.init_partial)
        say(f"--init: loaded {loaded} of {len(model.state_dict())} tensors from {args.init}")


def _classifier(args: argparse.Namespace, config: TrainConfig) -> Stage:
    """A target or evaluator: built, started from --init, pre-trained on --public and planned;
    trained on the private split and measured on private-test."""
    private_classes = load_dataset(args.data, "private").num_classes
    first = load_dataset(args.public, "public").num_classes if args.public else private_classes
    model = build_model(args.arch, num_classes=first, **channel_kwargs(args.arch, args.channels))
    _init(args, model)
    private, test = (load_for(model, args.data, split) for split in ("private", "private-test"))
    defense = defense_from_args(args)  # refused before any training, not after
    written: list[Path] = []
    if args.public:
        model, written = _pretrain(args, model, config, private_classes)
    if defense is not None:
        model = defense.model_for(model)  # mid: the VIB head, before the head fit and plan
    head = _fit_head(args, model, private, config)
    plan, profiled = _plan(args, model, private, config, head)
    provenance = Provenance(
        data=args.data,
        public=args.public,
        role=args.role,
        pretrained_on=args.public,
        init=_text(args.init),
    )
    what = f"training {args.arch} on {args.data} private ({len(private)} images)"
    return Stage(
        model=model,
        data=private,
        test=test,
        plan=plan,
        provenance=provenance,
        objective=defense,
        written=[*written, *profiled],
        what=what,
        measure="accuracy",
    )


def _surrogate(args: argparse.Namespace) -> Stage:
    """A surrogate: --arch distilled from --teacher on --data's public split, at the teacher's
    input shape, with the teacher's classes; no private data is read."""
    path = check_listed(args.teacher)
    teacher = load_model(path)
    model = build_surrogate(teacher, args.arch)
    _init(args, model)
    public = load_for(teacher, args.data, "public")
    provenance = Provenance(
        data=args.data,
        public=args.data,
        class_names=_class_names(path, arch_of(model).kwargs["num_classes"]),
        role="surrogate",
        init=_text(args.init),
        teacher=str(args.teacher),
        teacher_sha256=sha256(path),
    )
    what = (
        f"distilling {args.arch} from {args.teacher} on {args.data} public ({len(public)} images)"
    )
    return Stage(
        model=model,
        data=public,
        test=None,  # the attacker's model: no private data, not even to report
        plan=None,
        provenance=provenance,
        objective=Distillation(teacher),
        written=[],
        what=what,
        measure="agreement with the teacher",
    )


def _class_names(path: Path, classes: int) -> tuple[str, ...] | None:
    """The class names in the teacher's meta (None when it has none, as a foreign file)."""
    payload = load_checkpoint(path)
    meta = payload.get("meta") if isinstance(payload, dict) else None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if names is None:
        return None
    if not isinstance(names, list) or len(names) != classes:
        raise ConfigError(
            f"{path}: its meta names {len(names) if isinstance(names, list) else names!r} "
            f"classes but the model predicts {classes}; re-save it with its class names"
        )
    return tuple(names)


def run(args: argparse.Namespace) -> list[Path]:
    """Build (and pre-train) the model, plan, fine-tune; return the files written."""
    _check_role(args)
    stages = [args.out / "pretrain", args.out] if args.public else [args.out]
    if args.resume and not any(_resuming(args, folder) for folder in stages):
        raise ConfigError(f"nothing to resume: {args.out} holds no {CHECKPOINT}; drop --resume")
    config = train_config(args, device=init_from_environment(args.device))
    torch.manual_seed(args.seed)  # the initial weights and the fresh head
    stage = _surrogate(args) if args.role == "surrogate" else _classifier(args, config)
    say(stage.what)
    result = train(
        stage.model,
        stage.data,
        config=config,
        test=stage.test,
        plan=stage.plan,
        provenance=stage.provenance,
        objective=stage.objective,
        out=args.out,
        resume=_resuming(args, args.out),
        progress=is_main_process(),
    )
    say(history_text(result.history))
    say(
        f"best epoch {result.best_epoch} (validation {stage.measure} "
        f"{percent(result.validation_accuracy)}); private-test accuracy "
        f"{percent(result.test_accuracy)}; frozen {result.plan.cutoff} of "
        f"{len(result.plan.layers)} layers"
    )
    say(f"wrote {', '.join(str(path) for path in result.files.values())}")
    return [*stage.written, *result.files.values()]


register_command(
    Command(
        name="train",
        help="train a classifier: from scratch, or pre-trained and fine-tuned under a freeze plan",
        add_arguments=add_arguments,
        run=run,
        description=DESCRIPTION,
    )
)
