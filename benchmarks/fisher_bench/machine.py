"""What a benchmark process measures about itself and the machine it shares.

Memory comes from ``/proc/self/statm`` and ``getrusage``; other processes' CPU use from
``/proc/stat`` minus this process's own CPU time (Linux). The machine and library facts are
recorded with every result so that RESULTS.md says where its numbers come from.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import sys
import time

from fisher_bench.settings import GIB, MEMORY_LIMIT_SHARE, MIB, OTHER_CORES_THRESHOLD


def current_rss_mib() -> float:
    """This process's resident memory now (``/proc/self/statm``), in MiB."""
    with open("/proc/self/statm") as stream:
        resident_pages = int(stream.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss``), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB here


def busy_cpu_seconds() -> float:
    """CPU seconds all processes on this machine have been busy, from ``/proc/stat``."""
    with open("/proc/stat") as stream:
        fields = [int(v) for v in stream.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used."""
    times = os.times()
    return times.user + times.system


def other_cpu_cores(seconds: float) -> float:
    """Cores kept busy by other processes over the next ``seconds`` (this one idles)."""
    busy = busy_cpu_seconds()
    time.sleep(seconds)
    return (busy_cpu_seconds() - busy) / seconds


def wait_until_idle(limit_s: float, *, threshold: float = OTHER_CORES_THRESHOLD) -> float:
    """Wait (at most ``limit_s``) until other processes use under ``threshold`` cores;
    return the last measured use."""
    deadline = time.monotonic() + limit_s
    while True:
        others = other_cpu_cores(2.0)
        if others < threshold or time.monotonic() >= deadline:
            return others


def distribution_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_memory_gib() -> float | None:
    """Total memory of this machine (``/proc/meminfo``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return None


def default_memory_limit_gib() -> float | None:
    """The default worker cap: ``MEMORY_LIMIT_SHARE`` of the machine's memory (None if
    unknown), so an allocation beyond it fails inside the worker, not in the OOM killer."""
    total = machine_memory_gib()
    return None if total is None else round(MEMORY_LIMIT_SHARE * total, 1)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
