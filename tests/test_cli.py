"""Tests for the ``fisher-mi`` command line, run in-process through ``fisher_mi.cli.main``.

One ``profile`` run on bundled digits is shared by the tests that read its outputs; the error
cases are data (arguments and the fragments their one-line message must hold). Two tests start
real processes: ``python -m fisher_mi`` and the ``fisher-mi`` console script.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fisher_mi.cli import main
from fisher_mi.data import find_shared_data, shared_data_skip_reason
from fisher_mi.errors import CheckpointError
from fisher_mi.io import read_table
from fisher_mi.models import build_model, named_layers, save_model
from tests.error_cases import ErrorCase, params

# The public table contract written out, not imported: a check against the package's own
# COLUMNS could not fail when the contract changes.
COLUMNS = [
    "layer",
    "depth",
    "kind",
    "n_params",
    "split",
    "n_samples",
    "fisher_trace",
    "fisher_per_param",
    "fisher",
    "backend",
]
N_SAMPLES = 24
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INVERTED = {"0": 3, "3": 2}  # identity folder -> number of generated images


def read_csv(path: Path) -> pd.DataFrame:
    """The CSV with its text columns kept as text (pandas would read ``true`` as a bool)."""
    return read_table(path)


@dataclass(frozen=True)
class Run:
    """What one ``main(argv)`` call returned, printed and wrote."""

    code: int
    stdout: str
    stderr: str
    out: Path

    @property
    def table(self) -> pd.DataFrame:
        return read_csv(self.out / "fisher.csv")

    @property
    def record(self) -> dict[str, Any]:
        return json.loads((self.out / "fisher.json").read_text())


def run_main(argv: list[str], out: Path) -> Run:
    """``main(argv)`` with stdout and stderr captured (usable from module-scoped fixtures)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(arg) for arg in argv])
    return Run(code, stdout.getvalue(), stderr.getvalue(), out)


def save_mcnn(path: Path) -> Path:
    torch.manual_seed(0)
    save_model(build_model("mcnn", num_classes=5), path, meta={"note": "untrained"})
    return path


