"""Scrape benchmark: our server against maintained servers given the same cached bytes, and against client_python.

    python benchmarks/serve.py             # 1k, 10k and 100k series, and 10k gzipped; about 4 minutes
    python benchmarks/serve.py --sizes 10000 --gzip-sizes 10000   # the 10k rows that decide the serving layer
    python benchmarks/serve.py --sizes 10000 --gzip-sizes '' --duration 3 --servers ''   # ours and the limit only

For each size, each server runs in its own process (pinned to CPU 0 when there are two or more,
with the load generator on CPU 1), so none shares a GIL with the load. The servers given the same
cached bytes are loaded in alternate rounds and the best round of each is kept, which evens out a
busy machine:

- ours: MetricsServer + Exposition holding one rendered snapshot (what the daemon serves);
- limit: an asyncio Protocol that answers every request with one prebuilt response from memory;
- aiohttp: an aiohttp Application whose /metrics handler negotiates as ours does and answers the
  Exposition's bytes (needs aiohttp: `pip install '.[bench]'`; skipped when it is missing);
- wsgiref: client_python's own threaded WSGI server with an app that answers the Exposition's bytes;
- client_python: `start_http_server` with a collector that builds the families on every scrape,
  the way a typical Python exporter works (one round, after the others).

The load is `wrk -t1 -c4 --latency` (a small asyncio client stands in when wrk is missing). Also
measured: the time to build and render one snapshot, the first gzip of it, the resident memory of
our process after the load, and the idle CPU of our server holding a 10k snapshot and of
`callmeter-exporter --demo` (utime + stime from /proc over 10 s). Results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import math
import os
import platform
import re
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.expose.server import MetricsServer
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.api.models import Probe, Project, Registrar, RunSummary, Test, TestRun
from exporter.expose.exposition import Exposition, wants_gzip, wants_openmetrics
from exporter.expose.families import snapshot_families
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.snapshot import ProjectData, Snapshot

SERIES_PER_UNIT = 29  # one probe (7 series) and one test with its runs (22 series)
PROBE_STATUSES = ("HEALTHY", "HEALTHY", "HEALTHY", "DEGRADED", "UNHEALTHY")
SERVER_CPU, LOAD_CPU = 0, 1
STARTUP_TIMEOUT = 120.0


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


# ---------------------------------------------------------------- the servers (each runs in a child process)


def _announce(**facts: object) -> None:
    print(json.dumps(facts), flush=True)


def _cached_exposition(series: int) -> Exposition:
    """An Exposition holding one rendered synthetic snapshot (what the maintained servers are given)."""
    registry = CollectorRegistry(auto_describe=False)
    exposition = Exposition(registry, ExporterMetrics(registry, budget_per_minute=60.0))
    exposition.publish(snapshot_families(synthetic_snapshot(series), now=time.time()))
    return exposition


def serve_ours(series: int, gzipped: bool = False) -> None:
    async def main() -> None:
        registry = CollectorRegistry(auto_describe=False)
        metrics = ExporterMetrics(registry, budget_per_minute=60.0)
        exposition = Exposition(registry, metrics)
        snapshot = synthetic_snapshot(series)
        started = time.perf_counter()
        families = snapshot_families(snapshot, now=time.time())
        built = time.perf_counter()
        exposition.publish(families)
        rendered = time.perf_counter()
        samples = count_samples(families)
        del families
        parts, _ = exposition.body(openmetrics=True, gzipped=True)
        gzipped = time.perf_counter()
        text, _ = exposition.body(openmetrics=False, gzipped=False)
        server = MetricsServer(exposition=exposition, is_ready=lambda: True, landing=lambda: "bench")
        await server.start("127.0.0.1", 0)
        _announce(port=server.port, samples=samples, families_seconds=built - started,
                  render_seconds=rendered - built, gzip_seconds=gzipped - rendered,
                  text_bytes=sum(map(len, text)), gzip_bytes=sum(map(len, parts)))
        await asyncio.Event().wait()

    asyncio.run(main())


class _EveryScrape(Collector):
    """The usual Python exporter: families built from the data on every collect()."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_families(self._snapshot, now=time.time())


def serve_client_python(series: int, gzipped: bool = False) -> None:
    registry = CollectorRegistry(auto_describe=False)
    ExporterMetrics(registry, budget_per_minute=60.0)
    registry.register(_EveryScrape(synthetic_snapshot(series)))
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    _announce(port=server.server_port)
    while True:
        time.sleep(3600)


class _Canned(asyncio.Protocol):
    """Answers each request head it receives with the same prebuilt response."""

    response = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._tail = b""

    def data_received(self, data: bytes) -> None:
        data = self._tail + data
        requests = data.count(b"\r\n\r\n")
        self._tail = data[data.rfind(b"\r\n\r\n") + 4:] if requests else data[-3:]
        for _ in range(requests):
            self._transport.write(self.response)


