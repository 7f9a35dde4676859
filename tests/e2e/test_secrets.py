"""The API key: re-read when its file changes, and never shown anywhere (the redaction itself, in-process,
is tests/unit/api/test_secrets.py).

These tests run the simulator in this process (its set of valid keys can only be changed in-process)
and the exporter as a real process reading the key from a file or the environment.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import Faults, Simulator, SimulatorServer, WorldConfig
from tests.support.faultkit import parse_samples
from tests.support.keys import new_key
from tests.support.processes import ExporterProcess

FAST = {
    "CALLMETER_PLAN": "enterprise",
    "CALLMETER_REQUESTS_PER_MINUTE": "1200",
    "CALLMETER_PROBES_MIN_INTERVAL": "1",
    "CALLMETER_TEST_RUNS_MIN_INTERVAL": "1",
    "CALLMETER_INVENTORY_MIN_INTERVAL": "2",
    "CALLMETER_HTTP_TIMEOUT": "1",
}


@pytest.fixture
def own_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(WorldConfig(projects=2, probes_per_project=2, tests_per_project=2,
                                               run_period=15, run_duration=3), keys=set())) as server:
        yield server


def _errors(exporter: ExporterProcess) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), value in parse_samples(exporter.metrics()).items():
        if name == "callmeter_exporter_api_errors_total":
            kind = dict(labels)["error"]
            out[kind] = out.get(kind, 0) + value
    return out


def _up(exporter: ExporterProcess) -> float | None:
    return parse_samples(exporter.metrics()).get(("callmeter_up", ()))


def _events(exporter: ExporterProcess, name: str) -> list[dict[str, object]]:
    out = []
    for line in exporter.output().splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                out.append(event)
    return out


def test_key_file_rotation_mid_run_switches_keys_without_a_401(own_simulator: SimulatorServer,
                                                               tmp_path: Path) -> None:
    """A Kubernetes-style Secret: the file is a symlink through `..data`, swapped atomically."""
    sim = own_simulator.simulator
    old, new = new_key(), new_key()
    sim.keys.add(old)
    for version, key in (("..v1", old), ("..v2", new)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "api-key").write_text(key + "\n")
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "api-key").symlink_to("..data/api-key")
    env = {**FAST, "CALLMETER_API_KEY_FILE": str(tmp_path / "api-key"), "CALLMETER_BASE_URL": own_simulator.base_url}
    with ExporterProcess(env=env) as exporter:
        exporter.wait_ready(30)
        sim.keys.add(new)
        (tmp_path / "..data_tmp").symlink_to("..v2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        exporter.wait_for(lambda: bool(_events(exporter, "api_key.reloaded")), 10, "the new key to be read")
        time.sleep(1.0)  # requests built with the old key before the swap have landed
        with sim.lock:
            sim.keys.discard(old)
            sim.revoked.add(old)
            served = len(sim.requests)
        exporter.wait_for(lambda: len(sim.requests) > served + 10, 20, "requests with the new key")
        statuses = [status for *_, status in sim.requests[served:]]
        assert 401 not in statuses
        assert _up(exporter) == 1
        assert _errors(exporter).get("unauthorized", 0) == 0

        # A broken file (a half-written secret) keeps the last good key, and says so once.
        (tmp_path / "..v2" / "api-key").write_text("not a key\n")
        exporter.wait_for(lambda: bool(_events(exporter, "api_key.unreadable")), 10, "the broken file to be noticed")
        served = len(sim.requests)
        exporter.wait_for(lambda: len(sim.requests) > served + 10, 20, "requests with the last good key")
        assert 401 not in [status for *_, status in sim.requests[served:]]
        assert len(_events(exporter, "api_key.unreadable")) == 1
        (tmp_path / "..v2" / "api-key").write_text(new + "\n")
        exporter.wait_for(lambda: bool(_events(exporter, "api_key.readable")), 10, "the fixed file to be noticed")
        assert _up(exporter) == 1
        output = exporter.output()
    assert old not in output and new not in output


def test_the_key_never_shows_on_any_error_path(own_simulator: SimulatorServer) -> None:
    """401, 403, 404, 429, 5xx, timeouts and garbled bodies at debug level (httpx and httpcore included):
    the key is in no log line, no metric, no page."""
    sim = own_simulator.simulator
    key = new_key()
    body = key.removeprefix("cmk_")
    sim.keys.add(key)
    env = {**FAST, "CALLMETER_API_KEY": key, "CALLMETER_BASE_URL": own_simulator.base_url,
           "CALLMETER_LOG_LEVEL": "debug"}
    pages: list[str] = []
    with ExporterProcess(env=env) as exporter:
        exporter.wait_ready(30)
        staging = next(p.id for p in sim.world.projects.values() if p.slug == "staging")

        def provoke(kind: str, **faults: object) -> None:
            before = _errors(exporter).get(kind, 0)
            sim.set_faults(**faults)
            exporter.wait_for(lambda: _errors(exporter).get(kind, 0) > before, 45, f"a {kind} error")
            with sim.lock:
                sim.faults = Faults()
            pages.extend([exporter.metrics(), exporter.get("/").text])

        provoke("server_error", error_rate=1.0)
        provoke("timeout", latency=2.0)
        provoke("invalid_response", malformed_rate=1.0)
        provoke("rate_limited", burst_429=3, retry_after_seconds=1)
        provoke("forbidden", forbidden_projects=["staging"])
        before = _errors(exporter).get("unauthorized", 0)
        sim.revoked.add(key)
        exporter.wait_for(lambda: _errors(exporter).get("unauthorized", 0) > before, 20, "a 401")
        assert _up(exporter) == 0
        pages.extend([exporter.metrics(), exporter.get("/").text, exporter.get("/healthz").text])
        sim.revoked.discard(key)
        exporter.wait_for(lambda: _up(exporter) == 1, 20, "recovery after the key is restored")
        before = _errors(exporter).get("not_found", 0)
        sim.delete("project", staging)
        # A 404 comes when a staging listing is due before the project list notices the deletion;
        # when the project list is first, staging just goes. Either way, no key may show.
        exporter.wait_for(lambda: _errors(exporter).get("not_found", 0) > before
                          or 'project="staging"' not in exporter.metrics(), 45, "a 404 or staging gone")
        pages.extend([exporter.metrics(), exporter.get("/").text, exporter.get("/readyz").text])
        assert exporter.stop() == 0
        output = exporter.output()
    assert '"level": "debug"' in output, "debug logging was not on"
    assert "httpcore" in output or "send_request_headers" in output, "httpcore's debug output was not captured"
    for text in [output, *pages]:
        assert key not in text
        assert body not in text
        assert body[:16] not in text
