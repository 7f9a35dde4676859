"""The gate end to end in-process: the real client and simulator on a virtual clock, every exit code.

Exit codes are a public contract (docs/gate.md): a CI job reads the number. So these tests say the numbers
(0 passed, 1 gate failed, 2 usage, 3 run failed, 4 timed out, 5 API error), never the constants the code
exports: constants swapped in the code would pass a test that compares with the same constants.
"""

from __future__ import annotations

import ast
import asyncio

import pytest

from exporter.api.client import CallMeterClient
from exporter.gate import command, judge
from exporter.gate.api import GateClient
from exporter.simulator import Simulator, WorldConfig
from tests.support import simulated
from tests.support.gate import RefusedWrites, first_ids, reference_loop, run_gate
from tests.support.paths import ROOT
from tests.support.vclock import run_virtual

GOOD = {"avgMos": 4.3, "avgJitterMs": 6.0, "avgPacketLossFraction": 0.2, "avgRttMs": 40.0, "asr": 99.0,
        "ner": 100.0, "registrationFailedCount": 0}
GATES = ["--min-mos", "3.5", "--max-jitter-seconds", "0.03", "--max-packet-loss-ratio", "0.01",
         "--max-rtt-seconds", "0.15", "--min-asr-ratio", "0.95", "--min-ner-ratio", "0.95",
         "--max-registration-failures", "0"]


def plan(outcome: str = "COMPLETED", duration: float | None = None, **summary: float | None):
    def configure(sim: Simulator) -> None:
        _, test, _ = first_ids(sim)
        sim.plan_test_runs(test, outcome=outcome, summary={**GOOD, **summary}, duration=duration)
    return configure


