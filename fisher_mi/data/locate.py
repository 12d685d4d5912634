"""Finding the project's shared data folder (``../shared/data/NAME``) in place, without copying.

The project's checkout sits beside a ``shared/data`` folder holding real test data (e.g. the
AT&T faces, ``att_faces``); a user's clone has none. Tests, notebooks and benchmarks all look
for it through :func:`find_shared_data` and skip with :func:`shared_data_skip_reason` when it
is absent, so the rule lives in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = "FISHER_MI_SHARED_DATA"


def _search_starts() -> list[Path]:
    """The working directory and this package's folder: the data sit beside an ancestor."""
    return [Path.cwd().resolve(), Path(__file__).resolve().parent]


def find_shared_data(name: str) -> Path | None:
    """The folder ``NAME`` of the shared data, or None where there is none.

    Looks first in ``$FISHER_MI_SHARED_DATA/NAME``, then at ``ANCESTOR/shared/data/NAME`` for
    every ancestor of the working directory and of this file, nearest first; returns the
    first folder that exists.
    """
    configured = os.environ.get(SHARED_DATA_ENV)
    candidates = [Path(configured).expanduser() / name] if configured else []
    for start in _search_starts():
        candidates += [ancestor / "shared" / "data" / name for ancestor in (start, *start.parents)]
    return next((path for path in candidates if path.is_dir()), None)


def shared_data_skip_reason(name: str) -> str:
    """Why a check needing the shared data folder ``NAME`` cannot run, and how to enable it."""
    return (
        f"shared data ../shared/data/{name} is absent (a user's clone has none); "
        f"set {SHARED_DATA_ENV} to a folder holding {name}/ to run this"
    )
