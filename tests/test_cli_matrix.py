"""Every subcommand refuses bad devices, bad output locations and bad input paths in one line,
before any work. The cases are generated from the command registry, so a new subcommand is
covered by construction: ``VALID`` must name a working invocation for every registered one.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fisher_mi.attacks import build_gan, save_gan
from fisher_mi.cli import COMMANDS, build_parser, main
from fisher_mi.data import load_dataset
from fisher_mi.fisher import profile
from fisher_mi.io import write_table
from fisher_mi.models import build_model, save_model

UNWRITABLE = Path("/sys/fisher_mi_out")  # refused even to root


def _model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "inputs" / "model.pt"
    save_model(build_model("mcnn", num_classes=5), path)
    return path


def _table(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("mcnn", num_classes=5)
    table = profile(model, load_dataset("digits", "private"), max_samples=4)
    return write_table(tmp_path / "inputs" / "fisher.csv", table)


def _gan(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "inputs" / "gan"
    save_gan(build_gan("gmi", channels=1, image_size=32, preset="cpu"), folder)
    return folder


# A valid invocation of each command, without --out and --device (the cases add those); the
# evaluate case names a run folder that the failing checks never reach.
VALID: dict[str, Callable[[Path], list[str]]] = {
    "profile": lambda t: [
        str(_model(t)),
        "--data",
        "digits",
        "--splits",
        "private",
        "--max-samples",
        "4",
    ],
    "plan": lambda t: [str(_table(t))],
    "train": lambda t: [
        "--data",
        "digits",
        "--arch",
        "mcnn",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
    ],
    "train-gan": lambda t: [
        "--data",
        "digits",
        "--kind",
        "gmi",
        "--steps",
        "1",
        "--batch-size",
        "8",
    ],
    "demo": lambda t: ["--data", "digits", "--quick"],
    "report": lambda t: [str(t / "run")],
    "attack": lambda t: [
        "--target",
        str(_model(t)),
        "--gan",
        str(_gan(t)),
        "--ids",
        "0",
        "--per-id",
        "1",
        "--iters",
        "1",
    ],
    "evaluate": lambda t: [str(t / "run"), "--evaluator", str(_model(t)), "--data", "digits"],
    "sweep": lambda t: ["--data", "digits", "--cutoffs", "0", "--quick", "--max-steps", "1"],
    "compare": lambda t: ["--data", "digits", "--defenses", "none", "--quick", "--max-steps", "1"],
}


def run(argv: list[str]) -> tuple[int, str]:
    """``main(argv)``: the exit status and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stderr.getvalue()


