"""The receiver behind the HTTP listener, over real loopback sockets: senders, bodies, limits, auth, its own address."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exporter.expose.edge import EdgeLimits
from exporter.expose.exposition import Exposition
from exporter.expose.listener import HttpListener
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.webhooks import Receiver, WebhookMetrics, sign
from tests.support.listening import make_listener, rejected, run
from tests.support.webhooks import SECRET, Sink, delivery

PATH = "/webhooks/callmeter"


@dataclass
class Served:
    server: HttpListener
    own: ExporterMetrics
    registry: CollectorRegistry
    sink: Sink

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def count(self, result: str) -> float | None:
        return self.registry.get_sample_value("callmeter_exporter_webhook_deliveries_total", {"result": result})


@contextlib.asynccontextmanager
async def serving(*, authorize: Callable[[str | None], bool] | None = None, metrics: bool = True,
                  limits: EdgeLimits | None = None) -> AsyncIterator[Served]:
    registry = CollectorRegistry(auto_describe=False)
    own = ExporterMetrics(registry, budget_per_minute=8.0)
    hooks = WebhookMetrics(registry, on_change=own.mark_changed)
    sink = Sink()
    receiver = Receiver(secrets=lambda: (SECRET.encode(),), metrics=hooks, sink=sink)
    server = make_listener(Exposition(registry, own), own, landing=lambda: "<h1/>", authorize=authorize,
                           receiver=receiver, webhook_path=PATH, metrics=metrics, limits=limits)
    await server.start("127.0.0.1", 0)
    try:
        yield Served(server, own, registry, sink)
    finally:
        await asyncio.wait_for(server.close(), 10)


def signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"X-CallMeter-Signature": sign(body, SECRET), "Content-Type": "application/json"}


async def raw(port: int, data: bytes, *, pause_after: int | None = None) -> bytes:
    """Send `data` (in two parts, with a pause, when `pause_after` is given) and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if pause_after is None:
        writer.write(data)
    else:
        writer.write(data[:pause_after])
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(data[pause_after:])
    await writer.drain()
    answer = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 16), 10):
        answer += chunk
    writer.close()
    return answer


def test_a_signed_delivery_is_applied_and_the_metrics_show_it() -> None:
    async def test() -> None:
        async with serving() as served, httpx.AsyncClient(base_url=served.url) as client:
            body, headers = signed(delivery())
            response = await client.post(PATH, content=body, headers=headers)
            assert (response.status_code, response.text) == (200, "applied\n")
            assert served.sink.pushed[0][:3] == ("proj_1", "probe_a", "UNHEALTHY")
            metrics = (await client.get("/metrics")).text
            assert 'callmeter_exporter_webhook_deliveries_total{result="applied"} 1.0' in metrics
            assert 'callmeter_exporter_webhook_deliveries_total{result="bad_signature"} 0.0' in metrics
            assert "callmeter_exporter_webhook_last_delivery_timestamp_seconds " in metrics
    run(test)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_the_receiver_answers_405_allowing_post_to_other_methods(method: str) -> None:
    async def test() -> None:
        async with serving() as served, httpx.AsyncClient(base_url=served.url) as client:
            response = await client.request(method, PATH)
            assert response.status_code == 405 and response.headers["allow"] == "POST"
            assert served.count("method_not_allowed") == 1
    run(test)


@pytest.mark.parametrize(("body", "headers", "status", "result"), [
    (b"{}", {}, 401, "missing_signature"),
    (b"{}", {"X-CallMeter-Signature": "sha256=zz"}, 401, "malformed_signature"),
    (b"{}", {"X-CallMeter-Signature": "sha256=" + "0" * 64}, 401, "bad_signature"),
    (b"{not json", {"X-CallMeter-Signature": sign(b"{not json", SECRET)}, 400, "bad_payload"),
])
def test_rejections_over_http_have_their_status_and_change_nothing(body: bytes, headers: dict[str, str],
                                                                   status: int, result: str) -> None:
    async def test() -> None:
        async with serving() as served, httpx.AsyncClient(base_url=served.url) as client:
            response = await client.post(PATH, content=body, headers=headers)
            assert response.status_code == status
            assert served.count(result) == 1 and served.sink.pushed == []
            assert (await client.get("/healthz")).status_code == 200  # the connection and server carry on
    run(test)


def test_a_body_over_one_mebibyte_gets_413_and_a_close_and_is_counted() -> None:
    async def test() -> None:
        async with serving() as served:
            head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {2 * 1024 * 1024}\r\n"
                    "X-CallMeter-Signature: sha256=00\r\n\r\n").encode()
            answer = await raw(served.server.port, head + b"x" * 1000)
            assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
            assert served.count("too_large") == 1 and rejected(served.own, "body_too_large") == 1
            body = json.dumps(delivery(pad="x" * (1024 * 1024 - 300))).encode()
            assert len(body) <= 1024 * 1024
            async with httpx.AsyncClient(base_url=served.url) as client:
                response = await client.post(PATH, content=body, headers={"X-CallMeter-Signature": sign(body, SECRET)})
                assert response.status_code == 200
    run(test)


