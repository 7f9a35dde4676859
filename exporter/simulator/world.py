"""The simulated CallMeter account: projects, probes, tests, runs and registrars that evolve with time.

Everything is a pure function of (seed, clock): runs start on a fixed cadence per test and move
PENDING -> QUEUED -> RUNNING (for about their test's `durationSeconds`, now and then much longer)
-> STOPPING (while the result is being put together, if `run_result_delay`) -> COMPLETED / FAILED /
CANNOT_RUN_FOR_NOW; probes execute on their interval and now and then off it, find a health that
turns now and then, and show each result a few seconds after the execution (the arithmetic is in
`executions` for the probes and in `runs` for the runs).
Tests flip a probe's status, stall a probe, delete resources, or add runs through the methods here;
the ground truth (when a probe's listed status changed, when a run's final result appeared) is
read through `probe_changes` and `run_result`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .config import WorldConfig
from .draws import iso, unit
from .entities import SimProbe, SimProject, SimRegistrar, SimTest
from .executions import Execution, ProbeChange, ProbeTimeline
from .runs import RunResult, RunTimeline
from .triggers import Triggers

__all__ = ["World"]

_NS = uuid.UUID("6f1c3b8e-2f0a-4d7e-9a51-5c0e2b7d9a10")


@dataclass
class World:
    """The account: its projects, probes, tests and registrars, the probe timeline and the runs of its
    tests (worked out in `executions` and `runs`), and what tests changed."""

    config: WorldConfig
    start: float
    projects: dict[str, SimProject] = field(default_factory=dict)
    probes: dict[str, SimProbe] = field(default_factory=dict)
    tests: dict[str, SimTest] = field(default_factory=dict)
    registrars: dict[str, SimRegistrar] = field(default_factory=dict)
    manual_runs: dict[str, list[float]] = field(default_factory=dict)
    forced_run_outcome: dict[str, str] = field(default_factory=dict)
    clock_offset: float = 0.0
    """Seconds CallMeter's clock is ahead of ours (`WorldConfig.clock_offset`; tests may move it)."""
    change_listeners: list[Callable[[ProbeChange], None]] = field(default_factory=list)
    """Called with each probe status change `emit_probe_changes` finds, and with each forced one."""
    _changes_until: float | None = field(default=None, repr=False, compare=False)
    triggers: Triggers = field(default_factory=Triggers)
    """What runs and probe executions started through the API do (simulator.writes)."""

    @classmethod
    def build(cls, config: WorldConfig, start: float) -> World:
        world = cls(config=config, start=start, clock_offset=config.clock_offset)
        slugs = ["production", "staging", "lab", "emea", "apac"]
        seed = config.seed
        intervals = config.probe_intervals or (config.probe_interval_minutes,)
        for p in range(config.projects):
            slug = slugs[p] if p < len(slugs) else f"project-{p + 1}"
            pid = str(uuid.uuid5(_NS, f"{seed}-project-{p}"))
            world.projects[pid] = SimProject(pid, slug, slug.replace("-", " ").title())
            for i in range(config.probes_per_project):
                probe_id = "probe_" + uuid.uuid5(_NS, f"{seed}-{p}-probe-{i}").hex[:12]
                minutes = intervals[len(world.probes) % len(intervals)]
                delay = config.probe_result_delay + config.probe_result_spread * (2 * unit(seed, probe_id, "lag") - 1)
                world.probes[probe_id] = SimProbe(
                    probe_id, pid, f"{slug.title()} SBC check {i + 1}", minutes,
                    phase=unit(seed, probe_id, "phase") * minutes * 60, result_delay=max(0.0, delay))
            for i in range(world.tests_in(p)):
                test_id = uuid.uuid5(_NS, f"{seed}-{p}-test-{i}").hex[:16]
                spread = config.test_duration_spread * (2 * unit(seed, test_id, "duration") - 1)
                world.tests[test_id] = SimTest(
                    test_id, pid, f"{slug.title()} call quality {i + 1}",
                    endpoints=config.endpoints_per_run + 10 * i,
                    period=config.run_period * (0.8 + 0.4 * unit(seed, test_id, "period")),
                    phase=unit(seed, test_id, "phase") * config.run_period,
                    null_rtt=(i == 3), duration=config.run_duration * (1 + spread))
            for i in range(config.registrars_per_project):
                reg_id = "reg_" + uuid.uuid5(_NS, f"{seed}-{p}-reg-{i}").hex[:12]
                world.registrars[reg_id] = SimRegistrar(
                    reg_id, pid, f"{slug.title()} {'SBC' if i == 0 else 'PBX'} {i + 1}",
                    f"sip:{'sbc' if i == 0 else 'pbx'}{i + 1}.{slug}.example.com", ["UDP", "TCP", "TLS"][i % 3])
        return world

    def tests_in(self, project: int) -> int:
        """Tests of the project'th project: `tests_per_project`, or its entry when it is one per project."""
        count = self.config.tests_per_project
        if isinstance(count, int):
            return count
        return count[project] if project < len(count) else 0

    def stamp(self, ts: float | None) -> str | None:
        """A moment as the API writes it: by CallMeter's clock, to the second."""
        return None if ts is None else iso(ts + self.clock_offset)

    # -- probes --------------------------------------------------------------------------------

    @cached_property
    def timeline(self) -> ProbeTimeline:
        return ProbeTimeline(self.config, self.start, extra=self._asked_executions)

    def _asked_executions(self, probe: SimProbe) -> list[Execution]:
        """Executions asked for through the API's Run Probe (simulator.writes): each shows once it has
        run, with the status planned for it or else the health it finds."""
        planned = self.triggers.probe_status.get(probe.id)
        return [Execution(done, done, planned or self.timeline.status_at(probe, done), False)
                for done in self.triggers.probe_runs.get(probe.id, ())]

    def probe_view(self, probe: SimProbe, now: float) -> dict[str, Any]:
        interval = probe.interval_minutes * 60
        shown = self.timeline.latest_visible(probe, now)
        last = shown.at if shown is not None else None
        status = probe.forced_status or (shown.status if shown is not None else self.timeline.status_at(probe, now))
        return {
            "id": probe.id,
            "name": probe.name,
            "status": status,
            "intervalMinutes": probe.interval_minutes,
            "lastExecutionAt": self.stamp(last) if last is not None and last >= self.start - 30 * interval else None,
            "nextExecutionAt": self.stamp(self.timeline.next_scheduled(probe, now)),
        }

    # -- probe ground truth and change hooks ---------------------------------------------------

    def probe_changes(self, probe: SimProbe | str, since: float, until: float) -> list[ProbeChange]:
        """Every change of the probe's listed status in (since, until]: when it became visible, and
        to what (`ProbeChange.at`, `.status`). A forced status is not part of it."""
        sim_probe = self.probes[probe] if isinstance(probe, str) else probe
        return self.timeline.changes(sim_probe, since, until)

    def probe_executions(self, probe: SimProbe | str, since: float, until: float) -> list[Execution]:
        """Every execution of the probe whose result became visible in (since, until]."""
        sim_probe = self.probes[probe] if isinstance(probe, str) else probe
        return self.timeline.executions_between(sim_probe, since, until)

    def emit_probe_changes(self, until: float) -> list[ProbeChange]:
        """Hand the probe status changes since the previous call (the first call only starts the
        clock) to every `change_listeners` callback, in the order they became visible; forced probes
        are skipped (their change went out when it was forced)."""
        since, self._changes_until = self._changes_until, until
        if since is None or until <= since:
            return []
        changes = sorted((change for probe in self.probes.values() if probe.forced_status is None
                          for change in self.timeline.changes(probe, since, until)), key=lambda c: c.at)
        for change in changes:
            for listener in self.change_listeners:
                listener(change)
        return changes

    def force_probe_status(self, probe_id: str, status: str | None, now: float) -> None:
        """Force the probe's listed status (None: back to its executions), telling the listeners at once."""
        probe = self.probes[probe_id]
        before = self.probe_view(probe, now)["status"]
        probe.forced_status = status
        after = self.probe_view(probe, now)["status"]
        if after != before:
            shown = self.timeline.latest_visible(probe, now)
            change = ProbeChange(probe.id, probe.project_id, now, after, before, shown.at if shown else now)
            for listener in self.change_listeners:
                listener(change)

    def stall_probe(self, probe_id: str, at: float | None) -> None:
        """The probe stops executing from `at` (None: it runs again), so its `nextExecutionAt` falls behind."""
        self.probes[probe_id].stalled_since = at

    # -- test runs (simulator.runs) ------------------------------------------------------------

    @cached_property
    def runs(self) -> RunTimeline:
        return RunTimeline(self)

    def run_view(self, test: SimTest, run_id: str, created: float, now: float, *, detail: bool) -> dict[str, Any]:
        return self.runs.view(test, run_id, created, now, detail=detail)

    def runs_of_project(self, project_id: str, now: float) -> list[tuple[float, str, SimTest]]:
        """(creation time, run id, test) of every run in the project by `now`, oldest first (a copy)."""
        return self.runs.of_project(project_id, now)

    def find_run(self, project_id: str, run_id: str, now: float) -> dict[str, Any] | None:
        return self.runs.find(project_id, run_id, now)

    def start_run(self, test_id: str, now: float) -> str:
        runs = self.manual_runs.setdefault(test_id, [])
        runs.append(now)
        return f"run_{test_id[:8]}_m{len(runs) - 1:04d}"

    def test_duration(self, test: SimTest) -> int:
        """The test's `durationSeconds`: what a triggered run of it lasts once RUNNING."""
        return self.triggers.duration(test.id, test.duration)

    def run_result(self, test: SimTest, run_id: str, created: float) -> RunResult:
        """How the run ends, whatever the time (the ground truth)."""
        return self.runs.result(test, run_id, created)

    def finished_runs(self, until: float) -> list[tuple[SimTest, str, RunResult]]:
        """(test, run id, how it ended) of every run whose final result is visible by `until`."""
        return self.runs.finished(until)
