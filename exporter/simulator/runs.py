"""The runs of the simulated tests: when each is created, how it ends, and what the API shows of it.

Scheduled runs start on a fixed cadence per test (`period`, `phase`, `history_runs` of them before the
simulation starts); runs started through the API (Run Test, `writes`) are kept in the world's
`manual_runs`. A run is PENDING for 1.5 s, QUEUED until 4 s, RUNNING for its test's `durationSeconds`
times a drawn factor (now and then an overrun on top), STOPPING for `run_result_delay`, then shows its
final status; one that cannot run says so 3 s after its creation. Everything is a pure function of
(seed, test, run id, time) and of what tests planned (`Triggers`, `forced_run_outcome`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config import WorldConfig
from .draws import unit
from .entities import SimTest
from .triggers import Triggers


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ends: its final status, when its calls ended (`completedAt`), and when that shows."""

    status: str
    started: float | None
    ended: float
    visible: float
    running: float
    """Seconds it is RUNNING."""


class Account(Protocol):
    """What the runs are worked out from: the world (`simulator.world.World`), read afresh on every call
    because tests change it (a deleted test, a run started, the clock offset moved)."""

    @property
    def config(self) -> WorldConfig: ...
    @property
    def start(self) -> float: ...
    @property
    def tests(self) -> Mapping[str, SimTest]: ...
    @property
    def manual_runs(self) -> Mapping[str, Sequence[float]]: ...
    @property
    def forced_run_outcome(self) -> Mapping[str, str]: ...
    @property
    def triggers(self) -> Triggers: ...
    def stamp(self, ts: float | None) -> str | None: ...


ProjectRuns = list[tuple[float, str, SimTest]]


