"""End to end: a probe turned UNHEALTHY in the simulator pages through Prometheus and Alertmanager.

Four real processes on free loopback ports: the CallMeter simulator, the exporter polling it,
`prometheus` scraping the exporter every second with the shipped rule file, and
`prometheus-alertmanager` with the shipped example config (its webhook pointed at a closed port).
The probe is flipped through the simulator's control route; the alert must fire in Prometheus,
arrive in Alertmanager on the critical route, and clear in both when the probe recovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT
from tests.support.prometheus import (
    AlertmanagerServer,
    PrometheusServer,
    ServerProcess,
    free_port,
    require_binary,
    run_alertmanager,
    run_prometheus,
    serve_process,
    unix_time,
    wait_until,
)

RULES = ROOT / "deploy" / "prometheus" / "callmeter-rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERT = "CallMeterProbeUnhealthy"
STEP_TIMEOUT = 30.0


class SimulatorProcess(ServerProcess):
    """`python -m exporter.simulator` with its /_sim/ control routes."""

    ready_path = "/_sim/state"

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.get("/_sim/state")
        return state

    def force_probe_status(self, probe_id: str, status: str | None) -> None:
        request = urllib.request.Request(
            f"{self.url}/_sim/probes/{probe_id}",
            data=json.dumps({"status": status}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200


class ExporterProcess(ServerProcess):
    """`python -m exporter`, ready once its first complete refresh is served."""

    ready_path = "/readyz"


@contextlib.contextmanager
def _simulator(folder: Path) -> Iterator[SimulatorProcess]:
    folder.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "exporter.simulator", "--listen-address", f"127.0.0.1:{port}"]
    argv += ["--projects", "1", "--probes", "2", "--tests", "1"]
    with serve_process(name="simulator", cls=SimulatorProcess, argv=argv, port=port, folder=folder) as sim:
        yield sim


@contextlib.contextmanager
def _exporter(folder: Path, simulator: SimulatorProcess) -> Iterator[ExporterProcess]:
    folder.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env |= {
        "CALLMETER_API_KEY": simulator.state()["key"],
        "CALLMETER_BASE_URL": f"{simulator.url}/api/v1",
        # A fast schedule, as the simulator has no real rate limit to respect.
        "CALLMETER_PLAN": "enterprise",
        "CALLMETER_REQUESTS_PER_MINUTE": "600",
        "CALLMETER_PROBES_MIN_INTERVAL": "1",
        "CALLMETER_TEST_RUNS_MIN_INTERVAL": "2",
        "CALLMETER_INVENTORY_MIN_INTERVAL": "10",
    }
    argv = [sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{port}", "--log-format", "json"]
    with serve_process(name="exporter", cls=ExporterProcess, argv=argv, port=port, folder=folder, env=env) as exporter:
        yield exporter


def _alertmanager_config() -> str:
    """The shipped config, its placeholder webhooks pointed at a port nothing listens on."""
    text = ALERTMANAGER_CONFIG.read_text()
    closed = f"http://127.0.0.1:{free_port()}/"
    replaced, count = re.subn(r"http://127\.0\.0\.1:5001/", closed, text)
    assert count, "the example webhook URL changed; update this test"
    return replaced


def _prometheus_config(exporter: ExporterProcess, alertmanager: AlertmanagerServer) -> str:
    # The shipped rules, loaded as is; only the intervals are shortened for the test.
    return f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - callmeter-rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager.url.removeprefix("http://")}"]
scrape_configs:
  - job_name: callmeter
    static_configs:
      - targets: ["{exporter.url.removeprefix("http://")}"]
"""


def _is_probe_alert(alert: dict[str, Any], probe_id: str) -> bool:
    labels = alert["labels"]
    return bool(labels.get("alertname") == ALERT and labels.get("probe_id") == probe_id)


def _active_in_alertmanager(alertmanager: AlertmanagerServer, probe_id: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        alert
        for alert in alertmanager.alerts()
        if _is_probe_alert(alert, probe_id)
        and alert["status"]["state"] == "active"
        and datetime.fromisoformat(alert["endsAt"]) > now
    ]


