"""The HTTP listener through real loopback sockets: routes, HEAD, keep-alive, pipelining, gzip, limits.

Each test runs its own event loop (`asyncio.run`) with an HttpListener on 127.0.0.1, port 0, and
talks raw HTTP/1.1 to it, so that what is checked is exactly what goes over the wire. A real
Prometheus scraping it is tests/e2e/test_scrape.py; hostile traffic against the real process is
tests/e2e/test_hostile.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporter.expose.edge import MAX_LINE, EdgeLimits
from exporter.expose.exposition import OPENMETRICS, TEXT, Exposition, render
from exporter.expose.listener import HttpListener
from exporter.expose.selfmetrics import ExporterMetrics
from tests.support.ci import require_command
from tests.support.exposition import PROMETHEUS_2_ACCEPT, make_exposition, one_gzip_member, sample_families, whole
from tests.support.listening import make_listener, rejected, run

TIMEOUT = 10.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    version: str = "HTTP/1.1"


@dataclass
class Running:
    server: HttpListener
    exposition: Exposition
    metrics: ExporterMetrics
    ready: list[bool] = field(default_factory=lambda: [False])

    async def connect(self) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        return Client(reader, writer)


class Client:
    """A raw HTTP/1.1 connection: write request heads, read responses one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str = "GET", path: str = "/metrics", *, version: str = "HTTP/1.1",
                      headers: dict[str, str] | None = None) -> Response:
        await self.send(head(method, path, version=version, headers=headers))
        return await self.response(head_only=method == "HEAD")

    async def response(self, *, head_only: bool = False) -> Response:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = 0 if head_only else int(headers["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)
        return Response(int(status), headers, body, version)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), TIMEOUT) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def head(method: str = "GET", path: str = "/metrics", *, version: str = "HTTP/1.1",
         headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@contextlib.asynccontextmanager
async def serving(*, probes: int = 20, authorize: Callable[[str | None], bool] | None = None,
                  limits: EdgeLimits | None = None) -> AsyncIterator[Running]:
    exposition, metrics = make_exposition()
    exposition.publish(sample_families(probes))
    ready = [False]
    server = make_listener(exposition, metrics, is_ready=lambda: ready[0], authorize=authorize, limits=limits)
    await server.start("127.0.0.1", 0)
    try:
        yield Running(server, exposition, metrics, ready)
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)


# ---------------------------------------------------------------- routes


def test_metrics_serves_the_snapshot_and_own_metrics_with_its_length() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            response = await client.request()
            assert response.status == 200
            assert response.headers["content-type"] == TEXT
            assert int(response.headers["content-length"]) == len(response.body)
            assert "content-encoding" not in response.headers
            assert b'callmeter_probe_status{probe="sip-trunk-001 registration' in response.body
            assert b"callmeter_up 0.0" in response.body
            assert response.body == whole(running.exposition, openmetrics=False)
            await client.close()
    run(scenario)


def test_landing_page_health_and_unknown_paths() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            landing = await client.request(path="/")
            assert (landing.status, landing.headers["content-type"]) == (200, "text/html; charset=utf-8")
            assert landing.body == b"<h1>landing</h1>"
            assert (await client.request(path="/healthz")).status == 200
            missing = await client.request(path="/metrics/extra")
            assert (missing.status, missing.body) == (404, b"not found\n")
            with_query = await client.request(path="/metrics?name[]=callmeter_up")
            assert with_query.status == 200
            await client.close()
    run(scenario)


def test_readyz_is_503_until_the_first_refresh_then_200() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            assert (await client.request(path="/readyz")).status == 503
            running.ready[0] = True
            assert (await client.request(path="/readyz")).status == 200
            await client.close()
    run(scenario)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_get_405_with_allow_and_the_connection_goes_on(method: str) -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            await client.send(head(method, headers={"Content-Length": "11"}) + b"hello=world")
            refused = await client.response()
            assert refused.status == 405
            assert refused.headers["allow"] == "GET, HEAD"
            assert (await client.request(path="/healthz")).status == 200  # the request body was skipped
            await client.close()
    run(scenario)