class RunTimeline:
    """The runs of the account's tests, listed, looked up and shown at a moment."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self._project_runs: dict[str, tuple[tuple[Any, ...], tuple[SimTest, ...], ProjectRuns]] = {}
        """Per project: the last `of_project` answer and what it was computed from (see there)."""

    # -- when runs are created -----------------------------------------------------------------

    def _first_start(self, test: SimTest) -> float:
        return self.account.start + test.phase - self.account.config.history_runs * test.period

    def _scheduled_starts(self, test: SimTest, now: float) -> list[float]:
        first = self._first_start(test)
        return [first + k * test.period for k in range(self._scheduled_count(test, now))]

    def _scheduled_count(self, test: SimTest, now: float) -> int:
        first = self._first_start(test)
        if now < first:
            return 0
        return math.floor((now - first) / test.period) + 1

    def starts(self, test: SimTest, now: float) -> list[tuple[str, float]]:
        """(run id, creation time) of every run of the test created by `now`, oldest first."""
        starts = [(f"run_{test.id[:8]}_{k:05d}", t) for k, t in enumerate(self._scheduled_starts(test, now))]
        starts += [(f"run_{test.id[:8]}_m{k:04d}", t)
                   for k, t in enumerate(self.account.manual_runs.get(test.id, [])) if t <= now]
        return sorted(starts, key=lambda item: item[1])

    def of_project(self, project_id: str, now: float) -> ProjectRuns:
        """(creation time, run id, test) of every run in the project by `now`, oldest first.

        Views are built by the caller only for the page it serves, so large histories stay cheap. The
        list changes only when a run is created, so it is kept per project together with everything it
        was computed from (each test, its cadence and how many runs it has by `now`), and rebuilt when
        any of that differs; callers get a copy they may reorder."""
        account = self.account
        tests = [test for test in account.tests.values() if test.project_id == project_id]
        key = (account.start, account.config.history_runs,
               *((id(test), test.id, test.period, test.phase, self._scheduled_count(test, now),
                  tuple(t for t in account.manual_runs.get(test.id, ()) if t <= now)) for test in tests))
        cached = self._project_runs.get(project_id)
        if cached is None or cached[0] != key:
            runs = [(created, run_id, test) for test in tests for run_id, created in self.starts(test, now)]
            runs.sort(key=lambda r: (r[0], r[1]))
            # The tests are held with the answer so that no id() in the key can be reused meanwhile.
            cached = self._project_runs[project_id] = (key, tuple(tests), runs)
        return list(cached[2])

    def find(self, project_id: str, run_id: str, now: float) -> dict[str, Any] | None:
        """The detail view of the project's run with this id, if it exists by `now`."""
        for test in self.account.tests.values():
            if test.project_id != project_id:
                continue
            prefix = f"run_{test.id[:8]}_"
            if run_id.startswith(prefix):
                created = self._created(test, run_id[len(prefix):], now)
                if created is not None:
                    return self.view(test, run_id, created, now, detail=True)
        return None

    def _created(self, test: SimTest, suffix: str, now: float) -> float | None:
        """Creation time of the test's run whose id ends in `suffix`, if `starts` lists it by `now`.

        Worked out from the number in the id rather than by listing every run of the test."""
        manual = suffix.startswith("m")
        try:
            k = int(suffix[1:] if manual else suffix)
        except ValueError:
            return None
        if k < 0 or suffix != (f"m{k:04d}" if manual else f"{k:05d}"):
            return None
        if manual:
            times = self.account.manual_runs.get(test.id, [])
            return times[k] if k < len(times) and times[k] <= now else None
        if k >= self._scheduled_count(test, now):
            return None
        return self._first_start(test) + k * test.period

    # -- how runs end, and the ground truth ----------------------------------------------------

    def result(self, test: SimTest, run_id: str, created: float) -> RunResult:
        """How the run ends (whatever the time): RUNNING 4 s after its creation for its test's duration
        times a drawn factor (now and then an overrun on top), then STOPPING for `run_result_delay`.
        A run that cannot run says so 3 s after its creation."""
        config, seed = self.account.config, self.account.config.seed
        draw = unit(seed, run_id, "outcome")
        triggered = self.account.triggers.of_run(test.id, run_id, test.duration)
        outcome = self.account.forced_run_outcome.get(run_id) or (triggered.outcome if triggered else None) or (
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

    def finished(self, until: float) -> list[tuple[SimTest, str, RunResult]]:
        """(test, run id, how it ended) of every run whose final result is visible by `until`."""
        out = []
        for test in self.account.tests.values():
            for run_id, created in self.starts(test, until):
                result = self.result(test, run_id, created)
                if result.visible <= until:
                    out.append((test, run_id, result))
        return out

    # -- what the API shows --------------------------------------------------------------------

    def view(self, test: SimTest, run_id: str, created: float, now: float, *, detail: bool) -> dict[str, Any]:
        """The run as the API lists it at `now` (with its `summary` when `detail`)."""
        result = self.result(test, run_id, created)
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
        stamp = self.account.stamp
        view: dict[str, Any] = {"id": run_id, "testId": test.id, "status": status, "createdAt": stamp(created),
                                "startedAt": stamp(started), "completedAt": stamp(completed)}
        if detail:
            view["summary"] = summary(self.account.config.seed, test, run_id, status, age, result.running)
            triggered = self.account.triggers.of_run(test.id, run_id, test.duration)
            if triggered is not None and status in ("RUNNING", "COMPLETED", "FAILED"):
                view["summary"].update(triggered.summary)
        return view


def summary(seed: int, test: SimTest, run_id: str, status: str, age: float, duration: float) -> dict[str, Any]:
    """A run's `summary` in the given status: endpoint counts, then (once it runs) drawn call quality."""

    def u(name: str) -> float:
        return unit(seed, run_id, name)

    total = test.endpoints
    failed = int(total * 0.02 * u("regfail"))
    registered = total - failed
    out: dict[str, Any] = {"totalEndpoints": total, "registeredCount": 0, "registrationFailedCount": 0,
                           "inCallCount": 0, "completedCount": 0}
    if status in ("PENDING", "QUEUED", "CANNOT_RUN_FOR_NOW"):
        return out
    out["registeredCount"] = registered
    out["registrationFailedCount"] = failed
    if status in ("RUNNING", "STOPPING"):
        done = min(1.0, max(0.0, (age - 4) / duration))
        out["completedCount"] = int(registered * done)
        out["inCallCount"] = registered - out["completedCount"]
    else:
        out["completedCount"] = registered if status == "COMPLETED" else int(registered * 0.6)
    # A degraded run now and then keeps the quality alerts honest.
    bad = u("bad") < 0.1
    out.update({
        "avgMos": round((3.0 if bad else 3.9) + 0.5 * u("mos"), 2),
        "avgJitterMs": round((25 if bad else 3) + 12 * u("jit"), 1),
        "avgPacketLossFraction": round((1.5 if bad else 0.02) + 0.4 * u("loss"), 2),
        "avgRttMs": None if test.null_rtt else round(20 + 100 * u("rtt"), 1),
        "asr": round((88 if bad else 97) + 3 * u("asr"), 1),
        "ner": round((93 if bad else 99) + 1 * u("ner"), 1),
    })
    return out
