"""A real Prometheus scrapes the real exporter through a restart, with and without a state file.

`callmeter_test_runs_finished_total` must never count a run twice across the restart (the raw
increase Prometheus computes, resets included, is at most the runs that really finished), and with
a state file no series is missing for longer than the restart itself.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.api.models import TestRun
from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig
from tests.support.processes import ExporterProcess
from tests.support.prometheus import free_port, run_prometheus

# Runs every 3 s (0.8-1.2x), so a one-page listing holds about a minute of history: the case the issue measured.
WORLD = WorldConfig(projects=1, probes_per_project=2, tests_per_project=3, run_period=3.0, run_duration=1.0,
                    history_runs=60)
PHASE = 14.0
"""Seconds of scraping before and after the restart."""
LAG = 6.0
"""Longest a finished run may take to be counted and scraped: a run-list read (1 s floor), a publish, a scrape."""


def exporter(port: int, base_url: str, state_file: Path | None) -> ExporterProcess:
    env = {"CALLMETER_API_KEY": DEMO_KEY, "CALLMETER_BASE_URL": base_url, "CALLMETER_REQUESTS_PER_MINUTE": "600",
           "CALLMETER_PROBES_MIN_INTERVAL": "1", "CALLMETER_TEST_RUNS_MIN_INTERVAL": "1",
           "CALLMETER_INVENTORY_MIN_INTERVAL": "30", "CALLMETER_RUN_LOOKBACK_PAGES": "1"}
    if state_file is not None:
        env["CALLMETER_STATE_FILE"] = str(state_file)
    return ExporterProcess(env=env, port=port)


def completions(simulator: Simulator, test_id: str, status: str, since: float, until: float) -> int:
    """Runs of the test that ended in `status` between two Unix times, as the simulator knows them."""
    world, count = simulator.world, 0
    for project_id in world.projects:
        for created, run_id, test in world.runs_of_project(project_id, until):
            if test.id != test_id:
                continue
            run = TestRun.model_validate(world.run_view(test, run_id, created, until, detail=False))
            if run.status == status and run.completed_at is not None and since < run.completed_at <= until:
                count += 1
    return count


def raw_increase(samples: list[tuple[float, float]]) -> float:
    """What Prometheus' increase() adds up before extrapolating: deltas, and the new value after a reset."""
    total = 0.0
    for (_, a), (_, b) in itertools.pairwise(samples):
        total += b - a if b >= a else b
    return total


def series(prometheus: Any, expr: str) -> dict[str, list[tuple[float, float]]]:
    result = prometheus.query(expr)
    return {r["metric"]["test_id"]: [(float(t), float(v)) for t, v in r["values"]] for r in result}


@pytest.mark.parametrize("with_state", [True, False], ids=["state-file", "no-state-file"])
def test_finished_runs_are_counted_once_across_a_restart(tmp_path: Path, with_state: bool) -> None:
    simulator = Simulator(WORLD)
    port = free_port()
    state_file = tmp_path / "state.json" if with_state else None
    config = f"""
global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}
scrape_configs:
  - job_name: callmeter
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
    with SimulatorServer(simulator) as server, run_prometheus(config, workdir=tmp_path / "prometheus") as prometheus:
        first = exporter(port, server.base_url, state_file)
        try:
            first.wait_ready(30)
            started = time.time()
            time.sleep(PHASE)
        finally:
            first.stop()
        stopped = time.time()
        second = exporter(port, server.base_url, state_file)
        try:
            second.wait_for(lambda: "callmeter_test_runs_finished_total{" in second.metrics(), 60, "finished runs")
            back = time.time()
            time.sleep(PHASE)
            ended = time.time()
            time.sleep(2)  # the last scrape lands
            window = f"{int(ended - started) + 1}s"
            counted = series(prometheus, f'callmeter_test_runs_finished_total{{status="COMPLETED"}}[{window}]')
            mos = series(prometheus, f"callmeter_test_run_mos[{window}]")
        finally:
            second.stop()
    restart_seconds = back - stopped
    assert len(counted) == WORLD.tests_per_project
    for test_id, samples in counted.items():
        samples = [s for s in samples if started <= s[0] <= ended]
        seen = raw_increase(samples)
        really = completions(simulator, test_id, "COMPLETED", samples[0][0] - LAG, samples[-1][0])
        assert seen <= really, f"{test_id}: counted {seen} across the restart, {really} really finished"
        if with_state:
            resets = sum(1 for (_, a), (_, b) in itertools.pairwise(samples) if b < a)
            assert resets == 0
            # Only what ended in the last LAG seconds may still be uncounted.
            assert seen >= completions(simulator, test_id, "COMPLETED", samples[0][0], samples[-1][0] - LAG)
    if with_state:
        for name, by_test in (("finished", counted), ("mos", mos)):
            for test_id, samples in by_test.items():
                times = [t for t, _ in samples if started <= t <= ended]
                gap = max(b - a for a, b in itertools.pairwise(times))
                assert gap <= restart_seconds + 2.5, \
                    f"{name} {test_id}: missing for {gap:.1f}s, the restart took {restart_seconds:.1f}s"


def test_readyz_is_ready_from_a_state_file_before_any_refresh(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with SimulatorServer(Simulator(WORLD)) as server:
        with exporter(free_port(), server.base_url, state_file) as first:
            first.wait_ready(30)
            time.sleep(6)  # a save
        with exporter(free_port(), server.base_url, state_file) as second:
            second.wait_ready(30)
            second.wait_for(lambda: '"refresh.done"' in second.output(), 30, "a refresh")
            output = second.output()
    assert '"state.restored"' in output
    assert output.index('"exporter.ready"') < output.index('"refresh.done"')


def counters(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("callmeter_test_runs_finished_total{")}


def test_a_kill_9_never_rolls_back_a_counter_a_scrape_has_seen(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with SimulatorServer(Simulator(WORLD)) as server:
        first = exporter(free_port(), server.base_url, state_file)
        try:
            first.wait_for(lambda: bool(counters(first.metrics())), 60, "finished runs")
            seen: dict[str, float] = {}
            for _ in range(20):  # scrape while runs keep finishing, then kill right after a scrape
                seen = counters(first.metrics())
                time.sleep(0.3)
            seen = counters(first.metrics())
            first.proc.kill()
            first.proc.wait(10)
        finally:
            first.stop()
        with exporter(free_port(), server.base_url, state_file) as second:
            second.wait_ready(30)
            restored = counters(second.metrics())
    assert seen and all(restored.get(series, 0) >= value for series, value in seen.items()), (seen, restored)
