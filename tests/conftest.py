"""Shared fixtures: a simulator over real HTTP, and clean global state between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from exporter import logs
from exporter.simulator import Simulator, SimulatorServer, WorldConfig


@pytest.fixture(autouse=True)
def _clean_global_state() -> Iterator[None]:
    """Secrets registered for redaction and structlog's configuration do not leak between tests."""
    yield
    logs.forget_secrets()
    structlog.reset_defaults()


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """The simulated CallMeter API on a free loopback port."""
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server
