"""Shared fixtures: a simulator over real HTTP, test certificates, and clean global state between tests.

The folder is the tier: tests/unit holds the fast tests, tests/e2e the ones that start real processes
(tests/e2e/conftest.py marks them `e2e`). Collection fails when a test sits elsewhere or a unit test
carries the marker, so that `-m "not e2e"` and `-m e2e` always select exactly one folder each."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from exporter import logs
from exporter.simulator import Simulator, SimulatorServer, WorldConfig
from tests.support.ci import require_command
from tests.support.webconfig import Pki, make_pki

TESTS = Path(__file__).parent
UNIT, E2E = TESTS / "unit", TESTS / "e2e"


@pytest.hookimpl(tryfirst=True)  # before -m deselects, so that a misplaced test cannot hide
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.path.is_relative_to(TESTS)]
    stray = [item.nodeid for item in ours if not item.path.is_relative_to(UNIT) and not item.path.is_relative_to(E2E)]
    marked = [item.nodeid for item in ours if item.path.is_relative_to(UNIT) and item.get_closest_marker("e2e")]
    if stray:
        raise pytest.UsageError("tests belong in tests/unit/<layer>/ or tests/e2e/: " + ", ".join(stray))
    if marked:
        raise pytest.UsageError("the e2e marker comes from the folder; move these to tests/e2e/: " + ", ".join(marked))


@pytest.fixture(autouse=True)
def _clean_global_state() -> Iterator[None]:
    """Secrets registered for redaction and structlog's configuration do not leak between tests.

    Tests log at INFO: hours of simulated schedule would otherwise print every request."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    logs.forget_secrets()
    structlog.reset_defaults()


@pytest.fixture
def no_callmeter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CALLMETER_* variable, and no GITHUB_STEP_SUMMARY, reaches code that reads its settings in-process."""
    for name in [n for n in os.environ if n.startswith("CALLMETER_") or n == "GITHUB_STEP_SUMMARY"]:
        monkeypatch.delenv(name)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """The simulated CallMeter API on a free loopback port."""
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with a server and a client certificate, and a client certificate from another CA."""
    require_command("openssl", "openssl")  # makes the test certificates
    return make_pki(tmp_path_factory.mktemp("pki"))
