"""The exporter's HTTP listener for tests: built as the daemon builds it, on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from exporter.expose.edge import EdgeLimits, Rejections
from exporter.expose.exposition import Exposition
from exporter.expose.listener import HttpListener
from exporter.expose.selfmetrics import ExporterMetrics


def make_listener(exposition: Exposition, own: ExporterMetrics, *, name: str = "main",
                  is_ready: Callable[[], bool] = lambda: True, landing: Callable[[], str] = lambda: "<h1>landing</h1>",
                  limits: EdgeLimits | None = None, **options: Any) -> HttpListener:
    """A listener whose rejections are counted on the same registry as the exporter's own metrics."""
    rejections = Rejections(own.registry, (name,), on_change=own.mark_changed)
    return HttpListener(name, exposition=exposition, is_ready=is_ready, landing=landing, rejections=rejections,
                        limits=limits, **options)


def rejected(metrics: ExporterMetrics, reason: str, *, listener: str = "main") -> float:
    """callmeter_exporter_http_rejected_requests_total for one reason (there from the start, at 0)."""
    value = metrics.registry.get_sample_value("callmeter_exporter_http_rejected_requests_total",
                                              {"listener": listener, "reason": reason})
    assert value is not None
    return value


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """A listener test's scenario on a fresh event loop, within a minute."""
    asyncio.run(asyncio.wait_for(scenario(), 60))
