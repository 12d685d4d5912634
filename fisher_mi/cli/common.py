"""What several commands do alike: print, profile and write (``load_for``, data at a model's
input shape, is ``fisher_mi.data.load_for``, imported here for the commands)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from fisher_mi.data import load_for
from fisher_mi.distributed import is_main_process, world_size
from fisher_mi.fisher import ProfileRun, profile_splits, summary
from fisher_mi.models import arch_of
from fisher_mi.report import write_profile


def say(message: str) -> None:
    """Print on rank 0 only: under torchrun every process runs the same command."""
    if is_main_process():
        print(message)


def percent(value: float | None) -> str:
    """``0.5`` -> ``50.00%``; None -> ``n/a``."""
    return "n/a" if value is None else f"{100 * value:.2f}%"


def history_text(history: pd.DataFrame) -> str:
    """A training history for the terminal: numbers to 4 digits, the long reasons left to
    ``history.csv``."""
    shown = history.drop(columns=["kept_because"], errors="ignore")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def arch_record(model: nn.Module) -> dict[str, Any] | None:
    """The model's architecture and its arguments, for run records (None: not ours)."""
    spec = arch_of(model)
    return {"name": spec.name, "kwargs": dict(spec.kwargs)} if spec else None


def write_run(run: ProfileRun, out: Path, record: Mapping[str, Any]) -> list[Path]:
    """Write a profile (rank 0 only), print its summary; return the files written."""
    if not is_main_process():  # under torchrun every rank holds the same table; rank 0 writes
        return []
    paths = write_profile(run, out, record={**record, "processes": world_size()})
    say(summary(run.table))
    say(f"wrote {', '.join(str(p) for p in paths.values())} ({run.seconds:.1f} s)")
    return list(paths.values())


def profile_sources(
    model: nn.Module, sources: Mapping[str, str], options: Mapping[str, Any]
) -> ProfileRun:
    """Profile ``model`` on each split named in ``sources`` (split -> data spec)."""
    datasets = {split: load_for(model, spec, split) for split, spec in sources.items()}
    return profile_splits(model, datasets, **options, progress=True)
