"""Benchmark: seconds per model-inversion attack iteration, over a plain-torch floor and over
running the units one at a time. The cases, the floor and the clocks are in
``attack_cases.py`` next to this script (its docstring says what each side runs).

The cases run round-robin in one process: round r times every case in turn, and within a case
each attack iteration is followed by one floor call (``attack_cases.paired_times``), so the two
calls of a pair share the load of that moment, and a burst of other work spoils one round of
many cases instead of every round of one; the ratio is the median over the pairs. Other
processes' CPU use is recorded per case and round, as ``fisher_bench`` records it
(``/proc/stat`` minus this process's own CPU time).

Usage (from the repository root):

    python benchmarks/bench_attacks.py                     # all cases; results/extra/attacks.*
    python benchmarks/bench_attacks.py --quick             # smoke check in a temp folder
    python benchmarks/bench_attacks.py --methods gmi,plgmi --sizes 64px --batch-sizes 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from attack_cases import (
    DEFAULT_SIZES,
    METHODS,
    PRESET,
    SIZES,
    Case,
    build_case,
    floor_step,
    iteration_times,
    nchw_times,
    paired_times,
    single_unit_times,
)
from attack_profile import batching_case, profile_case
from fisher_bench.machine import busy_cpu_seconds, cpu_model, own_cpu_seconds, wait_until_idle
from fisher_bench.report import EXTRA, write_report
from fisher_bench.settings import BENCH_DIR, OTHER_CORES_THRESHOLD, RESULTS

import fisher_mi
from fisher_mi.io import write_json, write_text

TARGET_RATIO = 1.2  # issue 10: an attack iteration within 1.2x its floor

NAME = "attacks"


@dataclass(frozen=True)
class Plan:
    """What one run measures.

    Attributes:
        methods: ``attack_cases.METHODS`` names.
        sizes: ``attack_cases.SIZES`` names.
        batch_sizes: units per batch.
        rounds: timed rounds after the warm-up round.
        iterations: most timed iterations of each side per case and round.
        round_budget_s: a case whose warm-up iteration is slow gets fewer timed iterations, so
            that its floor and attack together take about this long per round (at least 1).
        singles: units run alone (batches of one) per case and round.
        wait_idle_s: before each case's warm-up, rounds and profile, wait up to this long for other
            processes to use under ``OTHER_CORES_THRESHOLD`` cores.
        profile_misses: after the rounds, analyse every case that misses a target.
        out: folder receiving ``attacks.md`` and ``attacks.json``.
    """

    methods: tuple[str, ...]
    sizes: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    rounds: int = 3
    iterations: int = 3
    round_budget_s: float = 8.0
    singles: int = 4
    wait_idle_s: float = 0.0
    profile_misses: bool = True
    out: Path = BENCH_DIR / RESULTS / EXTRA


@dataclass
class Timing:
    """A case and everything measured on it.

    Attributes:
        case: the built case.
        floor: the case's floor call (``attack_cases.floor_step``), kept across rounds.
        iterations: timed iterations of each side per round (``Plan.round_budget_s``).
        rounds: per round: ``floor_s``, ``attack_s``, ``single_s`` (lists of seconds) and
            ``other_cpu_cores``.
        warmup_s: the warm-up's attack iteration.
    """

    case: Case
    floor: Callable[[], None]
    iterations: int = 1
    rounds: list[dict[str, Any]] = field(default_factory=list)
    warmup_s: float = 0.0


def warm_up(timing: Timing, plan: Plan) -> None:
    """One floor call, two attack iterations and one single-unit run; then the case's timed
    iterations per round from the attack's second iteration."""
    case = timing.case
    timing.floor()
    timing.warmup_s = iteration_times(case.attack(2), case.batch)[0]
    single_unit_times(case.attack(2), case.batch, 1)
    affordable = int(plan.round_budget_s / (2 * timing.warmup_s))
    timing.iterations = max(1, min(plan.iterations, affordable))


def measure_round(timing: Timing, plan: Plan) -> None:
    """One round of a case: attack iterations and floor calls interleaved, then the singles."""
    case = timing.case
    busy, own, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    attack_s, floor_s = paired_times(case.attack(timing.iterations + 1), case.batch, timing.floor)
    nchw_s = nchw_times(case.attack(timing.iterations + 1), case.batch)
    single_s = single_unit_times(case.attack(3), case.batch, plan.singles)
    others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
    timing.rounds.append(
        {
            "floor_s": floor_s,
            "attack_s": attack_s,
            "nchw_s": nchw_s,
            "single_s": single_s,
            "other_cpu_cores": max(others / (time.perf_counter() - start), 0.0),
        }
    )


