"""Exceptions raised by fisher_mi.

Every message is one line that says what is wrong and how to fix it. Library code raises these;
only the CLI turns them into exit codes and printed messages.
"""

from __future__ import annotations

import re


class FisherMIError(Exception):
    """Base class: a problem the user can fix, explained in one line."""


class RegistryError(FisherMIError, KeyError):
    """An unknown or duplicate name in one of the registries (architectures, datasets, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(FisherMIError):
    """A dataset that cannot be read or used: missing path, empty split, bad labels."""


class CheckpointError(FisherMIError):
    """A checkpoint that cannot be read: missing, corrupt, or not a state dict."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding pickled objects that could run code when loaded."""


class ArchitectureMismatchError(CheckpointError):
    """A state dict whose keys or shapes do not fit the architecture."""


class NonFiniteError(FisherMIError):
    """A NaN or infinite loss or gradient met while computing Fisher information."""


class ConfigError(FisherMIError, ValueError):
    """An option with a value outside its allowed range."""


# The last line of a traceback: "package.module.SomeError: message".
_TRACEBACK_LAST_LINE = re.compile(r"^[A-Za-z_][\w.]*: (?P<message>.+)$")


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line, for the CLI.

    An exception raised in a DataLoader worker comes back re-raised with the worker's whole
    traceback in its message ("Caught DataError in DataLoader worker process 0. Original
    Traceback ..."): the original message, on the traceback's last line, is what the user needs.
    """
    text = str(error).strip()
    lines = text.splitlines()
    if "Original Traceback" in text:
        for line in reversed(lines):
            match = _TRACEBACK_LAST_LINE.match(line.strip())
            if match:
                return match.group("message")
    return lines[0] if lines else type(error).__name__


def os_error_line(error: OSError) -> str:
    """An operating-system error (disk full, permission denied) as one line naming the file."""
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error) or type(error).__name__
    return f"cannot access{where}: {reason}; check the path, its permissions and free space"
