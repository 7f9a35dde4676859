"""ruff and mypy are part of the test command: style and types break the build like a failing test.
And the tests keep their own house rule: what they share lives in tests/support (or comes as a fixture
from a conftest.py), never in another test module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ci import in_ci, require_command
from tests.support.paths import ROOT, TESTS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "exporter", "tests", "benchmarks", "grafana", "docs")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    result = run("mypy", "exporter")
    assert result.returncode == 0, result.stdout + result.stderr


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in `path`, relative ones resolved, `from m import n` as `m.n`."""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def test_test_modules_import_only_support_from_the_tests() -> None:
    shared = []
    for path in sorted(TESTS.rglob("*.py")):
        for line, name in imported_names(path):
            if name.split(".")[0] == "tests" and name.split(".")[:2] != ["tests", "support"]:
                shared.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not shared, "move what tests share to tests/support/ (fixtures to a conftest.py):\n" + "\n".join(shared)


# Whether this is CI decides between a skip and a failure: one helper answers it, so that no test skips in
# CI because it spelled the question differently (CI=1 and CI=yes are CI too).
READS_CI = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']CI["']""")


def test_only_the_ci_helper_reads_the_ci_variable() -> None:
    helper = TESTS / "support" / "ci.py"
    readers = [f"{path.relative_to(ROOT)}:{number}" for path in sorted(TESTS.rglob("*.py")) if path != helper
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if READS_CI.search(line)]
    assert not readers, "ask tests.support.ci.in_ci() instead:\n" + "\n".join(readers)


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("yes", True), (" TRUE ", True), ("Yes", True),
                                           ("false", False), ("0", False), ("no", False), ("", False), (None, False)])
def test_ci_is_true_1_or_yes_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str | None, ci: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_missing_tool_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "yes")
    with pytest.raises(pytest.fail.Exception, match="missing in CI"):
        require_command("openssl", "openssl")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="install the Debian package openssl"):
        require_command("openssl", "openssl")
