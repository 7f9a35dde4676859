"""The poller's side of a verified delivery: show its status at once, and ask for the read that decides.

The receiver hands every verified, in-order delivery to `ProbePush.push_probe_status`, which the
poller's data and scheduler answer:

- a known probe: its status is laid over the polled one (`StatusOverlay`) and published at once, and a
  read of its project's probe list is asked for; the first such read that started after the delivery
  decides (see `overlay`);
- a probe not listed yet: a read of its project's probe list; a project not listed yet: a read of the
  project list. Nothing is invented; a project `CALLMETER_PROJECTS` leaves out is ignored.

A read asked for this way is a *nudge* (`Scheduler.nudge`): it takes only a slot that no scheduled read
wants, at most one per project every NUDGE_GAP seconds, and at most NUDGE_SHARE of the budget, so no
flood of deliveries can spend the budget or delay the schedule.
"""

from __future__ import annotations

from collections.abc import Callable

from ..model.kinds import KINDS
from ..schedule.scheduler import JobKey, Scheduler
from ..webhooks.memory import NudgeGate
from .store import Store

PROJECTS = KINDS["projects"].name
PROBES = KINDS["probes"].name
NUDGE_GAP = 10.0
"""Seconds between two reads that webhooks ask for, per project (and for the project list)."""
NUDGE_SHARE = 0.25
"""Reads that webhooks ask for take at most this share of the budget, whatever the number of projects."""


class ProbePush:
    def __init__(self, *, store: Store, scheduler: Scheduler, clock: Callable[[], float],
                 republish: Callable[[], None], spacing: Callable[[], float]) -> None:
        """`clock`: the scheduler's (loop) clock; `republish`: publish a snapshot now; `spacing`: seconds
        between two requests at the budget's current rate."""
        self._store = store
        self._scheduler = scheduler
        self._clock = clock
        self._republish = republish
        self._spacing = spacing
        self._gate = NudgeGate(min_gap=NUDGE_GAP, clock=clock)
        self._last = float("-inf")

    def push_probe_status(self, project_id: str, probe_id: str, status: str | None, received_at: float) -> str:
        """"applied", "unknown_probe" or "unknown_project" (see the module's docstring)."""
        store = self._store
        data = store.find(project_id)
        if data is None:
            if project_id not in store.hidden_projects:
                self._nudge((PROJECTS, None, None))
            return "unknown_project"
        pid = data.project.id
        if data.probes is None or not any(p.id == probe_id for p in data.probes):
            self._nudge((PROBES, pid, None))
            return "unknown_probe"
        if status is not None:
            store.push_status(pid, probe_id, status, received_at)
            self._republish()
        self._nudge((PROBES, pid, None))
        return "applied"

    def _nudge(self, key: JobKey) -> None:
        now = self._clock()
        if now - self._last < self._spacing() / NUDGE_SHARE or not self._gate.allow(key[1]):
            return
        if self._scheduler.nudge(key):
            self._last = now