def posted(body: bytes, headers: dict[str, str], *, version: str = "HTTP/1.1", chunked: bool = False,
           extra: tuple[str, ...] = ()) -> bytes:
    """A raw delivery: with a Content-Length, or chunked in two chunks."""
    lines = [f"POST {PATH} {version}", "Host: x", *extra, *[f"{k}: {v}" for k, v in headers.items()]]
    if not chunked:
        return ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
    return ("\r\n".join([*lines, "Transfer-Encoding: chunked"]) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize(("version", "chunked", "extra"), [
    ("HTTP/1.1", True, ("Connection: close",)),
    ("HTTP/1.1", False, ("Connection: close",)),
    ("HTTP/1.0", False, ()),
], ids=["chunked", "connection-close", "http-1.0"])
def test_every_sender_is_read_answered_and_the_connection_closed_when_it_asked(
        version: str, chunked: bool, extra: tuple[str, ...]) -> None:
    async def test() -> None:
        async with serving() as served:
            body, headers = signed(delivery())
            answer = await raw(served.server.port, posted(body, headers, version=version, chunked=chunked, extra=extra))
            assert answer.startswith(version.encode() + b" 200 ") and answer.endswith(b"\r\n\r\napplied\n")
            assert served.count("applied") == 1 and served.sink.pushed
    run(test)


def test_expect_100_continue_gets_its_100_before_the_body_is_sent() -> None:
    async def test() -> None:
        async with serving() as served:
            body, headers = signed(delivery())
            head = posted(b"", headers, extra=("Expect: 100-continue", f"Content-Length: {len(body)}"))
            head = head.replace(b"Content-Length: 0\r\n", b"")
            reader, writer = await asyncio.open_connection("127.0.0.1", served.server.port)
            writer.write(head)
            await writer.drain()
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            final = await asyncio.wait_for(reader.readuntil(b"applied\n"), 10)
            assert final.startswith(b"HTTP/1.1 200 ")
            writer.close()
            assert served.count("applied") == 1
    run(test)


def test_a_body_that_stops_arriving_gets_408_and_is_counted() -> None:
    async def test() -> None:
        async with serving(limits=EdgeLimits(body_timeout=0.3)) as served:
            body, headers = signed(delivery())
            answer = await raw(served.server.port, posted(body, headers)[:-10])  # the last bytes never come
            assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
            assert rejected(served.own, "body_timeout") == 1 and served.sink.pushed == []
    run(test)


def test_a_chunked_body_over_one_mebibyte_gets_413_as_soon_as_it_is_over() -> None:
    async def test() -> None:
        async with serving() as served:
            body = b"x" * (1024 * 1024 + 10)
            answer = await raw(served.server.port, posted(body, {"X-CallMeter-Signature": sign(body, SECRET)},
                                                            chunked=True))
            assert answer.startswith(b"HTTP/1.1 413 ")
            assert served.count("too_large") == 1 and rejected(served.own, "body_too_large") == 1
    run(test)


def test_a_body_arriving_in_pieces_and_a_pipelined_scrape_are_both_answered() -> None:
    async def test() -> None:
        async with serving() as served:
            body, headers = signed(delivery())
            lines = [f"POST {PATH} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}",
                     *[f"{k}: {v}" for k, v in headers.items()]]
            post = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
            scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answer = await raw(served.server.port, post + scrape, pause_after=len(post) - 10)
            assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\napplied\n" in answer
            assert answer.count(b"HTTP/1.1 200 ") == 2
            assert served.sink.pushed
    run(test)


def test_the_receiver_is_never_behind_basic_auth_while_metrics_are() -> None:
    def authorize(header: str | None) -> bool:
        return header == "Basic " + base64.b64encode(b"prom:pw").decode()

    async def test() -> None:
        async with serving(authorize=authorize) as served, httpx.AsyncClient(base_url=served.url) as client:
            body, headers = signed(delivery())
            assert (await client.post(PATH, content=body, headers=headers)).status_code == 200
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", auth=("prom", "pw"))).status_code == 200
    run(test)


def test_a_receiver_only_server_serves_nothing_else_but_healthz() -> None:
    async def test() -> None:
        async with serving(metrics=False) as served, httpx.AsyncClient(base_url=served.url) as client:
            body, headers = signed(delivery())
            assert (await client.post(PATH, content=body, headers=headers)).status_code == 200
            for path in ("/metrics", "/", "/readyz"):
                assert (await client.get(path)).status_code == 404
            assert (await client.get("/healthz")).status_code == 200
    run(test)
