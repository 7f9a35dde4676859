"""The HTTP edge's guard: aiohttp's server (its C parser, llhttp) with limits for the internet.

aiohttp reads and answers HTTP; this module adds what it leaves to its users:

    connection ─► Guard.connection_made ── at the cap: a half-sent head, else the longest idle, makes room
        bytes ──► Guard.data_received ──── a head not complete within `header_timeout`: 408, closed
      request ──► the listener's handler ─ a body not read within `body_timeout`: 408, closed
    bad bytes ──► Guard.handle_error ───── 400/413/431, closed; counted, logged once a minute
      answers ──► Guard.pause_writing ──── a client that reads none of them for `idle_timeout`: closed

A malformed request is answered with a 4xx and the connection is closed: nothing sent behind it on
the same connection is read. Nor is anything behind a request that asks to switch protocols (the edge
never does): it is answered, and the connection closed. Each rejection is counted in
`callmeter_exporter_http_rejected_requests_total{listener,reason}` and logged at most once a minute
per listener and reason, as one line that names neither the client's bytes nor a traceback: a client
decides what those would say.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import http_exceptions, streams, web, web_protocol
from prometheus_client import CollectorRegistry, Counter

from .. import logs

REASONS = (
    "malformed",             # 400: the parser refused the head (smuggling attempts among them), or no Host
    "header_too_large",      # 431: a line over 8 KiB, or over MAX_HEADERS header fields
    "body_too_large",        # 413: a webhook body over its limit
    "header_timeout",        # 408: a head not complete within CALLMETER_WEB_HEADER_TIMEOUT
    "body_timeout",          # 408: a webhook body not complete within CALLMETER_WEBHOOK_BODY_TIMEOUT
    "too_many_connections",  # a connection closed to make room at CALLMETER_WEB_MAX_CONNECTIONS
    "handler_error",         # 500: a bug of ours; never a traceback in the log (a client chose the input)
)
MAX_LINE = 8190
"""The longest request line and header field aiohttp reads (its own default)."""
MAX_HEADERS = 100
"""Header fields a request may carry: Prometheus sends about six, a webhook about ten."""
LINGER = 2.0
"""Seconds an unread request body is read and dropped before the connection is closed."""
LOG_EVERY = 60.0
ACCEPT_BATCH = 256
"""Connections accepted at a time, at most; never more than a quarter of the connection cap (see `GuardedSite`)."""
ACCEPT_QUEUE = 4096
"""Connections the kernel holds until they are accepted (it caps this at net.core.somaxconn): in a flood
they wait there, rather than have their SYNs dropped, which costs a scrape caught in it a second a retry."""
SERVER = "callmeter-exporter"
"""The Server header of every answer (aiohttp's own names the Python and aiohttp versions)."""
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLimits:
    """The operator's limits (the CALLMETER_WEB_* settings), per listener."""

    max_connections: int = 512
    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    body_timeout: float = 10.0


class Rejections:
    """The rejected-requests counter, every listener and reason at 0 from the start, and the quiet log."""

    def __init__(self, registry: CollectorRegistry, listeners: tuple[str, ...], *,
                 on_change: Callable[[], None] = lambda: None, clock: Callable[[], float] | None = None) -> None:
        self._counter = Counter("callmeter_exporter_http_rejected_requests",
                                "HTTP requests the exporter refused before or while reading them (malformed, too "
                                "large, too slow, or over the connection cap), by listener and reason.",
                                ["listener", "reason"], registry=registry)
        for listener in listeners:
            for reason in REASONS:
                self._counter.labels(listener, reason)
        self._on_change = on_change
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}
        self._log = logs.get_logger("callmeter.http")

    def reject(self, listener: str, reason: str, *, status: int | None, cause: str | None = None) -> None:
        """Count one rejection; log it unless this listener logged this reason less than a minute ago."""
        self._counter.labels(listener, reason).inc()
        self._on_change()
        now = self._clock()
        last, quiet = self._logged.get((listener, reason), (float("-inf"), 0))
        if now - last < LOG_EVERY:
            self._logged[(listener, reason)] = (last, quiet + 1)
            return
        self._logged[(listener, reason)] = (now, 0)
        self._log.warning("http.rejected", listener=listener, reason=reason, status=status, cause=cause,
                          since_last_line=quiet or None)


