"""``fisher-mi report`` on a sweep folder: the section's rows against hand-computed means, the
rules' landings, the verdict, the figure, and the same bytes from the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fisher_mi.errors import DataError
from fisher_mi.experiments.sweep_table import COLUMNS, HIT_COLUMNS
from fisher_mi.report import build_report
from fisher_mi.rundir import MANIFEST

# (cutoff or None, seed, trainable fraction, natural accuracy, top1, knn_sq, rule)
ROWS = [
    (None, 0, 1.0, 0.90, 0.80, 40.0, ""),
    (None, 1, 1.0, 0.92, 0.60, 44.0, ""),
    (0, 0, 1.0, 0.90, 0.60, 50.0, "ratio"),
    (0, 1, 1.0, 0.90, 0.60, 54.0, "ratio"),
    (2, 0, 0.5, 0.89, 0.20, 70.0, "auto"),
    (2, 1, 0.5, 0.89, 0.40, 74.0, "auto"),
]


def write_sweep(folder: Path) -> Path:
    folder.mkdir(parents=True)
    table = pd.DataFrame(
        [
            {"cutoff": c, "block": None if c is None else c // 2, "trainable_fraction": f,
             "seed": s, "natural_accuracy": a, "attack": "gmi", "top1": t, "top5": None,
             "knn_sq": k, "rule": r}
            for c, s, f, a, t, k, r in ROWS
        ],
        columns=list(COLUMNS),
    )  # fmt: skip
    table.astype({"cutoff": "Int64", "block": "Int64"}).to_csv(folder / "sweep.csv", index=False)
    # per (cutoff, seed): 5 identities with one draw each, top1 matching the row's rate
    hits = [
        {"cutoff": c, "seed": s, "attack": "gmi", "identity": i, "draw": 0,
         "top1": int(i < round(t * 5))}
        for c, s, _f, _a, t, _k, _r in ROWS
        for i in range(5)
    ]  # fmt: skip
    frame = pd.DataFrame(hits, columns=list(HIT_COLUMNS)).astype({"cutoff": "Int64"})
    frame.to_csv(folder / "hits.csv", index=False)
    rules = {str(s): {"auto": {"lands": 2}, "ratio": {"lands": 0}} for s in (0, 1)}
    summary = {
        "verdicts": {
            "gmi": {"verdict": "auto is not significantly worse than the best point",
                    "n_seeds": 2, "p_value": 1.0, "alpha": 0.05, "mean_difference": 0.0,
                    "smallest_p_value": 0.25, "can_reject": False}
        },
        "rules": rules,
        "protocol": {"arch": "mcnn", "evaluator_arch": "scnn", "cutoffs": [0, 2],
                     "block_starts": [0, 2, 4], "seeds": [0, 1], "attacks": ["gmi"],
                     "settings": {"data": "mnist", "epochs": 3, "iterations": 100}},
    }  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(summary))
    return folder


def test_sweep_section_by_hand(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    report, *figures = build_report([sweep], out=tmp_path / "report")
    text = report.read_text()
    lines = text.splitlines()
    # cutoff 2: accuracy 0.89 both seeds (no spread), top-1 mean 0.30, KNN mean 72
    row = next(line for line in lines if line.startswith("| gmi | 2 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:4] == ["0.500000", "2"]
    assert cells[4] == "0.890000 [0.890000, 0.890000]"
    assert cells[5].startswith("0.300000 [")
    assert cells[6:] == ["72.000000", "auto"]
    undefended = next(line for line in lines if line.startswith("| gmi | undefended |"))
    assert "| 42.000000 |" in undefended  # KNN mean of 40 and 44
    # best point: cutoff 2 (accuracy 0.89 >= 0.91 - 0.03, drop 0.70 - 0.30 = 0.40)
    assert "Best point: cutoff 2 (top-1 0.300000 against 0.700000 undefended" in text
    ratio = next(line for line in lines if line.startswith("| ratio |"))
    assert "| +0.300000 |" in ratio  # mean of (0.6 - 0.2) and (0.6 - 0.4)
    assert "Verdict on `auto`: **auto is not significantly worse" in text
    assert "with 2 seeds the smallest attainable p is 0.25" in text
    assert tmp_path / "report" / "figures" / "sweep.png" in figures
    again = build_report([sweep], out=tmp_path / "report")[0].read_bytes()
    assert again == text.encode()


def test_an_unfinished_sweep_is_refused(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "sweep")
    # the command's manifest, written before the rows it will list: the rows are not vouched for
    manifest = {"format": "fisher_mi-run/1", "files": {}, "runs": [], "versions": {}}
    (sweep / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"sweep\.csv is not listed"):
        build_report([sweep], out=tmp_path / "report")
