"""Helpers for the fault, load and security tests.

    SimulatorProcess    `python -m exporter.simulator` as a separate process, driven through /_sim
    FaultProxy          a TCP proxy in front of it that can reset, truncate or refuse connections
    ServerThread        the exporter's HttpListener on its own event loop thread, for blocking clients
    parse_samples       an exposition as {(name, labels): value}, through prometheus_client's parser

Every process is started and stopped by its own PID; every socket listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.expose.exposition import Exposition
from exporter.expose.selfmetrics import ExporterMetrics
from tests.support.listening import make_listener
from tests.support.prometheus import stop_process

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def parse_samples(text: str) -> Samples:
    """Every sample of a text exposition; raises if the text does not parse."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class SimulatorProcess:
    """The standalone simulator; its one JSON line on stdout tells where it listens."""

    def __init__(self, *args: str, port: int = 0) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="simulator-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.simulator", "--listen-address", f"127.0.0.1:{port}", *args],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise AssertionError("the simulator did not start:\n" + Path(self._log.name).read_text(errors="replace"))
        info = json.loads(line)
        self.port: int = info["port"]
        self.base_url: str = info["base_url"]
        self.key: str = info["key"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = httpx.Client(base_url=self.url, timeout=5)

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = (self._http.get(path) if body is None else self._http.post(path, json=body))
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        return self.control("/_sim/state")

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self.control("/_sim/faults", faults)

    def reset_faults(self) -> None:
        self.control("/_sim/reset-faults", {})

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._http.close()
        stop_process(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def _abort(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0): the peer sees a connection reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """A TCP proxy to 127.0.0.1:`upstream_port` whose `mode` says how it misbehaves:

    pass      forward both ways
    reset     every connection, open or new, is reset
    truncate  half of each response arrives, then the connection is reset
    down      nothing listens on the port (connection refused); `pass` listens again on the same port

    `on_request`, when set, is called with each chunk a client sends (a request's head, as HTTP/1.1
    clients write it in one piece) before it is forwarded: a test can act between two requests.
    """

    MODES = ("pass", "reset", "truncate", "down")

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.mode = "pass"
        self.on_request: Callable[[bytes], None] | None = None
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="fault-proxy", daemon=True).start()

    def set_mode(self, mode: str) -> None:
        assert mode in self.MODES, mode
        with self._lock:
            previous, self.mode = self.mode, mode
            if mode in ("reset", "down"):
                for sock in list(self._sockets):
                    _abort(sock)
                self._sockets.clear()
            if mode == "down" and self._listener is not None:
                self._listener.close()
                self._listener = None
        if previous == "down" and mode != "down":
            self._listen()

    def close(self) -> None:
        self.set_mode("down")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            if self.mode in ("reset", "down"):
                _abort(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            _abort(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.update((client, upstream))
        threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()
        self._pump(client, upstream, False)

    def _pump(self, source: socket.socket, target: socket.socket, responses: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if responses and self.mode == "truncate":
                    target.sendall(data[: max(1, len(data) // 2)])
                    break
                hook = self.on_request
                if not responses and hook is not None:
                    hook(data)
                target.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._sockets.discard(source)
            self._sockets.discard(target)
        _abort(source)
        _abort(target)


class ServerThread:
    """An HttpListener on 127.0.0.1 served by an event loop on its own thread."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 authorize: Callable[[str | None], bool] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ExporterMetrics(self.registry, budget_per_minute=8.0)
        self.exposition = Exposition(self.registry, self.metrics)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="metrics-server", daemon=True)
        self.server = make_listener(self.exposition, self.metrics, landing=lambda: "<html/>", authorize=authorize,
                                    ssl_context=ssl_context)
        self.port = 0

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop (where the exposition lives) and return its result."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start("127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.port
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def simulator_process(*args: str) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(*args)
    try:
        yield sim
    finally:
        sim.stop()