def serve_aiohttp(series: int, gzipped: bool = False) -> None:
    """The same cached bytes through aiohttp: a handler negotiates as ours does and answers the body it is given."""
    from aiohttp import web

    exposition = _cached_exposition(series)
    joined: dict[tuple[bool, bool], tuple[list[bytes], bytes]] = {}

    async def metrics(request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        gzip = wants_gzip(request.headers.get("Accept-Encoding", ""))
        parts, content_type = exposition.body(openmetrics=openmetrics, gzipped=gzip)
        cached = joined.get((openmetrics, gzip))
        if cached is None or cached[0] != parts:  # aiohttp takes one body: join once per change
            cached = joined[(openmetrics, gzip)] = (parts, b"".join(parts))
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=cached[1], headers=headers)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        _announce(port=runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_client_python_cached(series: int, gzipped: bool = False) -> None:
    """The same cached bytes through client_python's own WSGI server (wsgiref, a thread per connection)."""
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    exposition = _cached_exposition(series)

    def app(environ: dict[str, str], start_response: Callable[..., object]) -> list[bytes]:
        openmetrics = wants_openmetrics(environ.get("HTTP_ACCEPT", ""))
        gzip = wants_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        parts, content_type = exposition.body(openmetrics=openmetrics, gzipped=gzip)
        headers = [("Content-Type", content_type), ("Content-Length", str(sum(map(len, parts)))),
                   ("Vary", "Accept, Accept-Encoding")]
        if gzip:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return parts

    httpd = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    _announce(port=httpd.server_port)
    httpd.serve_forever()


def serve_plain(series: int, gzipped: bool = False) -> None:
    parts, content_type = _cached_exposition(series).body(openmetrics=False, gzipped=gzipped)
    body = b"".join(parts)
    encoding = b"Content-Encoding: gzip\r\n" if gzipped else b""
    _Canned.response = (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: keep-alive\r\n\r\n"
                        % (content_type.encode(), len(body), encoding)) + body

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Canned, "127.0.0.1", 0)
        _announce(port=server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


SERVERS: dict[str, Callable[[int, bool], None]] = {
    "ours": serve_ours, "client_python": serve_client_python, "plain": serve_plain, "aiohttp": serve_aiohttp,
    "client_python_cached": serve_client_python_cached}
CACHED = ("ours", "plain", "aiohttp", "client_python_cached")  # the servers given the same cached bytes
CACHED_NAMES = {"ours": "ours", "plain": "limit", "aiohttp": "aiohttp", "client_python_cached": "wsgiref"}


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50: float  # seconds
    p99: float
    requests: int
    errors: int


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        return math.nan
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> Load:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    done = re.search(r"(\d+) requests in", output)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(requests_per_second=float(rate[1]) if rate else 0.0,
                p50=_wrk_seconds(p50[1]) if p50 else math.nan, p99=_wrk_seconds(p99[1]) if p99 else math.nan,
                requests=int(done[1]) if done else 0, errors=errors + (int(non2xx[1]) if non2xx else 0))


def _pin(cpu: int) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def run_load(port: int, duration: float, connections: int, gzipped: bool) -> Load:
    url = f"http://127.0.0.1:{port}/metrics"
    wrk = shutil.which("wrk")
    if wrk is not None:
        argv = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "20s", url]
        if gzipped:
            argv[1:1] = ["-H", "Accept-Encoding: gzip"]
    else:
        argv = [sys.executable, __file__, "--load", url, "--connections", str(connections),
                "--duration", str(duration), *(["--gzip"] if gzipped else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                          preexec_fn=lambda: _pin(LOAD_CPU), check=True)
    if wrk is not None:
        return parse_wrk(done.stdout)
    return Load(**json.loads(done.stdout))


async def _python_load(url: str, connections: int, duration: float, gzipped: bool) -> Load:
    """A keep-alive HTTP/1.1 load client for machines without wrk (reconnects when the server closes)."""
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    path = "/" + url.split("/", 3)[3]
    encoding = "Accept-Encoding: gzip\r\n" if gzipped else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n{encoding}\r\n".encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
                assert reader is not None
                started = time.perf_counter()
                writer.write(request)
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                length = int(re.search(rb"content-length: *(\d+)", head)[1])  # type: ignore[index]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if b"connection: close" in head or head.startswith(b"http/1.0"):
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, TypeError):
                errors += 1
                writer = None

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else math.nan

    return Load(len(latencies) / elapsed, pct(0.50), pct(0.99), len(latencies), errors)


# ---------------------------------------------------------------- process control and /proc


