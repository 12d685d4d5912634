"""Saved runs read back for a report: models (``history.csv``, ``plan.json``, ``model.pt``),
attacks (``metrics.json``), Fisher tables (``fisher.csv``), cutoff sweeps (``sweep.csv``,
``hits.csv``, ``sweep.json``), comparisons of defenses (``compare.csv``, ``compare.json``) and
step timings (manifests).

Each file is read only as its folder's manifest vouches for it (``rundir.check_listed``), so a
report never shows the numbers of an interrupted run. Runs are named by their folder relative
to the run directory given (``scratch``, ``attacks/tl-gmi``), prefixed by that directory's name
when several are given. An attack is tied to the model it attacked by the sha256 of
``model.pt`` its protocol records, not by a path, so a run folder read on another machine is
still understood.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from fisher_mi.attacks.inversion import AttackSettings
from fisher_mi.errors import DataError
from fisher_mi.evaluate import protocol_hash
from fisher_mi.experiments.compare import COMPARE, COMPARE_CSV, COMPARE_JSON
from fisher_mi.experiments.compare_config import params_text
from fisher_mi.experiments.demo import DEMO_RECORD
from fisher_mi.experiments.stages import METHOD_OPTIONS, with_option
from fisher_mi.experiments.sweep_table import HITS_CSV, SWEEP, SWEEP_CSV, SWEEP_JSON, read_tables
from fisher_mi.io import load_checkpoint, read_table
from fisher_mi.rundir import MANIFEST, check_listed, read_manifest, sha256

# protocol entries naming what is attacked with what: they differ between the targets of one
# comparison by design; every other entry must agree for a comparison to be made
PER_TARGET = ("target", "gan", "surrogates")


@dataclass(frozen=True)
class ModelRun:
    """A trained classifier: its history, the kept epoch and the freeze plan it trained under."""

    name: str
    role: str
    pretrained_on: str | None
    history: pd.DataFrame
    kept: pd.Series
    frozen: int
    layers: int
    model_sha256: str | None
    defense: str | None = None  # the training-time defense, as ``mid beta=0.003``; None: plain

    @property
    def defended(self) -> bool:
        """TL-DMI: pre-trained on public data, or trained with layers frozen."""
        return self.pretrained_on is not None or self.frozen > 0

    @property
    def group(self) -> str:
        """The folder holding the model's folder (``seed-0`` for ``seed-0/tl``): the models
        of one demo, sweep seed or comparison seed, which the report pairs with each other."""
        return self.name.rpartition("/")[0]


@dataclass(frozen=True)
class AttackRun:
    """An attack run: its ``metrics.json`` and the model it attacked (None: not found)."""

    name: str
    method: str
    model: str | None
    metrics: dict[str, Any]

    @property
    def comparison_hash(self) -> str:
        """``protocol_hash`` of the protocol less what names the target (``PER_TARGET``)."""
        protocol = self.metrics["protocol"]
        return protocol_hash({k: v for k, v in protocol.items() if k not in PER_TARGET})


@dataclass(frozen=True)
class FisherRun:
    """A Fisher table and its record (``fisher.json``)."""

    name: str
    table: pd.DataFrame
    record: dict[str, Any]


@dataclass(frozen=True)
class SweepRun:
    """A cutoff sweep: its rows (``sweep.csv``), per-image hits (``hits.csv``) and summary
    (``sweep.json``: the verdict per attack, where each rule landed per seed, the protocol)."""

    name: str
    table: pd.DataFrame
    hits: pd.DataFrame
    summary: dict[str, Any]


@dataclass(frozen=True)
class CompareRun:
    """A comparison of defenses: its rows (``compare.csv``) and protocol (``compare.json``)."""

    name: str
    table: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class Runs:
    """Everything a report shows, read from the saved files."""

    models: list[ModelRun] = field(default_factory=list)
    attacks: list[AttackRun] = field(default_factory=list)
    fisher: list[FisherRun] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[SweepRun] = field(default_factory=list)
    comparisons: list[CompareRun] = field(default_factory=list)
    demo: dict[str, Any] | None = None


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(check_listed(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); rerun the step that wrote it") from None


def _name(folder: Path, root: Path, prefix: str) -> str:
    relative = folder.relative_to(root).as_posix()
    return "/".join(part for part in (prefix, relative) if part and part != ".")


def _files(root: Path, name: str) -> list[Path]:
    """``name`` files below ``root`` (sorted, so a report lists runs in a fixed order)."""
    return sorted(path for path in root.rglob(name) if path.is_file())


def _meta(model_path: Path) -> dict[str, Any]:
    """``model.pt``'s meta (role, pretrained_on, ...); empty without the file."""
    if not model_path.is_file():
        return {}
    payload = load_checkpoint(check_listed(model_path))
    return dict(payload.get("meta") or {}) if isinstance(payload, dict) else {}


def _defense(meta: dict[str, Any]) -> str | None:
    """``NAME k=v,...`` of the defense a checkpoint's meta records; None for plain training."""
    defense = meta.get("defense") or {}
    if not defense.get("name"):
        return None
    return f"{defense['name']} {params_text((defense.get('params') or {}).items())}".strip()


