"""The simulated CallMeter account: projects, probes, tests, runs and registrars that evolve with time.

Everything is a pure function of (seed, clock): runs start on a fixed cadence per test and move
PENDING -> QUEUED -> RUNNING (for about their test's `durationSeconds`, now and then much longer)
-> STOPPING (while the result is being put together, if `run_result_delay`) -> COMPLETED / FAILED /
CANNOT_RUN_FOR_NOW; probes execute on their interval and now and then off it, find a health that
turns now and then, and show each result a few seconds after the execution (see `executions`).
Tests flip a probe's status, stall a probe, delete resources, or add runs through the methods here;
the ground truth (when a probe's listed status changed, when a run's final result appeared) is
read through `probe_changes` and `run_result`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from .draws import iso, unit
from .executions import Execution, ProbeChange, ProbeTimeline

__all__ = ["Execution", "ProbeChange", "RunResult", "SimProbe", "SimProject", "SimRegistrar", "SimTest", "World",
           "WorldConfig", "iso", "unit"]

_NS = uuid.UUID("6f1c3b8e-2f0a-4d7e-9a51-5c0e2b7d9a10")


@dataclass(frozen=True, slots=True)
class WorldConfig:
    seed: int = 7
    projects: int = 2
    probes_per_project: int = 3
    tests_per_project: int | tuple[int, ...] = 4
    """Tests in each project, or per project (projects past the tuple's end have none)."""
    registrars_per_project: int = 2
    probe_interval_minutes: float = 1.0
    probe_intervals: tuple[float, ...] = ()
    """Mixed probe intervals in minutes, dealt to the probes in turn (realistic: (1, 5, 15)); empty:
    every probe at `probe_interval_minutes`."""
    probe_status_hold: int = 4
    """Scheduled executions a probe's health holds for before it may turn."""
    probe_result_delay: float = 4.0
    """Seconds from a probe's execution to its result in the probe list, on average over the probes."""
    probe_result_spread: float = 1.5
    """Each probe's result delay is `probe_result_delay` +- this many seconds (drawn per probe)."""
    probe_result_jitter: float = 0.5
    """... plus up to this many seconds, drawn per execution."""
    off_schedule_per_day: float = 2.0
    """Executions of each probe off its schedule a day, on average ("Run Probe", a person in the UI)."""
    run_period: float = 120.0
    """Seconds between two runs of one test (each test gets a different phase and a jitter of +-20%)."""
    run_duration: float = 30.0
    """The tests' `durationSeconds` (see `test_duration_spread`)."""
    test_duration_spread: float = 0.0
    """Each test's `durationSeconds` is `run_duration` +- this share of it (drawn per test)."""
    run_length: tuple[float, float] = (0.8, 1.2)
    """A run is RUNNING for its test's `durationSeconds` times a factor drawn in this range ..."""
    run_overrun_rate: float = 0.02
    """... and, this share of runs, longer still (an overrun) by ..."""
    run_overrun: tuple[float, float] = (1.0, 3.0)
    """... this many times `durationSeconds`, drawn in the range."""
    run_result_delay: float = 0.0
    """Seconds a run is STOPPING after its calls end, before its final status and `completedAt` show."""
    history_runs: int = 5
    """Runs of each test that already exist when the simulation starts."""
    endpoints_per_run: int = 50
    clock_offset: float = 0.0
    """Seconds CallMeter's clock is ahead of ours (behind, if negative): every timestamp the API sends
    is shifted by it; the moments things happen, and requests, are not."""


@dataclass
class SimProject:
    id: str
    slug: str
    name: str


@dataclass
class SimProbe:
    id: str
    project_id: str
    name: str
    interval_minutes: float
    phase: float
    forced_status: str | None = None
    result_delay: float = 0.0
    """Seconds from an execution to its result in the probe list (plus a per-execution jitter)."""
    stalled_since: float | None = None
    """From this moment the probe no longer executes, and its `nextExecutionAt` stays in the past."""


@dataclass
class SimTest:
    id: str
    project_id: str
    name: str
    endpoints: int
    period: float
    phase: float
    null_rtt: bool = False
    duration: float = 30.0
    """The test's `durationSeconds`, unrounded."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ends: its final status, when its calls ended (`completedAt`), and when that shows."""

    status: str
    started: float | None
    ended: float
    visible: float
    running: float
    """Seconds it is RUNNING."""


@dataclass
class SimRegistrar:
    id: str
    project_id: str
    name: str
    uri: str
    transport: str


@dataclass
class World:
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
    triggers: Triggers = field(default_factory=lambda: Triggers())
    """What runs and probe executions started through the API do (simulator.writes)."""
    _project_runs: dict[str, tuple[tuple[Any, ...], tuple[SimTest, ...], list[tuple[float, str, SimTest]]]] = field(
        default_factory=dict, repr=False, compare=False)
    """Per project: the last `runs_of_project` answer and what it was computed from (see there)."""

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


    # -- test runs -----------------------------------------------------------------------------

    def _first_start(self, test: SimTest) -> float:
        return self.start + test.phase - self.config.history_runs * test.period

    def _scheduled_starts(self, test: SimTest, now: float) -> list[float]:
        first = self._first_start(test)
        return [first + k * test.period for k in range(self._scheduled_count(test, now))]

    def _scheduled_count(self, test: SimTest, now: float) -> int:
        first = self._first_start(test)
        if now < first:
            return 0
        return math.floor((now - first) / test.period) + 1

    def run_starts(self, test: SimTest, now: float) -> list[tuple[str, float]]:
        """(run id, creation time) of every run of the test created by `now`, oldest first."""
        starts = [(f"run_{test.id[:8]}_{k:05d}", t) for k, t in enumerate(self._scheduled_starts(test, now))]
        starts += [(f"run_{test.id[:8]}_m{k:04d}", t) for k, t in enumerate(self.manual_runs.get(test.id, []))
                   if t <= now]
        return sorted(starts, key=lambda item: item[1])

    def run_view(self, test: SimTest, run_id: str, created: float, now: float, *, detail: bool) -> dict[str, Any]:
        result = self.run_result(test, run_id, created)
        age = now - created
        started: float | None = result.started
        completed: float | None = None
        if result.status == "CANNOT_RUN_FOR_NOW" and now >= result.visible:
            status, completed = result.status, result.ended
        elif age < 1.5:
            status, started = "PENDING", None
        elif age < 4:
            status, started = "QUEUED", None
        elif now < result.ended:
            status = "RUNNING"
        elif now < result.visible:
            status = "STOPPING"
        else:
            status, completed = result.status, result.ended
        view: dict[str, Any] = {"id": run_id, "testId": test.id, "status": status, "createdAt": self.stamp(created),
                                "startedAt": self.stamp(started), "completedAt": self.stamp(completed)}
        if detail:
            view["summary"] = self._summary(test, run_id, status, age, result.running)
            triggered = self.triggers.of_run(test.id, run_id, test.duration)
            if triggered is not None and status in ("RUNNING", "COMPLETED", "FAILED"):
                view["summary"].update(triggered.summary)
        return view

    def _summary(self, test: SimTest, run_id: str, status: str, age: float, duration: float) -> dict[str, Any]:
        seed, total = self.config.seed, test.endpoints

        def u(name: str) -> float:
            return unit(seed, run_id, name)

        failed = int(total * 0.02 * u("regfail"))
        registered = total - failed
        summary: dict[str, Any] = {"totalEndpoints": total, "registeredCount": 0, "registrationFailedCount": 0,
                                   "inCallCount": 0, "completedCount": 0}
        if status in ("PENDING", "QUEUED", "CANNOT_RUN_FOR_NOW"):
            return summary
        summary["registeredCount"] = registered
        summary["registrationFailedCount"] = failed
        if status in ("RUNNING", "STOPPING"):
            done = min(1.0, max(0.0, (age - 4) / duration))
            summary["completedCount"] = int(registered * done)
            summary["inCallCount"] = registered - summary["completedCount"]
        else:
            summary["completedCount"] = registered if status == "COMPLETED" else int(registered * 0.6)
        # A degraded run now and then keeps the quality alerts honest.
        bad = u("bad") < 0.1
        summary.update({
            "avgMos": round((3.0 if bad else 3.9) + 0.5 * u("mos"), 2),
            "avgJitterMs": round((25 if bad else 3) + 12 * u("jit"), 1),
            "avgPacketLossFraction": round((1.5 if bad else 0.02) + 0.4 * u("loss"), 2),
            "avgRttMs": None if test.null_rtt else round(20 + 100 * u("rtt"), 1),
            "asr": round((88 if bad else 97) + 3 * u("asr"), 1),
            "ner": round((93 if bad else 99) + 1 * u("ner"), 1),
        })
        return summary

    def runs_of_project(self, project_id: str, now: float) -> list[tuple[float, str, SimTest]]:
        """(creation time, run id, test) of every run in the project by `now`, oldest first.

        Views are built by the caller only for the page it serves, so large histories stay cheap. The
        list changes only when a run is created, so it is kept per project together with everything it
        was computed from (each test, its cadence and how many runs it has by `now`), and rebuilt when
        any of that differs; callers get a copy they may reorder."""
        tests = [test for test in self.tests.values() if test.project_id == project_id]
        key = (self.start, self.config.history_runs,
               *((id(test), test.id, test.period, test.phase, self._scheduled_count(test, now),
                  tuple(t for t in self.manual_runs.get(test.id, ()) if t <= now)) for test in tests))
        cached = self._project_runs.get(project_id)
        if cached is None or cached[0] != key:
            runs = [(created, run_id, test) for test in tests for run_id, created in self.run_starts(test, now)]
            runs.sort(key=lambda r: (r[0], r[1]))
            # The tests are held with the answer so that no id() in the key can be reused meanwhile.
            cached = self._project_runs[project_id] = (key, tuple(tests), runs)
        return list(cached[2])

    def find_run(self, project_id: str, run_id: str, now: float) -> dict[str, Any] | None:
        for test in self.tests.values():
            if test.project_id != project_id:
                continue
            prefix = f"run_{test.id[:8]}_"
            if run_id.startswith(prefix):
                created = self._run_created(test, run_id[len(prefix):], now)
                if created is not None:
                    return self.run_view(test, run_id, created, now, detail=True)
        return None

    def _run_created(self, test: SimTest, suffix: str, now: float) -> float | None:
        """Creation time of the test's run whose id ends in `suffix`, if `run_starts` lists it by `now`.

        Worked out from the number in the id rather than by listing every run of the test."""
        manual = suffix.startswith("m")
        try:
            k = int(suffix[1:] if manual else suffix)
        except ValueError:
            return None
        if k < 0 or suffix != (f"m{k:04d}" if manual else f"{k:05d}"):
            return None
        if manual:
            times = self.manual_runs.get(test.id, [])
            return times[k] if k < len(times) and times[k] <= now else None
        if k >= self._scheduled_count(test, now):
            return None
        return self._first_start(test) + k * test.period

    def start_run(self, test_id: str, now: float) -> str:
        runs = self.manual_runs.setdefault(test_id, [])
        runs.append(now)
        return f"run_{test_id[:8]}_m{len(runs) - 1:04d}"

    # -- how runs end, and the ground truth ----------------------------------------------------

    def test_duration(self, test: SimTest) -> int:
        """The test's `durationSeconds`: what a triggered run of it lasts once RUNNING."""
        return self.triggers.duration(test.id, test.duration)

    def run_result(self, test: SimTest, run_id: str, created: float) -> RunResult:
        """How the run ends (whatever the time): RUNNING 4 s after its creation for its test's duration
        times a drawn factor (now and then an overrun on top), then STOPPING for `run_result_delay`.
        A run that cannot run says so 3 s after its creation."""
        config, seed = self.config, self.config.seed
        draw = unit(seed, run_id, "outcome")
        triggered = self.triggers.of_run(test.id, run_id, test.duration)
        outcome = self.forced_run_outcome.get(run_id) or (triggered.outcome if triggered else None) or (
            "CANNOT_RUN_FOR_NOW" if draw < 0.03 else "FAILED" if draw < 0.12 else "COMPLETED")
        low, high = config.run_length
        running = test.duration * (low + (high - low) * unit(seed, run_id, "dur"))
        if triggered is not None:  # a run started through the API lasts its test's durationSeconds
            running = triggered.duration
        elif config.run_overrun_rate and unit(seed, run_id, "overrun") < config.run_overrun_rate:
            low, high = config.run_overrun
            running += test.duration * (low + (high - low) * unit(seed, run_id, "overrun-length"))
        if outcome == "CANNOT_RUN_FOR_NOW":
            return RunResult(outcome, None, created + 3, created + 3, running)
        ended = created + 4 + running
        return RunResult(outcome, created + 4, ended, ended + config.run_result_delay, running)

    def finished_runs(self, until: float) -> list[tuple[SimTest, str, RunResult]]:
        """(test, run id, how it ended) of every run whose final result is visible by `until`."""
        out = []
        for test in self.tests.values():
            for run_id, created in self.run_starts(test, until):
                result = self.run_result(test, run_id, created)
                if result.visible <= until:
                    out.append((test, run_id, result))
        return out

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

# -- the API's two writes (served by simulator.writes) ---------------------------------------


@dataclass(frozen=True, slots=True)
class TestTrigger:
    """How one run started through the API behaves."""

    __test__ = False  # not a pytest test class

    outcome: str | None
    summary: dict[str, Any]
    duration: float


@dataclass
class Triggers:
    """Per test: the terminal status, the summary fields (null included) and the duration of the runs
    it is asked for. Per probe: when its triggered executions run, the status they leave, how long they
    take."""

    outcomes: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    probe_runs: dict[str, list[float]] = field(default_factory=dict)
    probe_status: dict[str, str] = field(default_factory=dict)
    probe_seconds: dict[str, float] = field(default_factory=dict)
    default_probe_seconds: float = 10.0

    def duration(self, test_id: str, default: float) -> int:
        return round(self.durations.get(test_id, default))

    def of_run(self, test_id: str, run_id: str, default_duration: float) -> TestTrigger | None:
        """None for the scheduled runs (they keep their draws); manual runs have an `_m` in their id."""
        if not run_id.startswith(f"run_{test_id[:8]}_m"):
            return None
        return TestTrigger(self.outcomes.get(test_id), dict(self.summaries.get(test_id, {})),
                           self.duration(test_id, default_duration))

    def run_probe(self, probe_id: str, now: float) -> int:
        """Queue an execution of the probe; returns how many it has had."""
        runs = self.probe_runs.setdefault(probe_id, [])
        runs.append(now + self.probe_seconds.get(probe_id, self.default_probe_seconds))
        return len(runs)

    def execution(self, probe_id: str, now: float) -> tuple[float, str | None] | None:
        """(when, status it left) of the probe's latest triggered execution that has run by `now`."""
        done = [t for t in self.probe_runs.get(probe_id, ()) if t <= now]
        return (max(done), self.probe_status.get(probe_id)) if done else None

    def plan_test(self, test_id: str, *, outcome: str | None, summary: dict[str, Any] | None,
                  duration: float | None) -> None:
        _set_or_drop(self.outcomes, test_id, outcome)
        _set_or_drop(self.summaries, test_id, summary)
        _set_or_drop(self.durations, test_id, duration)

    def plan_probe(self, probe_id: str, *, status: str | None, seconds: float | None) -> None:
        _set_or_drop(self.probe_status, probe_id, status)
        if seconds is not None:
            self.probe_seconds[probe_id] = seconds


V = TypeVar("V")


def _set_or_drop(table: dict[str, V], key: str, value: V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
