"""The command line of ``benchmarks/bench_fisher.py``: parse, then run cases or one worker.

Below this module everything takes configs (``WorkerSpec``, ``Campaign``, ``Guards``), never
the argparse namespace. The worker flags (``--worker`` and the ``WorkerSpec`` fields) are
internal: the runner starts every case's worker with them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from fisher_bench.cases import MODELS
from fisher_bench.machine import default_memory_limit_gib
from fisher_bench.methods import METHODS, Method
from fisher_bench.report import save_note, write_report
from fisher_bench.runner import Campaign, measure_case
from fisher_bench.settings import (
    BENCH_DIR,
    CASE_TIMEOUT_S,
    FLOOR_METHOD,
    MAX_PER_SAMPLE_GIB,
    MEMORY_LIMIT_SHARE,
    OTHER_CORES_THRESHOLD,
    REFERENCE,
    RESULTS,
    SEED,
    WARMUP,
    Guards,
)
from fisher_bench.worker import WorkerSpec, run_worker
from fisher_mi.errors import RegistryError
from fisher_mi.registry import Registry

DESCRIPTION = (
    "Benchmark: the cost of per-layer Fisher traces and diagonals, method by method, against "
    "one backward."
)


def names(registry: Registry, text: str) -> list[str]:
    """Comma-separated names, each checked against ``registry`` (unknown ones raise, listing
    the known)."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    for name in chosen:
        registry.get(name)
    return chosen


def add_case_options(parser: argparse.ArgumentParser) -> None:
    """What to measure: models, methods, batch sizes, repeats, device."""
    parser.add_argument("--models", default=",".join(MODELS.names()))
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repetitions per case (default: the model's, 5 for mcnn and vgg_small, "
        "3 for vgg16, resnet18 and ir152)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 repeat: a smoke check")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where results go and how RESULTS.md is written."""
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder receiving results/*.json and RESULTS.md (default: benchmarks/; "
        "with --quick, a temporary folder)",
    )
    parser.add_argument(
        "--set",
        default="",
        metavar="NAME",
        help="keep this run's records apart, in results/NAME/, rendered in a section of its "
        "own (default: results/ itself, the full run's set)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite RESULTS.md from the JSON files"
    )
    parser.add_argument(
        "--note",
        default="",
        help="a line added to the header of the record set's part of RESULTS.md (kept in "
        "results/notes.json; a new --note replaces it)",
    )


def add_guard_options(parser: argparse.ArgumentParser) -> None:
    """Limits of every worker and waiting for a quiet machine."""
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=CASE_TIMEOUT_S,
        metavar="SECONDS",
        help="kill a case's worker after SECONDS and record a timeout "
        f"(default {CASE_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-per-sample-gb",
        type=float,
        default=MAX_PER_SAMPLE_GIB,
        metavar="GIB",
        help="skip methods holding every per-sample gradient at once when batch x parameters "
        f"x 4 bytes exceeds GIB (default {MAX_PER_SAMPLE_GIB:g})",
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        metavar="GIB",
        help="cap each worker's data segment (RLIMIT_DATA) at GIB, so that a case running out "
        "of memory fails on its own and is recorded (default on the CPU: "
        f"{MEMORY_LIMIT_SHARE * 100:.0f}%% of this machine's memory; on CUDA, where device memory "
        "runs out first and torch reports it, no cap; 0: no cap)",
    )
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


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The internal flags of a worker (``WorkerSpec`` fields not already options)."""
    worker = parser.add_argument_group("worker (internal: one case in this process)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--model", help=argparse.SUPPRESS)
    worker.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--method", help=argparse.SUPPRESS)
    worker.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    worker.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    worker.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse impossible values (argparse's one-line errors) and resolve names and defaults."""
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.case_timeout <= 0:
        parser.error(f"--case-timeout must be positive, got {args.case_timeout}")
    if args.set == REFERENCE or "/" in args.set:
        parser.error(f"--set must be a plain folder name other than {REFERENCE!r}")
    try:
        args.models = names(MODELS, args.models)
        args.methods = names(METHODS, args.methods)
    except RegistryError as err:
        parser.error(str(err))
    on_cpu = torch.device(args.device).type == "cpu"
    if not on_cpu and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if args.memory_limit_gb is None and not args.worker:
        args.memory_limit_gb = default_memory_limit_gib() if on_cpu else 0.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed and checked command line."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    add_case_options(parser)
    add_output_options(parser)
    add_guard_options(parser)
    add_worker_options(parser)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def worker_spec(args: argparse.Namespace) -> WorkerSpec:
    """The ``WorkerSpec`` a worker's flags describe."""
    return WorkerSpec(**{name: getattr(args, name) for name in WorkerSpec.field_names()})


def output_folder(args: argparse.Namespace) -> Path:
    """``--out``, else a temporary folder for ``--quick``, else ``benchmarks/``."""
    if args.out is not None:
        return args.out
    if args.quick:
        return Path(tempfile.gettempdir()) / "fisher_mi_bench_quick"
    return BENCH_DIR


def plan(args: argparse.Namespace) -> list[WorkerSpec]:
    """Every case of the run, as worker specs: models x batches x methods, the floor first
    (so ratios have it)."""
    methods: list[Method] = [METHODS.get(name) for name in args.methods]
    methods.sort(key=lambda m: m.name != FLOOR_METHOD)
    batches = [8] if args.quick else [int(b) for b in args.batch_sizes.split(",")]

    def repeats_for(model: str) -> int:
        if args.quick:
            return 1
        return args.repeats if args.repeats is not None else MODELS.get(model).repeats

    return [
        WorkerSpec(
            model=model,
            batch=batch,
            method=method.name,
            repeats=repeats_for(model),
            warmup=WARMUP,
            device=args.device,
            dtype="float32",
            seed=SEED,
            max_per_sample_gb=args.max_per_sample_gb,
            memory_limit_gb=args.memory_limit_gb,
        )
        for model in args.models
        for batch in batches
        for method in methods
    ]


def run_cases(campaign: Campaign, specs: list[WorkerSpec]) -> None:
    """Measure and save every case, printing progress."""
    repeats = {spec.model: spec.repeats for spec in specs}
    print(
        f"{len(specs)} cases on {campaign.device}; repeats per model: "
        + ", ".join(f"{model} {n}" for model, n in repeats.items())
        + f"; results in {campaign.results}"
    )
    for i, spec in enumerate(specs, 1):
        print(f"[{i}/{len(specs)}] {spec.model} b={spec.batch} {spec.method}", flush=True)
        measure_case(campaign, spec, METHODS.get(spec.method))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one case); rewrite RESULTS.md."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(worker_spec(args))), flush=True)
        return 0
    out = output_folder(args)
    if args.note:
        save_note(out, args.set, args.note)
    if args.report_only:
        print(f"wrote {write_report(out)}")
        return 0
    campaign = Campaign(
        results=out / RESULTS / args.set if args.set else out / RESULTS,
        reference=out / RESULTS / REFERENCE,
        device=args.device,
        guards=Guards(
            timeout_s=args.case_timeout,
            max_per_sample_gb=args.max_per_sample_gb,
            memory_limit_gb=args.memory_limit_gb,
        ),
        wait_idle=args.wait_idle,
        retries=args.retries,
    )
    start = time.perf_counter()
    run_cases(campaign, plan(args))
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {write_report(out)}")
    return 0
