"""The package's imports run one way (DESIGN.md, "Data flows one way").

Each module belongs to a stage; a module may import its own stage and earlier ones, never a
later stage and never the top-level package (whose ``__init__`` imports everything). The
checker reads the source with ``ast`` (nothing is imported), so it also runs on a planted
fixture package, which shows that it catches a back edge and an unplaced package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fisher_mi

# DESIGN.md's order: base -> data -> models -> fisher -> plan -> defenses -> training ->
# evaluate -> attacks -> experiments -> report -> cli.
STAGES = (
    ("_version", "errors", "io", "registry", "distributed", "rundir"),
    ("data",),
    ("models",),
    ("fisher",),
    ("plan",),
    ("defenses",),
    ("training",),
    ("evaluate", "metrics"),
    ("attacks",),
    ("experiments",),
    ("report",),
    ("cli", "__main__"),
)
STAGE_OF = {name: index for index, names in enumerate(STAGES) for name in names}


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _imported(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module's source."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def import_violations(root: Path, package: str) -> list[str]:
    """Every import edge of the package at ``root`` that breaks the stage order."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root, package)
        parts = module.split(".")
        if len(parts) == 1:  # the top-level __init__: the public API may gather every stage
            continue
        own = STAGE_OF.get(parts[1])
        where = f"{path.relative_to(root)}"
        if own is None:
            problems.append(f"{where}: {parts[1]!r} is in no stage of the import order")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            target = name.split(".")
            if target[0] != package:
                continue
            if len(target) == 1:
                problems.append(f"{where}:{line} imports the top-level package {package!r}")
                continue
            stage = STAGE_OF.get(target[1])
            if stage is None:
                problems.append(f"{where}:{line}: {target[1]!r} is in no stage of the order")
            elif stage > own:
                problems.append(f"{where}:{line} imports later stage {name!r} (back edge)")
    return problems


def test_fisher_mi_imports_run_one_way() -> None:
    root = Path(fisher_mi.__file__).parent
    assert import_violations(root, "fisher_mi") == []


def test_every_top_level_module_is_in_the_order() -> None:
    root = Path(fisher_mi.__file__).parent
    names = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    names -= {"__init__", "__pycache__"}
    assert names <= set(STAGE_OF), names - set(STAGE_OF)


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


PLANTED = [
    pytest.param(
        {"data/__init__.py": "", "data/x.py": "from pkg.training import loop\n"},
        "back edge",
        id="data-imports-training",
    ),
    pytest.param(
        {"models/__init__.py": "", "models/y.py": "from . import z\nfrom ..cli import main\n"},
        "back edge",
        id="relative-back-edge",
    ),
    pytest.param({"fisher/__init__.py": "import pkg\n"}, "top-level package", id="top-level"),
    pytest.param({"gadgets/__init__.py": ""}, "no stage", id="unplaced-package"),
]


@pytest.mark.parametrize(("files", "says"), PLANTED)
def test_checker_catches_a_planted_violation(tmp_path: Path, files: dict, says: str) -> None:
    problems = import_violations(_plant(tmp_path, files), "pkg")
    assert len(problems) == 1 and says in problems[0], problems


def test_checker_accepts_forward_edges(tmp_path: Path) -> None:
    files = {"training/__init__.py": "from pkg.data import x\nfrom pkg.io import y\n"}
    assert import_violations(_plant(tmp_path, files), "pkg") == []


@pytest.mark.parametrize("module", ["fisher_mi", "fisher_mi.cli"])
def test_import_leaves_plotting_out(module: str) -> None:
    """Notebooks keep their own (inline) backend: nothing imports matplotlib at import time."""
    code = (
        f"import sys, {module}; "
        "print(' '.join(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