def write_images(root: Path, counts: dict[str, int]) -> Path:
    """``root/<identity>/<i>.png``: small random RGB images of varying sizes."""
    rng = np.random.default_rng(0)
    for identity, count in counts.items():
        (root / identity).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / identity / f"{i}.png")
    return root


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return save_mcnn(tmp_path / "model.pt")


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``fisher-mi profile`` of a saved mcnn on digits, with reconstructions as an extra split."""
    root = tmp_path_factory.mktemp("profile")
    model = save_mcnn(root / "model.pt")
    inverted = write_images(root / "inverted", INVERTED)
    out = root / "out"
    argv = ["profile", model, "--data", "digits", "--max-samples", N_SAMPLES, "--out", out]
    return run_main([*argv, "--also", f"inverted=folder:{inverted}"], out)


# ---------------------------------------------------------------------------- profile


def test_profile_succeeds(profiled: Run) -> None:
    assert profiled.code == 0, profiled.stderr
    assert "error" not in profiled.stderr


def test_profile_writes_the_three_files_and_the_manifest(profiled: Run) -> None:
    assert sorted(p.name for p in profiled.out.iterdir()) == [
        "fisher.csv",
        "fisher.json",
        "fisher.png",
        "manifest.json",
    ]


def test_profile_csv_has_the_table_columns(profiled: Run) -> None:
    assert list(profiled.table.columns) == COLUMNS


# fisher="auto" (the default): empirical on the model's classes, true on public identities,
# both on reconstructions
AUTO_SERIES = [
    ("private", "empirical"),
    ("public", "true"),
    ("inverted", "empirical"),
    ("inverted", "true"),
]


def test_profile_csv_has_one_row_per_layer_split_and_estimator(profiled: Run) -> None:
    layers = [layer.name for layer in named_layers(build_model("mcnn", num_classes=5))]
    table = profiled.table
    for split, fisher in AUTO_SERIES:
        rows = (table["split"] == split) & (table["fisher"] == fisher)
        assert table.loc[rows, "layer"].tolist() == layers
    assert len(table) == len(AUTO_SERIES) * len(layers)


@pytest.mark.parametrize(
    ("split", "n_samples"),
    [("private", N_SAMPLES), ("public", N_SAMPLES), ("inverted", sum(INVERTED.values()))],
)
def test_profile_csv_counts_samples_per_split(profiled: Run, split: str, n_samples: int) -> None:
    table = profiled.table
    assert set(table.loc[table["split"] == split, "n_samples"]) == {n_samples}


def test_profile_csv_values_are_positive(profiled: Run) -> None:
    table = profiled.table
    assert (table["fisher_trace"] > 0).all()
    assert np.allclose(table["fisher_per_param"], table["fisher_trace"] / table["n_params"])


def test_profile_json_records_the_run(profiled: Run) -> None:
    record = profiled.record
    assert record["model"].endswith("model.pt")
    assert record["data"]["private"] == record["data"]["public"] == "digits"
    assert record["data"]["inverted"].startswith("folder:")
    for key in ("backend", "fisher", "seed"):
        assert key in record
    assert record["fisher"] == "auto" and record["seed"] == 0
    assert {"torch", "fisher_mi"} <= set(record["versions"])


def test_profile_json_records_each_split(profiled: Run) -> None:
    splits = profiled.record["splits"]
    assert set(splits) == {"private", "public", "inverted"}
    assert splits["private"]["n_samples"] == N_SAMPLES
    assert splits["inverted"]["n_samples"] == sum(INVERTED.values())
    assert all(split["seconds"] >= 0 for split in splits.values())
    estimators = {split: record["fisher"] for split, record in splits.items()}
    both = ["empirical", "true"]
    assert estimators == {"private": ["empirical"], "public": ["true"], "inverted": both}


def test_profile_json_says_how_the_model_was_made(profiled: Run) -> None:
    # save_mcnn's meta has none of pretrained_on, role, init: all recorded as unknown (null)
    made = {"pretrained_on": None, "role": None, "init": None}
    assert profiled.record["model_provenance"] == made


def test_profile_json_names_the_backend_the_table_used(profiled: Run) -> None:
    # Fixed bug: fisher_mi/report/profile.py write_profile records the backend *option* ("auto") in
    # fisher.json while fisher.csv of the same run says which backend actually ran (e.g.
    # "hooks"), so the record does not say how the numbers were computed ("auto" may resolve
    # differently in another version or on another model). Record the resolved backend, as
    # commit 67d9f1c does for the device: e.g. options["backend"] = table["backend"].iloc[0].
    assert profiled.record["backend"] == profiled.table["backend"].iloc[0]


def test_profile_writes_a_png_figure(profiled: Run) -> None:
    data = (profiled.out / "fisher.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_profile_prints_the_table(profiled: Run) -> None:
    assert "fc_layer" in profiled.stdout
    assert "private" in profiled.stdout and "inverted" in profiled.stdout
    assert "fisher.csv" in profiled.stdout


def test_profile_loop_backend_true_fisher(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["profile", model_path, "--data", "digits", "--splits", "private", "--out", out]
    options = ["--max-samples", 10, "--backend", "loop", "--fisher", "true", "--mc-samples", 2]
    assert main([str(arg) for arg in [*argv, *options]]) == 0, capsys.readouterr().err
    table = read_csv(out / "fisher.csv")
    assert set(table["split"]) == {"private"}
    assert set(table["backend"]) == {"loop"}
    assert set(table["fisher"]) == {"true"}
    assert set(table["n_samples"]) == {10}


# ---------------------------------------------------------------------------- errors


class RunsCode:
    """Unpickling this calls ``marker.touch()``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.marker.touch, ()


def _missing_model(tmp_path: Path) -> Path:
    return tmp_path / "nothing-here.pt"


def _unsafe_model(tmp_path: Path) -> Path:
    path = tmp_path / "unsafe.pt"
    torch.save(
        {"state_dict": build_model("mcnn").state_dict(), "x": RunsCode(tmp_path / "ran")}, path
    )
    return path


