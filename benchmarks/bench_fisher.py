"""Benchmark: the cost of per-layer Fisher traces, method by method, against one backward.

For a model, a batch of B inputs and each layer l, a Fisher method computes

    S_l = sum_n ||grad_{theta_l} l_n||^2,     l_n = -log p(y_n | x_n),

the per-layer sum of per-sample squared gradient norms (the Fisher trace times B). Every
(model, batch size, method) runs in a fresh subprocess, so its peak memory is its own; the
``floor`` method (one forward and one backward of the mean loss) is what any method must at
least pay, and every other method is shown as a multiple of it. Each Fisher method's S is
compared with the float64 ``fisher_mi`` loop on the same model and batch.

Usage (from the repository root):

    python benchmarks/bench_fisher.py                      # everything, results in benchmarks/
    python benchmarks/bench_fisher.py --quick              # smoke check, results in a temp folder
    python benchmarks/bench_fisher.py --models mcnn --methods floor,fisher_mi.vmap --repeats 3

A peer method is one function ``(model, x, y) -> float64 tensor of S_l per layer`` (layers as
``fisher_mi.models.named_layers``) decorated with ``@register_method``; a model is one
``MODELS.add`` line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import fisher_mi
from fisher_mi.errors import RegistryError
from fisher_mi.fisher import make_backend
from fisher_mi.fisher.targets import logits_of
from fisher_mi.io import write_json, write_text
from fisher_mi.models import build_model, named_layers
from fisher_mi.registry import Registry

BENCH_DIR = Path(__file__).resolve().parent
SEED = 0
WARMUP = 1
# Per-sample gradients the vmap backend holds at once: the package default (as in ``profile``).
VMAP_CHUNK_SIZE = 32
# The Fisher method whose float64 run is the reference for every other one.
REFERENCE_METHOD = "fisher_mi.loop"
MIB = 2**20
# Other processes using more cores than this during a case mark its timing as contended.
OTHER_CORES_THRESHOLD = 0.25


@dataclass(frozen=True)
class ModelCase:
    """A model to benchmark: a zero-argument factory, its input shape and its class count."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int


def architecture(arch: str, input_shape: tuple[int, ...], num_classes: int) -> ModelCase:
    """A ``fisher_mi`` registered architecture with ``num_classes`` outputs."""
    return ModelCase(partial(build_model, arch, num_classes=num_classes), input_shape, num_classes)


MODELS: Registry[ModelCase] = Registry("benchmark model")
MODELS.add("mcnn", architecture("mcnn", (1, 32, 32), 10))
MODELS.add("vgg_small", architecture("vgg_small", (3, 64, 64), 100))


@dataclass(frozen=True)
class Method:
    """A way to compute per-layer sums; ``fisher=False`` marks a cost reference (no error)."""

    name: str
    run: Callable[[nn.Module, Tensor, Tensor], Tensor]
    fisher: bool


METHODS: Registry[Method] = Registry("benchmark method")


def register_method(name: str, *, fisher: bool = True):
    """Decorator: register ``run(model, x, y) -> float64 per-layer sums`` under ``name``."""

    def decorate(run: Callable[[nn.Module, Tensor, Tensor], Tensor]):
        METHODS.add(name, Method(name, run, fisher))
        return run

    return decorate


