"""The command registry: each ``fisher-mi`` subcommand is one ``Command`` registered by name.

A command says how to add its arguments, how to run (returning the files it wrote), and what
it writes: a run folder (``output="dir"``) or one file (``"file"``, whose folder is the run
folder). ``main`` does the rest for every command alike: device and output checks before any
work, the folder's lock, stale temporaries, and ``manifest.json`` last.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fisher_mi.registry import Registry


def _out_flag(args: argparse.Namespace) -> Path:
    return args.out


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: the subcommand (``fisher-mi NAME``).
        help: one line for ``fisher-mi --help``.
        add_arguments: adds the command's options to its parser.
        run: runs it from the parsed arguments; returns the files it wrote.
        output: ``"dir"`` (``out_of(args)`` is a run folder) or ``"file"``.
        out_of: where it writes (default ``args.out``).
        outputs: the files it rewrites inside a folder it shares with other commands; None
            (default): the folder is this run's alone, every previous manifest entry is dropped.
        description: the longer text of ``fisher-mi NAME --help``.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], list[Path]]
    output: str = "dir"
    out_of: Callable[[argparse.Namespace], Path] = _out_flag
    outputs: Callable[[argparse.Namespace], tuple[Path, ...]] | None = None
    description: str | None = None


COMMANDS = Registry[Command]("command")


def register_command(command: Command) -> Command:
    """Add ``command`` to ``COMMANDS`` under its name (once)."""
    return COMMANDS.add(command.name, command)