def test_head_has_the_get_headers_and_no_body() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            for headers in ({}, {"Accept-Encoding": "gzip"}, {"Accept": PROMETHEUS_2_ACCEPT}):
                got = await client.request("HEAD", headers=headers)
                full = await client.request("GET", headers=headers)  # parses only if HEAD sent no body
                assert got.status == full.status == 200
                assert got.headers["content-length"] == full.headers["content-length"] == str(len(full.body))
                assert got.headers["content-type"] == full.headers["content-type"]
                assert got.headers.get("content-encoding") == full.headers.get("content-encoding")
            assert (await client.request("HEAD", path="/readyz")).headers["content-length"] == str(
                len(b"not ready: waiting for the first complete refresh\n"))
            await client.close()
    run(scenario)


def test_basic_auth_guards_metrics_only() -> None:
    async def scenario() -> None:
        async with serving(authorize=lambda value: value == "Basic dTpw") as running:
            client = await running.connect()
            refused = await client.request()
            assert refused.status == 401
            assert refused.headers["www-authenticate"] == 'Basic realm="callmeter-exporter"'
            assert (await client.request(headers={"Authorization": "Basic bad"})).status == 401
            assert (await client.request(headers={"Authorization": "Basic dTpw"})).status == 200
            assert (await client.request(path="/healthz")).status == 200
            await client.close()
    run(scenario)


# ---------------------------------------------------------------- connections


def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            expected = whole(running.exposition, openmetrics=False)
            for i in range(200):
                response = await client.request(path="/metrics" if i % 2 else "/healthz")
                assert response.status == 200
                assert response.headers.get("connection", "keep-alive") == "keep-alive"  # HTTP/1.1: implicit
                if i % 2:
                    assert response.body == expected
            assert running.server.open_connections == 1
            await client.close()
    run(scenario)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            await client.send(head(path="/healthz") + head("HEAD") + head(path="/readyz") + head(path="/nope")
                              + head())
            statuses = [(await client.response()).status, (await client.response(head_only=True)).status,
                        (await client.response()).status, (await client.response()).status]
            last = await client.response()
            assert statuses == [200, 200, 503, 404]
            assert last.body == whole(running.exposition, openmetrics=False)
            await client.close()
    run(scenario)


def test_many_pipelined_scrapes_of_a_large_body_arrive_whole() -> None:
    """The server stops reading while the client is not reading, and resumes: nothing lost, nothing mixed."""
    async def scenario() -> None:
        async with serving(probes=3000) as running:
            expected = whole(running.exposition, openmetrics=False)
            assert len(expected) > 1_000_000
            client = await running.connect()
            await client.send(head() * 30)
            await asyncio.sleep(0.2)  # let the server fill the socket buffers
            for _ in range(30):
                assert (await client.response()).body == expected
            await client.close()
    run(scenario)


def test_a_half_closed_client_gets_every_answer_then_a_close() -> None:
    async def scenario() -> None:
        async with serving(probes=3000) as running:
            client = await running.connect()
            await client.send(head() * 5 + head(path="/healthz"))
            client.writer.write_eof()
            for _ in range(5):
                assert (await client.response()).body == whole(running.exposition, openmetrics=False)
            assert (await client.response()).body == b"ok\n"
            assert await client.closed_by_server()
            await client.close()
    run(scenario)


def test_connection_close_is_honoured() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            response = await client.request(headers={"Connection": "close"})
            assert response.status == 200 and response.headers["connection"] == "close"
            assert response.body == whole(running.exposition, openmetrics=False)
            assert await client.closed_by_server()
            await client.close()
    run(scenario)


def test_http_1_0_closes_unless_keep_alive_is_asked() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            response = await client.request(path="/healthz", version="HTTP/1.0")
            assert response.status == 200 and response.headers.get("connection", "close") == "close"  # 1.0's default
            assert await client.closed_by_server()
            await client.close()

            client = await running.connect()
            for _ in range(3):
                response = await client.request(version="HTTP/1.0", headers={"Connection": "keep-alive"})
                assert response.status == 200 and response.headers["connection"] == "keep-alive"
            await client.close()
    run(scenario)


def test_close_ends_idle_keep_alive_connections() -> None:
    async def scenario() -> None:
        exposition, metrics = make_exposition()
        server = make_listener(exposition, metrics)
        await server.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = Client(reader, writer)
        assert (await client.request(path="/healthz")).status == 200
        await asyncio.wait_for(server.close(), TIMEOUT)
        assert await client.closed_by_server()
        await client.close()
    run(scenario)


