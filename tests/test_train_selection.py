"""Tests for the choice of the kept epoch (``fisher_mi.training.selection``): the highest
validation accuracy, ties to the lower validation loss, then to the later epoch, and
``history.csv`` saying which epoch was kept and why.

The rules are checked on histories written out by hand, and once through ``train`` on data so
easy that the validation accuracy ties at 100% (as on the 16 validation images of AT&T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from fisher_mi.io import read_table
from fisher_mi.models import build_model
from fisher_mi.training import TrainConfig, train
from fisher_mi.training.state import Progress

NAN = math.nan


@dataclass(frozen=True)
class Selection:
    id: str
    accuracy: list[float]  # validation accuracy of epochs 1, 2, ...
    loss: list[float]  # validation loss
    kept: int
    because: list[str]  # kept_because, one per epoch


SELECTIONS = [
    Selection(
        "highest-accuracy",
        [0.8, 0.9, 0.85],
        [0.5, 0.6, 0.2],
        2,
        [
            "lower validation accuracy than epoch 2",
            "highest validation accuracy",
            "lower validation accuracy than epoch 2",
        ],
    ),
    Selection(
        "tie-to-lower-loss",
        [1.0, 1.0, 1.0],
        [0.3, 0.1, 0.2],
        2,
        [
            "validation accuracy tied with epoch 2; higher validation loss",
            "highest validation accuracy, tied with epochs 1, 3; lowest validation loss of them",
            "validation accuracy tied with epoch 2; higher validation loss",
        ],
    ),
    Selection(
        "tie-in-both-to-later",
        [1.0, 1.0, 0.5],
        [0.1, 0.1, 0.05],
        2,
        [
            "validation accuracy and loss tied with epoch 2, which is later",
            "highest validation accuracy and lowest loss, tied with epoch 1; the latest of them",
            "lower validation accuracy than epoch 2",
        ],
    ),
    Selection(
        "nan-loss-loses-a-tie",
        [1.0, 1.0],
        [0.4, NAN],
        1,
        [
            "highest validation accuracy, tied with epoch 2; lowest validation loss of them",
            "validation accuracy tied with epoch 1; higher validation loss",
        ],
    ),
    Selection(
        "no-validation",
        [NAN, NAN],
        [NAN, NAN],
        2,
        ["not the last epoch; no validation part", "the last epoch; no validation part"],
    ),
]


@pytest.mark.parametrize("case", SELECTIONS, ids=lambda case: case.id)
def test_the_kept_epoch_and_why(case: Selection) -> None:
    progress = Progress()
    for epoch, (accuracy, loss) in enumerate(zip(case.accuracy, case.loss, strict=True), 1):
        progress.record({"epoch": epoch, "validation_accuracy": accuracy, "validation_loss": loss})
    assert progress.best_epoch == case.kept
    table = progress.table()
    assert table["kept"].tolist() == [epoch == case.kept for epoch in table["epoch"]]
    assert table["kept_because"].tolist() == case.because


def separable(count: int, seed: int) -> TensorDataset:
    """Two classes of flat grey images, 0.2 and 0.8 plus a little noise: learnt at once."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    images = 0.2 + 0.6 * labels.float()[:, None, None, None]
    noise = 0.05 * torch.randn(count, 1, 32, 32, generator=generator)
    return TensorDataset(images + noise, labels)


def test_a_validation_accuracy_tie_goes_to_the_lowest_validation_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mcnn", num_classes=2)
    config = TrainConfig(epochs=4, batch_size=8, lr=0.05, validation_fraction=0.25)
    result = train(model, separable(32, seed=1), config=config, out=tmp_path)
    history = read_table(tmp_path / "history.csv")
    best = history["validation_accuracy"].max()
    tied = history[history["validation_accuracy"] == best]
    assert len(tied) > 1  # the case of the issue: several epochs at the top accuracy
    expected = int(tied["epoch"][tied["validation_loss"].idxmin()])
    assert result.best_epoch == expected
    assert history["kept"].tolist() == [epoch == expected for epoch in history["epoch"]]
