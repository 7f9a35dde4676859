"""Hostile HTTP traffic over raw loopback sockets, and what the process it hits looks like from outside.

    got = exchange(port, b"POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: \\xc2\\xb2\\r\\n\\r\\n" + get("/healthz"))
    assert got.statuses == [400] and got.closed      # and the request behind it never answered

- `exchange` sends bytes exactly as given (in pieces, with pauses, when asked) while it reads, and
  reads every answer until the server closes or a deadline passes.
- `Connection` does the same step by step (send, read an answer, send more, see it closed).
- `Flood` holds hundreds of connections with half a head each, and replaces those the server closes;
  `never_reading` opens one that sends its requests and reads none of the answers.
- `rss_kib`, `peak_rss_kib`, `open_descriptors` and `RssWatch` read /proc for a process the test started.

Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["Answer", "Connection", "Exchange", "Flood", "RssWatch", "exchange", "framed", "get", "never_reading",
           "open_descriptors", "parse_answers", "peak_rss_kib", "request", "rss_kib"]

HOST = "127.0.0.1"
SEND_TIMEOUT = 30.0
"""Seconds one write may block before the sender gives up (the server stopped reading)."""


def request(method: str, path: str, *headers: str, body: bytes = b"", version: str = "HTTP/1.1",
            host: bool = True) -> bytes:
    """A request as given: Host (unless told not to), the header lines as written, then `body` (no
    Content-Length is added: a test states the framing it means)."""
    lines = [f"{method} {path} {version}", *([f"Host: {HOST}"] if host else []), *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def framed(body: bytes, *, chunked: bool, piece: int = 97) -> tuple[str, bytes]:
    """The framing header of `body` and the body as it goes on the wire: Content-Length, or chunked in
    pieces of `piece` bytes (a body of more than one piece arrives in several chunks)."""
    if not chunked:
        return f"Content-Length: {len(body)}", body
    pieces = [body[i:i + piece] for i in range(0, len(body), piece)]
    return "Transfer-Encoding: chunked", b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def get(path: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return request("GET", path, *headers, version=version)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as it came over the wire (header names lower-cased, the last of a name kept)."""

    version: str
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """What one connection received: the answers, whether the server closed it, and when."""

    answers: list[Answer]
    closed: bool
    """The server closed the connection (FIN or reset) before the reading ended."""
    seconds: float
    """From the first byte sent to the close (or to the end of the reading)."""
    rest: bytes = b""
    """Bytes after the last whole answer (an answer cut short)."""

    @property
    def statuses(self) -> list[int]:
        return [a.status for a in self.answers]


def parse_answers(data: bytes, *, at_eof: bool = False) -> tuple[list[Answer], bytes]:
    """The whole answers at the start of `data`, and what is left. A body without a length runs to EOF."""
    answers: list[Answer] = []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        status_line, *lines = data[:end].decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        code = int(status)
        rest = data[end + 4:]
        if 100 <= code < 200 or code in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = _dechunk(rest)
            if decoded is None:
                break
            body, rest = decoded
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(rest) < length:
                break
            body, rest = rest[:length], rest[length:]
        elif at_eof:
            body, rest = rest, b""
        else:
            break
        answers.append(Answer(version, code, headers, body))
        data = rest
    return answers, data


