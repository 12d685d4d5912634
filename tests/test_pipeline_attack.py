"""End to end on bundled digits, at CI size (cpu preset): a GMI prior trained on the public
digits, an undefended target, an evaluator, the attack; the attack must beat the same attack
with an untrained generator (paired: same seeds, same latents at the start) on the target's
confidence, and metrics.json must hold every key."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from fisher_mi.attacks import build_gan, save_gan
from fisher_mi.cli import main
from tests.test_cli_attack import METRIC_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::fisher_mi.evaluate.metrics.FewSamplesWarning")

TRAIN = ["--data", "digits", "--epochs", 3, "--batch-size", 32, "--validation-fraction", 0.1]
ATTACK = ["--method", "gmi", "--ids", "all", "--per-id", 2, "--iters", 100, "--seed", 1]


def run(argv: list[object]) -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    assert code == 0, stderr.getvalue()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    run(
        [
            "train-gan",
            "--data",
            "digits",
            "--kind",
            "gmi",
            "--preset",
            "cpu",
            "--steps",
            150,
            "--batch-size",
            32,
            "--out",
            root / "gan",
        ]
    )
    run(["train", *TRAIN, "--arch", "mcnn", "--out", root / "target"])
    run(["train", *TRAIN, "--arch", "scnn", "--role", "evaluator", "--out", root / "evaluator"])
    torch.manual_seed(0)
    save_gan(build_gan("gmi", channels=1, image_size=32, preset="cpu"), root / "untrained")
    for prior in ("gan", "untrained"):
        run(
            [
                "attack",
                "--target",
                root / "target" / "model.pt",
                "--gan",
                root / prior,
                *ATTACK,
                "--data",
                "digits",
                "--evaluator",
                root / "evaluator" / "model.pt",
                "--out",
                root / f"attack-{prior}",
            ]
        )
    return root


def _metrics(root: Path, prior: str) -> dict:
    return json.loads((root / f"attack-{prior}" / "metrics.json").read_text())


def test_metrics_hold_every_key(pipeline: Path) -> None:
    assert set(_metrics(pipeline, "gan")) >= METRIC_KEYS


def test_attack_with_a_trained_prior_beats_an_untrained_one(pipeline: Path) -> None:
    trained = torch.load(pipeline / "attack-gan" / "inversions.pt", weights_only=True)
    untrained = torch.load(pipeline / "attack-untrained" / "inversions.pt", weights_only=True)
    assert torch.equal(trained["identities"], untrained["identities"])  # paired rows
    assert trained["target_confidence"].mean() > untrained["target_confidence"].mean()
