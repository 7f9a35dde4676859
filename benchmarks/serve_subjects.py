"""The servers `serve.py` measures, each started in a child process of its own, and the snapshot they serve.

- new: `HttpListener` (aiohttp's server behind the edge's guard) and an `Exposition` holding one rendered
  snapshot, wired as the daemon wires them (own metrics and rejections on the same registry);
- client_python: `prometheus_client.start_http_server` (its WSGI app on wsgiref, a thread per
  connection) serving a registry with the same families: the snapshot's, built once and handed to each
  scrape (the best a client_python exporter can do: the render and the gzip are per scrape), and the
  same own metrics;
- limit: an asyncio Protocol that answers every request with the new server's response bytes, prebuilt,
  reading nothing but where a request ends: the most a Python process can serve.

Each child prints one JSON line once it listens (its port and facts) and then serves until stopped.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import logs
from exporter.api.models import Probe, Project, Registrar, RunSummary, Test, TestRun
from exporter.app.serve import SPARE_DESCRIPTORS, raise_descriptor_limit
from exporter.expose.edge import EdgeLimits, Rejections, quiet_library_loggers
from exporter.expose.exposition import Exposition
from exporter.expose.families import snapshot_families
from exporter.expose.listener import HttpListener
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.snapshot import ProjectData, Snapshot

SERIES_PER_UNIT = 29  # one probe (7 series) and one test with its runs (22 series)
PROBE_STATUSES = ("HEALTHY", "HEALTHY", "HEALTHY", "DEGRADED", "UNHEALTHY")
LISTENER = "main"


# ---------------------------------------------------------------- synthetic data


def _id(kind: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"callmeter-bench/{kind}/{n}"))


def synthetic_snapshot(series: int, *, now: float | None = None) -> Snapshot:
    """A snapshot whose families hold about `series` samples, with label values like the real API's."""
    now = time.time() if now is None else now
    units = max(1, round(series / SERIES_PER_UNIT))
    project_count = max(2, min(50, units // 100))
    projects = []
    finished: dict[tuple[str, str, str], int] = {}
    for p in range(project_count):
        slug = ("production", "staging")[p] if p < 2 else f"team-{p:02d}"
        project = Project.model_construct(id=_id("project", p), slug=slug, name=f"{slug.title()} SIP monitoring")
        share = range(p, units, project_count)
        probes = tuple(Probe.model_construct(
            id=_id("probe", i), name=f"sip-trunk-{('eu-west', 'us-east', 'ap-south')[i % 3]}-{i:04d} registration",
            status=PROBE_STATUSES[i % len(PROBE_STATUSES)], interval_minutes=float(1 + i % 15),
            last_execution_at=now - 30 - i % 60, next_execution_at=now + 30 + i % 60) for i in share)
        tests = tuple(Test.model_construct(id=_id("test", i), name=f"Load test {20 + i % 200} endpoints #{i:05d}")
                      for i in share)
        completed: dict[str, TestRun] = {}
        latest: dict[str, TestRun] = {}
        for n, test in zip(share, tests, strict=True):
            total = 20 + n % 200
            summary = RunSummary.model_construct(
                total_endpoints=total, registered_count=total - n % 3, registration_failed_count=n % 3,
                in_call_count=0, completed_count=total - n % 3, avg_mos=3.5 + (n % 100) / 100,
                avg_jitter_ms=2.0 + (n % 37) / 10, avg_packet_loss_fraction=(n % 50) / 100,
                avg_rtt_ms=20.0 + n % 180, asr=95.0 + (n % 50) / 10, ner=97.0 + (n % 30) / 10)
            completed[test.id] = TestRun.model_construct(
                id=_id("run", n), test_id=test.id, status="COMPLETED", started_at=now - 600 - n % 300,
                completed_at=now - 300 - n % 300, summary=summary)
            latest[test.id] = TestRun.model_construct(id=_id("next-run", n), test_id=test.id,
                                                      status="RUNNING" if n % 4 else "QUEUED", summary=None)
            finished[(slug, test.id, "COMPLETED")] = 10 + n % 90
            finished[(slug, test.id, "FAILED")] = n % 5
        registrars = tuple(Registrar.model_construct(
            id=_id("registrar", i), name=f"pbx-{i:03d}", uri=f"sip:pbx-{i:03d}.example.net:5060",
            transport=("UDP", "TCP", "TLS")[i % 3]) for i in share if i % 10 == 0)
        projects.append(ProjectData(project=project, probes=probes, tests=tests, registrars=registrars,
                                    latest_runs=latest, latest_completed=completed,
                                    fetched=dict.fromkeys(("probes", "tests", "registrars", "test_runs"), now)))
    return Snapshot(projects=tuple(projects), finished_runs=finished, taken_at=now)


def count_samples(families: Sequence[Metric]) -> int:
    return sum(len(f.samples) for f in families)


def own_registry() -> tuple[CollectorRegistry, ExporterMetrics, Rejections]:
    """A registry with the exporter's own metrics and the edge's rejection counter, as `Exporter.build` makes it."""
    registry = CollectorRegistry(auto_describe=False)
    metrics = ExporterMetrics(registry, budget_per_minute=60.0)
    rejections = Rejections(registry, (LISTENER,), on_change=metrics.mark_changed)
    return registry, metrics, rejections


def _announce(**facts: object) -> None:
    print(json.dumps(facts), flush=True)


def _quiet() -> None:
    logs.configure(level="error", fmt="json")  # stderr; stdout carries the announcement
    quiet_library_loggers()


# ---------------------------------------------------------------- the servers


def serve_new(series: int, header_timeout: float) -> None:
    async def main() -> None:
        _quiet()
        limits = replace(EdgeLimits(), header_timeout=header_timeout)
        raise_descriptor_limit(limits.max_connections + SPARE_DESCRIPTORS)
        registry, metrics, rejections = own_registry()
        exposition = Exposition(registry, metrics)
        families = snapshot_families(synthetic_snapshot(series), now=time.time())
        exposition.publish(families)
        text, _ = exposition.body(openmetrics=False, gzipped=False)
        gzipped, _ = exposition.body(openmetrics=False, gzipped=True)
        listener = HttpListener(LISTENER, exposition=exposition, is_ready=lambda: True, landing=lambda: "bench",
                                rejections=rejections, limits=limits)
        await listener.start("127.0.0.1", 0)
        _announce(port=listener.port, samples=count_samples(families), text_bytes=sum(map(len, text)),
                  gzip_bytes=sum(map(len, gzipped)))
        del families, text, gzipped
        await asyncio.Event().wait()

    asyncio.run(main())


class _Families(Collector):
    """The snapshot's families, built once: each scrape renders (and gzips) them, as client_python does."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def serve_client_python(series: int, header_timeout: float) -> None:
    _quiet()
    registry, _, _ = own_registry()
    registry.register(_Families(snapshot_families(synthetic_snapshot(series), now=time.time())))
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    _announce(port=server.server_port)
    while True:
        time.sleep(3600)


class _Canned(asyncio.Protocol):
    """Answers each request it receives with the same prebuilt response; it looks only for where a request
    ends (the blank line after the head), so a head split across reads is still one answer."""

    def __init__(self, response: bytes) -> None:
        self._response = response
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        data = self._tail + data
        requests = data.count(b"\r\n\r\n")
        self._tail = data[data.rfind(b"\r\n\r\n") + 4:] if requests else data[-3:]
        for _ in range(requests):
            self._transport.write(self._response)


def serve_limit(series: int, header_timeout: float) -> None:
    """Two ports, one answering the new server's plain bytes and one its gzipped bytes: no header is read."""
    registry, metrics, _ = own_registry()
    exposition = Exposition(registry, metrics)
    exposition.publish(snapshot_families(synthetic_snapshot(series), now=time.time()))
    responses = {}
    for gzipped in (False, True):
        parts, content_type = exposition.body(openmetrics=False, gzipped=gzipped)
        body = b"".join(parts)
        encoding = b"Content-Encoding: gzip\r\n" if gzipped else b""
        responses[gzipped] = (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                              % (content_type.encode(), len(body), encoding)) + body

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ports = {}
        for gzipped, response in responses.items():
            server = await loop.create_server(functools.partial(_Canned, response), "127.0.0.1", 0)
            ports["gzip_port" if gzipped else "port"] = server.sockets[0].getsockname()[1]
        _announce(**ports)
        await asyncio.Event().wait()

    asyncio.run(main())


SERVERS = {"new": serve_new, "client_python": serve_client_python, "limit": serve_limit}
