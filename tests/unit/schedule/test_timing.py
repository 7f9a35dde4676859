"""The adaptive schedule's policy, driven directly: probe lists and runs as CallMeter would show them at
the moments the policy asks for, no event loop, no client."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from exporter.api.models import Probe
from exporter.schedule.choice import choose_reads
from exporter.schedule.timing import (
    COVER,
    DEFAULT_PROBE_DELAY,
    RETRY_FIRST,
    RUN_NUDGE,
    RUN_QUANTILE,
    Learned,
    ProbeTimes,
    RunTimes,
    cover,
)

T0 = 1_800_000_000.0
INTERVAL = 60.0


def stamp(at: float | None) -> str | None:
    """As CallMeter writes a moment: whole seconds, UTC."""
    return None if at is None else datetime.fromtimestamp(math.floor(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SimProbe:
    """One probe executing every `interval` from `phase`, its result showing `delay` seconds later, on a
    CallMeter clock `offset` seconds ahead of ours."""

    id: str
    phase: float
    delay: float
    interval: float = INTERVAL
    offset: float = 0.0
    extra: tuple[float, ...] = ()
    """Executions off the schedule (Run Probe)."""

    def executions(self, until: float) -> list[float]:
        n = math.floor((until - self.phase) / self.interval)
        return sorted([self.phase + k * self.interval for k in range(n + 1)] + [e for e in self.extra if e <= until])

    def view(self, now: float, *, next_missing: bool = False) -> Probe:
        shown = [e for e in self.executions(now) if e + self.delay <= now]
        last = shown[-1] if shown else None
        upcoming = self.phase + (math.floor((now - self.phase) / self.interval) + 1) * self.interval
        return Probe.model_validate({
            "id": self.id, "status": "HEALTHY", "intervalMinutes": self.interval / 60,
            "lastExecutionAt": stamp(None if last is None else last + self.offset),
            "nextExecutionAt": None if next_missing else stamp(upcoming + self.offset)})


def read(times: ProbeTimes, probes: list[SimProbe], at: float, project: str = "p") -> list[float]:
    return times.read(project, [p.view(at) for p in probes], sent=at, seen=at + 0.1).observed


def follow(times: ProbeTimes, probes: list[SimProbe], start: float, end: float) -> list[tuple[float, float]]:
    """Read the project's probe list whenever the policy says, from `start` to `end`; returns (read at,
    the age of the newest result it showed that no read had shown before, or nan)."""
    at, out, newest = start, [], -math.inf
    while at < end:
        read(times, probes, at)
        shown = [e for p in probes for e in p.executions(at) if e + p.delay <= at and e > newest]
        out.append((at, at - max(shown) - min(p.delay for p in probes) if shown else math.nan))
        newest = max([newest, *shown])
        at = max(at + 0.5, times.next_read("p", at + 0.1, fixed_interval=INTERVAL))
    return out


def test_the_result_delay_is_learned_and_then_read_just_after_it() -> None:
    probe = SimProbe("a", phase=T0 + 7.3, delay=4.0)
    times = ProbeTimes(Learned(), max_interval=300)
    reads = follow(times, [probe], T0, T0 + 3600)
    learned = times.learned.probe_delay["a"]
    assert 4.3 <= learned <= 4.3 + 3.0  # 0.3 s of the stamp's whole seconds, then at most 3 s late
    settled = [(at, age) for at, age in reads if at >= T0 + 1800]
    late = [age for _, age in settled if not math.isnan(age)]
    assert late and max(late) <= 3.5
    assert len(settled) <= 31  # one read per execution once learned: no looks that find nothing


def test_a_result_not_there_yet_is_looked_for_again_2_4_8_seconds_later() -> None:
    probe = SimProbe("a", phase=T0 + 30, delay=40.0)  # much later than the default expects
    times = ProbeTimes(Learned(), max_interval=300)
    read(times, [probe], T0)
    due = times.next_read("p", T0 + 1, fixed_interval=INTERVAL)
    assert due == pytest.approx(T0 + 30 + DEFAULT_PROBE_DELAY)
    looks = []
    at = due
    for _ in range(4):
        read(times, [probe], at)
        looks.append(at)
        at = times.next_read("p", at + 0.1, fixed_interval=INTERVAL)
    gaps = [b - a for a, b in zip(looks, [*looks[1:], at], strict=True)]
    assert gaps == pytest.approx([RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST, 8 * RETRY_FIRST])
    read(times, [probe], T0 + 30 + 41)  # there at last: next time, look just after the last miss (at 24 s)
    assert 24 < times.learned.probe_delay["a"] <= 24 + 2.5


def test_executions_close_together_are_read_once() -> None:
    probes = [SimProbe("a", phase=T0 + 10, delay=2), SimProbe("b", phase=T0 + 11.5, delay=2),
              SimProbe("c", phase=T0 + 40, delay=2)]
    times = ProbeTimes(Learned(probe_delay={"a": 3.0, "b": 3.0, "c": 3.0}), max_interval=300)
    read(times, probes, T0)
    moments = times.moments("p", T0, T0 + INTERVAL)
    # a and b in one read, just after b's result (its nextExecutionAt says 11: whole seconds)
    assert moments == [(T0 + 14, 2.0), (T0 + 43, 1.0)]
    assert cover([0.0, COVER, COVER + 0.1]) == [(COVER, 2.0), (COVER + 0.1, 1.0)]


def test_a_probe_without_a_usable_next_execution_puts_its_project_on_the_fixed_clock() -> None:
    probes = [SimProbe("a", phase=T0 + 10, delay=2), SimProbe("b", phase=T0 + 20, delay=2)]
    times = ProbeTimes(Learned(), max_interval=300)
    times.read("p", [probes[0].view(T0), probes[1].view(T0, next_missing=True)], sent=T0, seen=T0)
    assert times.projects["p"].fallback
    assert times.next_read("p", T0 + 1, fixed_interval=INTERVAL) == T0 + INTERVAL
    assert times.reads_per_hour("p", T0, fixed_interval=INTERVAL) == 60
    # A nextExecutionAt long past (a probe that stopped executing) is no schedule either.
    stalled = Probe.model_validate({"id": "a", "intervalMinutes": 1, "lastExecutionAt": stamp(T0 - 3600),
                                    "nextExecutionAt": stamp(T0 - 3000)})
    times.read("q", [stalled], sent=T0, seen=T0)
    assert times.projects["q"].fallback


def test_the_safety_net_reads_a_project_whose_probes_execute_rarely() -> None:
    probe = SimProbe("a", phase=T0 + 10, delay=2, interval=3600)
    times = ProbeTimes(Learned(probe_delay={"a": 3.0}), max_interval=300)
    read(times, [probe], T0 + 20)  # just after its execution: the next is an hour away
    assert times.next_read("p", T0 + 21, fixed_interval=INTERVAL) == pytest.approx(T0 + 20.1 + 300)
    assert times.reads_per_hour("p", T0 + 21, fixed_interval=INTERVAL) == pytest.approx(12, abs=2)


def test_an_off_schedule_execution_is_observed_and_teaches_nothing_about_the_schedule() -> None:
    probe = SimProbe("a", phase=T0 + 10, delay=2, extra=(T0 + 40,))
    times = ProbeTimes(Learned(probe_delay={"a": 3.0}), max_interval=300)
    read(times, [probe], T0 + 13)
    assert read(times, [probe], T0 + 45) == [pytest.approx(5.1)]  # seen 5 s after it ran
    assert times.learned.probe_delay["a"] == 3.0
    assert times.projects["p"].probes["a"].execution == T0 + 70  # still awaiting the scheduled one


@pytest.mark.parametrize("offset", [30.0, -30.0])
def test_a_constant_clock_offset_is_absorbed(offset: float) -> None:
    """CallMeter's clock 30 s ahead of ours shows results 26 s "before" their scheduled execution by its
    timestamps; 30 s behind, 34 s after. Either way the reads come to land just after the results."""
    probes = [SimProbe(name, phase=T0 + 5 + 11 * i, delay=4.0, offset=offset) for i, name in enumerate("abcd")]
    times = ProbeTimes(Learned(), max_interval=300)
    reads = follow(times, probes, T0, T0 + 2 * 3600)
    for name in "abcd":
        assert 4.0 - offset <= times.learned.probe_delay[name] <= 4.0 - offset + 4.0
    late = [age for at, age in reads if at > T0 + 3600 and not math.isnan(age)]
    assert late and max(late) <= 4.0
    low, high = times.offset  # CallMeter's own timestamps bound the offset from the first read on
    assert low <= offset <= high


def test_the_tight_budget_keeps_the_reads_that_save_the_most_waiting() -> None:
    moments = {"a": [(100.0, 1.0), (110.0, 1.0), (400.0, 1.0)], "b": [(100.0, 1.0), (300.0, 1.0)]}
    cost = {"a": 1.0, "b": 1.0}
    last = {"a": 50.0, "b": 50.0}
    everything = choose_reads(moments, cost, 5, last_read=last, period=600, max_gap=400)
    assert everything.kept == everything.wanted == 5 and everything.delay == 0
    choice = choose_reads(moments, cost, 4, last_read=last, period=600, max_gap=400)
    # a's result at 100 waits 10 s for the read at 110: cheaper than any other.
    assert choice.reads == {"a": [110.0, 400.0], "b": [100.0, 300.0]}
    assert choice.delay == pytest.approx(10 / 5)
    tighter = choose_reads(moments, cost, 2, last_read=last, period=600, max_gap=400)
    assert tighter.reads == choice.reads  # dropping more would leave a project unread for longer than max_gap
    for project, reads in tighter.reads.items():
        gaps = [b - a for a, b in zip([last[project], *reads], [*reads, reads[0] + 600], strict=True)]
        assert max(gaps) <= 400


def test_a_running_run_is_read_when_its_progress_says_it_ends() -> None:
    runs = RunTimes(Learned())
    first = runs.watch("p", "r1", "t", started_at=T0, duration=300)
    assert first == T0 + 300  # no window learned yet: at startedAt + durationSeconds
    # At 300 s, 74 of 99 endpoints done (74.5 / 99 on average, whole endpoints): it ends at about 398.6 s.
    again = runs.read("r1", sent=T0 + 300, seen=T0 + 300.1, over=False, progress=(74, 99), started_at=T0)
    assert again is not None and T0 + 398.6 < again <= T0 + 398.6 + 6.5  # with half its rounding margin
    # Early in a long run the count is coarse: it looks again before the earliest end it allows.
    runs.watch("p", "r2", "t", started_at=T0, duration=300)
    coarse = runs.read("r2", sent=T0 + 300, seen=T0 + 300.1, over=False, progress=(10, 40), started_at=T0)
    assert coarse is not None and T0 + 300 < coarse < T0 + 300 + 300 * (40 - 10.5) / 10.5
    assert runs.read("r1", sent=again, seen=again + 0.1, over=True) is None
    assert "r1" not in runs.watches


def test_a_run_that_overruns_its_duration_is_followed_and_widens_the_window_by_a_step() -> None:
    learned = Learned(run_early={"t": 0.0}, run_late={"t": 0.1})
    runs = RunTimes(learned)
    at = runs.watch("p", "r1", "t", started_at=T0, duration=300)
    assert at == T0 + 300
    looks = []
    while at is not None and at < T0 + 300 + 400:  # it runs 400 s over, showing no progress
        looks.append(at)
        at = runs.read("r1", sent=at, seen=at + 0.1, over=False)
    assert looks[:4] == pytest.approx([T0 + 300, T0 + 310, T0 + 320, T0 + 330])  # the window, every 10 s
    gaps = [b - a for a, b in itertools.pairwise(looks)]
    assert gaps == sorted(gaps) and gaps[-1] > 10  # past the window the looks thin out
    assert at is not None
    runs.read("r1", sent=at, seen=at + 0.1, over=True)
    late = learned.run_late["t"] * 300
    assert late == pytest.approx(0.1 * 300 + (1 - RUN_QUANTILE) * RUN_NUDGE)  # 19 s, not the 400 s overrun


def test_the_learned_state_is_plain_data() -> None:
    learned = Learned(probe_delay={"a": 3.0}, run_late={"t": 0.2})
    fields = vars(learned)
    assert all(isinstance(v, dict) and all(isinstance(x, float) for x in v.values()) for v in fields.values())
