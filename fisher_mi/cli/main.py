"""``fisher-mi``: the parser built from the command registry, and the one place errors end.

Library code raises ``FisherMIError`` with a one-line message; here it becomes
``fisher-mi: error: ...`` on stderr and exit status 2 (a traceback only with ``--debug``). Every
command runs the same way: its device and output location are checked before any work, and on
rank 0 its run folder is held (lock, stale temporaries removed, ``manifest.json`` last; see
``fisher_mi.rundir``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from fisher_mi.cli.commands import COMMANDS, Command
from fisher_mi.distributed import check_device, is_launch_main
from fisher_mi.errors import FisherMIError, one_line, os_error_line
from fisher_mi.rundir import RunFolder, check_output

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``fisher-mi`` parser: one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="fisher-mi",
        description="Which layers of a classifier hold its private training data (per-layer "
        "Fisher information), and the TL-DMI transfer-learning defense built on it.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name, help=command.help, description=command.description or command.help
        )
        command.add_arguments(sub)
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments as plain values, for the manifest."""
    return {
        key: value if isinstance(value, (bool, int, float, type(None))) else str(value)
        for key, value in vars(args).items()
    }


def execute(command: Command, args: argparse.Namespace) -> None:
    """Check the device and the output location, then run ``command`` holding its folder."""
    if hasattr(args, "device"):
        args.device = check_device(args.device)
    out = command.out_of(args)
    check_output(out, kind=command.output)
    if not is_launch_main():  # under torchrun only rank 0 writes, so only it holds the folder
        command.run(args)
        return
    folder = out if command.output == "dir" else out.parent
    outputs = command.outputs(args) if command.outputs is not None else None
    record = {"command": command.name, "settings": _settings(args)}
    with RunFolder(folder, outputs=outputs, record=record) as held:
        held.finish(command.run(args))


def _one_line_warning(
    message: Warning | str, category: type[Warning], *_: object, **__: object
) -> None:
    """Show a library warning as one ``fisher-mi: warning:`` line, not a source excerpt."""
    print(f"fisher-mi: warning: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"fisher-mi: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fisher-mi`` with ``argv`` (default: the process's arguments); the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            execute(COMMANDS.get(args.command), args)
    except FisherMIError as err:
        if args.debug:
            raise
        return _fail(one_line(err))
    except OSError as err:  # a full disk, a folder that vanished: the system's words, one line
        if args.debug:
            raise
        return _fail(os_error_line(err))
    except KeyboardInterrupt:
        print("fisher-mi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
