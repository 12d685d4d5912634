"""Recorded attack run: gmi, kedmi, plgmi and gmi+lomma against an undefended and a TL-DMI
target, on one dataset, through the ``fisher-mi`` command line, resumable step by step.

Each step is one ``fisher-mi`` command writing one folder under ``--root``; it names the steps
whose folders it reads (``needs``), and ``--jobs N`` runs up to N steps at once as soon as
those are finished (the scratch and TL chains side by side), each with OMP_NUM_THREADS =
cores / N unless set. A folder whose
``manifest.json`` records a complete run is a finished step and is skipped; a folder with a
checkpoint (``train``, ``train-gan``: ``checkpoint.pt``; ``attack``: ``batches/``) is
continued with ``--resume``;
anything else is run from the start. So an interrupted run is resumed by running the same
command again. Wall-clock seconds per step go to ``ROOT/times.csv``, the wall clock of each
invocation (start, end, jobs) to ``ROOT/runs.csv``, and each command's output to
``ROOT/logs/<step>.log``.

Usage (from the repository root):

    python benchmarks/attack_matrix.py run --data mnist --root runs/matrix/mnist
    python benchmarks/attack_matrix.py run --data att:../shared/data/att_faces \\
        --root runs/matrix/att --methods gmi,kedmi,gmi+lomma --jobs 2
    python benchmarks/attack_matrix.py summary runs/matrix/mnist runs/matrix/att \\
        > benchmarks/results/extra/attack_runs.md

The settings per dataset are ``SETTINGS`` (training lengths, architectures, reconstructions
per identity); they are fixed before a run, not chosen from its results.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

TARGETS = ("scratch", "tl")
METHODS = ("gmi", "gmi+lomma", "kedmi", "plgmi")  # run in this order: the cheap ones first


@dataclass(frozen=True)
class Setting:
    """What one dataset is run with.

    Attributes:
        arch: the targets' architecture.
        evaluator: the evaluator's architecture (another one than the targets').
        surrogate: the LOMMA surrogates' architecture.
        train: ``fisher-mi train`` options of the targets, the evaluator and the surrogates.
        channels: ``--channels`` of the targets and the evaluator (None: the architecture's);
            the surrogates take their teacher's.
        pretrain_epochs: public pre-training of the TL-DMI target.
        per_id: reconstructions per identity.
    """

    arch: str
    evaluator: str
    surrogate: str
    train: tuple[str, ...]
    channels: int | None
    pretrain_epochs: int
    per_id: int


SETTINGS = {
    # 5 private classes (digits 0-4), public digits 5-9; 32 px grey.
    "mnist": Setting(
        arch="mcnn",
        evaluator="scnn",
        surrogate="mcnn",
        train=("--epochs", "10", "--optimizer", "sgd", "--lr", "0.01"),
        channels=None,
        pretrain_epochs=10,
        per_id=10,
    ),
    # 20 private subjects x 8 images, 20 disjoint public subjects; 64 px grey, kept grey (one
    # channel) so that the targets take the grey gmi prior's images.
    "att": Setting(
        arch="vgg_small",
        evaluator="resnet18",
        surrogate="vgg_small",
        train=("--epochs", "20", "--optimizer", "sgd", "--lr", "0.01"),
        channels=1,
        pretrain_epochs=20,
        per_id=3,
    ),
}


POLL_SECONDS = 2.0  # how often running steps are checked


@dataclass(frozen=True)
class Step:
    """One ``fisher-mi`` command, the folder it writes (relative to the root) and the steps
    whose folders it reads."""

    name: str
    argv: tuple[str, ...]
    needs: tuple[str, ...] = ()


def _setting(spec: str) -> Setting:
    name = spec.partition(":")[0]
    if name not in SETTINGS:
        raise SystemExit(f"no setting for {spec!r}; known: {', '.join(SETTINGS)}")
    return SETTINGS[name]


def plan_steps(spec: str, root: Path, methods: tuple[str, ...]) -> list[Step]:
    """The steps of one dataset, in the order they run (each after the ones it reads)."""
    setting = _setting(spec)
    data = ("--data", spec)
    channels = () if setting.channels is None else ("--channels", str(setting.channels))
    train = ("train", *data, *setting.train, *channels)
    steps = [
        Step("gan/gmi", ("train-gan", *data, "--kind", "gmi", "--preset", "cpu")),
        Step("targets/scratch", (*train, "--arch", setting.arch)),
        Step(
            "targets/tl",
            (
                *train,
                "--arch",
                setting.arch,
                "--public",
                spec,
                "--pretrain-epochs",
                str(setting.pretrain_epochs),
                "--rule",
                "auto",
            ),
        ),
        Step("evaluator", (*train, "--arch", setting.evaluator, "--role", "evaluator")),
    ]
    for method in methods:
        for target in TARGETS:
            steps.extend(_method_steps(spec, root, setting, method, target))
    return steps


def _method_steps(spec: str, root: Path, setting: Setting, method: str, target: str) -> list[Step]:
    """The prior or surrogate ``method`` needs against ``target``, then the attack itself."""
    model = str(root / "targets" / target / "model.pt")
    kind, _, option = method.partition("+")
    steps = []
    needs = [f"targets/{target}", "evaluator"]
    attack = [
        "attack",
        "--target",
        model,
        "--method",
        kind,
        "--ids",
        "all",
        "--per-id",
        str(setting.per_id),
        "--seed",
        "0",
        "--data",
        spec,
        "--evaluator",
        str(root / "evaluator" / "model.pt"),
    ]
    prior = "gan/gmi" if kind == "gmi" else f"gan/{kind}-{target}"
    if kind != "gmi":
        argv = ("train-gan", "--data", spec, "--kind", kind, "--preset", "cpu", "--target", model)
        steps.append(Step(prior, argv, (f"targets/{target}",)))
    attack += ["--gan", str(root / prior)]
    needs.append(prior)
    if option == "lomma":
        surrogate = f"surrogates/{target}"
        steps.append(
            Step(
                surrogate,
                (
                    "train",
                    "--data",
                    spec,
                    *setting.train,
                    "--arch",
                    setting.surrogate,
                    "--role",
                    "surrogate",
                    "--teacher",
                    model,
                ),
                (f"targets/{target}",),
            )
        )
        attack += ["--lomma", "--surrogate", str(root / surrogate / "model.pt")]
        needs.append(surrogate)
    steps.append(Step(f"attacks/{target}-{method}", tuple(attack), tuple(needs)))
    return steps


def _finished(folder: Path) -> bool:
    """The folder's manifest records a complete run (a run writes one with ``complete``
    false when it starts, and rewrites it when it ends)."""
    path = folder / "manifest.json"
    if not path.is_file():
        return False
    runs = json.loads(path.read_text()).get("runs", [])
    return bool(runs) and bool(runs[-1].get("complete"))


def _state(folder: Path) -> str:
    """``done``, ``resume`` or ``new``, by the rules in the module docstring."""
    if _finished(folder):
        return "done"
    if (folder / "checkpoint.pt").is_file() or (folder / "batches").is_dir():
        return "resume"
    return "new"


@dataclass
class Running:
    """A step under way: its process, log file, state it started from and start time."""

    step: Step
    process: subprocess.Popen
    log: object
    state: str
    start: float


def _start(step: Step, root: Path, state: str, threads: int) -> Running:
    folder = root / step.name
    argv = [sys.executable, "-m", "fisher_mi", *step.argv, "--out", str(folder)]
    argv += ["--resume"] if state == "resume" else []
    print(f"{state:7} {step.name}", flush=True)
    log = (root / "logs" / f"{step.name.replace('/', '_')}.log").open("a")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return Running(step, process, log, state, time.perf_counter())


def _append_row(path: Path, header: list[str], row: list[object]) -> None:
    """Append ``row`` to the CSV at ``path``, writing ``header`` first into a new file."""
    new_file = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(header)
        writer.writerow(row)


def _record(times: Path, running: Running, code: int) -> None:
    seconds = time.perf_counter() - running.start
    step = running.step
    row = [step.name, running.state, f"{seconds:.1f}", code, " ".join(step.argv)]
    _append_row(times, ["step", "state", "seconds", "exit", "command"], row)


def _record_invocation(root: Path, started: datetime, jobs: int) -> None:
    ended = datetime.now(timezone.utc)
    wall = (ended - started).total_seconds()
    row = [started.isoformat(), ended.isoformat(), f"{wall:.1f}", jobs]
    _append_row(root / "runs.csv", ["started", "ended", "wall_seconds", "jobs"], row)


def _reap(running: list[Running], root: Path, done: set[str]) -> tuple[Running, int] | None:
    """Record the steps that ended (removed from ``running``, added to ``done`` when they
    succeeded); the first failure among them, if any."""
    failed = None
    for run in [run for run in running if run.process.poll() is not None]:
        running.remove(run)
        run.log.close()
        _record(root / "times.csv", run, run.process.returncode)
        if run.process.returncode == 0:
            done.add(run.step.name)
        elif failed is None:
            failed = (run, run.process.returncode)
    return failed


def run_steps(steps: list[Step], root: Path, jobs: int = 1) -> None:
    """Run each unfinished step once the steps it needs are finished, up to ``jobs`` at once
    (in the listed order among the ready ones), logging output and wall-clock seconds. A
    failed step stops the others (they resume on the next run) and ends the run."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    done = {step.name for step in steps if _state(root / step.name) == "done"}
    for step in steps:
        if step.name in done:
            print(f"done    {step.name}", flush=True)
    pending = [step for step in steps if step.name not in done]
    running: list[Running] = []
    failed: tuple[Running, int] | None = None
    try:
        while (pending or running) and failed is None:
            ready = [step for step in pending if set(step.needs) <= done]
            for step in ready[: jobs - len(running)]:
                pending.remove(step)
                running.append(_start(step, root, _state(root / step.name), threads))
            if not running:
                missing = sorted({n for step in pending for n in step.needs} - done)
                raise SystemExit(f"steps wait for {missing}, which no step makes")
            time.sleep(POLL_SECONDS)
            failed = _reap(running, root, done)
    finally:
        for run in running:
            run.process.terminate()
            run.process.wait()
            run.log.close()
        _record_invocation(root, started, jobs)
    if failed is not None:
        run, code = failed
        log = root / "logs" / f"{run.step.name.replace('/', '_')}.log"
        raise SystemExit(f"step {run.step.name} failed (exit {code}); see {log}")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _spread(block: dict | None) -> str:
    """``mean ± std`` over draws of a ``{per_draw, mean, std}`` block, in percent."""
    if block is None:
        return "—"
    return f"{100 * block['mean']:.1f}% ± {100 * (block['std'] or 0.0):.1f}"


