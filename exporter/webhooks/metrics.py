"""The receiver's own metrics, registered beside the exporter's when the receiver is on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RESULTS = (
    # verified, and acted on
    "applied",          # a known probe: its new status shown at once, a read of its project's probes asked for
    "nudged",           # a known probe, no readable new status: the read only
    "unknown_probe",    # a probe not (yet) known: its project's probe list read, nothing invented
    "unknown_project",  # a project not (yet) known: the project list read
    # verified, answered 2xx, no effect
    "replayed",         # the same delivery again
    "out_of_order",     # older than a delivery already accepted for the probe
    "ignored_event",    # an event other than probe.status_changed
    # rejected
    "stale",            # its time is outside the tolerance window (401)
    "missing_signature",  # 401
    "malformed_signature",  # 401: not sha256=<hex> nor bare hex
    "bad_signature",    # 401: no secret in use signs this body so
    "too_large",        # 413: over 1 MiB
    "bad_payload",      # 400: not the JSON object a delivery should be
    "method_not_allowed",  # 405: anything but POST
)
CONFIRMATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class WebhookMetrics(Collector):
    """`on_change` is called after every change, so that the cached exposition of the own metrics is renewed."""

    def __init__(self, registry: CollectorRegistry, *, on_change: Callable[[], None] = lambda: None) -> None:
        self._on_change = on_change
        self.last_delivery: float | None = None
        self.deliveries = Counter("callmeter_exporter_webhook_deliveries",
                                  "Webhook deliveries received, by result (see the manual's Webhooks page).",
                                  ["result"], registry=registry)
        for result in RESULTS:
            self.deliveries.labels(result)
        self.confirmation = Histogram(
            "callmeter_exporter_webhook_confirmation_delay_seconds",
            "Seconds from a webhook delivery to the first probe-list read that showed the same status.",
            buckets=CONFIRMATION_BUCKETS, registry=registry)
        self.disagreements = Counter(
            "callmeter_exporter_webhook_disagreements",
            "Webhook deliveries whose new status the next probe-list read did not show (the read's status won).",
            registry=registry)
        registry.register(self)

    def delivered(self, result: str, *, verified_at: float | None = None) -> None:
        """Count one delivery; `verified_at` (Unix time) when its signature was good."""
        self.deliveries.labels(result).inc()
        if verified_at is not None:
            self.last_delivery = verified_at
        self._on_change()

    def confirmed(self, delay: float) -> None:
        self.confirmation.observe(max(0.0, delay))
        self._on_change()

    def disagreed(self) -> None:
        self.disagreements.inc()
        self._on_change()

    def collect(self) -> Iterator[Metric]:
        if self.last_delivery is not None:
            yield GaugeMetricFamily("callmeter_exporter_webhook_last_delivery_timestamp_seconds",
                                    "Unix time of the last webhook delivery whose signature was good.",
                                    value=self.last_delivery)
