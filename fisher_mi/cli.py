"""The ``fisher-mi`` command line: thin wrappers around the Python API.

Library code raises ``FisherMIError`` with a one-line message; this is the only place that
turns it into ``fisher-mi: error: ...`` on stderr and exit status 2 (a traceback only with
``--debug``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from fisher_mi.data import DATASETS, load_dataset
from fisher_mi.distributed import init_from_environment, is_main_process, world_size
from fisher_mi.errors import ConfigError, DataError, FisherMIError
from fisher_mi.evaluate import accuracy
from fisher_mi.fisher import BACKENDS, FISHER_KINDS, profile_splits, summary
from fisher_mi.io import read_table
from fisher_mi.models import ARCHITECTURES, arch_of, build_model, load_model, save_model
from fisher_mi.plan import (
    BN_STATS,
    RULES,
    FreezePlan,
    parse_params,
    plan_by_rule,
    plan_freeze,
    prefix_plan,
)
from fisher_mi.report import plot_freeze_plan, write_profile
from fisher_mi.training import (
    CHECKPOINT,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    load_init,
    pretrain_public,
    train,
)

EXIT_USER_ERROR = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _extra_split(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise argparse.ArgumentTypeError(
            f"expected NAME=SPEC (e.g. inverted=folder:runs/gmi/images), got {text!r}"
        )
    return name, spec


def _add_fisher_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS.names(),
        help="how per-sample gradient norms are computed (default: auto)",
    )
    parser.add_argument(
        "--fisher",
        default="empirical",
        choices=FISHER_KINDS,
        help="empirical (true labels) or true (labels drawn from the model)",
    )
    parser.add_argument(
        "--mc-samples",
        type=_positive_int,
        default=1,
        help="label draws per input for --fisher true",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=64)
    parser.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=32,
        help="per-sample gradients held at once by the vmap backend",
    )
    parser.add_argument(
        "--max-samples",
        type=_positive_int,
        default=None,
        help="profile a seeded random subset of at most this many samples per split",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="data-loading worker processes (default: 0)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fisher-mi",
        description="Per-layer Fisher information of classifiers on private vs public data.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prof = commands.add_parser(
        "profile", help="per-layer Fisher information of a model on its data"
    )
    prof.add_argument(
        "model", type=Path, help="checkpoint (fisher_mi format or a foreign state dict)"
    )
    prof.add_argument(
        "--data",
        required=True,
        help=f"dataset spec: NAME or NAME:ROOT (known: {', '.join(DATASETS.names())})",
    )
    prof.add_argument("--splits", default="private,public", help="comma-separated splits of --data")
    prof.add_argument(
        "--also",
        type=_extra_split,
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="profile further labelled data as split NAME, e.g. "
        "inverted=folder:runs/gmi/images (repeatable)",
    )
    prof.add_argument(
        "--arch",
        default=None,
        help=f"architecture of a foreign checkpoint (known: {', '.join(ARCHITECTURES.names())})",
    )
    prof.add_argument("--out", type=Path, default=Path("runs/profile"))
    prof.add_argument(
        "--trainable-only", action="store_true", help="skip parameters with requires_grad=False"
    )
    _add_fisher_options(prof)
    prof.set_defaults(handler=run_profile)

    demo = commands.add_parser("demo", help="train a small target on bundled data and profile it")
    demo.add_argument("--data", default="mnist", help="bundled dataset (default: mnist)")
    demo.add_argument("--arch", default="mcnn")
    demo.add_argument("--epochs", type=_positive_int, default=4)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    _add_fisher_options(demo)
    demo.set_defaults(handler=run_demo)

    plan = commands.add_parser(
        "plan", help="choose which layers to freeze for fine-tuning, from a Fisher table"
    )
    plan.add_argument("table", type=Path, help="fisher.csv written by `fisher-mi profile`")
    plan.add_argument(
        "--rule",
        default="auto",
        help=f"cutoff rule (known: {', '.join(RULES.names())}; default: auto)",
    )
    plan.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the rule, e.g. p=0.8, last=2, threshold=0.5 (repeatable)",
    )
    plan.add_argument(
        "--cutoff",
        type=int,
        default=None,
        help="override the rule: freeze the layers with depth < K (the rule's scores are kept)",
    )
    plan.add_argument(
        "--model",
        type=Path,
        default=None,
        help="checkpoint the table was profiled from (rule rgn reads its parameter norms)",
    )
    plan.add_argument(
        "--arch",
        default=None,
        help=f"architecture of a foreign --model (known: {', '.join(ARCHITECTURES.names())})",
    )
    plan.add_argument(
        "--bn-stats",
        default="frozen",
        choices=BN_STATS,
        help="running statistics of frozen BatchNorm layers during fine-tuning (default: frozen)",
    )
    plan.add_argument(
        "--out",
        type=Path,
        default=None,
        help="plan file (default: plan.json beside the table); the figure goes beside it (.png)",
    )
    plan.set_defaults(handler=run_plan)
    _add_train_parser(commands)
    return parser


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    job = commands.add_parser(
        "train",
        help="train a classifier: from scratch, or pre-trained and fine-tuned under a freeze plan",
        description="Train from scratch (the baseline), or start from --init and/or pre-train "
        "on --public, then fine-tune on the private data under --plan, --cutoff or --rule. "
        "Writes model.pt (best epoch on a validation hold-out), history.csv, plan.json and "
        "checkpoint.pt into --out; prints the private-test accuracy.",
    )
    job.add_argument(
        "--data",
        required=True,
        help=f"private data spec: NAME or NAME:ROOT (known: {', '.join(DATASETS.names())})",
    )
    job.add_argument(
        "--arch", required=True, help=f"architecture (known: {', '.join(ARCHITECTURES.names())})"
    )
    job.add_argument(
        "--public",
        default=None,
        metavar="SPEC",
        help="pre-train on this spec's public split first (its own head), then swap in a "
        "fresh head for the private classes",
    )
    job.add_argument(
        "--pretrain-epochs", type=_positive_int, default=None, help="default: --epochs"
    )
    job.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="PATH",
        help="start from a local pre-trained file (state dict or fisher_mi checkpoint)",
    )
    job.add_argument(
        "--init-partial",
        action="store_true",
        help="load only the tensors of --init that match (by name and shape)",
    )
    job.add_argument("--plan", type=Path, default=None, help="plan.json from `fisher-mi plan`")
    job.add_argument("--cutoff", type=int, default=None, help="freeze the layers with depth < K")
    job.add_argument(
        "--rule",
        default=None,
        help="profile the (pre-trained) model on private and public data and plan with this "
        f"rule (known: {', '.join(RULES.names())}); --cutoff then overrides its choice",
    )
    job.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of --rule, e.g. p=0.8 (repeatable)",
    )
    job.add_argument("--bn-stats", default="frozen", choices=BN_STATS)
    job.add_argument(
        "--profile-samples",
        type=_positive_int,
        default=None,
        help="profile a seeded subset of at most this many samples per split for --rule",
    )
    job.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    job.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    job.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    job.add_argument("--lr", type=float, default=defaults.lr)
    job.add_argument("--momentum", type=float, default=defaults.momentum)
    job.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    job.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule)
    job.add_argument(
        "--validation-fraction",
        type=float,
        default=defaults.validation_fraction,
        help="share of the training data held out to pick the best epoch",
    )
    job.add_argument("--seed", type=int, default=defaults.seed)
    job.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    job.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    job.add_argument(
        "--max-steps", type=_positive_int, default=None, help="stop after N steps (smoke runs)"
    )
    job.add_argument("--workers", type=int, default=defaults.num_workers)
    job.add_argument("--out", type=Path, required=True)
    job.add_argument("--resume", action="store_true", help="continue the run in --out")
    job.set_defaults(handler=run_train)


def _fisher_options(args: argparse.Namespace) -> dict:
    return {
        "backend": args.backend,
        "fisher": args.fisher,
        "mc_samples": args.mc_samples,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "max_samples": args.max_samples,
        "device": args.device,
        "num_workers": args.workers,
        "seed": args.seed,
        "progress": True,
    }


def _load_for(model: nn.Module, spec: str, split: str) -> Dataset:
    """A split of ``spec`` resized and converted to the model's input shape, when known."""
    channels, size, _ = getattr(model, "input_shape", (None, None, None))
    return load_dataset(spec, split, image_size=size, channels=channels)


