"""`callmeter-exporter --show-schedule`: read the inventory once and print what the budget allows."""

from __future__ import annotations

import math
from typing import TextIO

from . import errors
from .client import PER_PAGE
from .kinds import KINDS, PER_PROJECT, upstream_count
from .models import Project
from .planner import Floors, Inventory, Plan, demands, detail_reserve, has_room, pages, plan_for, room_per_minute
from .poller import chosen_projects


async def read_inventory(exporter: object, project_filter: tuple[str, ...]) -> tuple[Inventory, list[Project]]:
    """One request for the project list; per project, a listing only where the list lacks a count."""
    client = exporter.client  # type: ignore[attr-defined]
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


def format_plan(plan: Plan, inventory: Inventory, floors: Floors) -> str:
    lines = [f"{'resource':<12} {'requests':>9} {'floor':>8} {'interval':>10} {'req/min':>8}  floor met",
             "-" * 62]
    for demand in demands(inventory, floors):
        interval = plan.intervals[demand.resource]
        met = "yes" if interval <= demand.floor * 1.0001 else "NO"
        lines.append(f"{demand.resource:<12} {demand.requests:>9g} {demand.floor:>7.0f}s {interval:>9.0f}s "
                     f"{demand.requests * 60 / interval:>8.2f}  {met}")
    lines.append("-" * 62)
    room = detail_reserve(inventory, floors, plan.budget_per_minute, math.inf)
    lines.append(f"budget {plan.budget_per_minute:.1f} requests/min; the floors alone need "
                 f"{plan.needed_per_minute:.1f}/min.")
    if room > 0:
        lines.append(f"Run details (one per finished run) can have up to {room:.1f}/min; the run lists make "
                     f"room for them, down to one read every {10 * floors.test_runs:.0f}s.")
    else:
        lines.append("Run details (one per finished run) get only idle slots: the probe floor takes the budget. "
                     "A longer CALLMETER_PROBES_MIN_INTERVAL frees budget for them.")
    if plan.stretched:
        lines.append("Floors not met: " + ", ".join(plan.stretched) + ". A higher CALLMETER_PLAN or "
                     "CALLMETER_REQUESTS_PER_MINUTE, a narrower CALLMETER_PROJECTS, or longer "
                     "*_MIN_INTERVAL floors would change that.")
    return "\n".join(lines) + "\n"


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


async def show_schedule(exporter: object, out: TextIO) -> int:
    settings = exporter.settings  # type: ignore[attr-defined]
    floors = settings.floors
    try:
        inventory, chosen = await read_inventory(exporter, settings.project_filter)
    except errors.ApiError as exc:
        out.write(f"could not read the inventory: {exc}\n")
        return 1
    finally:
        await exporter.client.aclose()  # type: ignore[attr-defined]
    plan = plan_for(inventory, floors, settings.budget_per_minute)
    out.write(f"{len(chosen)} project(s): " + ", ".join(p.label for p in chosen) + "\n")
    out.write(format_plan(plan, inventory, floors))
    out.write(format_spare(plan, inventory, chosen, run_endpoints=settings.run_endpoints,
                           config_details=settings.config_details))
    return 0
