"""Schedule benchmark: how well the poller spends a rate-limited request budget (issue 3).

    python benchmarks/schedule.py             # 3 inventories x 4 key limits, 6 simulated hours each
    python benchmarks/schedule.py --quick     # smoke run: 2 inventories x 2 key limits, 2 simulated hours
    python benchmarks/schedule.py --inventories large --key-limits 10 --no-naive
    python benchmarks/schedule.py --run-order asc   # the simulator lists runs oldest first
    python benchmarks/schedule.py --probe-floor 120 # ours with CALLMETER_PROBES_MIN_INTERVAL=120

Every case runs the real scheduler (`tests.support.simulated.build`: the exporter as `Exporter.build` wires it)
against the in-process simulator on a virtual clock (`tests.support.vclock.run_virtual`), so six hours take
seconds and nothing sleeps. Each test of the simulated account runs every 36-54 minutes for 6-9 minutes
(`run_period` 45 min, `run_duration` 7.5 min, each +-20%); the simulator enforces the key's limit with
429s, and the exporter spends its default share (0.8) of it. In the same cases a naive exporter runs
(`naive_loop` below): each cycle, at most once a minute, it lists the projects, then for each project
its probes, tests, registrars, every page of its test runs and the detail of every run listed, one
request at a time through the same client and limiter.

Definitions (both implementations are measured the same way):

- requests: API requests the simulator answered, 429s included.
- minimum: what observing every change needs at the intervals the implementation achieved: one page
  set per probe listing; per run listing, the run-list pages that hold every run that appeared or
  changed status since that project's previous listing (at least one; on the first listing, each
  test's newest run and newest completed run), counted from the right end for oldest-first lists;
  the inventory lists (projects, tests, registrars) at most once per 15 minutes; and one detail per
  run that was the newest completed run of its test at some run listing (the only run whose summary
  is shown). Run-list requests of one project less than 45 s apart make one listing.
- efficiency: needed requests made / requests, where the needed ones are, kind by kind, at most the
  minimum's count (every detail of a needed run counts once). It equals minimum / requests whenever
  everything needed was fetched; when the budget cannot pay for every detail, minimum / requests
  would exceed 1 and reward falling behind, so it is not used.
- probe age: at every second of the steady state (after the warm-up), the age of each project's probe
  data in what the exporter shows: now minus the moment that listing was answered. Best possible for a
  probe interval I: a perfectly even schedule with no latency, whose age is uniform on [0, I):
  p50 = 0.5 I, p95 = 0.95 I. I is the plan's (`poller.plan.intervals["probes"]`), read every minute
  and averaged over the steady state, because the reserve for run details moves it. Ours also carries
  the 0.1 s request latency and up to 1 s of publishing delay.
- run shown: for each run that finished in the steady state (and 30 minutes before the end), the time
  from its end upstream until the exporter shows it as its test's latest run with the final status
  and, for a COMPLETED run, its summary as the latest completed run. Never shown counts as infinite.
- 429: answers 429 from the simulator (the key is not shared, so the target is zero).

Targets for ours: no 429, efficiency >= 0.9, probe age p95 <= 1.2 x the best possible; `--strict`
exits 1 when one is missed. The cases run in worker processes, biggest first (`--jobs`, default one
per CPU); progress goes to stderr, the Markdown tables to stdout.

The exporter's view is read from every snapshot it publishes; the naive one counts as shown the
moment its response arrives (which favours it slightly).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import os
import pathlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # tests.support: the simulated exporter

from exporter import errors, logs
from exporter.budget import RateLimiter
from exporter.client import PER_PAGE, CallMeterClient
from exporter.keysource import KeySource
from exporter.kinds import KINDS
from exporter.models import Probe, Project, Registrar, Test, TestRun
from exporter.planner import Floors
from exporter.simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig
from exporter.simulator.world import World, unit
from exporter.snapshot import Snapshot
from tests.support.simulated import WALL_START, build
from tests.support.vclock import run_virtual

INVENTORIES = {"small": (1, 5, 10), "medium": (10, 5, 10), "large": (50, 10, 20)}
"""projects, probes per project, tests per project."""
KEY_LIMITS = (10, 60, 120, 600)
BUDGET_SHARE = 0.8
RUN_PERIOD = 45 * 60.0
RUN_DURATION = 7.5 * 60
LATENCY = 0.1
INVENTORY_CADENCE = 900.0
NAIVE_CYCLE = 60.0
TAIL = 1800.0
LISTING_GAP = 45.0
"""Run-list requests of one project further apart than this belong to different listings."""
PLAN_SAMPLE = 60.0
BASE_URL = "http://callmeter.invalid/api/v1"
PREFIX = "/api/v1/projects"

TARGET_EFFICIENCY = 0.9
TARGET_PROBE_P95 = 1.2


def world_config(inventory: str) -> WorldConfig:
    projects, probes, tests = INVENTORIES[inventory]
    return WorldConfig(projects=projects, probes_per_project=probes, tests_per_project=tests,
                       registrars_per_project=2, probe_interval_minutes=5.0, run_period=RUN_PERIOD,
                       run_duration=RUN_DURATION, history_runs=5)


# ---------------------------------------------------------------- what happened


@dataclass
class Trace:
    requests: list[tuple[float, str, int, int]] = field(default_factory=list)
    """(time, path, page, status) of every API request."""
    probes_shown: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """project -> (shown at, listing answered at), in order."""
    run_shown: dict[str, float] = field(default_factory=dict)
    """run id -> first time shown as its test's latest run with a final status."""
    completed_shown: dict[str, float] = field(default_factory=dict)
    """run id -> first time shown as its test's latest completed run, with its summary."""

    def probes(self, project_id: str, shown: float, taken: float) -> None:
        self.probes_shown.setdefault(project_id, []).append((shown, taken))


