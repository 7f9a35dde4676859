"""Scrape benchmark (issue 21): the exporter's HTTP edge against client_python's own server and the in-memory limit.

    python benchmarks/serve.py            # 1k, 10k and 100k series, plain and gzipped, then 500 half-open; ~5 min
    python benchmarks/serve.py --quick    # the same tables from shorter runs; under 2 minutes
    python benchmarks/serve.py --sizes 10000 --hold-seconds 0   # the 10k rows alone

Three servers, each in a child process of its own pinned to CPU 0 (the load generators run on CPU 1,
when there are two), all on 127.0.0.1 (see `serve_subjects.py`):

- new: `HttpListener` + an `Exposition` holding one rendered snapshot, as the daemon serves it;
- client_python: `prometheus_client.start_http_server` serving a registry that yields the same
  families (built once; rendered, and gzipped, per scrape): what users would otherwise get;
- limit: a minimal asyncio server that writes the new server's cached response bytes for every
  request without parsing it: the ceiling for a Python process.

Rates: `wrk -t1 -c4 --latency` asks each for /metrics for `--duration` s, plain and with
`Accept-Encoding: gzip`; the three are loaded in alternate rounds and the best round of each kept,
which evens out a busy machine (client_python gets three times as long above 50k series, where one
scrape takes it about a second).

Half-open: the new server holding a 10k-series snapshot is scraped by `wrk -t1 -c1` with Prometheus's
Accept headers for `--hold-seconds` s, first alone, then while another process holds 500 connections
that each sent "GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n" and nothing more, opening each again as the
server's header deadline (10 s, the daemon's default) closes it.

The output (Markdown, on stdout) ends with the issue's targets, met or missed: the new server at least
20x client_python's requests a second at 10k series, and a /metrics p99 under 25 ms while 500
half-open connections are held. Every process started is stopped by its PID; every run is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.*, however the script is started

from benchmarks.serve_clients import Load, hold, load_main, load_tool, run_load
from benchmarks.serve_subjects import LISTENER, SERVERS
from exporter.expose.edge import EdgeLimits
from tests.support.exposition import PROMETHEUS_2_ACCEPT

SERVER_CPU, LOAD_CPU = 0, 1
STARTUP_TIMEOUT = 120.0
NAMES = ("new", "client_python", "limit")
SLOW_SERIES = 50_000
TARGET_SERIES, TARGET_RATIO = 10_000, 20.0
TARGET_P99 = 0.025
BUSY = 0.10
"""Above this share of the CPUs used by other processes, the report says the machine was busy."""
GZIP = ("Accept-Encoding: gzip",)
PROMETHEUS = (f"Accept: {PROMETHEUS_2_ACCEPT}", "Accept-Encoding: gzip")
"""What Prometheus sends with a scrape (2.x; 3.x adds escaping parameters that change nothing here)."""


# ---------------------------------------------------------------- child processes


def _on(cpu: int) -> Callable[[], None] | None:
    """A preexec_fn pinning the child to `cpu`, or None on a one-CPU machine."""
    if (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Child:
    """A process of ours that prints JSON lines: the first when it is ready, perhaps one more when stopped."""

    def __init__(self, argv: Sequence[str], *, cpu: int) -> None:
        self.process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, preexec_fn=_on(cpu))

    def read(self, timeout: float = STARTUP_TIMEOUT) -> dict[str, float]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError(f"child {self.process.args!r} said nothing within {timeout:g} s")
        facts: dict[str, float] = json.loads(line)
        return facts

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: this child, by its PID."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def server(kind: str, series: int, header_timeout: float) -> Child:
    return Child([sys.executable, __file__, "--serve", kind, "--series", str(series),
                  "--header-timeout", str(header_timeout)], cpu=SERVER_CPU)


def fetch(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        body: bytes = response.read()
        return body


def sample_lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Others:
    """The share of the machine's CPUs that processes not ours used since this was made (ours: this process
    and its children, once waited for: read it when they are stopped). Steal time counts: a VM's neighbours."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
            int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
        t = os.times()
        return ((user + nice + system + steal) / os.sysconf("SC_CLK_TCK"),
                t.user + t.system + t.children_user + t.children_system, time.monotonic())

    def share(self) -> float:
        (busy, ours, now), (busy0, ours0, then) = self._read(), self._start
        return max(0.0, (busy - busy0) - (ours - ours0)) / ((now - then) * (os.cpu_count() or 1))


# ---------------------------------------------------------------- the measurements