def gate_args(*extra: str):
    def build(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--test", test, "--plan", "basic", *extra]
    return build


def test_the_exit_codes_are_the_documented_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert judge.EXIT_NAMES == {0: "passed", 1: "gate failed", 2: "usage error", 3: "run failed", 4: "timed out",
                                5: "API error"}
    assert command.main(["--project", "p", "--test", "t"]) == 2  # no API key: a usage error, before any request
    assert "callmeter-exporter gate:" in capsys.readouterr().err


def test_a_completed_run_within_every_gate_passes_with_four_requests() -> None:
    result = run_gate(gate_args(*GATES), configure=plan())
    v = result.verdict
    assert v.exit_code == 0, v.reason
    assert v.status == "COMPLETED" and v.run_seconds == 120
    assert [g.outcome for g in v.gates] == ["pass"] * 7
    # Test list, trigger, one early look (the run is long), one look at its expected end.
    assert [(m, p.split("/")[-1]) for m, p, *_ in result.requests] == [
        ("GET", "tests"), ("POST", "run"), ("GET", v.run_id), ("GET", v.run_id)]
    assert v.requests == len(result.requests) == 4
    assert "PENDING" in result.progress and "RUNNING" in result.progress and "COMPLETED" in result.progress


def test_the_wait_ends_soon_after_the_expected_end() -> None:
    result = run_gate(gate_args(), configure=plan(duration=600))
    finished = result.requests[-1][3]
    assert result.verdict.exit_code == 0
    assert 600 <= finished <= 600 + 15, finished  # queueing (4 s) plus the settle margin, not a poll period


@pytest.mark.parametrize(("summary", "title", "failed"), [
    ({"avgMos": 3.2}, "MOS", "MOS 3.2 is below the minimum 3.5"),
    ({"avgJitterMs": 45.0}, "jitter", "jitter 45 ms is above the maximum 30 ms"),
    ({"avgPacketLossFraction": 2.5}, "packet loss", "packet loss 2.5 % is above the maximum 1 %"),
    ({"avgRttMs": 151.0}, "RTT", "RTT 151 ms is above the maximum 150 ms"),
    ({"asr": 90.0}, "ASR", "ASR 90 % is below the minimum 95 %"),
    ({"ner": 94.9}, "NER", "NER 94.9 % is below the minimum 95 %"),
    ({"registrationFailedCount": 3}, "registration failures", "registration failures 3 is above the maximum 0"),
])
def test_a_value_past_its_gate_exits_1_and_says_which(summary: dict[str, float], title: str, failed: str) -> None:
    v = run_gate(gate_args(*GATES), configure=plan(**summary)).verdict
    assert v.exit_code == 1
    assert v.reason == failed
    assert [g.title for g in v.gates if g.failed] == [title]


@pytest.mark.parametrize("outcome", ["FAILED", "CANNOT_RUN_FOR_NOW"])
def test_a_failed_or_unstartable_run_exits_3(outcome: str) -> None:
    result = run_gate(gate_args("--min-mos", "3.5"), configure=plan(outcome, duration=1800))
    v = result.verdict
    assert v.exit_code == 3 and v.status == outcome
    assert v.reason == f"the run ended {outcome}"
    assert [g.outcome for g in v.gates] == ["skipped"]
    if outcome == "CANNOT_RUN_FOR_NOW":
        # The early look finds it within seconds, not after the half hour the test would have run.
        assert v.elapsed_seconds < 30 and result.count() == 3


def test_the_timeout_ends_the_wait_with_exit_4_and_the_last_status() -> None:
    result = run_gate(gate_args("--min-mos", "3.5", "--timeout", "5m"), configure=plan(duration=3600))
    v = result.verdict
    assert v.exit_code == 4
    assert 300 <= v.elapsed_seconds < 301
    assert v.reason == "timed out after 300s waiting for the run to end (last seen: RUNNING)"
    assert v.status == "RUNNING" and v.run_id
    # Test list, trigger, the early look; nothing while it sleeps but one last look before the deadline.
    assert result.count() == 4 and 296 <= result.requests[-1][3] < 300


def test_the_default_timeout_is_the_duration_plus_fifteen_minutes() -> None:
    def stuck(sim: Simulator) -> None:
        sim.set_faults(status_override="RUNNING")  # a run that never ends

    result = run_gate(gate_args(), configure=lambda s: (plan(duration=60)(s), stuck(s)))
    assert result.verdict.exit_code == 4
    assert result.verdict.elapsed_seconds == pytest.approx(60 + 5 + 900, abs=1)
    assert result.count() < 30  # backoff up to a minute between looks


def test_429s_during_the_wait_are_honoured_and_the_gate_still_passes() -> None:
    def burst(sim: Simulator) -> None:
        sim.set_faults(burst_429=2, retry_after_seconds=45)

    result = run_gate(gate_args("--min-mos", "3.5"), configure=plan(duration=30), during=burst, during_at=10)
    v = result.verdict
    assert v.exit_code == 0, v.reason
    limited = [r for r in result.requests if r[2] == 429]
    assert len(limited) == 2
    after = [r for r in result.requests if r[3] > limited[0][3]]
    assert after[0][3] - limited[0][3] >= 45 and after[1][3] - after[0][3] >= 45  # Retry-After, twice
    assert "rate limited (429)" in result.progress


def test_a_429_on_the_trigger_is_retried_and_starts_one_run() -> None:
    def burst_at_post(sim: Simulator) -> None:
        sim.set_faults(burst_429=1, retry_after_seconds=20)

    # The test list goes out at once; the burst lands on the trigger that follows it.
    result = run_gate(gate_args(), configure=plan(duration=30), during=burst_at_post, during_at=1.0)
    _, test, _ = first_ids(result.simulator)
    assert result.verdict.exit_code == 0
    assert [r[2] for r in result.requests if r[0] == "POST"] == [429, 201]
    assert len(result.simulator.world.manual_runs[test]) == 1


def test_a_server_error_on_the_trigger_is_not_retried_and_exits_5() -> None:
    def failing(sim: Simulator) -> None:
        sim.set_faults(error_rate=1.0)

    result = run_gate(gate_args(), configure=plan(), during=failing, during_at=1.0)
    v = result.verdict
    assert v.exit_code == 5
    assert result.count("POST") == 1  # a 5xx may have started a run: a second one is not sent
    assert "may have started a run" in v.reason


def test_a_trigger_that_could_not_connect_is_sent_again_and_starts_one_run() -> None:
    result = run_gate(gate_args(), configure=plan(duration=30), transport=lambda sim: RefusedWrites(sim, 2))
    _, test, _ = first_ids(result.simulator)
    assert result.verdict.exit_code == 0, result.verdict.reason
    assert [r[2] for r in result.requests if r[0] == "POST"] == [201]
    assert len(result.simulator.world.manual_runs[test]) == 1


def test_a_trigger_that_never_connects_exits_5_saying_nothing_was_triggered() -> None:
    result = run_gate(gate_args(), configure=plan(), transport=lambda sim: RefusedWrites(sim, 100))
    v = result.verdict
    _, test, _ = first_ids(result.simulator)
    assert v.exit_code == 5
    assert "no connection was made, so nothing was triggered" in v.reason
    assert "may have started" not in v.reason
    assert result.count("POST") == 0 and not result.simulator.world.manual_runs.get(test)


def test_run_id_judges_an_existing_run_without_triggering() -> None:
    def finished(sim: Simulator) -> None:
        plan(avgMos=3.1)(sim)
        _, test, _ = first_ids(sim)
        sim.world.start_run(test, sim.clock() - 1000)

    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--run-id", f"run_{test[:8]}_m0000", "--min-mos", "3.5", "--plan", "basic"]

    result = run_gate(args, configure=finished)
    assert result.verdict.exit_code == 1 and result.verdict.reason == "MOS 3.1 is below the minimum 3.5"
    assert result.count("POST") == 0 and result.count() == 1


def test_run_id_of_a_running_run_waits_for_it() -> None:
    def running(sim: Simulator) -> None:
        plan(duration=300)(sim)
        _, test, _ = first_ids(sim)
        sim.world.start_run(test, sim.clock() - 100)

    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--run-id", f"run_{test[:8]}_m0000", "--plan", "basic"]

    result = run_gate(args, configure=running)
    assert result.verdict.exit_code == 0 and result.count("POST") == 0
    assert 200 <= result.verdict.elapsed_seconds <= 215  # the rest of its 300 s, read from startedAt
    assert result.count() == 3  # the run, its test (duration and name), the look at its end


@pytest.mark.parametrize("bad", [["--run-id", "run_nope"], ["--test", "No such test"], ["--probe", "nope"]])
def test_a_target_that_is_not_there_exits_2(bad: list[str]) -> None:
    result = run_gate(lambda sim: ["--project", first_ids(sim)[0], "--plan", "basic", *bad])
    assert result.verdict.exit_code == 2
    assert result.count("POST") == 0


def test_a_project_slug_and_a_test_name_are_resolved() -> None:
    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", sim.world.projects[project].slug, "--test", sim.world.tests[test].name, "--plan", "pro"]

    result = run_gate(args, configure=plan(duration=30))
    assert result.verdict.exit_code == 0 and result.verdict.project == "production"
    # The slug is not a UUID, so not an id: the project list first, never a read known to 404.
    assert [p.rsplit("/", 1)[-1] for m, p, *_ in result.requests][:3] == ["projects", "tests", "run"]


@pytest.mark.parametrize("fault", ["revoked", "forbidden"])
def test_a_key_the_api_refuses_exits_5(fault: str) -> None:
    def configure(sim: Simulator) -> None:
        project, _, _ = first_ids(sim)
        if fault == "revoked":
            sim.revoked.add(next(iter(sim.keys)))
        else:
            sim.set_faults(forbidden_projects=[project])

    result = run_gate(gate_args(), configure=configure)
    assert result.verdict.exit_code == 5
    assert ("401" if fault == "revoked" else "403") in result.verdict.reason
    assert result.count("POST") == 0


@pytest.mark.parametrize(("allow", "code", "outcome"), [(False, 1, "missing"), (True, 0, "skipped")])
def test_a_null_summary_field_fails_its_gate_unless_allowed(allow: bool, code: int, outcome: str) -> None:
    extra = ["--allow-missing"] if allow else []
    v = run_gate(gate_args("--min-mos", "3.5", "--max-rtt-seconds", "0.1", *extra),
                 configure=plan(duration=30, avgRttMs=None)).verdict
    assert v.exit_code == code
    rtt = next(g for g in v.gates if g.title == "RTT")
    assert rtt.outcome == outcome and rtt.value is None and rtt.shown == "null"
    assert "avgRttMs" in rtt.message
    assert next(g for g in v.gates if g.title == "MOS").outcome == "pass"


@pytest.mark.parametrize(("unit", "code"), [("percent", 0), ("fraction", 1)])
def test_packet_loss_is_read_in_the_exporters_unit(unit: str, code: int) -> None:
    # 0.5 is 0.5 % read as percent (under a 1 % gate), or 50 % read as a fraction.
    v = run_gate(gate_args("--max-packet-loss-ratio", "0.01", "--packet-loss-unit", unit),
                 configure=plan(duration=30, avgPacketLossFraction=0.5)).verdict
    assert v.exit_code == code
    assert v.values["packet_loss_ratio"] == (0.005 if unit == "percent" else 0.5)


def probe_args(*extra: str):
    def build(sim: Simulator) -> list[str]:
        project, _, probe = first_ids(sim)
        return ["--project", project, "--probe", probe, "--plan", "basic", *extra]
    return build


def plan_probe(status: str, seconds: float = 25):
    def configure(sim: Simulator) -> None:
        sim.plan_probe_executions(first_ids(sim)[2], status=status, seconds=seconds)
    return configure


@pytest.mark.parametrize(("status", "minimum", "code"), [
    ("HEALTHY", "HEALTHY", 0), ("DEGRADED", "HEALTHY", 1), ("DEGRADED", "DEGRADED", 0),
    ("UNHEALTHY", "DEGRADED", 1), ("UNKNOWN", "UNHEALTHY", 3)])
def test_the_probe_gate_waits_for_the_execution_and_judges_its_status(status: str, minimum: str, code: int) -> None:
    extra = [] if minimum == "HEALTHY" else ["--min-probe-status", minimum]
    result = run_gate(probe_args(*extra), configure=plan_probe(status))
    v = result.verdict
    assert v.exit_code == code, v.reason
    assert v.status == status and v.kind == "probe" and v.run_id
    assert v.elapsed_seconds >= 25  # not before the execution has run
    # Probe list, trigger, looks at 10 and 20 s (not run yet), the look at 40 s that sees it.
    assert [r[0] for r in result.requests] == ["GET", "POST", "GET", "GET", "GET"]


def test_the_probe_gate_times_out_when_no_execution_shows() -> None:
    result = run_gate(probe_args("--timeout", "90"), configure=plan_probe("HEALTHY", seconds=3600))
    assert result.verdict.exit_code == 4
    assert "waiting for the probe's execution" in result.verdict.reason


def test_a_small_budget_spaces_the_requests_within_each_minute() -> None:
    # Free plan, exporter share 0.8: the gate may send 2 requests a minute.
    result = run_gate(lambda s: [*gate_args()(s), "--plan", "free"], configure=plan(duration=5),
                      during=lambda s: s.set_faults(status_override="RUNNING"), during_at=1, rate_limit=10)
    times = [r[3] for r in result.requests]
    assert result.verdict.exit_code == 4
    assert all(sum(1 for t in times if start <= t < start + 60) <= 2 for start in times)
    assert not [r for r in result.requests if r[2] == 429]


@pytest.mark.parametrize(("outcome", "duration"), [("COMPLETED", 120), ("COMPLETED", 600), ("CANNOT_RUN_FOR_NOW", 120)])
def test_one_gate_costs_a_fraction_of_the_reference_loop(outcome: str, duration: float) -> None:
    configure = plan(outcome, duration=duration)
    gate = run_gate(gate_args("--min-mos", "3.5"), configure=configure)
    loop_requests, loop_status = reference_loop(configure=configure)
    print(f"\n{outcome} run of a {duration:.0f} s test: gate {gate.count()} requests "
          f"(exit {gate.verdict.exit_code}), reference loop {loop_requests} ({loop_status or 'still looping'})")
    assert gate.count() <= 4
    if outcome == "COMPLETED":
        assert loop_status == "COMPLETED" and loop_requests >= 3 * gate.count()
    else:
        assert loop_status is None and loop_requests > 300  # it never stops: an hour of reads every 10 s
        assert gate.verdict.exit_code == 3


# -- the daemon never writes -------------------------------------------------------------------------

READS = {"get", "page", "list_all", "parse_items", "aclose"}


def test_the_daemons_client_offers_reads_only() -> None:
    public = {name for name in dir(CallMeterClient) if not name.startswith("_")}
    assert public == READS
    assert {name for name in dir(GateClient) if not name.startswith("_")} - READS == {
        "run_test", "run_probe", "read_project", "read_run", "read_probe", "read_test", "list_tests", "list_probes"}


def test_nothing_outside_the_gate_imports_it_but_the_subcommand() -> None:
    package = ROOT / "exporter"
    importers = []
    for path in package.rglob("*.py"):
        if "gate" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(name == "gate" or ".gate" in name or name.startswith("gate.") for name in names):
                importers.append(f"{path.relative_to(package)}:{node.lineno}")
    assert len(importers) == 1 and importers[0].startswith("cli.py:"), importers


def test_an_hour_of_the_daemons_polling_sends_only_gets() -> None:
    async def main() -> list[str]:
        harness = simulated.build(WorldConfig(projects=2, probes_per_project=3, tests_per_project=3, run_period=120,
                                              run_duration=30), key_limit=120)
        harness.start()
        await asyncio.sleep(3600)
        await harness.stop()
        return [method for _, method, _, _ in harness.simulator.requests]

    methods = run_virtual(main())
    assert len(methods) > 300 and set(methods) == {"GET"}
