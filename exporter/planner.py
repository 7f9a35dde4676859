"""The plan: how often each resource can be refreshed within the request budget.

Resources come in priority classes, most important first: probe lists (alerting on probe health),
test-run lists (which runs finished), run details (one per finished run), inventory (projects, tests,
registrars). Each has a floor, "not more often than". When the budget cannot pay for every floor,
intervals stretch from the least important class upward, each up to its ceiling; if even that is not
enough, every interval stretches by the same factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Floors:
    """Refresh each class at most this often (seconds)."""

    probes: float = 60.0
    test_runs: float = 60.0
    inventory: float = 900.0


@dataclass(frozen=True, slots=True)
class Inventory:
    """What one refresh of each class costs, in requests (list pages)."""

    projects: int = 0
    probe_pages: int = 0
    test_pages: int = 0
    registrar_pages: int = 0
    run_pages: int = 0

    def grew_since(self, other: Inventory | None) -> bool:
        if other is None:
            return True
        return any(a > b for a, b in zip(_fields(self), _fields(other), strict=True))


def _fields(inv: Inventory) -> tuple[int, ...]:
    return (inv.projects, inv.probe_pages, inv.test_pages, inv.registrar_pages, inv.run_pages)


def pages(count: int | None, per_page: int = 100) -> int:
    """List pages a collection of `count` items takes (an empty list still costs one request)."""
    return max(1, -(-(count or 0) // per_page))


@dataclass(frozen=True, slots=True)
class Demand:
    resource: str
    requests: float
    """Requests one refresh of every item of this class costs."""
    floor: float
    ceiling: float


@dataclass(frozen=True, slots=True)
class Plan:
    intervals: dict[str, float]
    budget_per_minute: float
    needed_per_minute: float
    """What the floors alone would cost."""
    stretched: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.stretched

    def describe(self) -> str:
        parts = [f"{r}={self.intervals[r]:.0f}s" for r in self.intervals]
        return ", ".join(parts)


def make_plan(demands: list[Demand], budget_per_minute: float, reserve_per_minute: float = 0.0) -> Plan:
    """Intervals for `demands` (in priority order) within `budget_per_minute` minus a reserve (run details)."""
    budget = max(budget_per_minute - reserve_per_minute, budget_per_minute * 0.1) / 60
    intervals = {d.resource: d.floor for d in demands}

    def usage() -> float:
        return sum(d.requests / intervals[d.resource] for d in demands if d.requests > 0)

    needed = usage() * 60 + reserve_per_minute
    stretched: list[str] = []
    for demand in reversed(demands):
        total = usage()
        if total <= budget:
            break
        if demand.requests <= 0:
            continue
        others = total - demand.requests / intervals[demand.resource]
        room = budget - others
        wanted = demand.requests / room if room > 0 else math.inf
        intervals[demand.resource] = min(max(wanted, demand.floor), demand.ceiling)
        stretched.append(demand.resource)
    total = usage()
    if total > budget:
        factor = total / budget
        for resource in intervals:
            intervals[resource] *= factor
        stretched = [d.resource for d in demands]
    return Plan(intervals=intervals, budget_per_minute=budget_per_minute, needed_per_minute=needed,
                stretched=tuple(r for r in intervals if r in stretched))


def plan_for(inventory: Inventory, floors: Floors, budget_per_minute: float, reserve_per_minute: float = 0.0) -> Plan:
    """The plan for an inventory: probe lists first, then run lists, then inventory (ceilings keep
    every class alive: inventory at least every 6 hours, run lists at most 10 floors apart)."""
    inv, ceiling = floors.inventory, max(floors.inventory * 24, 6 * 3600)
    demands = [
        Demand("probes", inventory.probe_pages, floors.probes, max(floors.probes * 60, 3600)),
        Demand("test_runs", inventory.run_pages, floors.test_runs, floors.test_runs * 10),
        Demand("projects", 1, inv, ceiling),
        Demand("tests", inventory.test_pages, inv, ceiling),
        Demand("registrars", inventory.registrar_pages, inv, ceiling),
    ]
    return make_plan(demands, budget_per_minute, reserve_per_minute)
