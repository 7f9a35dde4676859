"""The exporter's own metrics: API requests, errors, latency, the budget, freshness.

These change between snapshots, so they live in their own registry and are rendered per scrape;
`version` moves whenever any of them changes, which lets the exposition cache reuse the last render.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..api.errors import ERROR_KINDS
from ..model.kinds import KINDS

disable_created_metrics: Callable[[], None] = prometheus_client.disable_created_metrics  # untyped upstream
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OBSERVATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
OBSERVED = ("probes", "test_runs")
CAPPED_FAMILIES = ("callmeter_test_run_endpoint_outcomes",)
"""Families whose label values a cardinality cap may fold (see `endpoints`)."""


class ExporterMetrics(Collector):
    """Implements the client's RequestObserver; the scheduler reports freshness and the schedule here."""

    def __init__(self, registry: CollectorRegistry, *, budget_per_minute: float,
                 current_rate: Callable[[], float] | None = None) -> None:
        # No `_created` series beside the counters and histograms (about 120 lines no panel or rule reads),
        # as Prometheus' own exporters: client_python's switch is process-wide, and this is its only user.
        disable_created_metrics()
        self.registry = registry
        self.version = 0
        self.up: bool | None = None
        self.down_reason: str | None = None
        self.budget_per_minute = budget_per_minute
        self._current_rate = current_rate or (lambda: budget_per_minute)
        self.remaining: float | None = None
        self.last_success: dict[str, float] = {}
        self.intervals: dict[str, float] = {}
        self.details_pending = 0
        self.requests = Counter("callmeter_exporter_api_requests", "CallMeter API requests sent, by route and "
                                "HTTP status (code=\"error\" when no response arrived).", ["endpoint", "code"],
                                registry=registry)
        self.errors = Counter("callmeter_exporter_api_errors", "Failed CallMeter API requests by route and kind.",
                              ["endpoint", "error"], registry=registry)
        self.latency = Histogram("callmeter_exporter_api_request_duration_seconds",
                                 "CallMeter API request latency by route.", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.throttled = Counter("callmeter_exporter_rate_limited",
                                 "429 Too Many Requests answers received from the CallMeter API.", registry=registry)
        self.observation_delay = Histogram(
            "callmeter_exporter_observation_delay_seconds",
            "Time from when CallMeter says a probe executed (lastExecutionAt) or a run finished (completedAt) "
            "to when the exporter had the new result (for a completed run, its summary), by resource.",
            ["resource"], buckets=OBSERVATION_BUCKETS, registry=registry)
        for resource in OBSERVED:
            self.observation_delay.labels(resource)
        self.capped = Counter("callmeter_exporter_series_capped", "Label values the exporter folded into "
                              "_other or UNRECOGNIZED because a cardinality cap was reached, by family.",
                              ["family"], registry=registry)
        for family in CAPPED_FAMILIES:
            self.capped.labels(family)
        # Every route and error kind from the start: rate() and increase() read 0, not nothing, before
        # the first error.
        for kind in KINDS.values():
            self.latency.labels(kind.route)
            for error in ERROR_KINDS:
                self.errors.labels(kind.route, error)
        registry.register(self)

    def _changed(self) -> None:
        self.version += 1

    def mark_changed(self) -> None:
        """Another collector on the registry (the webhook receiver's) changed: render the own part again."""
        self._changed()

    # RequestObserver
    def request(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests.labels(endpoint, code).inc()
        self.latency.labels(endpoint).observe(seconds)
        self._changed()

    def error(self, endpoint: str, kind: str) -> None:
        self.errors.labels(endpoint, kind).inc()
        self._changed()

    def rate_limited(self) -> None:
        self.throttled.inc()
        self._changed()

    def series_capped(self, family: str, folded: int) -> None:
        self.capped.labels(family).inc(folded)
        self._changed()

    def rate_limit_remaining(self, remaining: float) -> None:
        self.remaining = remaining
        self._changed()

    def observed(self, resource: str, seconds: float) -> None:
        """A new probe execution or a finished run's result seen `seconds` after CallMeter's timestamp."""
        self.observation_delay.labels(resource).observe(max(0.0, seconds))
        self._changed()

    # scheduler reports
    def set_up(self, up: bool, *, reason: str | None = None) -> None:
        """`reason`: why the API could not be used (the landing page shows it; never a secret)."""
        if up or reason is not None:
            self.down_reason = None if up else reason
        if up != self.up:
            self.up = up
            self._changed()

    def succeeded(self, resource: str, at: float) -> None:
        self.last_success[resource] = at
        self._changed()

    def set_intervals(self, intervals: dict[str, float]) -> None:
        self.intervals = dict(intervals)
        self._changed()

    def set_details_pending(self, pending: int) -> None:
        if pending != self.details_pending:
            self.details_pending = pending
            self._changed()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("callmeter_up", "1 when the exporter's last refresh reached the CallMeter API "
                               "and authenticated, else 0.", value=1.0 if self.up else 0.0)
        yield up
        info = GaugeMetricFamily("callmeter_exporter_build_info", "Version of callmeter-exporter (value 1).",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("callmeter_exporter_request_budget_per_minute",
                                "CallMeter API requests a minute the exporter allows itself "
                                "(the key's limit times the budget share).", value=self.budget_per_minute)
        yield GaugeMetricFamily("callmeter_exporter_requests_per_minute",
                                "Request rate the exporter is holding to now: the budget, lowered after 429s.",
                                value=self._current_rate())
        if self.remaining is not None:
            yield GaugeMetricFamily("callmeter_exporter_rate_limit_remaining",
                                    "Requests left in the current window, as the API's rate-limit headers report.",
                                    value=self.remaining)
        interval = GaugeMetricFamily("callmeter_exporter_refresh_interval_seconds",
                                     "Refresh interval the schedule achieves for each resource within the budget.",
                                     labels=["resource"])
        for resource, seconds in sorted(self.intervals.items()):
            interval.add_metric([resource], seconds)
        yield interval
        yield GaugeMetricFamily("callmeter_exporter_run_details_pending",
                                "Finished runs whose details (MOS, jitter, loss, RTT, ASR, NER) the exporter "
                                "wants and has not fetched yet: at most one per test.", value=self.details_pending)
        success = GaugeMetricFamily("callmeter_exporter_last_success_timestamp_seconds",
                                    "Unix time of the last successful refresh of each resource.",
                                    labels=["resource"])
        for resource, at in sorted(self.last_success.items()):
            success.add_metric([resource], at)
        yield success
