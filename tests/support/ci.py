"""One answer to "is this CI?", for every test that skips on a workstation but must fail in CI.

CI sets `CI` (`.ci/run` runs with `CI=true`; other runners say `1` or `yes`). A tool or package that
is missing there is a broken install step, not a reason to skip: `.ci/run` installs everything these
tests need, so `unavailable` fails in CI and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

CI_VALUES = frozenset({"true", "1", "yes"})


def in_ci() -> bool:
    """CI set to true, 1 or yes (any case, surrounding spaces ignored)."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def unavailable(message: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where `.ci/run` must have installed it."""
    if in_ci():
        pytest.fail(f"missing in CI: {message}")
    pytest.skip(message)


def require_command(name: str, package: str) -> str:
    """The path of command `name`; without it, skip (fail in CI) naming the Debian `package` to install."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name!r} not found on PATH; install the Debian package {package}")
    return path
