"""The simulated account behaves as the issue describes CallMeter: read through the API, as the exporter
reads it, and checked against the world's own ground truth (`probe_changes`, `run_result`)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from exporter.simulator import DEMO_KEY, Simulator, WorldConfig
from exporter.simulator.executions import Execution, ProbeChange, ProbeTimeline
from exporter.simulator.world import World

START = 1_800_000_000.0
HOUR = 3600.0
REALISTIC = WorldConfig(projects=2, probes_per_project=3, probe_intervals=(1, 5, 15), probe_status_hold=1,
                        off_schedule_per_day=24)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def simulator(config: WorldConfig, **kwargs: Any) -> tuple[Simulator, Clock]:
    clock = Clock()
    return Simulator(config, clock=clock, **kwargs), clock


def get(sim: Simulator, path: str) -> Any:
    response = sim.handle("GET", f"/api/v1{path}", {"Authorization": f"Bearer {DEMO_KEY}"})
    assert response.status == 200, response.body
    return json.loads(response.body)["data"]


def ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def probes_listed(sim: Simulator) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for pid in sim.world.projects for p in get(sim, f"/projects/{pid}/probes")}


def test_probes_get_the_mixed_intervals_in_turn() -> None:
    world = World.build(REALISTIC, START)
    assert Counter(p.interval_minutes for p in world.probes.values()) == {1: 2, 5: 2, 15: 2}
    assert {p.interval_minutes for p in World.build(WorldConfig(), START).probes.values()} == {1.0}


def test_listed_status_and_last_execution_move_only_when_a_result_becomes_visible() -> None:
    """Read every second for two hours: each move of `lastExecutionAt` or the status is the result of
    an execution appearing then, a few seconds after it ran; `nextExecutionAt` is the next scheduled one."""
    sim, clock = simulator(REALISTIC)
    world = sim.world
    before = probes_listed(sim)
    moves = Counter[str]()
    while clock.now < START + 2 * HOUR:
        clock.now += 1
        now = probes_listed(sim)
        for probe_id, view in now.items():
            probe, old = world.probes[probe_id], before[probe_id]
            interval = probe.interval_minutes * 60
            nxt = ts(view["nextExecutionAt"])
            assert nxt is not None and clock.now < nxt + 1 <= clock.now + interval + 1
            if view["lastExecutionAt"] == old["lastExecutionAt"]:
                assert view["status"] == old["status"], "a status changed with no new execution"
                continue
            fresh = world.probe_executions(probe, clock.now - 1, clock.now)
            assert fresh, f"{probe_id}: lastExecutionAt moved with no result appearing"
            lag = clock.now - (ts(view["lastExecutionAt"]) or 0)
            assert 2.5 - 1 <= lag <= 5.5 + 0.5 + 1 + 1  # the delay, its spread and jitter, rounding
            moves["scheduled" if fresh[-1].scheduled else "off"] += 1
        before = now
    assert moves["off"] >= 1 and moves["scheduled"] > 100


def test_probe_changes_are_what_a_reader_of_the_list_sees() -> None:
    sim, clock = simulator(REALISTIC)
    world = sim.world
    truth = {p: world.probe_changes(p, START, START + 2 * HOUR) for p in world.probes}
    seen: dict[str, list[tuple[float, str]]] = {p: [] for p in world.probes}
    status = {p: v["status"] for p, v in probes_listed(sim).items()}
    while clock.now < START + 2 * HOUR:
        clock.now += 0.5
        for probe_id, view in probes_listed(sim).items():
            if view["status"] != status[probe_id]:
                status[probe_id] = view["status"]
                seen[probe_id].append((clock.now, view["status"]))
    assert sum(len(c) for c in truth.values()) > 50
    for probe_id, changes in truth.items():
        assert [s for _, s in seen[probe_id]] == [c.status for c in changes]
        assert all(0 <= at - c.at < 0.5 for (at, _), c in zip(seen[probe_id], changes, strict=True))


def test_off_schedule_executions_come_at_the_set_rate_and_can_find_a_change_first() -> None:
    world = World.build(REALISTIC, START)
    days = 2
    executions = [e for p in world.probes.values() for e in world.probe_executions(p, START, START + days * 86400)]
    off = [e for e in executions if not e.scheduled]
    assert 0.6 * 24 * 6 * days <= len(off) <= 1.4 * 24 * 6 * days
    early = 0
    for probe in world.probes.values():
        for change in world.probe_changes(probe, START, START + days * 86400):
            ran = next(e for e in world.probe_executions(probe, change.at - 1e-6, change.at))
            early += not ran.scheduled
    assert early >= 5, "an off-schedule execution sometimes shows a change before the schedule does"
    assert len(off) < 0.08 * len(executions)
    default = World.build(WorldConfig(probes_per_project=3), START)
    rare = [e for p in default.probes.values() for e in default.probe_executions(p, START, START + 10 * 86400)
            if not e.scheduled]
    assert 0 < len(rare) <= 4 * 6 * 10  # "a few": about two a day per probe by default


def test_clock_offset_shifts_every_timestamp_and_nothing_else() -> None:
    for offset in (30.0, -30.0):
        plain, clock = simulator(WorldConfig(run_period=60, run_duration=20))
        skewed, skewed_clock = simulator(WorldConfig(run_period=60, run_duration=20, clock_offset=offset))
        clock.now = skewed_clock.now = START + 1234
        pid = next(iter(plain.world.projects))
        for path in (f"/projects/{pid}/probes", f"/projects/{pid}/test-runs", f"/projects/{pid}/tests"):
            for a, b in zip(get(plain, path), get(skewed, path), strict=True):
                for name in ("lastExecutionAt", "nextExecutionAt", "createdAt", "startedAt", "completedAt"):
                    if a.get(name) is not None:
                        assert ts(b[name]) == ts(a[name]) + offset  # type: ignore[operator]
                assert a.get("status") == b.get("status")


def test_runs_last_their_tests_duration_with_a_spread_and_now_and_then_an_overrun() -> None:
    config = WorldConfig(projects=3, tests_per_project=5, run_period=600, run_duration=120, test_duration_spread=0.5,
                         run_length=(1.05, 1.3), run_overrun_rate=0.05, run_overrun=(1.0, 3.0), history_runs=0)
    world = World.build(config, START)
    durations = {t.id: world.test_duration(t) for t in world.tests.values()}
    assert min(durations.values()) >= 60 and max(durations.values()) <= 180 and len(set(durations.values())) > 5
    overruns = ordinary = 0
    for test, _run_id, result in world.finished_runs(START + 20 * 86400 / 10):
        if result.status == "CANNOT_RUN_FOR_NOW":
            continue
        ratio = result.running / test.duration
        if ratio > 1.3 + 1e-9:
            overruns += 1
            assert 2.05 - 1e-9 <= ratio <= 4.3 + 1e-9
        else:
            ordinary += 1
            assert ratio >= 1.05 - 1e-9
    assert ordinary > 200 and 0.02 <= overruns / (overruns + ordinary) <= 0.09


def test_a_run_shows_its_final_status_when_run_result_says() -> None:
    config = WorldConfig(projects=1, tests_per_project=3, run_period=300, run_duration=60, run_result_delay=5,
                         history_runs=0)
    sim, clock = simulator(config)
    pid = next(iter(sim.world.projects))
    first_terminal: dict[str, float] = {}
    statuses: dict[str, set[str]] = {}
    while clock.now < START + 2 * HOUR:
        clock.now += 0.5
        for run in get(sim, f"/projects/{pid}/test-runs?per_page=100"):
            statuses.setdefault(run["id"], set()).add(run["status"])
            if run["status"] in ("COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW"):
                first_terminal.setdefault(run["id"], clock.now)
                assert run["completedAt"] is not None
    truth = {run_id: result for _, run_id, result in sim.world.finished_runs(START + 2 * HOUR)}
    assert set(truth) == set(first_terminal) and len(truth) > 50
    for run_id, result in truth.items():
        assert 0 <= first_terminal[run_id] - result.visible < 0.5
        if result.status != "CANNOT_RUN_FOR_NOW":
            assert "STOPPING" in statuses[run_id] and result.visible == result.ended + 5


def test_change_listeners_hear_every_change_once_in_order_and_a_forced_one_at_once() -> None:
    sim, clock = simulator(REALISTIC)
    heard: list[ProbeChange] = []
    sim.world.change_listeners.append(heard.append)
    assert sim.world.emit_probe_changes(clock.now) == []  # the first call starts the clock
    for _ in range(120):
        clock.now += 60
        sim.world.emit_probe_changes(clock.now)
    truth = sorted((c for p in sim.world.probes for c in sim.world.probe_changes(p, START, clock.now)),
                   key=lambda c: c.at)
    assert heard == truth and len(heard) > 20
    probe_id = next(iter(sim.world.probes))
    current = sim.world.probe_view(sim.world.probes[probe_id], clock.now)["status"]
    forced = "UNHEALTHY" if current != "UNHEALTHY" else "HEALTHY"
    sim.set_probe_status(probe_id, forced)
    assert (heard[-1].probe_id, heard[-1].status, heard[-1].previous, heard[-1].at) == (
        probe_id, forced, current, clock.now)


def test_a_stalled_probe_keeps_a_next_execution_in_the_past() -> None:
    sim, clock = simulator(WorldConfig(projects=1, probes_per_project=2, probe_interval_minutes=5,
                                       off_schedule_per_day=0))
    probe_id = next(iter(sim.world.probes))
    clock.now += 1800
    sim.world.stall_probe(probe_id, clock.now)
    clock.now += 3 * HOUR
    view = probes_listed(sim)[probe_id]
    assert (ts(view["nextExecutionAt"]) or 0) < clock.now - 2.9 * HOUR
    assert (ts(view["lastExecutionAt"]) or 0) < START + 1800


@pytest.mark.parametrize("fault", ["null_fields", "drop_fields"])
def test_schedule_fields_can_be_null_or_missing(fault: str) -> None:
    sim, _ = simulator(WorldConfig())
    sim.set_faults(**{fault: ["nextExecutionAt"]})
    views = probes_listed(sim).values()
    if fault == "null_fields":
        assert all(v["nextExecutionAt"] is None and v["lastExecutionAt"] for v in views)
    else:
        assert all("nextExecutionAt" not in v for v in views)


def test_executions_asked_for_join_the_probes_own() -> None:
    """The hook a "Run Probe" write uses: an extra execution shows like any other, and the ground truth has it."""
    world = World.build(WorldConfig(probe_interval_minutes=5, off_schedule_per_day=0), START)
    probe = next(iter(world.probes.values()))
    usual = world.probe_view(probe, START + 1000)["status"]
    other = "UNHEALTHY" if usual != "UNHEALTHY" else "HEALTHY"
    asked = [Execution(START + 1000, START + 1010, other, False)]
    world.timeline = ProbeTimeline(world.config, START, extra=lambda p: asked if p is probe else [])
    assert world.probe_view(probe, START + 1009)["status"] == usual
    assert world.probe_view(probe, START + 1010)["status"] == other
    assert ts(world.probe_view(probe, START + 1010)["lastExecutionAt"]) == START + 1000
    assert [(c.at, c.status) for c in world.probe_changes(probe, START + 900, START + 1010)] == [(START + 1010, other)]
