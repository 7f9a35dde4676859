"""Turn a dashboard built with the SDK into the JSON Grafana's import screen expects."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .common import DS_INPUT

GRAFANA_VERSION = "11.6.0"
"""Grafana release whose dashboard schema the pinned SDK (grafana-foundation-sdk ...!11.6.0) targets."""

PANEL_NAMES = {
    "row": None,
    "stat": "Stat",
    "table": "Table",
    "timeseries": "Time series",
    "state-timeline": "State timeline",
}


def to_import_json(board: dash.Dashboard) -> dict[str, Any]:
    """The dashboard as a dict, with panel ids and the ``__inputs``/``__requires`` of an export."""
    body: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(body["panels"], start=1):
        panel["id"] = number
    panel_types = sorted({panel["type"] for panel in body["panels"]})
    unknown = [t for t in panel_types if t not in PANEL_NAMES]
    if unknown:
        raise ValueError(f"add {unknown} to PANEL_NAMES so __requires names them")
    requires: list[dict[str, str]] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    requires += [
        {"type": "panel", "id": t, "name": name, "version": ""}
        for t in panel_types
        if (name := PANEL_NAMES[t]) is not None
    ]
    inputs = [
        {
            "name": DS_INPUT,
            "label": "Prometheus",
            "description": "Prometheus that scrapes callmeter-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    return {"__inputs": inputs, "__elements": {}, "__requires": requires, "id": None, **body}


def render(board: dash.Dashboard) -> str:
    """Stable text of one dashboard file: two-space indent, a final newline."""
    return json.dumps(to_import_json(board), indent=2, ensure_ascii=False) + "\n"
