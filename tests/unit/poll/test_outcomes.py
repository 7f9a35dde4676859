"""Endpoint outcomes, probe thresholds and test settings, read by the real client from the simulator.

The virtual-clock tests run the wired exporter against the in-process simulator; the last one goes
over real HTTP. Values are checked against what the simulator serves (its ground truth), never
against numbers written here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric
from structlog.testing import capture_logs

from exporter.api.keysource import KeySource
from exporter.api.models import KNOWN_ENDPOINT_OUTCOMES
from exporter.app.daemon import Exporter
from exporter.expose.families import snapshot_families
from exporter.settings import Floors, Settings
from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig, details
from tests.support.simulated import SimulatedExporter, build
from tests.support.vclock import run_virtual

# 230 to 250 endpoints a run: three listing pages each.
WORLD = WorldConfig(projects=1, probes_per_project=4, tests_per_project=3, run_period=300, run_duration=60,
                    endpoints_per_run=230)


def simulate(seconds: float, world: WorldConfig = WORLD, **kwargs: Any) -> SimulatedExporter:
    async def main() -> SimulatedExporter:
        sim = build(world, **kwargs)
        sim.start()
        await asyncio.sleep(seconds)
        await sim.stop()
        return sim

    return run_virtual(main())


def truth(simulator: Simulator, project_id: str, run_id: str) -> Counter[tuple[str, str]]:
    """(group, outcome) -> endpoints, as the simulator lists the run."""
    world = simulator.world
    run = world.find_run(project_id, run_id, simulator.clock())
    assert run is not None and run["status"] == "COMPLETED"
    rows = details.run_endpoints(world, world.tests[run["testId"]], run)
    return Counter((row["groupName"], row["outcome"]) for row in rows)


def published(sim: SimulatedExporter) -> list[Metric]:
    """The resource families of the last snapshot, as /metrics would serve them."""
    return snapshot_families(sim.snapshots[-1], now=sim.wall())


def value(sim: SimulatedExporter, name: str, **labels: str) -> float | None:
    samples = [s.value for f in published(sim) for s in f.samples if s.name == name and s.labels == labels]
    assert len(samples) <= 1
    return samples[0] if samples else None


def outcome_values(sim: SimulatedExporter, project: str, test_id: str, test: str) -> dict[tuple[str, str], float]:
    family = next(f for f in published(sim) if f.name == "callmeter_test_run_endpoint_outcomes")
    return {(s.labels["group"], s.labels["outcome"]): s.value for s in family.samples
            if s.labels["test_id"] == test_id and s.labels["project"] == project and s.labels["test"] == test}


def listing_requests(sim: SimulatedExporter) -> Counter[str]:
    return Counter(path for _, _, path, _ in sim.simulator.requests if path.endswith("/endpoints"))


def test_endpoint_outcomes_match_the_simulators_listing_of_each_latest_completed_run() -> None:
    sim = simulate(3600, key_limit=60)
    data = sim.snapshots[-1].projects[0]
    label = data.project.label
    seen_unknown = seen_three_groups = False
    assert data.tests and len(data.endpoint_outcomes) == len(data.tests)
    for test in data.tests:
        tally = data.endpoint_outcomes[test.id]
        assert data.latest_completed[test.id].id == tally.run_id  # the latest completed run, no older one
        expected = truth(sim.simulator, data.project.id, tally.run_id)
        values = outcome_values(sim, label, test.id, test.name or test.id)
        groups = {g for g, _ in expected}
        outcomes = {o for _, o in expected}
        # Every known outcome of every group is present, 0 where none; an undocumented one is kept as itself
        # (and one that an earlier run of the test had stays, at 0).
        assert set(values) >= {(g, o) for g in groups for o in {*KNOWN_ENDPOINT_OUTCOMES, *outcomes}}
        assert {g for g, _ in values} == groups
        assert all(n == 0 and o == details.UNKNOWN_OUTCOME for (_, o), n in values.items()
                   if o not in {*KNOWN_ENDPOINT_OUTCOMES, *outcomes})
        assert {k: v for k, v in values.items() if v} == {k: float(n) for k, n in expected.items()}
        assert sum(values.values()) == test.total_endpoints
        seen_unknown |= details.UNKNOWN_OUTCOME in outcomes
        seen_three_groups |= len(groups) == 3
    assert seen_unknown and seen_three_groups, "the world must have a run with an unknown outcome and three groups"


def test_each_completed_runs_listing_is_read_once_through_every_page() -> None:
    sim = simulate(2 * 3600, key_limit=60)
    reads = listing_requests(sim)
    assert len(reads) >= 3 * 10  # three tests, a run every five minutes
    # Three pages, each once: the paths repeat three times, never more (the last run may be mid-read).
    assert set(reads.values()) <= {1, 2, 3} and sum(1 for n in reads.values() if n == 3) >= len(reads) - 3
    assert all(status != 429 for *_, status in sim.simulator.requests)


def test_thresholds_of_full_partial_nested_and_missing_shapes() -> None:
    sim = simulate(600, key_limit=10)
    probes = [p for p in sim.simulator.world.probes.values()]
    data = sim.snapshots[-1].projects[0]
    project = data.project.label

    def threshold(probe: int, metric: str, level: str) -> float | None:
        p = probes[probe]
        return value(sim, "callmeter_probe_threshold", project=project, probe_id=p.id, probe=p.name, metric=metric,
                         level=level)

    full = details.FULL_THRESHOLDS
    assert threshold(0, "mos", "critical") == full["mos"]["critical"]
    assert threshold(0, "jitter_seconds", "warning") == full["jitter_ms"]["warning"] / 1000
    assert threshold(0, "rtt_seconds", "critical") == full["rtt_ms"]["critical"] / 1000
    assert threshold(0, "packet_loss_ratio", "warning") == full["packet_loss"]["warning"] / 100
    # Partial: a MOS warning and a jitter critical line, nothing else (an unknown metric is not read).
    partial = {(m, lv): threshold(1, m, lv) for m in ("mos", "jitter_seconds", "rtt_seconds", "packet_loss_ratio")
               for lv in ("warning", "critical")}
    assert {k: v for k, v in partial.items() if v is not None} == {("mos", "warning"): 4.0,
                                                                  ("jitter_seconds", "critical"): 0.06}
    assert all(threshold(2, m, lv) is None for m, lv in partial)
    assert threshold(3, "mos", "warning") == 3.8 and threshold(3, "packet_loss_ratio", "warning") == 0.02
    test_id = next(t.id for t in sim.simulator.world.tests.values())
    for p in probes:
        assert value(sim, "callmeter_probe_info", project=project, probe_id=p.id, probe=p.name, test_id=test_id) == 1


def test_test_info_carries_duration_endpoints_and_codecs() -> None:
    sim = simulate(600, key_limit=10)
    world = sim.simulator.world
    project = sim.snapshots[-1].projects[0].project.label
    for test in world.tests.values():
        detail = details.detail_of_test(world, test, {})
        assert value(sim, "callmeter_test_info", project=project, test_id=test.id, test=test.name,
                         duration_seconds=str(world.test_duration(test)), endpoints=str(test.endpoints),
                         codecs=",".join(detail["codecs"])) == 1


def test_unknown_threshold_fields_are_logged_once() -> None:
    with capture_logs() as logs:
        simulate(3 * 3600, key_limit=60, floors=Floors(probes=60, test_runs=60, inventory=600))
    unread = [e for e in logs if e["event"] == "details.unread"]
    assert [e["fields"] for e in unread] == [["pdd_ms.warning"]]


def test_off_reads_neither_listings_nor_details() -> None:
    sim = simulate(1800, key_limit=10, run_endpoints="off", config_details="off")
    paths = [path for _, _, path, _ in sim.simulator.requests]
    assert not [p for p in paths if p.endswith("/endpoints") or "/probes/" in p or "/tests/" in p]
    assert "callmeter_test_run_endpoint_outcomes" not in {s.name for f in published(sim) for s in f.samples}


def test_auto_reads_nothing_below_a_stretched_plan_and_on_still_reads_listings() -> None:
    """Probe lists every 30 s on three projects and a Free key: the run lists stretch. `auto` reads
    nothing below the plan; `on` gets a reserve, as run details do, and reads the listings."""
    world = WorldConfig(projects=3, probes_per_project=2, tests_per_project=3, run_period=600, run_duration=60)
    floors = Floors(probes=30, test_runs=60, inventory=900)
    auto = simulate(3600, world, key_limit=10, floors=floors)
    assert auto.poller.planning.plan is not None and auto.poller.planning.plan.stretched
    paths = [path for _, _, path, _ in auto.simulator.requests]
    assert not [p for p in paths if p.endswith("/endpoints") or "/probes/" in p or "/tests/" in p]
    on = simulate(3600, world, key_limit=10, floors=floors, run_endpoints="on")
    assert on.poller.planning.plan is not None and on.poller.planning.plan.stretched
    assert len(listing_requests(on)) >= 9
    assert not [p for _, _, p, _ in on.simulator.requests if "/probes/" in p or "/tests/" in p]


def test_spare_reads_hold_the_budget_and_never_delay_a_list() -> None:
    """Six hours on a Free key: no 60 s window over the budget, no 429, and probe lists read on their
    interval as without the reads below the plan."""
    world = WorldConfig(projects=2, probes_per_project=3, tests_per_project=4, run_period=400, run_duration=60,
                        endpoints_per_run=180)
    runs = {}
    for mode in ("auto", "off"):
        runs[mode] = simulate(6 * 3600, world, key_limit=10, run_endpoints=mode, config_details=mode)
    requests = runs["auto"].simulator.requests
    times = sorted(t for t, *_ in requests)
    assert max(sum(1 for u in times[i:i + 9] if u - t < 60) for i, t in enumerate(times)) <= 8
    assert all(status != 429 for *_, status in requests)
    assert listing_requests(runs["auto"]) and len(requests) > len(runs["off"].simulator.requests)

    def probe_gaps(sim: SimulatedExporter) -> list[float]:
        times: dict[str, list[float]] = {}
        for t, _, path, _ in sim.simulator.requests:
            if path.endswith("/probes") and t > 1_800_000_000 + 600:
                times.setdefault(path, []).append(t)
        return sorted(b - a for ts in times.values() for a, b in itertools.pairwise(ts))

    on, off = probe_gaps(runs["auto"]), probe_gaps(runs["off"])
    assert max(on) <= max(off) + 0.01 and sum(on) / len(on) <= sum(off) / len(off) + 0.01


def test_a_restart_with_a_state_file_reads_no_listing_or_detail_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    seen: dict[str, Any] = {}

    async def main() -> None:
        first = build(WORLD, key_limit=10, state_file=path, run_endpoints="on")
        first.start()
        await asyncio.sleep(1200)
        await first.stop()
        await first.exporter.save_state()
        seen["before"] = len(first.simulator.requests)
        seen["data"] = first.poller.store.projects
        second = build(WORLD, key_limit=10, state_file=path, run_endpoints="on", simulator=first.simulator)
        restored = dict(second.poller.store.projects)
        seen["restarted_at"] = second.wall()
        seen["restored"] = restored
        second.start()
        await asyncio.sleep(60)
        await second.stop()
        seen["after"] = first.simulator.requests[seen["before"]:]

    run_virtual(main())
    before = next(iter(seen["data"].values()))
    restored = next(iter(seen["restored"].values()))
    assert restored.endpoint_outcomes == before.endpoint_outcomes and restored.endpoint_outcomes
    assert restored.probe_details == before.probe_details and len(restored.probe_details) == 4
    assert restored.test_details == before.test_details and len(restored.test_details) == 3
    # No listing of a run already read; no detail read again before its inventory interval (900 s) is up.
    restarted = seen["restarted_at"]
    recent = {d.id for d in [*before.probe_details.values(), *before.test_details.values()]
              if d.read_at > restarted - 900 + 60}
    assert recent
    again = [p for _, _, p, _ in seen["after"] if p.rsplit("/", 1)[-1] in recent
             or any(p.endswith(f"{t.run_id}/endpoints") for t in before.endpoint_outcomes.values())]
    assert again == []


def test_values_over_real_http(simulator: SimulatorServer) -> None:
    """The same path over a socket: the threaded simulator on loopback, the exporter's own client."""
    simulator.simulator.world = Simulator(WORLD, clock=simulator.simulator.clock).world

    async def main() -> dict[str, Any]:
        settings = Settings(api_key=DEMO_KEY, base_url=simulator.base_url, requests_per_minute=600)
        exporter = Exporter.build(settings, key=KeySource(value=DEMO_KEY),
                                  floors=Floors(probes=5, test_runs=5, inventory=20), publish=lambda _: None)
        task = asyncio.create_task(exporter.poller.run())
        try:
            for _ in range(300):
                await asyncio.sleep(0.1)
                data = next(iter(exporter.poller.store.projects.values()), None)
                if data and data.tests and len(data.endpoint_outcomes) == 3 and len(data.probe_details) == 4:
                    break
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await exporter.client.aclose()
        return {"data": data}

    data = asyncio.run(main())["data"]
    assert data is not None and len(data.endpoint_outcomes) == 3
    for tally in data.endpoint_outcomes.values():
        assert {k: n for k, n in tally.counts.items() if n} == truth(simulator.simulator, data.project.id, tally.run_id)
