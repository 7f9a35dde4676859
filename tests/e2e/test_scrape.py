"""A real Prometheus scrapes the HTTP server: Go's decoders accept gzipped OpenMetrics and gzipped text."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

import exporter.expose.listener
from exporter.expose.exposition import Exposition
from exporter.expose.selfmetrics import ExporterMetrics
from tests.support.exposition import make_exposition, sample_families
from tests.support.listening import make_listener
from tests.support.prometheus import run_prometheus, wait_until

TIMEOUT = 10.0


@contextlib.contextmanager
def served_in_a_thread(exposition: Exposition, metrics: ExporterMetrics) -> Iterator[int]:
    """An HttpListener on its own event loop in a thread, so that the test can block on Prometheus."""
    loop = asyncio.new_event_loop()
    server = make_listener(exposition, metrics)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(TIMEOUT)
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()


def test_prometheus_scrapes_gzip_openmetrics_and_gzip_text(monkeypatch: pytest.MonkeyPatch) -> None:
    exposition, metrics = make_exposition()
    exposition.publish(sample_families(2000))
    metrics.request("/projects", "200", 0.1)
    asked: set[tuple[bool, bool]] = set()
    body = exposition.body

    def recording_body(*, openmetrics: bool, gzipped: bool) -> tuple[list[bytes], str]:
        asked.add((openmetrics, gzipped))
        return body(openmetrics=openmetrics, gzipped=gzipped)

    monkeypatch.setattr(exposition, "body", recording_body)
    with served_in_a_thread(exposition, metrics) as port:
        config = ("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                  "scrape_configs:\n"
                  f"  - job_name: callmeter\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
        with run_prometheus(config) as prometheus:
            def healthy_scrape_after(moment: float) -> dict[str, Any] | None:
                for target in prometheus.targets():
                    scraped = target.get("lastScrape", "")
                    if target["health"] == "up" and scraped and _unix(scraped) > moment:
                        return target
                return None

            target = wait_until(lambda: healthy_scrape_after(0), timeout=30, what="a healthy scrape",
                                diagnostics=prometheus.log_tail)
            assert target["lastError"] == ""
            up = wait_until(lambda: prometheus.query('up{job="callmeter"}'), timeout=30, what="up")
            assert up[0]["value"][1] == "1"
            unhealthy = prometheus.query('callmeter_probe_status{status="UNHEALTHY"} == 1')
            assert len(unhealthy) == sum(1 for i in range(2000) if i % 3 == 2)  # every series of the body arrived
            assert prometheus.query("callmeter_exporter_api_requests_total")
            assert asked == {(True, True)}  # gzipped OpenMetrics

            # the same through the classic text format (Prometheus 2 asks for OpenMetrics first)
            monkeypatch.setattr(exporter.expose.listener, "wants_openmetrics", lambda accept: False)
            switched = time.time()
            target = wait_until(lambda: healthy_scrape_after(switched + 0.5), timeout=30,
                                what="a healthy scrape of the text format", diagnostics=prometheus.log_tail)
            assert target["lastError"] == ""
            assert prometheus.query('up{job="callmeter"} == 1')
            assert (False, True) in asked  # gzipped text


def _unix(rfc3339: str) -> float:
    """Prometheus' lastScrape (RFC 3339 with nanoseconds) as unix seconds."""
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in fraction:
            fraction, zone = fraction.split(sign, 1)[0], sign + fraction.split(sign, 1)[1]
    moment = datetime.fromisoformat(whole + (zone or "+00:00"))
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)
