"""``fisher-mi profile``: per-layer Fisher information of a model on its data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.common import arch_record, profile_sources, write_run
from fisher_mi.cli.options import (
    FISHER_OPTIONS,
    RUN_OPTIONS,
    add_arch_option,
    add_data_option,
    add_group,
    add_out_option,
    extra_split,
    values,
)
from fisher_mi.distributed import init_from_environment
from fisher_mi.errors import ConfigError
from fisher_mi.io import load_checkpoint
from fisher_mi.models import load_model
from fisher_mi.models.checkpoint import is_own_format
from fisher_mi.plan import MODEL_PROVENANCE, model_provenance
from fisher_mi.rundir import check_listed

OUTPUTS = ("fisher.csv", "fisher.json", "fisher.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, its data and splits, and the shared Fisher and run options."""
    parser.add_argument(
        "model", type=Path, help="checkpoint (fisher_mi format or a foreign state dict)"
    )
    add_data_option(parser, help="dataset spec")
    parser.add_argument(
        "--splits", default="private,public", help="comma-separated splits of --data"
    )
    parser.add_argument(
        "--also",
        type=extra_split,
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="profile further labelled data as split NAME, e.g. "
        "inverted=folder:runs/gmi/images (repeatable)",
    )
    add_arch_option(parser, help="architecture of a foreign checkpoint")
    add_out_option(parser, default=Path("runs/profile"), help="folder for fisher.csv/json/png")
    add_group(parser, FISHER_OPTIONS)
    add_group(parser, RUN_OPTIONS)


def split_sources(splits: str, data: str, also: list[tuple[str, str]]) -> dict[str, str]:
    """Split name -> data spec: the ``--splits`` of ``--data``, then each ``--also``."""
    sources = {split.strip(): data for split in splits.split(",") if split.strip()}
    if not sources and not also:
        raise ConfigError("no splits to profile; pass --splits private,public or --also NAME=SPEC")
    for name, spec in also:
        if name in sources:
            raise ConfigError(f"split name {name!r} is used twice; give each --also its own NAME")
        sources[name] = spec
    return sources


def made_from(path: Path) -> dict[str, Any] | None:
    """How the checkpoint's model was made (``pretrained_on``, ``role``, ``init`` from its
    meta), for ``fisher.json``; None for a foreign checkpoint, which does not say."""
    payload = load_checkpoint(path)
    return model_provenance(payload.get("meta") if is_own_format(payload) else None)


def run(args: argparse.Namespace) -> list[Path]:
    """Load the model, profile every split, write the table, record and figure."""
    sources = split_sources(args.splits, args.data, args.also)
    model = load_model(check_listed(args.model), arch=args.arch)
    options = {**values(args, FISHER_OPTIONS), **values(args, RUN_OPTIONS)}
    options["device"] = init_from_environment(args.device)
    record = {
        "command": "profile",
        "model": str(args.model),
        "arch": arch_record(model),
        MODEL_PROVENANCE: made_from(args.model),
    }
    return write_run(
        profile_sources(model, sources, options), args.out, {**record, "data": sources}
    )


register_command(
    Command(
        name="profile",
        help="per-layer Fisher information of a model on its data",
        add_arguments=add_arguments,
        run=run,
        outputs=lambda args: tuple(args.out / name for name in OUTPUTS),
    )
)
