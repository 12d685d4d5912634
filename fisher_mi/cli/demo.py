"""``fisher-mi demo``: the TL-DMI story end to end at demo scale, resumable step by step.

Public pre-training, an undefended target and a TL-DMI target planned from the Fisher of the
pre-trained model, an evaluator, GAN priors, attacks against both targets, the Fisher of each
target on the classification and the MI task, and ``report.md`` with its figures (built by
``fisher-mi report``'s builder from the saved files). Steps whose outputs exist with the same
settings are reused, so an interrupted demo resumes and a second run is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.options import add_out_option, seed_value
from fisher_mi.distributed import init_from_environment
from fisher_mi.experiments import DATA_SETTINGS, SCALES, DemoConfig, run_demo
from fisher_mi.report import build_report

DESCRIPTION = (
    "Run TL-DMI end to end at demo scale: public pre-training (public/), the undefended target "
    "(scratch/), the TL-DMI target under a plan by the default rule (tl/), an evaluator "
    "(evaluator/), GAN priors (gan/), attacks against both targets (attacks/), the Fisher of "
    "the classification and the MI task (fisher/), then report.md and figures/. Steps already "
    "done with the same settings are reused."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, scale, seed, device and the demo folder."""
    parser.add_argument(
        "--data",
        default="mnist",
        help=f"mnist (bundled), att:ROOT or celeba:ROOT (known: {', '.join(DATA_SETTINGS)})",
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help=f"CI's setting: {SCALES['quick'].why}")
    scale.add_argument("--full", action="store_true", help=f"{SCALES['full'].why}")
    parser.add_argument("--seed", type=seed_value, default=0, help="every model, prior, attack")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    add_out_option(parser, default=Path("runs/demo"), help="the demo folder")


def run(args: argparse.Namespace) -> list[Path]:
    """Run or reuse every step, then write the report; return the files to list."""
    scale = "quick" if args.quick else "full" if args.full else "default"
    config = DemoConfig(
        data=args.data, scale=scale, seed=args.seed, device=init_from_environment(args.device)
    )
    done, written = run_demo(config, out=args.out, report=build_report)
    ran = [name for name, record in done.records.items() if record.state != "reused"]
    print(f"{len(ran)} of {len(done.records)} steps ran; wrote {args.out / 'report.md'}")
    return written


register_command(
    Command(
        name="demo",
        help="TL-DMI end to end at demo scale, with report.md",
        add_arguments=add_arguments,
        run=run,
        description=DESCRIPTION,
    )
)
