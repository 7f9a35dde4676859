"""The knobs of the simulated account: how big it is, how often things happen, how late results show.

Plain data at the bottom of the simulator: the world, its probe executions and its runs all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorldConfig:
    seed: int = 7
    projects: int = 2
    probes_per_project: int = 3
    tests_per_project: int | tuple[int, ...] = 4
    """Tests in each project, or per project (projects past the tuple's end have none)."""
    registrars_per_project: int = 2
    probe_interval_minutes: float = 1.0
    probe_intervals: tuple[float, ...] = ()
    """Mixed probe intervals in minutes, dealt to the probes in turn (realistic: (1, 5, 15)); empty:
    every probe at `probe_interval_minutes`."""
    probe_status_hold: int = 4
    """Scheduled executions a probe's health holds for before it may turn."""
    probe_result_delay: float = 4.0
    """Seconds from a probe's execution to its result in the probe list, on average over the probes."""
    probe_result_spread: float = 1.5
    """Each probe's result delay is `probe_result_delay` +- this many seconds (drawn per probe)."""
    probe_result_jitter: float = 0.5
    """... plus up to this many seconds, drawn per execution."""
    off_schedule_per_day: float = 2.0
    """Executions of each probe off its schedule a day, on average ("Run Probe", a person in the UI)."""
    run_period: float = 120.0
    """Seconds between two runs of one test (each test gets a different phase and a jitter of +-20%)."""
    run_duration: float = 30.0
    """The tests' `durationSeconds` (see `test_duration_spread`)."""
    test_duration_spread: float = 0.0
    """Each test's `durationSeconds` is `run_duration` +- this share of it (drawn per test)."""
    run_length: tuple[float, float] = (0.8, 1.2)
    """A run is RUNNING for its test's `durationSeconds` times a factor drawn in this range ..."""
    run_overrun_rate: float = 0.02
    """... and, this share of runs, longer still (an overrun) by ..."""
    run_overrun: tuple[float, float] = (1.0, 3.0)
    """... this many times `durationSeconds`, drawn in the range."""
    run_result_delay: float = 0.0
    """Seconds a run is STOPPING after its calls end, before its final status and `completedAt` show."""
    history_runs: int = 5
    """Runs of each test that already exist when the simulation starts."""
    endpoints_per_run: int = 50
    clock_offset: float = 0.0
    """Seconds CallMeter's clock is ahead of ours (behind, if negative): every timestamp the API sends
    is shifted by it; the moments things happen, and requests, are not."""