def _foreign_mcnn(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.pt"
    torch.save(build_model("mcnn", num_classes=5).state_dict(), path)
    return path


def _saved(tmp_path: Path) -> Path:
    return save_mcnn(tmp_path / "model.pt")


# ``profile MODEL ARGS...`` that must fail with one line; ``build`` writes MODEL, returns its path.
ERROR_CASES = [
    ErrorCase(
        "missing-model",
        ("--data", "digits"),
        ("nothing-here.pt", "does not exist"),
        build=_missing_model,
    ),
    ErrorCase(
        "unknown-dataset",
        ("--data", "faces"),
        ("'faces'", "mnist", "digits", "folder"),
        build=_saved,
    ),
    ErrorCase(
        "unsafe-checkpoint", ("--data", "digits"), ("unsafe.pt", "refused"), build=_unsafe_model
    ),
    ErrorCase(
        "foreign-wrong-arch",
        ("--data", "digits", "--arch", "vgg_small"),
        ("foreign.pt", "does not fit architecture 'vgg_small'", "'mcnn'"),
        build=_foreign_mcnn,
    ),
    ErrorCase(
        "also-name-twice",
        ("--data", "digits", "--also", "x=digits", "--also", "x=digits"),
        ("'x'", "used twice"),
        build=_saved,
    ),
    ErrorCase(
        "also-name-of-a-split",
        ("--data", "digits", "--also", "public=digits"),
        ("'public'",),
        build=_saved,
    ),
    ErrorCase(
        "folder-does-not-exist",
        ("--data", "folder:/does/not/exist"),
        ("/does/not/exist", "does not exist"),
        build=_saved,
    ),
    ErrorCase("no-splits", ("--data", "digits", "--splits", ","), ("no splits",), build=_saved),
]


@pytest.mark.parametrize("case", params(ERROR_CASES))
def test_profile_error_is_one_line_and_exit_2(
    tmp_path: Path, case: ErrorCase, capsys: pytest.CaptureFixture[str]
) -> None:
    model = case.build(tmp_path)
    argv = ["profile", str(model), *case.call_args(tmp_path), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fisher-mi: error: ")
    assert "Traceback" not in captured.err + captured.out
    case.assert_message(lines[0], tmp_path)
    assert not (tmp_path / "out").exists()


def test_unsafe_checkpoint_code_does_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _unsafe_model(tmp_path)
    assert main(["profile", str(path), "--data", "digits"]) == 2
    assert not (tmp_path / "ran").exists()


def test_also_without_equals_is_a_usage_error(
    model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["profile", str(model_path), "--data", "digits", "--also", "bad"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "NAME=SPEC" in err.splitlines()[-1] and "'bad'" in err.splitlines()[-1]


def test_debug_raises_instead(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        main(["--debug", "profile", str(tmp_path / "nothing.pt"), "--data", "digits"])


# ---------------------------------------------------------------------------- processes


def _help(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_python_m_fisher_mi_help() -> None:
    result = _help([sys.executable, "-m", "fisher_mi", "--help"])
    assert result.returncode == 0, result.stderr
    assert "profile" in result.stdout and "demo" in result.stdout


def test_console_script_help() -> None:
    script = shutil.which("fisher-mi", path=str(Path(sys.executable).parent))
    assert script is not None, "the fisher-mi console script is not installed beside python"
    result = _help([script, "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fisher-mi")
    assert "profile" in result.stdout and "demo" in result.stdout


def test_profile_runs_on_the_real_att_faces(tmp_path: Path) -> None:
    """Real faces in their on-disk layout (PGM, s1..s40), read by the att loader."""
    faces = find_shared_data("att_faces")
    if faces is None:
        pytest.skip(shared_data_skip_reason("att_faces"))
    model = build_model("vgg_small", num_classes=20)
    save_model(model, tmp_path / "faces.pt")
    argv = ["profile", tmp_path / "faces.pt", "--data", f"att:{faces}", "--max-samples", 16]
    run = run_main([*argv, "--out", tmp_path / "out"], tmp_path / "out")
    assert run.code == 0, run.stderr
    table = run.table
    assert set(table["split"]) == {"private", "public"}
    assert set(table["n_samples"]) == {16}
    assert (table["fisher_trace"] > 0).all()