def _profile_model(
    model, model_path: Path, args: argparse.Namespace, sources: dict[str, str]
) -> None:
    """Load every split at the model's input shape, profile, write, print."""
    datasets = {split: _load_for(model, spec, split) for split, spec in sources.items()}
    options = _fisher_options(args)
    if getattr(args, "trainable_only", False):
        options["trainable_only"] = True
    run = profile_splits(model, datasets, **options)
    if not is_main_process():  # under torchrun every rank holds the same table; rank 0 writes
        return
    spec = arch_of(model)
    paths = write_profile(
        run,
        args.out,
        record={
            "command": "profile",
            "model": str(model_path),
            "arch": {"name": spec.name, "kwargs": dict(spec.kwargs)} if spec else None,
            "data": sources,
            "processes": world_size(),
        },
    )
    print(summary(run.table))
    print(f"wrote {', '.join(str(p) for p in paths.values())} ({run.seconds:.1f} s)")


def run_profile(args: argparse.Namespace) -> None:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits and not args.also:
        raise ConfigError("no splits to profile; pass --splits private,public or --also NAME=SPEC")
    sources = {split: args.data for split in splits}
    for name, spec in args.also:
        if name in sources:
            raise ConfigError(f"split name {name!r} is used twice; give each --also its own NAME")
        sources[name] = spec
    model = load_model(args.model, arch=args.arch)
    args.device = init_from_environment(args.device)
    _profile_model(model, args.model, args, sources)


