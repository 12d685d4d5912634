"""The parent process: spawn a worker per case, check it against the reference, save it.

Each case's JSON record lands in ``results/`` (or ``results/<set>/`` for a named record set,
so a partial run does not overwrite a full run's cases); the float64 reference of every
(device, model, batch) is computed once in its own worker and cached in
``results/reference/``, shared by all sets.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import fisher_mi
from fisher_bench.machine import cpu_model, distribution_version, wait_until_idle
from fisher_bench.methods import Method
from fisher_bench.records import contended, fmt
from fisher_bench.settings import (
    ENTRY_SCRIPT,
    FLOOR_METHOD,
    OTHER_CORES_THRESHOLD,
    PEER_DISTRIBUTIONS,
    REFERENCE_METHOD,
    SEED,
    VMAP_CHUNK_SIZE,
    Guards,
)
from fisher_bench.worker import WorkerSpec
from fisher_mi.io import write_json


@dataclass(frozen=True)
class Campaign:
    """Where and how the cases of one run are measured.

    Attributes:
        results: the folder receiving the case records (``results/`` or ``results/<set>/``).
        reference: the float64 reference cache (``results/reference/``).
        device: ``cpu`` or ``cuda[:i]``.
        guards: the limits of every worker.
        wait_idle: seconds to wait before each case for other processes to calm down.
        retries: further measurements of a case while other processes competed.
    """

    results: Path
    reference: Path
    device: str
    guards: Guards
    wait_idle: float = 0.0
    retries: int = 0


def spawn_worker(spec: WorkerSpec, guards: Guards) -> dict[str, Any]:
    """Run one case in a fresh interpreter: its JSON line, or a ``status`` of ``timeout`` /
    ``failed`` with a ``note``."""
    command = [sys.executable, str(ENTRY_SCRIPT), "--worker", *spec.argv()]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=guards.timeout_s
        )
    except subprocess.TimeoutExpired:
        return {
            "status": "timeout",
            "note": f"timeout: killed after {guards.timeout_s:g} s "
            f"({spec.warmup} warm-up + {spec.repeats} timed calls)",
        }
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        if done.returncode == -signal.SIGKILL:
            tail = "killed by SIGKILL (out of memory?)"
        else:
            tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"status": "failed", "note": f"failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def relative_errors(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """|S_l - R_l| / |R_l| per layer (R_l > 0 for any layer with a gradient)."""
    if len(values) != len(reference):
        return [math.inf]
    return [
        abs(value - ref) / max(abs(ref), torch.finfo(torch.float64).tiny)
        for value, ref in zip(values, reference, strict=True)
    ]


def reference_sums(
    campaign: Campaign, spec: WorkerSpec, layers: Sequence[str]
) -> list[float] | None:
    """The float64 reference for the spec's (model, batch, device), from the cache (if the
    torch version and the layers still match) or a fresh worker."""
    path = campaign.reference / f"{spec.device}_{spec.model}_b{spec.batch}_seed{SEED}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["layers"] == list(layers) and cached["torch"] == torch.__version__:
            return cached["result"]
    print(f"    reference: float64 {REFERENCE_METHOD} on {spec.model} b={spec.batch}", flush=True)
    reference = replace(spec, method=REFERENCE_METHOD, repeats=1, warmup=0, dtype="float64")
    record = spawn_worker(reference, campaign.guards)
    if record.get("status") != "ok":
        print(f"    reference {record.get('note')}", flush=True)
        return None
    cached = {"torch": torch.__version__, "layers": record["layers"], "result": record["result"]}
    where = {"model": spec.model, "batch": spec.batch, "seed": SEED, "device": spec.device}
    write_json(path, {**where, **cached})
    return record["result"]


def case_path(results: Path, *, device: str, model: str, batch: int, method: str) -> Path:
    """The JSON record of one case."""
    return results / f"{device}_{model}_b{batch}_{method}.json"


def floor_median(results: Path, *, device: str, model: str, batch: int) -> float | None:
    """The floor's median time for (device, model, batch) in this record set, if measured."""
    path = case_path(results, device=device, model=model, batch=batch, method=FLOOR_METHOD)
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("median_s")


