"""The overlap check between private data and an attacker's public data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import Subset

from fisher_mi.data import load_dataset
from fisher_mi.data.overlap import check_disjoint, overlap
from fisher_mi.errors import DataError


def _faces(root: Path, people: dict[str, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for person, count in people.items():
        (root / person).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / person / f"{i}.png")
    return root


def test_bundled_splits_are_disjoint() -> None:
    assert not overlap(load_dataset("digits", "private"), load_dataset("digits", "public"))


def test_shared_people_and_copied_images_are_counted(tmp_path: Path) -> None:
    private = _faces(tmp_path / "private", {"ann": 2, "bob": 2}, seed=0)
    public = _faces(tmp_path / "public", {"bob": 1, "cid": 1}, seed=1)
    (public / "cid" / "copy.png").write_bytes((private / "ann" / "0.png").read_bytes())
    found = overlap(load_dataset(f"folder:{private}", "x"), load_dataset(f"folder:{public}", "x"))
    assert found.names == ("bob",) and found.images == 1
    with pytest.raises(DataError, match=r"1 identical image\(s\) and 1 shared identity \(bob\)"):
        check_disjoint(
            load_dataset(f"folder:{private}", "x"), load_dataset(f"folder:{public}", "x"), what="x"
        )


def test_positional_names_are_not_identities(tmp_path: Path) -> None:
    first = _faces(tmp_path / "a", {"0": 1, "1": 1}, seed=2)
    second = _faces(tmp_path / "b", {"0": 1, "1": 1}, seed=3)
    assert not overlap(load_dataset(f"folder:{first}", "x"), load_dataset(f"folder:{second}", "x"))


def test_subsets_compare_only_their_images() -> None:
    private = load_dataset("digits", "private")
    assert overlap(Subset(private, [0, 1, 2]), Subset(private, [2, 3])).images == 1
