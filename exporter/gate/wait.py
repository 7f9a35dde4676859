"""Waiting well: sleep until the run should have ended, then look with backoff; say what changes.

A triggered run is PENDING, then QUEUED, then RUNNING for its test's `durationSeconds`. The gate looks
once early when the run is long (a run that cannot start ends within seconds, CANNOT_RUN_FOR_NOW),
then at the moment the run should have ended, then every 5, 10, 20, 40 and 60 seconds. Every look is
one GET booked on the gate's own limiter, and a 429 pauses it until Retry-After has passed (`patient`).
A look the budget cannot pay for at its moment goes at the first free slot; when the next look would
come too late for the deadline, one more goes just before it if the budget has a slot (`Looks`), so a
run that ended late is judged rather than timed out.
Expected ends come from the API's own timestamps; the local clock only measures how far away they are,
and is never trusted beyond the test's duration (a skewed clock cannot stretch the wait).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

from ..api import errors
from ..api.budget import RateLimiter
from ..api.models import Probe, ProbeExecution, TestRun
from .api import GateClient

T = TypeVar("T")

QUEUE_ALLOWANCE = 5.0
"""Seconds of PENDING and QUEUED assumed until the API gives a startedAt."""
SETTLE = 2.0
"""Seconds after the expected end before the first look: the API's timestamps are whole seconds."""
LONG_RUN = 60.0
EARLY_LOOK = 15.0
BACKOFF = (5.0, 10.0, 20.0, 40.0, 60.0)
PROBE_BACKOFF = (10.0, 10.0, 20.0, 30.0, 60.0)
LAST_LOOK = 3.0
"""Seconds before the deadline of the last look, when the next planned one would come after it: time
for the answer to arrive before the deadline ends the gate."""


class Progress:
    """Progress lines on stderr (None: --quiet): what changed, the time taken, the expected end."""

    def __init__(self, stream: TextIO | None, clock: Callable[[], float]) -> None:
        self._stream = stream
        self._clock = clock
        self._start = clock()

    def elapsed(self) -> float:
        return self._clock() - self._start

    def say(self, text: str) -> None:
        if self._stream is None:
            return
        seconds = int(self.elapsed())
        self._stream.write(f"callmeter gate [{seconds // 60:d}:{seconds % 60:02d}] {text}\n")
        self._stream.flush()


