"""The scheduler's nudge (what a webhook asks for): a read brought forward into a free slot, on a virtual clock."""

from __future__ import annotations

import asyncio

from exporter.api.budget import RateLimiter
from exporter.schedule.scheduler import Job, JobKey, Scheduler
from tests.support.vclock import run_virtual


def nudged_run(jobs: list[Job], nudges: list[tuple[float, JobKey]], seconds: float, *, per_minute: float = 6.0,
               intervals: dict[str, float] | None = None, duration: float = 0.0) -> list[tuple[float, str]]:
    """(start, resource) of every job run, with `nudges` (at, key) sent to the scheduler on the way."""
    ran: list[tuple[float, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(per_minute=per_minute, window_cap=int(per_minute), clock=loop.time)
        scheduler = Scheduler(limiter=limiter, interval=lambda r: (intervals or {}).get(r, 600.0))

        async def execute(job: Job) -> None:
            started = loop.time()
            limiter.reserve()
            ran.append((round(started, 3), job.resource))
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


def test_a_nudge_with_room_runs_the_job_at_the_next_slot_and_its_interval_counts_from_there() -> None:
    ran = nudged_run([Job("probes", "p")], [(100.0, ("probes", "p", None))], 800.0)
    assert [t for t, _ in ran] == [5.0, 100.0, 700.0]


def test_a_nudge_never_takes_the_slot_a_scheduled_job_wants() -> None:
    # The run list (read at 15 s, every 588 s) is due at 603 s, within one slot (10 s at 6 a minute) of the
    # nudge at 595 s: it goes first, on time.
    jobs = [Job("probes", "p"), Job("test_runs", "p", due=0.0)]
    ran = nudged_run(jobs, [(595.0, ("probes", "p", None))], 700.0, intervals={"probes": 900.0, "test_runs": 588.0})
    after = [(t, r) for t, r in ran if t >= 595.0]
    assert after[0][1] == "test_runs" and after[0][0] == 603.0
    assert after[1] == (613.0, "probes")  # then the nudged read, at the next slot


def test_a_nudge_while_the_job_runs_brings_the_next_run_forward() -> None:
    ran = nudged_run([Job("probes", "p")], [(6.0, ("probes", "p", None))], 100.0, duration=3.0)
    assert [t for t, _ in ran][:2] == [5.0, 15.0]  # not 605: the read under way began before the nudge