def _model_run(history_path: Path, root: Path, prefix: str) -> ModelRun:
    folder = history_path.parent
    history = read_table(check_listed(history_path))
    kept_rows = history[history["kept"].astype(bool)] if "kept" in history else history.tail(1)
    kept = (kept_rows if len(kept_rows) else history).iloc[-1]
    plan_path = folder / "plan.json"
    plan = _json(plan_path) if plan_path.is_file() else {}
    model_path = folder / "model.pt"
    meta = _meta(model_path)
    return ModelRun(
        name=_name(folder, root, prefix),
        role=str(meta.get("role") or "target"),
        pretrained_on=meta.get("pretrained_on"),
        history=history,
        kept=kept,
        frozen=int(plan.get("cutoff", 0)),
        layers=len(plan.get("layers", [])),
        model_sha256=sha256(check_listed(model_path)) if model_path.is_file() else None,
        defense=_defense(meta),
    )


def _method(protocol: dict[str, Any]) -> str:
    """The method as the demo and compare name it: ``gmi``, ``gmi+lomma`` (logit loss and
    regulariser), ``gmi+sample`` (MID's head queried by sampling)."""
    method = str(protocol.get("method"))
    for option, settings in METHOD_OPTIONS.items():
        if all(protocol.get(key) for key in settings):
            method = with_option(method, option)
    return method


def _with_setting_defaults(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol with each attack setting it does not record at the setting's default.

    A setting is only ever added with a default that keeps the earlier behaviour (``sample_head``
    came after the first recorded runs, which all queried mu), so a run saved before the
    setting existed ran at that default, and compares with a newer run that records it."""
    defaults = {f.name: f.default for f in fields(AttackSettings) if f.default is not MISSING}
    return {**defaults, **protocol}


def _step_timings(root: Path, prefix: str) -> list[dict[str, Any]]:
    """Each step's seconds, as its manifest recorded them when it ran."""
    rows = []
    for path in _files(root, MANIFEST):
        runs = (read_manifest(path.parent) or {}).get("runs", [])
        last = runs[-1] if runs else {}
        if "step" in last and "seconds" in last:
            rows.append({"step": _name(path.parent, root, prefix), "seconds": last["seconds"]})
    return rows


def _sweep_run(path: Path, root: Path, prefix: str) -> SweepRun:
    """The sweep whose ``sweep.csv`` is ``path``, each of its files as the manifest vouches."""
    folder = path.parent
    for name in (SWEEP_CSV, HITS_CSV):
        check_listed(folder / name)
    table, hits = read_tables(folder, SWEEP)
    return SweepRun(_name(folder, root, prefix), table, hits, _json(folder / SWEEP_JSON))


def _compare_run(path: Path, root: Path, prefix: str) -> CompareRun:
    """The comparison whose ``compare.csv`` is ``path``, as its manifest vouches."""
    folder = path.parent
    for name in (COMPARE_CSV, HITS_CSV):
        check_listed(folder / name)
    table, _hits = read_tables(folder, COMPARE)
    return CompareRun(_name(folder, root, prefix), table, _json(folder / COMPARE_JSON))


def read_runs(run_dirs: Sequence[Path]) -> Runs:
    """Read every model, attack, Fisher table and step timing below ``run_dirs``."""
    runs = Runs()
    for root in run_dirs:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root} is not a folder; give folders written by fisher-mi")
        prefix = root.name if len(run_dirs) > 1 else ""
        runs.models += [  # a classifier's history: a GAN prior's has other columns
            _model_run(path, root, prefix)
            for path in _files(root, "history.csv")
            if (path.parent / "model.pt").is_file()
        ]
        for path in _files(root, "fisher.csv"):
            record_path = path.parent / "fisher.json"
            record = _json(record_path) if record_path.is_file() else {}
            table = read_table(check_listed(path))
            runs.fisher.append(FisherRun(_name(path.parent, root, prefix), table, record))
        for path in _files(root, "metrics.json"):
            metrics = _json(path)
            metrics["protocol"] = _with_setting_defaults(metrics["protocol"])
            runs.attacks.append(
                AttackRun(
                    _name(path.parent, root, prefix), _method(metrics["protocol"]), None, metrics
                )
            )
        runs.sweeps += [_sweep_run(path, root, prefix) for path in _files(root, SWEEP_CSV)]
        runs.comparisons += [_compare_run(path, root, prefix) for path in _files(root, COMPARE_CSV)]
        runs.steps += _step_timings(root, prefix)
        if (root / DEMO_RECORD).is_file() and len(run_dirs) == 1:
            runs.demo = _json(root / DEMO_RECORD)
    by_sha = {model.model_sha256: model.name for model in runs.models}
    runs.attacks = [
        AttackRun(
            a.name,
            a.method,
            by_sha.get((a.metrics["protocol"].get("target") or {}).get("sha256")),
            a.metrics,
        )
        for a in runs.attacks
    ]
    return runs
