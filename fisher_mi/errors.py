"""Exceptions raised by fisher_mi.

Every message is one line that says what is wrong and how to fix it. Library code raises these;
only the CLI turns them into exit codes and printed messages.
"""

from __future__ import annotations


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
