"""``fisher-mi demo --quick`` end to end on the bundled digits: the layout, the report rebuilt
byte for byte by ``fisher-mi report``, the report's numbers re-scored by ``fisher-mi evaluate``
to 1e-6, and a second run that reuses every step."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from fisher_mi.cli import main

LAYOUT = (
    "public/model.pt",
    "scratch/model.pt",
    "tl/model.pt",
    "tl/fisher.csv",
    "tl/plan.json",
    "evaluator/model.pt",
    "gan/gmi/generator.pt",
    "attacks/scratch-gmi/metrics.json",
    "attacks/tl-gmi/inversions.pt",
    "fisher/scratch/fisher.csv",
    "fisher/tl/fisher.csv",
    "figures/fisher_tasks.png",
    "figures/attacks.png",
    "report.md",
    "manifest.json",
)
TOLERANCE = 1e-6  # the report prints 6 decimals: rounding moves a value by at most 5e-7


def _run(argv: list[str]) -> str:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    assert code == 0, stdout.getvalue()[-2000:]
    return stdout.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    _run(["demo", "--quick", "--data", "digits", "--out", str(out)])
    return out


def test_the_demo_writes_the_design_layout(demo: Path) -> None:
    missing = [name for name in LAYOUT if not (demo / name).is_file()]
    assert not missing
    report = (demo / "report.md").read_text()
    assert "Demo scale, not the reference" in report
    for heading in ("## Models", "## Attacks", "## Undefended against TL-DMI", "## Fisher"):
        assert heading in report


def test_report_rebuilds_report_md_byte_for_byte(demo: Path, tmp_path: Path) -> None:
    before = (demo / "report.md").read_bytes()
    _run(["report", str(demo)])
    assert (demo / "report.md").read_bytes() == before
    _run(["report", str(demo), "--out", str(tmp_path / "elsewhere")])
    assert (tmp_path / "elsewhere" / "report.md").read_bytes() == before


def _report_row(report: str, run: str) -> list[str]:
    row = next(
        line
        for line in report.splitlines()
        if line.startswith("| `") and f"`{run}`" in line.split("|")[2]
    )
    return [cell.strip() for cell in row.strip("|").split("|")]


def _close(shown: str, value: float | None) -> bool:
    if value is None:
        return shown == "n/a"
    return abs(float(shown) - value) <= TOLERANCE


@pytest.mark.parametrize("target", ["scratch", "tl"])
def test_evaluate_rescores_the_reports_numbers(demo: Path, tmp_path: Path, target: str) -> None:
    run = f"attacks/{target}-gmi"
    out = tmp_path / "rescored"
    _run(
        [
            "evaluate",
            str(demo / run),
            "--evaluator",
            str(demo / "evaluator" / "model.pt"),
            "--data",
            "digits",
            "--out",
            str(out),
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    cells = _report_row((demo / "report.md").read_text(), run)
    natural, top1, top5, knn = cells[3:7]
    assert _close(natural, metrics["natural_accuracy"])
    assert _close(top1, metrics["top1"]["mean"])
    assert _close(top5, metrics["top5"] and metrics["top5"]["mean"])
    assert _close(knn, metrics["knn_sq_mean"])
    assert _close(cells[8], metrics["baselines"]["prior_only"]["top1"]["mean"])


def test_a_second_run_reuses_every_step(demo: Path) -> None:
    before = (demo / "report.md").read_bytes()
    printed = _run(["demo", "--quick", "--data", "digits", "--out", str(demo)])
    assert "0 of" in printed and "[    ran]" not in printed and "[resumed]" not in printed
    assert (demo / "report.md").read_bytes() == before