@register_method("floor", fisher=False)
def floor(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward and ``loss.backward()`` of the mean loss: the cost any method pays.

    Returns ||grad_{theta_l} mean_n l_n||^2 per layer, which is not a Fisher trace.
    """
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits_of(model(x)), y).backward()
    parameters = dict(model.named_parameters())
    return torch.stack(
        [
            sum(parameters[name].grad.double().pow(2).sum() for name in layer.param_names)
            for layer in named_layers(model)
        ]
    )


def _fisher_mi_backend(backend: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The backend called directly, as ``profile`` calls it per batch, minus data loading."""
    engine = make_backend(backend, chunk_size=VMAP_CHUNK_SIZE)
    norms = engine.squared_norms(model, named_layers(model), x, y).squared_norms
    return norms.to(torch.float64).sum(dim=0)


register_method("fisher_mi.loop")(partial(_fisher_mi_backend, "loop"))
register_method("fisher_mi.vmap")(partial(_fisher_mi_backend, "vmap"))


# ---------------------------------------------------------------- worker (one fresh process)


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as stream:
        resident_pages = int(stream.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB here


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes on this machine have been busy, from ``/proc/stat``."""
    with open("/proc/stat") as stream:
        fields = [int(v) for v in stream.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def other_cpu_cores(seconds: float) -> float:
    """Cores kept busy by other processes over the next ``seconds`` (this one idles)."""
    busy = _busy_cpu_seconds()
    time.sleep(seconds)
    return (_busy_cpu_seconds() - busy) / seconds


def wait_until_idle(limit_s: float, *, threshold: float = OTHER_CORES_THRESHOLD) -> float:
    """Wait (at most ``limit_s``) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + limit_s
    while True:
        others = other_cpu_cores(2.0)
        if others < threshold or time.monotonic() >= deadline:
            return others


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_case(
    model_name: str, batch: int, *, seed: int, dtype: torch.dtype, device: torch.device
) -> tuple[nn.Module, Tensor, Tensor]:
    """The seeded model (eval mode) and a seeded random batch: identical in every process."""
    case = MODELS.get(model_name)
    torch.manual_seed(seed)
    model = case.build().to(dtype=dtype).eval()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *case.input_shape), generator=generator)  # float32 for every dtype
    y = torch.randint(0, case.num_classes, (batch,), generator=generator)
    return model.to(device), x.to(device, dtype), y.to(device)


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one method on one case; memory figures are this process's own."""
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    method = METHODS.get(args.method)
    model, x, y = build_case(args.model, args.batch, seed=args.seed, dtype=dtype, device=device)
    baseline_rss = _current_rss_mib()
    baseline_device = 0.0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline_device = torch.cuda.memory_allocated(device) / MIB
    for _ in range(args.warmup):
        method.run(model, x, y)
    load_before = os.getloadavg()[0]
    busy, own, wall = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
    times = []
    for _ in range(args.repeats):
        _synchronize(device)
        start = time.perf_counter()
        result = method.run(model, x, y)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    busy, own = _busy_cpu_seconds() - busy, _own_cpu_seconds() - own
    others = max(busy - own, 0.0) / (time.perf_counter() - wall)
    peak_rss = _peak_rss_mib()
    record = {
        "times_s": times,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "result": result.detach().cpu().tolist(),
        "layers": [layer.name for layer in named_layers(model)],
        "n_params": sum(p.numel() for p in model.parameters()),
        "baseline_rss_mib": baseline_rss,
        "peak_rss_mib": peak_rss,
        "rss_increase_mib": peak_rss - baseline_rss,
        "peak_device_mib": None,
        "device_increase_mib": None,
        "threads": torch.get_num_threads(),
        "load_avg_1min": [load_before, os.getloadavg()[0]],
        "other_cpu_cores": others,
    }
    if device.type == "cuda":
        peak_device = torch.cuda.max_memory_allocated(device) / MIB
        record["peak_device_mib"] = peak_device
        record["device_increase_mib"] = peak_device - baseline_device
    return record


# ---------------------------------------------------------------- parent: cases, files, report


