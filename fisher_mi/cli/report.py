"""``fisher-mi report RUN_DIR... [--out DIR]``: ``report.md`` and its figures from saved runs.

Rebuilds every table and figure from the files the runs saved (``history.csv``,
``fisher.csv``, ``metrics.json``, step manifests), so ``fisher-mi report DEMO_DIR`` rewrites the
demo's ``report.md`` byte for byte; refuses to compare attack runs of different protocols.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.report import build_report, report_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run folders and where the report goes."""
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="saved run folders")
    parser.add_argument(
        "--out", type=Path, default=None, help="report folder (default: the one RUN_DIR)"
    )


def out_folder(args: argparse.Namespace) -> Path:
    """``--out``, or the one run folder (several need ``--out``: ``build_report`` says so)."""
    return args.out if args.out is not None else args.runs[0]


def run(args: argparse.Namespace) -> list[Path]:
    """Build the report; return its files."""
    written = build_report(args.runs, out=args.out)
    print(f"wrote {written[0]}")
    return written


register_command(
    Command(
        name="report",
        help="rebuild report.md and its figures from saved runs",
        add_arguments=add_arguments,
        run=run,
        out_of=out_folder,
        outputs=lambda args: report_outputs(out_folder(args)),
    )
)
