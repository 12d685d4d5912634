"""RESULTS.md from the saved records: a header, two tables per group, the targets.

The page renders every record set under ``results/``: the records directly in it first (the
last full run), then each named set (``results/<set>/``, a partial run kept apart so that it
does not replace the full run's cases) in its own section. Within a set, records are grouped
by (device, model, batch); each group gets the trace and the diagonal table, and the set ends
with its targets (``targets.TargetBook``). Each set's ``--note`` is kept in
``results/notes.json``, so ``--report-only`` rewrites the page as it was.

Other benchmarks (``bench_attacks.py``) keep their own sections as markdown files in
``results/extra/`` (not a record set); the page ends with each of them, by file name, so
rewriting it never drops them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fisher_bench.cases import MODELS
from fisher_bench.methods import METHODS
from fisher_bench.records import Record, contended, fmt, load_records, memory, ok, status, tables_of
from fisher_bench.settings import (
    FLOOR_METHOD,
    NOTES_FILE,
    OTHER_CORES_THRESHOLD,
    REFERENCE,
    REFERENCE_METHOD,
    RESULTS,
    TABLES,
)
from fisher_bench.targets import TargetBook, load_targets
from fisher_mi.io import write_json, write_text

Group = dict[str, Record]
# results/extra/: other benchmarks' sections (*.md, appended as they are) and their raw numbers.
EXTRA = "extra"


@dataclass(frozen=True)
class RecordSet:
    """The records of one folder under ``results/``: ``name`` "" for ``results/`` itself."""

    name: str
    records: list[Record]
    note: str = ""


def distinct(records: Iterable[Record], key: str) -> str:
    """The distinct values of ``key`` over the records, sorted, comma-separated."""
    return ", ".join(sorted({str(r.get(key)) for r in records}))


def contention_line(records: list[Record]) -> str:
    """How busy other processes kept the machine during the timed repetitions."""
    timed = [r for r in records if ok(r)]
    others = [r["other_cpu_cores"] for r in timed if r.get("other_cpu_cores") is not None]
    if not others:
        return "- CPU use by other processes: not recorded"
    flagged = sum(contended(r) for r in timed)
    return (
        f"- other processes kept {min(others):.2f} to {max(others):.2f} cores busy during the "
        f"timed repetitions; a `*` after the median marks the {flagged} of {len(timed)} timed "
        f"cases where they used more than {OTHER_CORES_THRESHOLD} cores: those timings are "
        "inflated and noisy (`min_s` and `other_cpu_cores` are in the JSON files)"
    )


def peer_versions(records: list[Record]) -> str:
    """The peer libraries' versions the records were measured with."""
    seen: dict[str, set[str]] = {}
    for record in records:
        for name, version in (record.get("peers") or {}).items():
            seen.setdefault(name, set()).add(str(version))
    if not seen:
        return "peers: not recorded"
    return ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(seen.items()))


def row(record: Record, floor: Record | None, on_gpu: bool) -> str:
    """One table row: times and memory, each also over the floor's, the error, the note."""
    method = record["method"]
    if not ok(record):
        note = record.get("note") or record.get("error") or status(record)
        cells = " — |" * (7 if on_gpu else 6)
        return f"| {method} |{cells} {note} |"
    time_ratio = record["median_s"] / floor["median_s"] if ok(floor) else None
    floor_memory = memory(floor) if floor else None
    memory_ratio = memory(record) / floor_memory if floor_memory and memory(record) else None
    device_cell = f" {fmt(record.get('peak_device_mib'), '.0f')} |" if on_gpu else ""
    return (
        f"| {method} | {fmt(record['median_s'], '.4f')}{' *' if contended(record) else ''} "
        f"| {fmt(time_ratio, '.2f')} "
        f"| {fmt(record['peak_rss_mib'], '.0f')} | {fmt(record['rss_increase_mib'], '.0f')} |"
        f"{device_cell} {fmt(memory_ratio, '.2f')} "
        f"| {fmt(record.get('max_rel_error'), '.1e')} | {record.get('note') or ''} |"
    )


