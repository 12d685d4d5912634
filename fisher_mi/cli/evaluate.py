"""``fisher-mi evaluate RUN_DIR``: re-score an attack's saved reconstructions.

Reads ``inversions.pt``, ``prior_only.pt`` and the protocol in ``metrics.json`` of an attack
folder (each trusted only as its manifest lists it), loads the target the protocol names
(refused if its sha256 changed), and rewrites ``metrics.json`` and ``attack.csv`` with the
scores of ``--evaluator`` on ``--data`` (or writes them to ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch import nn

from fisher_mi.attacks.folder import METRICS, PRIOR_ONLY
from fisher_mi.attacks.inversion import Inversion
from fisher_mi.attacks.outputs import INVERSIONS, TABLE, write_table_of
from fisher_mi.cli.attack import scores_of
from fisher_mi.cli.commands import Command, register_command
from fisher_mi.cli.options import add_data_option
from fisher_mi.errors import DataError
from fisher_mi.io import load_checkpoint, write_json
from fisher_mi.models import load_model
from fisher_mi.rundir import check_listed, sha256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run folder, the evaluator and the private data."""
    parser.add_argument("run", type=Path, help="folder written by `fisher-mi attack`")
    parser.add_argument("--evaluator", type=Path, required=True, help="evaluation classifier")
    add_data_option(parser, help="the target's data (private, private-test)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where the new scores go (default: RUN)"
    )


def out_folder(args: argparse.Namespace) -> Path:
    """``--out``, or the run folder itself."""
    return args.out if args.out is not None else args.run


def _protocol(run: Path) -> dict:
    path = check_listed(run / METRICS)
    if not path.is_file():
        raise DataError(f"{run} holds no {METRICS}; give a folder written by `fisher-mi attack`")
    return json.loads(path.read_text())["protocol"]


def _target(protocol: dict) -> nn.Module:
    source = protocol.get("target") or {}
    path = Path(source.get("path", ""))
    if not path.is_file() or sha256(path) != source.get("sha256"):
        raise DataError(
            f"the attack's target {path} is missing or changed since the attack (its sha256 "
            "differs); re-run the attack against the target you mean"
        )
    return load_model(path)


def run(args: argparse.Namespace) -> list[Path]:
    """Score the run's reconstructions; rewrite its ``metrics.json`` and ``attack.csv``."""
    protocol = _protocol(args.run)
    inversions = load_checkpoint(check_listed(args.run / INVERSIONS))
    prior_only = load_checkpoint(check_listed(args.run / PRIOR_ONLY))
    target = _target(protocol).to(args.device or "cpu")
    out = out_folder(args)
    per_image, metrics = scores_of(args, target, inversions, prior_only, protocol)
    table = write_table_of(Inversion(**inversions), out, per_image)
    return [table, write_json(out / METRICS, metrics)]


register_command(
    Command(
        name="evaluate",
        help="re-score an attack's saved reconstructions with an evaluator",
        add_arguments=add_arguments,
        run=run,
        out_of=out_folder,
        outputs=lambda args: (out_folder(args) / METRICS, out_folder(args) / TABLE),
    )
)
