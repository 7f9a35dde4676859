"""The command line and the real process: settings errors, --once, the demo, and promtool on our output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.settings import Settings
from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig
from tests.support.keys import SECRET
from tests.support.processes import ExporterProcess
from tests.support.prometheus import promtool_check_metrics
from tests.support.published import FAMILIES


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    return subprocess.run([sys.executable, "-m", "exporter", *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def family_names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


def test_help_names_every_setting_with_its_variable_and_default() -> None:
    result = cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
        assert f"env CALLMETER_{name.upper()};" in text
    assert "default 10190" not in text and "default :10190" in text


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("callmeter-exporter 0.")


@pytest.mark.parametrize(("env", "args", "names"), [
    ({}, [], "CALLMETER_API_KEY"),
    ({"CALLMETER_API_KEY": ""}, [], "CALLMETER_API_KEY"),
    ({"CALLMETER_API_KEY": SECRET.replace("cmk_", "key_")}, [], "CALLMETER_API_KEY"),
    ({"CALLMETER_API_KEY": SECRET[:20] + " " + SECRET[20:]}, [], "CALLMETER_API_KEY"),
    ({"CALLMETER_API_KEY": SECRET}, ["--base-url", "ftp://callmeter.io"], "CALLMETER_BASE_URL"),
    ({"CALLMETER_API_KEY": SECRET}, ["--listen-address", "127.0.0.1:70000"], "CALLMETER_LISTEN_ADDRESS"),
    ({"CALLMETER_API_KEY": SECRET, "CALLMETER_PLAN": "enterprise"}, [], "CALLMETER_REQUESTS_PER_MINUTE"),
    ({"CALLMETER_API_KEY": SECRET, "CALLMETER_BUDGET_SHARE": "1.5"}, [], "CALLMETER_BUDGET_SHARE"),
    ({"CALLMETER_API_KEY_FILE": "/nonexistent/key"}, [], "CALLMETER_API_KEY_FILE"),
])
def test_bad_setting_exits_2_with_one_line_that_never_shows_the_key(env: dict[str, str], args: list[str],
                                                                     names: str) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert SECRET[4:20] not in result.stderr + result.stdout


def test_key_file_with_a_bad_key_is_reported_without_the_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret_" + SECRET[4:] + "\n")
    result = cli(env={"CALLMETER_API_KEY_FILE": str(key_file)})
    assert result.returncode == 2
    assert "CALLMETER_API_KEY_FILE" in result.stderr and SECRET[4:] not in result.stderr


def test_once_prints_every_resource_family_and_promtool_accepts_it() -> None:
    result = cli("--demo", "--once", "--log-level", "warning")
    assert result.returncode == 0, result.stderr
    names = family_names(result.stdout)
    resource = {n for n in FAMILIES if not n.startswith(("callmeter_exporter", "callmeter_up"))}
    assert resource <= names
    code, printed = promtool_check_metrics(result.stdout)
    assert code == 0 and not printed.strip(), printed


def test_once_exits_1_when_the_api_cannot_be_read(simulator: SimulatorServer) -> None:
    result = cli("--once", env={"CALLMETER_API_KEY": SECRET, "CALLMETER_BASE_URL": simulator.base_url,
                                "CALLMETER_PLAN": "pro"})
    assert result.returncode == 1
    assert "unauthorized" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_demo_serves_every_family_within_30_seconds_and_promtool_is_clean() -> None:
    with ExporterProcess("--demo") as exporter:
        exporter.wait_ready(15)
        waited = exporter.wait_for(lambda: set(FAMILIES) <= family_names(exporter.metrics()), 30,
                                   "every metric family")
        assert waited < 30
        text = exporter.metrics()
        code, printed = promtool_check_metrics(text)
        assert code == 0 and not printed.strip(), printed
        assert exporter.get("/healthz").status_code == 200
        assert "CallMeter exporter" in exporter.get("/").text
        assert exporter.stop() == 0


def test_revoked_key_gives_up_0_a_clear_log_line_and_a_running_process(simulator: SimulatorServer) -> None:
    env = {"CALLMETER_API_KEY": DEMO_KEY, "CALLMETER_BASE_URL": simulator.base_url, "CALLMETER_PLAN": "enterprise",
           "CALLMETER_REQUESTS_PER_MINUTE": "600", "CALLMETER_PROBES_MIN_INTERVAL": "1",
           "CALLMETER_TEST_RUNS_MIN_INTERVAL": "1", "CALLMETER_INVENTORY_MIN_INTERVAL": "5"}
    with ExporterProcess(env=env) as exporter:
        exporter.wait_ready(30)
        before = exporter.metrics()
        assert "callmeter_up 1.0" in before
        simulator.simulator.revoked.add(DEMO_KEY)
        exporter.wait_for(lambda: "callmeter_up 0.0" in exporter.metrics(), 20, "callmeter_up 0")
        after = exporter.metrics()
        # The last good data stays.
        probes = [line for line in before.splitlines() if line.startswith("callmeter_probe_interval_seconds")]
        assert probes and all(line in after for line in probes)
        assert exporter.proc.poll() is None
        log = exporter.output()
        assert '"error": "unauthorized"' in log and '"event": "api.error"' in log
        assert DEMO_KEY not in log
        simulator.simulator.revoked.clear()
        exporter.wait_for(lambda: "callmeter_up 1.0" in exporter.metrics(), 20, "recovery")


def show_schedule(server: SimulatorServer, plan: str, schedule: str = "fixed") -> subprocess.CompletedProcess[str]:
    return cli("--show-schedule", "--log-level", "warning",
               env={"CALLMETER_API_KEY": DEMO_KEY, "CALLMETER_BASE_URL": server.base_url, "CALLMETER_PLAN": plan,
                    "CALLMETER_SCHEDULE": schedule})


def test_show_schedule_reads_the_project_list_once_and_prints_the_plan(simulator: SimulatorServer) -> None:
    result = show_schedule(simulator, "basic")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()
            and line.split()[0] in ("probes", "test_runs", "projects", "tests", "registrars")}
    assert set(rows) == {"probes", "test_runs", "projects", "tests", "registrars"}
    assert rows["probes"][3] == "60s" and rows["probes"][-1] == "yes"
    assert "budget 48.0 requests/min" in result.stdout and "can have up to" in result.stdout
    assert "probe status  30 s" in result.stdout  # the expected delay: half the interval
    assert [path for _, _, path, _ in simulator.simulator.requests] == ["/api/v1/projects"]


def test_show_schedule_adaptive_reads_each_probe_list_once_and_prints_the_expected_delays() -> None:
    world = WorldConfig(projects=3, probes_per_project=2, tests_per_project=3, probe_interval_minutes=5.0)
    with SimulatorServer(Simulator(world)) as server:
        result = show_schedule(server, "free", "adaptive")
        paths = [path for _, _, path, _ in server.simulator.requests]
    assert result.returncode == 0, result.stderr
    assert paths[0] == "/api/v1/projects" and len(paths) == 4 and all(p.endswith("/probes") for p in paths[1:])
    out = result.stdout
    assert "schedule: adaptive" in out and "one read per execution" in out
    # 6 probes every 5 minutes: 72 reads an hour, against 180 for a read a minute per project.
    assert "takes 72 reads an hour" in out and "would send 180" in out
    probe = next(line.split() for line in out.splitlines() if line.strip().startswith("probe status"))
    assert int(probe[2]) <= 5 and probe[-2:] == ["30", "s"]


def test_show_schedule_names_the_floors_a_free_key_cannot_meet() -> None:
    world = WorldConfig(projects=12, probes_per_project=3, tests_per_project=5)
    with SimulatorServer(Simulator(world)) as server:
        result = show_schedule(server, "free")
    assert result.returncode == 0, result.stderr
    probes = next(line.split() for line in result.stdout.splitlines() if line.startswith("probes "))
    assert probes[1] == "12" and probes[-1] == "NO"
    assert "Floors not met: probes" in result.stdout and "CALLMETER_PROJECTS" in result.stdout
    assert "only idle slots" in result.stdout and "CALLMETER_PROBES_MIN_INTERVAL" in result.stdout


def test_show_schedule_shows_the_reads_below_the_plan_and_when_they_have_no_room() -> None:
    roomy, tight = WorldConfig(projects=2, probes_per_project=3, tests_per_project=4), WorldConfig(projects=12)
    with SimulatorServer(Simulator(roomy)) as server:
        result = show_schedule(server, "free")
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert " 6 requests every 900s" in lines["probe_details"] and " 8 requests every 900s" in lines["test_details"]
    assert "CALLMETER_RUN_ENDPOINTS=auto" in lines["test_run_endpoints"] and "No room" not in result.stdout
    with SimulatorServer(Simulator(tight)) as server:
        assert "No room" in show_schedule(server, "free").stdout
