"""`callmeter-exporter --show-schedule`: read the inventory once and print what the budget allows, and
how soon each class of data shows a change."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ..api import errors
from ..api.client import PER_PAGE
from ..api.models import Probe, Project
from ..model.kinds import KINDS, PER_PROJECT, upstream_count
from ..poll.poller import DETAIL_PATIENCE
from ..poll.store import chosen_projects
from ..schedule.choice import choose_reads
from ..schedule.planner import (
    Inventory,
    Plan,
    adaptive_detail_room,
    adaptive_plan,
    demands,
    detail_reserve,
    has_room,
    pages,
    plan_for,
    room_per_minute,
)
from ..schedule.timing import HORIZON, RUN_TAIL, Learned, ProbeTimes
from ..settings import Floors
from .daemon import Exporter

READ_LAG = 3.0
"""What a timed read adds to the delay, on average: the margin after a result, the request, publishing."""


async def read_inventory(exporter: Exporter, project_filter: tuple[str, ...]) -> tuple[Inventory, list[Project]]:
    """One request for the project list; per project, a listing only where the list lacks a count."""
    client = exporter.client
    projects = await client.list_all(KINDS["projects"].route, KINDS["projects"].path(), Project)
    chosen = chosen_projects(projects, project_filter)
    requests = dict.fromkeys((k.name for k in PER_PROJECT), 0.0)
    for project in chosen:
        for kind in PER_PROJECT:
            if kind.cost_moves:  # run lists: one page a listing until listings say otherwise
                requests[kind.name] += 1
                continue
            count = upstream_count(kind, project)
            if count is None:
                count = len(await client.list_all(kind.route, kind.path(project.id), kind.model))
            requests[kind.name] += pages(count, PER_PAGE)
    return Inventory(projects=len(chosen), requests=requests), chosen


def format_plan(plan: Plan, inventory: Inventory, floors: Floors, *, safety_interval: float = math.inf) -> str:
    lines = [f"{'resource':<12} {'requests':>9} {'floor':>8} {'interval':>10} {'req/min':>8}  floor met",
             "-" * 62]
    for demand in demands(inventory, floors):
        interval = plan.intervals[demand.resource]
        met = "yes" if interval <= demand.floor * 1.0001 else "NO"
        if plan.schedule == "adaptive" and demand.resource == KINDS["probes"].name:
            met = "timed"  # read when the probes execute: the interval is an average
        lines.append(f"{demand.resource:<12} {demand.requests:>9g} {demand.floor:>7.0f}s {interval:>9.0f}s "
                     f"{demand.requests * 60 / interval:>8.2f}  {met}")
    lines.append("-" * 62)
    lines.append(f"budget {plan.budget_per_minute:.1f} requests/min; the floors alone need "
                 f"{plan.needed_per_minute:.1f}/min.")
    if plan.schedule == "adaptive" and plan.fixed_probe_interval is not None:
        room = adaptive_detail_room(inventory, floors, plan.budget_per_minute, safety_interval)
        lines.append(f"Run details (one per finished run, and a look or two at a running run) can have up to "
                     f"{room:.1f}/min, ahead of the probe lists beyond their safety net; a detail wanted for "
                     f"over {DETAIL_PATIENCE:.0f} s goes ahead of the run lists.")
        return _stretched(lines, plan)
    room = detail_reserve(inventory, floors, plan.budget_per_minute, math.inf)
    if room > 0:
        lines.append(f"Run details (one per finished run) can have up to {room:.1f}/min; the run lists make "
                     f"room for them, down to one read every {10 * floors.test_runs:.0f}s.")
    else:
        lines.append("Run details (one per finished run) get only idle slots: the probe floor takes the budget. "
                     "A longer CALLMETER_PROBES_MIN_INTERVAL frees budget for them.")
    return _stretched(lines, plan)


def _stretched(lines: list[str], plan: Plan) -> str:
    if plan.stretched:
        lines.append("Floors not met: " + ", ".join(plan.stretched) + ". A higher CALLMETER_PLAN or "
                     "CALLMETER_REQUESTS_PER_MINUTE, a narrower CALLMETER_PROJECTS, or longer "
                     "*_MIN_INTERVAL floors would change that.")
    return "\n".join(lines) + "\n"


def format_delays(plan: Plan, fixed: Plan, *, probe_wait: float | None) -> str:
    """Expected delay, on average, from a change in CallMeter to /metrics, per class; `probe_wait` is the
    adaptive schedule's mean wait for a read past each result (None: the fixed schedule is in use)."""
    half = {r: plan.intervals[r] / 2 for r in plan.intervals}
    fixed_half = {r: fixed.intervals[r] / 2 for r in fixed.intervals}
    rows = [("class", "expected delay", "fixed")]
    if probe_wait is None:
        rows.append(("probe status", f"{half['probes']:.0f} s", f"{fixed_half['probes']:.0f} s"))
        rows.append(("run status", f"{half['test_runs']:.0f} s", f"{fixed_half['test_runs']:.0f} s"))
        rows.append(("run quality", f"{half['test_runs']:.0f} s + the detail's turn",
                     f"{fixed_half['test_runs']:.0f} s + the detail's turn"))
    else:
        how = "one read per execution" if plan.pays_every_execution else "the reads that save most waiting"
        rows.append(("probe status", f"{probe_wait + READ_LAG:.0f} s after the result shows ({how})",
                     f"{fixed_half['probes']:.0f} s"))
        after_end = (f"{RUN_TAIL + READ_LAG:.0f} s after the end of a run seen running (a test with "
                     f"durationSeconds); else {half['test_runs']:.0f} s")
        rows.append(("run status", after_end, f"{fixed_half['test_runs']:.0f} s"))
        rows.append(("run quality", after_end, f"{fixed_half['test_runs']:.0f} s + the detail's turn"))
    rows.append(("inventory", f"{half['tests']:.0f} s", f"{fixed_half['tests']:.0f} s"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["Expected delay, on average, from a change in CallMeter to /metrics:"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


async def probe_timing(exporter: Exporter, chosen: list[Project], *, fixed_interval: float, max_interval: float
                       ) -> tuple[ProbeTimes, float, dict[str, float]]:
    """Each project's probe list, read once: (the timing policy, probe-list requests a minute that one
    read per execution would take, the pages of each project's list)."""
    client = exporter.client
    times = ProbeTimes(Learned(), max_interval=max_interval)
    now = time.time()
    wanted = 0.0
    cost: dict[str, float] = {}
    for project in chosen:
        probes = await client.list_all(KINDS["probes"].route, KINDS["probes"].path(project.id), Probe)
        times.read(project.id, probes, sent=now, seen=now)
        cost[project.id] = pages(len(probes), PER_PAGE)
        wanted += cost[project.id] * times.reads_per_hour(project.id, now, fixed_interval=fixed_interval) / 60
    return times, wanted, cost


def expected_probe_wait(times: ProbeTimes, plan: Plan, cost: dict[str, float], *, fixed_interval: float) -> float:
    """Mean seconds a probe result waits past its read moment for the read that shows it."""
    if plan.pays_every_execution or plan.probe_reads_paid is None:
        return 0.0
    now = time.time()
    moments = {pid: times.moments(pid, now, now + HORIZON) for pid in times.projects}
    budget = plan.probe_reads_paid * HORIZON / 60
    choice = choose_reads(moments, cost, budget, last_read=dict.fromkeys(moments, now), period=HORIZON,
                          max_gap=max(times.max_interval, fixed_interval))
    return choice.delay


def format_spare(plan: Plan, inventory: Inventory, projects: list[Project], *, run_endpoints: str,
                 config_details: str) -> str:
    """The reads below the plan: what they cost, and whether the plan leaves room for them."""
    room = room_per_minute(plan, inventory)
    every = plan.intervals.get("tests", 900.0)
    lines = [f"Below the plan ({max(room, 0.0):.1f} requests/min left over; 'auto' reads only while there is room):"]
    for name, field, what in (("probe_details", "probe_count", "probe thresholds"),
                              ("test_details", "test_count", "test settings")):
        counts = [getattr(p, field) for p in projects]
        count = sum(c for c in counts if isinstance(c, int)) if all(isinstance(c, int) for c in counts) else None
        cost = f"{count * 60 / every:.2f}/min" if count is not None else "?/min"
        lines.append(f"  {name:<20}{count if count is not None else '?':>5} requests every {every:.0f}s ({what}), "
                     f"{cost}; CALLMETER_CONFIG_DETAILS={config_details}")
    lines.append(f"  {'test_run_endpoints':<20}one request per 100 endpoints of each completed run, once; "
                 f"CALLMETER_RUN_ENDPOINTS={run_endpoints}")
    if not has_room(plan, inventory) and "auto" in (run_endpoints, config_details):
        lines.append("  No room: what is 'auto' is not read with this plan.")
    return "\n".join(lines) + "\n"


async def show_schedule(exporter: Exporter, out: TextIO, err: TextIO = sys.stderr) -> int:
    """Read the inventory once and print the plan on `out`; progress and errors go to `err`."""
    settings = exporter.settings
    floors = exporter.poller.planning.floors  # what the exporter runs with (the demo's are its own)
    budget = settings.budget_per_minute
    print(f"callmeter-exporter: reading the inventory from {settings.base_url} ...", file=err, flush=True)
    try:
        inventory, chosen = await read_inventory(exporter, settings.project_filter)
        fixed = plan_for(inventory, floors, budget)
        plan, wait = fixed, None
        if settings.schedule == "adaptive":
            interval = fixed.intervals["probes"]
            times, wanted, cost = await probe_timing(exporter, chosen, fixed_interval=interval,
                                                     max_interval=settings.probes_max_interval)
            plan = adaptive_plan(inventory, floors, budget, details_per_minute=0.0, probe_reads_per_minute=wanted,
                                 safety_interval=settings.probes_max_interval)
            wait = expected_probe_wait(times, plan, cost, fixed_interval=interval)
    except errors.ApiError as exc:
        print(f"callmeter-exporter: could not read the inventory: {exc}", file=err, flush=True)
        return 1
    finally:
        await exporter.client.aclose()
    out.write(f"{len(chosen)} project(s): " + ", ".join(p.label for p in chosen) + "\n")
    out.write(f"schedule: {settings.schedule} (CALLMETER_SCHEDULE)\n")
    out.write(format_plan(plan, inventory, floors, safety_interval=max(settings.probes_max_interval,
                                                                       fixed.intervals["probes"])))
    if plan.probe_reads_wanted is not None and plan.probe_reads_paid is not None:
        out.write(probe_list_line(plan, fixed, inventory, floors))
    out.write(format_delays(plan, fixed, probe_wait=wait))
    if wait is not None:
        out.write("(Before any run has finished: each finished run's detail takes its share first, up to half "
                  "the budget.)\n")
    out.write(format_spare(plan, inventory, chosen, run_endpoints=settings.run_endpoints,
                           config_details=settings.config_details))
    return 0


def probe_list_line(plan: Plan, fixed: Plan, inventory: Inventory, floors: Floors) -> str:
    """What one read per execution wants, what the plan pays, and what caps it: the budget, or the rule
    that the adaptive schedule never sends more probe-list reads than the fixed one would."""
    assert plan.probe_reads_wanted is not None and plan.probe_reads_paid is not None
    wanted_h, paid_h = plan.probe_reads_wanted * 60, plan.probe_reads_paid * 60
    fixed_h = inventory.cost(KINDS["probes"]) * 3600 / fixed.intervals["probes"]
    if plan.pays_every_execution:
        verdict = f"the plan pays for all {paid_h:.0f}: one read per execution"
    elif paid_h >= fixed_h * 0.999:
        verdict = (f"the plan pays for {paid_h:.0f}, what the fixed schedule would send at the probe floor of "
                   f"{floors.probes:.0f} s (CALLMETER_PROBES_MIN_INTERVAL), which it never exceeds; it keeps the "
                   f"reads that save the most waiting")
    else:
        verdict = f"the budget pays for {paid_h:.0f}; it keeps the reads that save the most waiting, probe lists first"
    return (f"Probe lists: reading each after its probes execute takes {wanted_h:.0f} reads an hour (the safety net "
            f"included); {verdict}. The fixed schedule would send {fixed_h:.0f}.\n")
