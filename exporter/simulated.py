"""The real poller against the in-process simulator on a virtual clock: hours of schedule in seconds.

Used by the scheduler tests and `benchmarks/schedule.py`. Nothing here is used by the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from .budget import RateLimiter
from .client import CallMeterClient
from .keysource import KeySource
from .planner import Floors
from .poller import Poller
from .selfmetrics import ExporterMetrics
from .simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig
from .snapshot import Snapshot

WALL_START = 1_800_000_000.0


@dataclass
class SimulatedExporter:
    simulator: Simulator
    poller: Poller
    limiter: RateLimiter
    metrics: ExporterMetrics
    registry: CollectorRegistry
    client: CallMeterClient
    snapshots: list[Snapshot] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def wall(self) -> float:
        return self.simulator.clock()

    def start(self) -> None:
        self.task = asyncio.create_task(self.poller.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def build(
    world: WorldConfig,
    *,
    key_limit: int = 10,
    budget_share: float = 0.8,
    floors: Floors | None = None,
    latency: float = 0.1,
    simulator_rate_limit: int | None = None,
    max_concurrency: int = 4,
    lookback_pages: int = 3,
    keep_snapshots: bool = False,
    publish_interval: float = 1.0,
    configure: Callable[[Simulator], None] | None = None,
) -> SimulatedExporter:
    """Wire a poller to a simulator; call from inside a running (virtual-time) event loop."""
    loop = asyncio.get_running_loop()

    def wall() -> float:
        return WALL_START + loop.time()

    simulator = Simulator(world, clock=wall, rate_limit_per_minute=simulator_rate_limit or key_limit)
    simulator.record_requests = True
    if configure is not None:
        configure(simulator)
    per_minute = key_limit * budget_share
    limiter = RateLimiter(per_minute=per_minute, window_cap=max(1, int(per_minute)), clock=loop.time)
    registry = CollectorRegistry(auto_describe=False)
    metrics = ExporterMetrics(registry, budget_per_minute=per_minute, current_rate=lambda: limiter.per_minute)
    client = CallMeterClient(base_url="http://callmeter.invalid/api/v1", key=KeySource(value=DEMO_KEY),
                             limiter=limiter, observer=metrics, max_concurrency=max_concurrency,
                             transport=SimulatorTransport(simulator, latency=latency))
    holder = SimulatedExporter(simulator, None, limiter, metrics, registry, client)  # type: ignore[arg-type]

    def publish(snapshot: Snapshot) -> None:
        if keep_snapshots:
            holder.snapshots.append(snapshot)
        else:
            holder.snapshots[:] = [snapshot]

    holder.poller = Poller(client=client, limiter=limiter, metrics=metrics, publish=publish,
                           floors=floors or Floors(), lookback_pages=lookback_pages, max_concurrency=max_concurrency,
                           publish_interval=publish_interval, wall=wall)
    return holder
