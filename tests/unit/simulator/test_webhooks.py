"""The simulator's webhooks: signed deliveries on every probe status change, with retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from exporter.simulator import Simulator, SimulatorServer, WorldConfig
from exporter.webhooks.verify import Signature, check_signature

SECRET = "whsec_simulated_secret"


class Catcher:
    """A webhook endpoint on 127.0.0.1 that records what it got and answers `codes` in turn (then 200)."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.codes = list(codes or [])
        self.lock = threading.Lock()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with catcher.lock:
                    catcher.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    code = catcher.codes.pop(0) if catcher.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= count:
                    return list(self.got)
            time.sleep(0.02)
        raise AssertionError(f"got {len(self.got)} deliveries, wanted {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher()
    yield c
    c.close()


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server


def _probe(sim: SimulatorServer) -> dict[str, Any]:
    probe: dict[str, Any] = sim.simulator.state()["probes"][0]
    return probe


def test_a_forced_change_is_delivered_signed_with_the_documented_fields(sim: SimulatorServer,
                                                                       catcher: Catcher) -> None:
    sim.simulator.webhooks.configure(url=catcher.url, secret=SECRET)
    probe = _probe(sim)
    new = "UNHEALTHY" if probe["status"] != "UNHEALTHY" else "DEGRADED"
    sent = time.monotonic()
    sim.simulator.set_probe_status(probe["id"], new)
    sim.simulator.webhooks.poke()
    headers, body = catcher.wait(1)[0]
    assert time.monotonic() - sent < 1.0
    assert check_signature(body, headers["x-callmeter-signature"], [SECRET.encode()]) is Signature.VALID
    payload = json.loads(body)
    project = next(p for p in sim.simulator.state()["projects"] if p["id"] == probe["project_id"])
    assert payload == {"event": "probe.status_changed", "probe_id": probe["id"], "probe_name": probe["name"],
                       "project_id": project["id"], "project_name": project["name"],
                       "previous_status": probe["status"], "new_status": new, "timestamp": payload["timestamp"]}
    assert abs(payload["timestamp"] - time.time()) < 5


def test_nothing_is_sent_while_the_status_stays(sim: SimulatorServer, catcher: Catcher) -> None:
    sim.simulator.webhooks.configure(url=catcher.url, secret=SECRET)
    probe = _probe(sim)
    sim.simulator.set_probe_status(probe["id"], probe["status"])  # forced to what it already is
    sim.simulator.webhooks.poke()
    time.sleep(0.5)
    assert catcher.got == []


def test_a_delivery_not_answered_2xx_is_retried(sim: SimulatorServer) -> None:
    catcher = Catcher(codes=[500, 503])
    try:
        sim.simulator.webhooks.configure(url=catcher.url, secret=SECRET, retries=3)
        probe = _probe(sim)
        sim.simulator.set_probe_status(probe["id"], "UNKNOWN" if probe["status"] != "UNKNOWN" else "HEALTHY")
        sim.simulator.webhooks.poke()
        got = catcher.wait(3)
        assert len({body for _, body in got}) == 1  # the same delivery, three times
        time.sleep(1.0)
        assert len(catcher.got) == 3  # answered 200 the third time: no more
        attempts = [(s.attempt, s.code) for s in sim.simulator.webhooks.sent]
        assert attempts == [(0, 500), (1, 503), (2, 200)]
    finally:
        catcher.close()


def test_the_undocumented_choices_can_be_varied(sim: SimulatorServer, catcher: Catcher) -> None:
    sim.simulator.webhooks.configure(url=catcher.url, secret=SECRET, signature_format="hex",
                                     signature_header="X-Signature", status_field="status", timestamp="header")
    probe = _probe(sim)
    sim.simulator.set_probe_status(probe["id"], "DEGRADED" if probe["status"] != "DEGRADED" else "HEALTHY")
    sim.simulator.webhooks.poke()
    headers, body = catcher.wait(1)[0]
    assert not headers["x-signature"].startswith("sha256=")
    assert check_signature(body, headers["x-signature"], [SECRET.encode()]) is Signature.VALID
    payload = json.loads(body)
    assert "status" in payload and "new_status" not in payload and "timestamp" not in payload
    assert "x-callmeter-timestamp" in headers


def test_natural_changes_are_each_found_once() -> None:
    now = [1_800_000_000.0]
    sim = Simulator(WorldConfig(projects=2, probes_per_project=5), clock=lambda: now[0])
    sender = sim.webhooks
    assert sender.check() == 0  # the first look only takes note
    changes = 0
    for _ in range(200):
        before = sender.statuses()
        now[0] += 60
        found = sender.check()
        assert found == sum(1 for pid, status in sender.statuses().items() if before[pid] != status)
        assert len(sender._queue) == changes + found
        changes += found
        assert sender.check() == 0  # nothing new without time passing
    assert changes > 10  # probes change health now and then


def test_the_control_route_configures_and_reports_without_the_secret(sim: SimulatorServer, catcher: Catcher) -> None:
    response = sim.simulator.handle("POST", "/_sim/webhooks", {},
                                    json.dumps({"url": catcher.url, "secret": SECRET}).encode())
    assert response.status == 200
    report = json.loads(response.body)
    assert report["url"] == catcher.url and SECRET not in response.body.decode()
    assert sim.simulator.handle("POST", "/_sim/webhooks", {}, b'{"nope": 1}').status == 400
