"""Acceptance targets as data: ``targets.json`` read into a ``TargetBook``, judged per group.

A target compares one method's median time (or peak memory) with another's within one
(device, model, batch) group of a record set. Its ``kind`` picks the judge that writes its
bullet lines in RESULTS.md (``JUDGES``, one small function per kind); a missed target gets
the measured cause recorded for it in the data file, or says that none has been analysed. A
target whose method has no record in a group is not judged there (a partial run measures
only some methods).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fisher_bench.records import memory, ok, status, tables_of
from fisher_mi.registry import Registry

TARGETS_FILE = Path(__file__).with_name("targets.json")
NOT_ANALYSED = "cause not yet analysed"

Group = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """One acceptance target (the fields of a ``targets.json`` entry).

    Attributes:
        id: the key causes and summaries refer to.
        kind: the judge (``JUDGES`` key): ``ratio``, ``fastest`` or ``not_slower``.
        method: the method judged.
        against: the method it is measured against (the floor, or another method).
        label: how the bullet names the target.
        measure: ``time`` (median seconds) or ``memory`` (peak RSS; device memory on CUDA).
        limit: the largest ratio that meets a ``ratio`` target.
        against_text: how a bullet names ``against`` ("the floor", "the loop").
        table: the table whose methods a ``fastest`` target races.
        exclude: methods a ``fastest`` target does not race (those that call ``method``).
        absent_label: the ``not_slower`` bullet's name when ``against`` was not timed.
        short: how a ``fastest`` bullet names ``method`` ("hooks"); default the name.
    """

    id: str
    kind: str
    method: str
    against: str
    label: str
    measure: str = "time"
    limit: float | None = None
    against_text: str = "the floor"
    table: str = "trace"
    exclude: tuple[str, ...] = ()
    absent_label: str = ""
    short: str = ""


@dataclass(frozen=True)
class Cause:
    """The measured cause of a miss: for ``model`` ("*": every model), ``batch`` (None:
    every batch), target ``target`` and record set ``set`` (None: every set; a name for a
    cause that holds for that run only, e.g. one of the code before a fix)."""

    model: str
    batch: int | None
    target: str
    cause: str
    set: str | None = None


@dataclass(frozen=True)
class Summary:
    """One clause of the Targets section's opening sentence, shown when ``method`` was run;
    ``text`` may name target limits as ``{target id}``."""

    method: str
    text: str


@dataclass(frozen=True)
class TargetBook:
    """Every target, cause and summary of ``targets.json``."""

    targets: tuple[Target, ...]
    causes: tuple[Cause, ...] = ()
    summaries: tuple[Summary, ...] = field(default_factory=tuple)

    def cause(self, model: str, batch: int, target: str, record_set: str = "") -> str:
        """The recorded cause of a miss, most specific first: this set's before any set's,
        then (model, batch), (model, any batch), (any model, any batch)."""
        causes = {(c.set, c.model, c.batch, c.target): c.cause for c in self.causes}
        for where in (record_set, None):
            for key in ((model, batch), (model, None), ("*", None)):
                if (where, *key, target) in causes:
                    return causes[(where, *key, target)]
        return NOT_ANALYSED

    def intro(self, methods: Iterable[str]) -> str:
        """The opening sentence: the clauses of the methods that were run, limits filled in."""
        present = set(methods)
        limits = {target.id: target.limit for target in self.targets}
        clauses = [s.text.format(**limits) for s in self.summaries if s.method in present]
        return "; ".join(clauses) + ". Computed from the tables above."

    def lines(self, model: str, batch: int, group: Group, record_set: str = "") -> list[str]:
        """The bullets of one (model, batch) group of a record set: a title, then each
        judged target."""
        title = f"- **{model}, batch {batch}**"
        if not ok(group.get("floor")):
            return [f"{title}: no floor measurement, targets not evaluated"]
        lines = [f"{title}:"]
        for target in self.targets:
            if target.method in group:
                judge = JUDGES.get(target.kind)
                lines += judge(
                    target, group, lambda t=target: self.cause(model, batch, t.id, record_set)
                )
        return lines


def load_targets(path: Path = TARGETS_FILE) -> TargetBook:
    """Read a targets file (the format of ``targets.json``)."""
    data = json.loads(path.read_text())
    targets = tuple(
        Target(**{**entry, "exclude": tuple(entry.get("exclude", ()))}) for entry in data["targets"]
    )
    causes = tuple(Cause(**entry) for entry in data.get("causes", ()))
    summaries = tuple(Summary(**entry) for entry in data.get("summaries", ()))
    return TargetBook(targets, causes, summaries)


Judge = Callable[[Target, Group, Callable[[], str]], list[str]]
JUDGES: Registry[Judge] = Registry("target kind")


def measured(record: dict[str, Any] | None, measure: str) -> float | None:
    """A record's median time or peak memory, None unless it was measured."""
    if not ok(record):
        return None
    return record["median_s"] if measure == "time" else memory(record)


