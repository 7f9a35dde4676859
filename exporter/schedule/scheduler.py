"""The scheduler: picks the most important job that is due, waits for the budget, and reschedules.

Each unit of work is a `Job` (read one kind, of one project, of one item). The loop waits for the
next free slot of the budget, and only then picks the most important job that is due, so a probe
refresh never queues behind inventory that was picked early. It knows kinds (their priority, whether
they repeat) and intervals (from the plan, through `interval`), and nothing of what a job reads. A
policy outside it (the adaptive schedule) may set when a job next comes due (`time_job`), which
overrides the interval, and keeps a one-item job for another read. A spare job (`Job.spare`: a read
below the plan) goes last, after a nudged one, and gives its slot up to any other job that comes due
before the slot after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..api.budget import RateLimiter
from ..model.kinds import KINDS

FIRST_READ = 10.0
"""Subtracted from a list's priority until it has been read once."""
DETAILS = KINDS["test_run_details"].priority
AGED = KINDS["test_runs"].priority - 0.5
"""Where a detail wanted for longer than the scheduler's `patience` goes: ahead of the run lists."""
MISSING = KINDS["tests"].priority - FIRST_READ + 0.5
"""With a `patience`: where a detail goes whose test has no quality data yet: missing data, like a list
never read, so after the lists' first reads (the test names come first) and before any refresh."""
OVERDUE = AGED - 0.25
"""With a `patience`: where a list overdue by a whole interval goes, ahead of aged details."""
LOOK = KINDS["test_runs"].priority - 0.25
"""Where a timed look at a running run goes: after aged details, ahead of the run lists, which lose
nothing by going a slot later (their next read sees every run since)."""
EARLY = 100.0
"""The rank of a job brought forward by a nudge until its own due time: below every other due job."""
SPARE_RANK = 200.0
"""The rank of a spare job: below every class, and below a nudged job."""

JobKey = tuple[str, str | None, str | None]


@dataclass(eq=False)
class Job:
    resource: str
    project_id: str | None = None
    item: str | None = None
    """The item of a one-item kind (the run of a run detail)."""
    due: float = 0.0
    running: bool = False
    refreshed: bool = False
    """Has this job succeeded once? Until then its data is missing, not just old."""
    wanted_since: float | None = None
    """When its data became wanted (a finished run's detail): it ages from then (see `patience`)."""
    speculative: bool = False
    """A look nobody waits for yet: a running run's detail, fetched when the run should have ended."""
    missing: bool = False
    """Its data was never fetched (the first quality data of a test)."""
    after: float | None = None
    """Set by a policy while the job runs: when it comes due again, instead of its interval."""
    timed: bool = False
    """Its due time was set by a policy (`time_job`): it matters to the second, not only on average."""
    early_from: float | None = None
    """The due time a nudge brought it forward from (see `Scheduler.nudge`)."""
    nudge_again: bool = False
    """Nudged while it ran: the read under way began too early to count, so bring the next one forward."""
    spare: bool = False
    """A read below the plan: it goes last, and only into a slot no other job wants (`_yields`)."""

    @property
    def key(self) -> JobKey:
        return (self.resource, self.project_id, self.item)

    @property
    def periodic(self) -> bool:
        return KINDS[self.resource].periodic


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait until the event is set or the timeout passes. Unlike `asyncio.wait_for` on Python 3.11,
    a cancellation that races the event is never lost, so stopping the poller cannot hang."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


