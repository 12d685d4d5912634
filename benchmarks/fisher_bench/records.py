"""Reading saved case records: their status and the figures RESULTS.md compares.

Records are the JSON files the runner writes (``runner.run_case``); older ones may lack a
field (``status``, ``tables``), which these helpers derive as the harness did when writing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fisher_bench.methods import METHODS
from fisher_bench.settings import NOTES_FILE, OTHER_CORES_THRESHOLD

Record = dict[str, Any]


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or an em dash when there is none."""
    return "—" if value is None else format(value, spec)


def status(record: Record) -> str:
    """``ok``, ``skipped``, ``unsupported``, ``timeout`` or ``failed`` (older records: by
    their ``error`` field)."""
    if "status" in record:
        return record["status"]
    return "failed" if record.get("error") else "ok"


def ok(record: Record | None) -> bool:
    """Whether the record holds a timing (status ok and a median)."""
    return record is not None and status(record) == "ok" and record.get("median_s") is not None


def contended(record: Record) -> bool:
    """Whether other processes kept more than ``OTHER_CORES_THRESHOLD`` cores busy during the
    record's timed calls (its timings are then inflated and noisy)."""
    return (record.get("other_cpu_cores") or 0.0) > OTHER_CORES_THRESHOLD


def tables_of(record: Record) -> list[str]:
    """The RESULTS.md tables showing the record (stored, else its method's, else trace)."""
    if record.get("tables"):
        return record["tables"]
    if record["method"] in METHODS.names():
        return list(METHODS.get(record["method"]).tables)
    return ["trace"]


def memory(record: Record) -> float | None:
    """The peak memory a target compares: device memory on CUDA, else the peak RSS."""
    if record.get("device", "cpu").startswith("cuda"):
        return record.get("peak_device_mib")
    return record.get("peak_rss_mib")


def load_records(folder: Path) -> list[Record]:
    """Every case record directly in ``folder`` (the notes file left out), sorted by name."""
    paths = sorted(p for p in folder.glob("*.json") if p.name != NOTES_FILE)
    return [json.loads(path.read_text()) for path in paths]
