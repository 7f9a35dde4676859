"""The real exporter against the in-process simulator on a virtual clock: hours of schedule in seconds.

Wired by `Exporter.build`, like the daemon, with the simulator's transport and clock. Used by the
scheduler tests and the benchmarks under `benchmarks/`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from exporter.api.budget import RateLimiter
from exporter.api.client import CallMeterClient
from exporter.api.keysource import KeySource
from exporter.app.daemon import Exporter
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.snapshot import Snapshot
from exporter.poll.poller import Poller
from exporter.settings import Floors, Settings
from exporter.simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig

WALL_START = 1_800_000_000.0


@dataclass
class SimulatedExporter:
    simulator: Simulator
    exporter: Exporter
    snapshots: list[Snapshot] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def poller(self) -> Poller:
        return self.exporter.poller

    @property
    def limiter(self) -> RateLimiter:
        return self.exporter.limiter

    @property
    def metrics(self) -> ExporterMetrics:
        return self.exporter.metrics

    @property
    def registry(self) -> CollectorRegistry:
        return self.exporter.registry

    @property
    def client(self) -> CallMeterClient:
        return self.exporter.client

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
    simulator: Simulator | None = None,
    **settings: object,
) -> SimulatedExporter:
    """Wire an exporter to a simulator; call from inside a running (virtual-time) event loop. Further
    keyword arguments are `Settings` fields."""
    loop = asyncio.get_running_loop()

    def wall() -> float:
        return WALL_START + loop.time()

    if simulator is None:  # else: a second exporter against the same CallMeter (a restart)
        simulator = Simulator(world, clock=wall, rate_limit_per_minute=simulator_rate_limit or key_limit)
    simulator.record_requests = True
    if configure is not None:
        configure(simulator)
    holder: list[SimulatedExporter] = []

    def publish(snapshot: Snapshot) -> None:
        # Looked up on each publish: a benchmark may swap `snapshots` for a watcher of its own.
        snapshots = holder[0].snapshots
        if keep_snapshots:
            snapshots.append(snapshot)
        else:
            snapshots[:] = [snapshot]

    config = Settings(api_key=DEMO_KEY, base_url="http://callmeter.invalid/api/v1", requests_per_minute=key_limit,
                      budget_share=budget_share, max_concurrency=max_concurrency,
                      run_lookback_pages=lookback_pages, **settings)  # type: ignore[arg-type]
    exporter = Exporter.build(config, key=KeySource(value=DEMO_KEY), floors=floors or Floors(),
                              transport=SimulatorTransport(simulator, latency=latency), wall=wall,
                              publish_interval=publish_interval, publish=publish)
    holder.append(SimulatedExporter(simulator, exporter))
    return holder[0]
