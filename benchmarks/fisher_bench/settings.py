"""Constants of the benchmark and the limits every worker runs under.

Each value is the default of a command-line option or a fixed part of every measurement; the
README's option table and column descriptions refer to them by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The benchmarks/ folder (default output) and the entry script the workers are started with.
BENCH_DIR = Path(__file__).resolve().parent.parent
ENTRY_SCRIPT = BENCH_DIR / "bench_fisher.py"
# The folder of JSON records under an output folder, its float64 reference cache, and the file
# keeping each run's ``--note`` (a record set's header line).
RESULTS = "results"
REFERENCE = "reference"
NOTES_FILE = "notes.json"
SEED = 0
WARMUP = 1
# Per-sample gradients the vmap backend holds at once (and the samples the hooks backend's
# closed forms take at once): the package default (as in ``profile``).
VMAP_CHUNK_SIZE = 32
# The Fisher method whose float64 run is the reference for every other one.
REFERENCE_METHOD = "fisher_mi.loop"
FLOOR_METHOD = "floor"
MIB = 2**20
GIB = 2**30
# Other processes using more cores than this during a case mark its timing as contended.
OTHER_CORES_THRESHOLD = 0.25
# Defaults of the guards: a worker running longer is killed; a method materialising all
# per-sample gradients (batch x parameters) above this many GiB is not started.
CASE_TIMEOUT_S = 600.0
MAX_PER_SAMPLE_GIB = 12.0
# The worker's data-segment limit (RLIMIT_DATA) as a share of the machine's memory: an
# allocation beyond it fails inside the worker (recorded as out of memory) instead of the
# kernel's OOM killer picking a process.
MEMORY_LIMIT_SHARE = 0.85
# The two tables of RESULTS.md: what a method computes on the way to S.
TABLES = {
    "trace": "Trace: per-sample squared norms per layer (B x L), summed over the batch",
    "diagonal": "Diagonal: sum_n g_n * g_n per parameter, summed over each layer",
}
# Versions recorded with every result: the peers'.
PEER_DISTRIBUTIONS = ("backpack-for-pytorch", "opacus")


@dataclass(frozen=True)
class Guards:
    """Limits every worker runs under (README, Guards: timeouts and memory).

    Attributes:
        timeout_s: a worker still running after this many seconds is killed (``timeout``).
        max_per_sample_gb: methods holding every per-sample gradient at once are not started
            when batch x parameters x 4 bytes exceeds this (``skipped``).
        memory_limit_gb: the worker's ``RLIMIT_DATA`` cap; None or 0: no cap.
    """

    timeout_s: float = CASE_TIMEOUT_S
    max_per_sample_gb: float = MAX_PER_SAMPLE_GIB
    memory_limit_gb: float | None = None
