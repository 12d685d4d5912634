"""Tests for fisher_mi.io: atomic writes of text, JSON, tables and checkpoints.

Each writer is a case: it must create missing parent folders, write the content, leave no
temporary file behind, and (through ``write_atomic``) leave an existing file untouched when
writing fails half-way.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from fisher_mi.io import (
    load_checkpoint,
    read_table,
    save_checkpoint,
    write_atomic,
    write_json,
    write_table,
    write_text,
)

TABLE = pd.DataFrame(
    {"layer": ["feature.0", "fc_layer"], "depth": [0, 1], "fisher_trace": [0.5, 2.0]}
)
PAYLOAD = {"format": "test/1", "state_dict": {"w": torch.arange(6.0).view(2, 3)}, "meta": {}}


@dataclass(frozen=True)
class Writer:
    """A writer of ``io`` and how to read back what it wrote."""

    write: Callable[[Path], Path]
    read: Callable[[Path], Any]
    expected: Any


def _same_table(path: Path) -> bool:
    pd.testing.assert_frame_equal(read_table(path), TABLE)
    return True


def _same_payload(path: Path) -> bool:
    loaded = load_checkpoint(path)
    assert loaded["format"] == PAYLOAD["format"] and loaded["meta"] == {}
    assert torch.equal(loaded["state_dict"]["w"], PAYLOAD["state_dict"]["w"])
    return True


WRITERS = [
    pytest.param(
        Writer(lambda p: write_text(p, "héllo\nworld\n"), Path.read_text, "héllo\nworld\n"),
        id="write_text",
    ),
    pytest.param(
        Writer(
            lambda p: write_json(p, {"a": [1, 2.5], "b": None, "path": Path("x")}),
            lambda p: json.loads(p.read_text()),
            {"a": [1, 2.5], "b": None, "path": "x"},
        ),
        id="write_json",
    ),
    pytest.param(Writer(lambda p: write_table(p, TABLE), _same_table, True), id="write_table"),
    pytest.param(
        Writer(lambda p: save_checkpoint(p, PAYLOAD), _same_payload, True), id="save_checkpoint"
    ),
]


def entries(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("writer", WRITERS)
def test_writer_creates_parent_folders(tmp_path: Path, writer: Writer) -> None:
    target = tmp_path / "a" / "b" / "out.file"
    assert writer.write(target) == target
    assert writer.read(target) == writer.expected


@pytest.mark.parametrize("writer", WRITERS)
def test_writer_leaves_no_temporary_file(tmp_path: Path, writer: Writer) -> None:
    writer.write(tmp_path / "out.file")
    writer.write(tmp_path / "out.file")  # overwriting too
    assert entries(tmp_path) == ["out.file"]


@pytest.mark.parametrize("writer", WRITERS)
def test_writer_replaces_an_existing_file(tmp_path: Path, writer: Writer) -> None:
    (tmp_path / "out.file").write_text("old content that is longer than some of the new ones\n")
    writer.write(tmp_path / "out.file")
    assert writer.read(tmp_path / "out.file") == writer.expected


def test_written_file_has_the_usual_permissions(tmp_path: Path) -> None:
    # Regression (was a bug in fisher_mi/io.py atomic_path): tempfile.mkstemp creates the
    # temporary file with mode 0o600 and os.replace kept it, so every CSV, JSON, figure and
    # checkpoint was readable by its owner only, unlike a file written with open() (0o666
    # less the umask), and colleagues on a shared cluster could not read the results.
    write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert oct(stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)) == oct(
        stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    )


def test_table_round_trip_keeps_text_columns_text(tmp_path: Path) -> None:
    # Fixed bug: fisher_mi/io.py read_table is a bare pd.read_csv, so a table written by write_table
    # does not read back as written: layer names of an nn.Sequential ("0", "2") become
    # integers, fisher="true" (from --fisher true) becomes the bool True, and a split named
    # "NA" becomes NaN. Fix: read the text columns as text, e.g. pd.read_csv(path,
    # dtype={"layer": str, "kind": str, "split": str, "fisher": str, "backend": str},
    # keep_default_na=False).
    table = pd.DataFrame(
        {
            "layer": ["0", "2"],
            "depth": [0, 1],
            "split": ["NA", "private"],
            "fisher": ["true", "true"],
            "fisher_trace": [0.25, 1.5],
        }
    )
    write_table(tmp_path / "fisher.csv", table)
    pd.testing.assert_frame_equal(read_table(tmp_path / "fisher.csv"), table, check_dtype=False)


class WriterFailed(Exception):
    pass


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_failed_write_leaves_existing_file_untouched(tmp_path: Path, binary: bool) -> None:
    target = tmp_path / "out.file"
    target.write_text("old\n")

    def write_half_then_fail(stream: Any) -> None:
        stream.write(b"new, half written" if binary else "new, half written")
        stream.flush()
        raise WriterFailed("disk full")

    with pytest.raises(WriterFailed, match="disk full"):
        write_atomic(target, write_half_then_fail, binary=binary)
    assert target.read_text() == "old\n"
    assert entries(tmp_path) == ["out.file"]


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    def fail(stream: Any) -> None:
        raise WriterFailed("no")

    with pytest.raises(WriterFailed):
        write_atomic(tmp_path / "sub" / "out.file", fail, binary=False)
    assert entries(tmp_path / "sub") == []


def test_write_atomic_returns_the_target(tmp_path: Path) -> None:
    path = write_atomic(str(tmp_path / "out.txt"), lambda stream: stream.write("x"), binary=False)
    assert path == tmp_path / "out.txt" and path.read_text() == "x"
