"""/metrics under a bounded loopback load while snapshots are being swapped.

In-process: a MetricsServer on its own event loop, a publisher swapping in a new snapshot every 10 ms
(every value of a snapshot is its generation number, so a torn read would show two), and four client
threads on keep-alive connections asking for every variant (text / OpenMetrics, plain / gzip) for
about 5 s. Every answer must be a complete exposition that prometheus_client parses, from one
generation only. It prints its figures; wrk against the real `--demo` process is tests/e2e/test_load.py.
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
from collections import Counter

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.expose.exposition import render
from tests.support.faultkit import ServerThread

DURATION = 5.0
CLIENTS = 4
PROBES = 300
VARIANTS = [  # (Accept, Accept-Encoding)
    ("text/plain", ""),
    ("text/plain", "gzip"),
    ("application/openmetrics-text; version=1.0.0", ""),
    ("application/openmetrics-text; version=1.0.0", "gzip"),
]


def generation(n: int) -> list[Metric]:
    """A snapshot whose every sample is `n`."""
    status = GaugeMetricFamily("callmeter_probe_status", "Probe status. Cached.", labels=["probe_id", "status"])
    interval = GaugeMetricFamily("callmeter_probe_interval_seconds", "Interval. Cached.", labels=["probe_id"])
    for i in range(PROBES):
        status.add_metric([f"probe-{i:04d}", "HEALTHY"], n)
        interval.add_metric([f"probe-{i:04d}"], n)
    return [GaugeMetricFamily("load_generation", "Generation of the snapshot.", value=n), status, interval]


def check(body: bytes, *, openmetrics: bool) -> None:
    """A complete exposition from one snapshot; raises otherwise."""
    text = body.decode("utf-8")
    if openmetrics:
        assert text.endswith("# EOF\n"), "no # EOF at the end"
        families = list(parse_openmetrics(text))  # type: ignore[no-untyped-call]
    else:
        assert text.endswith("\n"), "does not end with a newline"
        families = list(parse_text(text))
    generations = {s.value for f in families if f.name.startswith(("load_generation", "callmeter_probe_"))
                   for s in f.samples}
    assert len(generations) == 1, f"a torn snapshot: generations {sorted(generations)[:5]}"
    assert sum(len(f.samples) for f in families if f.name.startswith("callmeter_probe_")) == 2 * PROBES
    assert any(f.name == "callmeter_up" for f in families), "the exporter's own metrics are missing"


def test_metrics_under_load_while_snapshots_swap() -> None:
    with ServerThread() as server:
        server.call(lambda: server.exposition.publish_rendered(render(generation(0))))
        stop = threading.Event()
        swaps = 0

        def publisher() -> None:
            nonlocal swaps
            n = 0
            while not stop.is_set():
                n += 1
                rendered = render(generation(n))  # off the loop, as the daemon renders
                server.loop.call_soon_threadsafe(server.exposition.publish_rendered, rendered)
                # The exporter's own metrics move too (their part is re-rendered when they change).
                server.loop.call_soon_threadsafe(server.metrics.request, "/projects", "200", 0.01)
                swaps += 1
                time.sleep(0.01)

        results: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            deadline = time.monotonic() + DURATION
            n = index
            while time.monotonic() < deadline:
                accept, encoding = VARIANTS[n % len(VARIANTS)]
                n += 1
                try:
                    connection.request("GET", "/metrics", headers={"Accept": accept, "Accept-Encoding": encoding})
                    response = connection.getresponse()
                    body = response.read()
                    assert response.status == 200, response.status
                    if response.getheader("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    check(body, openmetrics="openmetrics" in accept)
                except Exception as exc:  # every failure is counted and reported, none may happen
                    with lock:
                        results["error"] += 1
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                    continue
                with lock:
                    results["ok"] += 1
            connection.close()

        threads = [threading.Thread(target=publisher, daemon=True)]
        threads += [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        started = time.monotonic()
        for thread in threads[1:]:
            thread.start()
        threads[0].start()
        for thread in threads[1:]:
            thread.join(DURATION + 30)
        elapsed = time.monotonic() - started
        stop.set()
        threads[0].join(10)
    rate = results["ok"] / elapsed
    print(f"\nin-process load: {results['ok']} complete expositions in {elapsed:.1f}s ({rate:.0f} req/s, "
          f"{CLIENTS} keep-alive clients, parsed), {results['error']} errors, {swaps} snapshot swaps")
    assert not failures, failures[:5]
    assert results["ok"] >= 50
    assert swaps >= 50
