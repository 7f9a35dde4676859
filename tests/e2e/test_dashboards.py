"""Grafana dashboards against a real Prometheus: every panel query, with its variables filled in the
way Grafana would for "All", returns data from a Prometheus that scrapes the exporter in demo mode
(and the Pushgateway a demo quality gate pushed to). Their structure is tests/unit/test_dashboards.py.
"""

from __future__ import annotations

import json
import os
import re
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

from tests.support.dashboards import DASHBOARD_FILES, METRIC, TABLES, load_dashboard, panels_of, variables_of
from tests.support.paths import ROOT
from tests.support.prometheus import (
    PrometheusServer,
    free_port,
    run_prometheus,
    run_pushgateway,
    stop_process,
    wait_until,
)

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
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
SCRAPE_INTERVAL = "1s"
FAMILIES_TIMEOUT = 90.0
QUERY_TIMEOUT = 60.0
SIMULATOR_BANNER = re.compile(r"simulated CallMeter API at (http://127\.0\.0\.1:\d+)/api/v1")


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
        for panel in panels_of(load_dashboard(name)):
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


def test_panels_use_only_metrics_the_exporter_publishes(demo_stack: DemoStack) -> None:
    published = _families(demo_stack.exposition)
    pushed = {name: samples for name, samples in _families(demo_stack.gate_exposition).items()
              if name.startswith(GATE_PREFIX)}
    assert pushed, "the demo gate pushed nothing"
    samples = set().union(*published.values(), *pushed.values())
    for query in PANEL_QUERIES:
        for metric in METRIC.findall(query.expr):
            assert metric in samples, f"{query.id} uses {metric}, which /metrics does not publish"


def test_every_published_family_is_on_a_panel(demo_stack: DemoStack) -> None:
    missing = set(_families(demo_stack.exposition)) - _dashboard_families()
    assert not missing, f"families on no panel: {sorted(missing)}"


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_returns_data(demo_stack: DemoStack, query: PanelQuery) -> None:
    expr = _substitute(query.expr)
    # rate() and increase() need two scrapes in their window: poll, never sleep a fixed time.
    wait_until(
        lambda: demo_stack.prometheus.query(expr),
        timeout=QUERY_TIMEOUT,
        what=f"data for {query.id}: {expr}",
    )


@pytest.mark.parametrize(
    ("dashboard", "variable"),
    [(d.removesuffix(".json"), v["name"]) for d in DASHBOARD_FILES for v in variables_of(load_dashboard(d))[1:]],
)
def test_variable_offers_values(demo_stack: DemoStack, dashboard: str, variable: str) -> None:
    (definition,) = [v for v in variables_of(load_dashboard(dashboard + ".json")) if v["name"] == variable]
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
    (name, panel) for name in DASHBOARD_FILES for panel in panels_of(load_dashboard(name))
    if panel["type"] == "state-timeline"
]


@pytest.mark.parametrize(("name", "panel"), STATE_PANELS, ids=[p["title"] for _, p in STATE_PANELS])
def test_state_codes_are_all_mapped_to_names(demo_stack: DemoStack, name: str, panel: dict[str, Any]) -> None:
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    result = _instant(demo_stack.prometheus, panel["targets"][0]["expr"])
    codes = {series["value"][1] for series in result}
    assert codes <= set(mapping["options"]), codes
    objects = [tuple(sorted(series["metric"].items())) for series in result]
    assert len(objects) == len(set(objects)), "an object has more than one state at once"
