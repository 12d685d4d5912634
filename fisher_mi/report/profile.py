"""Write a multi-split profile to a folder: ``fisher.csv``, ``fisher.json``, ``fisher.png``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fisher_mi._version import versions
from fisher_mi.fisher.splits import ProfileRun
from fisher_mi.io import write_json, write_table
from fisher_mi.report.figures import plot_fisher_profile


def write_profile(
    run: ProfileRun, out: str | os.PathLike[str], *, record: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``fisher.csv``, ``fisher.json`` and ``fisher.png`` into ``out`` (atomically each).

    ``record`` adds what the caller knows (model path, data specs) to the JSON.
    """
    folder = Path(out)
    info = {
        **record,
        "splits": run.splits,
        **{key: str(value) if key == "device" else value for key, value in run.options.items()},
        "seconds": round(run.seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    info.pop("progress", None)
    return {
        "csv": write_table(folder / "fisher.csv", run.table),
        "json": write_json(folder / "fisher.json", info),
        "png": plot_fisher_profile(
            run.table, folder / "fisher.png", title=str(record.get("model", ""))
        ),
    }
