"""The scheduler on a virtual clock with jobs that only record when they ran (tests/unit/schedule)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from exporter.api.budget import RateLimiter
from exporter.schedule.scheduler import Job, JobKey, Scheduler
from tests.support.vclock import run_virtual


def scheduled_runs(jobs: list[Job], seconds: float, *, per_minute: float, default_interval: float,
                   intervals: dict[str, float] | None = None, nudges: Sequence[tuple[float, JobKey]] = (),
                   duration: float = 0.0) -> list[tuple[float, str, str | None]]:
    """(start, resource, item) of every job run within `seconds` of virtual time. Each job takes a slot of
    the limiter as the client does before it sends, lasts `duration`, and refreshes; `nudges` (at, key)
    are sent to the scheduler on the way."""
    ran: list[tuple[float, str, str | None]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(per_minute=per_minute, window_cap=int(per_minute), clock=loop.time)
        scheduler = Scheduler(limiter=limiter, interval=lambda r: (intervals or {}).get(r, default_interval))

        async def execute(job: Job) -> None:
            started = loop.time()
            limiter.reserve()
            ran.append((round(started, 3), job.resource, job.item))
            if duration:
                await asyncio.sleep(duration)
            job.refreshed = True
            scheduler.finish(job, started)

        for job in jobs:
            scheduler.add(job)
        task = asyncio.create_task(scheduler.run(execute))
        for at, key in nudges:
            await asyncio.sleep(at - loop.time())
            scheduler.nudge(key)
        await asyncio.sleep(seconds - loop.time())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run_virtual(main())
    return ran