def _dechunk(data: bytes) -> tuple[bytes, bytes] | None:
    body = bytearray()
    while (line_end := data.find(b"\r\n")) >= 0:
        size = int(data[:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", start)
            return (bytes(body), data[trailer_end + 2:]) if trailer_end >= 0 else None
        if len(data) < start + size + 2:
            return None
        body += data[start:start + size]
        data = data[start + size + 2:]
    return None


class Connection:
    """One raw connection, step by step: `send`, `answers`, `closed`. Use it as a context manager."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=SEND_TIMEOUT)
        self._pending = b""
        self._eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, until: float) -> bool:
        """Read what comes before `until`; False when nothing more can (a deadline, or the server closed)."""
        left = until - time.monotonic()
        if self._eof or left <= 0 or not select.select([self.sock], [], [], left)[0]:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        self._eof = not chunk
        self._pending += chunk
        return bool(chunk)

    def answers(self, count: int, within: float = 5.0) -> list[Answer]:
        """The next `count` answers (interim ones count), or fewer when the deadline passes or the server closes."""
        until = time.monotonic() + within
        while True:
            got, _ = parse_answers(self._pending, at_eof=self._eof)
            if len(got) >= count or not self._read(until):
                break
        got, self._pending = parse_answers(self._pending, at_eof=self._eof)
        return got

    def closed(self, within: float = 5.0) -> bool:
        """Has the server closed the connection (reading and dropping anything else it sends)?"""
        until = time.monotonic() + within
        while self._read(until):
            pass
        return self._eof

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exchange(port: int, *pieces: bytes, pause: float = 0.0, wait: float = 5.0, answers: int | None = None,
             half_close: bool = False) -> Exchange:
    """Send `pieces` on one new connection, `pause` seconds apart, while reading; read until the server
    closes, `wait` seconds after the last piece, or (given `answers`) that many final (non-1xx) answers.
    `half_close`: shut the sending side after the last piece."""
    closed_at: float | None = None
    got: list[Answer] = []
    pending = b""
    with socket.create_connection((HOST, port), timeout=SEND_TIMEOUT) as sock:
        start = time.monotonic()
        sent = threading.Event()

        def send() -> None:
            try:
                for i, piece in enumerate(pieces):
                    if i and pause:
                        time.sleep(pause)
                    sock.sendall(piece)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:  # the server closed first: what it answered is what counts
                pass
            finally:
                sent.set()

        # A thread sends while this one reads: a server that answers as it reads would otherwise stop
        # reading once its answers fill the socket, and both sides would wait on each other.
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline: float | None = None
        while answers is None or sum(1 for a in got if a.status >= 200) < answers:
            if deadline is None and sent.is_set():
                deadline = time.monotonic() + wait
            left = 0.1 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                break
            # select, not a socket timeout: that would apply to the sender's writes too
            if not select.select([sock], [], [], min(left, 0.1))[0]:
                continue
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed_at = time.monotonic()
                break
            more, pending = parse_answers(pending + chunk)
            got += more
        seconds = (closed_at if closed_at is not None else time.monotonic()) - start
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the sender, when the server never read what it was sending
        sender.join(SEND_TIMEOUT)
    more, rest = parse_answers(pending, at_eof=closed_at is not None)
    return Exchange(got + more, closed_at is not None, seconds, rest)


# -- the process, seen from /proc ------------------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field_name} for process {pid}")


def rss_kib(pid: int) -> int:
    """Resident memory now, in KiB (VmRSS)."""
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """The most resident memory the process has had since it started, in KiB (VmHWM)."""
    return _status_kib(pid, "VmHWM")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class RssWatch:
    """The highest VmRSS (KiB) and open-descriptor count seen while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            self.peak_fds = max(self.peak_fds, open_descriptors(self.pid))
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                 ) -> None:
        self._stop.set()
        self._thread.join()


# -- a connection flood ----------------------------------------------------------------------------


def never_reading(port: int, data: bytes) -> socket.socket:
    """A connection that sends what of `data` its buffers take and never reads an answer (its receive
    buffer is made small, so the server's writes stall at once). The caller closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        sock.send(data)
    return sock


@dataclass
class Flood:
    """Up to `size` connections that each send `head` (half a request head) and hold it; each one the
    server closes is replaced, until `hold` returns. Run `hold(seconds)` in a thread of its own."""

    port: int
    size: int
    head: bytes = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    opened: int = 0
    """Connections the flood opened, replacements included."""
    closed_by_server: int = 0
    failed: int = 0
    """Connects refused or reset before the half head went out."""
    peak: int = 0
    """The most connections the flood held at once."""
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)

    def _open_one(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if sock.connect_ex((HOST, self.port)) not in (0, errno.EINPROGRESS):
            sock.close()
            self.failed += 1
            return
        self._selector.register(sock, selectors.EVENT_WRITE, "connecting")
        self.opened += 1

    def hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                while len(self._selector.get_map()) < self.size:
                    self._open_one()
                self.peak = max(self.peak, len(self._selector.get_map()))
                for key, _ in self._selector.select(timeout=0.05):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    if key.data == "connecting":
                        try:
                            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                                raise ConnectionRefusedError
                            sock.send(self.head)
                        except OSError:
                            self._drop(sock)
                            self.failed += 1
                            continue
                        self._selector.modify(sock, selectors.EVENT_READ, "held")
                        continue
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # the server closed it (evicted, or past the head's deadline): replace it
                        self._drop(sock)
                        self.closed_by_server += 1
        finally:
            for key in list(self._selector.get_map().values()):
                self._drop(key.fileobj)  # type: ignore[arg-type]
            self._selector.close()

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()
