"""An HTTP listener: /metrics from the pre-rendered exposition, the landing page, /healthz, /readyz and
the webhook receiver, on aiohttp's server held to the edge's limits (`edge`).

    request ─► Guard (aiohttp + limits) ─► HttpListener.handle ─┬─ /metrics ── cached bytes (never rendered here)
                                                               ├─ webhook ─── body read within its deadline ─► Receiver
                                                               └─ /, /healthz, /readyz

A scrape is a few lookups and a write of cached bytes: it never renders resource metrics and never
calls the CallMeter API. Basic auth (from the web config) guards /metrics and the landing page; the
probes stay open for kubelets, and the webhook path is never behind basic auth: its signature is its
authentication. A listener with `metrics=False` serves the receiver and /healthz alone (its own
address, for an Ingress).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter

from ..webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES
from ..webhooks import Answer, Receiver
from .edge import SERVER, EdgeLimits, GuardedServer, GuardedSite, Rejections
from .exposition import Exposition, wants_gzip, wants_openmetrics

PLAIN = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
WHOLE_MAX = 4 * 1024 * 1024
"""/metrics bodies up to this size are joined once per snapshot and sent with one write; larger ones are
written part by part (no copy of a 100k-series body per scrape)."""
SHUTDOWN_GRACE = 2.0
"""Seconds answers under way may take to finish when the exporter stops."""
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_METRICS_VARY = "Accept, Accept-Encoding"
_CHALLENGE = 'Basic realm="callmeter-exporter"'


class HttpListener:
    def __init__(self, name: str, *, exposition: Exposition, is_ready: Callable[[], bool],
                 landing: Callable[[], str], rejections: Rejections, limits: EdgeLimits | None = None,
                 telemetry_path: str = "/metrics", authorize: Callable[[str | None], bool] | None = None,
                 ssl_context: ssl.SSLContext | None = None, receiver: Receiver | None = None,
                 webhook_path: str = "/webhooks/callmeter", metrics: bool = True) -> None:
        """`name`: the `listener` label of the edge's metrics ("main", or "webhooks" for the receiver's
        own address)."""
        self.name = name
        self._exposition = exposition
        self._is_ready = is_ready
        self._landing = landing
        self._rejections = rejections
        self._limits = limits or EdgeLimits()
        self._path = telemetry_path
        self._authorize = authorize
        self._ssl = ssl_context
        self._receiver = receiver
        self._webhook_path = webhook_path if receiver is not None else None
        self._serves_metrics = metrics
        self._joined: dict[tuple[bool, bool], tuple[list[bytes], bytes]] = {}
        self._server: GuardedServer | None = None
        self._runner: web.ServerRunner | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = GuardedServer(self.handle, listener=self.name, limits=self._limits,
                                     rejections=self._rejections)
        self._runner = web.ServerRunner(self._server, shutdown_timeout=SHUTDOWN_GRACE)
        await self._runner.setup()
        site = GuardedSite(self._runner, host or None, port, limits=self._limits, ssl_context=self._ssl)
        await site.start()

    @property
    def port(self) -> int:
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    @property
    def open_connections(self) -> int:
        return self._server.open_connections if self._server is not None else 0

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- requests ------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.version not in (HttpVersion10, HttpVersion11):  # llhttp reads HTTP/0.9 and 2.0 request lines
            return self._refuse("malformed", 505 if request.version > HttpVersion11 else 400,
                                "only HTTP/1.0 and HTTP/1.1\n")
        if request.version == HttpVersion11 and "Host" not in request.headers:
            return self._refuse("malformed", 400, "HTTP/1.1 requires a Host header\n")
        path, method = request.path, request.method
        if path == self._webhook_path:
            return await self._webhook(request)
        if not self._serves_metrics and path != "/healthz":
            return _answer(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return _answer(405, b"only GET and HEAD\n", headers={"Allow": "GET, HEAD"})
        if path == self._path:
            return self._guarded(request) or self._metrics(request)
        if path == "/healthz":
            return _answer(200, b"ok\n")
        if path == "/readyz":
            ready = self._is_ready()
            return _answer(200 if ready else 503,
                           b"ready\n" if ready else b"not ready: waiting for the first complete refresh\n")
        if path == "/":
            return self._guarded(request) or _answer(200, self._landing().encode(), content_type=HTML)
        return _answer(404, b"not found\n")

    def _guarded(self, request: web.BaseRequest) -> web.Response | None:
        """The 401 a request without valid basic auth gets, or None when it may pass."""
        if self._authorize is None or self._authorize(request.headers.get("Authorization")):
            return None
        return _answer(401, b"unauthorized\n", headers={"WWW-Authenticate": _CHALLENGE})

    def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        gzipped = wants_gzip(request.headers.get("Accept-Encoding", ""))
        parts, content_type = self._exposition.body(openmetrics=openmetrics, gzipped=gzipped)
        headers = {"Content-Type": content_type, "Vary": _METRICS_VARY, "Server": SERVER}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if sum(map(len, parts)) > WHOLE_MAX:
            return _PartsResponse(parts, headers)
        key = (openmetrics, gzipped)
        cached = self._joined.get(key)
        if cached is None or len(cached[0]) != len(parts) or any(a is not b for a, b in zip(cached[0], parts,
                                                                                             strict=True)):
            # Joined once per snapshot and own-metrics change; the old bytes go with the old parts.
            cached = self._joined[key] = (parts, b"".join(parts))
        return web.Response(body=cached[1], headers=headers)

    async def _webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        receiver = self._receiver
        assert receiver is not None
        if request.method != "POST":
            return _delivery(receiver.handle(request.method, {}, b""))
        length = request.content_length
        if length is not None and length > WEBHOOK_MAX_BODY_BYTES:
            self._reject("body_too_large", 413)
            return _delivery(receiver.too_large(), close=True)
        expect = request.headers.get("Expect")
        if expect is not None and request.version >= HttpVersion11:
            if expect.strip().lower() != "100-continue":
                return _answer(417, b"only Expect: 100-continue\n")
            await request.writer.write(_CONTINUE)
            request.writer.output_size = 0  # the answer proper has not begun
        try:
            async with asyncio.timeout(self._limits.body_timeout):
                body = await _read_at_most(request, WEBHOOK_MAX_BODY_BYTES)
        except TimeoutError:
            return self._refuse("body_timeout", 408, "the body did not arrive in time\n")
        if body is None:
            self._reject("body_too_large", 413)
            return _delivery(receiver.too_large(), close=True)
        headers = {name.lower(): value for name, value in request.headers.items()}
        return _delivery(receiver.handle("POST", headers, body))

    def _reject(self, reason: str, status: int) -> None:
        self._rejections.reject(self.name, reason, status=status)

    def _refuse(self, reason: str, status: int, text: str) -> web.Response:
        """Count a rejection and answer it; the connection closes after the answer."""
        self._reject(reason, status)
        response = _answer(status, text.encode(), headers={"Connection": "close"})
        response.force_close()
        return response


class _PartsResponse(web.StreamResponse):
    """A large /metrics body, written part by part from the cached parts."""

    def __init__(self, parts: list[bytes], headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._parts = parts
        self.content_length = sum(map(len, parts))

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        if request.method != "HEAD":
            for part in self._parts:
                await self.write(part)
        return writer


async def _read_at_most(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole body (chunked or not), or None as soon as it is over `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, body: bytes, *, content_type: str = PLAIN,
            headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": content_type, "Server": SERVER,
                                                           **(headers or {})})


def _delivery(answer: Answer, *, close: bool = False) -> web.Response:
    headers = {"Allow": answer.allow} if answer.allow else {}
    response = _answer(answer.status, answer.body, headers={**headers, "Connection": "close"} if close else headers)
    if close:
        response.force_close()
    return response
