"""``fisher-mi plan``: choose which layers to freeze for fine-tuning, from a Fisher table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.options import add_arch_option
from fisher_mi.errors import DataError
from fisher_mi.models import load_model
from fisher_mi.plan import (
    BN_STATS,
    MODEL_PROVENANCE,
    RULES,
    parse_params,
    plan_freeze,
    read_fisher_table,
    warn_if_not_pretrained,
)
from fisher_mi.report import plot_freeze_plan
from fisher_mi.rundir import check_listed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The table, the rule and its parameters, an override, and where the plan goes."""
    parser.add_argument("table", type=Path, help="fisher.csv written by `fisher-mi profile`")
    parser.add_argument(
        "--rule", default="auto", help=f"cutoff rule (known: {', '.join(RULES.names())})"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter of the rule, e.g. p=0.8, last=2, threshold=0.5 (repeatable)",
    )
    parser.add_argument(
        "--cutoff",
        type=int,
        default=None,
        help="override the rule: freeze the layers with depth < K (the rule's scores are kept)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="checkpoint the table was profiled from (rule rgn reads its parameter norms)",
    )
    add_arch_option(parser, help="architecture of a foreign --model")
    parser.add_argument(
        "--bn-stats",
        default="frozen",
        choices=BN_STATS,
        help="running statistics of frozen BatchNorm layers during fine-tuning",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="plan file (default: plan.json beside the table); the figure goes beside it (.png)",
    )


def plan_path(args: argparse.Namespace) -> Path:
    """``--out``, or ``plan.json`` beside the table."""
    return args.out if args.out is not None else args.table.parent / "plan.json"


def profile_record(table: Path) -> dict[str, Any] | None:
    """The ``fisher.json`` written beside a Fisher table, or None where there is none."""
    path = check_listed(table.with_name("fisher.json"))
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(
            f"{path} is not readable JSON ({err}); rerun the profile that wrote {table}"
        ) from None
    return record if isinstance(record, dict) else None


def run(args: argparse.Namespace) -> list[Path]:
    """Read the table, warn about a model not pre-trained on public data, plan (warning
    about a plan that freezes nothing), write ``plan.json`` and its figure."""
    table = read_fisher_table(check_listed(args.table))
    record = profile_record(args.table)
    if record is not None:
        warn_if_not_pretrained(record.get(MODEL_PROVENANCE), table=str(args.table))
    params = parse_params(args.param)
    if args.model is not None:
        params["model"] = load_model(check_listed(args.model), arch=args.arch)
    plan = plan_freeze(table, rule=args.rule, cutoff=args.cutoff, bn_stats=args.bn_stats, **params)
    out = plan_path(args)
    written = [plan.save(out), plot_freeze_plan(table, plan, out.with_suffix(".png"))]
    print(plan.summary())
    print(f"wrote {written[0]}, {written[1]}")
    return written


register_command(
    Command(
        name="plan",
        help="choose which layers to freeze for fine-tuning, from a Fisher table",
        add_arguments=add_arguments,
        run=run,
        output="file",
        out_of=plan_path,
        outputs=lambda args: (plan_path(args), plan_path(args).with_suffix(".png")),
    )
)
