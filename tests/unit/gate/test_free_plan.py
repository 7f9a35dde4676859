"""The gate on a small budget (issue 22): a Free key's exact share, names found in the fewest requests,
the run read when it should have ended and once more before a timeout, and an API that cannot be
reached. The real gate flow and client against the simulator, on a virtual clock: a Free key's
minutes pass in milliseconds, and the simulator's request log says which requests went out, and when.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import shlex

import pytest

from exporter.api.keysource import KeySource
from exporter.app.daemon import Exporter
from exporter.gate import report
from exporter.gate.command import emit
from exporter.gate.flow import gate_limiter
from exporter.gate.options import parse
from exporter.settings import load
from exporter.simulator import DEMO_KEY, Simulator, WorldConfig
from tests.support.budget import max_in_window
from tests.support.gate import SmallPages, Unreachable, first_ids, run_gate
from tests.support.paths import ROOT
from tests.support.vclock import run_virtual

GATE_PAGE = ROOT / "docs" / "gate.md"
FREE_KEY_LIMIT = 10
"""A Free key's requests a minute, as the simulator enforces them."""
QUEUED = 4.0
"""A triggered run is PENDING and QUEUED this long in the simulator, then RUNNING for its test's duration."""


def route(path: str) -> str:
    """A simulator log path as its route template: ids become {id}."""
    path = path.removeprefix("/api/v1")
    return re.sub(r"/(projects|tests|test-runs|probes)/[^/]+", r"/\1/{id}", path)


def planned(duration: float, outcome: str = "COMPLETED"):
    def configure(sim: Simulator) -> None:
        sim.plan_test_runs(first_ids(sim)[1], outcome=outcome, duration=duration)
    return configure


