"""Ratios of methods timed in turn in one process: steadier than the harness on a busy machine.

The harness times each method in a fresh process of its own, so its ratios compare
processes that ran minutes apart; when other processes load the CPU in bursts, that spread
swamps a 5% difference. Here the methods run round-robin on one model and batch (round r:
A, B, C, ...), each round's calls share the contention of that moment, and the median over
rounds of each method's time over the first method's is reported. No memory figures (the
process is shared) and no peers that wrap the model (BackPACK's ``extend``, Opacus' module
would change it for every later call): those stay with the harness.

Usage (from the repository root):

    python benchmarks/bench_interleaved.py --model vgg16 --batch 32 --rounds 7 \\
        --methods fisher_mi.hooks,fisher_mi.profile,fisher_mi.profile.true
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from fisher_bench.cases import MODELS, build_case
from fisher_bench.machine import busy_cpu_seconds, own_cpu_seconds
from fisher_bench.methods import METHODS, Method
from fisher_bench.settings import SEED


def round_robin(methods: Sequence[Method], model_name: str, batch: int, rounds: int) -> dict:
    """Each method's call times over ``rounds`` rounds (one warm-up call each first), and the
    cores other processes kept busy meanwhile."""
    model, x, y = build_case(
        model_name, batch, seed=SEED, dtype=torch.float32, device=torch.device("cpu")
    )
    for method in methods:
        method.run(model, x, y)
    times: dict[str, list[float]] = {method.name: [] for method in methods}
    busy, own, wall = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    for _ in range(rounds):
        for method in methods:
            start = time.perf_counter()
            method.run(model, x, y)
            times[method.name].append(time.perf_counter() - start)
    others = (busy_cpu_seconds() - busy - (own_cpu_seconds() - own)) / (time.perf_counter() - wall)
    return {"times_s": times, "other_cpu_cores": max(others, 0.0)}


def summarise(model_name: str, batch: int, measured: dict) -> dict[str, Any]:
    """Medians and, per method, the median over rounds of its time over the first method's."""
    times = measured["times_s"]
    first = next(iter(times))
    ratios = {
        name: statistics.median(t / b for t, b in zip(values, times[first], strict=True))
        for name, values in times.items()
    }
    return {
        "model": model_name,
        "batch": batch,
        "rounds": len(times[first]),
        "against": first,
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "ratio_to_first": ratios,
        **measured,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: one model and batch, the methods (the first is the reference)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=", ".join(MODELS.names()))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--methods", required=True, help="comma-separated; the first is 1.00")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    MODELS.get(args.model)
    args.methods = [METHODS.get(name.strip()) for name in args.methods.split(",")]
    wrapping = [method.name for method in args.methods if method.requires]
    if wrapping or args.rounds < 1:
        parser.error(f"--rounds must be at least 1 and no peer may be given (got {wrapping})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Time the methods round-robin and print one JSON line with the ratios."""
    args = parse_args(argv)
    measured = round_robin(args.methods, args.model, args.batch, args.rounds)
    print(json.dumps(summarise(args.model, args.batch, measured)), flush=True)
    return 0
