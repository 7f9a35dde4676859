"""The simulated CallMeter account: projects, probes, tests, runs and registrars that evolve with time.

Everything is a pure function of (seed, clock): runs start on a fixed cadence per test and move
PENDING -> QUEUED -> RUNNING -> COMPLETED / FAILED / CANNOT_RUN_FOR_NOW; probes execute on their
interval and change health now and then. Tests flip a probe's status, delete resources, or add
runs through the methods here.
"""

from __future__ import annotations

import functools
import hashlib
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

_NS = uuid.UUID("6f1c3b8e-2f0a-4d7e-9a51-5c0e2b7d9a10")


# Both are pure and called for every run and probe of every page served: the caches make hours of
# simulated traffic cheap (a run's timestamps and draws are asked for again on every listing).
@functools.lru_cache(maxsize=1 << 16)
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=1 << 17)
def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its inputs."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class WorldConfig:
    seed: int = 7
    projects: int = 2
    probes_per_project: int = 3
    tests_per_project: int = 4
    registrars_per_project: int = 2
    probe_interval_minutes: float = 1.0
    run_period: float = 120.0
    """Seconds between two runs of one test (each test gets a different phase and a jitter of +-20%)."""
    run_duration: float = 30.0
    history_runs: int = 5
    """Runs of each test that already exist when the simulation starts."""
    endpoints_per_run: int = 50


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


@dataclass
class SimTest:
    id: str
    project_id: str
    name: str
    endpoints: int
    period: float
    phase: float
    null_rtt: bool = False


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
    triggers: Triggers = field(default_factory=lambda: Triggers())
    """What runs and probe executions started through the API do (simulator.writes)."""
    _project_runs: dict[str, tuple[tuple[Any, ...], tuple[SimTest, ...], list[tuple[float, str, SimTest]]]] = field(
        default_factory=dict, repr=False, compare=False)
    """Per project: the last `runs_of_project` answer and what it was computed from (see there)."""

    @classmethod
    def build(cls, config: WorldConfig, start: float) -> World:
        world = cls(config=config, start=start)
        slugs = ["production", "staging", "lab", "emea", "apac"]
        seed = config.seed
        for p in range(config.projects):
            slug = slugs[p] if p < len(slugs) else f"project-{p + 1}"
            pid = str(uuid.uuid5(_NS, f"{seed}-project-{p}"))
            world.projects[pid] = SimProject(pid, slug, slug.replace("-", " ").title())
            for i in range(config.probes_per_project):
                probe_id = "probe_" + uuid.uuid5(_NS, f"{seed}-{p}-probe-{i}").hex[:12]
                world.probes[probe_id] = SimProbe(
                    probe_id, pid, f"{slug.title()} SBC check {i + 1}", config.probe_interval_minutes,
                    phase=unit(seed, probe_id, "phase") * config.probe_interval_minutes * 60)
            for i in range(config.tests_per_project):
                test_id = uuid.uuid5(_NS, f"{seed}-{p}-test-{i}").hex[:16]
                world.tests[test_id] = SimTest(
                    test_id, pid, f"{slug.title()} call quality {i + 1}",
                    endpoints=config.endpoints_per_run + 10 * i,
                    period=config.run_period * (0.8 + 0.4 * unit(seed, test_id, "period")),
                    phase=unit(seed, test_id, "phase") * config.run_period,
                    null_rtt=(i == 3))
            for i in range(config.registrars_per_project):
                reg_id = "reg_" + uuid.uuid5(_NS, f"{seed}-{p}-reg-{i}").hex[:12]
                world.registrars[reg_id] = SimRegistrar(
                    reg_id, pid, f"{slug.title()} {'SBC' if i == 0 else 'PBX'} {i + 1}",
                    f"sip:{'sbc' if i == 0 else 'pbx'}{i + 1}.{slug}.example.com", ["UDP", "TCP", "TLS"][i % 3])
        return world

    # -- probes --------------------------------------------------------------------------------

    def probe_view(self, probe: SimProbe, now: float) -> dict[str, Any]:
        interval = probe.interval_minutes * 60
        n = math.floor((now - self.start - probe.phase) / interval)
        last = self.start + probe.phase + n * interval
        status = probe.forced_status or self._probe_status(probe, n)
        scheduled = last
        executed = self.triggers.execution(probe.id, now)
        if executed is not None and executed[0] >= last:
            last, status = executed[0], probe.forced_status or executed[1] or status
        return {
            "id": probe.id,
            "name": probe.name,
            "status": status,
            "intervalMinutes": probe.interval_minutes,
            "lastExecutionAt": iso(last) if last >= self.start - 30 * interval else None,
            "nextExecutionAt": iso(scheduled + interval),
        }

    def _probe_status(self, probe: SimProbe, execution: int) -> str:
        # Health holds for a few executions at a time, so changes are "now and then".
        epoch = execution // 4
        draw = unit(self.config.seed, probe.id, epoch)
        if draw < 0.72:
            return "HEALTHY"
        if draw < 0.88:
            return "DEGRADED"
        if draw < 0.96:
            return "UNHEALTHY"
        return "UNKNOWN"

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
        seed = self.config.seed
        age = now - created
        duration = self.config.run_duration * (0.8 + 0.4 * unit(seed, run_id, "dur"))
        draw = unit(seed, run_id, "outcome")
        triggered = self.triggers.of_run(test.id, run_id, self.config.run_duration)
        if triggered is not None:
            duration = triggered.duration
        outcome = self.forced_run_outcome.get(run_id) or (triggered.outcome if triggered else None) or (
            "CANNOT_RUN_FOR_NOW" if draw < 0.03 else "FAILED" if draw < 0.12 else "COMPLETED")
        started: float | None = created + 4
        completed: float | None = None
        if outcome == "CANNOT_RUN_FOR_NOW" and age >= 3:
            status, started, completed = outcome, None, created + 3
        elif age < 1.5:
            status, started = "PENDING", None
        elif age < 4:
            status, started = "QUEUED", None
        elif age < 4 + duration:
            status = "RUNNING"
        else:
            status, completed = outcome, created + 4 + duration
        view: dict[str, Any] = {"id": run_id, "testId": test.id, "status": status, "createdAt": iso(created),
                                "startedAt": iso(started), "completedAt": iso(completed)}
        if detail:
            view["summary"] = self._summary(test, run_id, status, age, duration)
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
        if status == "RUNNING":
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

    def test_duration(self, test: SimTest) -> int:
        """The test's `durationSeconds`: what a triggered run of it lasts once RUNNING."""
        return self.triggers.duration(test.id, self.config.run_duration)


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
