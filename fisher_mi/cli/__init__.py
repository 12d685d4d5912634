"""The ``fisher-mi`` command line: one module per subcommand, registered in ``COMMANDS``.

``commands`` (the registry), ``options`` (option groups shared by the commands), ``common``
(what several commands do alike), ``main`` (parser, checks before work, run folders, errors),
and one module per subcommand: ``profile``, ``plan``, ``train``, ``attack``, ``evaluate``,
``demo``, ``report``, ``sweep``, ``compare``.
"""

from fisher_mi.cli import (  # noqa: F401  (importing registers the commands)
    attack,
    compare,
    demo,
    evaluate,
    plan,
    profile,
    report,
    sweep,
    train,
    train_gan,
)
from fisher_mi.cli.commands import COMMANDS, Command, register_command
from fisher_mi.cli.main import build_parser, execute, main

__all__ = ["COMMANDS", "Command", "build_parser", "execute", "main", "register_command"]