# ---------------------------------------------------------------- negotiation


def test_gzip_is_one_member_of_the_same_body_and_q_zero_refuses_it() -> None:
    async def scenario() -> None:
        async with serving(probes=500) as running:
            client = await running.connect()
            compressed = await client.request(headers={"Accept-Encoding": "gzip, deflate"})
            assert compressed.headers["content-encoding"] == "gzip"
            assert compressed.headers["vary"] == "Accept, Accept-Encoding"
            assert one_gzip_member(compressed.body) == whole(running.exposition, openmetrics=False)
            assert gzip.decompress(compressed.body) == whole(running.exposition, openmetrics=False)

            refused = await client.request(headers={"Accept-Encoding": "gzip;q=0, identity"})
            assert "content-encoding" not in refused.headers
            assert refused.body == whole(running.exposition, openmetrics=False)
            await client.close()
    run(scenario)


def test_openmetrics_is_negotiated_and_ends_with_one_eof() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            response = await client.request(headers={"Accept": PROMETHEUS_2_ACCEPT, "Accept-Encoding": "gzip"})
            assert response.headers["content-type"] == OPENMETRICS
            body = one_gzip_member(response.body)
            assert body.endswith(b"\n# EOF\n") and body.count(b"# EOF") == 1
            text = await client.request(headers={"Accept": "text/plain;version=0.0.4"})
            assert text.headers["content-type"] == TEXT and b"# EOF" not in text.body
            await client.close()
    run(scenario)


# ---------------------------------------------------------------- consistency


def test_a_scrape_during_publish_sees_the_old_or_the_new_snapshot_never_a_mix() -> None:
    variants = [sample_families(400, interval=minutes) for minutes in (1.0, 2.0, 3.0)]

    async def scenario() -> None:
        async with serving() as running:
            exposition = running.exposition
            exposition.publish(variants[0])
            # Own metrics do not change here.
            own = whole(exposition, openmetrics=False)[len(exposition._resources.text):]
            complete = {render(families).text + own for families in variants}
            assert len(complete) == len(variants)
            stop = threading.Event()

            def publisher() -> None:
                i = 1
                while not stop.is_set():
                    exposition.publish(variants[i % len(variants)])  # renders in this thread, swaps in one go
                    i += 1

            thread = threading.Thread(target=publisher, daemon=True)
            thread.start()
            try:
                client = await running.connect()
                seen: set[bytes] = set()
                deadline = time.monotonic() + 20
                i = 0
                while i < 150 or (len(seen) < len(variants) and time.monotonic() < deadline):
                    gz = i % 3 == 0
                    response = await client.request(headers={"Accept-Encoding": "gzip"} if gz else {})
                    body = one_gzip_member(response.body) if gz else response.body
                    assert body in complete
                    seen.add(body)
                    i += 1
                await client.close()
            finally:
                stop.set()
                await asyncio.to_thread(thread.join, TIMEOUT)
            assert len(seen) > 1  # the publisher really did swap snapshots under the scrapes
    run(scenario)


def test_own_metrics_changes_show_on_the_next_scrape_without_a_new_snapshot() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            before = await client.request(headers={"Accept-Encoding": "gzip"})
            snapshot = running.exposition._resources
            running.metrics.request("/projects/{projectId}/probes", "200", 0.3)
            running.metrics.set_up(True)
            after = await client.request(headers={"Accept-Encoding": "gzip"})
            body = one_gzip_member(after.body)
            assert b'callmeter_exporter_api_requests_total{code="200",endpoint="/projects/{projectId}/probes"} 1.0' \
                in body
            assert b"callmeter_up 1.0" in body and b"callmeter_up 1.0" not in one_gzip_member(before.body)
            assert running.exposition._resources is snapshot
            await client.close()
    run(scenario)


# ---------------------------------------------------------------- limits and bad input


def test_an_oversized_request_head_gets_431_and_others_are_still_served() -> None:
    async def scenario() -> None:
        async with serving() as running:
            bad = await running.connect()
            await bad.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n")
            refused = await bad.response()
            assert refused.status == 431 and refused.headers["connection"] == "close"
            assert await bad.closed_by_server()
            await bad.close()
            good = await running.connect()
            assert (await good.request()).status == 200
            await good.close()
    run(scenario)