def record_requests(simulator: Simulator, trace: Trace) -> None:
    """Note every API request with its page number (the simulator's own log drops the query)."""
    handle = simulator.handle

    def recording(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Any:
        response = handle(method, target, headers, body)
        path, _, query = target.partition("?")
        page = next((int(v) for k, _, v in (p.partition("=") for p in query.split("&")) if k == "page"), 1)
        trace.requests.append((simulator.clock(), path, page, response.status))
        return response

    setattr(simulator, "handle", recording)  # noqa: B010 - an instance override, on purpose
    simulator.record_requests = False


class _Watch(list[Snapshot]):
    """Stands in for `SimulatedExporter.snapshots`: reads each snapshot the poller publishes."""

    def __init__(self, trace: Trace, clock: Callable[[], float]) -> None:
        super().__init__()
        self._trace, self._clock = trace, clock
        self._probes_at: dict[str, float | None] = {}
        self._runs_at: dict[str, float | None] = {}
        self._completed: dict[str, Any] = {}

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self.seen(self[-1])

    def seen(self, snapshot: Snapshot) -> None:
        now, trace = self._clock(), self._trace
        for data in snapshot.projects:
            pid = data.project.id
            probes_at, runs_at = data.fetched.get("probes"), data.fetched.get("test_runs")
            if probes_at is not None and probes_at != self._probes_at.get(pid):
                self._probes_at[pid] = probes_at
                trace.probes(pid, now, probes_at)
            if runs_at != self._runs_at.get(pid):
                self._runs_at[pid] = runs_at
                for run in data.latest_runs.values():
                    if run.terminal:
                        trace.run_shown.setdefault(run.id, now)
            # The same run objects stay in the dict until a detail lands, so this is cheap.
            if data.latest_completed != self._completed.get(pid):
                self._completed[pid] = data.latest_completed
                for run in data.latest_completed.values():
                    trace.completed_shown.setdefault(run.id, now)


# ---------------------------------------------------------------- the two implementations


def prepare(simulator: Simulator, trace: Trace, run_order: str) -> None:
    record_requests(simulator, trace)
    simulator.set_faults(run_order=run_order)


async def run_ours(world: WorldConfig, key_limit: int, duration: float, run_order: str, probe_floor: float
                   ) -> tuple[Trace, World, dict[str, Any]]:
    trace = Trace()
    sim = build(world, key_limit=key_limit, budget_share=BUDGET_SHARE, latency=LATENCY,
                floors=Floors(probes=probe_floor), configure=lambda s: prepare(s, trace, run_order))
    sim.snapshots = _Watch(trace, sim.wall)
    plans: list[tuple[float, dict[str, float]]] = []
    ready: list[float] = []

    async def watch_plan() -> None:
        while True:
            await asyncio.sleep(PLAN_SAMPLE)
            if sim.poller.plan is not None:
                plans.append((sim.wall(), dict(sim.poller.plan.intervals)))

    async def watch_ready() -> None:
        await sim.poller.ready.wait()
        ready.append(sim.wall())

    sim.start()
    watchers = [asyncio.create_task(watch_plan()), asyncio.create_task(watch_ready())]
    await asyncio.sleep(duration)
    for task in watchers:
        task.cancel()
    await sim.stop()
    return trace, sim.simulator.world, {"plans": plans, "ready": ready[0] if ready else None}


async def naive_loop(client: CallMeterClient, trace: Trace, wall: Callable[[], float]) -> None:
    """Everything, every cycle, in order; a cycle starts at most once a minute."""
    loop = asyncio.get_running_loop()
    newest_completed: dict[str, float] = {}

    async def quietly(call: Any) -> Any:
        try:
            return await call
        except errors.ApiError:
            return None

    while True:
        began = loop.time()
        projects = await quietly(client.list_all(KINDS["projects"].route, "projects", Project)) or []
        for project in projects:
            base = f"projects/{project.id}"
            if await quietly(client.list_all(KINDS["probes"].route, f"{base}/probes", Probe)) is not None:
                trace.probes(project.id, wall(), wall())
            await quietly(client.list_all(KINDS["tests"].route, f"{base}/tests", Test))
            await quietly(client.list_all(KINDS["registrars"].route, f"{base}/registrars", Registrar))
            runs: list[TestRun] = await quietly(client.list_all(KINDS["test_runs"].route, f"{base}/test-runs",
                                                                TestRun)) or []
            latest: dict[str, TestRun] = {}
            for run in runs:
                if run.test_id and (run.test_id not in latest
                                    or (run.order_key or 0) > (latest[run.test_id].order_key or 0)):
                    latest[run.test_id] = run
            for run in latest.values():
                if run.terminal:
                    trace.run_shown.setdefault(run.id, wall())
            for run in runs:
                detail = await quietly(client.get(KINDS["test_run_details"].route, f"{base}/test-runs/{run.id}",
                                                  TestRun))
                if detail is None or detail.status != "COMPLETED" or detail.test_id is None:
                    continue
                key = detail.order_key or 0.0
                if key > newest_completed.get(detail.test_id, -math.inf):
                    newest_completed[detail.test_id] = key
                    trace.completed_shown.setdefault(detail.id, wall())
        await asyncio.sleep(max(0.0, began + NAIVE_CYCLE - loop.time()))


async def run_naive(world: WorldConfig, key_limit: int, duration: float, run_order: str, probe_floor: float
                    ) -> tuple[Trace, World, dict[str, Any]]:
    """The naive loop behind the same client and limiter as `tests.support.simulated.build` sets up."""
    loop = asyncio.get_running_loop()

    def wall() -> float:
        return WALL_START + loop.time()

    trace = Trace()
    simulator = Simulator(world, clock=wall, rate_limit_per_minute=key_limit)
    prepare(simulator, trace, run_order)
    per_minute = key_limit * BUDGET_SHARE
    limiter = RateLimiter(per_minute=per_minute, window_cap=max(1, int(per_minute)), clock=loop.time)
    client = CallMeterClient(base_url=BASE_URL, key=KeySource(value=DEMO_KEY), limiter=limiter,
                             transport=SimulatorTransport(simulator, latency=LATENCY))
    task = asyncio.create_task(naive_loop(client, trace, wall))
    await asyncio.sleep(duration)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.aclose()
    return trace, simulator.world, {"plans": [], "ready": None}


# ---------------------------------------------------------------- analysis


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def finish(world: World, test_id: str, run_id: str, created: float, end: float) -> tuple[str, float] | None:
    """Final status and end time of a run, as the simulator's `run_view` decides them; None if not over."""
    view = world.run_view(world.tests[test_id], run_id, created, end, detail=False)
    status = view["status"]
    if status not in ("COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW"):
        return None
    if status == "CANNOT_RUN_FOR_NOW":
        return status, created + 3
    duration = world.config.run_duration * (0.8 + 0.4 * unit(world.config.seed, run_id, "dur"))
    return status, created + 4 + duration


def pages(count: int) -> int:
    return max(1, -(-count // PER_PAGE))


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
        horizon = previous - 5 - 1.2 * world.config.run_duration
        first = bisect.bisect_right(rows, horizon, key=lambda r: r[0])
        wanted = {run_id for created, run_id, test in rows[first:]
                  if created > previous or world.run_view(test, run_id, created, previous, detail=False)["status"]
                  != world.run_view(test, run_id, created, at, detail=False)["status"]}
    positions = [n for n, (_, run_id, _) in enumerate(rows[first:], first) if run_id in wanted]
    if not positions:
        return 1  # one page to learn that nothing changed
    if order == "asc":
        return pages(len(rows)) - min(positions) // PER_PAGE
    return (len(rows) - 1 - min(positions)) // PER_PAGE + 1


def analyse(trace: Trace, world: World, duration: float, warmup: float, extra: dict[str, Any], run_order: str
            ) -> dict[str, Any]:
    start, end = WALL_START, WALL_START + duration
    steady = start + warmup
    tests_of: dict[str, list[str]] = {}
    for test in world.tests.values():
        tests_of.setdefault(test.project_id, []).append(test.id)
    probes_in = Counter(p.project_id for p in world.probes.values())
    regs_in = Counter(r.project_id for r in world.registrars.values())

    # Runs: every run by the end, with its outcome and end time.
    outcomes: dict[str, tuple[str, str, float]] = {}  # run id -> (test id, status, finished at)
    completions: dict[str, tuple[list[float], list[str]]] = {}  # test id -> COMPLETED runs by end time
    for test in world.tests.values():
        ends, ids = [], []
        for run_id, created in world.run_starts(test, end):
            over = finish(world, test.id, run_id, created, end)
            if over is None:
                continue
            outcomes[run_id] = (test.id, over[0], over[1])
            if over[0] == "COMPLETED":
                ends.append(over[1])
                ids.append(run_id)
        completions[test.id] = (ends, ids)

    # What was requested, by kind.
    kinds: Counter[str] = Counter()
    listings: dict[tuple[str, str], list[float]] = {}
    run_reads: dict[str, list[float]] = {}
    detail_ids: list[str] = []
    for at, path, page, status in trace.requests:
        if status == 429:
            kinds["429"] += 1
            continue
        parts = path[len(PREFIX):].strip("/").split("/") if path.startswith(PREFIX) else ["?"]
        if parts == [""]:
            kind, pid = "projects", ""
        elif len(parts) == 2:
            kind, pid = parts[1], parts[0]
        elif len(parts) == 3 and parts[1] == "test-runs":
            kind, pid = "detail", parts[0]
            detail_ids.append(parts[2])
        else:
            kind, pid = "other", ""
        kinds[kind] += 1
        if kind == "test-runs":
            run_reads.setdefault(pid, []).append(at)
        elif page == 1 and status == 200:
            listings.setdefault((kind, pid), []).append(at)

    # The minimum. A run listing is the pages read in one go (oldest-first lists start on the last page).
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
            ends, ids = completions[test_id]
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
    details_needed_fetched = len(need_details & set(detail_ids))
    minimum = probe_pages + run_pages_needed + inventory + len(need_details)
    used = len(trace.requests)
    inventory_used = kinds["projects"] + kinds["tests"] + kinds["registrars"]
    useful = (min(kinds["probes"], probe_pages) + min(kinds["test-runs"], run_pages_needed)
              + min(inventory_used, inventory) + details_needed_fetched)

    # Probe age, each second of the steady state, for every project.
    ages: list[float] = []
    for pid in world.projects:
        series = trace.probes_shown.get(pid, [])
        shown = [s for s, _ in series]
        t = steady
        while t < end:
            i = bisect.bisect_right(shown, t) - 1
            ages.append(t - (series[i][1] if i >= 0 else start))
            t += 1.0
    ages.sort()

    # Runs finished in the steady state: how long until they were shown.
    delays: list[float] = []
    for run_id, (_test_id, outcome, ended) in outcomes.items():
        if not steady <= ended <= end - TAIL:
            continue
        seen = [trace.run_shown.get(run_id, math.inf)]
        if outcome == "COMPLETED":
            seen.append(trace.completed_shown.get(run_id, math.inf))
        delays.append(max(seen) - ended)
    delays.sort()

    # The plan's intervals, averaged over the steady state (the reserve for run details moves them).
    plans = [intervals for at, intervals in extra["plans"] if at >= steady]
    interval = {r: sum(p[r] for p in plans) / len(plans) for r in plans[0]} if plans else {}

    return {
        "used": used, "minimum": minimum, "useful": useful, "efficiency": useful / used if used else math.nan,
        "probe_p50": quantile(ages, 0.5), "probe_p95": quantile(ages, 0.95),
        "run_p50": quantile(delays, 0.5), "run_p95": quantile(delays, 0.95),
        "runs_finished": len(delays), "runs_missed": sum(1 for d in delays if math.isinf(d)),
        "429": kinds["429"], "kinds": dict(kinds), "intervals": interval,
        "ready": None if extra["ready"] is None else extra["ready"] - start,
        "need": {"probes": probe_pages, "run pages": run_pages_needed, "run listings": run_listings,
                 "inventory": inventory, "details": len(need_details)},
    }


def run_case(inventory: str, key_limit: int, impl: str, duration: float, warmup: float, run_order: str = "desc",
             probe_floor: float = 60.0) -> tuple[str, int, str, dict[str, Any], float]:
    logs.configure(level="warning", fmt="console")  # the poller logs every request at debug otherwise
    began = time.perf_counter()
    runner = run_ours if impl == "ours" else run_naive
    trace, world, extra = run_virtual(runner(world_config(inventory), key_limit, duration, run_order, probe_floor))
    result = analyse(trace, world, duration, warmup, extra, run_order)
    return inventory, key_limit, impl, result, time.perf_counter() - began


# ---------------------------------------------------------------- report


def fmt_s(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "-"
    if math.isinf(a):
        return "inf"
    return f"{a / b:.1f}x"


def report(results: dict[tuple[str, int, str], dict[str, Any]], inventories: Iterable[str],
           key_limits: Iterable[int], hours: float, run_order: str, probe_floor: float) -> bool:
    cases = [(inv, k) for inv in inventories for k in key_limits if (inv, k, "ours") in results]
    print(f"## Schedule benchmark: {hours:g} simulated hours per case, budget share {BUDGET_SHARE}, "
          f"runs listed {'newest' if run_order == 'desc' else 'oldest'} first, probe floor {probe_floor:g} s\n")
    print("Cells are ours / naive; ratios are naive / ours. Probe age best = even schedule at the plan's "
          "probe interval (p50 0.5 I, p95 0.95 I).\n")
    print("| inventory | key /min | probe interval I (s) | requests | minimum | efficiency "
          "| probe age p50 (best) | probe age p95 (best) | run shown p50 | run shown p95 | 429 "
          "| naive/ours: requests, probe p95, run p95 |")
    print("|---|---:|---:|---|---|---|---|---|---|---|---|---|")
    ok = True
    for inv, k in cases:
        o, n = results[(inv, k, "ours")], results.get((inv, k, "naive"))
        interval = o["intervals"]["probes"]
        nn: dict[str, Any] = n or {key: math.nan for key in o}
        print(f"| {inv} | {k} | {interval:,.0f} | {o['used']:,} / {nn['used']:,} | {o['minimum']:,} / "
              f"{nn['minimum']:,} | {o['efficiency']:.2f} / {nn['efficiency']:.2f} "
              f"| {fmt_s(o['probe_p50'])} / {fmt_s(nn['probe_p50'])} ({fmt_s(0.5 * interval)}) "
              f"| {fmt_s(o['probe_p95'])} / {fmt_s(nn['probe_p95'])} ({fmt_s(0.95 * interval)}) "
              f"| {fmt_s(o['run_p50'])} / {fmt_s(nn['run_p50'])} | {fmt_s(o['run_p95'])} / {fmt_s(nn['run_p95'])} "
              f"| {o['429']} / {nn['429']} | {ratio(nn['used'], o['used'])}, {ratio(nn['probe_p95'], o['probe_p95'])}, "
              f"{ratio(nn['run_p95'], o['run_p95'])} |")

    print("\n### Ours: where the requests went, and the targets\n")
    print("| inventory | key /min | plan: probes / run lists (s) | ready after (s) | probe lists "
          "| run pages / listings (needed pages) | inventory (needed) | details (needed) | 429 | efficiency >= 0.9 "
          "| probe p95 <= 1.2x best | zero 429 |")
    print("|---|---:|---|---:|---:|---|---|---|---:|---|---|---|")
    for inv, k in cases:
        o = results[(inv, k, "ours")]
        kinds, need = o["kinds"], o["need"]
        inv_used = kinds.get("projects", 0) + kinds.get("tests", 0) + kinds.get("registrars", 0)
        best95 = 0.95 * o["intervals"]["probes"]
        probe_ratio = o["probe_p95"] / best95
        checks = [o["efficiency"] >= TARGET_EFFICIENCY, probe_ratio <= TARGET_PROBE_P95, o["429"] == 0]
        ok = ok and all(checks)
        mark = ["yes" if c else "**NO**" for c in checks]
        ready = "never" if o["ready"] is None else f"{o['ready']:,.0f}"
        print(f"| {inv} | {k} | {o['intervals']['probes']:,.0f} / {o['intervals']['test_runs']:,.0f} | {ready} "
              f"| {kinds.get('probes', 0):,} | {kinds.get('test-runs', 0):,} "
              f"/ {need['run listings']:,} ({need['run pages']:,}) | {inv_used:,} ({need['inventory']:,}) "
              f"| {kinds.get('detail', 0):,} ({need['details']:,}) | {o['429']} | {o['efficiency']:.2f} {mark[0]} "
              f"| {probe_ratio:.2f}x {mark[1]} | {mark[2]} |")
    print(f"\nAll targets met: {'yes' if ok else 'NO'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small and medium, key limits 10 and 60, 2 hours")
    parser.add_argument("--hours", type=float, default=None, help="simulated hours per case (default 6)")
    parser.add_argument("--inventories", default=None, help="comma-separated: small,medium,large")
    parser.add_argument("--key-limits", default=None, help="comma-separated requests a minute: 10,60,120,600")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--run-order", choices=("desc", "asc"), default="desc",
                        help="how the simulator lists test runs: newest first (default) or oldest first")
    parser.add_argument("--probe-floor", type=float, default=60.0,
                        help="ours: CALLMETER_PROBES_MIN_INTERVAL in seconds (default 60)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when one of our targets is missed")
    args = parser.parse_args(argv)
    hours = args.hours or (2.0 if args.quick else 6.0)
    inventories = (args.inventories.split(",") if args.inventories
                   else ["small", "medium"] if args.quick else list(INVENTORIES))
    key_limits = ([int(k) for k in args.key_limits.split(",")] if args.key_limits
                  else [10, 60] if args.quick else list(KEY_LIMITS))
    duration = hours * 3600
    warmup = min(3600.0, duration / 4)
    impls = ["ours"] if args.no_naive else ["ours", "naive"]

    def cost(case: tuple[str, int, str]) -> float:  # biggest first keeps both workers busy to the end
        inv, k, impl = case
        projects, _, tests = INVENTORIES[inv]
        demand = projects * (2 + tests / 45) if impl == "ours" else projects * tests * 10
        return min(k * BUDGET_SHARE, demand) * (2 if inv == "large" else 1)

    cases = sorted(((inv, k, impl) for inv in inventories for k in key_limits for impl in impls),
                   key=cost, reverse=True)
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    began = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_case, *case, duration, warmup, args.run_order, args.probe_floor)
                   for case in cases]
        for done, future in enumerate(as_completed(futures), 1):
            inv, k, impl, result, seconds = future.result()
            results[(inv, k, impl)] = result
            print(f"[{done}/{len(cases)}] {inv} {k}/min {impl}: {result['used']:,} requests, "
                  f"{seconds:.1f} s ({time.perf_counter() - began:.0f} s elapsed)", file=sys.stderr)
    ok = report(results, inventories, key_limits, hours, args.run_order, args.probe_floor)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
