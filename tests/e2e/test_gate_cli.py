"""`python -m exporter gate` as CI runs it: a real process, the simulator over real HTTP, every report
written to disk and read back, and a real Pushgateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig
from tests.support.prometheus import run_pushgateway

UNKNOWN_KEY = "cmk_" + "0badc0de" * 4
GOOD = {"avgMos": 4.3, "avgJitterMs": 6.0, "avgPacketLossFraction": 0.2, "avgRttMs": 40.0, "asr": 99.0,
        "ner": 100.0, "registrationFailedCount": 0}


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    world = WorldConfig(projects=1, probes_per_project=1, tests_per_project=2, run_duration=2,
                        probe_interval_minutes=60)
    with SimulatorServer(Simulator(world)) as srv:
        yield srv


def ids(server: SimulatorServer) -> tuple[str, str, str]:
    w = server.simulator.world
    project = next(iter(w.projects))
    return project, next(iter(w.tests)), w.tests[next(iter(w.tests))].name


def finished_run(server: SimulatorServer, outcome: str = "COMPLETED", **summary: float | None) -> str:
    """A run of the first test that ended a while ago, as planned."""
    sim = server.simulator
    _, test, _ = ids(server)
    sim.plan_test_runs(test, outcome=outcome, summary={**GOOD, **summary})
    return sim.world.start_run(test, time.time() - 600)


def gate(server: SimulatorServer, *args: str, key: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_") and k != "GITHUB_STEP_SUMMARY"}
    settings = {"CALLMETER_BASE_URL": server.base_url, "CALLMETER_PLAN": "pro"}
    settings["CALLMETER_API_KEY_FILE" if key else "CALLMETER_API_KEY"] = str(key) if key else DEMO_KEY
    return subprocess.run([sys.executable, "-m", "exporter", "gate", *args], env={**clean, **settings, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_a_triggered_run_passes_and_every_report_is_written(server: SimulatorServer, tmp_path: Path) -> None:
    _, test, name = ids(server)
    server.simulator.plan_test_runs(test, outcome="COMPLETED", summary=GOOD)
    key_file = tmp_path / "key"
    key_file.write_text(DEMO_KEY + "\n")
    summary = tmp_path / "summary.md"
    summary.write_text("# an earlier step\n")
    junit = tmp_path / "junit.xml"
    result = gate(server, "--project", "production", "--test", name, "--min-mos", "3.5",
                  "--max-jitter-seconds", "0.03", "--junit-xml", str(junit), key=key_file,
                  env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("CallMeter gate: PASSED (exit 0): every gate passed\n")
    assert "triggered run run_" in result.stderr and "COMPLETED" in result.stderr
    root = ET.parse(junit).getroot()
    assert [c.get("name") for c in root.iter("testcase")] == ["run finished", "MOS >= 3.5", "jitter <= 30 ms"]
    assert root.get("failures") == "0" and root.get("errors") == "0"
    text = summary.read_text()
    assert text.startswith("# an earlier step\n### ✅ CallMeter gate: passed (exit 0)")
    assert [r[1] for r in server.simulator.requests if r[2].endswith("/run")] == ["POST"]
    for output in (result.stdout, result.stderr, junit.read_text(), text):
        assert DEMO_KEY not in output and DEMO_KEY[4:] not in output


@pytest.mark.parametrize(("setup", "args", "code"), [
    ("good", [], 0),
    ("bad", [], 1),
    ("failed", [], 3),
    ("running", ["--timeout", "2"], 4),
    ("good", ["--api-key", UNKNOWN_KEY], 5),
    ("good", ["--min-mos", "six"], 2),
])
def test_exit_codes_of_the_process(server: SimulatorServer, setup: str, args: list[str], code: int) -> None:
    project, test, _ = ids(server)
    if setup == "running":
        server.simulator.plan_test_runs(test, duration=600)
        run_id = server.simulator.world.start_run(test, time.time())
    else:
        run_id = finished_run(server, "FAILED" if setup == "failed" else "COMPLETED",
                              avgMos=3.0 if setup == "bad" else 4.3)
    result = gate(server, "--project", project, "--run-id", run_id, "--min-mos", "3.5", *args)
    assert result.returncode == code, result.stdout + result.stderr
    for output in (result.stdout, result.stderr):
        assert UNKNOWN_KEY not in output and DEMO_KEY not in output
    if code in (2, 5):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_dead_port_exits_5_within_30_seconds_naming_the_host(server: SimulatorServer) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = gate(server, "--project", "production", "--test", "Production call quality 1", "--timeout", "600s",
                  env={"CALLMETER_BASE_URL": f"http://127.0.0.1:{port}/api/v1", "CALLMETER_PLAN": "free",
                       "CALLMETER_API_KEY": UNKNOWN_KEY})
    elapsed = time.monotonic() - started
    assert result.returncode == 5, result.stdout + result.stderr
    assert elapsed < 30
    assert f"cannot reach 127.0.0.1:{port} (/projects)" in result.stderr.splitlines()[-1]
    assert UNKNOWN_KEY not in result.stdout + result.stderr
    assert not server.simulator.requests


def test_json_is_the_only_thing_on_stdout(server: SimulatorServer) -> None:
    project, _, _ = ids(server)
    run_id = finished_run(server, avgMos=3.0, avgRttMs=None)
    result = gate(server, "--project", project, "--run-id", run_id, "--min-mos", "3.5", "--max-rtt-seconds", "0.2",
                  "--json", "--quiet")
    assert result.returncode == 1 and result.stderr == ""
    data = json.loads(result.stdout)
    assert data["exit_code"] == 1 and data["run"]["id"] == run_id
    assert [(g["gate"], g["outcome"], g["value"]) for g in data["gates"]] == [
        ("min_mos", "fail", 3.0), ("max_rtt_seconds", "missing", None)]


@pytest.mark.parametrize(("args", "names"), [
    (["--test", "x"], "--project"),
    (["--project", "p"], "--test"),
    (["--project", "p", "--test", "x", "--probe", "y"], "not allowed with"),
    (["--project", "p", "--test", "x", "--min-mos", "7"], "--min-mos must be a number from 1 to 5"),
    (["--project", "p", "--test", "x", "--max-packet-loss-ratio", "5"], "--max-packet-loss-ratio"),
    (["--project", "p", "--probe", "x", "--min-mos", "3"], "with --probe use --min-probe-status"),
    (["--project", "p", "--test", "x", "--timeout", "soon"], "--timeout must be a duration"),
    (["--project", "p", "--test", "x", "--pushgateway", "ftp://x"], "--pushgateway must be"),
    (["--project", "p", "--test", "x", "--junit-xml", "/nonexistent/dir/j.xml"], "--junit-xml"),
    (["--project", "p", "--test", "x", "--budget-share", "1"], "--gate-requests-per-minute"),
    (["--project", "p", "--test", "x", "--api-key", "key_" + "0" * 32], "CALLMETER_API_KEY"),
])
def test_usage_errors_exit_2_and_say_what_to_fix(server: SimulatorServer, args: list[str], names: str) -> None:
    result = gate(server, *args)
    assert result.returncode == 2
    assert names in result.stderr
    assert result.stdout == "" and not server.simulator.requests
    assert "0" * 32 not in result.stderr


def test_the_result_is_pushed_to_a_real_pushgateway(server: SimulatorServer) -> None:
    project, test, name = ids(server)
    with run_pushgateway() as pushgateway:
        passed = gate(server, "--project", project, "--run-id", finished_run(server), "--min-mos", "3.5",
                      "--pushgateway", pushgateway.url)
        assert passed.returncode == 0, passed.stderr
        first = _gate_samples(pushgateway.url)
        failed = gate(server, "--project", project, "--run-id", finished_run(server, avgMos=3.1), "--min-mos", "3.5",
                      "--pushgateway", pushgateway.url)
        assert failed.returncode == 1, failed.stderr
        second = _gate_samples(pushgateway.url)
    labels = {"job": "callmeter_gate", "instance": "", "project": "production", "test_id": test, "test": name}
    assert first[("callmeter_gate_passed", tuple(sorted(labels.items())))] == 1
    assert first[("callmeter_gate_mos", tuple(sorted(labels.items())))] == 4.3
    assert first[("callmeter_gate_jitter_seconds", tuple(sorted(labels.items())))] == 0.006
    assert first[("callmeter_gate_run_duration_seconds", tuple(sorted(labels.items())))] == 2
    # The second push replaced the group: one result per project and test.
    assert second[("callmeter_gate_passed", tuple(sorted(labels.items())))] == 0
    assert second[("callmeter_gate_mos", tuple(sorted(labels.items())))] == 3.1
    assert sum(1 for (metric, _) in second if metric == "callmeter_gate_passed") == 1


def _gate_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name.startswith("callmeter_gate_")}


def test_a_failed_push_warns_and_keeps_the_verdict(server: SimulatorServer) -> None:
    project, _, _ = ids(server)
    result = gate(server, "--project", project, "--run-id", finished_run(server), "--pushgateway",
                  "http://127.0.0.1:9", "--quiet")
    assert result.returncode == 0
    assert "warning: push to the Pushgateway failed" in result.stderr
