"""What runs and probe executions started through the API do: the plans tests give the two writes.

The world keeps one `Triggers`; `writes` fills it from the API's Run Test and Run Probe and from the
control routes; the run arithmetic (`runs`) and the world's probe views read it. Plain data: it imports
nothing of the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar


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