def by_names(*extra: str):
    """--project by slug, --test by name: what a person types."""
    def build(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", sim.world.projects[project].slug, "--test", sim.world.tests[test].name, *extra]
    return build


# -- the budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "budget"), [("free", 2), ("basic", 12), ("pro", 24)])
def test_the_gates_budget_is_the_exact_rest_of_the_keys_limit(plan: str, budget: int) -> None:
    # 10 x (1 - 0.8) is 1.9999999999999996 in floating point: int() of it made a Free budget 1.
    options = parse(["--project", "p", "--test", "t", "--plan", plan, "--api-key", DEMO_KEY])
    assert options.budget_per_minute == budget
    assert gate_limiter(options.budget_per_minute, lambda: 0.0).window_cap == budget


@pytest.mark.parametrize("share", ["0.29", "0.5", "0.7", "0.75", "0.8", "0.9"])
@pytest.mark.parametrize("limit", [10, 60, 100, 120])
def test_the_exporter_and_the_gate_share_the_keys_limit_exactly(share: str, limit: int) -> None:
    overrides = {"requests_per_minute": limit, "budget_share": share, "api_key": DEMO_KEY}
    options = parse(["--project", "p", "--test", "t", "--requests-per-minute", str(limit), "--budget-share", share,
                     "--api-key", DEMO_KEY])

    async def exporters_window() -> int:
        exporter = Exporter.build(load(overrides), key=KeySource(value=DEMO_KEY), transport=Unreachable())
        await exporter.client.aclose()
        return exporter.limiter.window_cap

    exporter_cap = run_virtual(exporters_window())
    gate_cap = gate_limiter(options.budget_per_minute, lambda: 0.0).window_cap
    assert exporter_cap + gate_cap == limit  # nothing lost to rounding, and no window over the key's limit


def test_the_gates_limiter_goes_a_second_apart_and_its_window_cap_alone_holds_the_budget() -> None:
    # The gate's limiter spaces requests a second apart: only its 60 s window keeps it to the budget.
    clock = [0.0]
    limiter = gate_limiter(8, lambda: clock[0])
    sent = []
    for _ in range(20):
        clock[0] = limiter.reserve()
        sent.append(clock[0])
    assert [round(b - a, 6) for a, b in itertools.pairwise(sent[:8])] == [1.0] * 7
    assert sent[8] == pytest.approx(sent[0] + 60)  # the ninth waits for the first to leave the window
    assert max_in_window(sent) == 8


def test_a_gate_paging_through_a_long_list_sends_its_budget_and_not_one_request_more_a_minute() -> None:
    # 40 a minute, the exporter's share 0.8: the gate may send 8 a minute. Finding a test by name in a
    # list of 14 pages costs 14 requests: 8 in the first seconds, the rest once the window has room.
    world = WorldConfig(projects=1, probes_per_project=1, tests_per_project=14, run_duration=30,
                        probe_interval_minutes=60)

    def args(sim: Simulator) -> list[str]:
        project, _, _ = first_ids(sim)
        last = [t for t in sim.world.tests.values() if t.project_id == project][-1]
        return ["--project", project, "--test", last.name, "--requests-per-minute", "40", "--budget-share", "0.8"]

    def configure(sim: Simulator) -> None:
        project = first_ids(sim)[0]
        last = [t for t in sim.world.tests.values() if t.project_id == project][-1]
        sim.plan_test_runs(last.id, outcome="COMPLETED", duration=5)

    result = run_gate(args, world=world, configure=configure, rate_limit=40, transport=SmallPages)
    assert result.verdict.exit_code == 0, result.verdict.reason
    times = [at for _, _, _, at in result.requests]
    pages = [at for _, path, _, at in result.requests if route(path) == "/projects/{id}/tests"]
    assert len(pages) == 14
    assert max_in_window(times) == 8  # the budget is reached, and never passed
    assert pages[7] - pages[0] < 10 and pages[8] - pages[0] == pytest.approx(60, abs=0.5)


# -- a Free key, a slug and a name ---------------------------------------------------------------


def test_on_free_a_slug_and_a_name_cost_two_lists_then_the_trigger_and_one_look() -> None:
    result = run_gate(by_names("--plan", "free", "--timeout", "240s"), configure=planned(8), rate_limit=FREE_KEY_LIMIT)
    v = result.verdict
    assert v.exit_code == 0, v.reason
    assert [(m, route(p), status) for m, p, status, _ in result.requests] == [
        ("GET", "/projects", 200),                          # the slug: no read of /projects/production (a 404)
        ("GET", "/projects/{id}/tests", 200),                # the name, and the test's durationSeconds
        ("POST", "/projects/{id}/tests/{id}/run", 201),
        ("GET", "/projects/{id}/test-runs/{id}", 200),       # one look, and it is over
    ]
    assert v.requests == 4
    at = [r[3] for r in result.requests]
    assert at[1] < 2.0  # both lists in the first seconds
    # Two requests a minute: the trigger, the third request, leaves the moment the first is a minute
    # old (it waited three minutes behind a window of one request, and a 404, before).
    assert at[2] - at[0] == pytest.approx(60.0, abs=0.1) and at[2] < 61.0


def test_on_free_the_run_is_read_right_after_its_predicted_end() -> None:
    result = run_gate(by_names("--plan", "free", "--timeout", "240s"), configure=planned(8), rate_limit=FREE_KEY_LIMIT)
    triggered = result.requests[2][3]
    ended = triggered + QUEUED + 8  # the simulator's run: created at the trigger, RUNNING 4 s later for 8 s
    looked = result.requests[3][3]
    assert result.verdict.exit_code == 0 and result.verdict.status == "COMPLETED"
    assert 0 < looked - ended <= 5  # the look waits for the predicted end (plus a settle), not for the budget
    assert result.verdict.elapsed_seconds - ended <= 5  # before: 48 s after the end, or never (exit 4)
    assert "expected to end in 1" in result.progress


def test_on_free_a_test_name_that_is_not_there_is_a_usage_error_within_seconds() -> None:
    def args(sim: Simulator) -> list[str]:
        return ["--project", "production", "--test", "Production Stress Test", "--plan", "free", "--timeout", "240s"]

    result = run_gate(args, rate_limit=FREE_KEY_LIMIT)
    assert result.verdict.exit_code == 2
    assert "Production Stress Test" in result.verdict.reason
    assert [(m, route(p), s) for m, p, s, _ in result.requests] == [
        ("GET", "/projects", 200), ("GET", "/projects/{id}/tests", 200)]
    assert result.verdict.elapsed_seconds < 3  # before: two minutes


def test_a_project_id_is_read_as_an_id_and_the_trigger_leaves_in_the_first_seconds() -> None:
    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--test", sim.world.tests[test].name, "--plan", "free"]

    result = run_gate(args, configure=planned(8), rate_limit=FREE_KEY_LIMIT)
    assert result.verdict.exit_code == 0
    assert [(m, route(p)) for m, p, *_ in result.requests][:2] == [
        ("GET", "/projects/{id}/tests"), ("POST", "/projects/{id}/tests/{id}/run")]
    assert result.requests[1][3] < 2.0


def test_a_project_slug_shaped_like_a_uuid_is_still_found_by_its_slug() -> None:
    uuid_slug = "0f0e0d0c-0b0a-4908-8706-050403020100"

    def configure(sim: Simulator) -> None:
        planned(8)(sim)
        sim.world.projects[first_ids(sim)[0]].slug = uuid_slug

    result = run_gate(lambda sim: ["--project", uuid_slug, "--test", first_ids(sim)[1], "--plan", "pro"],
                      configure=configure)
    assert result.verdict.exit_code == 0, result.verdict.reason
    assert [(route(p), s) for _, p, s, _ in result.requests][:3] == [
        ("/projects/{id}/tests", 404), ("/projects", 200), ("/projects/{id}/tests", 200)]


def test_the_manual_gate_example_shows_what_the_gate_does() -> None:
    section = GATE_PAGE.read_text().split("\n## ", 1)[0]  # the page's opening: the example and its figures
    command, shown = re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)[:2]
    argv = shlex.split(command.replace("\\\n", " "))[2:]  # after `callmeter-exporter gate`

    def configure(sim: Simulator) -> None:
        sim.plan_test_runs(first_ids(sim)[1], outcome="COMPLETED", duration=120,
                           summary={"avgMos": 4.21, "avgJitterMs": 8.3, "avgPacketLossFraction": 0.12})

    assert report.table(run_gate(argv, configure=configure).verdict) == shown
    free = [*argv, "--plan", "free"]
    assert "gate took 3m06s, 5 API requests" in report.table(run_gate(free, configure=configure).verdict)
    assert "On a Free key the same gate takes 3m06s" in section


