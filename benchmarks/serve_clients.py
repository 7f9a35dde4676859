"""The clients `serve.py` points at a server, each in a process of its own (never sharing the server's GIL):

- `run_load`: wrk (`wrk -t1 -cN --latency`) for a bounded time, or `python_load`, a keep-alive HTTP/1.1
  client run as `serve.py --load`, where wrk is missing;
- `hold`, run as `serve.py --hold`: N connections that each send half a request head
  ("GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n", never the blank line) and wait; when the server closes one
  (its header deadline: a 408, then the close) it is opened again at once, so N stay held.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

HALF_HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p50: float  # seconds
    p99: float
    max: float
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
    most = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)  # Avg, Stdev, Max
    done = re.search(r"(\d+) requests in", output)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(requests_per_second=float(rate[1]) if rate else 0.0,
                p50=_wrk_seconds(p50[1]) if p50 else math.nan, p99=_wrk_seconds(p99[1]) if p99 else math.nan,
                max=_wrk_seconds(most[1]) if most else math.nan, requests=int(done[1]) if done else 0,
                errors=errors + (int(non2xx[1]) if non2xx else 0))


def load_tool(connections: int) -> str:
    return f"wrk -t1 -c{connections} --latency" if shutil.which("wrk") else f"Python client, {connections} connections"


def run_load(port: int, *, duration: int, connections: int, headers: Sequence[str],
             preexec: Callable[[], None] | None = None) -> Load:
    """`connections` keep-alive connections asking for /metrics as fast as answers come, for `duration` s."""
    url = f"http://127.0.0.1:{port}/metrics"
    wrk = shutil.which("wrk")
    if wrk is not None:
        argv = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "20s"]
        for header in headers:
            argv += ["-H", header]
        argv.append(url)
    else:
        argv = [sys.executable, sys.argv[0], "--load", url, "--connections", str(connections),
                "--duration", str(duration), *(arg for header in headers for arg in ("--header", header))]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, preexec_fn=preexec,
                          check=True)
    return parse_wrk(done.stdout) if wrk is not None else Load(**json.loads(done.stdout))


async def python_load(url: str, connections: int, duration: float, headers: Sequence[str]) -> Load:
    """A keep-alive HTTP/1.1 load client for machines without wrk (reconnects when the server closes)."""
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    path = "/" + url.split("/", 3)[3]
    extra = "".join(f"{header}\r\n" for header in headers)
    request = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n{extra}\r\n".encode()
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
                length = re.search(rb"content-length: *(\d+)", head)
                if length is None:
                    await reader.read()  # no length: the body ends with the connection
                    writer.close()
                    writer = None
                else:
                    await reader.readexactly(int(length[1]))
                latencies.append(time.perf_counter() - started)
                if writer is not None and (b"connection: close" in head or head.startswith(b"http/1.0")):
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                writer = None

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else math.nan

    return Load(len(latencies) / elapsed, pct(0.50), pct(0.99), latencies[-1] if latencies else math.nan,
                len(latencies), errors)


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


async def hold(port: int, count: int, lifetime: float) -> None:
    """Hold `count` half-sent heads open until SIGTERM (or `lifetime` s); print one JSON line when all are
    open, and one with the counts when stopped."""
    raise_open_files(count + 64)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(lifetime, stop.set)
    counts: Counter[str] = Counter()
    all_open = asyncio.Event()
    held = 0

    async def one() -> None:
        nonlocal held
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts["connect_failed"] += 1
                await asyncio.sleep(0.01)
                continue
            writer.write(HALF_HEAD)
            held += 1
            counts["opened"] += 1
            if counts["opened"] == count:
                all_open.set()
            try:
                answer = await reader.read()  # until the server closes the connection
            except OSError:
                answer = b""
            finally:
                held -= 1
                writer.close()
            counts["closed_by_server"] += 1
            counts["answered_408"] += answer.startswith(b"HTTP/1.1 408")

    started = time.perf_counter()
    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await asyncio.wait([asyncio.create_task(all_open.wait()), asyncio.create_task(stop.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    print(json.dumps({"holding": held, "seconds_to_open": time.perf_counter() - started}), flush=True)
    checks: list[int] = []
    while not stop.is_set():  # how many are held, every 10 ms from here on
        checks.append(held)
        try:
            async with asyncio.timeout(0.01):
                await stop.wait()
        except TimeoutError:
            pass
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({**counts, "least_held": min(checks, default=held),
                      "mean_held": sum(checks) / len(checks) if checks else held}), flush=True)


def load_main(url: str, connections: int, duration: float, headers: Sequence[str]) -> None:
    print(json.dumps(asdict(asyncio.run(python_load(url, connections, duration, headers)))))
