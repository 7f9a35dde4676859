"""The gate reads its options from CALLMETER_* variables too: the machine's must not reach its tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_callmeter_environment(no_callmeter_environment: None) -> None:
    """Every gate test runs without CALLMETER_* variables and GITHUB_STEP_SUMMARY."""