@dataclass
class Size:
    series: int
    facts: dict[str, float]       # the new server's: samples, text_bytes, gzip_bytes
    served: dict[str, int]        # sample lines in one plain /metrics of each server
    loads: dict[tuple[str, bool], Load]  # (server, gzipped) -> best round
    rss_mib: float                # the new server's, after its load
    others: float                 # the share of the CPUs other processes used meanwhile

    def load(self, kind: str, gzipped: bool) -> Load | None:
        return self.loads.get((kind, gzipped))


def measure_size(series: int, *, duration: int, rounds: int, connections: int, header_timeout: float) -> Size:
    others = Others()
    children: dict[str, Child] = {}
    try:
        announced = {}
        for kind in NAMES:  # one at a time: each builds its snapshot undisturbed
            children[kind] = server(kind, series, header_timeout)
            announced[kind] = children[kind].read()
        ports = {kind: (int(facts["port"]), int(facts.get("gzip_port", facts["port"])))
                 for kind, facts in announced.items()}
        served = {kind: sample_lines(fetch(plain)) for kind, (plain, _) in ports.items()}
        best: dict[tuple[str, bool], Load] = {}
        for gzipped in (False, True):
            for _ in range(rounds):
                for kind in NAMES:
                    seconds = duration * 3 if kind == "client_python" and series > SLOW_SERIES else duration
                    load = run_load(ports[kind][gzipped], duration=seconds, connections=connections,
                                    headers=GZIP if gzipped else (), preexec=_on(LOAD_CPU))
                    kept = best.get((kind, gzipped))
                    if kept is None or load.requests_per_second > kept.requests_per_second:
                        best[kind, gzipped] = load
        rss = rss_mib(children["new"].process.pid)
    finally:
        for child in children.values():
            child.stop()
    return Size(series, announced["new"], served, best, rss, others.share())


@dataclass
class Held:
    series: int
    count: int
    seconds: int
    header_timeout: float
    alone: Load
    held: Load
    holder: dict[str, float]  # opened, closed_by_server, answered_408, least_held, seconds_to_open, ...
    rejected: float           # the server's own count of header_timeout rejections
    others: float             # the share of the CPUs other processes used meanwhile


def rejected_header_timeouts(port: int) -> float:
    pattern = rf'callmeter_exporter_http_rejected_requests_total{{listener="{LISTENER}",reason="header_timeout"}} (\S+)'
    found = re.search(pattern.encode(), fetch(port))
    return float(found[1]) if found else math.nan


def measure_held(series: int, *, count: int, seconds: int, header_timeout: float) -> Held:
    """Scrapes alone, then while `count` connections hold half-sent heads (see serve_clients.hold)."""
    others = Others()
    subject = server("new", series, header_timeout)
    holder: Child | None = None
    try:
        port = int(subject.read()["port"])
        alone = run_load(port, duration=seconds, connections=1, headers=PROMETHEUS, preexec=_on(LOAD_CPU))
        holder = Child([sys.executable, __file__, "--hold", str(port), "--count", str(count),
                        "--lifetime", str(seconds + STARTUP_TIMEOUT)], cpu=LOAD_CPU)
        opened = holder.read()
        held = run_load(port, duration=seconds, connections=1, headers=PROMETHEUS, preexec=_on(LOAD_CPU))
        holder.process.terminate()  # SIGTERM: the holder prints its counts and leaves
        counts = {**opened, **holder.read(timeout=30)}
        rejected = rejected_header_timeouts(port)
    finally:
        if holder is not None:
            holder.stop()
        subject.stop()
    return Held(series, count, seconds, header_timeout, alone, held, counts, rejected, others.share())


# ---------------------------------------------------------------- the report


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:,.0f}"


def _rate(load: Load | None) -> str:
    if load is None or not load.requests:
        return "no answer"
    return f"{load.requests_per_second:,.1f}" if load.requests_per_second < 100 else f"{load.requests_per_second:,.0f}"


def _ratio(a: Load | None, b: Load | None) -> float:
    if a is None or b is None or not a.requests or not b.requests:
        return math.nan
    return a.requests_per_second / b.requests_per_second


def _x(ratio: float) -> str:
    if math.isnan(ratio):
        return "-"
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _percent(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.0%}"