def method_order(record: Record) -> tuple[int, str]:
    """Rows in ``METHODS`` registration order; unknown (retired) methods last, by name."""
    order = {name: i for i, name in enumerate(METHODS.names())}
    return order.get(record["method"], len(order)), record["method"]


def rounding_floor(group: Group) -> str:
    """A sentence giving the float32 loop's own error: the model's float32 rounding floor."""
    loop = group.get(REFERENCE_METHOD)
    if not ok(loop) or loop.get("max_rel_error") is None:
        return ""
    return (
        f" Float32 rounding floor: `{REFERENCE_METHOD}` itself, in float32, is off by "
        f"{loop['max_rel_error']:.1e} from its float64 run; errors of that order are the "
        "float32 forward's, not the method's (README, Reading the errors)."
    )


def header_lines(records: list[Record], note: str) -> list[str]:
    """The bullets opening a record set: machine, versions, settings, guards, contention."""
    lines = [
        f"- CPU: {distinct(records, 'cpu')} ({distinct(records, 'cpu_count')} logical cores); "
        f"torch threads: {distinct(records, 'threads')}",
        f"- torch {distinct(records, 'torch')}, fisher_mi {distinct(records, 'fisher_mi')}, "
        f"Python {distinct(records, 'python')}; {peer_versions(records)}",
        f"- devices: {distinct(records, 'device')}; dtype {distinct(records, 'dtype')}; "
        f"timed repeats {distinct(records, 'repeats')} (per model, below) after "
        f"{distinct(records, 'warmup')} warm-up; vmap chunk size "
        f"{distinct(records, 'vmap_chunk_size')}",
        f"- guards: a case is killed after {distinct(records, 'case_timeout_s')} s; methods "
        "that hold every per-sample gradient at once are skipped above "
        f"{distinct(records, 'max_per_sample_gb')} GiB of them; a worker's allocations are "
        f"capped at {distinct(records, 'memory_limit_gb')} GiB",
        f"- last result: {max(r['finished'] for r in records)}",
        contention_line(records),
        "- inputs are fixed-seed random tensors (N(0, 1) pixels, uniform labels; seed "
        f"{distinct(records, 'seed')}) on a fixed-seed randomly initialised model in eval mode: "
        "the benchmark measures cost, and agreement is checked numerically against the float64 "
        f"`{REFERENCE_METHOD}` reference on the same model and batch.",
        "- `x floor` is the median time over the floor's; `x floor memory` the peak RSS over "
        "the floor's (peak device memory on CUDA).",
    ]
    return [*lines, f"- {note}"] if note else lines


def table_lines(table: str, group: Group, on_gpu: bool, heading: str) -> list[str]:
    """One of a group's two tables (``TABLES`` key ``table``), rows in method order."""
    rows = [r for r in group.values() if table in tables_of(r)]
    extra, aligned = (" peak device MiB |", " ---: |") if on_gpu else ("", "")
    return [
        "",
        f"{heading} {TABLES[table]}",
        "",
        f"| method | median s | x floor | peak RSS MiB | RSS increase MiB |{extra}"
        " x floor memory | max rel. error | note |",
        f"| --- | ---: | ---: | ---: | ---: |{aligned} ---: | ---: | --- |",
        *(row(r, group.get(FLOOR_METHOD), on_gpu) for r in sorted(rows, key=method_order)),
    ]


def group_lines(key: tuple[str, str, int], group: Group, depth: int) -> list[str]:
    """A (device, model, batch) group: its heading, size, repeats, rounding floor, and the
    tables that have a method besides the floor (a partial run may fill only one)."""
    device, model, batch = key
    # Any record that built the model knows its size (a timed-out one does not).
    sized = next((r for r in group.values() if r.get("n_params")), {})
    n_params = sized.get("n_params") and sized["n_params"] / 1e6
    lines = [
        "",
        f"{'#' * depth} {model}, batch {batch} ({device})",
        "",
        f"{fmt(n_params, '.2f')}M parameters in {sized.get('n_layers') or '—'} layers; "
        f"{distinct(group.values(), 'repeats')} timed repeats.{rounding_floor(group)}",
    ]
    for table in TABLES:
        if any(table in tables_of(r) for name, r in group.items() if name != FLOOR_METHOD):
            lines += table_lines(table, group, device.startswith("cuda"), "#" * (depth + 1))
    return lines


