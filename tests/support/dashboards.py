"""The committed Grafana dashboards, read as JSON: their files, panels, variables and merged tables, for the
tests of their structure and the end-to-end tests of their queries."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.paths import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DASHBOARD_FILES = {
    "callmeter-overview.json": "callmeter-overview",
    "callmeter-exporter.json": "callmeter-exporter",
}
METRIC = re.compile(r"\b(callmeter_[a-zA-Z0-9_]+)")


def load_dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    return data


def panels_of(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p["type"] != "row"]


def variables_of(board: dict[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = board["templating"]["list"]
    return variables


# Table panels that merge several queries: (file name, panel).
TABLES = [
    (name, panel)
    for name in DASHBOARD_FILES
    for panel in panels_of(load_dashboard(name))
    if panel["type"] == "table" and len(panel["targets"]) > 1
]
