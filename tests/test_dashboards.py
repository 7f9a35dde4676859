"""Grafana dashboards: generated from Python, importable and provisionable, and every query works.

No Grafana runs here, so what Grafana would do is checked piece by piece: the committed JSON is
what grafana/generate.py writes; its structure is what the import screen and file provisioning
need; and every panel query, with its variables filled in the way Grafana would for "All",
returns data from a real Prometheus that scrapes the exporter in demo mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.prometheus import (
    PrometheusServer,
    free_port,
    run_prometheus,
    run_pushgateway,
    stop_process,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
DASHBOARD_FILES = {
    "callmeter-overview.json": "callmeter-overview",
    "callmeter-exporter.json": "callmeter-exporter",
}
PROVISIONED_PATH = "/var/lib/grafana/dashboards/callmeter"

# What Grafana puts in place of the dashboard variables when "All" is selected (allValue ".*") and
# of its interval macros. 1m spans many scrapes at the 1s scrape interval used here.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "5m",
    "$project": ".*",
    "$test": ".*",
    "$probe": ".*",
    "$job": ".*",
    "$instance": ".*",
}
METRIC = re.compile(r"\b(callmeter_[a-zA-Z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
SCRAPE_INTERVAL = "1s"
FAMILIES_TIMEOUT = 90.0
QUERY_TIMEOUT = 60.0
SIMULATOR_BANNER = re.compile(r"simulated CallMeter API at (http://127\.0\.0\.1:\d+)/api/v1")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _require_sdk() -> None:
    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        message = "grafana-foundation-sdk is not installed (pip install -e '.[test]')"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    return data


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [p for p in panels if p["type"] != "row"]


def _variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = board["templating"]["list"]
    return variables


def _substitute(expr: str) -> str:
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def _panel_queries() -> list[PanelQuery]:
    queries = []
    for name in DASHBOARD_FILES:
        for panel in _panels(_load(name)):
            for target in panel["targets"]:
                queries.append(PanelQuery(name.removesuffix(".json"), panel["title"], target["refId"], target["expr"]))
    return queries


PANEL_QUERIES = _panel_queries()


def _family(name: str) -> str:
    """Metric family of a sample or family name (histogram and counter suffixes dropped)."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


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
    board = _load(name)
    assert board["uid"] == DASHBOARD_FILES[name]
    assert board["tags"] == ["callmeter", "voip", "sip"]
    assert board["id"] is None
    links = board["links"]
    assert any(link["type"] == "dashboards" and link["tags"] == ["callmeter"] for link in links)
    titles = [panel["title"] for panel in _panels(board)]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    assert all(panel.get("description") for panel in _panels(board)), "a panel has no description"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_dashboard_declares_its_import_inputs_and_requirements(name: str) -> None:
    board = _load(name)
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
    assert {("panel", p["type"]) for p in _panels(board)} <= required


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_everything_reads_the_datasource_variable(name: str) -> None:
    """Import fills ${DS_PROMETHEUS} in; provisioning does not, so only the variable's default uses it."""
    board = _load(name)
    datasource, *others = _variables(board)
    assert datasource["type"] == "datasource"
    assert datasource["name"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"] == {"text": "Prometheus", "value": "${DS_PROMETHEUS}"}
    assert (DASHBOARD_DIR / name).read_text(encoding="utf-8").count("${DS_PROMETHEUS}") == 1
    variable_ref = {"type": "prometheus", "uid": "${datasource}"}
    for variable in others:
        assert variable["datasource"] == variable_ref, variable["name"]
    for panel in _panels(board):
        assert panel["datasource"] == variable_ref, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == variable_ref, panel["title"]


def test_overview_filters_by_project_test_and_probe() -> None:
    variables = {v["name"]: v for v in _variables(_load("callmeter-overview.json"))}
    assert variables["project"]["query"] == "label_values(callmeter_project_info, project)"
    assert variables["test"]["query"] == 'label_values(callmeter_test_run_last_status{project=~"$project"}, test)'
    assert variables["probe"]["query"] == 'label_values(callmeter_probe_status{project=~"$project"}, probe)'
    for name in ("project", "test", "probe"):
        assert variables[name]["multi"] and variables[name]["includeAll"], name
        assert variables[name]["allValue"] == ".*"


def _overview_panel(title: str) -> dict[str, Any]:
    return next(p for p in _panels(_load("callmeter-overview.json")) if p["title"] == title)


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
    docs = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"grafana/dashboards:{PROVISIONED_PATH}" in docs
    # The provisioned datasource's name is what the datasource variable falls back to.
    for name in DASHBOARD_FILES:
        assert _variables(_load(name))[0]["current"]["text"] == "Prometheus"


# --- every query against a real Prometheus scraping the demo exporter --------------------------


def _scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _families(text: str) -> dict[str, set[str]]:
    """Published callmeter_* families -> their sample names."""
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        # A family announced with no sample yet (nothing refreshed) does not count.
        if family.name.startswith("callmeter_") and family.samples:
            families.setdefault(_family(family.name), set()).update(s.name for s in family.samples)
    return families


def _dashboard_families() -> set[str]:
    return {_family(m) for q in PANEL_QUERIES for m in METRIC.findall(q.expr)}


GATE_PREFIX = "callmeter_gate_"
"""Families `callmeter-exporter gate --pushgateway` pushes: the Pushgateway publishes them, not the exporter."""


def _exporter_families() -> set[str]:
    return {f for f in _dashboard_families() if not f.startswith(GATE_PREFIX)}


@dataclass
class DemoStack:
    metrics_url: str
    prometheus: PrometheusServer
    exposition: str
    gate_exposition: str


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The exporter in demo mode, a demo quality gate pushing to a Pushgateway, and a Prometheus
    scraping both every second."""
    port = free_port()
    folder = tmp_path_factory.mktemp("exporter")
    log_path = folder / "exporter.log"
    argv = [sys.executable, "-m", "exporter", "--demo", "--listen-address", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def exporter_log() -> str:
        return "--- exporter log ---\n" + log_path.read_text(errors="replace")[-4000:]

    def all_families() -> str | None:
        if process.poll() is not None:
            pytest.fail(f"exporter exited with code {process.returncode}\n{exporter_log()}")
        text = _scrape(metrics_url)
        if text is None or not _exporter_families() <= set(_families(text)):
            return None
        return text

    def simulator_url() -> str | None:
        if process.poll() is not None:
            pytest.fail(f"exporter exited with code {process.returncode}\n{exporter_log()}")
        found = SIMULATOR_BANNER.search(log_path.read_text(errors="replace"))
        return found[1] if found else None

    try:
        with run_pushgateway() as pushgateway:
            # The demo gate's run takes half a minute: it goes while the exporter fills in.
            gate = _start_demo_gate(pushgateway.url, folder)
            # The demo answers 2% of requests with 500, so the errors family can take a minute and
            # more to appear. Two 429s make one appear now (error="rate_limited"), and give the
            # 429 panels something to count; the simulator stops them by itself.
            simulator = wait_until(simulator_url, timeout=30, what="the demo's simulator URL",
                                   diagnostics=exporter_log)
            burst = urllib.request.Request(
                f"{simulator}/_sim/faults",
                data=json.dumps({"burst_429": 2}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(burst, timeout=5):
                pass
            exposition = wait_until(
                all_families,
                timeout=FAMILIES_TIMEOUT,
                what="every family the dashboards use on the demo exporter's /metrics",
                diagnostics=exporter_log,
            )
            try:
                assert gate.wait(timeout=150) == 0, (folder / "gate.log").read_text(errors="replace")
            finally:
                stop_process(gate)
            gate_exposition = _scrape(pushgateway.url + "/metrics") or ""
            config = (
                f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n"
                "scrape_configs:\n  - job_name: callmeter\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
                "  - job_name: pushgateway\n    honor_labels: true\n"
                f"    static_configs:\n      - targets: ['{pushgateway.url.removeprefix('http://')}']\n"
            )
            with run_prometheus(config) as prometheus:
                yield DemoStack(metrics_url, prometheus, exposition, gate_exposition)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _start_demo_gate(pushgateway: str, folder: Path) -> subprocess.Popen[bytes]:
    """`callmeter-exporter gate --demo` on the demo's first test, pushing its result (same seed, so
    the same project and test labels as the demo exporter's)."""
    argv = [sys.executable, "-m", "exporter", "gate", "--demo", "--project", "production", "--test",
            "Production call quality 1", "--quiet", "--timeout", "2m", "--pushgateway", pushgateway]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    with (folder / "gate.log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=env)


@pytest.mark.e2e
def test_panels_use_only_metrics_the_exporter_publishes(demo_stack: DemoStack) -> None:
    published = _families(demo_stack.exposition)
    pushed = {name: samples for name, samples in _families(demo_stack.gate_exposition).items()
              if name.startswith(GATE_PREFIX)}
    assert pushed, "the demo gate pushed nothing"
    samples = set().union(*published.values(), *pushed.values())
    for query in PANEL_QUERIES:
        for metric in METRIC.findall(query.expr):
            assert metric in samples, f"{query.id} uses {metric}, which /metrics does not publish"


@pytest.mark.e2e
def test_every_published_family_is_on_a_panel(demo_stack: DemoStack) -> None:
    missing = set(_families(demo_stack.exposition)) - _dashboard_families()
    assert not missing, f"families on no panel: {sorted(missing)}"


@pytest.mark.e2e
@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_returns_data(demo_stack: DemoStack, query: PanelQuery) -> None:
    expr = _substitute(query.expr)
    # rate() and increase() need two scrapes in their window: poll, never sleep a fixed time.
    wait_until(
        lambda: demo_stack.prometheus.query(expr),
        timeout=QUERY_TIMEOUT,
        what=f"data for {query.id}: {expr}",
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("dashboard", "variable"),
    [(d.removesuffix(".json"), v["name"]) for d in DASHBOARD_FILES for v in _variables(_load(d))[1:]],
)
def test_variable_offers_values(demo_stack: DemoStack, dashboard: str, variable: str) -> None:
    (definition,) = [v for v in _variables(_load(dashboard + ".json")) if v["name"] == variable]
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition["query"])
    assert match, definition["query"]
    selector, label = _substitute(match[1]), match[2]
    result = wait_until(
        lambda: demo_stack.prometheus.query(f"count by ({label}) ({selector})"),
        timeout=QUERY_TIMEOUT,
        what=f"values of ${variable}",
    )
    assert all(series["metric"].get(label) for series in result)


def _instant(prometheus: PrometheusServer, expr: str) -> list[dict[str, Any]]:
    return wait_until(lambda: prometheus.query(_substitute(expr)), timeout=QUERY_TIMEOUT, what=expr)


TABLES = [
    (name, panel)
    for name in DASHBOARD_FILES
    for panel in _panels(_load(name))
    if panel["type"] == "table" and len(panel["targets"]) > 1
]


@pytest.mark.parametrize(("name", "panel"), TABLES, ids=[p["title"] for _, p in TABLES])
def test_merged_table_names_every_value_column(name: str, panel: dict[str, Any]) -> None:
    """Grafana names the value of query X "Value #X" when a panel has several; each gets a title."""
    organize = next(t for t in panel["transformations"] if t["id"] == "organize")["options"]
    assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]
    for target in panel["targets"]:
        assert target["format"] == "table" and target["instant"], target["refId"]
        assert f"Value #{target['refId']}" in organize["renameByName"], target["refId"]


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "panel"), TABLES, ids=[p["title"] for _, p in TABLES])
def test_merged_table_queries_share_their_labels(demo_stack: DemoStack, name: str, panel: dict[str, Any]) -> None:
    """Merge joins rows on equal label columns: every query must return the same label names, and
    no row that the first query (the object's status) does not have."""
    first, *others = [_instant(demo_stack.prometheus, t["expr"]) for t in panel["targets"]]
    rows = {tuple(sorted(series["metric"].items())) for series in first}
    columns = {tuple(sorted(series["metric"])) for series in first}
    assert len(columns) == 1, columns
    for target, result in zip(panel["targets"][1:], others, strict=True):
        assert {tuple(sorted(series["metric"])) for series in result} == columns, target["refId"]
        assert {tuple(sorted(series["metric"].items())) for series in result} <= rows, target["refId"]


STATE_PANELS = [
    (name, panel) for name in DASHBOARD_FILES for panel in _panels(_load(name)) if panel["type"] == "state-timeline"
]


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "panel"), STATE_PANELS, ids=[p["title"] for _, p in STATE_PANELS])
def test_state_codes_are_all_mapped_to_names(demo_stack: DemoStack, name: str, panel: dict[str, Any]) -> None:
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    result = _instant(demo_stack.prometheus, panel["targets"][0]["expr"])
    codes = {series["value"][1] for series in result}
    assert codes <= set(mapping["options"]), codes
    objects = [tuple(sorted(series["metric"].items())) for series in result]
    assert len(objects) == len(set(objects)), "an object has more than one state at once"