def _tl_plan(root: Path) -> str:
    plan = json.loads((root / "targets" / "tl" / "plan.json").read_text())
    frozen = plan["frozen"]
    return (
        f"rule `{plan['rule']}` {plan['params']}, {len(frozen)} of {plan['n_layers']} layers "
        f"frozen ({', '.join(frozen) or 'none'}), "
        f"{100 * plan['trainable_param_fraction']:.1f}% of the parameters trainable"
    )


def _attack_rows(root: Path) -> list[str]:
    rows = []
    for method in METHODS:
        for target in TARGETS:
            path = root / "attacks" / f"{target}-{method}" / "metrics.json"
            if not _finished(path.parent):
                continue
            m = json.loads(path.read_text())
            prior = m["baselines"]["prior_only"]
            sig = m["significance"]
            rows.append(
                f"| {method} | {target} | {m['protocol']['iterations']} | "
                f"{_percent(m['natural_accuracy'])} | "
                f"{_spread(m['top1'])} | {_spread(m['top5'])} | {m['knn_sq_mean']:.1f} | "
                f"{m['frechet']['value']:.1f} | {_spread(prior['top1'])} | "
                f"{prior['knn_sq_mean']:.1f} | {sig['hits']}/{sig['n']}, p = "
                f"{sig['p_value']:.1e} | {m['baselines']['verdict']} "
                f"(p = {m['baselines']['verdict_test']['p_value']:.1e}) |"
            )
    return rows


