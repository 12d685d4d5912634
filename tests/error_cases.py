"""Error cases as data: a call that must fail, and what its one-line message must say.

One shape for every test file's table of failures (datasets, the command line, ...): a case
holds the call's positional ``args`` and keyword ``options``, the exception it must raise and
the fragments its message must hold. ``{root}`` in ``args`` and ``says`` stands for the test's
folder, which ``build`` prepares first; what ``build`` returns (a model file, say) is the
test's to use. Cases carry their own pytest ``id``: ``pytest.mark.parametrize("case",
params(CASES))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fisher_mi.errors import FisherMIError


def nothing(root: Path) -> None:
    """The default ``build``: the case needs no files."""


@dataclass(frozen=True)
class ErrorCase:
    """A call that must raise ``error`` with a one-line message holding every ``says``.

    Attributes:
        id: the pytest id, readable in the test report (``folder-no-root``).
        args: the call's positional arguments; ``{root}`` is replaced by the test's folder.
        says: fragments the message must contain; ``{root}`` as in ``args``.
        error: the exception class expected (a subclass passes).
        build: prepares the test's folder before the call; its return value is the test's.
        options: the call's keyword arguments, passed as they are.
    """

    id: str
    args: tuple[str, ...]
    says: tuple[str, ...] = ()
    error: type[Exception] = FisherMIError
    build: Callable[[Path], object] = nothing
    options: Mapping[str, Any] = field(default_factory=dict)

    def call_args(self, root: Path) -> tuple[str, ...]:
        """``args`` with ``{root}`` replaced by ``root``."""
        return tuple(arg.format(root=root) for arg in self.args)

    def assert_message(self, message: str, root: Path) -> None:
        """Fail unless ``message`` is one line holding every fragment of ``says``."""
        assert "\n" not in message, f"{self.id}: message is not one line: {message!r}"
        for fragment in self.says:
            expected = fragment.format(root=root)
            assert expected in message, f"{self.id}: {expected!r} not in {message!r}"

    def assert_raised_by(self, call: Callable[..., object], root: Path) -> None:
        """Build ``root``, call ``call(*args, **options)`` and check what it raises."""
        self.build(root)
        with pytest.raises(self.error) as caught:
            call(*self.call_args(root), **self.options)
        self.assert_message(str(caught.value), root)


def params(cases: Iterable[ErrorCase]) -> list[Any]:
    """The cases as pytest parameters, each under its own ``id``."""
    return [pytest.param(case, id=case.id) for case in cases]


def one_line(error: BaseException | pytest.ExceptionInfo, *fragments: str) -> str:
    """The error's message (of an exception or a ``pytest.raises`` record), checked to be one
    non-empty line holding every fragment; returned for further checks."""
    message = str(error.value if isinstance(error, pytest.ExceptionInfo) else error)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message
