"""Webhooks and the poller, on a virtual clock against the in-process simulator: the fast path, the
read that decides, unknown probes and projects, order, and a flood that neither spends the budget nor
starves the schedule."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from exporter.poll.nudge import NUDGE_GAP
from exporter.simulator import WorldConfig
from exporter.webhooks import Answer, sign
from tests.support.budget import max_in_window
from tests.support.simulated import SimulatedExporter, build
from tests.support.vclock import run_virtual

SECRET = "whsec_" + "p0" * 20
WORLD = WorldConfig(projects=2, probes_per_project=3, tests_per_project=2, run_period=300, run_duration=60)


def deliver(sim: SimulatedExporter, probe_id: str, project_id: str, new: str | None, previous: str | None = None,
            *, at: float | None = None, secret: str = SECRET) -> Answer:
    payload: dict[str, Any] = {"event": "probe.status_changed", "probe_id": probe_id, "probe_name": "x",
                               "project_id": project_id, "project_name": "y", "previous_status": previous,
                               "new_status": new, "timestamp": sim.wall() if at is None else at}
    body = json.dumps(payload).encode()
    receiver = sim.exporter.receiver
    assert receiver is not None
    return receiver.handle("POST", {"x-callmeter-signature": sign(body, secret)}, body)


def shown(sim: SimulatedExporter, probe_id: str) -> str | None:
    for project in sim.snapshots[-1].projects:
        for probe in project.probes or ():
            if probe.id == probe_id:
                return probe.status
    return None


def probe_reads(sim: SimulatedExporter, project_id: str) -> list[float]:
    return [t for t, _, path, _ in sim.simulator.requests if path.endswith(f"/projects/{project_id}/probes")]


def run(check: Callable[[SimulatedExporter], Awaitable[None]], **kwargs: Any) -> SimulatedExporter:
    async def main() -> SimulatedExporter:
        sim = build(kwargs.pop("world", WORLD), webhook_secret=SECRET, **kwargs)
        sim.start()
        try:
            await sim.poller.readiness.ready.wait()
            await asyncio.sleep(5)
            await check(sim)
        finally:
            await sim.stop()
        return sim

    return run_virtual(main())


def _a_probe(sim: SimulatedExporter) -> tuple[str, str]:
    probe = sim.simulator.state()["probes"][0]
    return probe["id"], probe["project_id"]


def test_a_delivery_shows_at_once_and_the_read_it_asks_for_confirms_it() -> None:
    async def check(sim: SimulatedExporter) -> None:
        probe, project = _a_probe(sim)
        sim.simulator.set_probe_status(probe, "HEALTHY")
        await asyncio.sleep(120)  # the schedule has read HEALTHY
        assert shown(sim, probe) == "HEALTHY"
        reads_before = len(probe_reads(sim, project))
        sim.simulator.set_probe_status(probe, "UNHEALTHY")
        sent = sim.wall()
        assert deliver(sim, probe, project, "UNHEALTHY", "HEALTHY").result == "applied"
        await asyncio.sleep(0.2)
        assert shown(sim, probe) == "UNHEALTHY"  # at once, while the read it asked for is still under way
        assert sim.poller.store.overlay.pending(project).keys() == {probe}
        await asyncio.sleep(10)
        reads = probe_reads(sim, project)
        assert len(reads) == reads_before + 1 and sent < reads[-1] < sent + 5  # nudged, long before its interval
        assert shown(sim, probe) == "UNHEALTHY"
        assert not sim.poller.store.overlay
        assert sim.value("callmeter_exporter_webhook_confirmation_delay_seconds_count") == 1
        delay = sim.value("callmeter_exporter_webhook_confirmation_delay_seconds_sum")
        assert delay is not None and 2.0 <= delay < 3.0  # the read's 2 s
        assert sim.value("callmeter_exporter_webhook_last_delivery_timestamp_seconds") == sent

    run(check, key_limit=60, latency=2.0)


def test_the_poll_decides_when_it_disagrees() -> None:
    async def check(sim: SimulatedExporter) -> None:
        probe, project = _a_probe(sim)
        sim.simulator.set_probe_status(probe, "HEALTHY")
        await asyncio.sleep(120)
        assert deliver(sim, probe, project, "DEGRADED", "HEALTHY").result == "applied"  # CallMeter says so...
        await asyncio.sleep(0.2)
        assert shown(sim, probe) == "DEGRADED"
        await asyncio.sleep(10)
        assert shown(sim, probe) == "HEALTHY"  # ...but the API does not: the read wins
        assert sim.value("callmeter_exporter_webhook_disagreements_total") == 1
        assert sim.value("callmeter_exporter_webhook_confirmation_delay_seconds_count") == 0

    run(check, key_limit=60, latency=2.0)


def test_unknown_probes_and_projects_get_a_read_of_their_list_and_no_invented_series() -> None:
    async def check(sim: SimulatedExporter) -> None:
        _, project = _a_probe(sim)
        reads_before = len(probe_reads(sim, project))
        assert deliver(sim, "probe_not_listed_yet", project, "UNHEALTHY").result == "unknown_probe"
        await asyncio.sleep(10)
        assert len(probe_reads(sim, project)) == reads_before + 1
        assert shown(sim, "probe_not_listed_yet") is None
        projects_before = sum(1 for *_, path, _ in sim.simulator.requests if path.endswith("/projects"))
        assert deliver(sim, "probe_x", "project_not_listed_yet", "UNHEALTHY").result == "unknown_project"
        await asyncio.sleep(10)
        projects_after = sum(1 for *_, path, _ in sim.simulator.requests if path.endswith("/projects"))
        assert projects_after == projects_before + 1
        assert all(p.project.id != "project_not_listed_yet" for p in sim.snapshots[-1].projects)

    run(check, key_limit=60)


def test_an_older_delivery_after_a_newer_one_leaves_the_newer_status_shown() -> None:
    async def check(sim: SimulatedExporter) -> None:
        probe, project = _a_probe(sim)
        now = sim.wall()
        assert deliver(sim, probe, project, "UNHEALTHY", "DEGRADED", at=now - 1).result == "applied"
        assert deliver(sim, probe, project, "DEGRADED", "HEALTHY", at=now - 20).result == "out_of_order"
        await asyncio.sleep(0.2)
        assert shown(sim, probe) == "UNHEALTHY"

    run(check, key_limit=60)


def test_a_rejected_delivery_changes_nothing_and_asks_for_no_read() -> None:
    async def check(sim: SimulatedExporter) -> None:
        probe, project = _a_probe(sim)
        before = shown(sim, probe)
        requests = len(sim.simulator.requests)
        answer = deliver(sim, probe, project, "UNKNOWN" if before != "UNKNOWN" else "HEALTHY", secret="wrong")
        assert answer.status == 401
        await asyncio.sleep(1)
        assert shown(sim, probe) == before and len(sim.simulator.requests) == requests

    run(check, key_limit=600)


# -- a flood ---------------------------------------------------------------------------------------------

FLOOD_WORLD = WorldConfig(projects=3, probes_per_project=4, tests_per_project=3, run_period=300, run_duration=60)


async def flood(sim: SimulatedExporter, count: int = 1000, seconds: float = 5.0) -> dict[str, int]:
    """`count` deliveries over `seconds`: most valid (known probes, every status, every other round 2 s
    older than the one before), some replayed, some for unknown probes and projects, some forged."""
    probes = [(p["id"], p["project_id"]) for p in sim.simulator.state()["probes"]]
    statuses = itertools.cycle(["HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN"])
    receiver = sim.exporter.receiver
    assert receiver is not None
    results: dict[str, int] = {}
    previous = b""
    for i in range(count):
        probe, project = probes[i % len(probes)]
        kind = i % 10
        if kind == 6:
            answer = receiver.handle("POST", {"x-callmeter-signature": sign(previous, SECRET)}, previous)
        elif kind == 7:
            answer = deliver(sim, f"probe_new_{i}", project, "UNHEALTHY")
        elif kind == 8:
            answer = deliver(sim, probe, f"project_new_{i}", "UNHEALTHY")
        elif kind == 9:
            answer = deliver(sim, probe, project, "UNHEALTHY", secret="forged")
        else:
            at = sim.wall() - 2 * ((i // len(probes)) % 2)
            payload = {"event": "probe.status_changed", "probe_id": probe, "project_id": project,
                       "previous_status": None, "new_status": next(statuses), "timestamp": at}
            previous = json.dumps(payload).encode()
            answer = receiver.handle("POST", {"x-callmeter-signature": sign(previous, SECRET)}, previous)
        results[answer.result] = results.get(answer.result, 0) + 1
        if i % (count // 50) == 0:
            await asyncio.sleep(seconds / 50)
    return results


def schedule(with_flood: bool) -> tuple[SimulatedExporter, float, dict[str, int]]:
    """Half an hour to settle on a Free-plan budget, then (or not) the flood, then half an hour."""
    outcome: dict[str, Any] = {"results": {}}

    async def check(sim: SimulatedExporter) -> None:
        await asyncio.sleep(1800)
        outcome["started"] = sim.wall()
        if with_flood:
            outcome["results"] = await flood(sim)
        await asyncio.sleep(1800)

    sim = run(check, key_limit=10, world=FLOOD_WORLD)
    return sim, outcome["started"], outcome["results"]


def worst_gaps(sim: SimulatedExporter, since: float) -> dict[str, float]:
    """The longest time between two reads of each list (run details aside) since `since`."""
    reads: dict[str, list[float]] = {}
    for t, _, path, _ in sim.simulator.requests:
        if t >= since and "/test-runs/" not in path:
            reads.setdefault(path, []).append(t)
    return {path: max(b - a for a, b in itertools.pairwise(times)) for path, times in reads.items() if len(times) > 1}


def test_a_flood_of_deliveries_keeps_the_budget_and_the_schedule() -> None:
    """1,000 deliveries in 5 s on a Free-plan budget (8 requests a minute): no 60 s window holds more
    than the budget, reads asked for by webhooks stay within NUDGE_GAP per project, and no list on the
    schedule waits longer between two reads than it does without the flood, give or take one slot."""
    quiet, started, _ = schedule(with_flood=False)
    sim, started_again, results = schedule(with_flood=True)
    assert started_again == started
    assert sum(results.values()) == 1000
    assert results["bad_signature"] == 100 and results["replayed"] >= 100  # and any identical body
    assert results["unknown_probe"] == 100 and results["unknown_project"] == 100
    assert results["applied"] > 200 and results["out_of_order"] > 100
    times = [t for t, *_ in sim.simulator.requests]
    assert max_in_window(times) <= 8  # the Free plan's 10 a minute times the 0.8 share
    assert all(status != 429 for *_, status in sim.simulator.requests)
    spacing = 60 / 8
    baseline, flooded = worst_gaps(quiet, started), worst_gaps(sim, started)
    assert flooded.keys() == baseline.keys()
    for path, gap in flooded.items():
        assert gap <= baseline[path] + spacing, (path, gap, baseline[path])
    for project in {p["project_id"] for p in sim.simulator.state()["probes"]}:
        during = [t for t in probe_reads(sim, project) if started <= t < started + 60]
        assert len(during) <= 60 / NUDGE_GAP
    extra = len(sim.simulator.requests) - len(quiet.simulator.requests)
    assert 0 <= extra <= 3600 / 60 * 2  # over the hour, what the nudges cost: at most ~2 a minute