class Scheduler:
    def __init__(self, *, limiter: RateLimiter, interval: Callable[[str], float], max_concurrency: int = 4,
                 patience: float | None = None, hold: bool = False) -> None:
        self._limiter = limiter
        self._interval = interval
        self._max_concurrency = max_concurrency
        self._patience = patience
        self._hold = hold
        self.jobs: dict[JobKey, Job] = {}
        self._wake = asyncio.Event()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- the job set ---------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        if job.key not in self.jobs:
            self.jobs[job.key] = job
            self._wake.set()

    def remove(self, key: JobKey) -> Job | None:
        return self.jobs.pop(key, None)

    def remove_project(self, project_id: str) -> None:
        for key in [k for k in self.jobs if k[1] == project_id]:
            del self.jobs[key]

    def hurry(self, key: JobKey) -> None:
        """Make a job due now (a deleted project: the project list is read again soon)."""
        job = self.jobs.get(key)
        if job is not None:
            job.due = min(job.due, self.now())

    def time_job(self, key: JobKey, due: float) -> None:
        """A policy says when the job next comes due; a running job takes it when it finishes."""
        job = self.jobs.get(key)
        if job is None:
            return
        job.timed = True
        if job.running:
            job.after = due
        elif job.early_from is not None and job.early_from > self.now():
            job.early_from = due  # nudged: it stays brought forward, and its own due time moves
        elif due != job.due:
            job.due = due
            self._wake.set()
    def nudge(self, key: JobKey) -> bool:
        """Bring a periodic job forward to now without letting it jump the queue: until its own due time
        it ranks below every other due job, so it takes only a slot that nothing on the schedule wants.
        False when there is no such job."""
        job = self.jobs.get(key)
        if job is None or not job.periodic:
            return False
        if job.running:
            job.nudge_again = True
            return True
        now = self.now()
        if job.due > now:
            job.early_from = job.due if job.early_from is None else job.early_from
            job.due = now
            self._wake.set()
        return True

    def pending(self, resource: str) -> bool:
        return any(k[0] == resource for k in self.jobs)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, execute: Callable[[Job], Coroutine[Any, Any, None]]) -> None:
        """Run jobs until cancelled; `execute` must call `finish` when its job is done."""
        running: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(self._max_concurrency)
        try:
            while True:
                job = await self._next_due()
                await self._gate.acquire()
                # Book nothing yet: wait for the budget's next free slot, then choose, so that
                # the most important job due at the moment of sending is the one that goes.
                wait = self._limiter.next_free() - self.now()
                if wait > 0:
                    await asyncio.sleep(wait)
                picked = self._pick()
                if picked is None:  # only a nudged or spare job was due, and the slot is wanted after all
                    self._gate.release()
                    continue
                job = picked
                held = self._held_for(job)
                if held is not None:
                    # A more important job comes due before the slot after this one: keep this slot for it.
                    self._gate.release()
                    await asyncio.sleep(max(0.0, held - self.now()))
                    continue
                if job.running or job.key not in self.jobs:
                    self._gate.release()
                    continue
                job.running = True
                task = asyncio.create_task(execute(job), name=f"callmeter-{job.resource}")
                running.add(task)
                task.add_done_callback(running.discard)
                await asyncio.sleep(0)  # let it book its slot before we look at the budget again
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def finish(self, job: Job, started: float) -> None:
        """A job is done: its slot is free; a one-item job leaves, a periodic one comes due again after its
        interval, and a job a policy timed (`time_job`) comes due when the policy said."""
        self._gate.release()
        if job.key not in self.jobs:
            return
        job.running = False
        after, job.after = job.after, None
        if after is None and not job.periodic:
            self.jobs.pop(job.key, None)
            return
        job.due = max(started + self._interval(job.resource) if after is None else after, self.now())
        job.early_from = None
        if job.nudge_again:
            job.nudge_again = False
            self.nudge(job.key)
        self._wake.set()

    def _held_for(self, job: Job) -> float | None:
        """With `hold`: when a more important timed job comes due before the budget's next slot would be
        free after sending `job`, the moment it comes due (the slot waits for it); else None. Only timed
        jobs are waited for, and only an untimed job waits: a periodic list loses nothing by going a
        slot later."""
        if not self._hold or job.timed:
            return None  # a timed job due now is as urgent as the one coming: it goes
        now = self.now()
        horizon = now + self._limiter.interval
        rank = self._rank(job, now)
        soon = [j.due for j in self.jobs.values()
                if j.timed and not j.running and now + 1e-3 < j.due < horizon and self._rank(j, j.due) < rank]
        return min(soon) if soon else None

    def _yields(self, job: Job) -> bool:
        """A spare job gives the slot up when another job comes due before the slot after it, and comes
        due again just after that job."""
        if not job.spare:
            return False
        now = self.now()
        soon = [j.due for j in self.jobs.values()
                if not j.spare and not j.running and j.due < now + self._limiter.interval]
        if not soon:
            return False
        job.due = max(min(soon), now) + 1e-3
        return True

    def _pick(self) -> Job | None:
        now = self.now()
        # asyncio may wake a timer a hair early; a job due within a millisecond is due now.
        due = [j for j in self.jobs.values() if not j.running and j.due <= now + 1e-3]
        if not due:
            return None
        job = min(due, key=lambda j: (self._rank(j, now), j.due))
        if self._early(job, now) and self._next_scheduled(now, job) < now + self._limiter.interval:
            return None  # the slot after this one is wanted by the schedule: a nudge must not push it back
        return None if self._yields(job) else job

    @staticmethod
    def _early(job: Job, now: float) -> bool:
        return job.early_from is not None and now < job.early_from

    def _next_scheduled(self, now: float, besides: Job) -> float:
        """When the schedule next wants a slot for another job (a nudged one at its own due time)."""
        return min((j.early_from if self._early(j, now) and j.early_from is not None else j.due
                    for j in self.jobs.values() if not j.running and not j.spare and j is not besides),
                   default=float("inf"))

    def _rank(self, job: Job, now: float) -> float:
        """The job's priority (lower goes first). Data never fetched is missing, not just old, so every
        list is read once, in priority order, before any is refreshed: a tight plan may otherwise fill
        every slot with probe and run-list refreshes and leave the test names, which the run metrics
        carry and readiness waits for, only idle slots. Inventory a whole interval overdue goes above
        run details, so that a stream of finished runs cannot starve it. With a `patience`, a detail
        wanted for longer goes above the run lists and inventory, so that no run's detail waits
        without bound behind them (only probe lists stay ahead), and a list overdue by a whole
        interval goes above those details in turn."""
        rank = float(KINDS[job.resource].priority)
        if job.spare:
            return SPARE_RANK
        if not job.periodic:
            if job.missing and self._patience is not None:
                return MISSING
            waited = now - job.wanted_since if job.wanted_since is not None else 0.0
            if self._patience is not None and waited > self._patience:
                return AGED
            return LOOK if job.speculative else rank
        if self._early(job, now):
            return EARLY
        if not job.refreshed:
            return rank - FIRST_READ
        overdue = now - job.due > self._interval(job.resource)
        if overdue and self._patience is not None and rank > OVERDUE:
            return OVERDUE
        if overdue and rank > DETAILS:
            return DETAILS - 0.5
        return rank

    async def _next_due(self) -> Job:
        while True:
            job = self._pick()
            if job is not None:
                return job
            self._wake.clear()
            now = self.now()
            # A nudged job waiting for slack is looked at again when the schedule's next job is due.
            # A spare job that is due and was not picked waits for the job it gave its slot up to.
            waiting = [j.early_from if self._early(j, now) and j.early_from is not None else j.due
                       for j in self.jobs.values() if not j.running and not (j.spare and j.due <= now)]
            timeout = max(0.0, min(waiting) - now) if waiting else None
            await wait_event(self._wake, timeout)