def run_demo(args: argparse.Namespace) -> None:
    if DATASETS.get(args.data).needs_root:
        raise ConfigError(
            f"the demo runs on bundled data; {args.data!r} reads from disk (use mnist or digits)"
        )
    classes = load_dataset(args.data, "private").num_classes
    torch.manual_seed(args.seed)
    model = build_model(args.arch, num_classes=classes)
    private, test = (_load_for(model, args.data, split) for split in ("private", "private-test"))
    print(
        f"training {args.arch} on {args.data} private "
        f"({len(private)} images, {private.num_classes} classes)"
    )
    config = TrainConfig(
        epochs=args.epochs,
        optimizer="adam",
        lr=1e-3,
        schedule="none",
        seed=args.seed,
        device=args.device,
        validation_fraction=0.0,
        num_workers=args.workers,
    )
    history = train(model, private, config=config, test=test, progress=True).history
    test_accuracy = accuracy(model, test, device=args.device)
    print(history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    model_path = args.out / "model.pt"
    save_model(
        model,
        model_path,
        meta={
            "data": args.data,
            "epochs": args.epochs,
            "seed": args.seed,
            "private_test_accuracy": test_accuracy,
        },
    )
    print(f"saved {model_path}; private-test accuracy {test_accuracy:.3f}")
    _profile_model(
        load_model(model_path), model_path, args, {"private": args.data, "public": args.data}
    )


def run_plan(args: argparse.Namespace) -> None:
    if not args.table.is_file():
        raise DataError(
            f"Fisher table {args.table} does not exist; write it with `fisher-mi profile`"
        )
    try:
        table = read_table(args.table)
    except (ValueError, UnicodeDecodeError) as err:  # pandas parser errors are ValueErrors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"Fisher table {args.table} is not a readable CSV ({reason}); "
            "write it with `fisher-mi profile`"
        ) from None
    params = parse_params(args.param)
    if args.model is not None:
        params["model"] = load_model(args.model, arch=args.arch)
    plan = plan_freeze(table, rule=args.rule, cutoff=args.cutoff, bn_stats=args.bn_stats, **params)
    out = args.out if args.out is not None else args.table.parent / "plan.json"
    plan.save(out)
    figure = plot_freeze_plan(table, plan, out.with_suffix(".png"))
    print(plan.summary())
    print(f"wrote {out}, {figure}")


def _train_config(args: argparse.Namespace, device: str | None) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
        device=device,
        amp=args.amp,
        max_steps=args.max_steps,
        validation_fraction=args.validation_fraction,
        num_workers=args.workers,
    )


