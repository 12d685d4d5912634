"""Tests for ``fisher_mi.training.provenance``: ``model.pt`` and ``checkpoint.pt`` say what a
model was trained on and for (DESIGN.md, Outputs), by default from the training data, and the
record refuses values it cannot write.

Runs on tiny slices of the bundled ``digits`` with ``mcnn`` (one or two optimiser steps).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from fisher_mi.data import load_dataset
from fisher_mi.errors import ConfigError
from fisher_mi.io import load_checkpoint
from fisher_mi.models import build_model
from fisher_mi.training import Provenance, TrainConfig, pretrain_public, train

TINY = TrainConfig(epochs=1, batch_size=16, max_steps=1)
META_KEYS = {"data", "public", "class_names", "role", "pretrained_on", "init", "defense", "plan"}
DIGIT_NAMES = ["0", "1", "2", "3", "4"]


@pytest.fixture(scope="module")
def private() -> Dataset:
    """40 private digits, 8 of each class."""
    return Subset(load_dataset("digits", "private"), range(0, 720, 18))


def mcnn(num_classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mcnn", num_classes=num_classes)


def test_model_pt_meta_says_where_the_model_comes_from_by_default(
    private: Dataset, tmp_path: Path
) -> None:
    train(mcnn(), private, config=TINY, out=tmp_path)
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert set(meta) >= META_KEYS
    expected = {"data": None, "public": None, "class_names": DIGIT_NAMES, "role": "target"}
    assert {key: meta[key] for key in expected} == expected
    assert (meta["pretrained_on"], meta["init"], meta["defense"]) == (None, None, None)


def test_a_given_provenance_is_written_to_model_pt_and_the_checkpoint(
    private: Dataset, tmp_path: Path
) -> None:
    given = Provenance(
        data="digits",
        public="digits",
        role="evaluator",
        pretrained_on="digits",
        init=tmp_path / "init.pt",  # a path is kept as text
    )
    train(mcnn(), private, config=TINY, out=tmp_path, provenance=given)
    expected = {**given.to_dict(), "class_names": DIGIT_NAMES, "init": str(tmp_path / "init.pt")}
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert {key: meta[key] for key in expected} == expected
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["training"]["provenance"]
    assert saved == expected


def test_public_pretraining_names_the_public_classes(tmp_path: Path) -> None:
    public = Subset(load_dataset("digits", "public"), range(0, 890, 22))
    given = Provenance(data="digits", public="digits")
    pretrain_public(
        mcnn(), public, num_classes=5, config=TINY, out=tmp_path, provenance=given
    )
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert (meta["data"], meta["public"]) == ("digits", "digits")
    assert meta["class_names"] == ["5", "6", "7", "8", "9"]  # the pre-training head's classes


def test_a_teacher_path_is_kept_as_text(tmp_path: Path) -> None:
    given = Provenance(role="surrogate", teacher=tmp_path / "t.pt")
    assert given.to_dict()["teacher"] == str(tmp_path / "t.pt")


def test_data_without_class_names_leave_them_unknown() -> None:
    data = TensorDataset(torch.rand(4, 1, 32, 32), torch.arange(4))
    assert Provenance().for_data(data).class_names is None


PROVENANCE_GUARDS = [
    ("unknown-role", {"role": "victim"}, "role must be one of target, evaluator, surrogate"),
    ("data-not-text", {"data": 3}, "provenance data must be text"),
    ("empty-class-names", {"class_names": ()}, "class_names must be a non-empty"),
    ("teacher-not-text", {"teacher": 1}, "provenance teacher must be text"),
    ("teacher-sha256-not-text", {"teacher_sha256": b"ab"}, "provenance teacher_sha256 must be"),
]


@pytest.mark.parametrize(
    ("fields", "message"),
    [case[1:] for case in PROVENANCE_GUARDS],
    ids=[case[0] for case in PROVENANCE_GUARDS],
)
def test_provenance_guards(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Provenance(**fields)


def test_class_names_of_another_count_are_refused(private: Dataset) -> None:
    wrong = Provenance(class_names=("5", "6", "7", "8", "9", "x"))
    with pytest.raises(ConfigError, match="names 6 classes but the training data have 5"):
        train(mcnn(), private, config=TINY, provenance=wrong)
