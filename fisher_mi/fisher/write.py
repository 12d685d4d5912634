"""A multi-split profile's tables on disk: ``fisher.csv`` and its record ``fisher.json``.

One definition for every writer (``fisher-mi profile``, the demo, the report's
``write_profile``, which adds the figure), so a Fisher folder reads the same whoever wrote it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fisher_mi._version import versions
from fisher_mi.fisher.splits import ProfileRun
from fisher_mi.io import write_json, write_table

PROFILE_CSV, PROFILE_JSON = "fisher.csv", "fisher.json"


def profile_record(run: ProfileRun, record: Mapping[str, Any]) -> dict[str, Any]:
    """``fisher.json``: the caller's ``record`` (model path, data specs), what ran per split
    (samples, estimator), the options (the device as text, ``progress`` dropped: it changes no
    number), the seconds, when and with which versions."""
    options = {key: str(value) if key == "device" else value for key, value in run.options.items()}
    options.pop("progress", None)
    return {
        **record,
        "splits": run.splits,
        **options,
        "seconds": round(run.seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }


def write_profile_tables(
    run: ProfileRun, out: str | os.PathLike[str], *, record: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``fisher.csv`` then ``fisher.json`` into ``out`` (atomically each)."""
    folder = Path(out)
    return {
        "csv": write_table(folder / PROFILE_CSV, run.table),
        "json": write_json(folder / PROFILE_JSON, profile_record(run, record)),
    }
