"""One case, (model, batch, method), timed in a fresh process.

The worker imports the method's library, builds the seeded model and batch, takes the memory
baseline, runs the method ``warmup`` times untimed and ``repeats`` times timed, and returns
one JSON-ready record: the times, the result S, peak memory (its own, as the process is
fresh) and how many cores other processes kept busy meanwhile. A method that cannot run the
model, would not fit, or runs out of memory under the cap gives a record saying so.
"""

from __future__ import annotations

import importlib
import os
import resource
import statistics
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from fisher_bench.cases import build_case
from fisher_bench.machine import busy_cpu_seconds, current_rss_mib, own_cpu_seconds, peak_rss_mib
from fisher_bench.methods import METHODS, Method, Unsupported
from fisher_bench.settings import GIB, MIB
from fisher_mi.models import named_layers


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker measures, and under which limits: its whole configuration.

    ``argv`` turns it into the worker's command-line flags, and ``cli`` parses those back,
    so the parent and the worker agree on every field.
    """

    model: str
    batch: int
    method: str
    repeats: int
    warmup: int
    device: str
    dtype: str
    seed: int
    max_per_sample_gb: float
    memory_limit_gb: float | None = None

    def argv(self) -> list[str]:
        """``--field=value`` flags for every set field (``--memory-limit-gb`` only if capped)."""
        values = asdict(self)
        if not values["memory_limit_gb"]:
            del values["memory_limit_gb"]
        return [f"--{key.replace('_', '-')}={value}" for key, value in values.items()]

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields, in order: the worker flags the command line must accept."""
        return [field.name for field in fields(cls)]


def limit_memory(limit_gib: float | None) -> None:
    """Cap this process's data segment (heap and anonymous mappings: torch's tensors)."""
    if limit_gib and limit_gib > 0 and hasattr(resource, "RLIMIT_DATA"):
        limit = int(limit_gib * GIB)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure (torch's CPU or CUDA message, MemoryError)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


def missing_requirement(method: Method) -> dict[str, Any] | None:
    """Import the method's libraries now (before the memory baseline); an ``unsupported``
    record naming the first one missing, or None when all import."""
    for module in method.requires:
        try:
            importlib.import_module(module)
        except ImportError as err:
            return {
                "status": "unsupported",
                "note": f"not installed ({err}); see benchmarks/README.md for the bench extra",
            }
    return None


def per_sample_skip(method: Method, spec: WorkerSpec, n_params: int, x: Tensor) -> str | None:
    """Why a method holding every per-sample gradient at once is not started (B x P x
    element size above ``--max-per-sample-gb``), or None."""
    per_sample_gib = spec.batch * n_params * x.element_size() / GIB
    if not method.per_sample_gradients or per_sample_gib <= spec.max_per_sample_gb:
        return None
    return (
        f"skipped: would need {per_sample_gib:.1f} GiB for the per-sample "
        f"gradients alone ({spec.batch} x {n_params / 1e6:.1f}M float32; limit "
        f"--max-per-sample-gb {spec.max_per_sample_gb:g})"
    )


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a wall-clock reading covers it (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_baseline(device: torch.device) -> float:
    """Reset the device's peak-memory counter and return the memory allocated now (MiB)."""
    if device.type != "cuda":
        return 0.0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device) / MIB


def timed_calls(
    method: Method, model: nn.Module, x: Tensor, y: Tensor, spec: WorkerSpec
) -> dict[str, Any]:
    """Warm-up calls, then the timed ones; the times, the last result and the cores other
    processes kept busy during the timed calls (all CPU time minus this process's)."""
    device = x.device
    for _ in range(spec.warmup):
        method.run(model, x, y)
    load_before = os.getloadavg()[0]
    busy, own, wall = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    times = []
    for _ in range(spec.repeats):
        synchronize(device)
        start = time.perf_counter()
        result = method.run(model, x, y)
        synchronize(device)
        times.append(time.perf_counter() - start)
    busy, own = busy_cpu_seconds() - busy, own_cpu_seconds() - own
    return {
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "result": result.detach().cpu().tolist(),
        "load_avg_1min": [load_before, os.getloadavg()[0]],
        "other_cpu_cores": max(busy - own, 0.0) / (time.perf_counter() - wall),
    }


def memory_record(baseline_rss: float, baseline_device: float, device: torch.device) -> dict:
    """Peak memory after the timed calls and its increase over the post-setup baselines."""
    peak_rss = peak_rss_mib()
    record = {
        "baseline_rss_mib": baseline_rss,
        "peak_rss_mib": peak_rss,
        "rss_increase_mib": peak_rss - baseline_rss,
        "peak_device_mib": None,
        "device_increase_mib": None,
    }
    if device.type == "cuda":
        peak_device = torch.cuda.max_memory_allocated(device) / MIB
        record["peak_device_mib"] = peak_device
        record["device_increase_mib"] = peak_device - baseline_device
    return record


def out_of_memory_note(err: BaseException, spec: WorkerSpec) -> str:
    """The ``failed`` note of an allocation failure: where it failed (under the cap or on the
    device) and the start of torch's message."""
    where = (
        f"under the worker's {spec.memory_limit_gb:g} GiB cap (--memory-limit-gb)"
        if spec.memory_limit_gb
        else f"on {spec.device}"
    )
    return f"out of memory: an allocation failed {where}: {str(err)[:160]}"


def run_worker(spec: WorkerSpec) -> dict[str, Any]:
    """Time one method on one case; memory figures are this process's own."""
    limit_memory(spec.memory_limit_gb)
    device = torch.device(spec.device)
    method = METHODS.get(spec.method)
    missing = missing_requirement(method)
    if missing is not None:
        return missing
    dtype = getattr(torch, spec.dtype)
    model, x, y = build_case(spec.model, spec.batch, seed=spec.seed, dtype=dtype, device=device)
    n_params = sum(p.numel() for p in model.parameters())
    common = {
        "layers": [layer.name for layer in named_layers(model)],
        "n_params": n_params,
        "threads": torch.get_num_threads(),
    }
    skip = per_sample_skip(method, spec, n_params, x)
    if skip is not None:
        return {**common, "status": "skipped", "note": skip}
    baseline_rss, baseline_device = current_rss_mib(), device_baseline(device)
    try:
        timing = timed_calls(method, model, x, y, spec)
    except Unsupported as err:
        return {**common, "status": "unsupported", "note": f"unsupported: {err}"}
    except (RuntimeError, MemoryError) as err:
        if not out_of_memory(err):
            raise
        return {**common, "status": "failed", "note": out_of_memory_note(err, spec)}
    memory = memory_record(baseline_rss, baseline_device, device)
    return {**common, "status": "ok", "note": "", **timing, **memory}
