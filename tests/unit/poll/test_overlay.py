"""The status overlay: statuses pushed by webhooks, shown over the polled probe lists until a read decides."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.api.models import Probe
from exporter.poll.overlay import StatusOverlay
from exporter.webhooks import WebhookMetrics


def _probes(*statuses: str) -> tuple[Probe, ...]:
    return tuple(Probe(id=f"probe_{i}", status=s) for i, s in enumerate(statuses))


def test_the_overlay_shows_pushed_statuses_until_a_read_started_after_them_decides() -> None:
    registry = CollectorRegistry(auto_describe=False)
    metrics = WebhookMetrics(registry)
    overlay = StatusOverlay(metrics)
    polled = _probes("HEALTHY", "HEALTHY")
    overlay.push("proj", "probe_0", "UNHEALTHY", received_at=100.0)
    overlay.push("proj", "probe_unread", "UNHEALTHY", received_at=100.0)
    shown = overlay.apply("proj", polled)
    assert shown is not None and [p.status for p in shown] == ["UNHEALTHY", "HEALTHY"]
    assert overlay.apply("other", polled) == polled
    assert overlay.statuses() == {"UNHEALTHY"}
    overlay.settle("proj", polled, read_started=99.0, read_done=101.0)  # began before the delivery
    assert overlay.pending("proj").keys() == {"probe_0", "probe_unread"}
    overlay.settle("proj", _probes("UNHEALTHY", "HEALTHY"), read_started=100.5, read_done=101.25)
    assert not overlay
    assert registry.get_sample_value("callmeter_exporter_webhook_confirmation_delay_seconds_count") == 1
    assert registry.get_sample_value("callmeter_exporter_webhook_confirmation_delay_seconds_sum") == 1.25
    overlay.push("proj", "probe_1", "DEGRADED", received_at=200.0)
    overlay.settle("proj", polled, read_started=201.0, read_done=202.0)  # the poll disagrees: it wins
    assert overlay.apply("proj", polled) == polled
    assert registry.get_sample_value("callmeter_exporter_webhook_disagreements_total") == 1
