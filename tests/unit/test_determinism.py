"""A simulated case replays exactly: the schedule benchmark's tables must not change between runs of one
code (issue 20)."""

from __future__ import annotations

import random

from benchmarks.schedule import FAULTS, Case, cases, run_exporter
from benchmarks.schedule_measure import Trace
from tests.support.vclock import run_virtual

HOURS = 4.0


def replay(case: Case, disturb: int) -> Trace:
    # Whatever ran before in the process (a benchmark worker's earlier cases) left `random` somewhere else.
    random.seed(disturb)
    trace, _world, _ready = run_virtual(run_exporter(case, "fixed", HOURS * 3600, "desc", 60.0))
    return trace


def test_the_fault_case_replays_request_for_request_whatever_drew_from_random_before() -> None:
    # The fault case retries 5xx with a jittered backoff: the one place the exporter draws at random.
    (case,) = cases([FAULTS], [10], (5.0,), 0.0)
    first, second = replay(case, 1), replay(case, 2)
    assert sum(status >= 500 for *_, status in first.requests) > 100
    assert first.requests == second.requests
    assert first == second
