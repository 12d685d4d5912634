"""``fisher-mi train`` records where its model comes from and resumes only the run it started;
``--role evaluator`` and ``--role surrogate --teacher``, and their one-line errors."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from fisher_mi.cli import main
from fisher_mi.io import load_checkpoint
from fisher_mi.models import build_model, load_model, save_model
from fisher_mi.rundir import sha256

SMOKE = ["train", "--arch", "mcnn", "--epochs", "2", "--batch-size", "16", "--max-steps", "2"]
DIGITS = ["0", "1", "2", "3", "4"]


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


# ---------------------------------------------------------------------------- roles


def teacher_file(tmp_path: Path, num_classes: int = 7) -> Path:
    """An untrained mcnn with 7 classes (not the data's 5) and class names of its own."""
    torch.manual_seed(0)
    path = tmp_path / "teacher.pt"
    names = [f"id{k}" for k in range(num_classes)]
    save_model(build_model("mcnn", num_classes=num_classes), path, meta={"class_names": names})
    return path


def surrogate(teacher: Path, out: Path, *extra: object) -> list[object]:
    return [
        *SMOKE,
        "--data",
        "digits",
        "--role",
        "surrogate",
        "--teacher",
        teacher,
        "--out",
        out,
        *extra,
    ]


def test_a_surrogate_is_distilled_from_its_teacher(tmp_path: Path) -> None:
    teacher, out = teacher_file(tmp_path), tmp_path / "run"
    code, stderr = run([*surrogate(teacher, out), "--arch", "scnn"])
    assert code == 0, stderr
    saved = load_checkpoint(out / "model.pt")
    meta = saved["meta"]
    assert (saved["arch"], saved["arch_kwargs"]) == ("scnn", {"num_classes": 7, "in_channels": 1})
    assert (meta["role"], meta["data"], meta["public"]) == ("surrogate", "digits", "digits")
    assert meta["class_names"] == [f"id{k}" for k in range(7)]  # the teacher's
    assert (meta["teacher"], meta["teacher_sha256"]) == (str(teacher), sha256(teacher))
    assert meta["objective"]["name"] == "distillation" and meta["private_test_accuracy"] is None


def test_channels_sets_the_images_the_model_takes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stderr = run(
        [*SMOKE, "--data", "digits", "--arch", "scnn", "--channels", "3", "--out", out]
    )
    assert code == 0, stderr
    assert load_model(out / "model.pt").input_shape == (3, 32, 32)
    code, stderr = run([*SMOKE, "--data", "digits", "--arch", "scnn", "--out", tmp_path / "grey"])
    assert code == 0, stderr
    assert load_model(tmp_path / "grey" / "model.pt").input_shape == (1, 32, 32)


def test_an_evaluator_is_trained_like_a_target(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stderr = run(
        [*SMOKE, "--data", "digits", "--arch", "scnn", "--role", "evaluator", "--out", out]
    )
    assert code == 0, stderr
    meta = load_checkpoint(out / "model.pt")["meta"]
    assert (meta["role"], meta["data"], meta["class_names"]) == ("evaluator", "digits", DIGITS)
    assert meta["objective"] == {"name": "cross_entropy"}


def test_resuming_a_surrogate_with_another_teacher_is_refused(tmp_path: Path) -> None:
    first, out = teacher_file(tmp_path / "a"), tmp_path / "run"
    code, stderr = run([*surrogate(first, out, "--max-steps", "1")])
    assert code == 0, stderr
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_model(build_model("mcnn", num_classes=7), other)
    code, stderr = run([*surrogate(other, out, "--max-steps", "1"), "--resume"])
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "another objective" in stderr and "teacher_weights" in stderr


ROLE_ERRORS = [
    ("teacher-without-surrogate", ["--teacher", "{teacher}"], "--teacher is for --role surrogate"),
    (
        "teacher-with-evaluator",
        ["--role", "evaluator", "--teacher", "{teacher}"],
        "not --role evaluator",
    ),
    ("surrogate-without-teacher", ["--role", "surrogate"], "--role surrogate needs --teacher"),
    (
        "surrogate-with-public",
        ["--role", "surrogate", "--teacher", "{teacher}", "--public", "digits"],
        "--public cannot be used with --role surrogate",
    ),
    (
        "surrogate-with-cutoff-0",
        ["--role", "surrogate", "--teacher", "{teacher}", "--cutoff", "0", "--rule", "mass"],
        "--rule, --cutoff cannot be used",
    ),
    (
        "surrogate-with-channels",
        ["--role", "surrogate", "--teacher", "{teacher}", "--channels", "1"],
        "--channels cannot be used with --role surrogate",
    ),
    (
        "channels-of-a-fixed-architecture",
        ["--arch", "vgg16", "--channels", "1"],
        "architecture 'vgg16' takes a fixed number of image channels",
    ),
    (
        "surrogate-of-another-size",
        ["--role", "surrogate", "--teacher", "{teacher}", "--arch", "vgg_small"],
        "the student takes 1x64x64 images but the teacher 1x32x32",
    ),
]


@pytest.mark.parametrize(
    ("options", "message"),
    [case[1:] for case in ROLE_ERRORS],
    ids=[case[0] for case in ROLE_ERRORS],
)
def test_role_and_teacher_errors_are_one_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    teacher = str(teacher_file(tmp_path))
    given = [option.format(teacher=teacher) for option in options]
    code, stderr = run([*SMOKE, "--data", "digits", *given, "--out", tmp_path / "run"])
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert message in stderr, stderr
