"""The shape of the package, checked like a failing test: layers, cycles, and the size of its rooms."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "exporter"
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 50


def test_import_contracts_are_kept() -> None:
    """pyproject.toml's import-linter contracts: the layers, the simulator kept out of the daemon, no cycles."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _sizes() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                where = f"{path.relative_to(PACKAGE.parent)}:{node.name}"
                found.append((kind, where, node.end_lineno - node.lineno + 1))
    return found


def test_no_class_is_over_250_lines_and_no_function_over_50() -> None:
    sizes = _sizes()
    assert len([s for s in sizes if s[0] == "class"]) > 50 and len(sizes) > 500  # the walk saw the package
    too_big = [(name, lines) for kind, name, lines in sizes
               if lines > (MAX_CLASS_LINES if kind == "class" else MAX_FUNCTION_LINES)]
    assert too_big == []


def test_package_init_files_only_hand_names_on() -> None:
    """An __init__.py holds a docstring, imports and __all__: nothing that runs or decides."""
    for path in PACKAGE.rglob("__init__.py"):
        for node in ast.parse(path.read_text()).body:
            allowed = isinstance(node, ast.Import | ast.ImportFrom) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
                isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets))
            assert allowed, f"{path}: line {node.lineno}"


def test_the_architecture_page_names_every_module_in_its_package_row() -> None:
    """docs/architecture.md maps every module: a new one without a line there fails here."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = {row.split("|")[1].strip().strip("`"): row for row in page.splitlines() if row.startswith("| `exporter/")}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.startswith("__"):
            continue
        folder = path.parent.relative_to(ROOT).as_posix() + "/"
        row = rows.get(folder) if folder != "exporter/" else next(r for r in page.splitlines()
                                                                  if r.startswith("| top level"))
        assert row is not None and f"`{path.name}`" in row, path.relative_to(ROOT)
