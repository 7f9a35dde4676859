"""Grafana dashboards: generated from Python, importable and provisionable.

No Grafana runs here, so what Grafana would do is checked piece by piece: the committed JSON is
what grafana/generate.py writes; its structure is what the import screen and file provisioning
need. That every panel query returns data from a real Prometheus is tests/e2e/test_dashboards.py.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.ci import unavailable
from tests.support.dashboards import (
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    GRAFANA,
    METRIC,
    TABLES,
    load_dashboard,
    panels_of,
    variables_of,
)
from tests.support.paths import ROOT

PROVISIONING = GRAFANA / "provisioning"
PROVISIONED_PATH = "/var/lib/grafana/dashboards/callmeter"


def _require_sdk() -> None:
    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        unavailable("grafana-foundation-sdk is not installed (pip install -e '.[test]')")


# --- generated == committed --------------------------------------------------------------------


def test_committed_dashboards_are_the_generated_ones(tmp_path: Path) -> None:
    _require_sdk()
    subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--output-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == sorted(DASHBOARD_FILES)
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == generated
    for name in generated:
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == (tmp_path / name).read_text(encoding="utf-8"), (
            f"grafana/dashboards/{name} is stale: run python grafana/generate.py"
        )


def test_generate_check_exits_1_when_a_file_differs(tmp_path: Path) -> None:
    _require_sdk()
    for name in DASHBOARD_FILES:
        shutil.copy(DASHBOARD_DIR / name, tmp_path / name)
    check = [sys.executable, str(GRAFANA / "generate.py"), "--check", "--output-dir", str(tmp_path)]
    assert subprocess.run(check, capture_output=True).returncode == 0
    stale = tmp_path / "callmeter-overview.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("MOS", "M0S", 1), encoding="utf-8")
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 1
    assert "callmeter-overview.json" in result.stderr


# --- what the import screen and provisioning need ----------------------------------------------


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_dashboard_has_stable_uid_tags_and_links(name: str) -> None:
    board = load_dashboard(name)
    assert board["uid"] == DASHBOARD_FILES[name]
    assert board["tags"] == ["callmeter", "voip", "sip"]
    assert board["id"] is None
    links = board["links"]
    assert any(link["type"] == "dashboards" and link["tags"] == ["callmeter"] for link in links)
    titles = [panel["title"] for panel in panels_of(board)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    assert all(panel.get("description") for panel in panels_of(board)), "a panel has no description"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_dashboard_declares_its_import_inputs_and_requirements(name: str) -> None:
    board = load_dashboard(name)
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "Prometheus that scrapes callmeter-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert ("grafana", "grafana") in required
    assert ("datasource", "prometheus") in required
    assert {("panel", p["type"]) for p in panels_of(board)} <= required


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_everything_reads_the_datasource_variable(name: str) -> None:
    """Import fills ${DS_PROMETHEUS} in; provisioning does not, so only the variable's default uses it."""
    board = load_dashboard(name)
    datasource, *others = variables_of(board)
    assert datasource["type"] == "datasource"
    assert datasource["name"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"] == {"text": "Prometheus", "value": "${DS_PROMETHEUS}"}
    assert (DASHBOARD_DIR / name).read_text(encoding="utf-8").count("${DS_PROMETHEUS}") == 1
    variable_ref = {"type": "prometheus", "uid": "${datasource}"}
    for variable in others:
        assert variable["datasource"] == variable_ref, variable["name"]
    for panel in panels_of(board):
        assert panel["datasource"] == variable_ref, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == variable_ref, panel["title"]


def test_overview_filters_by_project_test_and_probe() -> None:
    variables = {v["name"]: v for v in variables_of(load_dashboard("callmeter-overview.json"))}
    assert variables["project"]["query"] == "label_values(callmeter_project_info, project)"
    assert variables["test"]["query"] == 'label_values(callmeter_test_run_last_status{project=~"$project"}, test)'
    assert variables["probe"]["query"] == 'label_values(callmeter_probe_status{project=~"$project"}, probe)'
    for name in ("project", "test", "probe"):
        assert variables[name]["multi"] and variables[name]["includeAll"], name
        assert variables[name]["allValue"] == ".*"


def _overview_panel(title: str) -> dict[str, Any]:
    return next(p for p in panels_of(load_dashboard("callmeter-overview.json")) if p["title"] == title)


@pytest.mark.parametrize(
    ("title", "unit"),
    [
        ("MOS", "none"),
        ("Jitter", "s"),
        ("Packet loss", "percentunit"),
        ("Round-trip time", "s"),
        ("ASR", "percentunit"),
        ("NER", "percentunit"),
    ],
)
def test_call_quality_panels_use_the_metric_units(title: str, unit: str) -> None:
    panel = _overview_panel(title)
    assert panel["fieldConfig"]["defaults"]["unit"] == unit
    (metric,) = set(METRIC.findall(panel["targets"][0]["expr"]))
    expected = {"_seconds": "s", "_ratio": "percentunit"}
    assert unit == next((u for suffix, u in expected.items() if metric.endswith(suffix)), "none")


def test_mos_is_coloured_at_3_5_and_4_0() -> None:
    steps = _overview_panel("MOS")["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "red"), (3.5, "orange"), (4.0, "green")]


def test_probe_states_have_their_colours() -> None:
    (mapping,) = _overview_panel("Probe status over time")["fieldConfig"]["defaults"]["mappings"]
    colours = {result["text"]: result["color"] for result in mapping["options"].values()}
    assert colours["HEALTHY"] == "green"
    assert colours["DEGRADED"] == "orange"
    assert colours["UNHEALTHY"] == "red"
    assert colours["UNKNOWN"] == "#8e8e8e"


def test_provisioning_points_at_the_dashboards_and_the_variable_finds_the_datasource() -> None:
    datasource = (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+- name: Prometheus$", datasource, re.M)
    assert re.search(r"^\s+type: prometheus$", datasource, re.M)
    assert re.search(r"^\s+uid: callmeter-prometheus$", datasource, re.M)
    assert re.search(r"^\s+url: http://prometheus:9090$", datasource, re.M)
    provider = (PROVISIONING / "dashboards" / "callmeter.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+type: file$", provider, re.M)
    assert re.search(rf"^\s+path: {re.escape(PROVISIONED_PATH)}$", provider, re.M)
    docs = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    assert f"grafana/dashboards:{PROVISIONED_PATH}" in docs
    # The provisioned datasource's name is what the datasource variable falls back to.
    for name in DASHBOARD_FILES:
        assert variables_of(load_dashboard(name))[0]["current"]["text"] == "Prometheus"


@pytest.mark.parametrize(("name", "panel"), TABLES, ids=[p["title"] for _, p in TABLES])
def test_merged_table_names_every_value_column(name: str, panel: dict[str, Any]) -> None:
    """Grafana names the value of query X "Value #X" when a panel has several; each gets a title."""
    organize = next(t for t in panel["transformations"] if t["id"] == "organize")["options"]
    assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]
    for target in panel["targets"]:
        assert target["format"] == "table" and target["instant"], target["refId"]
        assert f"Value #{target['refId']}" in organize["renameByName"], target["refId"]

