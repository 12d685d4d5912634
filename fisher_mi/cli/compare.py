"""``fisher-mi compare``: the defenses (none, MID, BiDO, negative label smoothing, TL-DMI and
TL-DMI with a defense) trained on one protocol at a grid of strengths, each attacked and scored
alike; ``compare.csv``, ``hits.csv``, ``compare.json`` and ``compare.png``."""

from __future__ import annotations

import argparse
from pathlib import Path

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import say
from fisher_mi.cli.options import add_data_option
from fisher_mi.cli.sweep import add_run_arguments, run_options
from fisher_mi.distributed import init_from_environment, is_main_process
from fisher_mi.errors import ConfigError
from fisher_mi.experiments.compare import COMPARE_PNG, compare, compare_series
from fisher_mi.experiments.compare_config import (
    DEFAULT_DEFENSES,
    DEFAULT_GRIDS,
    known_defenses,
    params_text,
    parse_grid,
)
from fisher_mi.report.compare import plot_compare

DESCRIPTION = (
    "Per seed: train one model per defense and strength (none: from scratch; mid, bido, nls: "
    "from scratch under the defense; tl: public pre-training, a fitted head, frozen up to "
    "where the auto rule lands; tl+NAME: that with the defense while fine-tuning), attack "
    "each with one shared gmi prior (kedmi: a prior per model) and score it with one "
    "evaluator. Rows are appended to --out/compare.csv per (defense, strength, seed): rerun "
    "the same command to resume. compare.png plots natural accuracy against attack top-1, "
    "one curve per defense. Default strengths: "
    + "; ".join(
        " | ".join(params_text(point.items()) for point in grid.points) + f" ({name})"
        for name, grid in DEFAULT_GRIDS.items()
        if grid.points != ({},)
    )
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, defenses and their strengths, then what the sweep takes (``add_run_arguments``)."""
    add_data_option(parser, help="private data spec")
    parser.add_argument(
        "--defenses",
        default=",".join(DEFAULT_DEFENSES),
        help=f"comma-separated (default: %(default)s; known: {', '.join(known_defenses())})",
    )
    parser.add_argument(
        "--defense-param",
        dest="defense_params",
        action="append",
        default=[],
        metavar="K=V1,V2,...",
        help="the strengths of every chosen defense with parameter K (repeat for another "
        "parameter: their product); default: each defense's grid (see above)",
    )
    add_run_arguments(parser, out_help="comparison folder")


def run(args: argparse.Namespace) -> list[Path]:
    """Run or resume the comparison, then draw its figure."""
    device = init_from_environment(args.device)
    result = compare(
        args.data,
        out=args.out,
        defenses=args.defenses,
        grid=parse_grid(args.defense_params),
        quick=args.quick,
        device=device,
        **run_options(args),
    )
    if not is_main_process():
        return []
    if result.table.empty:
        raise ConfigError(f"{args.out}: the comparison produced no rows")
    figure = plot_compare(compare_series(result.table), args.out / COMPARE_PNG)
    say(result.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return [*result.files, figure]


register_command(
    Command(
        name="compare",
        help="the defenses (MID, BiDO, NLS, TL-DMI, TL-DMI + BiDO) on one protocol",
        add_arguments=add_arguments,
        run=run,
        description=DESCRIPTION,
    )
)