def grouped(records: list[Record]) -> dict[tuple[str, str, int], Group]:
    """Records by (device, model, batch), in device, ``MODELS`` and batch order."""
    groups: dict[tuple[str, str, int], Group] = {}
    for record in records:
        key = (record["device"], record["model"], record["batch"])
        groups.setdefault(key, {})[record["method"]] = record
    model_order = {name: i for i, name in enumerate(MODELS.names())}

    def order(key: tuple[str, str, int]) -> tuple:
        device, model, batch = key
        return device, model_order.get(model, len(model_order)), model, batch

    return {key: groups[key] for key in sorted(groups, key=order)}


def set_lines(record_set: RecordSet, book: TargetBook, depth: int) -> list[str]:
    """A record set's header bullets, its groups and its Targets section."""
    lines = header_lines(record_set.records, record_set.note)
    targets: list[str] = []
    for (device, model, batch), group in grouped(record_set.records).items():
        lines += group_lines((device, model, batch), group, depth)
        targets += book.lines(model, batch, group, record_set.name)
    methods = [record["method"] for record in record_set.records]
    return [*lines, "", f"{'#' * depth} Targets", "", book.intro(methods), "", *targets]


def render_report(record_sets: Sequence[RecordSet], book: TargetBook | None = None) -> str:
    """RESULTS.md: the title, then each record set (the unnamed one first, as the page's own
    body; each named one in a section of its own, one heading level down)."""
    book = book or load_targets()
    lines = [
        "# Fisher trace and diagonal benchmark",
        "",
        "Generated by `benchmarks/bench_fisher.py` from the JSON files in `results/`; "
        "see `README.md` for what each column means and how each peer was made to run.",
        "",
    ]
    for record_set in record_sets:
        if record_set.name:
            lines += [
                "",
                f"## Record set `{record_set.name}`",
                "",
                f"From the JSON files in `{RESULTS}/{record_set.name}/`.",
                "",
            ]
        lines += set_lines(record_set, book, 3 if record_set.name else 2)
    return "\n".join(lines) + "\n"


def notes_path(out: Path) -> Path:
    """Where every record set's ``--note`` is kept."""
    return out / RESULTS / NOTES_FILE


def read_notes(out: Path) -> dict[str, str]:
    """The kept notes, by set name ("" for ``results/`` itself)."""
    path = notes_path(out)
    return json.loads(path.read_text()) if path.is_file() else {}


def save_note(out: Path, set_name: str, note: str) -> None:
    """Keep ``note`` as the header line of record set ``set_name`` (replacing its old one)."""
    write_json(notes_path(out), {**read_notes(out), set_name: note})


def record_sets(out: Path) -> list[RecordSet]:
    """Every record set with records under ``out/results``: itself first, then its sub-folders
    by name (the reference cache left out)."""
    root = out / RESULTS
    notes = read_notes(out)
    folders = [("", root)] + [
        (path.name, path)
        for path in sorted(root.iterdir() if root.is_dir() else ())
        if path.is_dir() and path.name not in (REFERENCE, EXTRA)
    ]
    sets = [RecordSet(name, load_records(folder), notes.get(name, "")) for name, folder in folders]
    return [record_set for record_set in sets if record_set.records]


def extra_sections(out: Path) -> str:
    """Every ``out/results/extra/*.md``, sorted by name, each after a blank line."""
    paths = sorted((out / RESULTS / EXTRA).glob("*.md"))
    return "".join("\n" + path.read_text().rstrip("\n") + "\n" for path in paths)


def write_report(out: Path) -> Path:
    """Rewrite ``out/RESULTS.md`` from every record set under ``out/results``, then append
    the other benchmarks' sections (``extra_sections``)."""
    return write_text(out / "RESULTS.md", render_report(record_sets(out)) + extra_sections(out))
