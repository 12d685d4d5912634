"""Files that are not checkpoints: whatever bytes a file holds, reading it either succeeds or
raises one ``CheckpointError`` whose one-line message names the file, never an ``IndexError``,
``KeyError`` or ``struct.error`` from inside the unpickler.

The byte strings are seeded (truncations of real checkpoints in both of torch's formats, byte
flips of them, random bytes, text), plus hypothesis for arbitrary short strings.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fisher_mi.errors import CheckpointError
from fisher_mi.io import load_checkpoint

PAYLOAD = {
    "format": "test/1",
    "state_dict": {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(3, dtype=torch.int64)},
    "meta": {"epoch": 3, "names": ["a", "b"], "ratio": 0.5},
}
TEXTS = [
    b"this is not a checkpoint\n",
    b"",
    b"\n",
    b"PK",
    b"PK\x03\x04",
    b"\x80",
    b"\x80\x02",
    b"\x80\x02\x8a\x0a",
    b'{"state_dict": {}}\n',
    b"#!/bin/sh\necho hi\n",
    b"\x89PNG\r\n\x1a\n",
    "é€😀\n".encode(),
]


def saved(**options: bool) -> bytes:
    """``PAYLOAD`` as ``torch.save`` writes it (``options``: the legacy, non-zip format)."""
    buffer = io.BytesIO()
    torch.save(PAYLOAD, buffer, **options)
    return buffer.getvalue()


def cuts(whole: bytes, rng: np.random.Generator) -> list[bytes]:
    """Every prefix up to 64 bytes and 60 random ones: a copy or download cut short."""
    lengths = sorted({*range(64), *rng.integers(0, len(whole), 60).tolist()})
    return [whole[:length] for length in lengths]


def flips(whole: bytes, rng: np.random.Generator) -> list[bytes]:
    """40 copies with one bit flipped each: a damaged disk or transfer."""
    damaged = []
    for _ in range(40):
        flipped = bytearray(whole)
        flipped[rng.integers(len(whole))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(flipped))
    return damaged


def random_bytes(rng: np.random.Generator) -> list[bytes]:
    """100 strings of 1 to 199 random bytes."""
    return [rng.bytes(int(rng.integers(1, 200))) for _ in range(100)]


ZIP, LEGACY = saved(), saved(_use_new_zipfile_serialization=False)
FAMILIES = {
    "text": lambda rng: TEXTS,
    "zip-cut": lambda rng: cuts(ZIP, rng),
    "zip-flip": lambda rng: flips(ZIP, rng),
    "legacy-cut": lambda rng: cuts(LEGACY, rng),
    "legacy-flip": lambda rng: flips(LEGACY, rng),
    "random": random_bytes,
}


def misread(path: Path, data: bytes) -> str | None:
    """What went wrong reading ``data`` from ``path``, or None: ``load_checkpoint`` must
    return, or raise a CheckpointError whose one-line message names the file."""
    path.write_bytes(data)
    try:
        load_checkpoint(path)
    except CheckpointError as err:
        message = str(err)
        return None if "\n" not in message and str(path) in message else message
    except Exception as err:  # the defect under test: anything else escaping the reader
        return f"{type(err).__name__}: {err}"
    return None


def test_both_formats_of_the_real_checkpoint_load(tmp_path: Path) -> None:
    for name, whole in (("zip", ZIP), ("legacy", LEGACY)):
        (tmp_path / name).write_bytes(whole)
        loaded = load_checkpoint(tmp_path / name)
        assert torch.equal(loaded["state_dict"]["w"], PAYLOAD["state_dict"]["w"])
        assert loaded["meta"] == PAYLOAD["meta"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_damaged_or_foreign_file_reads_or_is_one_checkpoint_error(
    tmp_path: Path, family: str
) -> None:
    cases = FAMILIES[family](np.random.default_rng(sorted(FAMILIES).index(family)))
    problems = {
        data[:24]: problem
        for data in cases
        if (problem := misread(tmp_path / "a.pt", data)) is not None
    }
    assert not problems, f"{len(problems)} of {len(cases)}: {problems}"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=48) | st.text(max_size=48).map(str.encode))
def test_any_short_bytes_read_or_are_one_checkpoint_error(tmp_path: Path, data: bytes) -> None:
    assert misread(tmp_path / "b.pt", data) is None


def test_text_file_is_a_checkpoint_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "torch.save file" in message, message
