"""The ``fisher-mi`` command line: thin wrappers around the Python API.

Library code raises ``FisherMIError`` with a one-line message; this is the only place that
turns it into ``fisher-mi: error: ...`` on stderr and exit status 2 (a traceback only with
``--debug``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from fisher_mi.data import DATASETS, load_dataset
from fisher_mi.distributed import init_from_environment, is_main_process, world_size
from fisher_mi.errors import ConfigError, DataError, FisherMIError
from fisher_mi.evaluate import accuracy
from fisher_mi.fisher import BACKENDS, FISHER_KINDS
from fisher_mi.io import read_table
from fisher_mi.models import ARCHITECTURES, arch_of, build_model, load_model, save_model
from fisher_mi.plan import BN_STATS, RULES, parse_params, plan_freeze
from fisher_mi.profiling import profile_splits, summary, write_profile
from fisher_mi.report import plot_freeze_plan
from fisher_mi.train import fit

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
    return parser


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
    model = build_model(args.arch, num_classes=classes)
    train, test = (_load_for(model, args.data, split) for split in ("private", "private-test"))
    print(
        f"training {args.arch} on {args.data} private "
        f"({len(train)} images, {train.num_classes} classes)"
    )
    history = fit(
        model,
        train,
        test=test,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        progress=True,
    )
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