@pytest.mark.parametrize(("request_head", "status"), [
    (b"GET /metrics\r\n\r\n", 400),  # HTTP/0.9
    (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),  # or 400, as the parser sees it
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
])
def test_malformed_requests_get_an_error_a_close_and_are_counted(request_head: bytes, status: int) -> None:
    async def scenario() -> None:
        async with serving() as running:
            assert rejected(running.metrics, "malformed") == 0
            client = await running.connect()
            await client.send(request_head + head(path="/healthz"))  # pipelined behind: never answered
            response = await client.response()
            assert response.status in ({status, 400} if status == 505 else {status})
            assert response.headers["connection"] == "close"
            assert await client.closed_by_server()
            await client.close()
            assert rejected(running.metrics, "malformed") == 1
    run(scenario)


def test_a_post_with_a_large_body_to_metrics_is_405_and_its_body_is_never_buffered() -> None:
    async def scenario() -> None:
        async with serving() as running:
            client = await running.connect()
            await client.send(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
            response = await client.response()
            assert (response.status, response.headers["allow"]) == (405, "GET, HEAD")
            assert await client.closed_by_server()  # the body never came: dropped after a short linger
            await client.close()
    run(scenario)


def test_a_head_not_finished_in_time_gets_408_a_close_and_is_counted() -> None:
    async def scenario() -> None:
        async with serving(limits=EdgeLimits(header_timeout=0.3)) as running:
            client = await running.connect()
            started = time.monotonic()
            await client.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            await asyncio.sleep(0.1)
            await client.send(b"X-Slow: 1\r\n")  # still sending, but not in time
            response = await client.response()
            assert response.status == 408 and await client.closed_by_server()
            assert 0.25 < time.monotonic() - started < 5
            assert rejected(running.metrics, "header_timeout") == 1
            await client.close()
    run(scenario)


def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    async def scenario() -> None:
        async with serving(limits=EdgeLimits(max_connections=8)) as running:
            idle = [await running.connect() for _ in range(8)]
            await asyncio.sleep(0.1)
            assert running.server.open_connections == 8
            newcomer = await running.connect()
            assert (await newcomer.request(path="/healthz")).status == 200
            assert await idle[0].closed_by_server()  # the first to connect was idle longest
            assert running.server.open_connections == 8
            assert rejected(running.metrics, "too_many_connections") == 1
            for client in (*idle, newcomer):
                await client.close()
    run(scenario)


def test_a_client_that_disconnects_mid_body_does_not_disturb_the_server() -> None:
    async def scenario() -> None:
        async with serving(probes=3000) as running:
            for _ in range(5):
                client = await running.connect()
                await client.send(head() * 3)
                await client.reader.readexactly(1000)
                client.writer.transport.abort()
            good = await running.connect()
            assert (await good.request()).body == whole(running.exposition, openmetrics=False)
            await good.close()
            await asyncio.sleep(0.1)
            assert running.server.open_connections == 0
    run(scenario)


def test_idle_connections_are_closed() -> None:
    async def scenario() -> None:
        async with serving(limits=EdgeLimits(idle_timeout=0.3)) as running:
            client = await running.connect()
            assert (await client.request(path="/healthz")).status == 200
            started = time.monotonic()
            assert await client.closed_by_server()
            assert 0.2 < time.monotonic() - started < 5
            await client.close()
    run(scenario)


# ---------------------------------------------------------------- TLS


def test_tls_serves_large_bodies_over_keep_alive(tmp_path: Path) -> None:
    openssl = require_command("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        exposition, metrics = make_exposition()
        exposition.publish(sample_families(3000))
        server = make_listener(exposition, metrics, ssl_context=server_context)
        await server.start("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_context)
            client = Client(reader, writer)
            for headers in ({}, {"Accept-Encoding": "gzip"}, {}):
                response = await client.request(headers=headers)
                body = one_gzip_member(response.body) if headers else response.body
                assert body == whole(exposition, openmetrics=False)
            await client.send(head() * 3)
            for _ in range(3):
                assert (await client.response()).body == whole(exposition, openmetrics=False)
            await client.close()
        finally:
            await asyncio.wait_for(server.close(), TIMEOUT)
    run(scenario)
