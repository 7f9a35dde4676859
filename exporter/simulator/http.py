"""Serving the simulator: a real HTTP server on a thread, and an in-process httpx transport."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .app import Simulator


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (the exporter timing out, by design in the fault tests) is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class SimulatorServer:
    """The simulator on 127.0.0.1 (port 0 picks a free one), served from a daemon thread."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        handler = _handler_for(simulator)
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="callmeter-simulator", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> SimulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.simulator.webhooks.stop()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(simulator: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "callmeter-simulator"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            latency = simulator.faults.latency if self.path.startswith("/api/") else 0.0
            # Answer on arrival, deliver late: a request its client gave up on must not wake later and
            # take a fault (a 429 of a burst, say) meant for the requests that follow.
            response = simulator.handle(self.command, self.path, dict(self.headers.items()), body)
            if latency:
                time.sleep(latency)
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass  # the exporter's own logs tell the story

    return Handler


class SimulatorTransport(httpx.AsyncBaseTransport):
    """The simulator as an httpx transport: no sockets, and latency through an injected sleep, so a
    simulated clock can drive hours of traffic in seconds."""

    def __init__(self, simulator: Simulator, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 latency: float | None = None) -> None:
        self.simulator = simulator
        self._sleep = sleep
        self._latency = latency

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        latency = self.simulator.faults.latency if self._latency is None else self._latency
        if latency:
            await self._sleep(latency)
        target = request.url.raw_path.decode()
        response = self.simulator.handle(request.method, target, dict(request.headers.items()), request.content)
        return httpx.Response(response.status, headers=response.headers, content=response.body)