def environment(campaign: Campaign, spec: WorkerSpec) -> dict[str, Any]:
    """The fixed facts recorded with every case: versions, machine, settings, guards."""
    return {
        "device": campaign.device,
        "dtype": spec.dtype,
        "torch": torch.__version__,
        "fisher_mi": fisher_mi.__version__,
        "peers": {name: distribution_version(name) for name in PEER_DISTRIBUTIONS},
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "repeats": spec.repeats,
        "warmup": spec.warmup,
        "seed": SEED,
        "vmap_chunk_size": VMAP_CHUNK_SIZE,
        "case_timeout_s": campaign.guards.timeout_s,
        "max_per_sample_gb": campaign.guards.max_per_sample_gb,
        "memory_limit_gb": campaign.guards.memory_limit_gb,
    }


def check_against_reference(
    campaign: Campaign, spec: WorkerSpec, method: Method, record: dict[str, Any]
) -> list[float] | None:
    """Per-layer relative errors of a checked method's result, or None (unchecked method,
    failed case, or no reference: then the record's note says so)."""
    if not method.checked or record.get("status") != "ok":
        return None
    reference = reference_sums(campaign, spec, record["layers"])
    if reference is None:
        record["note"] = "no float64 reference (its worker failed): error not checked"
        return None
    return relative_errors(record["result"], reference)


def run_case(campaign: Campaign, spec: WorkerSpec, method: Method) -> dict[str, Any]:
    """Measure one (model, batch, method), check it against the reference, and return the
    record saved for it (the worker's figures, the errors, the ratio to the floor)."""
    record = spawn_worker(spec, campaign.guards)
    errors = check_against_reference(campaign, spec, method, record)
    median = record.get("median_s")
    floor_s = (
        median
        if method.name == FLOOR_METHOD
        else floor_median(campaign.results, device=spec.device, model=spec.model, batch=spec.batch)
    )
    copied = ("min_s", "peak_rss_mib", "rss_increase_mib", "peak_device_mib")
    return {
        "model": spec.model,
        "batch": spec.batch,
        "method": method.name,
        "status": record.get("status", "failed"),
        "note": record.get("note", ""),
        "tables": list(method.tables),
        "median_s": median,
        **{key: record.get(key) for key in copied},
        "ratio_to_floor": median / floor_s if median is not None and floor_s else None,
        "device_increase_mib": record.get("device_increase_mib"),
        "max_rel_error": max(errors) if errors else None,
        **environment(campaign, spec),
        "threads": record.get("threads"),
        "n_params": record.get("n_params"),
        "n_layers": len(record.get("layers") or []) or None,
        **{key: record.get(key) for key in ("times_s", "baseline_rss_mib", "layers", "result")},
        "rel_error_per_layer": errors,
        "load_avg_1min": record.get("load_avg_1min"),
        "other_cpu_cores": record.get("other_cpu_cores"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def print_record(record: dict[str, Any], seconds: float) -> None:
    """One progress line for a measured case."""
    if record["status"] != "ok":
        print(f"    {record['note']} ({seconds:.0f} s)", flush=True)
        return
    print(
        f"    median {record['median_s']:.4f} s (min {record['min_s']:.4f}), "
        f"x floor {fmt(record['ratio_to_floor'], '.2f')}, "
        f"peak RSS {record['peak_rss_mib']:.0f} MiB (+{record['rss_increase_mib']:.0f}), "
        f"max rel. error {fmt(record['max_rel_error'], '.1e')}, "
        f"others used {record['other_cpu_cores']:.2f} cores ({seconds:.0f} s)",
        flush=True,
    )


def wait_for_quiet(campaign: Campaign) -> None:
    """Wait up to ``campaign.wait_idle`` seconds for other processes to calm down."""
    if campaign.wait_idle > 0:
        others = wait_until_idle(campaign.wait_idle)
        if others >= OTHER_CORES_THRESHOLD:
            print(f"    still busy after {campaign.wait_idle:.0f} s: others use {others:.2f} cores")


def measure_case(campaign: Campaign, spec: WorkerSpec, method: Method) -> dict[str, Any]:
    """``run_case``, again while other processes competed (keeping the least contended
    measurement), saved as the case's JSON record."""
    best: dict[str, Any] | None = None
    for attempt in range(campaign.retries + 1):
        if attempt:
            print("    other processes competed for the CPU; measuring again", flush=True)
        wait_for_quiet(campaign)
        start = time.perf_counter()
        record = run_case(campaign, spec, method)
        print_record(record, time.perf_counter() - start)
        contention = record.get("other_cpu_cores") or 0.0
        if best is None or contention < (best.get("other_cpu_cores") or 0.0):
            best = record
        if record["status"] != "ok" or not contended(record):
            break
    path = case_path(
        campaign.results, device=spec.device, model=spec.model, batch=spec.batch, method=method.name
    )
    write_json(path, best)
    return best
