"""The schedule benchmark's measures (benchmarks/schedule_measure.py) on traces whose answer is known, and
the second client of its fault case (tests/support/scenarios.py)."""

from __future__ import annotations

import asyncio
import math

from benchmarks.schedule_measure import Trace, max_in_window, probe_delays, run_delays
from exporter.api.models import Probe, TestRun
from exporter.simulator import DEMO_KEY, Simulator, WorldConfig
from exporter.simulator.world import World
from tests.support.scenarios import FREE_PLAN, other_client
from tests.support.simulated import WALL_START
from tests.support.vclock import run_virtual

HOUR = 3600.0


def shown_probe(world: World, probe_id: str, at: float) -> Probe:
    view = world.probe_view(world.probes[probe_id], at)
    return Probe.model_validate(view)


def test_probe_change_delay_is_from_visible_to_the_first_view_of_that_result() -> None:
    world = World.build(FREE_PLAN, WALL_START)
    changes = {p: world.probe_changes(p, WALL_START, WALL_START + 2 * HOUR) for p in world.probes}
    trace = Trace()
    for probe_id, found in changes.items():
        for change in found:  # each change shown 7 s after it appeared, and again 20 s after
            trace.probes(change.at + 7, [shown_probe(world, probe_id, change.at + 7)])
            trace.probes(change.at + 20, [shown_probe(world, probe_id, change.at + 20)])
    measured = probe_delays(trace, world, WALL_START, WALL_START + 2 * HOUR)
    assert measured["probe_changes"] == sum(map(len, changes.values())) > 20
    assert math.isclose(measured["probe_p50"], 7) and math.isclose(measured["probe_max"], 7)
    assert measured["probe_missed"] == 0


def test_a_view_older_than_the_change_does_not_count_and_a_superseded_change_is_missed() -> None:
    world = World.build(WorldConfig(projects=1, probes_per_project=1, probe_interval_minutes=5, probe_status_hold=1),
                        WALL_START)
    probe_id = next(iter(world.probes))
    found = world.probe_changes(probe_id, WALL_START, WALL_START + 4 * HOUR)
    first, second = found[0], found[1]
    trace = Trace()
    trace.probes(first.at + 1, [shown_probe(world, probe_id, first.at - 1)])  # read before it appeared
    trace.probes(second.at + 5, [shown_probe(world, probe_id, second.at + 5)])  # the next one already shows
    measured = probe_delays(trace, world, first.at - 1, second.at + 1)
    assert measured["probe_changes"] == 2
    assert math.isclose(measured["probe_p50"], 5) and math.isclose(measured["probe_max"], second.at + 5 - first.at)
    assert measured["probe_missed"] == 1


def test_run_result_delay_and_coverage() -> None:
    world = World.build(FREE_PLAN, WALL_START)
    finished = [run for run in world.finished_runs(WALL_START + 4 * HOUR) if run[2].visible >= WALL_START]
    trace = Trace()
    for n, (_test, run_id, result) in enumerate(finished):
        if n % 4 == 0:
            continue  # never shown
        trace.run_shown[run_id] = result.visible + 3
        if result.status == "COMPLETED":
            trace.completed(result.visible + 12, TestRun(id=run_id, status="COMPLETED"))
    measured = run_delays(trace, world, WALL_START, WALL_START + 4 * HOUR)
    assert measured["runs_finished"] == len(finished) > 40
    assert math.isclose(measured["coverage"], 1 - len(finished[::4]) / len(finished))
    assert math.isclose(measured["run_p50"], 12) and math.isinf(measured["run_p95"])


def test_max_in_window() -> None:
    assert max_in_window([0, 10, 59.9, 60, 61, 200]) == 4
    assert max_in_window([]) == 0


def test_the_other_client_shares_the_keys_limit_and_stays_out_of_the_log() -> None:
    async def main() -> tuple[Simulator, list[int]]:
        loop = asyncio.get_running_loop()
        sim = Simulator(WorldConfig(), clock=lambda: WALL_START + loop.time(), rate_limit_per_minute=10)
        other = asyncio.create_task(other_client(sim, first=0))
        statuses = []
        await asyncio.sleep(1)
        for _ in range(10):  # the key's whole minute, less what the other client took
            response = sim.handle("GET", "/api/v1/projects", {"Authorization": f"Bearer {DEMO_KEY}"})
            statuses.append(response.status)
        other.cancel()
        await asyncio.gather(other, return_exceptions=True)
        return sim, statuses

    sim, statuses = run_virtual(main())
    assert statuses == [200] * 7 + [429] * 3
    assert len(sim.requests) == 10
