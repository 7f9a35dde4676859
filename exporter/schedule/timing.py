"""When CallMeter's data can next change, and so when to read it: the adaptive schedule's policy.

A probe's status changes only when the probe executes, and every probe list item says when that
is (`nextExecutionAt`, `intervalMinutes`). A run ends near `startedAt + durationSeconds`. This module
answers "when should this project's probe list next be read" and "when should this running run's
detail be fetched", and learns, from what each read shows, how long after those moments the data
really appears. It is pure arithmetic with no event loop: every method takes the times it needs
(Unix seconds on the exporter's clock; CallMeter's timestamps are on CallMeter's clock).

The delays it learns are measured from a CallMeter timestamp to the moment on our clock at which
the data was there, so they hold CallMeter's processing time and any constant offset between the
two clocks at once: a CallMeter clock 30 s ahead simply shows as a delay 30 s shorter.

    Learned        what the schedule has learned: plain dicts of floats, what a state file saves
    ProbeTimes     per project: the executions awaited, when to read the probe list next, and the
                   read moments of the next `HORIZON` seconds (what `choose_reads` chooses from)
    RunTimes       when to fetch a running run's detail, and what the end of each test's runs says

`choice.choose_reads` picks among the probe-list read moments when the budget cannot pay for them all.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from ..api.models import Probe

DEFAULT_PROBE_DELAY = 10.0
"""Until a probe has been seen, its result is looked for this long after its scheduled execution
(unless other probes have taught a typical delay, or CallMeter's clock is seen to be off): a SIP
check rarely takes longer."""
PROBE_DELAY_BOUNDS = (-120.0, 300.0)
"""A result that has not shown 5 minutes after its execution is not coming (a stalled probe); a
clock up to 2 minutes ahead is still absorbed."""
SEEN_TOLERANCE = 1.5
"""lastExecutionAt within this of the awaited execution is that execution (timestamps are whole seconds)."""
RETRY_FIRST = 2.0
RETRY_MAX = 60.0
"""After a read that did not show the awaited result yet: look again 2, 4, 8 ... seconds later, at most 60 ..."""
RETRY_MERGE = 8.0
"""... unless the project's probe list is read within this many seconds after that anyway."""
SHRINK_FIRST = 0.5
SHRINK_MAX = 2.0
"""Until a probe's result has once been missing when looked for, each read that finds it already there
moves the next look this much earlier, doubling with each such read in a row ..."""
SHRINK_STEADY = 0.05
"""... and after that, halfway down to `LATE_GAP` after the latest age it was missing at, and at least
by this much (that age fading by `FORGET` a hit)."""
LATE_GAP = 1.5
MISS_LEAD = 2.5
FORGET = 0.005
"""Seconds a hit takes off that latest missing age, so that a delay that shrinks is followed, slowly
(a second an hour for a probe executing every 18 s): a miss costs a second read, which on a small
budget waits for the next free slot, and may cost an execution's read elsewhere."""
TARGETED = 15.0
"""A read sent within this many seconds after a result's read moment was the read meant for it."""
COVER = 3.0
"""Results of one project due within this many seconds of each other are covered by one read."""
HORIZON = 1800.0
"""How far ahead read moments are counted and chosen."""
MIN_PROBE_INTERVAL = 10.0

DEFAULT_RUN_WINDOW = (0.0, 0.05)
"""Until any test's runs have been seen ending: from startedAt + durationSeconds to 5 % of the duration
after it (in fractions of the duration)."""
RUN_STEP = 10.0
"""Within a test's window, a running run's detail is fetched every this many seconds."""
RUN_QUANTILE = 0.05
FIRST_LOOK_QUANTILE = 0.1
RUN_NUDGE = 20.0
"""The window's ends track the 10th and 95th percentile of when a test's runs end: an end past the far
edge moves it out by 0.95 x 20 s, one inside moves it in by 0.05 x 20 s, so one long overrun widens the
window by 19 s, not by the overrun (the first look, likewise, by 0.9 and 0.1 x 20 s). A run that ended
before the first look is read once; one still running then is read a second time, when its progress
says it ends."""
RUN_WATCH_GAP = 300.0
"""Past the window the gaps grow up to this; a run still running beyond it is left to the run lists."""
PROGRESS_RANGE = (0.02, 0.995)
"""A running run's detail whose summary shows this share of its endpoints done says when it will end:
startedAt + (time so far) / share. Outside this range (nothing done yet, or all but done) it says little."""
RUN_TAIL = 4.5
"""Seconds after the end the progress foretells that the run's detail is read (its result takes a moment)."""
RUN_RETRY = 5.0
RUN_ERROR = 12.0
"""A forecast that may be off by more than this (a long run seen early, a run of few endpoints) is checked
once more before the earliest end it allows."""
"""A run still running when its progress said it would be over is looked at again this much later."""
RUN_WINDOW_BOUNDS = (-1.0, 4.0)
"""In fractions of the duration: from a run that ends in no time to one four times as long."""


def _typical(values: Mapping[str, float], default: float) -> float:
    """What a new probe or test starts from: the median of what the others taught (the same clocks)."""
    return statistics.median(values.values()) if values else default


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


@dataclass
class Learned:
    """What the schedule has learned. Plain dicts of floats keyed by probe or test id, so that a
    state file can save and restore it as it is."""

    probe_delay: dict[str, float] = field(default_factory=dict)
    """Probe id -> seconds after its scheduled execution (CallMeter's clock) that its result is read."""
    probe_late: dict[str, float] = field(default_factory=dict)
    """Probe id -> the latest age at which a result looked for was not there yet (fades by `FORGET` a hit);
    absent until the first such miss."""
    probe_streak: dict[str, float] = field(default_factory=dict)
    """Probe id -> reads in a row that found the result already there."""
    run_early: dict[str, float] = field(default_factory=dict)
    """Test id -> when its runs are first looked at, after startedAt + durationSeconds, in fractions of
    durationSeconds ..."""
    run_late: dict[str, float] = field(default_factory=dict)
    """... and by when they have usually ended (overruns show here)."""

    def take(self, saved: Learned) -> None:
        """Take up what a state file kept; what was learned since start stays where the file says nothing."""
        for f in fields(self):
            getattr(self, f.name).update(getattr(saved, f.name))


# -- probes ----------------------------------------------------------------------------------------


@dataclass
class Awaited:
    """One probe as the project's last probe list showed it."""

    interval: float | None
    last_at: float | None
    execution: float | None
    """The scheduled execution (CallMeter's clock) whose result has not been seen yet."""
    misses: int = 0
    """Reads since it was due that did not show it."""
    missed_at: float = -math.inf
    """The age of the latest of them."""
    retry_at: float = 0.0


@dataclass
class ProjectProbes:
    probes: dict[str, Awaited] = field(default_factory=dict)
    read_at: float | None = None
    fallback: bool = False
    """Some probe has no usable nextExecutionAt: the project is read on the fixed clock."""


@dataclass(frozen=True, slots=True)
class ProbeRead:
    """What one probe list read taught."""

    observed: list[float]
    """Per execution that was new: seconds from its lastExecutionAt to the end of this read."""
    hits: int = 0
    misses: int = 0


class ProbeTimes:
    def __init__(self, learned: Learned, *, max_interval: float) -> None:
        self.learned = learned
        self.max_interval = max_interval
        self.projects: dict[str, ProjectProbes] = {}
        self.offset = (-math.inf, math.inf)
        """Bounds on how far CallMeter's clock is ahead of ours, from the timestamps it lists: a
        lastExecutionAt is no later than now on its clock, a nextExecutionAt no earlier."""

    def drop(self, project_id: str) -> None:
        self.projects.pop(project_id, None)

    def delay(self, probe_id: str) -> float:
        value = self.learned.probe_delay.get(probe_id)
        if value is not None:
            return value
        if self.learned.probe_delay:
            return _typical(self.learned.probe_delay, DEFAULT_PROBE_DELAY)
        # A clock seen to be ahead shows results earlier on CallMeter's timestamps; one behind, later.
        low, high = self.offset
        return min(max(DEFAULT_PROBE_DELAY, -high), DEFAULT_PROBE_DELAY - low)

    def _clock(self, probe: Probe, *, sent: float) -> None:
        low, high = self.offset
        if probe.last_execution_at is not None:
            low = max(low, probe.last_execution_at - sent)
        if probe.next_execution_at is not None:
            high = min(high, probe.next_execution_at - sent)
        self.offset = (low, high) if high >= low else (low, math.inf)

    # -- learning ------------------------------------------------------------------------------

    def read(self, project_id: str, probes: Iterable[Probe], *, sent: float, seen: float) -> ProbeRead:
        """Take a probe list read that was sent at `sent` and answered by `seen` (our clock)."""
        state = self.projects.setdefault(project_id, ProjectProbes())
        state.read_at = seen
        observed: list[float] = []
        hits = misses = 0
        known, state.probes, state.fallback = state.probes, {}, False
        probes = list(probes)
        for probe in probes:
            self._clock(probe, sent=sent)
        for probe in probes:
            before = known.get(probe.id)
            last = probe.last_execution_at
            if before is not None and last is not None and (before.last_at is None
                                                            or last > before.last_at + SEEN_TOLERANCE):
                observed.append(max(0.0, seen - last))
            awaited = self._awaited(probe, before, sent=sent, seen=seen)
            if before is not None and before.execution is not None:
                if awaited.execution != before.execution:
                    hits += 1
                elif awaited.misses > before.misses:
                    misses += 1
            state.probes[probe.id] = awaited
            state.fallback = state.fallback or awaited.execution is None
        return ProbeRead(observed, hits, misses)

    def _awaited(self, probe: Probe, before: Awaited | None, *, sent: float, seen: float) -> Awaited:
        interval = probe.interval_minutes * 60 if probe.interval_minutes and probe.interval_minutes > 0 else None
        last, upcoming = probe.last_execution_at, probe.next_execution_at
        state = Awaited(max(interval, MIN_PROBE_INTERVAL) if interval else None, last, None)
        if before is not None and before.execution is not None:
            execution = before.execution
            if last is not None and last >= execution - SEEN_TOLERANCE:
                self._hit(probe.id, before, upper=seen - execution, sent_age=sent - execution)
            elif sent - execution <= PROBE_DELAY_BOUNDS[1]:
                state.execution, state.misses = execution, before.misses
                state.missed_at, state.retry_at = before.missed_at, before.retry_at
                self._not_yet(probe.id, state, age=sent - execution, sent=sent)
                return state
            # else it never showed: the probe is not executing as scheduled
        if upcoming is not None and interval and seen - upcoming <= PROBE_DELAY_BOUNDS[1] and (
                last is None or upcoming > last + SEEN_TOLERANCE):
            state.execution = upcoming
        return state

    def _hit(self, probe_id: str, before: Awaited, *, upper: float, sent_age: float) -> None:
        """The awaited result was there, at most `upper` seconds after its execution."""
        learned = self.learned
        delay = self.delay(probe_id)
        late = learned.probe_late.get(probe_id, -math.inf)
        if before.misses:
            # It showed between the last read that missed it and this one: look then, or at most
            # `MISS_LEAD` after that miss (one more miss narrows it further).
            delay = before.missed_at + min(upper - before.missed_at, MISS_LEAD)
            learned.probe_streak[probe_id] = 0
        elif delay - 0.5 <= sent_age <= delay + TARGETED:  # the read meant for it: try earlier next time
            streak = learned.probe_streak.get(probe_id, 0) + 1
            learned.probe_streak[probe_id] = streak
            if math.isinf(late):  # never missed yet: come down, faster with each hit in a row, and at
                # least to where a result within the default delay would show on CallMeter's clock
                delay = min(delay - min(SHRINK_MAX, SHRINK_FIRST * 2 ** (streak - 1)),
                            DEFAULT_PROBE_DELAY - self.offset[0])
            else:  # halfway down to just after the latest miss, at least a little
                delay -= max(SHRINK_STEADY, (delay - late - LATE_GAP) / 2)
            delay = max(late + LATE_GAP, delay)
            late -= FORGET
        elif upper < delay:  # a read for something else found it there early
            delay, late = upper, min(late, upper - LATE_GAP)
        learned.probe_delay[probe_id] = _clamp(delay, PROBE_DELAY_BOUNDS)
        if math.isfinite(late):
            learned.probe_late[probe_id] = late

    def _not_yet(self, probe_id: str, state: Awaited, *, age: float, sent: float) -> None:
        """A read `age` seconds after the awaited execution did not show its result. Only a read at or
        after its read moment is a miss: a read for another probe, earlier, says little."""
        if age < self.delay(probe_id) - 0.5:
            return
        learned = self.learned
        learned.probe_late[probe_id] = max(learned.probe_late.get(probe_id, -math.inf), age)
        state.misses += 1
        state.missed_at = age
        state.retry_at = sent + min(RETRY_MAX, RETRY_FIRST * 2 ** (state.misses - 1))
        learned.probe_streak[probe_id] = 0

    # -- reading -------------------------------------------------------------------------------

    def moments(self, project_id: str, start: float, end: float) -> list[tuple[float, float]]:
        """(when, executions) of the reads that would show each awaited and scheduled result in
        [start, end), nearby ones covered by one read; empty for a project on the fixed clock."""
        state = self.projects.get(project_id)
        if state is None or state.fallback:
            return []
        due: list[float] = []
        retries: list[float] = []
        for probe_id, probe in state.probes.items():
            if probe.execution is None or probe.interval is None:
                continue
            delay = self.delay(probe_id)
            (retries if probe.misses else due).append(max(start, probe.retry_at if probe.misses
                                                          else probe.execution + delay))
            at = probe.execution + probe.interval + delay
            while at < end:
                if at >= start:
                    due.append(at)
                at += probe.interval
        # A look again after a miss is left out when a read comes soon anyway.
        due += [at for at in retries if not any(at <= other <= at + RETRY_MERGE for other in due)]
        return cover(sorted(due))

    def next_read(self, project_id: str, now: float, *, fixed_interval: float) -> float:
        """When to read the project's probe list next, if the budget pays for every execution."""
        state = self.projects.get(project_id)
        if state is None or state.read_at is None:
            return now
        net = state.read_at + max(self.max_interval, fixed_interval)
        if state.fallback:
            return max(now, min(net, state.read_at + fixed_interval))
        moments = self.moments(project_id, now, now + COVER + 1)
        return max(now, min(net, moments[0][0] if moments else math.inf))

    def reads_per_hour(self, project_id: str, now: float, *, fixed_interval: float) -> float:
        """Reads an hour this project's executions want, the safety net included."""
        state = self.projects.get(project_id)
        net = max(self.max_interval, fixed_interval)
        if state is None or state.fallback:
            return 3600 / fixed_interval
        moments = [t for t, _ in self.moments(project_id, now, now + HORIZON) if t < now + HORIZON]
        if not moments:
            return 3600 / net
        gaps = [b - a for a, b in zip([now, *moments], [*moments, now + HORIZON], strict=True)]
        return (len(moments) + sum(max(0, math.ceil(g / net) - 1) for g in gaps)) * 3600 / HORIZON


def cover(times: Sequence[float]) -> list[tuple[float, float]]:
    """Sorted due times into (read at, results it shows): one read for those within COVER of the first."""
    out: list[tuple[float, float]] = []
    first = -math.inf
    for at in times:
        if out and at - first <= COVER:
            out[-1] = (at, out[-1][1] + 1)
        else:
            out.append((at, 1.0))
            first = at
    return out


# -- runs ------------------------------------------------------------------------------------------


@dataclass
class Watch:
    project_id: str
    test_id: str
    ends: float
    """startedAt + durationSeconds (CallMeter's clock)."""
    duration: float
    running_at: float = -math.inf
    """The age of the latest read that found it still running."""
    first_sent: float | None = None
    reads: int = 0
    active: bool = True
    """False once left to the run lists (still running long after its window)."""


class RunTimes:
    """When to fetch a running run's detail, from its test's duration and how its runs have ended.

    A test's window is learned in fractions of its `durationSeconds` (runs of a longer test overrun by
    more), so that a test not seen ending yet starts from what the others taught."""

    def __init__(self, learned: Learned, *, step: float = RUN_STEP) -> None:
        self.learned = learned
        self.step = step
        self.watches: dict[str, Watch] = {}

    def window(self, test_id: str, duration: float) -> tuple[float, float]:
        """(first look, usual end): seconds after startedAt + durationSeconds."""
        early = self.learned.run_early.get(test_id)
        late = self.learned.run_late.get(test_id)
        if early is None or late is None:
            early = _typical(self.learned.run_early, DEFAULT_RUN_WINDOW[0])
            late = _typical(self.learned.run_late, DEFAULT_RUN_WINDOW[1])
        return early * duration, max(early, late) * duration

    def watch(self, project_id: str, run_id: str, test_id: str, *, started_at: float, duration: float
              ) -> float | None:
        """Watch a running run; returns when to fetch its detail first (None: it was left to the run lists)."""
        watch = self.watches.get(run_id)
        if watch is None:
            watch = self.watches[run_id] = Watch(project_id, test_id, started_at + duration, duration)
        if not watch.active:
            return None
        return watch.ends + self.window(test_id, duration)[0]

    def watching(self, run_id: str) -> bool:
        watch = self.watches.get(run_id)
        return watch is not None and watch.active

    def prune(self, project_id: str, *, keep: set[str]) -> None:
        """Forget the project's watches of runs other than `keep` (still running, or still to be read)."""
        for run_id in [r for r, w in self.watches.items() if w.project_id == project_id and r not in keep]:
            del self.watches[run_id]

    def read(self, run_id: str, *, sent: float, seen: float, over: bool, progress: tuple[int, int] | None = None,
             started_at: float | None = None) -> float | None:
        """A detail read of a watched run: learn from it when it is `over` (a terminal status), else say
        when to look again (None: it is left to the run lists). While the run shows its `progress`
        (endpoints done, of endpoints), it is read just after the end that foretells; without, every `step`
        seconds to the window's end, then half as far again as it is past it."""
        watch = self.watches.get(run_id)
        if watch is None or not watch.active:
            return None
        watch.reads += 1
        if watch.first_sent is None:
            watch.first_sent = sent
        early, late = self.window(watch.test_id, watch.duration)
        if over:
            self._ended(watch, early, late, upper=seen - watch.ends)
            del self.watches[run_id]
            return None
        age = sent - watch.ends
        watch.running_at = max(watch.running_at, age)
        if progress is not None and progress[1] > 0 and progress[0] + 0.5 >= PROGRESS_RANGE[1] * progress[1]:
            return sent + RUN_RETRY  # all but done
        forecast = _foretold(sent, progress, started_at)
        if forecast is not None:
            ends, error = forecast
            if error > RUN_ERROR and ends - error > sent + RUN_RETRY:
                return ends - error  # a coarse forecast: look again before the earliest end it allows
            # Half the forecast's margin later: a look that finds it still running is a request wasted.
            return max(ends + error / 2 + RUN_TAIL, sent + RUN_RETRY)
        if age < late:
            return sent + min(self.step, max(late - age, 1.0))
        gap = max(self.step, (age - late) / 2)
        if gap > RUN_WATCH_GAP:
            watch.active = False
            return None
        return sent + gap

    def _ended(self, watch: Watch, early: float, late: float, *, upper: float) -> None:
        """Move the window's edges toward the 5th and 95th percentile of when the test's runs end."""
        lower = watch.running_at
        assert watch.first_sent is not None
        if math.isinf(lower):
            if watch.first_sent - watch.ends > early + self.step:
                return  # over at a late first look: it may have ended any time before, which says nothing
            early -= (1 - FIRST_LOOK_QUANTILE) * RUN_NUDGE  # over at a timely first look: runs end earlier
            ended = upper
        else:
            early += FIRST_LOOK_QUANTILE * RUN_NUDGE if lower > early else 0.0
            ended = (lower + upper) / 2
        late += (1 - RUN_QUANTILE) * RUN_NUDGE if ended > late else -RUN_QUANTILE * RUN_NUDGE
        early, late = early / watch.duration, max(late, early) / watch.duration
        self.learned.run_early[watch.test_id] = _clamp(early, RUN_WINDOW_BOUNDS)
        self.learned.run_late[watch.test_id] = _clamp(late, RUN_WINDOW_BOUNDS)


def _foretold(now: float, progress: tuple[int, int] | None, started_at: float | None) -> tuple[float, float] | None:
    """When a run that started at `started_at` (CallMeter's clock) and has `progress` (endpoints done, of
    endpoints) by `now` ends, if it goes on as it went; and how far off that may be, the count being
    whole endpoints."""
    if progress is None or started_at is None:
        return None
    done, of = progress
    share = (done + 0.5) / of
    elapsed = now - started_at
    if elapsed <= 0 or not PROGRESS_RANGE[0] <= share <= PROGRESS_RANGE[1]:
        return None
    return now + elapsed * (1 - share) / share, elapsed * 0.5 / of / share**2