def _train_plan(
    args: argparse.Namespace, model: nn.Module, private: Dataset, device: str | None
) -> FreezePlan | None:
    """The plan from --plan, --rule (profiling the model first) or --cutoff; None: train all."""
    if args.plan is not None:
        if args.rule is not None or args.cutoff is not None:
            raise ConfigError("--plan is a finished plan; give it alone, or --rule/--cutoff")
        return FreezePlan.load(args.plan)
    if args.rule is None:
        if args.param:
            raise ConfigError("--param sets a parameter of --rule; give --rule NAME too")
        if args.cutoff is None:
            return None
        return prefix_plan(model, args.cutoff, bn_stats=args.bn_stats)
    public = _load_for(model, args.public or args.data, "public")
    plan, run = plan_by_rule(
        model,
        {"private": private, "public": public},
        rule=args.rule,
        cutoff=args.cutoff,
        rule_params=parse_params(args.param),
        bn_stats=args.bn_stats,
        batch_size=args.batch_size,
        max_samples=args.profile_samples,
        device=device,
        num_workers=args.workers,
        seed=args.seed,
        progress=True,
    )
    if is_main_process():
        record = {"command": "train --rule", "arch": args.arch, "data": args.data}
        write_profile(run, args.out, record={**record, "processes": world_size()})
    _say(plan.summary())
    return plan


def _resuming(args: argparse.Namespace, folder: Path) -> bool:
    """Resume a stage whose checkpoint exists; start a stage the interrupted run never began."""
    return args.resume and (folder / CHECKPOINT).is_file()


def run_train(args: argparse.Namespace) -> None:
    stages = [args.out / "pretrain", args.out] if args.public else [args.out]
    if args.resume and not any(_resuming(args, folder) for folder in stages):
        raise ConfigError(f"nothing to resume: {args.out} holds no {CHECKPOINT}; drop --resume")
    device = init_from_environment(args.device)
    config = _train_config(args, device)
    torch.manual_seed(args.seed)  # the initial weights and the fresh head
    private_classes = load_dataset(args.data, "private").num_classes
    first = load_dataset(args.public, "public").num_classes if args.public else private_classes
    model = build_model(args.arch, num_classes=first)
    if args.init is not None:
        loaded = load_init(model, args.init, partial=args.init_partial)
        _say(f"--init: loaded {loaded} of {len(model.state_dict())} tensors from {args.init}")
    private, test = (_load_for(model, args.data, split) for split in ("private", "private-test"))
    if args.public:
        public = _load_for(model, args.public, "public")
        _say(f"pre-training {args.arch} on {args.public} public ({len(public)} images)")
        model, pre = pretrain_public(
            model,
            public,
            num_classes=private_classes,
            config=replace(config, epochs=args.pretrain_epochs or args.epochs),
            out=stages[0],
            resume=_resuming(args, stages[0]),
            progress=is_main_process(),
        )
        _say(
            f"pre-trained: best epoch {pre.best_epoch}, public validation accuracy "
            f"{_percent(pre.validation_accuracy)}; head replaced for {private_classes} classes"
        )
    plan = _train_plan(args, model, private, device)
    _say(f"training {args.arch} on {args.data} private ({len(private)} images)")
    result = train(
        model,
        private,
        config=config,
        test=test,
        plan=plan,
        out=args.out,
        resume=_resuming(args, args.out),
        progress=is_main_process(),
    )
    _say(result.history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    _say(
        f"best epoch {result.best_epoch} (validation accuracy "
        f"{_percent(result.validation_accuracy)}); private-test accuracy "
        f"{_percent(result.test_accuracy)}; frozen {result.plan.cutoff} of "
        f"{len(result.plan.layers)} layers"
    )
    _say(f"wrote {', '.join(str(path) for path in result.files.values())}")


def _say(message: str) -> None:
    """Print on rank 0 only: under torchrun every process runs the same command."""
    if is_main_process():
        print(message)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except FisherMIError as err:
        if args.debug:
            raise
        print(f"fisher-mi: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fisher-mi: interrupted", file=sys.stderr)
        return 130
    return 0
