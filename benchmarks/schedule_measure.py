"""What the schedule benchmark records while a case runs, and what it makes of it afterwards.

The recording is the same for every implementation: the requests the simulator answered (`record_requests`)
and, from each view the implementation publishes (`Watch` for the exporter's snapshots; the naive loop
calls the `Trace` methods itself), which probe results, run statuses and run summaries it showed and when.
`analyse` sets that against the world's ground truth (`World.probe_changes`, `World.finished_runs`).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.api.client import PER_PAGE
from exporter.api.models import Probe, TestRun
from exporter.model.snapshot import Snapshot
from exporter.simulator import Simulator
from exporter.simulator.world import World
from tests.support.simulated import WALL_START

INVENTORY_CADENCE = 900.0
TAIL = 1800.0
"""Changes and runs this close to the end are not judged: they may not have had their chance yet."""
LISTING_GAP = 45.0
"""Run-list requests of one project further apart than this belong to different listings."""
PREFIX = "/api/v1/projects"


# ---------------------------------------------------------------- what happened


@dataclass
class Trace:
    requests: list[tuple[float, str, int, int]] = field(default_factory=list)
    """(time, path, page, status) of every API request of the implementation measured."""
    probes_seen: dict[str, list[tuple[float, float, str | None]]] = field(default_factory=dict)
    """probe id -> (shown at, its lastExecutionAt, its status), each time a listing of it was shown."""
    run_shown: dict[str, float] = field(default_factory=dict)
    """run id -> first time shown as its test's latest run with a final status."""
    completed_shown: dict[str, float] = field(default_factory=dict)
    """run id -> first time shown as its test's latest completed run, with its summary."""
    quality_at: dict[str, float] = field(default_factory=dict)
    """test id -> first time any run of it was shown with its summary (quality data)."""

    def probes(self, shown: float, probes: Iterable[Probe]) -> None:
        for probe in probes:
            self.probes_seen.setdefault(probe.id, []).append((shown, probe.last_execution_at or -math.inf,
                                                              probe.status))

    def completed(self, shown: float, run: TestRun) -> None:
        self.completed_shown.setdefault(run.id, shown)
        if run.test_id is not None:
            self.quality_at.setdefault(run.test_id, shown)


