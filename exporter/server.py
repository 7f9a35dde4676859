"""The HTTP server: /metrics from the pre-rendered exposition, a landing page, /healthz and /readyz.

A small HTTP/1.1 server on asyncio streams (keep-alive, HEAD, gzip negotiation, optional TLS and
basic auth). A scrape is a dictionary lookup and a write: it never renders resource metrics and
never calls the CallMeter API.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate

from . import logs
from .exposition import Exposition, wants_gzip, wants_openmetrics

MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT = 75.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 503: "Service Unavailable"}


class _Date:
    """The Date header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True).encode()
        return self._value


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
    ) -> None:
        self._exposition = exposition
        self._path = telemetry_path
        self._is_ready = is_ready
        self._landing = landing
        self._authorize = authorize
        self._ssl = ssl_context
        self._date = _Date()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._log = logs.get_logger("callmeter.server")

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._server = await asyncio.start_server(self._serve, host or None, port, ssl=self._ssl,
                                                  limit=MAX_HEADER_BYTES, backlog=256)
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True to keep the connection for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, 413, b"request head too large\n", keep=False)
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            await self._send(writer, 400, b"bad request line\n", keep=False)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            await self._send(writer, 400, b"request bodies are not accepted\n", keep=False)
            return False
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_HEADER_BYTES:
            await self._send(writer, 413, b"request body too large\n", keep=False)
            return False
        if int(length):
            await reader.readexactly(int(length))
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, b"only GET and HEAD\n", keep=keep, extra=[(b"Allow", b"GET, HEAD")])
            return keep
        path = target.split("?", 1)[0]
        if path == self._path:
            if self._authorize is not None and not self._authorize(headers.get("authorization")):
                await self._send(writer, 401, b"unauthorized\n", keep=keep, head_only=head_only,
                                 extra=[(b"WWW-Authenticate", b'Basic realm="callmeter-exporter"')])
                return keep
            gz = wants_gzip(headers.get("accept-encoding", ""))
            parts, content_type = self._exposition.body(openmetrics=wants_openmetrics(headers.get("accept", "")),
                                                        gzipped=gz)
            extra = [(b"Content-Encoding", b"gzip")] if gz else []
            extra.append((b"Vary", b"Accept, Accept-Encoding"))
            await self._send(writer, 200, parts, keep=keep, head_only=head_only, content_type=content_type,
                             extra=extra)
        elif path == "/healthz":
            await self._send(writer, 200, b"ok\n", keep=keep, head_only=head_only)
        elif path == "/readyz":
            ready = self._is_ready()
            await self._send(writer, 200 if ready else 503,
                             b"ready\n" if ready else b"not ready: waiting for the first complete refresh\n",
                             keep=keep, head_only=head_only)
        elif path == "/":
            await self._send(writer, 200, self._landing().encode(), keep=keep, head_only=head_only,
                             content_type="text/html; charset=utf-8")
        else:
            await self._send(writer, 404, b"not found\n", keep=keep, head_only=head_only)
        return keep

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes | list[bytes], *, keep: bool,
                    head_only: bool = False, content_type: str = "text/plain; charset=utf-8",
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        parts = body if isinstance(body, list) else [body]
        length = sum(len(p) for p in parts)
        head = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, "").encode()),
                b"Date: " + self._date.get(),
                b"Content-Type: " + content_type.encode(),
                b"Content-Length: %d" % length,
                b"Connection: keep-alive" if keep else b"Connection: close"]
        head += [name + b": " + value for name, value in extra or ()]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        if not head_only:
            writer.writelines(parts)
        await writer.drain()
