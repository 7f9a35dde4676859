"""The plan: how often each resource can be refreshed within the request budget.

Resources come in priority classes, most important first: probe lists (alerting on probe health),
test-run lists (which runs finished), run details (one per finished run), inventory (projects, tests,
registrars). Each has a floor, "not more often than". When the budget cannot pay for every floor,
intervals stretch from the least important class upward, each up to its ceiling; if even that is not
enough, every interval stretches by the same factor.

Run details are not a periodic class: each finished run wants one. They get a reserve out of the
budget (`detail_reserve`) before the periodic classes are planned.

With the adaptive schedule (`adaptive_plan`), probe lists cost what their executions want (one read
per execution, or per group of close ones, plus the safety net), never more than the fixed plan
would spend on them, and the detail reserve comes before probe lists beyond their safety net.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..model.kinds import KINDS, PERIODIC, Kind
from ..settings import Floors

DETAIL_HEADROOM = 1.25
"""The detail reserve is this many times the rate at which details are wanted: runs finish in bursts,
and a queue drains only with room to spare."""
DETAIL_DRAIN = 120.0
"""Adaptive: the reserve is also at least what fetches the details pending now within this many seconds."""


@dataclass(frozen=True, slots=True)
class Inventory:
    """What one refresh of each kind costs, in requests (list pages)."""

    projects: int = 0
    requests: Mapping[str, float] = field(default_factory=dict)
    """Per per-project kind (`kinds.KINDS`): the requests one refresh of every project costs. Run lists
    are an average, as the reads that follow new runs vary."""

    def cost(self, kind: Kind) -> float:
        return self.requests.get(kind.name, 0.0) if kind.per_project else 1.0

    def grew_since(self, other: Inventory | None) -> bool:
        """Has a list grown (costs that move with every read, the run pages, aside)?"""
        if other is None or self.projects > other.projects:
            return True
        return any(self.cost(k) > other.cost(k) for k in PERIODIC if not k.cost_moves)


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
    detail_reserve_per_minute: float = 0.0
    """Set aside for run details before the intervals were planned."""
    schedule: str = "fixed"
    probe_reads_wanted: float | None = None
    """Adaptive: probe-list requests a minute that one read per execution (and the safety net) wants."""
    probe_reads_paid: float | None = None
    """Adaptive: probe-list requests a minute the plan pays for (never more than `fixed` would send)."""
    fixed_probe_interval: float | None = None
    """The probe interval the fixed plan would have: the clock of a project whose probes lack a schedule."""
    details_wanted_per_minute: float | None = None
    """Adaptive: what run details (and looks at running runs) want a minute, before the reserve's limits."""

    @property
    def pays_details(self) -> bool:
        """Does the reserve pay for every detail (and look) wanted? Always, for the fixed plan."""
        wanted = self.details_wanted_per_minute
        return wanted is None or self.detail_reserve_per_minute >= wanted * 0.999

    @property
    def pays_every_execution(self) -> bool:
        return self.probe_reads_paid is None or self.probe_reads_paid >= (self.probe_reads_wanted or 0.0) * 0.999

    @property
    def fits(self) -> bool:
        return not self.stretched

    def describe(self) -> str:
        parts = [f"{r}={self.intervals[r]:.0f}s" for r in self.intervals]
        return ", ".join(parts)


def make_plan(demands: list[Demand], budget_per_minute: float, reserve_per_minute: float = 0.0) -> Plan:
    """Intervals for `demands` (in priority order) within `budget_per_minute` minus a reserve (run details)."""
    budget = max(budget_per_minute - reserve_per_minute, budget_per_minute * 0.1) / 60
    fits = budget * (1 + 1e-9)  # a class stretched to fit exactly must not push the next by a rounding error
    intervals = {d.resource: d.floor for d in demands}

    def usage() -> float:
        return sum(d.requests / intervals[d.resource] for d in demands if d.requests > 0)

    needed = usage() * 60 + reserve_per_minute
    stretched: list[str] = []
    for demand in reversed(demands):
        total = usage()
        if total <= fits:
            break
        if demand.requests <= 0:
            continue
        others = total - demand.requests / intervals[demand.resource]
        room = budget - others
        wanted = demand.requests / room if room > 0 else math.inf
        intervals[demand.resource] = min(max(wanted, demand.floor), demand.ceiling)
        stretched.append(demand.resource)
    total = usage()
    if total > fits:
        factor = total / budget
        for resource in intervals:
            intervals[resource] *= factor
        stretched = [d.resource for d in demands]
    return Plan(intervals=intervals, budget_per_minute=budget_per_minute, needed_per_minute=needed,
                stretched=tuple(r for r in intervals if r in stretched), detail_reserve_per_minute=reserve_per_minute)


def demands(inventory: Inventory, floors: Floors) -> list[Demand]:
    """One per periodic kind, in priority order (probe lists, run lists, inventory), each with its
    ceiling (`kinds.KINDS`): inventory at least every 6 hours, run lists at most 10 floors apart,
    probe lists at least hourly."""
    return [Demand(k.name, inventory.cost(k), k.floor_of(floors), k.ceiling(k.floor_of(floors)))
            for k in PERIODIC]


