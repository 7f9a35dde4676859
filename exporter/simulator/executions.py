"""Probe executions in the simulated account: when a probe runs, what it finds, when the list shows it.

A probe executes on its interval: scheduled execution n at `origin + n * interval`, where the origin
is the simulation's start plus the probe's phase. Now and then it also runs off its schedule (the
API's "Run Probe", a person in the UI), at most once between two scheduled executions. Its result
appears in the probe list a little later: the probe's result delay plus a per-execution jitter.

What an execution finds is the health of the system it probes at that moment. Health is a timeline
that turns once every `hold` intervals, at a moment drawn between two scheduled executions, so a
probe's status changes only at an execution, and an off-schedule execution can find a turn before
the next scheduled one does. Scheduled execution n finds the health of epoch `n // hold`.

The probe list shows the execution run last among those whose result is visible: `lastExecutionAt`
moves only when a result appears, and `nextExecutionAt` is the next scheduled execution (which a
stalled probe never reaches: its `nextExecutionAt` stays in the past).

Everything is a pure function of (seed, probe, time), like the rest of the world.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import WorldConfig
from .draws import unit
from .entities import SimProbe

OFF_SCHEDULE_MARGIN = 0.1
"""An off-schedule execution falls at least this share of an interval away from the scheduled ones."""


@dataclass(frozen=True, slots=True)
class Execution:
    at: float
    """When the probe ran: what `lastExecutionAt` says once the result is visible."""
    visible: float
    """When its result appears in the probe list."""
    status: str
    scheduled: bool


@dataclass(frozen=True, slots=True)
class ProbeChange:
    """A probe's listed status changed: what the ground truth and the change hooks hand out."""

    probe_id: str
    project_id: str
    at: float
    """When the new status became visible in the probe list."""
    status: str
    previous: str | None
    execution_at: float


def health(seed: int, probe_id: str, epoch: int) -> str:
    """The status every execution in the epoch finds."""
    draw = unit(seed, probe_id, epoch)
    if draw < 0.72:
        return "HEALTHY"
    if draw < 0.88:
        return "DEGRADED"
    if draw < 0.96:
        return "UNHEALTHY"
    return "UNKNOWN"


class ProbeTimeline:
    """The executions of the world's probes, worked out from the world's config and start. `extra` adds
    executions the world was asked for (through the API's "Run Probe", say) to a probe's own."""

    def __init__(self, config: WorldConfig, start: float,
                 extra: Callable[[SimProbe], Sequence[Execution]] | None = None) -> None:
        self.config = config
        self.start = start
        self.extra = extra

    # -- one probe's schedule ------------------------------------------------------------------

    def origin(self, probe: SimProbe) -> float:
        return self.start + probe.phase

    def interval(self, probe: SimProbe) -> float:
        return probe.interval_minutes * 60

    def slot(self, probe: SimProbe, at: float) -> int:
        """The scheduled execution at or before `at` (its number)."""
        return math.floor((at - self.origin(probe)) / self.interval(probe))

    def scheduled(self, probe: SimProbe, n: int) -> float:
        return self.origin(probe) + n * self.interval(probe)

    def next_scheduled(self, probe: SimProbe, now: float) -> float:
        """`nextExecutionAt`: the first scheduled execution after now (a stalled probe's stays put)."""
        n = self.slot(probe, now) + 1
        if probe.stalled_since is not None:
            n = min(n, math.ceil((probe.stalled_since - self.origin(probe)) / self.interval(probe)))
        return self.scheduled(probe, n)

    def status_at(self, probe: SimProbe, at: float) -> str:
        """The health an execution at `at` finds."""
        hold = max(1, self.config.probe_status_hold)
        rel = (at - self.origin(probe)) / self.interval(probe)
        epoch = math.floor((rel + 1) / hold)
        if epoch * hold - 1 + unit(self.config.seed, probe.id, epoch, "turn") > rel:
            epoch -= 1
        return health(self.config.seed, probe.id, epoch)

    def executions_in(self, probe: SimProbe, n: int) -> list[Execution]:
        """Scheduled execution n and the off-schedule one until n + 1, if any, in the order they ran.
        A stalled probe runs neither way from the moment it stalled."""
        seed, interval = self.config.seed, self.interval(probe)
        at = self.scheduled(probe, n)
        lag = probe.result_delay + self.config.probe_result_jitter * unit(seed, probe.id, n, "lag")
        out = [Execution(at, at + lag, health(seed, probe.id, n // max(1, self.config.probe_status_hold)), True)]
        chance = self.config.off_schedule_per_day * interval / 86400
        if chance and unit(seed, probe.id, n, "off") < chance:
            off = at + interval * (OFF_SCHEDULE_MARGIN + (1 - 2 * OFF_SCHEDULE_MARGIN) * unit(seed, probe.id, n, "at"))
            lag = probe.result_delay + self.config.probe_result_jitter * unit(seed, probe.id, n, "offlag")
            out.append(Execution(off, off + lag, self.status_at(probe, off), False))
        if probe.stalled_since is not None:
            out = [e for e in out if e.at < probe.stalled_since]
        if self.extra is not None:
            asked = [e for e in self.extra(probe) if self.slot(probe, e.at) == n]
            if asked:
                out = sorted([*out, *asked], key=lambda e: e.at)
        return out

    def _lookback(self, probe: SimProbe) -> int:
        """Intervals a result may lag behind its execution, and one more."""
        longest = probe.result_delay + self.config.probe_result_jitter
        return max(2, math.ceil(longest / self.interval(probe)) + 2)

    # -- what the list shows, and the ground truth ---------------------------------------------

    def latest_visible(self, probe: SimProbe, now: float) -> Execution | None:
        """The execution the probe list shows at `now`: the last one run whose result is visible."""
        n = self.slot(probe, now)
        if probe.stalled_since is not None:
            n = min(n, self.slot(probe, probe.stalled_since))
        for k in range(n, n - self._lookback(probe) - 1, -1):
            for execution in reversed(self.executions_in(probe, k)):
                if execution.visible <= now:
                    return execution
        return None

    def executions_between(self, probe: SimProbe, since: float, until: float) -> list[Execution]:
        """Every execution whose result became visible in (since, until], in the order they appeared."""
        first = self.slot(probe, since) - self._lookback(probe)
        last = self.slot(probe, until)
        found = [e for k in range(first, last + 1) for e in self.executions_in(probe, k)
                 if since < e.visible <= until]
        return sorted(found, key=lambda e: (e.visible, e.at))

    def changes(self, probe: SimProbe, since: float, until: float) -> list[ProbeChange]:
        """Every change of the listed status in (since, until], as the probe list shows them."""
        shown = self.latest_visible(probe, since)
        status = shown.status if shown is not None else None
        out = []
        for execution in self.executions_between(probe, since, until):
            latest = self.latest_visible(probe, execution.visible)
            if latest is None or latest.status == status:
                continue
            out.append(ProbeChange(probe.id, probe.project_id, execution.visible, latest.status, status, latest.at))
            status = latest.status
        return out
