"""``build_report`` on hand-written runs: the undefended-against-TL comparison (inconclusive
when the undefended attack beats neither chance nor its prior), refusal of mixed protocols,
and the numbers it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from fisher_mi.errors import ConfigError
from fisher_mi.evaluate import protocol_hash
from fisher_mi.evaluate.scoring import BEATS_PRIOR
from fisher_mi.evaluate.scoring import INCONCLUSIVE as NO_VERDICT
from fisher_mi.io import write_table
from fisher_mi.models import build_model, save_model
from fisher_mi.report import INCONCLUSIVE, build_report
from fisher_mi.rundir import sha256


def _model(
    folder: Path, *, seed: int, pretrained_on: str | None, defense: dict | None = None
) -> str:
    torch.manual_seed(seed)
    save_model(
        build_model("mcnn", num_classes=5),
        folder / "model.pt",
        meta={"role": "target", "pretrained_on": pretrained_on, "defense": defense},
    )
    history = pd.DataFrame(
        {"epoch": [1, 2], "validation_accuracy": [0.8, 0.9], "test_accuracy": [0.75, 0.85],
         "kept": [False, True]}
    )  # fmt: skip
    write_table(folder / "history.csv", history)
    return sha256(folder / "model.pt")


def _metrics(
    model_sha: str, top1: float, *, beats: bool, iterations: int = 50, **settings: Any
) -> dict[str, Any]:
    protocol = {
        **settings,
        "method": "gmi",
        "identities": [0, 1, 2, 3, 4],
        "per_identity": 20,
        "seed": 0,
        "iterations": iterations,
        "batch_size": 64,
        "target": {"path": "elsewhere/model.pt", "sha256": model_sha},
    }
    return {
        "top1": {"per_draw": [top1], "mean": top1, "std": None},
        "top5": None,
        "knn_sq_mean": 12.5,
        "natural_accuracy": 0.85,
        "baselines": {
            "chance": {"top1": 0.2, "top5": None},
            "prior_only": {"top1": {"mean": 0.2}, "top5": None, "knn_sq_mean": 20.0},
            "verdict": BEATS_PRIOR if beats else NO_VERDICT,
        },
        "significance": {"p_value": 1e-6 if beats else 0.4},
        "evaluator": {"arch": "scnn", "accuracy_private_test": 0.9, "accuracy_private_train": 1.0},
        "protocol": protocol,
        "protocol_hash": protocol_hash(protocol),
    }


def _runs(
    root: Path, *, beats: bool, tl_iterations: int = 50, model_seed: int = 0, **tl_settings: Any
) -> Path:
    """An undefended and a TL model (weights drawn from ``model_seed`` and the next seed), each
    attacked; ``tl_settings``: attack settings only the TL model's attack records."""
    plain = _model(root / "scratch", seed=model_seed, pretrained_on=None)
    tl = _model(root / "tl", seed=model_seed + 1, pretrained_on="digits")
    for name, sha, top1, iterations, settings in (
        ("scratch-gmi", plain, 0.9, 50, {}),
        ("tl-gmi", tl, 0.6, tl_iterations, tl_settings),
    ):
        folder = root / "attacks" / name
        folder.mkdir(parents=True)
        metrics = _metrics(sha, top1, beats=beats, iterations=iterations, **settings)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return root


def _comparison(report: str) -> str:
    section = report.split("## Undefended against TL-DMI")[1]
    return next(line for line in section.splitlines() if line.startswith("| gmi"))


def test_a_conclusive_comparison_states_the_change(tmp_path: Path) -> None:
    build_report([_runs(tmp_path, beats=True)])
    row = _comparison((tmp_path / "report.md").read_text())
    assert "| `scratch` | 0.900000 | `tl` | 0.600000 |" in row
    assert "TL-DMI changes top-1 by -0.300000" in row


def test_an_undefended_attack_at_its_baselines_makes_it_inconclusive(tmp_path: Path) -> None:
    build_report([_runs(tmp_path, beats=False)])
    assert INCONCLUSIVE in _comparison((tmp_path / "report.md").read_text())


def test_mixed_protocols_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="differ in iterations"):
        build_report([_runs(tmp_path, beats=True, tl_iterations=99)])
    assert not (tmp_path / "report.md").exists()


def test_a_setting_a_run_predates_counts_at_its_default(tmp_path: Path) -> None:
    """The undefended run's protocol lacks ``sample_head`` and ``clip_latent`` (as one saved
    before they existed): equal to a run recording their defaults, refused against a run
    recording another value."""
    build_report([_runs(tmp_path / "same", beats=True, sample_head=False, clip_latent=False)])
    assert "TL-DMI changes top-1" in _comparison((tmp_path / "same" / "report.md").read_text())
    with pytest.raises(ConfigError, match="differ in clip_latent"):
        build_report([_runs(tmp_path / "other", beats=True, clip_latent=True)])


def test_the_attack_table_prints_the_saved_numbers(tmp_path: Path) -> None:
    build_report([_runs(tmp_path, beats=True)])
    report = (tmp_path / "report.md").read_text()
    row = next(line for line in report.splitlines() if "`attacks/scratch-gmi`" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:10] == ["`scratch`", "`attacks/scratch-gmi`", "gmi", "0.850000", "0.900000",
                          "n/a", "12.500000", "0.200000", "0.200000", "20.000000"]  # fmt: skip
    model_row = next(line for line in report.splitlines() if line.startswith("| `tl`"))
    assert "| 2 | 2 | 0.900000 | 0.850000 |" in model_row  # epochs, kept epoch, accuracies


def test_several_folders_need_an_out_and_empty_ones_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--out"):
        build_report([tmp_path, tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="hold no"):
        build_report([tmp_path / "empty"])


@pytest.mark.parametrize(
    ("protocol", "name"),
    [
        ({"method": "gmi"}, "gmi"),
        ({"method": "gmi", "logit_loss": True, "feature_reg": 1.0}, "gmi+lomma"),
        ({"method": "kedmi", "sample_head": True}, "kedmi+sample"),
        ({"method": "gmi", "logit_loss": True, "feature_reg": 0.0}, "gmi"),
    ],
)
def test_attack_runs_are_named_by_their_options(protocol: dict, name: str) -> None:
    from fisher_mi.report.runs import _method

    assert _method(protocol) == name


def test_pairs_stay_within_a_group_and_skip_regularised_models(tmp_path: Path) -> None:
    """Two seeds of a sweep-like folder: each seed's undefended model is paired with its own
    seed's TL model only; a MID model is listed with its defense and never called undefended."""
    for seed in (0, 1):
        _runs(tmp_path / f"seed-{seed}", beats=True, model_seed=10 * seed)
    mid = _model(
        tmp_path / "seed-0" / "mid",
        seed=2,
        pretrained_on=None,
        defense={"name": "mid", "params": {"beta": 0.003}},
    )
    attack = tmp_path / "seed-0" / "attacks" / "mid-gmi"
    attack.mkdir()
    metrics = _metrics(mid, 0.5, beats=True)
    (attack / "metrics.json").write_text(json.dumps(metrics))
    build_report([tmp_path])
    report = (tmp_path / "report.md").read_text()
    section = report.split("## Undefended against TL-DMI")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| gmi")]
    assert rows == [
        f"| gmi | `seed-{seed}/scratch` | 0.900000 | `seed-{seed}/tl` | 0.600000 | "
        "TL-DMI changes top-1 by -0.300000 |"
        for seed in (0, 1)
    ]
    model_row = next(line for line in report.splitlines() if line.startswith("| `seed-0/mid`"))
    assert "| mid beta=0.003 |" in model_row
