"""The HTTP server: /metrics from the pre-rendered exposition, a landing page, /healthz and /readyz.

A small HTTP/1.1 server on an asyncio protocol: keep-alive, pipelining, HEAD, gzip and OpenMetrics
negotiation, optional TLS and basic auth. A scrape is a few dictionary lookups and one write of
cached bytes: it never renders resource metrics and never calls the CallMeter API.

    bytes in ─► _Connection ─► parse_head ─► MetricsServer.respond ─► [head, body parts] ─► transport
                    └── stops reading while the transport holds more than its high-water mark

A /metrics response up to 4 MiB is kept whole, head included (remade when the Date header's second
or a body part changes), so a scrape is a single send. Larger bodies go out as memoryviews of the
cached parts, a few MiB at a time, so the transport never copies more than that.

Why not aiohttp or client_python's server: given the same cached bytes at 10,000 series, they
answered about 35-50% and 10-25% of the requests an in-memory limit does, where this one answers
80-110% (benchmarks/serve.py; figures in the README's Performance section).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate

from .. import logs
from ..webhooks import MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES
from ..webhooks import Receiver
from .exposition import Exposition, wants_gzip, wants_openmetrics

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT = 75.0
LINGER_SECONDS = 2.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Content Too Large", 431: "Request Header Fields Too Large", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}
PLAIN = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
_ALLOW = ((b"Allow", b"GET, HEAD"),)
_ALLOW_POST = ((b"Allow", b"POST"),)
_METRICS = ((b"Vary", b"Accept, Accept-Encoding"),)
_METRICS_GZIP = ((b"Content-Encoding", b"gzip"), (b"Vary", b"Accept, Accept-Encoding"))
_CHALLENGE = ((b"WWW-Authenticate", b'Basic realm="callmeter-exporter"'),)
_CHUNK = 4 * 1024 * 1024  # the most of a body handed to the transport at once (a socket takes no more)
_SMALL = 64 * 1024  # a smaller piece of output takes along what follows it, to save a send
_READ_SIZE = 16 * 1024
_REMEMBERED_HEADS = 256
_WHOLE_MAX = 4 * 1024 * 1024  # /metrics responses up to this size are cached whole, head included

Extra = tuple[tuple[bytes, bytes], ...]


class _Heads:
    """Response heads by (status, content type, length, keep-alive, extra headers), remade when the Date ticks."""

    def __init__(self) -> None:
        self.second = -1  # the Date of the cached heads
        self._date = b""
        self._cache: dict[tuple[int, str, int, bool, Extra], bytes] = {}

    def get(self, status: int, content_type: str, length: int, keep: bool, extra: Extra) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second, self._date = now, formatdate(now, usegmt=True).encode()
            self._cache.clear()
        key = (status, content_type, length, keep, extra)
        head = self._cache.get(key)
        if head is None:
            lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "").encode()),
                     b"Date: " + self._date,
                     b"Content-Type: " + content_type.encode(),
                     b"Content-Length: %d" % length,
                     b"Connection: keep-alive" if keep else b"Connection: close"]
            lines += [name + b": " + value for name, value in extra]
            head = self._cache[key] = b"\r\n".join(lines) + b"\r\n\r\n"
        return head


class _Request:
    """One parsed request head; read only, as the same head bytes share one (see MetricsServer.parse)."""

    __slots__ = ("body_length", "headers", "keep_alive", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], keep_alive: bool, body_length: int) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.keep_alive = keep_alive
        self.body_length = body_length


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.path = path


def parse_head(head: bytes, body_paths: frozenset[str] = frozenset()) -> _Request:
    """Parse a request head (without its blank line); raises _BadRequest. A request to one of
    `body_paths` (the webhook receiver) may carry a body up to WEBHOOK_MAX_BODY_BYTES."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise _BadRequest(400, "bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505 if version.startswith("HTTP/") else 400, "only HTTP/1.0 and HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if target.startswith(("http://", "https://")):  # absolute form, as sent to proxies
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    length = headers.get("content-length", "0")
    path = target.split("?", 1)[0]
    if "transfer-encoding" in headers or not length.isdigit():
        raise _BadRequest(400, "request bodies must have a Content-Length", path)
    if int(length) > (WEBHOOK_MAX_BODY_BYTES if path in body_paths else MAX_BODY_BYTES):
        raise _BadRequest(413, "request body too large", path)
    return _Request(method, path, headers, keep, int(length))


