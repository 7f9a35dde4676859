"""The scheduler's nudge (what a webhook asks for): a read brought forward into a free slot, on a virtual clock."""

from __future__ import annotations

from exporter.schedule.scheduler import Job, JobKey
from tests.support.scheduling import scheduled_runs


def nudged_run(jobs: list[Job], nudges: list[tuple[float, JobKey]], seconds: float, *, per_minute: float = 6.0,
               intervals: dict[str, float] | None = None, duration: float = 0.0) -> list[tuple[float, str]]:
    """(start, resource) of every job run, with `nudges` (at, key) sent to the scheduler on the way."""
    return [(start, resource) for start, resource, _ in scheduled_runs(
        jobs, seconds, per_minute=per_minute, default_interval=600.0, intervals=intervals, nudges=nudges,
        duration=duration)]


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