def record_requests(simulator: Simulator, trace: Trace) -> Callable[..., Any]:
    """Note every API request with its page number (the simulator's own log drops the query). Returns
    the unrecorded entry point, for another client of the same key."""
    handle = simulator.handle

    def recording(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Any:
        response = handle(method, target, headers, body)
        path, _, query = target.partition("?")
        page = next((int(v) for k, _, v in (p.partition("=") for p in query.split("&")) if k == "page"), 1)
        trace.requests.append((simulator.clock(), path, page, response.status))
        return response

    setattr(simulator, "handle", recording)  # noqa: B010 - an instance override, on purpose
    simulator.record_requests = False
    return handle


class Watch(list[Snapshot]):
    """Stands in for `SimulatedExporter.snapshots`: reads each snapshot the poller publishes. Each
    resource of a project is looked at only when its mapping or tuple is a new object (a read replaced it)."""

    def __init__(self, trace: Trace, clock: Callable[[], float]) -> None:
        super().__init__()
        self._trace, self._clock = trace, clock
        self._last: dict[tuple[str, str], int] = {}

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self.seen(self[-1])

    def _changed(self, pid: str, name: str, value: object) -> bool:
        if value is None or self._last.get((pid, name)) == id(value):
            return False
        self._last[(pid, name)] = id(value)
        return True

    def seen(self, snapshot: Snapshot) -> None:
        now, trace = self._clock(), self._trace
        # The snapshot holds every object compared by id, so no id can be reused while it is compared.
        for data in snapshot.projects:
            pid = data.project.id
            if self._changed(pid, "probes", data.probes):
                trace.probes(now, data.probes or ())
            if self._changed(pid, "latest_runs", data.latest_runs):
                for run in data.latest_runs.values():
                    if run.terminal:
                        trace.run_shown.setdefault(run.id, now)
            if self._changed(pid, "latest_completed", data.latest_completed):
                for run in data.latest_completed.values():
                    trace.completed(now, run)


# ---------------------------------------------------------------- analysis


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def pages(count: int) -> int:
    return max(1, -(-count // PER_PAGE))


def longest_run(world: World) -> float:
    """The longest a run can take from creation to its final result."""
    c = world.config
    longest = max((t.duration for t in world.tests.values()), default=c.run_duration)
    return 5 + longest * (c.run_length[1] + (c.run_overrun[1] if c.run_overrun_rate else 0)) + c.run_result_delay


def pages_needed(world: World, project_id: str, previous: float | None, at: float, order: str) -> int:
    """Run-list pages a listing at `at` must read to see every run that appeared or changed status since
    the previous listing (on the first: each test's newest run and newest completed run)."""
    rows = world.runs_of_project(project_id, at)  # oldest first
    if previous is None:
        newest: dict[str, str] = {}
        completed: dict[str, str] = {}
        for created, run_id, test in rows:
            newest[test.id] = run_id
            if world.run_view(test, run_id, created, at, detail=False)["status"] == "COMPLETED":
                completed[test.id] = run_id
        wanted = set(newest.values()) | set(completed.values())
        first = 0
    else:
        # Only a run younger than its longest possible life can still change.
        first = bisect.bisect_right(rows, previous - longest_run(world), key=lambda r: r[0])
        wanted = {run_id for created, run_id, test in rows[first:]
                  if created > previous or world.run_view(test, run_id, created, previous, detail=False)["status"]
                  != world.run_view(test, run_id, created, at, detail=False)["status"]}
    positions = [n for n, (_, run_id, _) in enumerate(rows[first:], first) if run_id in wanted]
    if not positions:
        return 1  # one page to learn that nothing changed
    if order == "asc":
        return pages(len(rows)) - min(positions) // PER_PAGE
    return (len(rows) - 1 - min(positions)) // PER_PAGE + 1


def max_in_window(times: list[float], width: float = 60.0) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def classify(path: str) -> tuple[str, str, str | None]:
    """(kind, project id, run id) of an API path."""
    parts = path[len(PREFIX):].strip("/").split("/") if path.startswith(PREFIX) else ["?"]
    if parts == [""]:
        return "projects", "", None
    if len(parts) == 2:
        return parts[1], parts[0], None
    if len(parts) == 3 and parts[1] == "test-runs":
        return "detail", parts[0], parts[2]
    if len(parts) == 3 and parts[1] in ("probes", "tests"):
        return f"{parts[1]} detail", parts[0], parts[2]
    if len(parts) == 4 and parts[1] == "test-runs" and parts[3] == "endpoints":
        return "endpoints", parts[0], parts[2]
    return "other", "", None


def probe_delays(trace: Trace, world: World, since: float, until: float) -> dict[str, Any]:
    """For every change of a probe's listed status visible in [since, until): the time until the first
    view that showed that probe's list as it was at the change or later (its lastExecutionAt at least the
    change's execution); "missed" counts changes whose status that view did not show (superseded)."""
    delays: list[float] = []
    missed = 0
    offset = world.clock_offset
    for probe in world.probes.values():
        series = trace.probes_seen.get(probe.id, [])
        times = [t for t, _, _ in series]
        for change in world.probe_changes(probe, since, until):
            stamp = math.floor(change.execution_at + offset)
            i = bisect.bisect_left(times, change.at)
            while i < len(series) and series[i][1] < stamp:
                i += 1
            if i == len(series):
                delays.append(math.inf)
                continue
            delays.append(series[i][0] - change.at)
            missed += series[i][2] != change.status
    delays.sort()
    return {"probe_p50": quantile(delays, 0.5), "probe_p95": quantile(delays, 0.95),
            "probe_max": delays[-1] if delays else math.nan, "probe_changes": len(delays), "probe_missed": missed}


def run_delays(trace: Trace, world: World, since: float, until: float) -> dict[str, Any]:
    """For every run whose final result became visible upstream in [since, until): the time until the
    exporter showed its final status and, when COMPLETED, its summary (never shown: infinite)."""
    delays: list[float] = []
    for _test, run_id, result in world.finished_runs(until):
        if result.visible < since:
            continue
        seen = [trace.run_shown.get(run_id, math.inf)]
        if result.status == "COMPLETED":
            seen.append(trace.completed_shown.get(run_id, math.inf))
        delays.append(max(seen) - result.visible)
    delays.sort()
    shown = sum(1 for d in delays if not math.isinf(d))
    return {"run_p50": quantile(delays, 0.5), "run_p95": quantile(delays, 0.95), "runs_finished": len(delays),
            "coverage": shown / len(delays) if delays else math.nan}


def probe_news(trace: Trace, world: World) -> float:
    """Share of probe-list reads that brought a result the previous read of that project had not."""
    probes_of: dict[str, list[Any]] = {}
    for probe in world.probes.values():
        probes_of.setdefault(probe.project_id, []).append(probe)
    last: dict[str, float] = {}
    reads = news = 0
    for at, path, page, status in trace.requests:
        kind, pid, _ = classify(path)
        if kind != "probes" or status != 200 or page != 1:
            continue
        reads += 1
        if pid in last:
            news += any(world.probe_executions(p, last[pid], at) for p in probes_of.get(pid, ()))
        else:
            news += 1
        last[pid] = at
    return news / reads if reads else math.nan


def analyse(trace: Trace, world: World, duration: float, warmup: float, run_order: str) -> dict[str, Any]:
    start, end = WALL_START, WALL_START + duration
    steady, judged = start + warmup, end - TAIL
    hours = duration / 3600
    kinds, minimum = efficiency(trace, world, duration, run_order)
    used = len(trace.requests)
    quality = [trace.quality_at.get(t, math.inf) - start for t in world.tests]
    return {
        "used": used, "per_hour": used / hours, "probes_per_hour": kinds["probes"] / hours,
        "429": kinds["429"], "5xx": kinds["5xx"], "kinds": dict(kinds), **minimum,
        "max_window": max_in_window([t for t, *_ in trace.requests]),
        "probe_news": probe_news(trace, world),
        "quality_all": max(quality, default=math.nan),
        **probe_delays(trace, world, steady, judged),
        **run_delays(trace, world, steady, judged),
    }


def efficiency(trace: Trace, world: World, duration: float, run_order: str) -> tuple[Counter[str], dict[str, Any]]:
    """Requests by kind, and the needed ones: kind by kind, at most what seeing every change at the
    intervals achieved takes (see the benchmark's docstring)."""
    tests_of: dict[str, list[str]] = {}
    for test in world.tests.values():
        tests_of.setdefault(test.project_id, []).append(test.id)
    probes_in = Counter(p.project_id for p in world.probes.values())
    regs_in = Counter(r.project_id for r in world.registrars.values())
    end = WALL_START + duration

    completions: dict[str, tuple[list[float], list[str]]] = {}  # test id -> COMPLETED runs, by end time
    for test, run_id, result in sorted(world.finished_runs(end), key=lambda r: r[2].visible):
        if result.status == "COMPLETED":
            ends, ids = completions.setdefault(test.id, ([], []))
            ends.append(result.visible)
            ids.append(run_id)

    kinds: Counter[str] = Counter()
    listings: dict[tuple[str, str], list[float]] = {}
    run_reads: dict[str, list[float]] = {}
    detail_ids: list[tuple[float, str]] = []
    below: dict[tuple[str, str | None], list[float]] = {}  # probe and test details: item -> read times
    listing_pages: set[tuple[str | None, int]] = set()  # endpoint listings: (run, page) read
    for at, path, page, status in trace.requests:
        if status == 429:
            kinds["429"] += 1
            continue
        if status >= 500:
            kinds["5xx"] += 1
        kind, pid, run_id = classify(path)
        kinds[kind] += 1
        if kind == "test-runs":
            run_reads.setdefault(pid, []).append(at)
        elif kind == "detail" and status == 200 and run_id is not None:
            detail_ids.append((at, run_id))
        elif kind in ("probes detail", "tests detail") and status == 200:
            below.setdefault((kind, run_id), []).append(at)
        elif kind == "endpoints" and status == 200:
            listing_pages.add((run_id, page or 1))
        elif page == 1 and status == 200:
            listings.setdefault((kind, pid), []).append(at)

    need_details: set[str] = set()
    run_pages_needed = run_listings = 0
    for pid, reads in run_reads.items():
        times = [t for i, t in enumerate(reads) if i == 0 or t - reads[i - 1] > LISTING_GAP]
        run_listings += len(times)
        previous = None
        for at in times:
            run_pages_needed += pages_needed(world, pid, previous, at, run_order)
            previous = at
        for test_id in tests_of.get(pid, ()):
            ends, ids = completions.get(test_id, ([], []))
            for at in times:
                i = bisect.bisect_right(ends, at) - 1
                if i >= 0:
                    need_details.add(ids[i])
    cap = int(duration // INVENTORY_CADENCE) + 1
    probe_pages = sum(len(times) * pages(probes_in[pid]) for (kind, pid), times in listings.items()
                      if kind == "probes")
    inventory = pages(len(world.projects)) * min(len(listings.get(("projects", ""), [])), cap)
    inventory += sum(min(len(times), cap) * pages(len(tests_of.get(pid, ())) if kind == "tests" else regs_in[pid])
                     for (kind, pid), times in listings.items() if kind in ("tests", "registrars"))
    # A detail is needed when it showed its test's newest completed run: one a listing wanted, or one the
    # adaptive schedule read as it ended, before any listing saw it. Each run counts once.
    test_of = {run_id: test.id for test, run_id, _ in world.finished_runs(end)}
    useful_details: set[str] = set()
    for at, run_id in detail_ids:
        ends, ids = completions.get(test_of.get(run_id, ""), ([], []))
        i = bisect.bisect_right(ends, at) - 1
        if run_id in need_details or (i >= 0 and ids[i] == run_id):
            useful_details.add(run_id)
    details_useful = len(useful_details)
    used = len(trace.requests)
    inventory_used = kinds["projects"] + kinds["tests"] + kinds["registrars"]
    # Below the plan: a probe or test detail at most every 15 minutes; each page of a completed run's
    # endpoint listing once.
    details_below = sum(min(len(times), cap) for times in below.values())
    useful = (min(kinds["probes"], probe_pages) + min(kinds["test-runs"], run_pages_needed)
              + min(inventory_used, inventory) + details_useful + details_below + len(listing_pages))
    return kinds, {"minimum": probe_pages + run_pages_needed + inventory + len(need_details), "useful": useful,
                   "efficiency": useful / used if used else math.nan,
                   "need": {"probes": probe_pages, "run pages": run_pages_needed, "run listings": run_listings,
                            "inventory": inventory, "details": len(need_details),
                            "details fetched": len({r for _, r in detail_ids})}}