class Child:
    """A server in a child process; its facts come from the one JSON line it prints when listening."""

    def __init__(self, argv: Sequence[str], *, cpu: int | None = SERVER_CPU) -> None:
        self.process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL,
                                        preexec_fn=None if cpu is None else lambda: _pin(cpu))
        self.facts: dict[str, float] = {}

    def wait_announcement(self) -> dict[str, float]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError(f"child {self.process.args!r} did not start")
        self.facts = json.loads(line)
        return self.facts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def idle_cpu_percent(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


def _http_ok(port: int, path: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def demo_idle_cpu(seconds: float) -> float | None:
    """Idle CPU of `callmeter-exporter --demo` (simulator included), once it is ready and has settled."""
    binary = shutil.which("callmeter-exporter") or str(Path(sys.executable).with_name("callmeter-exporter"))
    if not Path(binary).exists():
        return None
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "--demo", "--listen-address", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _http_ok(port, "/readyz"):
            if process.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        time.sleep(2)  # let the start-up burst of API reads finish
        return idle_cpu_percent(process.pid, seconds)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------- the run


@dataclass
class Row:
    series: int
    gzipped: bool
    facts: dict[str, float]
    cached: dict[str, Load]  # best round of each server given the same cached bytes (see CACHED)
    client_python: Load | None
    rss_mib: float
    hwm_mib: float

    @property
    def ours(self) -> Load:
        return self.cached["ours"]

    @property
    def limit(self) -> Load:
        return self.cached["plain"]


def _child_argv(kind: str, series: int, gzipped: bool = False) -> list[str]:
    return [sys.executable, __file__, "--serve", kind, "--series", str(series), *(["--gzip"] if gzipped else [])]


def measure(series: int, *, gzipped: bool, duration: float, connections: int, rounds: int,
            with_client_python: bool, kinds: Sequence[str] = CACHED) -> Row:
    """Load the cached-bytes servers in alternate rounds (best round kept: the least disturbed), then client_python."""
    best: dict[str, Load] = {}
    rss = hwm = math.nan
    children: dict[str, Child] = {}
    ports: dict[str, int] = {}
    try:
        for kind in kinds:  # one at a time, so that start-up times are not disturbed
            children[kind] = Child(_child_argv(kind, series, gzipped))
            ports[kind] = int(children[kind].wait_announcement()["port"])
        for _ in range(rounds):
            for kind, port in ports.items():
                load = run_load(port, duration, connections, gzipped)
                if kind not in best or load.requests_per_second > best[kind].requests_per_second:
                    best[kind] = load
        ours = children["ours"]
        rss = proc_status_kib(ours.process.pid, "VmRSS") / 1024
        hwm = proc_status_kib(ours.process.pid, "VmHWM") / 1024
    finally:
        for child in children.values():
            child.stop()
    client_python = None
    if with_client_python:
        child = Child(_child_argv("client_python", series))
        try:
            # a scrape of 100k series takes client_python seconds: give it time to finish a few
            client_python = run_load(int(child.wait_announcement()["port"]),
                                     duration * (3 if series > 50_000 else 1), connections, gzipped)
        finally:
            child.stop()
    return Row(series, gzipped, children["ours"].facts, best, client_python, rss, hwm)


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def report(rows: Sequence[Row], idle: float, demo: float | None, *, duration: float, connections: int,
           rounds: int, tool: str) -> str:
    shown = ["plain", *(k for k in CACHED if k != "plain" and any(k in r.cached for r in rows))]
    lines = [
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs. "
        f"Load: {tool}, {connections} keep-alive connections, Prometheus text format; the servers given the "
        f"cached bytes {rounds} alternate rounds of {duration:g} s each (best kept), client_python one round "
        f"({3 * duration:g} s above 50k series). Latencies in ms.",
        "",
        "The same cached bytes through each server; the limit answers every request from memory:",
        "",
        "| series | " + " | ".join(f"{CACHED_NAMES[k]} req/s | {CACHED_NAMES[k]} p50 / p99"
                                   + ("" if k == "plain" else f" | {CACHED_NAMES[k]} / limit") for k in shown) + " |",
        "| ---: " * (3 * len(shown)) + "|",
    ]
    for r in rows:
        cells = [f"{int(r.facts['samples']):,}{', gzip' if r.gzipped else ''}"]
        for kind in shown:
            load = r.cached.get(kind)
            if load is None:
                cells += ["-", "-"] + ([] if kind == "plain" else ["-"])
                continue
            cells += [f"{load.requests_per_second:,.0f}", f"{_ms(load.p50)} / {_ms(load.p99)}"]
            if kind != "plain":
                cells.append(f"{load.requests_per_second / r.limit.requests_per_second:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ours against client_python rendering on every scrape:",
        "",
        "| series | ours req/s | ours p50 / p99 | client_python req/s | client_python p50 / p99 "
        "| ours / client_python | p99 client_python / ours |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cp = r.client_python
        if cp is None:
            theirs = "| not run | - | - | - |"
        elif not cp.requests:
            theirs = "| no answer in time | - | - | - |"
        else:
            theirs = (f"| {cp.requests_per_second:,.1f} | {_ms(cp.p50)} / {_ms(cp.p99)} "
                      f"| {r.ours.requests_per_second / cp.requests_per_second:,.0f}x | {cp.p99 / r.ours.p99:,.0f}x |")
        lines.append(
            f"| {int(r.facts['samples']):,}{', gzip' if r.gzipped else ''} | {r.ours.requests_per_second:,.0f} "
            f"| {_ms(r.ours.p50)} / {_ms(r.ours.p99)} " + theirs)
    errors = [f"{kind} at {r.series:,}{' gzip' if r.gzipped else ''}: {load.errors}" for r in rows
              for kind, load in (*r.cached.items(), ("client_python", r.client_python))
              if load and load.errors]
    lines += [
        "",
        "| series | text body | gzip body | build families | render text + OpenMetrics | first gzip "
        "| RSS after load | peak RSS |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r.gzipped:
            continue
        f = r.facts
        lines.append(f"| {int(f['samples']):,} | {_mb(f['text_bytes'])} | {_mb(f['gzip_bytes'])} "
                     f"| {_ms(f['families_seconds'])} ms | {_ms(f['render_seconds'])} ms | {_ms(f['gzip_seconds'])} ms "
                     f"| {r.rss_mib:.0f} MiB | {r.hwm_mib:.0f} MiB |")
    lines += ["", f"Idle CPU, our server holding a 10k-series snapshot, no scrapes: {idle:.2f}% of a core"]
    if demo is not None:
        lines.append(f"Idle CPU, `callmeter-exporter --demo` (polling its simulator every 5 s, no scrapes): "
                     f"{demo:.2f}% of a core")
    if errors:
        lines.append(f"Errors or timeouts during load: {'; '.join(errors)}")
    return "\n".join(lines)


def _kinds(servers: str) -> tuple[str, ...]:
    chosen = {"ours", "plain", *(k.strip() for k in servers.split(",") if k.strip())}
    unknown = chosen - set(CACHED)
    if unknown:
        raise SystemExit(f"--servers: unknown {', '.join(sorted(unknown))}; choose from {', '.join(CACHED)}")
    if "aiohttp" in chosen and importlib.util.find_spec("aiohttp") is None:
        print("... aiohttp is not installed (pip install '.[bench]'): its row is skipped", file=sys.stderr)
        chosen.discard("aiohttp")
    return tuple(k for k in CACHED if k in chosen)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated series counts")
    parser.add_argument("--gzip-sizes", default="10000", help="sizes also loaded with Accept-Encoding: gzip")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per server and size")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="alternate load rounds of the cached-bytes servers")
    parser.add_argument("--servers", default=",".join(CACHED),
                        help=f"cached-bytes servers to load (ours and plain, the limit, always): {', '.join(CACHED)}")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--client-python-max", type=int, default=100_000,
                        help="skip client_python above this many series")
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--series", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gzip", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        SERVERS[args.serve](args.series, args.gzip)
        return 0
    if args.load:
        load = asyncio.run(_python_load(args.load, args.connections, args.duration, args.gzip))
        print(json.dumps(dataclasses.asdict(load)))
        return 0
    tool = f"wrk -t1 -c{args.connections} --latency" if shutil.which("wrk") else "Python asyncio client"
    started = time.monotonic()
    runs = [(int(size), False) for size in args.sizes.split(",") if size]
    runs += [(int(size), True) for size in args.gzip_sizes.split(",") if size]
    rows = []
    for size, gzipped in runs:
        print(f"... {size:,} series{', gzip' if gzipped else ''}", file=sys.stderr, flush=True)
        rows.append(measure(size, gzipped=gzipped, duration=args.duration, connections=args.connections,
                            rounds=args.rounds, with_client_python=size <= args.client_python_max,
                            kinds=_kinds(args.servers)))
    print("... idle CPU", file=sys.stderr, flush=True)
    child = Child(_child_argv("ours", 10_000))
    try:
        child.wait_announcement()
        time.sleep(1)
        idle = idle_cpu_percent(child.process.pid, args.idle_seconds)
    finally:
        child.stop()
    demo = demo_idle_cpu(args.idle_seconds)
    print(report(rows, idle, demo, duration=args.duration, connections=args.connections, rounds=args.rounds,
                 tool=tool))
    print(f"\n(total run time {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