class GateObserver:
    """The client's `RequestObserver`: counts the gate's requests, reports 429s and a first failure
    to connect as progress, and remembers whether the API could be reached at the last attempt."""

    def __init__(self, progress: Progress, host: str = "") -> None:
        self.progress = progress
        self.host = host
        self.requests = 0
        self.unreachable: str | None = None
        """The route of the last attempt when it could not connect; None once an answer arrives."""

    def request(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests += 1
        if code != "error":
            self.unreachable = None

    def error(self, endpoint: str, kind: str) -> None:
        if kind != errors.ApiConnectionError.kind:
            return
        if self.unreachable is None:
            self.progress.say(f"cannot reach {self.host} ({endpoint}): trying again for a few seconds")
        self.unreachable = endpoint

    def rate_limited(self) -> None:
        self.progress.say("rate limited (429): waiting as Retry-After says, then trying again")

    def rate_limit_remaining(self, remaining: float) -> None: ...


@dataclass
class Watch:
    """What the gate has seen so far: the report reads it when the time runs out."""

    phase: str = "finding the target"
    run: TestRun | None = None
    probe: Probe | None = None


@dataclass
class Looks:
    """When the next look goes out, on the limiter's clock: at the planned moment, or at the limiter's
    first free slot after it; and when that is too late for the deadline, once (and only once) more,
    `LAST_LOOK` seconds before the deadline or at the first free slot after that. When the budget has
    no slot before the deadline, nothing more goes out and the deadline ends the gate."""

    limiter: RateLimiter
    deadline: Callable[[], float | None]
    """The gate's deadline on the same clock (None: none)."""
    last_taken: bool = False

    def when(self, delay: float) -> float:
        now = self.limiter.now()
        free = self.limiter.next_free()
        at = max(now + delay, free)
        end = self.deadline()
        if end is None or at <= end - LAST_LOOK:
            return at
        if self.last_taken or free >= end:
            return end + LAST_LOOK  # past the deadline: the gate ends first
        self.last_taken = True
        return max(free, end - LAST_LOOK, now)

    async def wait(self, delay: float) -> None:
        """Sleep until the next look `delay` seconds from now may go out (see the class)."""
        await asyncio.sleep(max(0.0, self.when(delay) - self.limiter.now()))


async def patient(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, again after each 429: the client's limiter already holds the next try until Retry-After
    has passed. Only the gate's deadline ends this; any other error goes to the caller."""
    while True:
        try:
            return await call()
        except errors.RateLimited:
            continue


@dataclass
class Pacer:
    """When to look next at a run whose test lasts `duration` seconds."""

    duration: float
    early: bool
    late_looks: int = 0

    def remaining(self, run: TestRun, now: float) -> float:
        """Seconds until the run should have ended, by the API's timestamps (0 when already due)."""
        if run.started_at is not None:
            end = run.started_at + self.duration
        elif run.created_at is not None:
            end = run.created_at + QUEUE_ALLOWANCE + self.duration
        else:
            return 0.0
        return min(max(end + SETTLE - now, 0.0), self.duration + QUEUE_ALLOWANCE + SETTLE)

    def delay(self, run: TestRun, now: float) -> float:
        remaining = self.remaining(run, now)
        if remaining > 0:
            self.late_looks = 0
            if self.early and remaining > LONG_RUN:
                self.early = False
                return EARLY_LOOK
            self.early = False
            return remaining
        delay = BACKOFF[min(self.late_looks, len(BACKOFF) - 1)]
        self.late_looks += 1
        return delay


async def wait_for_run(client: GateClient, project_id: str, run: TestRun, *, duration: float, looks: Looks,
                       wall: Callable[[], float], progress: Progress, watch: Watch) -> TestRun:
    """The run once it is terminal (COMPLETED, FAILED or CANNOT_RUN_FOR_NOW)."""
    pacer = Pacer(duration, early=run.started_at is None)
    watch.run = run
    _announce(run, None, pacer, wall(), progress)
    run_id = run.id
    while not run.terminal:
        await looks.wait(pacer.delay(run, wall()))
        current = await patient(lambda: client.read_run(project_id, run_id))
        _announce(current, run.status, pacer, wall(), progress)
        run = watch.run = current
    return run


def _announce(run: TestRun, before: str | None, pacer: Pacer, now: float, progress: Progress) -> None:
    if run.status == before:
        return
    status = run.status or "no status"
    if run.terminal:
        progress.say(f"run {run.id}: {status}")
        return
    remaining = pacer.remaining(run, now)
    end = f"expected to end in {remaining:.0f}s" if remaining > 0 else "past its expected end"
    progress.say(f"run {run.id}: {status}, {end}")


def executed_since(probe: Probe, before: float | None, execution: ProbeExecution) -> bool:
    """Whether `lastExecutionAt` has moved past the trigger."""
    last = probe.last_execution_at
    if last is None or (before is not None and last <= before):
        return False
    return execution.created_at is None or last >= execution.created_at


async def wait_for_probe(client: GateClient, project_id: str, probe: Probe, execution: ProbeExecution, *,
                         looks: Looks, progress: Progress, watch: Watch) -> Probe:
    """The probe once an execution after the trigger shows in its `lastExecutionAt`."""
    before = probe.last_execution_at
    watch.probe = probe
    seen = 0
    while True:
        await looks.wait(PROBE_BACKOFF[min(seen, len(PROBE_BACKOFF) - 1)])
        seen += 1
        current = watch.probe = await patient(lambda: client.read_probe(project_id, probe.id))
        if executed_since(current, before, execution):
            progress.say(f"probe {probe.name or probe.id}: executed, {current.status or 'no status'}")
            return current
