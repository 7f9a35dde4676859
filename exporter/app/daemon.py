"""Wiring: settings in, a running exporter out. Every part gets its dependencies here and nowhere else."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import httpx
from prometheus_client import CollectorRegistry

from ..api.budget import RateLimiter
from ..api.client import CallMeterClient
from ..api.keysource import KeySource
from ..expose.edge import Rejections
from ..expose.exposition import Exposition, render
from ..expose.families import snapshot_families
from ..expose.selfmetrics import ExporterMetrics
from ..model.kinds import KINDS
from ..model.snapshot import Snapshot
from ..poll.nudge import ProbePush
from ..poll.poller import Poller, PollOptions
from ..poll.resume import capture, resume
from ..poll.state import StateFile
from ..settings import Floors, Settings
from ..webhooks import Receiver, WebhookMetrics, WebhookSecrets
from .landing import LandingFacts, landing_page

STATE_SAVE_INTERVAL = 5.0
"""At most this often the state file is written (when something changed), and once more on stop."""


@dataclass
class Exporter:
    """A wired exporter: poller, caches and server sharing one registry."""

    settings: Settings
    registry: CollectorRegistry
    metrics: ExporterMetrics
    exposition: Exposition
    limiter: RateLimiter
    client: CallMeterClient
    poller: Poller
    key: KeySource
    rejections: Rejections
    """The HTTP edge's rejected requests, by listener and reason."""
    state_file: StateFile | None = None
    saved_counts: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """The finished-run counters as last written to the state file."""
    receiver: Receiver | None = None
    """The webhook receiver, when a webhook secret is set."""
    webhook_url: str | None = None
    """Where the receiver listens, once `serve` has started it."""

    wall: Callable[[], float] = time.time
    """The clock the exporter stamps its data with (the simulator's, in simulated runs)."""

    @classmethod
    def build(cls, settings: Settings, *, base_url: str | None = None, key: KeySource | None = None,
              floors: Floors | None = None, transport: httpx.AsyncBaseTransport | None = None,
              wall: Callable[[], float] = time.time, publish_interval: float = 1.0,
              publish: Callable[[Snapshot], Awaitable[None] | None] | None = None) -> Exporter:
        """The one place that wires the parts. Simulated runs (tests, benchmarks) pass the simulator's
        `transport` and `wall` clock, and a `publish` that keeps snapshots instead of rendering them."""
        loop_time = asyncio.get_running_loop().time
        per_minute = settings.budget_per_minute
        limiter = RateLimiter(per_minute=per_minute, window_cap=settings.budget_window_cap, clock=loop_time)
        registry = CollectorRegistry(auto_describe=False)
        metrics = ExporterMetrics(registry, budget_per_minute=per_minute, current_rate=lambda: limiter.per_minute)
        key = key or _key_source(settings)
        client = CallMeterClient(base_url=base_url or settings.base_url, key=key, limiter=limiter,
                                 timeout=settings.http_timeout, max_concurrency=settings.max_concurrency,
                                 observer=metrics, transport=transport)
        hooks = WebhookMetrics(registry, on_change=metrics.mark_changed) if settings.webhooks_enabled else None
        poller = Poller(client=client, limiter=limiter, metrics=metrics,
                        publish=publish or (lambda snapshot: exporter.publish(snapshot)),
                        options=PollOptions.of(settings, floors=floors, publish_interval=publish_interval),
                        wall=wall, webhook_metrics=hooks)
        rejections = Rejections(registry, listener_names(settings), on_change=metrics.mark_changed)
        exporter = cls(settings, registry, metrics, Exposition(registry, metrics), limiter, client, poller, key,
                       rejections, wall=wall)
        if hooks is not None:
            exporter.receiver = _receiver(settings, hooks, poller, spacing=lambda: limiter.interval, clock=loop_time)
        if settings.state_file is not None:
            exporter.state_file = StateFile(settings.state_file, base_url=base_url or settings.base_url)
            saved = exporter.state_file.load(key=key.get(), lookback_pages=settings.run_lookback_pages)
            if saved is not None:
                resume(poller, saved)
        return exporter

    async def publish(self, snapshot: Snapshot) -> None:
        """Save the state file when a counter moved, then render the snapshot for /metrics.

        New counter values reach the file before any scrape can see them: a kill -9 can lose the last
        seconds of data, but never roll a counter Prometheus has read back (a reset)."""
        if self.state_file is not None and snapshot.finished_runs != self.saved_counts:
            await self.save_state()
        unit, wall = self.settings.packet_loss_unit, self.wall
        # A large account takes a second to render: off the event loop, scrapes keep being served.
        rendered = await asyncio.to_thread(
            lambda: render(snapshot_families(snapshot, now=wall(), packet_loss_unit=unit)))
        self.exposition.publish_rendered(rendered)

    async def save_state(self) -> None:
        """Write the state file (if one is set): encoded on the event loop, written off it."""
        if self.state_file is None:
            return
        state = capture(self.poller)
        payload = self.state_file.encode(state, key=self.key.get(), written_at=time.time())
        self.saved_counts = dict(state.runs.finished)
        await asyncio.to_thread(self.state_file.write, payload)

    async def keep_state(self) -> None:
        """Save every `STATE_SAVE_INTERVAL` seconds while something changed (a new snapshot was built)."""
        saved: Snapshot | None = None
        while True:
            await asyncio.sleep(STATE_SAVE_INTERVAL)
            if self.poller.publisher.snapshot is not saved:
                saved = self.poller.publisher.snapshot
                await self.save_state()

    def landing_page(self) -> str:
        plan = self.poller.planning.plan
        return landing_page(LandingFacts(
            up=self.metrics.up, down_reason=self.metrics.down_reason, demo=self.settings.demo,
            budget_per_minute=self.metrics.budget_per_minute, rate_per_minute=self.limiter.per_minute,
            stretched=plan.stretched if plan else (), telemetry_path=self.settings.telemetry_path,
            resources=tuple(KINDS), last_success=self.metrics.last_success, intervals=self.metrics.intervals,
            now=time.time()))

    async def once(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
        """One complete refresh, the exposition on `out`; 0 when the API was read, 1 when it was not
        (and why, on `err`)."""
        print(f"callmeter-exporter: one complete refresh from {self.settings.base_url} ...", file=err, flush=True)
        task = asyncio.create_task(self.poller.run())
        settled = asyncio.create_task(self.poller.readiness.settled.wait())
        failed = asyncio.create_task(self.poller.readiness.failed.wait())
        try:
            await asyncio.wait({settled, failed, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, settled, failed):
                t.cancel()
            await asyncio.gather(task, settled, failed, return_exceptions=True)
            await self.client.aclose()
        if not self.poller.readiness.settled.is_set():
            reason = self.metrics.down_reason or "the refresh did not complete"
            print(f"callmeter-exporter: could not read the CallMeter API: {reason}", file=err, flush=True)
            return 1
        self.exposition.publish(snapshot_families(self.poller.build_snapshot(), now=time.time(),
                                                  packet_loss_unit=self.settings.packet_loss_unit))
        parts, _ = self.exposition.body(openmetrics=False, gzipped=False)
        out.write(b"".join(parts).decode())
        out.flush()
        return 0


def listener_names(settings: Settings) -> tuple[str, ...]:
    """The `listener` label values: the receiver on an address of its own is a second listener."""
    return ("main", "webhooks") if settings.webhooks_enabled and settings.webhook_listen_address else ("main",)


def _key_source(settings: Settings) -> KeySource:
    secret = settings.api_key.get_secret_value() if settings.api_key else None
    return KeySource(value=secret, path=settings.api_key_file if secret is None else None)


def _receiver(settings: Settings, hooks: WebhookMetrics, poller: Poller, *, spacing: Callable[[], float],
              clock: Callable[[], float]) -> Receiver:
    """The webhook receiver, handing verified deliveries to the poller's store and scheduler."""
    value = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    secrets = WebhookSecrets(value=value, path=settings.webhook_secret_file if value is None else None)
    push = ProbePush(store=poller.store, scheduler=poller.scheduler, clock=poller.now, republish=poller.republish,
                     spacing=spacing)
    return Receiver(secrets=secrets.current, metrics=hooks, sink=push,
                    signature_header=settings.webhook_signature_header,
                    timestamp_header=settings.webhook_timestamp_header,
                    tolerance=settings.webhook_timestamp_tolerance, wall=poller.wall, clock=clock)