def _times(root: Path) -> dict[str, float]:
    """Seconds per step, summed over its successful (resumed) runs."""
    if not (root / "times.csv").exists():
        return {}
    seconds: dict[str, float] = {}
    with (root / "times.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["exit"] != "0":  # a failed attempt is not the step's time
                continue
            seconds[row["step"]] = seconds.get(row["step"], 0.0) + float(row["seconds"])
    return seconds


def _invocations(root: Path) -> list[str]:
    """Table rows of ``runs.csv``: each invocation's start, wall clock and jobs."""
    path = root / "runs.csv"
    if not path.exists():
        return ["| (not recorded: runs before runs.csv) | | |"]
    with path.open() as handle:
        return [
            f"| {row['started'][:19]} | {float(row['wall_seconds']):.0f} | {row['jobs']} |"
            for row in csv.DictReader(handle)
        ]


def summary(root: Path) -> str:
    """One dataset's tables in Markdown: attacks, then the protocol and the step times."""
    sample = next(root.glob("attacks/*/metrics.json"), None)
    if sample is None:
        return f"(no finished attack under {root})\n"
    m = json.loads(sample.read_text())
    protocol = m["protocol"]
    evaluator = m["evaluator"]
    lines = [
        f"### {protocol['data']}",
        "",
        f"- identities: {len(protocol['identities'])} (all private classes), "
        f"{protocol['per_identity']} draws each, seed {protocol['seed']}, batch "
        f"{protocol['batch_size']}; iterations and learning rate: each method's default; "
        "priors at the `cpu` preset (**not the reference**)",
        f"- evaluator: `{evaluator['arch']}`, {_percent(evaluator['accuracy_private_test'])} "
        f"on private-test, {_percent(evaluator['accuracy_private_train'])} on the private "
        "training images",
        f"- TL-DMI target: public pre-training, then `--rule auto`: {_tl_plan(root)}",
        f"- resize for the evaluator: {protocol['resize']}",
        "",
        "| method | target | iterations | natural acc. | top-1 (mean ± std over draws) | top-5 "
        "| KNN dist.² | Frechet (evaluator features) | prior alone top-1 | prior alone KNN² "
        "| hits vs chance (binomial) | attack vs its prior (Fisher exact) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        *_attack_rows(root),
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *(f"| {step} | {seconds:.0f} |" for step, seconds in _times(root).items()),
        f"| all steps | {sum(_times(root).values()):.0f} |",
        "",
        "| invocation started (UTC) | wall-clock seconds | steps at once |",
        "| --- | ---: | ---: |",
        *_invocations(root),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``run`` a dataset's steps or print the ``summary`` of finished roots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) one dataset's steps")
    run.add_argument("--data", required=True, help="mnist or att:ROOT")
    run.add_argument("--root", type=Path, required=True, help="folder of the steps")
    run.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    run.add_argument("--jobs", type=int, default=1, help="steps run at once (default 1)")
    report = commands.add_parser("summary", help="Markdown tables of finished roots")
    report.add_argument("roots", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "run":
        methods = tuple(args.methods.split(","))
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
        if args.jobs < 1:
            raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
        run_steps(plan_steps(args.data, args.root, methods), args.root, args.jobs)
    else:
        print("\n".join(summary(root) for root in args.roots))


if __name__ == "__main__":
    main()
