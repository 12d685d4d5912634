"""``fisher-mi report`` on a comparison folder: the section's rows against hand-computed means
and changes against ``none``, and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fisher_mi.experiments.compare import COLUMNS, HIT_COLUMNS
from fisher_mi.report import build_report

# (defense, params, seed, natural accuracy, top1, knn_sq, trainable fraction[, attack])
ROWS = [
    ("none", "", 0, 0.90, 0.80, 40.0, 1.0),
    ("none", "", 1, 0.92, 0.60, 44.0, 1.0),
    ("mid", "beta=0.01", 0, 0.88, 0.50, 60.0, 1.0),
    ("mid", "beta=0.01", 1, 0.86, 0.30, 64.0, 1.0),
    ("tl", "", 0, 0.89, 0.40, 50.0, 0.25),
    ("mid", "beta=0.01", 0, 0.88, 0.60, 70.0, 1.0, "gmi+sample"),
]


def write_comparison(folder: Path) -> Path:
    folder.mkdir(parents=True)
    table = pd.DataFrame(
        [
            {"defense": d, "params": p, "seed": s, "natural_accuracy": a,
             "attack": (*rest, "gmi")[0], "top1": t, "top5": None, "knn_sq": k,
             "trainable_fraction": f}
            for d, p, s, a, t, k, f, *rest in ROWS
        ],
        columns=list(COLUMNS),
    )  # fmt: skip
    table.to_csv(folder / "compare.csv", index=False)
    hits = pd.DataFrame(columns=list(HIT_COLUMNS))
    hits.to_csv(folder / "hits.csv", index=False)
    protocol = {"arch": "mcnn", "evaluator_arch": "scnn", "seeds": [0, 1], "attacks": ["gmi"],
                "settings": {"data": "mnist", "epochs": 3, "iterations": 100},
                "tl_auto_cutoffs": {"0": 2}, "mid_attacked_through": "mu"}  # fmt: skip
    (folder / "compare.json").write_text(json.dumps({"protocol": protocol}))
    return folder


def cells(lines: list[str], start: str) -> list[str]:
    row = next(line for line in lines if line.startswith(start))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_compare_section_by_hand(tmp_path: Path) -> None:
    folder = write_comparison(tmp_path / "compare")
    report, *figures = build_report([folder], out=tmp_path / "report")
    text = report.read_text()
    lines = text.splitlines()
    assert "seeds 0, 1; epochs 3, iterations 100; `tl` froze up to cutoff 2 (seed 0)" in text
    # mid: accuracy mean 0.87, top-1 mean 0.40, KNN mean 62; none: 0.91, 0.70
    mid = cells(lines, "| gmi | mid |")
    assert mid[2:5] == ["beta=0.01", "2", "1.000000"]
    assert mid[5].startswith("0.870000 [") and mid[6].startswith("0.400000 [")
    # paired by seed, d = (0.30, 0.30): of the 4 sign patterns only (+, +) reaches 0.60
    assert mid[7:] == ["62.000000", "-0.040000", "-0.300000", "0.2500"]
    tl = cells(lines, "| gmi | tl |")
    assert tl[2:5] == ["-", "1", "0.250000"]
    assert tl[5:7] == ["0.890000", "0.400000"]  # one seed: no interval
    assert tl[8:] == ["-0.020000", "-0.300000", "-"]  # one seed: no test
    none = cells(lines, "| gmi | none |")
    assert none[7:] == ["42.000000", "-", "-", "-"]
    # MID's sampled head against none's gmi: 0.88 - 0.91 and 0.60 - 0.70
    sampled = cells(lines, "| gmi+sample | mid |")
    assert sampled[5:] == ["0.880000", "0.600000", "70.000000", "-0.030000", "-0.100000", "-"]
    assert tmp_path / "report" / "figures" / "compare.png" in figures
