"""The CallMeter Grafana dashboards, built with grafana-foundation-sdk."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from . import exporter_health, overview
from .export import render, to_import_json

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "callmeter-overview.json": overview.build,
    "callmeter-exporter.json": exporter_health.build,
}
"""File name under grafana/dashboards/ -> function building that dashboard."""

__all__ = ["DASHBOARDS", "render", "to_import_json"]
