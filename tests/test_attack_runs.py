"""Attack runs in a folder: per-batch checkpoints, resume, and the files an attack writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fisher_mi.attacks.inversion import ATTACKS
from fisher_mi.attacks.outputs import (
    TABLE_COLUMNS,
    attack_table,
    grid_image,
    write_images,
    write_inversions,
)
from fisher_mi.attacks.runner import run_attack
from fisher_mi.data import load_dataset
from fisher_mi.errors import ConfigError
from fisher_mi.io import load_checkpoint
from tests.test_attacks import CLASSES, gan, target

RUN = {"per_identity": 2, "iterations": 4, "batch_size": 3, "seed": 5}


def _attack():
    return ATTACKS.get("gmi")(target(), gan("gmi"), **RUN)


def test_resumed_attack_gives_the_uninterrupted_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, protocol = run_attack(_attack(), range(CLASSES), out=tmp_path / "whole")
    attack = _attack()
    calls = []
    original = attack.run_batch

    def interrupted(batch, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(batch, **kwargs)

    monkeypatch.setattr(attack, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_attack(attack, range(CLASSES), out=tmp_path / "cut")
    assert len(list((tmp_path / "cut" / "batches").iterdir())) == 2
    resumed, again = run_attack(_attack(), range(CLASSES), out=tmp_path / "cut", resume=True)
    assert torch.equal(resumed.images, whole.images) and again == protocol
    assert resumed.identities.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_other_settings_or_no_resume_are_refused(tmp_path: Path) -> None:
    run_attack(_attack(), range(2), out=tmp_path)
    with pytest.raises(ConfigError, match="--resume"):
        run_attack(_attack(), range(2), out=tmp_path)
    other = ATTACKS.get("gmi")(target(), gan("gmi"), **{**RUN, "iterations": 5})
    with pytest.raises(ConfigError, match="other settings"):
        run_attack(other, range(2), out=tmp_path, resume=True)


def test_images_are_a_folder_dataset_of_the_identities(tmp_path: Path) -> None:
    inversion, _ = run_attack(_attack(), [1, 3], out=tmp_path)
    paths = write_images(inversion, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "images/1/0.png",
        "images/1/1.png",
        "images/3/0.png",
        "images/3/1.png",
    ]
    data = load_dataset(f"folder:{tmp_path / 'images'}", "inverted", image_size=4, channels=1)
    assert sorted(int(data[i][1]) for i in range(len(data))) == [1, 1, 3, 3]
    # the PNGs are the float images rounded to 8 bits
    x, _ = data[0]
    assert (x - inversion.images[0]).abs().max() <= 0.5 / 255 + 1e-6


def test_inversions_file_holds_the_design_keys(tmp_path: Path) -> None:
    inversion, _ = run_attack(_attack(), [0], out=tmp_path)
    saved = load_checkpoint(write_inversions(inversion, tmp_path))
    assert set(saved) == {"images", "identities", "draws", "seeds", "latents", "target_confidence"}
    assert torch.equal(saved["images"], inversion.images)


def test_table_and_grid(tmp_path: Path) -> None:
    inversion, _ = run_attack(_attack(), [0, 2], out=tmp_path)
    table = attack_table(inversion, {"top1": torch.tensor([True, False, True, True])})
    assert tuple(table.columns) == TABLE_COLUMNS
    assert table["top1"].tolist() == [True, False, True, True]
    assert table["knn_sq"].isna().all()
    private = {0: torch.ones(1, 4, 4)}
    grid = grid_image(inversion, private)
    assert grid.size == (3 * 6, 2 * 6)  # (private + 2 draws) x 2 identities, 4 px + 2 gap
    assert grid_image(inversion).size == (2 * 6, 2 * 6)  # no private images
