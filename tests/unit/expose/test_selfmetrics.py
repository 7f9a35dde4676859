"""The exporter's own metrics: labelled counters exist at 0 before anything happened."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.api.errors import ERROR_KINDS
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.kinds import KINDS


def test_every_route_and_error_kind_starts_at_zero() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ExporterMetrics(registry, budget_per_minute=8.0)
    for kind in KINDS.values():
        assert registry.get_sample_value("callmeter_exporter_api_request_duration_seconds_count",
                                         {"endpoint": kind.route}) == 0
        for error in ERROR_KINDS:
            assert registry.get_sample_value("callmeter_exporter_api_errors_total",
                                             {"endpoint": kind.route, "error": error}) == 0
