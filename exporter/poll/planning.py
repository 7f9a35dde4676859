"""The plan in force, and its refresh: how often each kind is read, and the room left for reads below it.

`replan` asks the schedule's policy (`schedule.adaptive`) for a plan of the inventory as the store
holds it, at the budget's current rate, and logs it when the inventory grew, the rate moved or the
plan stopped paying for a read per probe execution (`log_plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.budget import RateLimiter
from ..api.client import PER_PAGE
from ..expose.selfmetrics import ExporterMetrics
from ..model.kinds import KINDS, PER_PROJECT, STAMPED, Kind, upstream_count
from ..model.runs import RunTracker
from ..model.snapshot import ProjectData
from ..schedule.adaptive import TimingPolicy
from ..schedule.choice import Choice
from ..schedule.planner import Inventory, Plan, has_room, pages, room_per_minute
from ..schedule.spare import Spare
from ..settings import Floors

PROBES = KINDS["probes"]
DETAILS = KINDS["test_run_details"]


class Planning:
    def __init__(self, *, floors: Floors, limiter: RateLimiter, runs: RunTracker, spare: Spare,
                 metrics: ExporterMetrics, log: Any, max_data_age: float | None = None) -> None:
        self._floors = floors
        self._limiter = limiter
        self._runs = runs
        self._spare = spare
        self._metrics = metrics
        self._log = log
        self._max_data_age = max_data_age
        self._plan: Plan | None = None
        self._planned_for: Inventory | None = None
        self._planned_rate = limiter.per_minute
        self._room = 0.0

    @property
    def plan(self) -> Plan | None:
        return self._plan

    @property
    def room(self) -> float:
        """Requests a minute the plan leaves over for spare reads (0: none)."""
        return self._room

    @property
    def floors(self) -> Floors:
        return self._floors

    def interval(self, resource: str) -> float:
        if self._plan is None:
            return KINDS[resource].floor_of(self._floors)
        return self._plan.intervals.get(resource, self._floors.inventory)

    def max_ages(self) -> dict[str, float]:
        """How old each stamped kind's data may be before it is no longer served."""
        if self._max_data_age is not None:
            return dict.fromkeys(STAMPED, self._max_data_age)
        # Three missed refreshes, and never less than 15 minutes.
        return {r: max(3 * self.interval(r), 900.0) for r in STAMPED}

    def rate_moved(self) -> bool:
        """Has the budget's rate changed since the plan was made (a 429, a rate-limit header)?"""
        return self._limiter.per_minute != self._planned_rate

    def inventory(self, projects: Mapping[str, ProjectData]) -> Inventory:
        def cost(kind: Kind, data: ProjectData) -> float:
            if kind.cost_moves:
                return self._runs.of(data.project.id).pages_per_listing
            items = getattr(data, kind.fills) if kind.fills else None
            return pages(len(items) if items is not None else upstream_count(kind, data.project), PER_PAGE)

        return Inventory(projects=len(projects),
                         requests={k.name: sum(cost(k, d) for d in projects.values()) for k in PER_PROJECT})

    def replan(self, projects: Mapping[str, ProjectData], policy: TimingPolicy, *, reason: str, now: float) -> None:
        inventory = self.inventory(projects)
        budget = self._limiter.per_minute
        probe_pages = {pid: pages(len(d.probes) if d.probes is not None else upstream_count(PROBES, d.project),
                                  PER_PAGE) for pid, d in projects.items()}
        plan = policy.plan(inventory, self._floors, budget, probe_pages=probe_pages,
                           reserved_per_minute=self._spare.reserved_per_minute(now))
        grew = inventory.grew_since(self._planned_for)
        turned = self._plan is not None and plan.pays_every_execution != self._plan.pays_every_execution
        self._plan, self._planned_for, self._planned_rate = plan, inventory, budget
        policy.use(plan)
        intervals = dict(plan.intervals)
        intervals[DETAILS.name] = intervals["test_runs"]
        self._metrics.set_intervals(intervals)
        self._room = room_per_minute(plan, inventory) if has_room(plan, inventory) else 0.0
        if grew or turned or reason == "rate":
            log_plan(self._log, plan, reason=reason, projects=inventory.projects, choice=policy.choice)


def log_plan(log: Any, plan: Plan, *, reason: str, projects: int, choice: Choice | None) -> None:
    """`schedule.plan`: a warning when a class is stretched, with what would change it; with the adaptive
    schedule, also what the probe lists' executions want and what the budget pays for."""
    event = log.warning if plan.stretched else log.info
    budget = plan.budget_per_minute
    hint = None
    if plan.stretched:
        hint = (f"the floors need {plan.needed_per_minute:.1f} requests/min but the budget is "
                f"{budget:.1f}/min: raise CALLMETER_PLAN or CALLMETER_REQUESTS_PER_MINUTE, narrow "
                f"CALLMETER_PROJECTS, or raise the *_MIN_INTERVAL floors")
    extra: dict[str, object] = {}
    if plan.probe_reads_wanted is not None and plan.probe_reads_paid is not None:
        wanted, paid = plan.probe_reads_wanted * 60, plan.probe_reads_paid * 60
        extra = {"schedule": plan.schedule, "probe_reads_per_hour": {"wanted": round(wanted), "paid": round(paid)}}
        if not plan.pays_every_execution:
            wait = f" (a result waits {choice.delay:.0f} s on average for its read)" if choice is not None else ""
            extra["probe_reads"] = (f"the budget pays for {paid:.0f} of the {wanted:.0f} probe-list reads an hour "
                                    f"that one read per execution would take: it keeps the reads that save the most "
                                    f"waiting{wait}")
    event("schedule.plan", reason=reason, projects=projects, budget_per_minute=round(budget, 2),
          intervals={k: round(v, 1) for k, v in plan.intervals.items()}, stretched=list(plan.stretched),
          details_per_minute=round(plan.detail_reserve_per_minute, 2), hint=hint, **extra)
