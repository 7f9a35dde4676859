"""A real Prometheus scrapes the HTTP server: Go's decoders accept gzipped OpenMetrics and gzipped text."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.expose.exposition import Exposition
from exporter.expose.selfmetrics import ExporterMetrics
from tests.support.exposition import TEXT_ONLY_ACCEPT, make_exposition, sample_families
from tests.support.listening import make_listener
from tests.support.prometheus import run_prometheus, wait_until
from tests.support.proxy import AcceptProxy

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

    monkeypatch.setattr(exposition, "body", recording_body)  # records what was asked for; changes nothing
    with served_in_a_thread(exposition, metrics) as port, AcceptProxy(port, TEXT_ONLY_ACCEPT) as proxy:
        # One Prometheus, two jobs: "callmeter" scrapes the exporter as Prometheus 2 does (OpenMetrics first);
        # "callmeter-text" scrapes it through the proxy, with the Accept header of a text-only scraper.
        config = ("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                  "scrape_configs:\n"
                  f"  - job_name: callmeter\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
                  f"  - job_name: callmeter-text\n    static_configs: [{{targets: ['127.0.0.1:{proxy.port}']}}]\n")
        with run_prometheus(config) as prometheus:
            def healthy(job: str) -> dict[str, Any] | None:
                return next((t for t in prometheus.targets() if t["labels"]["job"] == job and t["health"] == "up"
                             and t.get("lastScrape")), None)

            for job in ("callmeter", "callmeter-text"):
                target = wait_until(lambda job=job: healthy(job), timeout=30, what=f"a healthy scrape of {job}",
                                    diagnostics=prometheus.log_tail)
                assert target["lastError"] == ""
                up = wait_until(lambda job=job: prometheus.query(f'up{{job="{job}"}} == 1'), timeout=30,
                                what=f"up for {job}")
                assert up[0]["value"][1] == "1"
                unhealthy = wait_until(lambda job=job: prometheus.query(
                    f'callmeter_probe_status{{job="{job}",status="UNHEALTHY"}} == 1'), timeout=30,
                    what=f"the probe series of {job}")
                assert len(unhealthy) == sum(1 for i in range(2000) if i % 3 == 2)  # every series of the body
                assert prometheus.query(f'callmeter_exporter_api_requests_total{{job="{job}"}}')

            # Prometheus asked for OpenMetrics; the proxy asked for text, and the exporter chose text.
            received, sent, status, content_type, encoding = proxy.exchanges[0]
            assert received.startswith("application/openmetrics-text") and sent == TEXT_ONLY_ACCEPT
            assert status == 200 and content_type.startswith("text/plain; version=0.0.4") and encoding == "gzip"
            assert asked == {(True, True), (False, True)}  # gzipped OpenMetrics and gzipped text
