"""Realistic accounts and neighbours for the simulated exporter, shared by the schedule benchmark and tests.

`realistic_world` is the account the benchmark measures on (see `benchmarks/schedule.py`); `FREE_PLAN` is
issue 13's Free-plan case; `other_client` is a second user of the same key, who takes part of its limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from exporter.simulator import DEMO_KEY, Simulator, WorldConfig
from exporter.simulator.envelope import Response

RUN_PERIOD = 45 * 60.0
RUN_DURATION = 7.5 * 60


def realistic_world(projects: int, probes: int, tests: int | tuple[int, ...], *,
                    intervals: tuple[float, ...] = (5.0,), clock_offset: float = 0.0) -> WorldConfig:
    """Probes every 5 minutes (or `intervals`, dealt in turn), each execution drawing its health afresh so
    that there are many changes to time, results 2.5-6 s after the execution, two off-schedule executions a
    day; a run of each test every 36-54 minutes, tests of 3.75-11.25 minutes, runs 1.05-1.3 times their
    test's duration, 3 % of them 1-3 times longer still, 2 s STOPPING before the final status shows."""
    return WorldConfig(projects=projects, probes_per_project=probes, tests_per_project=tests,
                       registrars_per_project=2, probe_intervals=intervals, probe_status_hold=1,
                       run_period=RUN_PERIOD, run_duration=RUN_DURATION, test_duration_spread=0.5,
                       run_length=(1.05, 1.3), run_overrun_rate=0.03, run_overrun=(1.0, 3.0), run_result_delay=2.0,
                       history_runs=5, clock_offset=clock_offset)


FREE_PLAN = realistic_world(3, 2, (4, 3, 3))
"""Issue 13's realistic Free plan: 3 projects, 2 probes each at 5 minutes, 10 tests (key: 10 a minute)."""

OTHER_CLIENT_PER_MINUTE = 2.0
OTHER_CLIENT_BURST = 3


async def other_client(simulator: Simulator, handle: Callable[..., Response] | None = None, *,
                       per_minute: float = OTHER_CLIENT_PER_MINUTE, burst: int = OTHER_CLIENT_BURST,
                       first: float = 20.0) -> None:
    """Another user of the key (a CI job, say): `burst` requests back to back, `per_minute` on average.
    They count against the simulator's per-key limit, and stay out of its request log. A burst of 3 on top
    of an exporter spending 8 of a Free key's 10 a minute can meet a full window: the 429 then falls on
    whichever request comes next, the other user's or the exporter's."""
    send = handle or simulator.handle
    await asyncio.sleep(first)
    while True:
        for _ in range(burst):
            logging = simulator.record_requests
            simulator.record_requests = False
            try:
                send("GET", "/api/v1/projects", {"Authorization": f"Bearer {DEMO_KEY}"})
            finally:
                simulator.record_requests = logging
        await asyncio.sleep(60 * burst / per_minute)