def spawn_worker(
    *, model: str, batch: int, method: str, repeats: int, warmup: int, device: str, dtype: str
) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its JSON line, or ``{"error": ...}``."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"--model={model}",
        f"--batch={batch}",
        f"--method={method}",
        f"--repeats={repeats}",
        f"--warmup={warmup}",
        f"--device={device}",
        f"--dtype={dtype}",
        f"--seed={SEED}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"error": f"worker failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def relative_errors(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """|S_l - R_l| / |R_l| per layer (R_l > 0 for any layer with a gradient)."""
    if len(values) != len(reference):
        return [math.inf]
    return [
        abs(value - ref) / max(abs(ref), torch.finfo(torch.float64).tiny)
        for value, ref in zip(values, reference, strict=True)
    ]


def reference_sums(
    results: Path, *, model: str, batch: int, device: str, layers: Sequence[str]
) -> list[float] | None:
    """The float64 reference for (model, batch, device), from the cache or a fresh worker."""
    path = results / "reference" / f"{device}_{model}_b{batch}_seed{SEED}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached["layers"] == list(layers) and cached["torch"] == torch.__version__:
            return cached["result"]
    print(f"    reference: float64 {REFERENCE_METHOD} on {model} b={batch}", flush=True)
    record = spawn_worker(
        model=model,
        batch=batch,
        method=REFERENCE_METHOD,
        repeats=1,
        warmup=0,
        device=device,
        dtype="float64",
    )
    if "error" in record:
        print(f"    reference {record['error']}", flush=True)
        return None
    cached = {"torch": torch.__version__, "layers": record["layers"], "result": record["result"]}
    write_json(path, {"model": model, "batch": batch, "seed": SEED, "device": device, **cached})
    return record["result"]


def case_path(results: Path, *, device: str, model: str, batch: int, method: str) -> Path:
    return results / f"{device}_{model}_b{batch}_{method}.json"


def floor_median(results: Path, *, device: str, model: str, batch: int) -> float | None:
    path = case_path(results, device=device, model=model, batch=batch, method="floor")
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("median_s")


def run_case(
    results: Path, *, model: str, batch: int, method: Method, repeats: int, device: str
) -> dict[str, Any]:
    """Measure one (model, batch, method) and check it against the reference."""
    record = spawn_worker(
        model=model,
        batch=batch,
        method=method.name,
        repeats=repeats,
        warmup=WARMUP,
        device=device,
        dtype="float32",
    )
    errors = None
    if method.fisher and "error" not in record:
        reference = reference_sums(
            results, model=model, batch=batch, device=device, layers=record["layers"]
        )
        if reference is not None:
            errors = relative_errors(record["result"], reference)
    median = record.get("median_s")
    floor_s = (
        median
        if method.name == "floor"
        else floor_median(results, device=device, model=model, batch=batch)
    )
    out = {
        "model": model,
        "batch": batch,
        "method": method.name,
        "median_s": median,
        "min_s": record.get("min_s"),
        "ratio_to_floor": median / floor_s if median is not None and floor_s else None,
        "peak_rss_mib": record.get("peak_rss_mib"),
        "rss_increase_mib": record.get("rss_increase_mib"),
        "peak_device_mib": record.get("peak_device_mib"),
        "device_increase_mib": record.get("device_increase_mib"),
        "max_rel_error": max(errors) if errors else None,
        "device": device,
        "dtype": "float32",
        "torch": torch.__version__,
        "fisher_mi": fisher_mi.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": record.get("threads"),
        "repeats": repeats,
        "warmup": WARMUP,
        "seed": SEED,
        "vmap_chunk_size": VMAP_CHUNK_SIZE,
        "n_params": record.get("n_params"),
        "n_layers": len(record.get("layers", [])) or None,
        "times_s": record.get("times_s"),
        "baseline_rss_mib": record.get("baseline_rss_mib"),
        "layers": record.get("layers"),
        "result": record.get("result"),
        "rel_error_per_layer": errors,
        "load_avg_1min": record.get("load_avg_1min"),
        "other_cpu_cores": record.get("other_cpu_cores"),
        "error": record.get("error"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def _print_record(record: dict[str, Any]) -> None:
    if record["error"]:
        print(f"    {record['error']}", flush=True)
        return
    print(
        f"    median {record['median_s']:.4f} s (min {record['min_s']:.4f}), "
        f"x floor {_fmt(record['ratio_to_floor'], '.1f')}, "
        f"peak RSS {record['peak_rss_mib']:.0f} MiB (+{record['rss_increase_mib']:.0f}), "
        f"max rel. error {_fmt(record['max_rel_error'], '.1e')}, "
        f"others used {record['other_cpu_cores']:.2f} cores",
        flush=True,
    )


def measure_case(
    results: Path,
    *,
    model: str,
    batch: int,
    method: Method,
    repeats: int,
    device: str,
    wait_idle: float,
    retries: int,
) -> dict[str, Any]:
    """``run_case``, again while other processes competed (keeping the least contended), saved."""
    best: dict[str, Any] | None = None
    for attempt in range(retries + 1):
        if attempt:
            print("    other processes competed for the CPU; measuring again", flush=True)
        if wait_idle > 0:
            others = wait_until_idle(wait_idle)
            if others >= OTHER_CORES_THRESHOLD:
                print(f"    still busy after {wait_idle:.0f} s: others use {others:.2f} cores")
        record = run_case(
            results, model=model, batch=batch, method=method, repeats=repeats, device=device
        )
        _print_record(record)
        contention = record.get("other_cpu_cores") or 0.0
        if best is None or contention < (best.get("other_cpu_cores") or 0.0):
            best = record
        if not _contended(record):
            break
    path = case_path(results, device=device, model=model, batch=batch, method=method.name)
    write_json(path, best)
    return best


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _distinct(records: Iterable[dict[str, Any]], key: str) -> str:
    return ", ".join(sorted({str(r.get(key)) for r in records}))


def _contended(record: dict[str, Any]) -> bool:
    return (record.get("other_cpu_cores") or 0.0) > OTHER_CORES_THRESHOLD


def _contention_line(records: list[dict[str, Any]]) -> str:
    """How busy other processes kept the machine during the timed repetitions."""
    others = [r["other_cpu_cores"] for r in records if r.get("other_cpu_cores") is not None]
    if not others:
        return "- CPU use by other processes: not recorded"
    flagged = sum(_contended(r) for r in records)
    return (
        f"- other processes kept {min(others):.2f} to {max(others):.2f} cores busy during the "
        f"timed repetitions; a `*` after the median marks the {flagged} of {len(records)} cases "
        f"where they used more than {OTHER_CORES_THRESHOLD} cores: those timings are inflated "
        "and noisy (`min_s` and `other_cpu_cores` are in the JSON files)"
    )


def render_report(records: list[dict[str, Any]], *, note: str = "") -> str:
    """RESULTS.md: the machine and versions, then one table per (device, model, batch)."""
    lines = [
        "# Fisher trace benchmark",
        "",
        "Generated by `benchmarks/bench_fisher.py` from the JSON files in `results/`; "
        "see `README.md` for what each column means.",
        "",
        f"- CPU: {_distinct(records, 'cpu')} ({_distinct(records, 'cpu_count')} logical cores); "
        f"torch threads: {_distinct(records, 'threads')}",
        f"- torch {_distinct(records, 'torch')}, fisher_mi {_distinct(records, 'fisher_mi')}, "
        f"Python {_distinct(records, 'python')}",
        f"- devices: {_distinct(records, 'device')}; dtype {_distinct(records, 'dtype')}; "
        f"timed repeats {_distinct(records, 'repeats')} after {_distinct(records, 'warmup')} "
        f"warm-up; vmap chunk size {_distinct(records, 'vmap_chunk_size')}",
        f"- last result: {max(r['finished'] for r in records)}",
        _contention_line(records),
        "- inputs are fixed-seed random tensors (N(0, 1) pixels, uniform labels; seed "
        f"{_distinct(records, 'seed')}) on a fixed-seed randomly initialised model in eval mode: "
        "the benchmark measures cost, and agreement is checked numerically against the float64 "
        f"`{REFERENCE_METHOD}` reference on the same model and batch.",
    ]
    if note:
        lines.append(f"- {note}")
    order = {name: i for i, name in enumerate(METHODS.names())}
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["device"], record["model"], record["batch"]), []).append(record)
    for device, model, batch in sorted(groups):
        group = groups[device, model, batch]
        floor_s = next((r["median_s"] for r in group if r["method"] == "floor"), None)
        on_gpu = device.startswith("cuda")
        extra = " peak device MiB |" if on_gpu else ""
        lines += [
            "",
            f"## {model}, batch {batch} ({device})",
            "",
            f"| method | median s | x floor | peak RSS MiB | RSS increase MiB |{extra}"
            " max rel. error |",
            "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if on_gpu else "") + " ---: |",
        ]
        for r in sorted(group, key=lambda r: (order.get(r["method"], len(order)), r["method"])):
            if r.get("error"):
                lines.append(f"| {r['method']} | failed: {r['error']} |")
                continue
            ratio = r["median_s"] / floor_s if floor_s else None
            device_cell = f" {_fmt(r.get('peak_device_mib'), '.0f')} |" if on_gpu else ""
            lines.append(
                f"| {r['method']} | {_fmt(r['median_s'], '.4f')}{' *' if _contended(r) else ''} "
                f"| {_fmt(ratio, '.1f')} "
                f"| {_fmt(r['peak_rss_mib'], '.0f')} | {_fmt(r['rss_increase_mib'], '.0f')} |"
                f"{device_cell} {_fmt(r['max_rel_error'], '.1e')} |"
            )
    return "\n".join(lines) + "\n"


def write_report(out: Path, *, note: str = "") -> Path:
    results = out / "results"
    records = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    return write_text(out / "RESULTS.md", render_report(records, note=note))


def _names(registry: Registry, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        registry.get(name)  # an unknown name raises, listing the known ones
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS.names()))
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per case")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder receiving results/*.json and RESULTS.md (default: benchmarks/; "
        "with --quick, a temporary folder)",
    )
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 repeat: a smoke check")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each case, wait up to SECONDS until other processes use under "
        f"{OTHER_CORES_THRESHOLD} cores (for shared machines; default: do not wait)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="measure a case up to this many more times while other processes used more than "
        f"{OTHER_CORES_THRESHOLD} cores, keeping the least contended measurement (default 0)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite RESULTS.md from the JSON files"
    )
    parser.add_argument("--note", default="", help="a line added to RESULTS.md's header")
    worker = parser.add_argument_group("worker (internal: one case in this process)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--model", help=argparse.SUPPRESS)
    worker.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--method", help=argparse.SUPPRESS)
    worker.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    worker.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    worker.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        args.models = _names(MODELS, args.models)
        args.methods = _names(METHODS, args.methods)
    except RegistryError as err:
        parser.error(str(err))
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)), flush=True)
        return 0
    models = args.models
    methods = [METHODS.get(name) for name in args.methods]
    methods.sort(key=lambda m: m.fisher)  # the floor first, so ratios have it
    batches = [int(b) for b in args.batch_sizes.split(",")]
    repeats = args.repeats
    out = args.out
    if args.quick:
        batches, repeats = [8], 1
        out = out or Path(tempfile.gettempdir()) / "fisher_mi_bench_quick"
    out = out or BENCH_DIR
    if args.report_only:
        print(f"wrote {write_report(out, note=args.note)}")
        return 0
    results = out / "results"
    cases = [(m, b, method) for m in models for b in batches for method in methods]
    print(f"{len(cases)} cases on {args.device}, {repeats} repeats; results in {results}")
    start = time.perf_counter()
    for i, (model, batch, method) in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {model} b={batch} {method.name}", flush=True)
        measure_case(
            results,
            model=model,
            batch=batch,
            method=method,
            repeats=repeats,
            device=args.device,
            wait_idle=args.wait_idle,
            retries=args.retries,
        )
    report = write_report(out, note=args.note)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
