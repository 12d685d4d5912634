"""Write a multi-split profile to a folder: ``fisher.csv``, ``fisher.json``, ``fisher.png``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fisher_mi.fisher.splits import ProfileRun
from fisher_mi.fisher.write import PROFILE_CSV, PROFILE_JSON, profile_record
from fisher_mi.io import write_json, write_table
from fisher_mi.report.figures import plot_fisher_profile


def write_profile(
    run: ProfileRun, out: str | os.PathLike[str], *, record: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``fisher.csv``, ``fisher.json`` (``fisher.write.profile_record``) and
    ``fisher.png`` into ``out`` (atomically each).

    ``record`` adds what the caller knows (model path, data specs) to the JSON.
    """
    folder = Path(out)
    return {
        "csv": write_table(folder / PROFILE_CSV, run.table),
        "json": write_json(folder / PROFILE_JSON, profile_record(run, record)),
        "png": plot_fisher_profile(
            run.table, folder / "fisher.png", title=str(record.get("model", ""))
        ),
    }