def detail_reserve(inventory: Inventory, floors: Floors, budget_per_minute: float,
                   wanted_per_minute: float) -> float:
    """Requests a minute set aside for run details: what finished runs want, with headroom, paid only
    from what is left once probe lists run at their floor and run lists and inventory at their
    ceilings, and never more than half the budget.

    Details come before the run lists' share above their ceiling because a late run list loses
    nothing (the next read sees every run since), while a detail not fetched before its test's next
    run finishes is never shown. They never come before the probe floor: on a budget too small for
    it, the reserve is 0, details take only the slots the plan leaves idle, and the probe interval
    does not move with the rate at which runs finish."""
    spare = budget_per_minute
    for demand in demands(inventory, floors):
        slowest = demand.floor if demand.resource == "probes" else demand.ceiling
        spare -= demand.requests * 60 / slowest
    return max(0.0, min(DETAIL_HEADROOM * wanted_per_minute, spare, budget_per_minute / 2))


def plan_for(inventory: Inventory, floors: Floors, budget_per_minute: float, details_per_minute: float = 0.0
             ) -> Plan:
    """The plan for an inventory, with `detail_reserve` set aside for the run details wanted a minute."""
    reserve = detail_reserve(inventory, floors, budget_per_minute, details_per_minute)
    return make_plan(demands(inventory, floors), budget_per_minute, reserve)


def adaptive_plan(inventory: Inventory, floors: Floors, budget_per_minute: float, *, details_per_minute: float,
                  probe_reads_per_minute: float, safety_interval: float, details_pending: int = 0) -> Plan:
    """The plan when probe lists are read when their probes execute (`CALLMETER_SCHEDULE=adaptive`).

    Probe lists want `probe_reads_per_minute` requests (one read per execution or group of close ones,
    and the safety net), but never more than the fixed plan would give them, so the adaptive schedule
    never sends more probe-list requests than the fixed one. The reserve for run details comes first,
    up to half the budget, taken from everything but what the inventory needs at its slowest (probe
    lists every `safety_interval`, run lists and inventory at their ceilings): a detail must not wait
    for a lull that a busy account never has. The periodic classes share what is left, in priority
    order, as in the fixed plan. The reserve is at least what fetches the `details_pending` within
    `DETAIL_DRAIN` (a cold start's catch-up, a burst of finished runs)."""
    fixed = plan_for(inventory, floors, budget_per_minute, details_per_minute)
    probes = KINDS["probes"]
    cost = inventory.cost(probes)
    fixed_rate = cost * 60 / fixed.intervals[probes.name]
    wanted = min(probe_reads_per_minute, fixed_rate)
    wanted_details = max(DETAIL_HEADROOM * details_per_minute, details_pending * 60 / DETAIL_DRAIN)
    room = adaptive_detail_room(inventory, floors, budget_per_minute, max(safety_interval,
                                                                            fixed.intervals[probes.name]))
    reserve = min(wanted_details, room)
    floor = cost * 60 / wanted if wanted > 0 else max(safety_interval, fixed.intervals[probes.name])
    timed = [replace(d, floor=floor, ceiling=max(d.ceiling, floor)) if d.resource == probes.name else d
             for d in demands(inventory, floors)]
    plan = make_plan(timed, budget_per_minute, reserve)
    paid = cost * 60 / plan.intervals[probes.name]
    return replace(plan, schedule="adaptive", probe_reads_wanted=probe_reads_per_minute,
                   probe_reads_paid=min(paid, probe_reads_per_minute),
                   fixed_probe_interval=fixed.intervals[probes.name], details_wanted_per_minute=wanted_details)


def adaptive_detail_room(inventory: Inventory, floors: Floors, budget_per_minute: float, safety_interval: float
                         ) -> float:
    """Adaptive: the most the detail reserve may take: half the budget, and never what the inventory needs
    at its slowest (probe lists every `safety_interval`, the other lists at their ceilings)."""
    slowest = {d.resource: d.ceiling for d in demands(inventory, floors)}
    slowest[KINDS["probes"].name] = safety_interval
    least = sum(d.requests * 60 / slowest[d.resource] for d in demands(inventory, floors))
    return max(0.0, min(budget_per_minute - least, budget_per_minute / 2))


ROOM_SHARE = 0.02
"""Reads below the plan (`spare`) run only while it leaves more than this share of the budget over."""


def room_per_minute(plan: Plan, inventory: Inventory) -> float:
    """Requests a minute the plan leaves over: the budget less what the periodic classes take at their
    intervals and the reserve for run details. What the reads below the plan (`spare`) may use."""
    used = sum(inventory.cost(k) * 60 / plan.intervals[k.name] for k in PERIODIC
               if inventory.cost(k) > 0 and plan.intervals.get(k.name))
    return plan.budget_per_minute - used - plan.detail_reserve_per_minute


def has_room(plan: Plan, inventory: Inventory) -> bool:
    return not plan.stretched and room_per_minute(plan, inventory) > ROOM_SHARE * plan.budget_per_minute