class Guard(web_protocol.RequestHandler):
    """aiohttp's protocol for one connection, held to the edge's limits (see the module's docstring)."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._client_done = False  # the client half-closed: answer what it sent, then close
        self._answered = 0
        self._answered_body: streams.StreamReader | None = None

    @property
    def busy(self) -> bool:
        """Is a request in hand, come whole and not yet answered (as against waiting for, or reading, a
        head)? Counted: between aiohttp's queue and its handler a request is in neither for a turn of the
        loop, and an end of input or an eviction in that turn would drop it."""
        return self._request_count > self._answered

    @property
    def stalled(self) -> bool:
        """Has the client stopped reading its answers (the transport's buffer is over its high-water mark)?"""
        return self.writing_paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._edge.admit(self)  # may close this connection, or another

    def connection_lost(self, exc: BaseException | None) -> None:
        self._edge.leave(self)
        self._stop_header_timer()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        super().connection_lost(exc)

    def abort(self) -> None:
        """Close now, dropping any answer the client has not read (a plain close waits for it to read)."""
        transport = self.transport
        self.force_close()
        if transport is not None:
            transport.abort()

    def pause_writing(self) -> None:
        """The client is not reading its answers. A client that reads nothing for `idle_timeout` is as
        idle as one that sends nothing, and is closed; until then, at the cap, it makes room before a
        connection whose client is reading (else a few hundred clients that pipeline scrapes and never
        read would hold every place, and Prometheus would be turned away until they left)."""
        super().pause_writing()
        self._stall_timer = self._loop.call_later(self._edge.limits.idle_timeout, self.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads or self.busy:
            self._stop_header_timer()  # a head (or an error) came out of the parser
        elif self._answered_body is not None and not self._answered_body.is_eof():
            pass  # the rest of a body answered unread (a 413), which aiohttp reads and drops for LINGER seconds
        elif self._header_timer is None and not self._force_close:
            self._header_timer = self._loop.call_later(self._edge.limits.header_timeout, self._header_expired)
            self._edge.head_begun(self)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
            self._edge.head_ended(self)

    def _header_expired(self) -> None:
        self._header_timer = None
        self._edge.head_ended(self)
        if self.transport is None or self.busy:
            return
        self._edge.reject("header_timeout", status=408)
        self.transport.write(_TIMEOUT_ANSWER)
        self.force_close()  # the transport sends what it holds, then closes

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's contract: True keeps writing open
        """A client that half-closes after its requests (`printf ... | nc -N`) still gets every answer:
        aiohttp would close at once and drop them. A body cut short by the end never completes."""
        if not self.busy or self.transport is None or self.transport.get_extra_info("sslcontext") is not None:
            return False  # nothing asked and unanswered (or TLS, which cannot half-close): the transport closes
        self._client_done = True
        request = self._current_request
        for body in [*([request.content] if request is not None else []), *(p for _, p in self._messages)]:
            if not body.is_eof():
                body.set_exception(ConnectionResetError("the client closed before the body was whole"))
        return True

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
                              ) -> tuple[web.StreamResponse, bool]:
        if "Upgrade" in request.headers or request.method == "CONNECT":
            # aiohttp's parser drops whatever followed such a request in the same read and parses the next
            # read afresh: a body sent in a read of its own would run as a request. Answer it, and close.
            resp.force_close()
        answered = await super().finish_response(request, resp, start_time)
        self._answered += 1
        self._answered_body = request.content
        self._edge.active(self)
        if self._client_done and not self.busy:
            self.close()  # the last answer is out: aiohttp closes once this handler returns
        return answered

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to what its parser refused (and to a handler's bug), without its traceback."""
        if isinstance(exc, ConnectionError):  # the client left mid-request: nothing to answer, nor to count
            response = web.Response(status=400)
            response.force_close()
            return response
        status, reason = classify(status, exc)
        self._edge.reject(reason, status=status, cause=type(exc).__name__ if exc is not None else None)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun: the connection is closed instead")
        response = web.Response(status=status, text=f"{status} {REASON_PHRASES[status]}\n",
                                headers={"Server": SERVER, "Connection": "close"})
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp logs a client's malformed request with a traceback; `Rejections` has logged it already."""

    def log_debug(self, *args: Any, **kw: Any) -> None:
        """aiohttp's debug lines name client bytes; the edge's own lines say what matters."""


REASON_PHRASES = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
                  431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def classify(status: int, exc: BaseException | None) -> tuple[int, str]:
    """(status, reason) for what aiohttp hands `handle_error`: a parse error, or a handler's exception."""
    if isinstance(exc, http_exceptions.LineTooLong) or (
            isinstance(exc, http_exceptions.BadHttpMessage) and "Too many headers" in str(exc)):
        return 431, "header_too_large"
    if isinstance(exc, http_exceptions.HttpProcessingError) or status == 400:
        return 400, "malformed"
    return 500, "handler_error"


class GuardedServer(web.Server):
    """aiohttp's low-level server, making a `Guard` per connection and keeping count of them."""

    def __init__(self, handler: Callable[..., Any], *, listener: str, limits: EdgeLimits, rejections: Rejections,
                 **kwargs: Any) -> None:
        super().__init__(handler, keepalive_timeout=limits.idle_timeout, lingering_time=LINGER,
                         max_line_size=MAX_LINE, max_field_size=MAX_LINE, max_headers=MAX_HEADERS,
                         access_log=None, auto_decompress=False, **kwargs)
        self.listener = listener
        self.limits = limits
        self._rejections = rejections
        self._open: OrderedDict[Guard, None] = OrderedDict()  # longest idle first
        self._heads: OrderedDict[Guard, None] = OrderedDict()  # part-way through a head, longest so first

    def __call__(self) -> Guard:
        return Guard(self, loop=self._loop, **self._kwargs)

    def admit(self, guard: Guard) -> None:
        """A new connection. At the cap one is closed to make room: the longest part-way through a head,
        else the longest idle, else the longest stalled (its client reads none of its answers). So a
        flood of half-sent, idle or unread connections cannot keep Prometheus out, and a half-sent head
        goes before a new connection whose request has not been read yet (it may be a scrape). When
        every one is busy and read, the new one is closed."""
        if len(self._open) >= self.limits.max_connections:
            victim = (next(iter(self._heads), None) or next((g for g in self._open if not g.busy), None)
                      or next((g for g in self._open if g.stalled), None))
            self.reject("too_many_connections", status=None)
            if victim is None:
                guard.force_close()
                return
            self.leave(victim)
            victim.abort()  # a plain close would wait for a stalled client to read
        self._open[guard] = None

    def leave(self, guard: Guard) -> None:
        self._open.pop(guard, None)
        self._heads.pop(guard, None)

    def head_begun(self, guard: Guard) -> None:
        self._heads[guard] = None

    def head_ended(self, guard: Guard) -> None:
        self._heads.pop(guard, None)

    def active(self, guard: Guard) -> None:
        """A request was answered on this connection: it is the most recently active."""
        if guard in self._open:
            self._open.move_to_end(guard)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def reject(self, reason: str, *, status: int | None, cause: str | None = None) -> None:
        self._rejections.reject(self.listener, reason, status=status, cause=cause)


def quiet_library_loggers() -> None:
    """aiohttp's own loggers stay out of the exporter's log: what they would say of a client's request
    (with a traceback) the edge says in one counted line."""
    for name in ("aiohttp.server", "aiohttp.access", "aiohttp.web"):
        logging.getLogger(name).disabled = True


def accept_batch(limits: EdgeLimits) -> int:
    """Connections a listener accepts at a time (see `GuardedSite`)."""
    return max(1, min(ACCEPT_BATCH, limits.max_connections // 4))


def descriptors(limits: EdgeLimits) -> int:
    """Descriptors a listener may hold in a flood: its cap, and up to three batches accepted and not yet
    admitted (asyncio admits a batch two turns of its loop after accepting it)."""
    return limits.max_connections + 3 * accept_batch(limits)


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, taking connections from a deep queue a quarter of the cap at a time.

    asyncio accepts up to `backlog` connections in one go and admits each before reading from any, and
    it admits the next batch before this one is read. In a flood, two batches that filled the cap would
    evict their own first members, a scrape among them, before their requests were read; a quarter of
    the cap leaves room. asyncio makes the kernel's queue as short; it is deepened once the site has
    started."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, *, limits: EdgeLimits,
                 **kwargs: Any) -> None:
        super().__init__(runner, host, port, backlog=accept_batch(limits), **kwargs)

    async def start(self) -> None:
        await super().start()
        server = self._server
        assert isinstance(server, asyncio.Server)
        for listening in server.sockets:
            with socket.socket(fileno=os.dup(listening.fileno())) as sock:
                sock.listen(ACCEPT_QUEUE)