def _options(name: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[name]
    return set(sub._option_string_actions)


def _output_kind(name: str) -> str:
    return COMMANDS.get(name).output


def test_every_command_has_a_valid_invocation() -> None:
    assert set(VALID) == {name for name, _ in COMMANDS.items()}


def _assert_one_line(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("fisher-mi: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)


BAD_DEVICES = ["cuda:7", "meta", "nonsense", "cuda"]
DEVICE_CASES = [
    pytest.param(name, device, id=f"{name}-{device}") for name in VALID for device in BAD_DEVICES
]


@pytest.mark.parametrize(("name", "device"), DEVICE_CASES)
def test_bad_device_is_refused_before_any_work(tmp_path: Path, name: str, device: str) -> None:
    if "--device" not in _options(name):
        pytest.skip(f"{name} computes nothing on a device")
    if device.startswith("cuda") and torch.cuda.device_count() > int(device[5:] or 0):
        pytest.skip(f"this machine has {device}")
    out = tmp_path / "out"
    code, stderr = run([name, *VALID[name](tmp_path), "--device", device, "--out", str(out)])
    _assert_one_line(code, stderr, repr(device))
    assert not out.exists()


def _existing_file(tmp_path: Path) -> Path:
    (tmp_path / "taken").write_text("not a folder")
    return tmp_path / "taken"


OUT_CASES = {
    "dir": [
        ("existing-file", _existing_file, "is a file"),
        ("under-a-file", lambda t: _existing_file(t) / "run", "which is a file"),
        ("unwritable", lambda t: UNWRITABLE / "run", "cannot be written"),
    ],
    "file": [
        ("a-folder", lambda t: t, "is a folder"),
        ("under-a-file", lambda t: _existing_file(t) / "plan.json", "which is a file"),
        ("unwritable", lambda t: UNWRITABLE / "plan.json", "cannot be written"),
    ],
}
OUTPUT_CASES = [
    pytest.param(name, make, says, id=f"{name}-{case}")
    for name in VALID
    for case, make, says in OUT_CASES[_output_kind(name)]
]


@pytest.mark.parametrize(("name", "make", "says"), OUTPUT_CASES)
def test_bad_out_is_refused_before_any_work(tmp_path: Path, name: str, make, says: str) -> None:
    out = make(tmp_path)
    if UNWRITABLE in (out, *out.parents) and not UNWRITABLE.parent.is_dir():
        pytest.skip("no /sys on this machine")
    argv = [name, *VALID[name](tmp_path), "--out", str(out)]
    _assert_one_line(*run(argv), str(out), says)


INPUT_CASES = [
    pytest.param(name, kind, id=f"{name}-{kind}")
    for name in ("profile", "plan")
    for kind in ("missing", "folder")
]


@pytest.mark.parametrize(("name", "kind"), INPUT_CASES)
def test_bad_input_path_is_one_line(tmp_path: Path, name: str, kind: str) -> None:
    argv = VALID[name](tmp_path)
    bad = tmp_path / "nothing.pt" if kind == "missing" else tmp_path / "inputs"
    code, stderr = run([name, str(bad), *argv[1:], "--out", str(tmp_path / "out")])
    _assert_one_line(code, stderr, str(bad))
    says = ("does not exist",) if kind == "missing" else ("is a folder", "is not a file")
    assert any(words in stderr for words in says), stderr


# ---------------------------------------------------------------------------- run folders


def test_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    """Two runs into one --out: the second is refused while the first holds the lock."""
    out = tmp_path / "out"
    out.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            holder = {
                "pid": other.pid,
                "host": __import__("socket").gethostname(),
                "started": "2026-01-01T00:00:00+00:00",
            }
            (out / ".lock").write_text(json.dumps(holder))
            argv = ["profile", *VALID["profile"](tmp_path), "--out", str(out)]
            _assert_one_line(*run(argv), "in use by process", str(other.pid))
        finally:
            other.kill()
    assert not (out / "fisher.csv").exists()


def test_interrupted_profile_leaves_an_untrusted_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between fisher.csv and fisher.png: `plan` refuses the table the run left."""
    import fisher_mi.report.profile as writer

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "out"
    monkeypatch.setattr(writer, "plot_fisher_profile", interrupted)
    code, _ = run(["profile", *VALID["profile"](tmp_path), "--out", str(out)])
    assert code == 130 and (out / "fisher.csv").is_file()
    monkeypatch.undo()
    _assert_one_line(*run(["plan", str(out / "fisher.csv")]), "not listed")


def test_stale_temporaries_are_removed_at_start(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".fisher.csv.x1y2z3.tmp").write_text("left by kill -9")
    code, stderr = run(["profile", *VALID["profile"](tmp_path), "--out", str(out)])
    assert code == 0, stderr
    assert not list(out.glob(".*.tmp"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"fisher.csv", "fisher.json", "fisher.png"}


# ---------------------------------------------------------------------------- numbers

NUMBER_CASES = [
    pytest.param(["--seed", "99999999999999999999999"], "a seed from 0", id="seed-too-large"),
    pytest.param(["--seed", "-1"], "a seed from 0", id="seed-negative"),
    pytest.param(["--batch-size", "x"], "a whole number", id="batch-not-a-number"),
    pytest.param(["--max-samples", "0"], "at least 1", id="max-samples-zero"),
]


@pytest.mark.parametrize(("extra", "says"), NUMBER_CASES)
def test_bad_numbers_are_usage_errors(
    tmp_path: Path, extra: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["profile", *VALID["profile"](tmp_path), *extra])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert says in last and "_positive_int" not in last and "Traceback" not in last, last


# ---------------------------------------------------------------------------- messages


def _truncated_png_folder(root: Path) -> Path:
    """``root/<identity>/<i>.png`` with one PNG cut in half: its header reads, its pixels not."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for identity in ("0", "1"):
        (root / identity).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(root / identity / f"{i}.png")
    broken = root / "1" / "1.png"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    return root


def test_worker_error_is_its_own_one_line_message(tmp_path: Path) -> None:
    """An image that fails in a DataLoader worker: the worker's message, not its traceback."""
    faces = _truncated_png_folder(tmp_path / "faces")
    argv = ["profile", str(_model(tmp_path)), "--data", f"folder:{faces}", "--splits", "private"]
    code, stderr = run([*argv, "--workers", "1", "--out", str(tmp_path / "out")])
    _assert_one_line(code, stderr, "1.png", "truncated")
    assert "DataLoader" not in stderr and "Original Traceback" not in stderr


def test_demo_on_data_it_has_no_setting_for_is_one_line(tmp_path: Path) -> None:
    code, stderr = run(["demo", "--data", "folder:/x", "--out", str(tmp_path / "out")])
    _assert_one_line(code, stderr, "no setting for", "'folder:/x'", "mnist")


def test_operating_system_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up while writing: the system's reason and the file, one line."""
    import errno

    import fisher_mi.report.profile as writer

    def full(path: object, *args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(writer, "write_table", full)
    code, stderr = run(["profile", *VALID["profile"](tmp_path), "--out", str(tmp_path / "out")])
    _assert_one_line(code, stderr, "No space left on device", "fisher.csv")
