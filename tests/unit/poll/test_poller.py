"""The scheduler on a virtual clock against the in-process simulator: hours in milliseconds."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from structlog.testing import capture_logs

from exporter.poll.poller import Floors
from exporter.simulator import WorldConfig
from tests.support.budget import max_in_window
from tests.support.simulated import SimulatedExporter, build
from tests.support.vclock import run_virtual

SMALL = WorldConfig(projects=1, probes_per_project=3, tests_per_project=3, run_period=300, run_duration=60)


def simulate(seconds: float, check: Callable[[SimulatedExporter], Awaitable[Any] | Any] | None = None,
             **kwargs: Any) -> SimulatedExporter:
    async def main() -> SimulatedExporter:
        sim = build(kwargs.pop("world", SMALL), **kwargs)
        sim.start()
        await asyncio.sleep(seconds)
        if check is not None:
            result = check(sim)
            if asyncio.iscoroutine(result):
                await result
        await sim.stop()
        return sim

    return run_virtual(main())


def api_paths(sim: SimulatedExporter) -> list[str]:
    return [path for _, _, path, _ in sim.simulator.requests]


def kinds(sim: SimulatedExporter) -> list[str]:
    out = []
    for path in api_paths(sim):
        parts = path.split("/")[3:]
        out.append("projects" if len(parts) == 1 else parts[2] if len(parts) == 3 else "run_detail")
    return out


def test_first_requests_follow_priority_and_are_spread_out() -> None:
    sim = simulate(60, key_limit=10)
    first = kinds(sim)[:4]
    assert first[:3] == ["projects", "probes", "test-runs"]
    times = [t for t, *_ in sim.simulator.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 7.5 - 0.01  # 8 a minute: the Free plan's 10 times the 0.8 share
    assert times[0] - 1_800_000_000.0 >= 3.7  # half an interval before the first request


def test_becomes_ready_and_publishes_every_resource_on_a_free_budget() -> None:
    def check(sim: SimulatedExporter) -> None:
        assert sim.poller.readiness.ready.is_set()
        snapshot = sim.snapshots[-1]
        project = snapshot.projects[0]
        assert project.probes and project.tests and project.registrars and project.latest_runs
        assert len(project.latest_completed) == 3
        assert sim.value("callmeter_up") == 1

    simulate(120, check, key_limit=10)


def test_budget_holds_in_every_window_over_six_simulated_hours() -> None:
    world = WorldConfig(projects=3, probes_per_project=5, tests_per_project=5, run_period=200, run_duration=60)
    sim = simulate(6 * 3600, key_limit=10, world=world)
    times = [t for t, *_ in sim.simulator.requests]
    assert len(times) > 2000
    assert max_in_window(times) <= 8
    assert all(status != 429 for *_, status in sim.simulator.requests)


def test_terminal_runs_are_fetched_once_and_never_again() -> None:
    world = WorldConfig(projects=1, probes_per_project=1, tests_per_project=4, run_period=120, run_duration=30)
    sim = simulate(3 * 3600, key_limit=120, world=world, floors=Floors(probes=30, test_runs=30, inventory=600),
                   schedule="fixed")
    details = Counter(p for p in api_paths(sim) if "/test-runs/" in p)
    assert len(details) > 50
    assert max(details.values()) == 1


def test_latest_run_found_whether_runs_are_listed_newest_or_oldest_first() -> None:
    world = WorldConfig(projects=1, probes_per_project=1, tests_per_project=3, run_period=100, run_duration=30,
                        history_runs=150)
    results = {}
    for order in ("desc", "asc"):
        def check(sim: SimulatedExporter, order: str = order) -> None:
            project = sim.snapshots[-1].projects[0]
            truth = {}
            assert "test_runs" in project.fetched and sim.wall() - project.fetched["test_runs"] <= 60
            listed_at = project.fetched["test_runs"] - 0.5  # the listing's request went out just before it landed
            for _created, run_id, test in sim.simulator.world.runs_of_project(project.project.id, listed_at):
                truth[test.id] = run_id  # oldest first, so the last one written is the newest
            assert {t: r.id for t, r in project.latest_runs.items()} == truth
            results[order] = sum(1 for p in api_paths(sim) if p.endswith("/test-runs"))

        simulate(1800, check, key_limit=60, world=world, floors=Floors(probes=60, test_runs=60, inventory=900),
                 configure=lambda s, o=order: s.set_faults(run_order=o))
    # 450+ runs make five pages, yet a cycle reads one page (newest first) or about two (oldest first).
    cycles = 1800 / 60
    assert results["desc"] <= cycles + 4
    assert results["asc"] <= 2 * cycles + 4


def test_rate_limited_pauses_then_halves_the_rate_and_recovers() -> None:
    rates: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        sim.simulator.set_faults(burst_429=2, retry_after_seconds=30)
        await asyncio.sleep(50)
        rates.append(sim.limiter.per_minute)
        await asyncio.sleep(3600)
        rates.append(sim.limiter.per_minute)

    sim = simulate(120, check, key_limit=60)
    statuses = [s for *_, s in sim.simulator.requests]
    assert statuses.count(429) == 2
    assert sim.value("callmeter_exporter_rate_limited_total") == 2
    assert rates[0] <= 48 / 4 + 0.01  # halved twice
    assert rates[1] == 48  # back to the full budget after an hour without 429s
    first_429 = next(t for t, *_, s in sim.simulator.requests if s == 429)
    after = [t for t, *_, s in sim.simulator.requests if t > first_429]
    assert after[0] - first_429 >= 30  # nothing sent before Retry-After passed


def test_tight_budget_stretches_inventory_first_and_says_so() -> None:
    world = WorldConfig(projects=10, probes_per_project=2, tests_per_project=2, run_period=600, run_duration=60)

    def check(sim: SimulatedExporter) -> None:
        plan = sim.poller.planning.plan
        assert plan is not None and plan.stretched
        assert plan.intervals["tests"] > 900 and plan.intervals["registrars"] > 900
        assert plan.intervals["probes"] <= plan.intervals["test_runs"] <= plan.intervals["tests"]
        assert sim.value("callmeter_exporter_refresh_interval_seconds", resource="tests") == plan.intervals["tests"]

    with capture_logs() as logs:
        simulate(600, check, key_limit=10, world=world)
    warnings = [e for e in logs if e["event"] == "schedule.plan" and e["log_level"] == "warning"]
    assert warnings, "a stretched plan is logged as a warning"
    assert "CALLMETER_PROJECTS" in warnings[0]["hint"]
    assert len([e for e in logs if e["event"] == "schedule.plan"]) <= 3  # at start and when inventory grows


def test_probes_stay_fresh_under_a_tight_budget() -> None:
    """Fixed schedule: even when inventory needs more than the budget, probe lists keep their place at
    the front once every list has been read (the first pass reads each list once, in priority order)."""
    world = WorldConfig(projects=4, probes_per_project=3, tests_per_project=3, run_period=300, run_duration=60)
    ready_at: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        await sim.poller.readiness.ready.wait()
        ready_at.append(sim.wall())
        await asyncio.sleep(2 * 3600)

    sim = simulate(1, check, key_limit=10, world=world, schedule="fixed")
    assert ready_at[0] - 1_800_000_000.0 < 17 * 7.5 + 10  # the first pass: 17 lists at 8 a minute
    probe_times: dict[str, list[float]] = {}
    for t, _, path, _ in sim.simulator.requests:
        if path.endswith("/probes"):
            probe_times.setdefault(path, []).append(t)
    plan = sim.poller.planning.plan
    assert plan is not None
    for times in probe_times.values():
        gaps = [b - a for a, b in itertools.pairwise(times) if a >= ready_at[0]]
        assert len(gaps) > 50
        assert max(gaps) <= plan.intervals["probes"] * 1.2


def test_deleted_probe_disappears_after_the_next_listing() -> None:
    async def check(sim: SimulatedExporter) -> None:
        world = sim.simulator.world
        doomed = next(iter(world.probes))
        assert any(p.id == doomed for p in sim.snapshots[-1].projects[0].probes or ())
        sim.simulator.delete("probe", doomed)
        await asyncio.sleep(120)
        assert all(p.id != doomed for p in sim.snapshots[-1].projects[0].probes or ())

    simulate(120, check, key_limit=60)


def test_revoked_key_sets_up_to_zero_and_keeps_the_last_data() -> None:
    async def check(sim: SimulatedExporter) -> None:
        before = sim.snapshots[-1].projects[0].probes
        sim.simulator.revoked |= sim.simulator.keys
        await asyncio.sleep(180)
        assert sim.value("callmeter_up") == 0
        assert sim.snapshots[-1].projects[0].probes == before
        sim.simulator.revoked.clear()
        await asyncio.sleep(180)
        assert sim.value("callmeter_up") == 1

    simulate(120, check, key_limit=60)


def test_large_budget_is_used_when_there_is_work() -> None:
    """Enterprise 600/min at 100 ms latency: bounded concurrency keeps up with the budget (the fixed
    schedule, whose 5 s floors make that much work; the adaptive one reads probe lists only when probes
    execute)."""
    world = WorldConfig(projects=40, probes_per_project=2, tests_per_project=2, run_period=3600, run_duration=60)
    floors = Floors(probes=5, test_runs=5, inventory=30)
    sim = simulate(600, key_limit=600, budget_share=1.0, world=world, floors=floors, latency=0.1, schedule="fixed")
    times = [t for t, *_ in sim.simulator.requests if t >= 1_800_000_000.0 + 120]
    per_minute = len(times) / ((times[-1] - times[0]) / 60)
    assert per_minute >= 0.9 * 600
    assert max_in_window(times) <= 600


def test_cold_start_with_oldest_first_lists_jumps_to_the_last_page() -> None:
    world = WorldConfig(projects=1, probes_per_project=1, tests_per_project=3, run_period=100, run_duration=30,
                        history_runs=150)

    def check(sim: SimulatedExporter) -> None:
        project = sim.snapshots[-1].projects[0]
        assert "test_runs" in project.fetched
        truth = {test.id: run_id for _created, run_id, test
                 in sim.simulator.world.runs_of_project(project.project.id, project.fetched["test_runs"] - 0.5)}
        assert {t: r.id for t, r in project.latest_runs.items()} == truth
        pages = [p for p in api_paths(sim) if p.endswith("/test-runs")]
        assert len(pages) == 2  # page 1 shows the order, then straight to the last page

    simulate(20, check, key_limit=600, world=world, floors=Floors(probes=60, test_runs=60, inventory=900),
             configure=lambda s: s.set_faults(run_order="asc"))


def test_a_stream_of_finished_runs_starves_neither_inventory_nor_any_test() -> None:
    """Eight tests finishing a run every minute need more details than a Free key allows."""
    world = WorldConfig(projects=2, probes_per_project=3, tests_per_project=4, run_period=60, run_duration=20)
    ready_at: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        await sim.poller.readiness.ready.wait()
        ready_at.append(sim.wall() - 1_800_000_000.0)
        await asyncio.sleep(300)
        projects = sim.snapshots[-1].projects
        assert sum(len(p.latest_completed) for p in projects) == 8  # every test has its quality data
        assert all(sim.wall() - p.fetched["tests"] < 3 * 900 for p in projects)

    simulate(1, check, key_limit=10, world=world)
    assert ready_at[0] < 80  # 9 requests at 8 a minute


def test_the_fixed_probe_interval_holds_while_runs_finish_in_bursts() -> None:
    """Fixed schedule: below the probe floor (12 probe lists a minute wanted, 8 allowed) details get no
    reserve, so the probe interval does not move with the bursts in which runs finish."""
    world = WorldConfig(projects=12, probes_per_project=3, tests_per_project=10, run_period=300, run_duration=60)
    intervals: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        await sim.poller.readiness.ready.wait()
        for _ in range(180):
            await asyncio.sleep(60)
            plan = sim.poller.planning.plan
            assert plan is not None and plan.detail_reserve_per_minute == 0
            intervals.append(plan.intervals["probes"])

    sim = simulate(1, check, key_limit=10, world=world, schedule="fixed")
    assert sum(1 for p in api_paths(sim) if "/test-runs/" in p) > 20  # details still use the idle slots
    assert min(intervals) > 60 and max(intervals) == min(intervals)
    # ... and the backlog shows: most of the 120 tests wait for the summary of a newer run.
    pending = sim.value("callmeter_exporter_run_details_pending")
    assert pending == sim.poller.runs.details_pending
    assert 60 <= pending <= 120


def test_details_get_a_reserve_that_follows_the_rate_runs_finish_at() -> None:
    """Fixed schedule: ten tests finishing every 2 minutes want 5 details a minute; 48 a minute leave
    room for them."""
    world = WorldConfig(projects=1, probes_per_project=3, tests_per_project=10, run_period=120, run_duration=30)
    reserves: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        await asyncio.sleep(3600)
        for _ in range(60):
            await asyncio.sleep(60)
            plan = sim.poller.planning.plan
            assert plan is not None and plan.intervals["probes"] == 60
            reserves.append(plan.detail_reserve_per_minute)

    sim = simulate(1, check, key_limit=60, world=world, schedule="fixed")
    assert min(reserves) >= 1.25 * 4 and max(reserves) <= 1.25 * 6  # 1.25 x the rate, and steady
    assert sim.value("callmeter_exporter_run_details_pending") <= 2  # the details keep up


def test_the_plan_budgets_the_run_pages_a_listing_actually_reads() -> None:
    """Oldest first, a listing reads the previous last page and, now and then, a new one: the plan
    counts what is read (about one page), not a fixed two, so the budget it leaves is spent."""
    world = WorldConfig(projects=4, probes_per_project=3, tests_per_project=3, run_period=300, run_duration=60,
                        history_runs=300)
    planned: list[float] = []

    async def check(sim: SimulatedExporter) -> None:
        await asyncio.sleep(1800)
        planned.append(sim.poller.planning.inventory(sim.poller.store.projects).requests["test_runs"])

    sim = simulate(1, check, key_limit=10, world=world, configure=lambda s: s.set_faults(run_order="asc"))
    listings = [t for t, _, path, _ in sim.simulator.requests if path.endswith("/test-runs")]
    assert 4 <= planned[0] < 4 * 1.5
    late = [t for t in listings if t >= 1_800_000_000.0 + 900]
    plan = sim.poller.planning.plan
    assert plan is not None
    assert len(late) <= 1.5 * 4 * 900 / plan.intervals["test_runs"]