def run_rounds(timings: Sequence[Timing], plan: Plan) -> None:
    """The warm-up round, then ``plan.rounds`` rounds over every case in turn."""
    for timing in timings:
        if plan.wait_idle_s:
            wait_until_idle(plan.wait_idle_s)
        warm_up(timing, plan)
        print(f"warm-up {timing.case.key}: {timing.warmup_s:.3f} s/iter", flush=True)
    for index in range(plan.rounds):
        for timing in timings:
            if plan.wait_idle_s:
                wait_until_idle(plan.wait_idle_s)
            measure_round(timing, plan)
        print(f"round {index + 1}/{plan.rounds} done", flush=True)


# ---------------------------------------------------------------------------- summary


def case_summary(timing: Timing) -> dict[str, Any]:
    """Medians, in-round ratios (their median over rounds) and the round records."""
    case, rounds = timing.case, timing.rounds
    median = statistics.median
    pairs = [[a / f for a, f in zip(r["attack_s"], r["floor_s"], strict=True)] for r in rounds]
    ratio = median(q for in_round in pairs for q in in_round)
    alone = [case.batch_size * median(r["single_s"]) / median(r["attack_s"]) for r in rounds]
    layout = [median(r["nchw_s"]) / median(r["attack_s"]) for r in rounds if r.get("nchw_s")]
    others = [r["other_cpu_cores"] for r in rounds]
    return {
        "method": case.method.name,
        "size": case.size.name,
        "batch": case.batch_size,
        "target": case.size.target,
        "surrogates": [case.size.surrogate] if case.surrogates else [],
        "prior": f"{case.method.attack} ({PRESET} preset, {case.size.image_size} px)",
        "timed_iterations_per_round": timing.iterations,
        "rounds": len(rounds),
        "warmup_attack_s": timing.warmup_s,
        "floor_s": median(t for r in rounds for t in r["floor_s"]),
        "attack_s": median(t for r in rounds for t in r["attack_s"]),
        "single_unit_s": median(t for r in rounds for t in r["single_s"]),
        "ratio": ratio,
        "ratio_per_round": [median(in_round) for in_round in pairs],
        "target_met": ratio <= TARGET_RATIO,
        "one_at_a_time_ratio": median(alone),
        "nchw_ratio": median(layout) if layout else None,
        "other_cpu_cores_median": median(others),
        "other_cpu_cores_max": max(others),
        "per_round": rounds,
    }


def machine_facts(started: str) -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "fisher_mi": getattr(fisher_mi, "__version__", None),
        "python": platform.python_version(),
        "started": started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min_at_end": os.getloadavg()[0],
        "process_cpu_s": own_cpu_seconds(),
    }


def fmt_cores(summary: dict[str, Any]) -> str:
    """Other processes' median and highest core use over the case's rounds, ``*`` above the
    harness's threshold."""
    flag = " *" if summary["other_cpu_cores_median"] > OTHER_CORES_THRESHOLD else ""
    return f"{summary['other_cpu_cores_median']:.2f} / {summary['other_cpu_cores_max']:.2f}{flag}"


