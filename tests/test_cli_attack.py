"""``fisher-mi attack`` and ``fisher-mi evaluate`` on bundled digits, end to end (tiny sizes)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from fisher_mi.attacks import build_gan, save_gan
from fisher_mi.cli import main
from fisher_mi.io import load_checkpoint
from fisher_mi.models import build_model, save_model

# 4 reconstructions in 512 evaluator dimensions: the Frechet distance warns, as it should.
pytestmark = pytest.mark.filterwarnings("ignore::fisher_mi.evaluate.metrics.FewSamplesWarning")

METRIC_KEYS = {
    "top1",
    "top5",
    "knn_sq_mean",
    "frechet",
    "natural_accuracy",
    "baselines",
    "evaluator",
    "protocol",
    "protocol_hash",
}


def run(argv: list[object]) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("attack")
    torch.manual_seed(0)
    save_model(build_model("mcnn", num_classes=5), root / "target.pt")
    save_model(build_model("scnn", num_classes=5), root / "evaluator.pt")
    save_model(build_model("mcnn", num_classes=5), root / "surrogate.pt")
    save_gan(build_gan("gmi", channels=1, image_size=32, preset="cpu"), root / "gan")
    return {
        "target": root / "target.pt",
        "evaluator": root / "evaluator.pt",
        "surrogate": root / "surrogate.pt",
        "gan": root / "gan",
        "root": root,
    }


def _attack(inputs: dict[str, Path], out: Path, *extra: object) -> tuple[int, str]:
    return run(
        [
            "attack",
            "--target",
            inputs["target"],
            "--gan",
            inputs["gan"],
            "--ids",
            "0-1",
            "--per-id",
            2,
            "--iters",
            3,
            "--data",
            "digits",
            "--out",
            out,
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def attacked(inputs: dict[str, Path]) -> Path:
    out = inputs["root"] / "run"
    code, stderr = _attack(inputs, out, "--evaluator", inputs["evaluator"])
    assert code == 0, stderr
    return out


def test_attack_writes_the_design_outputs(attacked: Path) -> None:
    images = sorted(p.relative_to(attacked).as_posix() for p in (attacked / "images").rglob("*"))
    assert [p for p in images if p.endswith(".png")] == [
        "images/0/0.png",
        "images/0/1.png",
        "images/1/0.png",
        "images/1/1.png",
    ]
    saved = load_checkpoint(attacked / "inversions.pt")
    assert set(saved) == {"images", "identities", "draws", "seeds", "latents", "target_confidence"}
    table = pd.read_csv(attacked / "attack.csv")
    assert list(table.columns) == [
        "identity",
        "draw",
        "seed",
        "target_confidence",
        "top1",
        "top5",
        "knn_sq",
    ]
    assert table["knn_sq"].notna().all()
    assert (attacked / "grid.png").is_file() and (attacked / "prior_only.pt").is_file()
    manifest = json.loads((attacked / "manifest.json").read_text())
    assert {"inversions.pt", "attack.csv", "grid.png", "metrics.json"} <= set(manifest["files"])


def test_metrics_hold_every_key(attacked: Path) -> None:
    metrics = json.loads((attacked / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert len(metrics["top1"]["per_draw"]) == 2
    assert metrics["baselines"]["prior_only"] is not None
    assert metrics["protocol"]["method"] == "gmi" and metrics["protocol"]["identities"] == [0, 1]


def test_evaluate_rescores_to_the_same_metrics(inputs: dict[str, Path], attacked: Path) -> None:
    out = inputs["root"] / "rescored"
    code, stderr = run(
        ["evaluate", attacked, "--evaluator", inputs["evaluator"], "--data", "digits", "--out", out]
    )
    assert code == 0, stderr
    first = json.loads((attacked / "metrics.json").read_text())
    again = json.loads((out / "metrics.json").read_text())
    for key in ("top1", "knn_sq_mean", "frechet", "protocol_hash"):
        assert again[key] == first[key], key


def test_resume_gives_the_same_images(inputs: dict[str, Path], attacked: Path) -> None:
    code, stderr = _attack(inputs, attacked, "--evaluator", inputs["evaluator"], "--resume")
    assert code == 0, stderr
    before = load_checkpoint(attacked / "batches" / "00000.pt")["tensors"]["images"]
    assert torch.equal(load_checkpoint(attacked / "inversions.pt")["images"][:4], before[:4])


def test_lomma_with_a_surrogate_runs(inputs: dict[str, Path]) -> None:
    out = inputs["root"] / "lomma"
    code, stderr = _attack(inputs, out, "--lomma", "--surrogate", inputs["surrogate"])
    assert code == 0, stderr
    protocol = json.loads((out / "metrics.json").read_text())["protocol"]
    assert protocol["logit_loss"] is True and protocol["feature_reg"] == 1.0


CASES = [
    pytest.param(["--ids", "3-9"], "outside the target's 5 classes", id="ids-outside"),
    pytest.param(["--method", "kedmi"], "needs a kedmi prior", id="wrong-prior-kind"),
    pytest.param(["--ids", "x"], "is not all, A-B or a,b,c", id="ids-not-numbers"),
    pytest.param(["--sample-head"], "lacks; drop --sample-head", id="sample-head-without-vib"),
]


@pytest.mark.parametrize(("extra", "says"), CASES)
def test_attack_errors_are_one_line(
    inputs: dict[str, Path], tmp_path: Path, extra: list[str], says: str
) -> None:
    code, stderr = _attack(inputs, tmp_path / "out", *extra)
    assert code == 2 and stderr.count("\n") == 1 and says in stderr, stderr


def test_evaluator_without_data_is_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    code, stderr = run(
        [
            "attack",
            "--target",
            inputs["target"],
            "--gan",
            inputs["gan"],
            "--evaluator",
            inputs["evaluator"],
            "--out",
            tmp_path / "o",
        ]
    )
    assert code == 2 and "give --data too" in stderr
