"""Webhooks end to end, real processes: the exporter, and the simulator sending signed webhooks.

- A probe flips in the simulator; with the receiver on, /metrics shows it within 1 s (p95 over 12
  flips); by polling alone it takes the probe-list schedule.
- The receiver on its own address, behind the same TLS as /metrics, never behind its basic auth.
- A flood of 1,000 deliveries over HTTP: every one answered and counted, the budget held in every
  60 s window.
- Every kind of sender (keep-alive, urllib's Connection: close, curl's HTTP/1.0, a raw HTTP/1.0 and a
  chunked body) is read, and its delivery shows on /metrics within 2 s (p95).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import ssl
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from exporter.simulator import Simulator, SimulatorServer, WorldConfig
from exporter.webhooks import sign
from tests.support.budget import max_in_window
from tests.support.ci import require_command
from tests.support.faultkit import SimulatorProcess, parse_samples, simulator_process
from tests.support.hostile import exchange, framed, request
from tests.support.processes import ExporterProcess
from tests.support.prometheus import free_port
from tests.support.webconfig import TLS_AND_AUTH, Pki, basic, write

SECRET = "whsec_" + "e2" * 20
PATH = "/webhooks/callmeter"
FLIPS = 12  # per half: with the pauses that spread flips over the schedule, about a minute each
PROBES_FLOOR = 5.0
FAST = {
    "CALLMETER_PLAN": "enterprise",
    "CALLMETER_REQUESTS_PER_MINUTE": "600",
    "CALLMETER_PROBES_MIN_INTERVAL": str(PROBES_FLOOR),
    "CALLMETER_TEST_RUNS_MIN_INTERVAL": "5",
    "CALLMETER_INVENTORY_MIN_INTERVAL": "30",
    # Forced statuses are changes off the probes' schedule, which the adaptive schedule catches only on
    # its safety net: polling is compared at the fixed probe-list floor.
    "CALLMETER_SCHEDULE": "fixed",
}


def shown_status(text: str, probe_id: str) -> str | None:
    for (name, labels), value in parse_samples(text).items():
        if name == "callmeter_probe_status" and value == 1 and ("probe_id", probe_id) in labels:
            return dict(labels)["status"]
    return None


def flip_latencies(exporter: ExporterProcess, sim: SimulatorProcess, flips: int) -> list[float]:
    """Seconds from forcing a probe's status in the simulator to /metrics showing it, per flip. Flips
    come at random moments of the probe-list schedule, not right after the read that showed the last."""
    pause = random.Random(15)
    probes = [p["id"] for p in sim.state()["probes"]]
    statuses = itertools.cycle(["UNHEALTHY", "HEALTHY", "DEGRADED", "HEALTHY"])
    latencies = []
    with httpx.Client(base_url=exporter.url, timeout=5) as client:
        for i in range(flips):
            probe = probes[i % len(probes)]
            before = shown_status(client.get("/metrics").text, probe)
            target = next(statuses)
            if target == before:
                target = "UNKNOWN"
            sim.control(f"/_sim/probes/{probe}", {"status": target})
            flipped = time.monotonic()
            while shown_status(client.get("/metrics").text, probe) != target:
                assert time.monotonic() - flipped < 4 * PROBES_FLOOR + 10, exporter.output()[-3000:]
                time.sleep(0.01)
            latencies.append(time.monotonic() - flipped)
            time.sleep(pause.uniform(0, PROBES_FLOOR))
    return latencies


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _exporter(sim: SimulatorProcess, **env: str) -> ExporterProcess:
    return ExporterProcess(env={**FAST, "CALLMETER_API_KEY": sim.key, "CALLMETER_BASE_URL": sim.base_url, **env})


def test_a_probe_flip_shows_within_a_second_with_webhooks_and_takes_the_schedule_without() -> None:
    with simulator_process() as sim, _exporter(sim, CALLMETER_WEBHOOK_SECRET=SECRET) as exporter:
        exporter.wait_ready(60)
        sim.control("/_sim/webhooks", {"url": exporter.url + PATH, "secret": SECRET})
        pushed = flip_latencies(exporter, sim, FLIPS)
        samples = parse_samples(exporter.metrics())
        applied = samples[("callmeter_exporter_webhook_deliveries_total", (("result", "applied"),))]
        confirmed = samples[("callmeter_exporter_webhook_confirmation_delay_seconds_count", ())]
        disagreed = samples[("callmeter_exporter_webhook_disagreements_total", ())]
        assert SECRET not in exporter.output()
    with simulator_process() as sim, _exporter(sim) as exporter:
        exporter.wait_ready(60)
        polled = flip_latencies(exporter, sim, FLIPS)
    print(f"\nflip -> /metrics over {FLIPS} flips, probe-list floor {PROBES_FLOOR:.0f} s:\n"
          f"  webhooks: p50 {statistics.median(pushed):.3f} s, p95 {p95(pushed):.3f} s, max {max(pushed):.3f} s\n"
          f"  polling:  p50 {statistics.median(polled):.3f} s, p95 {p95(polled):.3f} s, max {max(polled):.3f} s")
    # The reads asked for agreed with every delivery they decided (a probe flipped again before its read
    # leaves its older delivery undecided, and uncounted).
    assert applied >= FLIPS and confirmed >= FLIPS // 2 and disagreed == 0
    assert p95(pushed) < 1.0
    assert p95(polled) > 2.0 and statistics.median(polled) > 5 * statistics.median(pushed)


def test_the_receiver_alone_on_its_own_address_with_tls_and_no_basic_auth(pki: Pki) -> None:
    web = write(pki.folder, TLS_AND_AUTH, "webhooks.yml")
    hook_port = free_port()
    with simulator_process() as sim, _exporter(sim, CALLMETER_WEB_CONFIG_FILE=str(web),
                                               CALLMETER_WEBHOOK_SECRET=SECRET,
                                               CALLMETER_WEBHOOK_LISTEN_ADDRESS=f"127.0.0.1:{hook_port}") as exporter:
        trust = ssl.create_default_context(cafile=str(pki.ca))
        hooks = httpx.Client(base_url=f"https://127.0.0.1:{hook_port}", verify=trust, timeout=5)
        metrics = httpx.Client(base_url=f"https://127.0.0.1:{exporter.port}", verify=trust, timeout=5)
        try:
            exporter.wait_for(lambda: hooks.get("/healthz").status_code == 200, 30, "the receiver's address")
            probe = sim.state()["probes"][0]
            body = json.dumps({"event": "probe.status_changed", "probe_id": probe["id"],
                               "project_id": probe["project_id"], "previous_status": "HEALTHY",
                               "new_status": "UNHEALTHY"}).encode()
            answer = hooks.post(PATH, content=body, headers={"X-CallMeter-Signature": sign(body, SECRET)})
            assert answer.status_code == 200  # no Authorization header: the signature is the authentication
            assert hooks.post(PATH, content=body).status_code == 401
            assert hooks.get("/metrics").status_code == 404  # /metrics stays on the listen address
            assert metrics.post(PATH, content=body).status_code == 405  # not there: that server takes no POST
            assert metrics.get("/metrics").status_code == 401
            scraped = metrics.get("/metrics", headers={"Authorization": basic("prometheus", "s3cret-scrape")})
            assert 'callmeter_exporter_webhook_deliveries_total{result="missing_signature"} 1.0' in scraped.text
            with pytest.raises(httpx.HTTPError):
                httpx.post(f"http://127.0.0.1:{hook_port}{PATH}", content=body, timeout=5)  # TLS only
        finally:
            hooks.close()
            metrics.close()


@pytest.fixture
def tight_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(Simulator(WorldConfig())) as server:
        yield server


def test_a_flood_over_http_is_answered_counted_and_keeps_the_budget(tight_simulator: SimulatorServer) -> None:
    """1,000 deliveries in about 3 s to an exporter whose probe and run lists fill its 48-a-minute budget."""
    sim = tight_simulator.simulator
    env = {**FAST, "CALLMETER_REQUESTS_PER_MINUTE": "60", "CALLMETER_API_KEY": sorted(sim.keys)[0],
           "CALLMETER_BASE_URL": tight_simulator.base_url, "CALLMETER_WEBHOOK_SECRET": SECRET,
           "CALLMETER_LOG_LEVEL": "debug"}
    signatures: list[str] = []
    with ExporterProcess(env=env) as exporter:
        exporter.wait_ready(60)
        probes = [(p["id"], p["project_id"]) for p in sim.state()["probes"]]
        answers: dict[int, int] = {}
        started = time.monotonic()
        with httpx.Client(base_url=exporter.url, timeout=5) as client:
            for i in range(1000):
                probe, project = probes[i % len(probes)]
                payload: dict[str, Any] = {"event": "probe.status_changed", "probe_id": probe,
                                           "project_id": project, "new_status": ["DEGRADED", "HEALTHY"][i % 2],
                                           "timestamp": time.time()}
                body = json.dumps(payload).encode()
                signature = sign(body, SECRET if i % 5 else "forged")
                signatures.append(signature.removeprefix("sha256="))
                status = client.post(PATH, content=body, headers={"X-CallMeter-Signature": signature})
                answers[status.status_code] = answers.get(status.status_code, 0) + 1
                time.sleep(max(0.0, started + i * 0.003 - time.monotonic()))
        took = time.monotonic() - started
        time.sleep(60)
        samples = parse_samples(exporter.metrics())
        output = exporter.output()
    assert "webhook.delivery" in output  # logged at debug, without the secret or any signature
    assert SECRET not in output and not any(signature in output for signature in signatures)
    counted = sum(v for (name, _), v in samples.items() if name == "callmeter_exporter_webhook_deliveries_total")
    assert took < 10 and answers == {200: 800, 401: 200} and counted == 1000
    times = [t for t, *_ in sim.requests]
    assert max_in_window(times) <= 48
    assert all(code != 429 for *_, code in sim.requests)


def test_the_demo_sends_the_simulators_webhooks_to_itself() -> None:
    with ExporterProcess("--demo") as exporter:
        exporter.wait_ready(60)
        announced = exporter.output()
        assert f"probe webhooks from the simulator to http://127.0.0.1:{exporter.port}{PATH}" in announced
        api = re.search(r"simulated CallMeter API at (http://127\.0\.0\.1:\d+)/api/v1", announced)
        assert api is not None
        control = httpx.Client(base_url=api.group(1), timeout=5)
        probe = control.get("/_sim/state").json()["probes"][0]
        target = "UNKNOWN" if probe["status"] != "UNKNOWN" else "HEALTHY"
        control.post(f"/_sim/probes/{probe['id']}", json={"status": target})
        control.close()

        def applied() -> bool:
            samples = parse_samples(exporter.metrics())
            return samples[("callmeter_exporter_webhook_deliveries_total", (("result", "applied"),))] >= 1

        exporter.wait_for(applied, 5, "the demo's webhook")
        assert shown_status(exporter.metrics(), probe["id"]) == target


def _send_keep_alive(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> int:
    return client.post(url, content=body, headers=headers).status_code


def _send_urllib(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # Connection: close
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(answer.status)


def _send_curl_http10(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> int:
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    curl = require_command("curl", "curl")  # missing: skipped here, a failure in CI
    done = subprocess.run([curl, "-s", "--http1.0", "-o", "/dev/null", "-w", "%{http_code}", *flags,
                           "--data-binary", "@-", url], input=body, capture_output=True, timeout=10, check=True)
    return int(done.stdout)


def _send_raw(url: str, body: bytes, headers: dict[str, str], *, version: str, chunked: bool) -> int:
    framing, wire = framed(body, chunked=chunked)
    sent = request("POST", PATH, *[f"{k}: {v}" for k, v in headers.items()], framing, "Connection: close",
                   body=wire, version=version)
    return exchange(urlsplit(url).port or 80, sent, answers=1).statuses[0]


SENDERS: dict[str, Callable[[httpx.Client, str, bytes, dict[str, str]], int]] = {
    "httpx keep-alive": _send_keep_alive,
    "urllib (Connection: close)": _send_urllib,
    "curl --http1.0": _send_curl_http10,
    "raw HTTP/1.0": lambda _c, url, body, headers: _send_raw(url, body, headers, version="HTTP/1.0", chunked=False),
    "raw chunked": lambda _c, url, body, headers: _send_raw(url, body, headers, version="HTTP/1.1", chunked=True),
}


def test_every_sender_shows_on_metrics_as_fast_as_a_keep_alive_one() -> None:
    """Issue 21: deliveries from urllib, HTTP/1.0 and chunked senders are read and show on /metrics
    within 2 s (p95), as from a keep-alive sender. Each delivery names a status the simulator's probe
    then really has, so the read it asks for agrees."""
    rounds = 8
    with simulator_process() as sim, _exporter(sim, CALLMETER_WEBHOOK_SECRET=SECRET) as exporter:
        exporter.wait_ready(60)
        probes = [(p["id"], p["project_id"]) for p in sim.state()["probes"]]
        statuses = itertools.cycle(["UNHEALTHY", "DEGRADED", "HEALTHY", "UNKNOWN"])
        latencies: dict[str, list[float]] = {name: [] for name in SENDERS}
        with httpx.Client(base_url=exporter.url, timeout=5) as client:
            for i in range(rounds):
                for name, send in SENDERS.items():
                    probe, project = probes[i % len(probes)]
                    status = next(statuses)
                    if status == shown_status(client.get("/metrics").text, probe):
                        status = next(statuses)
                    sim.control(f"/_sim/probes/{probe}", {"status": status})
                    body = json.dumps({"event": "probe.status_changed", "probe_id": probe, "project_id": project,
                                       "new_status": status, "timestamp": time.time()}).encode()
                    sent = time.monotonic()
                    code = send(client, exporter.url + PATH, body,
                                {"X-CallMeter-Signature": sign(body, SECRET), "Content-Type": "application/json"})
                    assert code == 200, name
                    while shown_status(client.get("/metrics").text, probe) != status:
                        assert time.monotonic() - sent < 10, (name, exporter.output()[-3000:])
                        time.sleep(0.01)
                    latencies[name].append(time.monotonic() - sent)
        applied = parse_samples(exporter.metrics())[("callmeter_exporter_webhook_deliveries_total",
                                                     (("result", "applied"),))]
    print("\ndelivery -> /metrics, per sender (p50 / p95 / max, s):")
    for name, values in latencies.items():
        print(f"  {name:<28} {statistics.median(values):.3f} / {p95(values):.3f} / {max(values):.3f}")
    assert applied == rounds * len(SENDERS)
    for name, values in latencies.items():
        assert p95(values) < 2.0, name
