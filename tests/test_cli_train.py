"""``fisher-mi train`` records where its model comes from and resumes only the run it started."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from fisher_mi.cli import main
from fisher_mi.io import load_checkpoint

SMOKE = ["train", "--arch", "mcnn", "--epochs", "2", "--batch-size", "16", "--max-steps", "2"]


def run(argv: list[object]) -> tuple[int, str]:
    """``main(argv)``: the exit status and stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return code, stderr.getvalue()


def test_model_meta_records_its_provenance(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stderr = run([*SMOKE, "--data", "digits", "--public", "digits", "--out", out])
    assert code == 0, stderr
    meta = load_checkpoint(out / "model.pt")["meta"]
    assert meta["data"] == "digits" and meta["public"] == "digits"
    assert meta["role"] == "target" and meta["pretrained_on"] == "digits"
    assert meta["init"] is None
    assert meta["class_names"] == ["0", "1", "2", "3", "4"]
    assert load_checkpoint(out / "pretrain" / "model.pt")["meta"]["data"] == "digits"


def test_resume_on_other_data_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    started = [*SMOKE, "--max-steps", "1", "--out", out]
    code, stderr = run([*started, "--data", "digits"])
    assert code == 0, stderr
    code, stderr = run([*started, "--data", "mnist", "--resume"])
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "'digits'" in stderr and "'mnist'" in stderr and "data" in stderr
