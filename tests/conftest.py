"""Shared fixtures: a simulator over real HTTP, test certificates, and clean global state between tests."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest
import structlog

from exporter import logs
from exporter.simulator import Simulator, SimulatorServer, WorldConfig
from tests.support.webconfig import Pki, make_pki


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


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with a server and a client certificate, and a client certificate from another CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))
