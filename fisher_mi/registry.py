"""A small name -> object registry: the one mechanism behind every pluggable part.

Architectures, datasets, Fisher backends and (later) cutoff rules and attacks are each a
`Registry`. Registering a name twice is an error, and every "unknown name" message lists the
names the registry actually holds, so the message can never go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fisher_mi.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries of one kind (``what`` names the kind in error messages)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name may be registered once only."""
        if name in self._entries or name in self._aliases:
            raise RegistryError(f"{self.what} {name!r} is registered twice; pick another name")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(entry: T) -> T:
            return self.add(name, entry)

        return decorate

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name for the registered ``target`` (e.g. ``auto``)."""
        if name in self._entries or name in self._aliases:
            raise RegistryError(f"{self.what} {name!r} is registered twice; pick another name")
        self._aliases[name] = target

    def resolve(self, name: str) -> str:
        """The registered name that ``name`` stands for (itself unless it is an alias)."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> T:
        """The entry for ``name`` or its alias; an unknown name raises listing the known ones."""
        try:
            return self._entries[self.resolve(name)]
        except KeyError:
            raise RegistryError(
                f"unknown {self.what} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Aliases first, then registered names, in registration order."""
        return [*self._aliases, *self._entries]

    def items(self) -> Iterator[tuple[str, T]]:
        """Registered names and entries (aliases left out)."""
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __len__(self) -> int:
        return len(self._entries)