# -- the last look before a timeout --------------------------------------------------------------


def test_before_a_timeout_the_run_is_read_once_more_when_the_budget_allows() -> None:
    # A 30 s run that overruns: looks at its expected end, then 5, 10, 20, 40 s later; the next one
    # (60 s on) would come after --timeout 120s. It ends at 114 s; a look just before the deadline sees it.
    def overrun(sim: Simulator) -> None:
        planned(30)(sim)
        sim.set_faults(status_override="RUNNING")
        asyncio.get_running_loop().call_later(114, lambda: sim.set_faults(status_override=None))

    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--test", test, "--plan", "pro", "--timeout", "120s"]

    result = run_gate(args, configure=overrun)
    v = result.verdict
    assert v.exit_code == 0, v.reason
    last = result.requests[-1]
    assert route(last[1]) == "/projects/{id}/test-runs/{id}" and 114 < last[3] < 120
    assert v.elapsed_seconds < 120


def test_a_timeout_with_no_slot_left_in_the_budget_sends_nothing_more() -> None:
    def stuck(sim: Simulator) -> None:
        planned(8)(sim)
        sim.set_faults(status_override="RUNNING")

    result = run_gate(by_names("--plan", "free", "--timeout", "100s"), configure=stuck, rate_limit=FREE_KEY_LIMIT)
    assert result.verdict.exit_code == 4
    assert result.verdict.elapsed_seconds == pytest.approx(100, abs=0.5)
    times = [r[3] for r in result.requests]
    assert all(sum(1 for t in times if start <= t < start + 60) <= 2 for start in times)
    assert not [r for r in result.requests if r[2] == 429]


# -- an API that cannot be reached ---------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["600s", "5s"])
def test_an_api_that_refuses_the_connection_exits_5_within_30_seconds_naming_the_host(timeout: str) -> None:
    refusing = Unreachable()
    argv = ["--project", "production", "--test", "Production call quality 1", "--plan", "free", "--timeout", timeout]
    result = run_gate(argv, base_url="http://127.0.0.1:9/api/v1", transport=lambda sim: refusing)
    v = result.verdict
    assert v.exit_code == 5, v.reason
    assert v.elapsed_seconds <= 30
    assert "cannot reach 127.0.0.1:9" in v.reason and DEMO_KEY not in v.reason
    if timeout == "600s":
        assert len(refusing.attempts) == 4  # a short retry, each attempt a few seconds after the last
    err = io.StringIO()
    emit(v, parse([*argv, "--api-key", DEMO_KEY]), io.StringIO(), err, {})
    assert err.getvalue().startswith("callmeter-exporter gate: the CallMeter API could not be used: cannot reach "
                                     "127.0.0.1:9 (/projects)")
    assert DEMO_KEY not in err.getvalue()