@pytest.mark.timeout(120)
def test_unhealthy_probe_fires_through_alertmanager_and_resolves(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    with contextlib.ExitStack() as stack:
        simulator = stack.enter_context(_simulator(tmp_path / "simulator"))
        exporter = stack.enter_context(_exporter(tmp_path / "exporter", simulator))
        alertmanager = stack.enter_context(run_alertmanager(_alertmanager_config(), workdir=tmp_path / "alertmanager"))
        prometheus: PrometheusServer = stack.enter_context(
            run_prometheus(
                _prometheus_config(exporter, alertmanager),
                files={"callmeter-rules.yml": RULES},
                workdir=tmp_path / "prometheus",
            )
        )
        servers: list[ServerProcess] = [simulator, exporter, alertmanager, prometheus]

        def diagnostics() -> str:
            targets = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in prometheus.targets()]
            return f"targets: {targets}\n" + "\n".join(s.log_tail(15) for s in servers)

        state = simulator.state()
        probe = state["probes"][0]
        probe_id: str = probe["id"]
        slug = next(p["slug"] for p in state["projects"] if p["id"] == probe["project_id"])

        def probe_status(status: str) -> list[dict[str, Any]]:
            return prometheus.query(f'callmeter_probe_status{{probe_id="{probe_id}",status="{status}"}} == 1')

        def firing() -> list[dict[str, Any]]:
            return [a for a in prometheus.firing(ALERT) if _is_probe_alert(a, probe_id)]

        # A known good start: the simulator may pick any status for its probes on its own.
        simulator.force_probe_status(probe_id, "HEALTHY")
        wait_until(
            lambda: probe_status("HEALTHY"),
            timeout=STEP_TIMEOUT,
            what="Prometheus to scrape the probe as HEALTHY",
            diagnostics=diagnostics,
        )
        # "Not firing" alone is true before any rule has run: wait for an evaluation of the alert's rule on
        # the healthy data (after Prometheus has it), and require that it holds nothing for the probe, not
        # even a pending alert.
        healthy_seen = time.time()

        def evaluated_on_healthy_data() -> dict[str, Any] | None:
            rule = prometheus.rule(ALERT)
            return rule if rule and unix_time(rule.get("lastEvaluation", "0001-01-01T00:00:00Z")) > healthy_seen \
                else None

        rule = wait_until(evaluated_on_healthy_data, timeout=STEP_TIMEOUT, what=f"{ALERT} evaluated after HEALTHY",
                          diagnostics=diagnostics)
        assert rule["health"] == "ok", rule.get("lastError")
        assert not [a for a in rule["alerts"] if _is_probe_alert(a, probe_id)], rule["alerts"]
        assert not firing()

        simulator.force_probe_status(probe_id, "UNHEALTHY")
        [alert] = wait_until(
            firing, timeout=STEP_TIMEOUT, what=f"{ALERT} firing in Prometheus", diagnostics=diagnostics
        )
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["project"] == slug
        assert alert["labels"]["probe"] == probe["name"]
        assert probe["name"] in alert["annotations"]["summary"]
        assert alert["annotations"]["runbook_url"].endswith("#callmeterprobeunhealthy")

        [received] = wait_until(
            lambda: _active_in_alertmanager(alertmanager, probe_id),
            timeout=STEP_TIMEOUT,
            what=f"{ALERT} in Alertmanager",
            diagnostics=diagnostics,
        )
        # The example route sends critical CallMeter alerts to the on-call receiver.
        assert [r["name"] for r in received["receivers"]] == ["callmeter-oncall"]

        simulator.force_probe_status(probe_id, "HEALTHY")
        wait_until(
            lambda: not firing(),
            timeout=STEP_TIMEOUT,
            what=f"{ALERT} to resolve in Prometheus",
            diagnostics=diagnostics,
        )
        wait_until(
            lambda: not _active_in_alertmanager(alertmanager, probe_id),
            timeout=STEP_TIMEOUT,
            what=f"{ALERT} to resolve in Alertmanager",
            diagnostics=diagnostics,
        )
