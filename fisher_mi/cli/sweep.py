"""``fisher-mi sweep``: TL-DMI at each cutoff (block boundaries), each model attacked, against
the undefended model; ``sweep.csv``, ``hits.csv``, ``sweep.json`` (the verdict on ``auto``)
and ``sweep.png``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import percent, say
from fisher_mi.cli.options import (
    add_arch_option,
    add_data_option,
    add_out_option,
    non_negative_int,
    positive_int,
    real_number,
)
from fisher_mi.distributed import init_from_environment, is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.sweep import QUICK, SWEEP_PNG, SweepResult, sweep
from fisher_mi.experiments.sweep_stats import sweep_series
from fisher_mi.models import ARCHITECTURES
from fisher_mi.report.sweep import plot_sweep

DESCRIPTION = (
    "Per seed: pre-train on the public data once, fine-tune a TL model at each cutoff (block "
    "boundaries; all: every one but the last) and train the undefended model from scratch; "
    "attack each with one shared gmi prior (kedmi: a prior per model) and score it with one "
    "evaluator. Rows are appended to --out/sweep.csv per (cutoff, seed): rerun the same "
    "command to resume. sweep.json holds the verdict on the auto cutoff, sweep.png the "
    "figure."
)
# flag -> (SweepConfig field, argparse type); None defaults leave the field to the library
# (or to --quick)
TUNING = {
    "--epochs": ("epochs", positive_int),
    "--pretrain-epochs": ("pretrain_epochs", positive_int),
    "--head-epochs": ("head_epochs", non_negative_int),
    "--batch-size": ("batch_size", positive_int),
    "--lr": ("lr", real_number),
    "--max-steps": ("max_steps", positive_int),
    "--steps": ("gan_steps", positive_int),
    "--iters": ("iterations", non_negative_int),
    "--per-id": ("per_identity", positive_int),
    "--profile-samples": ("profile_samples", positive_int),
}


def seeds_value(text: str) -> tuple[int, ...]:
    """argparse type: ``N`` (seeds 0 to N-1) or a list ``a,b,c``."""
    try:
        parts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N or a,b,c (whole numbers), got {text!r}"
        ) from None
    if not parts or min(parts) < 0 or ("," not in text and parts[0] < 1):
        raise argparse.ArgumentTypeError(f"expected N >= 1 or seeds >= 0, got {text!r}")
    return tuple(range(parts[0])) if "," not in text else tuple(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, cutoffs, attacks, seeds, sizes, outputs."""
    add_data_option(parser, help="private data spec")
    parser.add_argument("--cutoffs", default="all", help="all or block boundaries K1,K2,...")
    add_run_arguments(parser, out_help="sweep folder")


def add_run_arguments(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    """What a sweep and a comparison (``fisher-mi compare``) share: the public data, attacks,
    seeds, architectures, sizes, ``--quick``, device and output."""
    parser.add_argument("--public", default=None, metavar="SPEC", help="default: --data")
    parser.add_argument("--attacks", default="gmi", help="gmi, kedmi and/or plgmi, comma-separated")
    parser.add_argument(
        "--seeds", type=seeds_value, default=(0,), help="N (seeds 0..N-1) or a,b,c (default: 1)"
    )
    add_arch_option(parser, help="the targets' architecture (default by image size)")
    parser.add_argument(
        "--evaluator-arch",
        default=None,
        help="the evaluator's architecture, another than the targets' (default by image size: "
        f"scnn at 32 px, resnet18 at 64; known: {', '.join(ARCHITECTURES.names())})",
    )
    for flag, (dest, kind) in TUNING.items():
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=dest.replace("_", " "))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes for the options not given: "
        + ", ".join(f"{key} {value}" for key, value in QUICK.items()),
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--workers", dest="num_workers", type=non_negative_int, default=0)
    add_out_option(parser, help=out_help)


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``SweepConfig`` fields of ``add_run_arguments``' options (the sizes given)."""
    given = {dest: getattr(args, dest) for dest, _ in TUNING.values()}
    return {
        **{key: value for key, value in given.items() if value is not None},
        "attacks": tuple(part.strip() for part in args.attacks.split(",") if part.strip()),
        "seeds": args.seeds,
        "arch": args.arch,
        "evaluator_arch": args.evaluator_arch,
        "public": args.public,
        "num_workers": args.num_workers,
    }


def _say_result(result: SweepResult) -> None:
    shown = result.table.drop(columns=["block"])
    say(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    for attack, verdict in result.verdicts.items():
        best = verdict.get("best") or {}
        say(
            f"{attack}: best point cutoff {best.get('cutoff')}, {verdict['verdict']} "
            f"(p = {verdict.get('p_value', float('nan')):.3g}, {verdict['n_seeds']} seeds; "
            f"undefended top-1 {percent((best.get('undefended') or {}).get('top1'))})"
        )


def run(args: argparse.Namespace) -> list[Path]:
    """Run or resume the sweep, then draw its figure."""
    device = init_from_environment(args.device)
    options = {**run_options(args), "cutoffs": args.cutoffs}
    result = sweep(args.data, out=args.out, quick=args.quick, device=device, **options)
    if not is_main_process():
        return []
    if result.table.empty:
        raise ConfigError(f"{args.out}: the sweep produced no rows")
    figure = plot_sweep(sweep_series(result.table, result.hits), args.out / SWEEP_PNG)
    _say_result(result)
    return [*result.files, figure]


register_command(
    Command(
        name="sweep",
        help="TL-DMI at each cutoff against the undefended model; where each rule lands",
        add_arguments=add_arguments,
        run=run,
        description=DESCRIPTION,
    )
)
