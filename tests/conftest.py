"""Shared fixtures: a simulator over real HTTP, and clean global state between tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from exporter import logs
from exporter.simulator import Simulator, SimulatorServer, WorldConfig


@pytest.fixture(autouse=True)
def _clean_global_state() -> Iterator[None]:
    """Secrets registered for redaction and structlog's configuration do not leak between tests.

    Tests log at INFO: hours of simulated schedule would otherwise print every request."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    yield
    logs.forget_secrets()
    structlog.reset_defaults()


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """The simulated CallMeter API on a free loopback port."""
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server
