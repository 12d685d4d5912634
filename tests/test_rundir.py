"""Run folders: output checks, the lock, stale temporaries and the manifest (fisher_mi.rundir)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fisher_mi.errors import ConfigError, DataError
from fisher_mi.rundir import (
    LOCK,
    MANIFEST,
    RunFolder,
    acquire_lock,
    check_listed,
    check_output,
    read_manifest,
    remove_stale_temporaries,
    sha256,
)

UNWRITABLE = Path("/sys/fisher_mi_out")  # refused even to root


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _write_lock(folder: Path, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (folder / LOCK).write_text(json.dumps(holder))


# ---------------------------------------------------------------------------- check_output

def _file(tmp_path: Path) -> Path:
    (tmp_path / "f").write_text("x")
    return tmp_path / "f"


OUTPUT_ERRORS = [
    pytest.param("dir", _file, "is a file", id="file"),
    pytest.param("dir", lambda t: _file(t) / "sub", "which is a file", id="under-a-file"),
    pytest.param("file", lambda t: t, "is a folder", id="folder-for-a-file"),
    pytest.param("dir", lambda t: UNWRITABLE / "run", "cannot be written", id="unwritable"),
]


@pytest.mark.parametrize(("kind", "make", "says"), OUTPUT_ERRORS)
def test_check_output_refuses(tmp_path: Path, kind: str, make, says: str) -> None:
    path = make(tmp_path)
    if UNWRITABLE in path.parents and not UNWRITABLE.parent.is_dir():
        pytest.skip("no /sys on this machine")
    with pytest.raises(ConfigError, match=says):
        check_output(path, kind=kind)


def test_check_output_accepts_a_new_nested_folder_and_creates_nothing(tmp_path: Path) -> None:
    check_output(tmp_path / "a" / "b", kind="dir")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- lock


def test_lock_is_taken_and_reentrant(tmp_path: Path) -> None:
    assert acquire_lock(tmp_path) is True
    holder = json.loads((tmp_path / LOCK).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert acquire_lock(tmp_path) is False  # the same process: re-entrant, not re-created


def test_lock_of_a_live_process_is_refused(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            _write_lock(tmp_path, other.pid)
            with pytest.raises(ConfigError, match=f"in use by process {other.pid}"):
                acquire_lock(tmp_path)
        finally:
            other.kill()


def test_lock_of_another_host_is_refused(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid(), host="elsewhere.example")
    with pytest.raises(ConfigError, match=r"elsewhere\.example"):
        acquire_lock(tmp_path)


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    _write_lock(tmp_path, _dead_pid())
    assert acquire_lock(tmp_path) is True
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_unreadable_lock_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text("")
    with pytest.raises(ConfigError, match="cannot be read"):
        acquire_lock(tmp_path)


# ---------------------------------------------------------------------------- temporaries


def test_stale_temporaries_are_removed_and_others_kept(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".fisher.csv.k2j3.tmp", tmp_path / "sub" / ".model.pt.x9.tmp"]
    kept = [tmp_path / "fisher.csv", tmp_path / "notes.tmp"]
    for path in stale + kept:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert [p.exists() for p in stale + kept] == [False, False, True, True]


# ---------------------------------------------------------------------------- manifest


def test_manifest_lists_what_was_written_with_its_hash(tmp_path: Path) -> None:
    with RunFolder(tmp_path, record={"command": "x"}) as run:
        (tmp_path / "a.csv").write_text("1,2\n")
        assert read_manifest(tmp_path)["files"] == {}  # nothing is trusted while it runs
        run.finish([tmp_path / "a.csv"])
    manifest = read_manifest(tmp_path)
    assert manifest["files"]["a.csv"]["sha256"] == sha256(tmp_path / "a.csv")
    assert [r["complete"] for r in manifest["runs"]] == [True]
    assert not (tmp_path / LOCK).exists()


def test_interrupted_run_leaves_its_outputs_unlisted(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), RunFolder(tmp_path):
        (tmp_path / "a.csv").write_text("new")
        raise KeyboardInterrupt
    with pytest.raises(DataError, match="not listed"):
        check_listed(tmp_path / "a.csv")


def test_changed_file_is_refused(tmp_path: Path) -> None:
    with RunFolder(tmp_path) as run:
        (tmp_path / "a.csv").write_text("1")
        run.finish([tmp_path / "a.csv"])
    (tmp_path / "a.csv").write_text("2")
    with pytest.raises(DataError, match="changed after"):
        check_listed(tmp_path / "a.csv")


def test_folder_without_manifest_is_trusted(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text("x")
    assert check_listed(tmp_path / "mine.csv") == tmp_path / "mine.csv"


def test_shared_folder_keeps_the_files_it_found(tmp_path: Path) -> None:
    """A command writing one file into a user's folder vouches for the others as found."""
    (tmp_path / "fisher.csv").write_text("table")
    with RunFolder(tmp_path, outputs=(tmp_path / "plan.json",)) as run:
        check_listed(tmp_path / "fisher.csv")  # still trusted while the command runs
        (tmp_path / "plan.json").write_text("{}")
        run.finish([tmp_path / "plan.json"])
    assert set(read_manifest(tmp_path)["files"]) == {"fisher.csv", "plan.json"}


def test_failure_before_any_write_restores_the_folder(tmp_path: Path) -> None:
    created = tmp_path / "run"
    with pytest.raises(ConfigError), RunFolder(created):
        raise ConfigError("bad option")
    assert not created.exists()  # it made the folder, wrote nothing: it leaves nothing
    (tmp_path / "old").mkdir()
    with RunFolder(tmp_path / "old") as run:
        (tmp_path / "old" / "a").write_text("1")
        run.finish([tmp_path / "old" / "a"])
    before = (tmp_path / "old" / MANIFEST).read_text()
    with pytest.raises(ConfigError), RunFolder(tmp_path / "old"):
        raise ConfigError("bad option")
    assert (tmp_path / "old" / MANIFEST).read_text() == before
    check_listed(tmp_path / "old" / "a")


def test_damaged_manifest_is_one_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    (tmp_path / "a").write_text("x")
    with pytest.raises(DataError, match="cannot be read"):
        check_listed(tmp_path / "a")
