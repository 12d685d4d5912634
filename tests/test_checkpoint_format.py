"""Readable but malformed fisher_mi checkpoints: each structural defect is one CheckpointError
naming the file and the field, raised before anything is built, from ``load_model`` and from
the command line (exit status 2, one line on stderr).

Every case is a valid ``save_model`` payload of a 5-class mcnn with one field edited, written
with ``torch.save`` as a real file would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fisher_mi import cli
from fisher_mi.errors import CheckpointError
from fisher_mi.models import build_model, load_model
from fisher_mi.models.checkpoint import FORMAT


def payload(**edits: Any) -> dict[str, Any]:
    """A valid fisher_mi checkpoint payload with ``edits`` applied."""
    torch.manual_seed(0)
    valid = {
        "format": FORMAT,
        "arch": "mcnn",
        "arch_kwargs": {"num_classes": 5},
        "state_dict": build_model("mcnn", num_classes=5).state_dict(),
        "meta": {"data": "digits"},
    }
    return {**valid, **edits}


MALFORMED: list[Any] = [
    pytest.param({"arch_kwargs": ["num_classes", 5]}, "arch_kwargs", id="arch_kwargs-list"),
    pytest.param({"arch_kwargs": [("num_classes", 5)]}, "arch_kwargs", id="arch_kwargs-pairs"),
    pytest.param({"arch_kwargs": {3: 5}}, "arch_kwargs", id="arch_kwargs-int-key"),
    pytest.param({"arch_kwargs": {"num_classes": -3}}, "num_classes", id="num_classes-negative"),
    pytest.param({"arch_kwargs": {"num_classes": "7"}}, "num_classes", id="num_classes-text"),
    pytest.param({"arch_kwargs": {"num_classes": True}}, "num_classes", id="num_classes-bool"),
    pytest.param({"arch_kwargs": {"in_channels": 2.5}}, "in_channels", id="in_channels-float"),
    pytest.param({"state_dict": [1, 2]}, "state_dict", id="state_dict-list"),
    pytest.param(
        {"state_dict": {"fc_layer.weight": [1.0]}}, "state_dict", id="state_dict-list-value"
    ),
    pytest.param({"state_dict": {7: torch.zeros(2)}}, "state_dict", id="state_dict-int-key"),
    pytest.param({"meta": [1, 2]}, "meta", id="meta-list"),
    pytest.param({"meta": "digits"}, "meta", id="meta-text"),
    pytest.param({"arch": 3}, "arch", id="arch-int"),
    pytest.param({"arch": ["mcnn"]}, "arch", id="arch-list"),
    pytest.param({"arch": "resnet9000"}, "'resnet9000'", id="arch-unknown"),
    pytest.param({"format": "fisher_mi-gan/1"}, "'fisher_mi-gan/1'", id="format-gan"),
    pytest.param({"format": "fisher_mi/9"}, "'fisher_mi/9'", id="format-newer"),
    pytest.param({"format": 1}, "format", id="format-int"),
    pytest.param({"format": ["fisher_mi/1"]}, "format", id="format-list"),
]


def write(tmp_path: Path, edits: dict[str, Any]) -> Path:
    path = tmp_path / "model.pt"
    torch.save(payload(**edits), path)
    return path


def test_the_unedited_payload_loads(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, {}))
    assert model.fc_layer.out_features == 5


@pytest.mark.parametrize(("edits", "names"), MALFORMED)
def test_malformed_checkpoint_is_one_checkpoint_error(
    tmp_path: Path, edits: dict[str, Any], names: str
) -> None:
    path = write(tmp_path, edits)
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and names in message, message


@pytest.mark.parametrize(("edits", "names"), MALFORMED)
def test_cli_refuses_malformed_checkpoint_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    edits: dict[str, Any],
    names: str,
) -> None:
    path = write(tmp_path, edits)
    monkeypatch.chdir(tmp_path)  # the default output folder is relative
    assert cli.main(["profile", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fisher-mi: error: checkpoint ") and err.count("\n") == 1, err
    assert names in err, err
