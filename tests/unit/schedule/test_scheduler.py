"""The scheduler on a virtual clock, with jobs that only record when they ran."""

from __future__ import annotations

import itertools

from exporter.schedule.scheduler import Job
from tests.support.scheduling import scheduled_runs


def run_jobs(jobs: list[Job], seconds: float, *, per_minute: float = 60.0,
             intervals: dict[str, float] | None = None) -> list[tuple[float, str, str | None]]:
    return scheduled_runs(jobs, seconds, per_minute=per_minute, default_interval=30.0, intervals=intervals)


def test_unread_lists_go_first_in_priority_order_then_details() -> None:
    jobs = [Job("registrars", "p"), Job("test_run_details", "p", "r1"), Job("probes", "p"), Job("test_runs", "p")]
    ran = run_jobs(jobs, 10.0)
    assert [r for _, r, _ in ran][:4] == ["probes", "test_runs", "registrars", "test_run_details"]


def test_a_detail_runs_once_and_a_list_comes_due_again_after_its_interval() -> None:
    ran = run_jobs([Job("probes", "p"), Job("test_run_details", "p", "r1")], 100.0, intervals={"probes": 30.0})
    assert [r for _, r, _ in ran].count("test_run_details") == 1
    probe_times = [t for t, r, _ in ran if r == "probes"]
    assert len(probe_times) == 4 and all(b - a == 30.0 for a, b in itertools.pairwise(probe_times))


def test_the_budget_spaces_the_jobs() -> None:
    jobs = [Job(kind, f"p{i}") for i in range(3) for kind in ("probes", "test_runs")]
    ran = run_jobs(jobs, 60.0, per_minute=6.0, intervals={"probes": 600.0, "test_runs": 600.0})
    times = [t for t, _, _ in ran]
    assert len(times) == 6 and all(b - a >= 10.0 - 1e-6 for a, b in itertools.pairwise(times))


def test_a_spare_job_goes_last_and_gives_its_slot_up_to_a_job_due_before_the_next_slot() -> None:
    # At 6 a minute a slot is 10 s. The probe list comes due at 30 s: a spare job picked at 25 s would
    # push it to 35 s, so it waits and goes after the probe list instead.
    probes = Job("probes", "p", due=30.0, refreshed=True)
    spare = Job("probe_details", "p", "x", due=25.0, spare=True)
    detail = Job("test_run_details", "p", "r1", due=0.0)
    ran = run_jobs([probes, spare, detail], 60.0, per_minute=6.0, intervals={"probes": 600.0})
    assert ran[0][1] == "test_run_details"
    assert [(t, r) for t, r, _ in ran[1:3]] == [(30.0, "probes"), (40.0, "probe_details")]


def test_a_spare_job_takes_a_slot_no_one_else_wants() -> None:
    ran = run_jobs([Job("probes", "p", due=100.0, refreshed=True), Job("test_details", "p", "t", spare=True)], 60.0,
                   per_minute=6.0, intervals={"probes": 600.0})
    assert [r for _, r, _ in ran] == ["test_details"] and ran[0][0] < 10.0


def test_a_spare_job_waits_behind_a_nudged_job_that_waits_for_the_schedule() -> None:
    # At 5 s a nudged run list and a spare job are due, but a probe list is due at 8 s: the nudged job
    # holds back for it, and the spare job behind the nudged one (neither may spin the loop).
    probes = Job("probes", "p", due=8.0, refreshed=True)
    nudged = Job("test_runs", "p", due=0.0, refreshed=True, early_from=100.0)
    spare = Job("probe_details", "p", "x", due=0.0, spare=True)
    ran = run_jobs([probes, nudged, spare], 40.0, per_minute=6.0, intervals={"probes": 600.0, "test_runs": 600.0})
    assert [(t, r) for t, r, _ in ran] == [(8.0, "probes"), (18.0, "test_runs"), (28.0, "probe_details")]
