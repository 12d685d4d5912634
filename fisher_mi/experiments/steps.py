"""Resumable experiment steps: a stage whose outputs are reused when nothing it depends on
changed.

A ``Step`` has a name, a folder, a config (plain JSON data) and the names of the steps it
reads. Its *key* is

    sha256(json({"config": config, "inputs": {name: sha256(name's manifest.json)},
                 "version": fisher_mi.__version__}))

so a step is redone when its own settings change, when any input was redone (a new manifest,
with new file hashes and times), or when fisher_mi changes; nothing else invalidates it.

``run_steps`` runs each step inside a ``rundir.RunFolder`` whose record holds the key: the
folder's ``manifest.json`` is written as "incomplete" when the step starts and complete, with
every output's sha256, when it ends. For each step, in order:

- reused: the manifest is complete, records the same key, and every file it lists is there
  with its sha256 (a step with a hand-edited or missing output is run again from the start);
- resumed: the manifest records the same key but is incomplete (an interrupted run): the
  step's function is called with ``resume=True`` and continues from its own checkpoint
  where it has one (training, GAN training, attack batches);
- run: anything else. A folder left by a step with another key is emptied first (its files
  belong to other settings); a folder holding files but no step manifest is refused, since it
  is not ours to delete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fisher_mi._version import __version__
from fisher_mi.errors import ConfigError
from fisher_mi.rundir import MANIFEST, RunFolder, read_manifest, sha256

REUSED, RESUMED, RAN = "reused", "resumed", "ran"


@dataclass(frozen=True)
class Step:
    """One stage of an experiment.

    Attributes:
        name: unique within the experiment, e.g. ``scratch`` or ``attacks/tl-gmi``.
        folder: where it writes (its own folder; its manifest is ``folder/manifest.json``).
        config: what determines its outputs, as plain JSON data (numbers, strings, lists,
            dicts); part of the key.
        run: ``run(folder, resume)`` does the work and returns the files it wrote; with
            ``resume`` it continues its own interrupted run where it can.
        inputs: names of earlier steps whose outputs it reads; their manifests are part of
            the key.
    """

    name: str
    folder: Path
    config: Mapping[str, Any]
    run: Callable[[Path, bool], Iterable[Path]]
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepRecord:
    """What happened to one step: ``reused``, ``resumed`` or ``ran``, and in how long."""

    name: str
    folder: Path
    key: str
    state: str
    seconds: float


@dataclass
class StepRun:
    """The steps done so far: each step's record by name."""

    records: dict[str, StepRecord] = field(default_factory=dict)

    def manifest(self, name: str) -> Path:
        """The manifest of a finished step."""
        return self.records[name].folder / MANIFEST


def step_key(step: Step, done: StepRun) -> str:
    """The step's key (module docstring); its inputs must be done."""
    missing = [name for name in step.inputs if name not in done.records]
    if missing:
        raise ConfigError(
            f"step {step.name!r} reads {', '.join(missing)}, which did not run before it; "
            "list the steps in the order they depend on each other"
        )
    payload = {
        "config": step.config,
        "inputs": {name: sha256(done.manifest(name)) for name in step.inputs},
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _last_run(folder: Path) -> dict[str, Any] | None:
    manifest = read_manifest(folder)
    runs = (manifest or {}).get("runs") or [None]
    return runs[-1] if isinstance(runs[-1], dict) else None


def _intact(folder: Path) -> bool:
    """Every file the manifest lists is there with its recorded sha256."""
    files = read_manifest(folder)["files"]  # type: ignore[index]
    return all(
        (folder / name).is_file() and sha256(folder / name) == entry.get("sha256")
        for name, entry in files.items()
    )


def step_state(folder: Path, key: str) -> str:
    """``reused``, ``resumed`` or ``ran`` for a step of ``key`` whose folder is ``folder``."""
    last = _last_run(folder)
    if last is None or last.get("key") != key:
        return RAN
    if not last.get("complete"):
        return RESUMED
    return REUSED if _intact(folder) else RAN


def _clear(step: Step) -> None:
    """Empty a folder written by a step with other settings; refuse anyone else's files."""
    folder = step.folder
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    last = _last_run(folder)
    if last is None or last.get("step") != step.name:
        raise ConfigError(
            f"{folder} holds files that step {step.name!r} did not write; move them away or "
            "choose another output folder"
        )
    shutil.rmtree(folder)


def _say(record: StepRecord) -> None:
    print(f"[{record.state:>7}] {record.name} ({record.seconds:.1f} s)", flush=True)


def run_steps(
    steps: Sequence[Step],
    *,
    report: Callable[[StepRecord], None] | None = _say,
) -> StepRun:
    """Run, resume or reuse each step in order (module docstring); return what happened.

    Args:
        steps: in dependency order (each after the steps it reads).
        report: called with each step's record when it is done (default: one printed line;
            None: silent).

    Returns:
        The records by step name; a step that ran has its wall-clock seconds written into its
        manifest's run record (``seconds``) as well.
    """
    done = StepRun()
    names = [step.name for step in steps]
    if len(set(names)) != len(names):
        raise ConfigError(f"step names must be unique, got {names}")
    for step in steps:
        key = step_key(step, done)
        state = step_state(step.folder, key)
        start = time.perf_counter()
        if state != REUSED:
            if state == RAN:
                _clear(step)
            record = {"step": step.name, "key": key, "config": dict(step.config)}
            with RunFolder(step.folder, record=record) as held:
                written = list(step.run(step.folder, state == RESUMED))
                held.record["seconds"] = round(time.perf_counter() - start, 3)
                held.finish(written)
        done.records[step.name] = StepRecord(
            step.name, step.folder, key, state, time.perf_counter() - start
        )
        if report is not None:
            report(done.records[step.name])
    return done
