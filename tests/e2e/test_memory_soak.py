"""Memory that stays flat: the poller and its collections over simulated hours of runs.

In-process on a virtual clock, but a soak: tracemalloc makes it take a minute, so it runs in the slow tier."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from exporter.api.budget import RateLimiter
from exporter.api.client import CallMeterClient
from exporter.api.keysource import KeySource
from exporter.expose.exposition import Exposition, render
from exporter.expose.families import snapshot_families
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.runs import COUNTED_RUNS_KEPT
from exporter.model.snapshot import Snapshot
from exporter.poll.poller import Poller, PollOptions
from exporter.settings import Floors
from exporter.simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig
from tests.support.vclock import run_virtual

HOUR = 3600.0
WORLD = WorldConfig(projects=1, probes_per_project=4, tests_per_project=8, run_period=10, run_duration=5,
                    history_runs=3)
SIMULATOR_CODE = tracemalloc.Filter(False, "*/exporter/simulator/*")


def _sizes(poller: Poller, client: CallMeterClient) -> dict[str, int]:
    """The poller's collections that could grow with the number of runs seen."""
    states: list[Any] = list(poller.runs.projects.values())
    return {
        "counted": sum(len(s.counted) for s in states),
        "seen_runs": sum(len(s.seen_runs) for s in states),
        "latest_runs": sum(len(s.latest_runs) for s in states),
        "latest_completed": sum(len(s.latest_completed) for s in states),
        "wanted_runs": sum(len(s.wanted_runs) for s in states),
        "jobs": len(poller.scheduler.jobs),
        "finished_series": len(poller.runs.finished),
        "open_bursts": len(client._recorder.bursts._open),
    }


def _exporter_heap() -> int:
    """Bytes traced and still alive, leaving out what the simulator allocated (its own caches grow
    with the simulated history; the exporter's memory must not)."""
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces([SIMULATOR_CODE]).statistics("filename"))


def test_memory_and_state_stay_bounded_over_thousands_of_runs() -> None:
    """Two simulated hours of 8 tests each running every 10 s (about 5,700 runs), in seconds: after a
    warm-up that fills the counted-runs memory and trims it once, every collection stays within its
    bound and the exporter's traced heap stays flat."""
    result: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def wall() -> float:
            return 1.8e9 + loop.time()

        simulator = Simulator(WORLD, clock=wall)
        simulator.record_requests = False
        per_minute = 96.0  # pro plan x 0.8
        limiter = RateLimiter(per_minute=per_minute, window_cap=int(per_minute), clock=loop.time)
        registry = CollectorRegistry(auto_describe=False)
        metrics = ExporterMetrics(registry, budget_per_minute=per_minute, current_rate=lambda: limiter.per_minute)
        exposition = Exposition(registry, metrics)
        client = CallMeterClient(base_url="http://callmeter.invalid/api/v1", key=KeySource(value=DEMO_KEY),
                                 limiter=limiter, observer=metrics,
                                 transport=SimulatorTransport(simulator, latency=0.05))

        def publish(snapshot: Snapshot) -> None:
            exposition.publish_rendered(render(snapshot_families(snapshot, now=wall())))

        # Publishing every 10 s rather than every second renders a tenth as often; what is kept is the same.
        poller = Poller(client=client, limiter=limiter, metrics=metrics, publish=publish, wall=wall,
                        options=PollOptions(floors=Floors(), publish_interval=10.0))
        task = asyncio.create_task(poller.run())
        heap: list[int] = []
        sizes: list[dict[str, int]] = []
        try:
            await asyncio.sleep(HOUR)  # warm-up: caches, the counted-runs memory filled and trimmed once
            for _ in range(6):
                await asyncio.sleep(HOUR / 6)
                exposition.body(openmetrics=False, gzipped=True)  # a scrape now and then
                heap.append(_exporter_heap())
                sizes.append(_sizes(poller, client))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()
        result.update(heap=heap, sizes=sizes, finished=sum(poller.runs.finished.values()), up=metrics.up)

    # Rendering thousands of debug lines would dominate the run time (the conftest resets this).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.monotonic()
    # Traced from the start: an object allocated before tracing began and replaced later would look
    # like growth.
    tracemalloc.start()
    try:
        run_virtual(main())
    finally:
        tracemalloc.stop()
    took = time.monotonic() - started
    heap, sizes = result["heap"], result["sizes"]
    print(f"simulated 2 h in {took:.1f}s; runs counted {result['finished']}; exporter heap after warm-up "
          "(KiB, every 10 min): " + ", ".join(f"{h / 1024:.0f}" for h in heap))
    assert result["up"] is True
    assert result["finished"] > 4000, "the simulation did not produce thousands of runs"
    for size in sizes:
        assert size["counted"] <= COUNTED_RUNS_KEPT
        assert size["seen_runs"] <= 300
        assert size["latest_runs"] <= WORLD.tests_per_project
        assert size["latest_completed"] <= WORLD.tests_per_project
        assert size["wanted_runs"] <= WORLD.tests_per_project
        assert size["jobs"] <= 4 + 1 + WORLD.tests_per_project
        assert size["finished_series"] <= WORLD.tests_per_project * 3
        assert size["open_bursts"] == 0
    # Flat: the counted-runs memory saws between half and all of its bound (some 150 KiB); nothing
    # else may grow. The later half never exceeds the earlier half's peak by more than a margin.
    first, second = heap[: len(heap) // 2], heap[len(heap) // 2:]
    assert max(second) <= max(first) + 64 * 1024, [h // 1024 for h in heap]
    assert max(heap) - min(heap) < 512 * 1024, [h // 1024 for h in heap]