class _Connection(asyncio.BufferedProtocol):
    """One client connection: splits the byte stream into request heads and answers them in order.

    Answers wait in `_pending` as memoryviews and are handed to the transport a chunk at a time as
    it drains: before Python 3.12 the transport copies whatever the socket does not take at once,
    so this bounds the copy to a chunk instead of a whole 100k-series body per slow client.
    """

    def __init__(self, server: MetricsServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._read_view = memoryview(bytearray(_READ_SIZE))
        self._buffer = b""  # received, not yet answered
        self._skip = 0  # bytes of a request body still to discard
        self._awaiting: _Request | None = None  # a webhook delivery whose body is still arriving
        self._pending: deque[memoryview] = deque()  # answer bytes not yet given to the transport
        self._writing_paused = False
        self._eof = False  # the client will send nothing more
        self._closing = False  # no more requests are read: the last answer says Connection: close
        self._last_active = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        self._timer = self._loop.call_later(IDLE_TIMEOUT, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()

    def get_buffer(self, sizehint: int) -> memoryview:
        # Reads land in one small buffer per connection: a plain Protocol would get a fresh 256 KiB
        # bytes object per read, which the allocator may map and unmap each time.
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self._last_active = self._loop.time()
        if self._closing:
            return  # lingering after an error answer, or a request after Connection: close: dropped
        data = self._read_view[:nbytes].tobytes()
        self._buffer = self._buffer + data if self._buffer else data
        self._process()

    def eof_received(self) -> bool | None:
        # Half-closed by the client: answer the requests already received, then close (see _process).
        self._eof = True
        self._process()
        if self._closing and not self._pending and self._transport is not None:
            self._transport.close()  # after what it holds is sent
        return True

    def pause_writing(self) -> None:
        # A client that asks faster than it reads is not read until it catches up.
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._pump()
        if self._transport is not None and not self._writing_paused and not self._transport.is_closing():
            self._transport.resume_reading()
            self._process()

    # requests and answers

    def _process(self) -> None:
        while not self._writing_paused and not self._pending and not self._closing:
            buffer = self._buffer
            if self._awaiting is not None:
                request = self._awaiting
                if len(buffer) < request.body_length:
                    if self._eof:
                        self._closing = True
                        self._pump()
                    return
                self._awaiting, self._buffer = None, buffer[request.body_length:]
                self._send(self._server.deliver(request, buffer[:request.body_length]))
                continue
            if self._skip:
                dropped = min(self._skip, len(buffer))
                self._skip -= dropped
                buffer = self._buffer = buffer[dropped:]
            buffer = self._buffer = buffer.lstrip(b"\r\n")  # tolerated before a request line (RFC 9112 2.2)
            end = buffer.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEADER_BYTES:
                if len(buffer) > MAX_HEADER_BYTES:
                    self._fail(431, "request head too large")
                elif self._eof:
                    self._closing = True
                    self._pump()  # closes once the answers are out
                return
            head, self._buffer = buffer[:end], buffer[end + 4:]
            try:
                request = self._server.parse(head)
            except _BadRequest as exc:
                self._fail(exc.status, self._server.refused(exc))
                return
            if not request.keep_alive:
                self._closing = True
            if self._server.wants_body(request):
                self._awaiting = request
                continue
            self._skip = request.body_length
            self._send(self._server.respond(request))

    def _send(self, chunks: list[bytes]) -> None:
        self._pending.extend(memoryview(data) for data in chunks if data)
        self._pump()

    def _next_write(self) -> bytes | memoryview:
        """The next piece of pending output: at most a chunk of a body, never a copy of one; a small piece
        (a head, the own metrics) takes along what follows it, up to a small size, to save a send."""
        pending = self._pending
        first = pending.popleft()
        if len(first) >= _SMALL or not pending:
            if len(first) > _CHUNK:
                pending.appendleft(first[_CHUNK:])
                return first[:_CHUNK]
            return first
        pieces, size = [first], len(first)
        while pending and size < _SMALL:
            piece = pending.popleft()
            room = _SMALL - size
            if len(piece) > room:
                pending.appendleft(piece[room:])
                piece = piece[:room]
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)

    def _pump(self) -> None:
        transport = self._transport
        pending = self._pending
        while pending and not self._writing_paused and transport is not None and not transport.is_closing():
            transport.write(self._next_write())  # may call pause_writing
        if not pending and self._closing and transport is not None and not transport.is_closing():
            transport.close()  # after the transport has sent what it holds

    def _fail(self, status: int, message: str) -> None:
        """Answer an error and close; keep reading (and dropping) briefly so the client sees the answer, not a reset."""
        transport = self._transport
        assert transport is not None
        self._closing = True
        self._buffer = b""
        for data in self._server.answer(status, (message + "\n").encode(), keep=False):
            transport.write(data)
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _check_idle(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        idle = self._loop.time() - self._last_active
        if idle >= IDLE_TIMEOUT and not self._pending and transport.get_write_buffer_size() == 0:
            transport.close()
        else:
            self._timer = self._loop.call_later(max(1.0, IDLE_TIMEOUT - idle), self._check_idle)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class MetricsServer:
    def __init__(
        self,
        *,
        exposition: Exposition,
        telemetry_path: str = "/metrics",
        is_ready: Callable[[], bool],
        landing: Callable[[], str],
        authorize: Callable[[str | None], bool] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        receiver: Receiver | None = None,
        webhook_path: str = "/webhooks/callmeter",
        metrics: bool = True,
    ) -> None:
        """`receiver` answers POSTs to `webhook_path` (never behind basic auth: the signature is its
        authentication); `metrics=False` serves the receiver and /healthz alone, for a separate address."""
        self._exposition = exposition
        self._path = telemetry_path
        self._is_ready = is_ready
        self._landing = landing
        self._authorize = authorize
        self._ssl = ssl_context
        self._receiver = receiver
        self._body_paths = frozenset({webhook_path} if receiver is not None else ())
        self._serves_metrics = metrics
        self._heads = _Heads()
        # (openmetrics, gzipped, keep-alive) -> head, body parts, and the two joined; for this Date's second only
        self._whole: dict[tuple[bool, bool, bool], tuple[bytes, list[bytes], bytes]] = {}
        self._whole_second = -1
        self._requests: dict[bytes, _Request] = {}
        self._server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self._log = logs.get_logger("callmeter.server")

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host or None, port, ssl=self._ssl,
                                                backlog=256)
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.close()
            await self._server.wait_closed()

    def parse(self, head: bytes) -> _Request:
        """parse_head, remembered: a scraper sends the same request head every time."""
        request = self._requests.get(head)
        if request is None:
            request = parse_head(head, self._body_paths)
            if len(self._requests) >= _REMEMBERED_HEADS:
                self._requests.clear()
            self._requests[head] = request
        return request

    def wants_body(self, request: _Request) -> bool:
        """Is this a delivery to the receiver, whose body must be read before it is answered?"""
        return request.path in self._body_paths and request.method == "POST"

    def deliver(self, request: _Request, body: bytes) -> list[bytes]:
        """The receiver's answer to a delivery."""
        assert self._receiver is not None
        answer = self._receiver.handle(request.method, request.headers, body)
        return self.answer(answer.status, answer.body, keep=request.keep_alive)

    def refused(self, exc: _BadRequest) -> str:
        """What a refused request is told; one to the receiver is also counted there (413, or 400 for a
        body without a Content-Length, which this server does not read)."""
        if exc.path in self._body_paths and self._receiver is not None:
            if exc.status == 413:
                return self._receiver.too_large().body.decode().strip()
            self._receiver.refuse("bad_payload", str(exc))
        return str(exc)

    def answer(self, status: int, body: bytes | list[bytes], *, keep: bool, head_only: bool = False,
               content_type: str = PLAIN, extra: Extra = ()) -> list[bytes]:
        """Head and body of a response, as byte strings to write in order."""
        parts = body if isinstance(body, list) else [body]
        head = self._heads.get(status, content_type, sum(map(len, parts)), keep, extra)
        return [head] if head_only else [head, *parts]

    def _metrics(self, *, openmetrics: bool, gzipped: bool, keep: bool, head_only: bool) -> list[bytes]:
        parts, content_type = self._exposition.body(openmetrics=openmetrics, gzipped=gzipped)
        length = sum(map(len, parts))
        head = self._heads.get(200, content_type, length, keep, _METRICS_GZIP if gzipped else _METRICS)
        if head_only:
            return [head]
        if length > _WHOLE_MAX:
            return [head, *parts]
        # Head and body joined once (again when the Date ticks or a part changes): one write, one send a scrape.
        if self._whole_second != self._heads.second:
            self._whole.clear()  # let go of what older snapshots held
            self._whole_second = self._heads.second
        key = (openmetrics, gzipped, keep)
        cached = self._whole.get(key)
        if cached is None or cached[0] is not head or cached[1] != parts:  # identical objects compare at once
            cached = self._whole[key] = (head, parts, b"".join([head, *parts]))
        return [cached[2]]

    def respond(self, request: _Request) -> list[bytes]:
        """The response to one request, as byte strings to write in order."""
        keep = request.keep_alive
        method = request.method
        path = request.path
        if path in self._body_paths:
            assert self._receiver is not None
            answer = self._receiver.handle(method, request.headers, b"")  # not a POST: 405
            return self.answer(answer.status, answer.body, keep=keep, head_only=method == "HEAD",
                               extra=_ALLOW_POST if answer.allow else ())
        if not self._serves_metrics and path != "/healthz":
            return self.answer(404, b"not found\n", keep=keep, head_only=method == "HEAD")
        if method != "GET" and method != "HEAD":
            return self.answer(405, b"only GET and HEAD\n", keep=keep, extra=_ALLOW)
        head_only = method == "HEAD"
        if path == self._path:
            headers = request.headers
            if self._authorize is not None and not self._authorize(headers.get("authorization")):
                return self.answer(401, b"unauthorized\n", keep=keep, head_only=head_only, extra=_CHALLENGE)
            return self._metrics(openmetrics=wants_openmetrics(headers.get("accept", "")),
                                 gzipped=wants_gzip(headers.get("accept-encoding", "")), keep=keep,
                                 head_only=head_only)
        if path == "/healthz":
            return self.answer(200, b"ok\n", keep=keep, head_only=head_only)
        if path == "/readyz":
            ready = self._is_ready()
            return self.answer(200 if ready else 503,
                               b"ready\n" if ready else b"not ready: waiting for the first complete refresh\n",
                               keep=keep, head_only=head_only)
        if path == "/":
            # Basic auth guards what describes the account; the probes above stay open for kubelets.
            if self._authorize is not None and not self._authorize(request.headers.get("authorization")):
                return self.answer(401, b"unauthorized\n", keep=keep, head_only=head_only, extra=_CHALLENGE)
            return self.answer(200, self._landing().encode(), keep=keep, head_only=head_only, content_type=HTML)
        return self.answer(404, b"not found\n", keep=keep, head_only=head_only)