def fmt_alone(ratio: float) -> str:
    """The one-at-a-time ratio, in bold where B batches of one unit were not slower."""
    return f"{ratio:.2f}" if ratio > 1 else f"**{ratio:.2f}**"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio, or a dash for rows measured before it was."""
    return "-" if ratio is None else f"{ratio:.2f}"


def table_lines(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """The section's table, one row per case."""
    lines = [
        "| method | size | batch | floor s/iter | attack s/iter | x floor | within 1.2x? "
        "| one at a time / batched | NCHW / channels-last | timed iter. x rounds "
        "| other cores (median / max) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for s in summaries:
        met = "yes" if s["target_met"] else "**no**"
        lines.append(
            f"| {s['method']} | {s['size']} | {s['batch']} | {s['floor_s']:.4f} "
            f"| {s['attack_s']:.4f} | {s['ratio']:.2f} | {met} "
            f"| {fmt_alone(s['one_at_a_time_ratio'])} | {fmt_ratio(s.get('nchw_ratio'))} "
            f"| {s['timed_iterations_per_round']} x {s['rounds']} | {fmt_cores(s)} |"
        )
    return lines


def run_line(run: dict[str, Any], cases: Sequence[dict[str, Any]]) -> str:
    """A bullet for one run: when, its CPU time, its settings and the rows it measured."""
    plan = run["plan"]
    rows = [c for c in cases if c.get("run") == run["started"]]
    which = "every row" if len(rows) == len(cases) else ", ".join(map(case_key, rows))
    return (
        f"- run {run['started']} to {run['finished']} ({run['process_cpu_s'] / 60:.1f} CPU "
        f"minutes; 1-minute load average at the end {run['load_average_1min_at_end']:.2f}): "
        f"{plan['rounds']} rounds after a warm-up round, per case and round up to "
        f"{plan['iterations']} timed iterations of each side (fewer where the warm-up iteration "
        f"was slow: about {plan['round_budget_s']:g} s per case and round, the `timed iter. x "
        f"rounds` column) and {plan['singles']} units run alone for 2 timed iterations each; "
        f"waiting up to {plan['wait_idle_s']:g} s for an idle machine before each case; rows: "
        f"{which}"
    )


def header_lines(report: dict[str, Any]) -> list[str]:
    """The bullets under the section's heading: machine, runs, columns, contention, notes."""
    last = report["runs"][-1]
    return [
        f"- CPU: {last['cpu']} ({last['cpu_count']} logical cores); torch threads "
        f"{last['threads']}; torch {last['torch']}, fisher_mi {last['fisher_mi']}, Python "
        f"{last['python']}",
        *(run_line(run, report["cases"]) for run in report["runs"]),
        "- the cases run round-robin in one process; `x floor`: median over all pairs of (an "
        "attack iteration / the floor call right before it); s/iter columns: medians over all "
        "timed iterations. `one at a time / batched`: B x (a one-unit batch's s/iter) over the "
        "B-unit batch's s/iter, medians over rounds: above 1, one batch of B units is faster "
        "than B batches of one unit. `NCHW / channels-last`: the attack's s/iter with its CPU "
        "channels-last layout turned off over the attack's, medians over rounds (the floor "
        "runs in the attack's layout)",
        "- other cores: cores other processes kept busy during the case's rounds (median / "
        f"max over rounds); `*`: median above {OTHER_CORES_THRESHOLD}, timings inflated and "
        "noisy",
        *(f"- {note}" for note in report.get("notes", [])),
    ]


def section(report: dict[str, Any]) -> str:
    """The markdown section ``RESULTS.md`` appends: heading, bullets, table, causes."""
    lines = [
        "## Attack iterations: seconds over the floor",
        "",
        "Generated by `benchmarks/bench_attacks.py` (`results/extra/attacks.json` holds every "
        "timing); the floor and the cases are defined in `benchmarks/attack_cases.py`. "
        "Untrained, seeded networks (the cost does not depend on the weights), priors at the "
        f"`{PRESET}` preset; 32px: grey digits, target `mcnn`, surrogate `scnn`; 64px: RGB, "
        "target `vgg_small`, surrogate `resnet18` (see the notes).",
        "",
        *header_lines(report),
        "",
        *table_lines(report["cases"]),
    ]
    causes, probes = report.get("causes") or [], report.get("probes") or []
    if causes or probes:
        lines += [
            "",
            "### Where the time goes in the misses",
            "",
            f"Measured after the rounds ({report.get('analysed', '')}), on the untimed cases "
            "rebuilt as in the run:",
            "",
            *causes,
        ]
    if probes:
        lines += ["", "Probes run by hand on the same cases (`--probe`):", "", *probes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    """The command line, as a ``Plan`` (and the namespace, for ``--note`` and ``--no-report``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help=", ".join(SIZES))
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--round-budget", type=float, default=8.0, help="seconds (see Plan)")
    parser.add_argument("--singles", type=int, default=4)
    parser.add_argument("--wait-idle", type=float, default=0.0, help="seconds, before cases")
    parser.add_argument("--no-profile", action="store_true", help="do not analyse misses")
    parser.add_argument(
        "--reanalyse", action="store_true", help="analyse the misses of --out's attacks.json"
    )
    parser.add_argument(
        "--merge", action="store_true", help="replace only the measured cases in attacks.json"
    )
    parser.add_argument("--note", action="append", default=[], help="a bullet for the section")
    parser.add_argument(
        "--probe", action="append", default=[], help="a measured cause found by hand (bullet)"
    )
    parser.add_argument("--no-report", action="store_true", help="leave RESULTS.md as it is")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="batch 4, 1 round, temp folder")
    args = parser.parse_args(argv)
    methods = tuple(METHODS.get(name.strip()).name for name in args.methods.split(","))
    sizes = tuple(name.strip() for name in args.sizes.split(","))
    unknown = [name for name in sizes if name not in SIZES]
    if unknown or min(args.rounds, args.iterations, args.singles) < 1:
        parser.error(f"sizes must be among {', '.join(SIZES)} (got {unknown}); counts >= 1")
    if args.quick:
        args.batch_sizes, args.rounds, args.iterations, args.singles = "4", 1, 1, 1
        args.out = args.out or Path(tempfile.gettempdir()) / "fisher_mi_bench_attacks_quick"
        args.no_report = True
    plan = Plan(
        methods=methods,
        sizes=sizes,
        batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
        rounds=args.rounds,
        iterations=args.iterations,
        round_budget_s=args.round_budget,
        singles=args.singles,
        wait_idle_s=args.wait_idle,
        profile_misses=not args.no_profile,
        out=args.out or Plan.out,
    )
    return plan, args


def measure(plan: Plan, notes: Sequence[str]) -> tuple[dict[str, Any], list[Timing]]:
    """Build every case, time them round-robin; the report (without causes) and the timings."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cases = [
        build_case(METHODS.get(method), SIZES[size], batch)
        for size in plan.sizes
        for batch in plan.batch_sizes
        for method in plan.methods
    ]
    timings = [Timing(case, floor_step(case)) for case in cases]
    run_rounds(timings, plan)
    report = {
        "runs": [{**machine_facts(started), "plan": {**vars(plan), "out": str(plan.out)}}],
        "notes": list(notes),
        "cases": [{**case_summary(timing), "run": started} for timing in timings],
    }
    return report, timings


def case_key(summary: dict[str, Any]) -> str:
    """``method/size/bB`` of a case summary."""
    return f"{summary['method']}/{summary['size']}/b{summary['batch']}"


def merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the cases ``new`` measured again replaced (new ones appended); the runs
    whose cases remain, in order; ``new``'s notes where it has any."""
    fresh = {case_key(s): s for s in new["cases"]}
    cases = [fresh.pop(case_key(s), s) for s in old["cases"]] + list(fresh.values())
    used = {s["run"] for s in cases}
    runs = [run for run in old["runs"] + new["runs"] if run["started"] in used]
    return {"runs": runs, "notes": new["notes"] or old.get("notes", []), "cases": cases}


def analyse(report: dict[str, Any], plan: Plan) -> None:
    """Profile each case above the floor target and time the networks of each case that one
    unit at a time beats; the findings go into the case and ``report["causes"]``."""
    causes: list[str] = []
    for summary in report["cases"]:
        ratio_missed = not summary["target_met"]
        batching_missed = summary["one_at_a_time_ratio"] <= 1.0
        if not (ratio_missed or batching_missed):
            continue
        case = build_case(METHODS.get(summary["method"]), SIZES[summary["size"]], summary["batch"])
        if plan.wait_idle_s:
            wait_until_idle(plan.wait_idle_s)
        busy, own, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        found = {}
        if ratio_missed:
            found["profile"] = profile_case(case, summary["timed_iterations_per_round"])
        if batching_missed:
            found["batching"] = batching_case(case)
        others = (busy_cpu_seconds() - busy - (own_cpu_seconds() - own)) / (
            time.perf_counter() - start
        )
        for name, finding in found.items():
            finding["other_cpu_cores"] = max(others, 0.0)
            summary[name] = finding
            note = f" (Other processes: {others:.2f} cores.)"
            causes += [line + note for line in finding["lines"]]
    report["causes"] = causes
    report["analysed"] = datetime.now(timezone.utc).isoformat(timespec="seconds")


def main(argv: Sequence[str] | None = None) -> int:
    """Time the cases (or read the last run's timings), analyse the misses, write the section
    and its JSON, and rewrite RESULTS.md."""
    plan, args = parse_args(argv)
    path = plan.out / f"{NAME}.json"
    if args.reanalyse:
        report = json.loads(path.read_text())
        report["notes"] = args.note or report.get("notes", [])
    else:
        report, _ = measure(plan, args.note)
        if args.merge and path.is_file():
            report = merged(json.loads(path.read_text()), report)
    if plan.profile_misses:
        analyse(report, plan)
    if args.probe:
        report["probes"] = [f"- {probe}" for probe in args.probe]
    write_json(path, report)
    write_text(plan.out / f"{NAME}.md", section(report))
    if not args.no_report:
        write_report(BENCH_DIR)
    ratios = {case_key(s): s["ratio"] for s in report["cases"]}
    print(json.dumps(ratios), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
