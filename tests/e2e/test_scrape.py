"""A real Prometheus scrapes the HTTP server: Go's decoders accept gzipped OpenMetrics and gzipped text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.exposition import TEXT_ONLY_ACCEPT, sample_families
from tests.support.faultkit import ServerThread
from tests.support.prometheus import run_prometheus, wait_until
from tests.support.proxy import AcceptProxy


def test_prometheus_scrapes_gzip_openmetrics_and_gzip_text(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerThread()  # its own loop in a thread, so that the test can block on Prometheus
    exposition = server.exposition
    exposition.publish(sample_families(2000))
    server.metrics.request("/projects", "200", 0.1)
    asked: set[tuple[bool, bool]] = set()
    body = exposition.body

    def recording_body(*, openmetrics: bool, gzipped: bool) -> tuple[list[bytes], str]:
        asked.add((openmetrics, gzipped))
        return body(openmetrics=openmetrics, gzipped=gzipped)

    monkeypatch.setattr(exposition, "body", recording_body)  # records what was asked for; changes nothing
    with server, AcceptProxy(server.port, TEXT_ONLY_ACCEPT) as proxy:
        # One Prometheus, two jobs: "callmeter" scrapes the exporter as Prometheus 2 does (OpenMetrics first);
        # "callmeter-text" scrapes it through the proxy, with the Accept header of a text-only scraper.
        config = ("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                  "scrape_configs:\n"
                  f"  - job_name: callmeter\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
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