@JUDGES.register("ratio")
def judge_ratio(target: Target, group: Group, cause: Callable[[], str]) -> list[str]:
    """value = method / against (time or memory) <= limit; for memory, also each one's
    increase over its post-setup baseline (what the method itself allocated)."""
    record, other = group[target.method], group.get(target.against)
    value, base = measured(record, target.measure), measured(other, target.measure)
    ratio = value / base if value is not None and base else None
    head = f"  - {target.label}: "
    if ratio is None:
        line = f"{head}not measured"
    elif ratio <= target.limit:
        line = f"{head}{ratio:.2f}x {target.against_text}, within {target.limit}x: met"
    else:
        over = 100 * (ratio / target.limit - 1)
        line = (
            f"{head}{ratio:.2f}x {target.against_text}, above {target.limit}x by {over:.0f}%: "
            f"**missed**; {cause()}"
        )
    increase = record.get("rss_increase_mib")
    if target.measure == "memory" and ok(record) and ok(other) and increase is not None:
        line += (
            f" (memory above the post-setup baseline: {increase:.0f} MiB "
            f"against {target.against_text}'s {other['rss_increase_mib']:.0f} MiB)"
        )
    return [line]


@JUDGES.register("fastest")
def judge_fastest(target: Target, group: Group, cause: Callable[[], str]) -> list[str]:
    """Faster than every other timed method of ``table`` (the ``against`` floor and the
    ``exclude`` list left out); methods of the table that were not timed are listed."""
    record, short = group[target.method], target.short or target.method
    if not ok(record):
        return []
    left_out = {target.method, target.against, *target.exclude}
    rivals = [
        r for name, r in group.items() if name not in left_out and target.table in tables_of(r)
    ]
    timed = sorted((r for r in rivals if ok(r)), key=lambda r: r["median_s"])
    faster = [r for r in timed if r["median_s"] < record["median_s"]]
    lines = []
    if faster:
        names = ", ".join(
            f"{r['method']} ({short} takes {record['median_s'] / r['median_s']:.2f}x its time)"
            for r in faster
        )
        lines.append(f"  - {target.label}: **missed**, slower than {names}; {cause()}")
    elif timed:
        nearest = timed[0]
        lines.append(
            f"  - {target.label}: met against {len(timed)} timed method(s); the nearest, "
            f"{nearest['method']}, takes {nearest['median_s'] / record['median_s']:.2f}x "
            f"{short}' time"
        )
    absent = [f"{r['method']} ({status(r)})" for r in rivals if not ok(r)]
    if absent:
        lines.append(f"  - not timed here, so not compared: {', '.join(absent)}")
    return lines


@JUDGES.register("not_slower")
def judge_not_slower(target: Target, group: Group, cause: Callable[[], str]) -> list[str]:
    """method's time <= against's time (ratio at most 1), or why that was not compared."""
    record, other = group[target.method], group.get(target.against)
    if not ok(record) or other is None:
        return []
    if not ok(other):
        return [
            f"  - {target.absent_label}: {target.against_text} was not timed ({status(other)}: "
            f"{other.get('note')})"
        ]
    ratio = record["median_s"] / other["median_s"]
    if ratio <= 1:
        return [f"  - {target.label}: met ({ratio:.2f}x `{target.against}`'s time)"]
    return [f"  - {target.label}: **missed**, {ratio:.2f}x `{target.against}`'s time; {cause()}"]