def _bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def _series(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _header(loadavg: Sequence[tuple[str, tuple[float, float, float]]], busiest: float) -> list[str]:
    lines = [
        "## Scrape benchmark: new server (aiohttp + edge guard) / client_python / in-memory limit",
        "",
        f"Python {platform.python_version()}, aiohttp {version('aiohttp')}, prometheus_client "
        f"{version('prometheus_client')}, {os.cpu_count()} CPUs (servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}).",
        "Load average (1 / 5 / 15 min): " + "; ".join(f"{when} {a:.2f} / {b:.2f} / {c:.2f}"
                                                      for when, (a, b, c) in loadavg) + " "
        "(after the start, this run's own server and load generator add about 2). What other processes used "
        "of the CPUs meanwhile (from /proc/stat, less this run's own CPU time) is given with each table.",
    ]
    if busiest > BUSY:
        lines.append(f"Other processes used up to {busiest:.0%} of the CPUs during this run: the figures are lower "
                     "and noisier than on a quiet machine.")
    return lines


def _rates(sizes: Sequence[Size], *, duration: int, rounds: int, connections: int) -> list[str]:
    lines = [
        "",
        f"### Requests a second, GET /metrics ({load_tool(connections)}, {rounds} alternate round(s) of "
        f"{duration} s per server, {3 * duration} s for client_python above {SLOW_SERIES // 1000}k series; "
        "best round kept; latencies in ms)",
        "",
        "| series | body | new req/s | new p50 / p99 | client_python req/s | client_python p50 / p99 "
        "| limit req/s | limit p50 / p99 | new / client_python | new / limit |",
        "| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        for gzipped in (False, True):
            new, theirs, limit = (size.load(kind, gzipped) for kind in NAMES)
            cells = [_series(size.series), "gzip" if gzipped else "text"]
            for load in (new, theirs, limit):
                cells += [_rate(load), f"{_ms(load.p50)} / {_ms(load.p99)}" if load and load.requests else "-"]
            cells += [_x(_ratio(new, theirs)), _percent(_ratio(new, limit))]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| series | samples in one scrape: new / client_python / limit | text body | gzip body "
        "| new server RSS after load | other processes' CPU share |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        served = " / ".join(f"{size.served[kind]:,}" for kind in NAMES)
        lines.append(f"| {_series(size.series)} | {served} | {_bytes(size.facts['text_bytes'])} "
                     f"| {_bytes(size.facts['gzip_bytes'])} | {size.rss_mib:.0f} MiB | {size.others:.0%} |")
    errors = [f"{kind} {_series(size.series)} {'gzip' if gzipped else 'text'}: {load.errors}"
              for size in sizes for (kind, gzipped), load in size.loads.items() if load.errors]
    if errors:
        lines += ["", f"Errors, timeouts or non-2xx answers under load: {'; '.join(errors)}."]
    if any(_ratio(size.load("new", g), size.load("limit", g)) > 1 for size in sizes for g in (False, True)):
        lines += ["", "Where new / limit is above 100%, the limit was no ceiling at that size (a body of megabytes, "
                      "where moving the bytes costs more than answering): read it as equal, within the run's noise."]
    return lines


def _half_open(held: Held) -> list[str]:
    h = held.holder
    lines = [
        "",
        f"### /metrics while {held.count} connections hold half-sent heads",
        "",
        f"The new server holding {_series(held.series)} series, header deadline {held.header_timeout:g} s; "
        "scrapes by wrk -t1 -c1 with Prometheus's Accept and Accept-Encoding (OpenMetrics, gzip), "
        f"{held.seconds} s each, back to back. Latencies in ms.",
        "",
        "| scrapes | req/s | p50 | p99 | max | errors |",
        "| :--- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, load in (("alone", held.alone), (f"{held.count} half-sent heads held", held.held)):
        lines.append(f"| {name} | {_rate(load)} | {_ms(load.p50)} | {_ms(load.p99)} | {_ms(load.max)} "
                     f"| {load.errors} |")
    lines += [
        "",
        f"The holder had {h['holding']:.0f} open in {h['seconds_to_open']:.1f} s; the server closed "
        f"{h.get('closed_by_server', 0):.0f} of them at its deadline ({h.get('answered_408', 0):.0f} with a 408), "
        f"each opened again at once; checked every 10 ms while the scrapes ran, {h['mean_held']:.0f} were held "
        f"on average and never fewer than {h['least_held']:.0f}; {h.get('connect_failed', 0):.0f} connects failed. "
        f"The server counted {held.rejected:.0f} header_timeout rejections in all. Other processes used "
        f"{held.others:.0%} of the CPUs meanwhile.",
    ]
    if held.seconds <= held.header_timeout:
        lines.append(f"The scrapes lasted no longer than the header deadline: no re-opening was measured "
                     f"(raise --hold-seconds above {held.header_timeout:g}).")
    return lines


def _targets(sizes: Sequence[Size], held: Held | None) -> list[str]:
    lines = ["", "### Targets (issue 21)", ""]
    for size in sizes:
        if size.series != TARGET_SERIES:
            continue
        for gzipped in (False, True):
            new, theirs = size.load("new", gzipped), size.load("client_python", gzipped)
            ratio = _ratio(new, theirs)
            lines.append(f"- new server at least {TARGET_RATIO:g}x client_python's requests a second at "
                         f"{_series(TARGET_SERIES)} series, {'gzip' if gzipped else 'text'}: {_x(ratio)} "
                         f"({_rate(new)} / {_rate(theirs)} req/s): {_met(ratio >= TARGET_RATIO)}")
    if not any(size.series == TARGET_SERIES for size in sizes):
        lines.append(f"- the {TARGET_RATIO:g}x target at {_series(TARGET_SERIES)} series: not measured in this run")
    if held is not None:
        p99 = held.held.p99
        lines.append(f"- /metrics p99 under {TARGET_P99 * 1000:g} ms while {held.count} half-open connections are "
                     f"held: p99 {_ms(p99)} ms (max {_ms(held.held.max)} ms, {held.held.errors} errors): "
                     f"{_met(p99 < TARGET_P99 and not held.held.errors)}")
    else:
        lines.append("- the p99 target with half-open connections: not measured in this run")
    ceilings = [f"{_series(s.series)} {'gzip' if g else 'text'} "
                f"{_percent(_ratio(s.load('new', g), s.load('limit', g)))}" for s in sizes for g in (False, True)]
    if ceilings:
        lines.append(f"- (no target) new server / in-memory limit: {', '.join(ceilings)}")
    return lines


def report(sizes: Sequence[Size], held: Held | None, *, loadavg: Sequence[tuple[str, tuple[float, float, float]]],
           duration: int, rounds: int, connections: int) -> str:
    busiest = max([size.others for size in sizes] + ([held.others] if held is not None else []), default=0.0)
    lines = _header(loadavg, busiest)
    if sizes:
        lines += _rates(sizes, duration=duration, rounds=rounds, connections=connections)
    if held is not None:
        lines += _half_open(held)
    return "\n".join(lines + _targets(sizes, held))


# ---------------------------------------------------------------- the run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="shorter runs (2 s per server, one round, 12 s of half-open scrapes)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated series counts")
    parser.add_argument("--duration", type=int, help="seconds of load per server, size and body (default 5)")
    parser.add_argument("--rounds", type=int, help="alternate rounds per size and body; best kept (default 2)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--hold-series", type=int, default=TARGET_SERIES)
    parser.add_argument("--hold-seconds", type=int,
                        help="seconds of scrapes alone and with half-open connections (default 25; 0: skip)")
    parser.add_argument("--half-open", type=int, default=500, help="connections holding half-sent heads")
    parser.add_argument("--header-timeout", type=float, default=EdgeLimits().header_timeout,
                        help="the new server's header deadline (default: the daemon's)")
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--series", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--header", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        SERVERS[args.serve](args.series, args.header_timeout)
        return 0
    if args.hold:
        asyncio.run(hold(args.hold, args.count, args.lifetime))
        return 0
    if args.load:
        load_main(args.load, args.connections, args.duration, args.header)
        return 0
    duration = args.duration or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 2)
    hold_seconds = args.hold_seconds if args.hold_seconds is not None else (12 if args.quick else 25)
    started = time.monotonic()
    loadavg = [("at start", os.getloadavg())]
    sizes = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        print(f"... {size:,} series", file=sys.stderr, flush=True)
        sizes.append(measure_size(size, duration=duration, rounds=rounds, connections=args.connections,
                                  header_timeout=args.header_timeout))
    if sizes:
        loadavg.append(("after the rates", os.getloadavg()))
    held = None
    if hold_seconds > 0:
        print(f"... {args.half_open} half-open connections", file=sys.stderr, flush=True)
        held = measure_held(args.hold_series, count=args.half_open, seconds=hold_seconds,
                            header_timeout=args.header_timeout)
        loadavg.append(("after the half-open run", os.getloadavg()))
    print(report(sizes, held, loadavg=loadavg, duration=duration, rounds=rounds, connections=args.connections))
    print(f"\n(run time {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
