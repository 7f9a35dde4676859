"""The process: a clean stop on SIGTERM or SIGINT with requests in flight."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig
from tests.support.processes import ExporterProcess

FAST = {
    "CALLMETER_PLAN": "enterprise",
    "CALLMETER_REQUESTS_PER_MINUTE": "600",
    "CALLMETER_PROBES_MIN_INTERVAL": "1",
    "CALLMETER_TEST_RUNS_MIN_INTERVAL": "1",
    "CALLMETER_INVENTORY_MIN_INTERVAL": "2",
}


@pytest.fixture
def slow_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server


def _in_flight() -> int:
    """Simulator handler threads alive in this process: requests being answered (slowly) right now."""
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_requests_in_flight_exits_0_within_5_seconds(slow_simulator: SimulatorServer,
                                                                 sig: signal.Signals) -> None:
    env = {**FAST, "CALLMETER_API_KEY": DEMO_KEY, "CALLMETER_BASE_URL": slow_simulator.base_url,
           "CALLMETER_HTTP_TIMEOUT": "30"}
    with ExporterProcess(env=env) as exporter:
        exporter.wait_ready(30)
        slow_simulator.simulator.set_faults(latency=20.0)  # every answer takes far longer than the grace
        exporter.wait_for(lambda: _in_flight() >= 2, 10, "requests in flight")
        sent = time.monotonic()
        exporter.proc.send_signal(sig)
        code = exporter.proc.wait(10)
        took = time.monotonic() - sent
        output = exporter.output()
        slow_simulator.simulator.set_faults(latency=0.0)
    assert code == 0, output[-2000:]
    assert took < 5, f"took {took:.1f}s to stop"
    assert '"exporter.stopped"' in output
    for noise in ("Traceback", "Task was destroyed", "Unclosed", "never awaited", "refresh.crashed"):
        assert noise not in output, output[-2000:]
