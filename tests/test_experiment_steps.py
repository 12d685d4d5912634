"""Resumable steps: the key, reuse, rerun on a changed config or input, resume when interrupted."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from fisher_mi.errors import ConfigError
from fisher_mi.experiments import Step, StepRun, run_steps, step_key
from fisher_mi.experiments.steps import RAN, RESUMED, REUSED
from fisher_mi.io import write_text


class Counter:
    """A step function that writes ``out.txt`` (its config's value) and counts its calls; with
    ``interrupt`` it writes a partial file, then raises as a Ctrl-C would."""

    def __init__(self, value: str) -> None:
        self.value, self.calls, self.resumes, self.interrupt = value, 0, [], False

    def __call__(self, folder: Path, resume: bool) -> Iterable[Path]:
        self.calls += 1
        self.resumes.append(resume)
        if self.interrupt:
            self.interrupt = False
            write_text(folder / "partial.txt", "half")
            raise KeyboardInterrupt
        return [write_text(folder / "out.txt", self.value)]


def _steps(root: Path, first: Counter, second: Counter, *, a: int = 1) -> list[Step]:
    return [
        Step("first", root / "first", {"a": a}, first),
        Step("second", root / "second", {"b": 2}, second, ("first",)),
    ]


def _states(done: StepRun) -> dict[str, str]:
    return {name: record.state for name, record in done.records.items()}


def test_same_settings_are_reused(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    assert _states(run_steps(_steps(tmp_path, first, second), report=None)) == {
        "first": RAN,
        "second": RAN,
    }
    again = run_steps(_steps(tmp_path, first, second), report=None)
    assert _states(again) == {"first": REUSED, "second": REUSED}
    assert (first.calls, second.calls) == (1, 1)


def test_a_changed_config_reruns_the_step_and_what_reads_it(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    run_steps(_steps(tmp_path, first, second), report=None)
    done = run_steps(_steps(tmp_path, first, second, a=5), report=None)
    assert _states(done) == {"first": RAN, "second": RAN}  # its input's manifest is new


def test_a_changed_input_manifest_changes_the_key(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    steps = _steps(tmp_path, first, second)
    done = run_steps(steps, report=None)
    before = step_key(steps[1], done)
    manifest = tmp_path / "first" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["runs"][-1]["seconds"] = 1e9
    manifest.write_text(json.dumps(record))
    assert step_key(steps[1], done) != before


def test_an_edited_output_is_not_reused(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    run_steps(_steps(tmp_path, first, second), report=None)
    (tmp_path / "first" / "out.txt").write_text("edited by hand")
    done = run_steps(_steps(tmp_path, first, second), report=None)
    assert _states(done)["first"] == RAN and first.resumes == [False, False]
    assert (tmp_path / "first" / "out.txt").read_text() == "x"


def test_an_interrupted_step_resumes_and_the_rest_runs(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    second.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run_steps(_steps(tmp_path, first, second), report=None)
    manifest = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert manifest["runs"][-1]["complete"] is False and manifest["files"] == {}
    done = run_steps(_steps(tmp_path, first, second), report=None)
    assert _states(done) == {"first": REUSED, "second": RESUMED}
    assert second.resumes == [False, True]
    listed = json.loads((tmp_path / "second" / "manifest.json").read_text())["files"]
    assert set(listed) == {"out.txt"}


def test_a_step_with_another_key_is_cleared_before_it_runs(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    first.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run_steps(_steps(tmp_path, first, second), report=None)
    assert (tmp_path / "first" / "partial.txt").is_file()
    run_steps(_steps(tmp_path, first, second, a=7), report=None)
    assert not (tmp_path / "first" / "partial.txt").exists()  # other settings' leftovers


def test_a_folder_of_foreign_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "mine.txt").write_text("not a step's")
    with pytest.raises(ConfigError, match="did not write"):
        run_steps(_steps(tmp_path, Counter("x"), Counter("y")), report=None)
    assert (tmp_path / "first" / "mine.txt").is_file()


def test_inputs_must_come_first_and_names_be_unique(tmp_path: Path) -> None:
    first, second = Counter("x"), Counter("y")
    with pytest.raises(ConfigError, match="did not run before it"):
        run_steps(list(reversed(_steps(tmp_path, first, second))), report=None)
    twice = [Step("a", tmp_path / "a", {}, first), Step("a", tmp_path / "b", {}, second)]
    with pytest.raises(ConfigError, match="unique"):
        run_steps(twice, report=None)


def test_the_seconds_of_a_run_are_in_its_manifest(tmp_path: Path) -> None:
    run_steps(_steps(tmp_path, Counter("x"), Counter("y")), report=None)
    last = json.loads((tmp_path / "first" / "manifest.json").read_text())["runs"][-1]
    assert last["step"] == "first" and last["complete"] is True and last["seconds"] >= 0
