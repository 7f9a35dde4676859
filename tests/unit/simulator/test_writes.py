"""The simulator's two writes, Run Test and Run Probe, over real HTTP: as the API reference describes them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from exporter.simulator import DEMO_KEY, Simulator, SimulatorServer, WorldConfig

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[SimulatorServer]:
    world = WorldConfig(projects=2, probes_per_project=2, tests_per_project=2, run_duration=30,
                        probe_interval_minutes=60)
    with SimulatorServer(Simulator(world, clock=clock)) as srv:
        yield srv


def ids(server: SimulatorServer) -> tuple[str, str, str]:
    w = server.simulator.world
    project = next(iter(w.projects))
    test = next(t.id for t in w.tests.values() if t.project_id == project)
    probe = next(p.id for p in w.probes.values() if p.project_id == project)
    return project, test, probe


def call(server: SimulatorServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.base_url + path, headers=kwargs.pop("headers", AUTH), timeout=5, **kwargs)


def test_run_test_answers_201_with_a_pending_run_that_lists_and_reads(server: SimulatorServer, clock: Clock) -> None:
    project, test, _ = ids(server)
    answer = call(server, "POST", f"/projects/{project}/tests/{test}/run")
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"data", "meta"} and body["meta"]["requestId"]
    run = body["data"]
    assert run["testId"] == test and run["status"] == "PENDING" and run["createdAt"].endswith("Z")
    detail = call(server, "GET", f"/projects/{project}/test-runs/{run['id']}").json()["data"]
    assert detail["status"] == "PENDING" and "summary" in detail
    listed = call(server, "GET", f"/projects/{project}/test-runs", params={"per_page": 100}).json()["data"]
    assert run["id"] in [r["id"] for r in listed]


def test_a_triggered_run_lasts_its_tests_duration_and_ends_as_planned(server: SimulatorServer, clock: Clock) -> None:
    project, test, _ = ids(server)
    server.simulator.plan_test_runs(test, outcome="COMPLETED", summary={"avgMos": 4.4, "avgRttMs": None})
    duration = call(server, "GET", f"/projects/{project}/tests/{test}").json()["data"]["durationSeconds"]
    assert duration == 30
    run_id = call(server, "POST", f"/projects/{project}/tests/{test}/run").json()["data"]["id"]
    seen = []
    for second in range(0, 40):
        clock.now = 1_800_000_000.0 + second
        data = call(server, "GET", f"/projects/{project}/test-runs/{run_id}").json()["data"]
        if not seen or seen[-1] != data["status"]:
            seen.append(data["status"])
    assert seen == ["PENDING", "QUEUED", "RUNNING", "COMPLETED"]
    assert data["summary"]["avgMos"] == 4.4 and data["summary"]["avgRttMs"] is None
    # RUNNING for exactly the test's duration: from startedAt to completedAt.
    started, completed = (datetime.fromisoformat(data[k].replace("Z", "+00:00")) for k in ("startedAt", "completedAt"))
    assert (completed - started).total_seconds() == duration


@pytest.mark.parametrize("outcome", ["FAILED", "CANNOT_RUN_FOR_NOW"])
def test_chosen_tests_end_failed_or_cannot_run(server: SimulatorServer, clock: Clock, outcome: str) -> None:
    project, test, _ = ids(server)
    control = httpx.post(f"http://127.0.0.1:{server.port}/_sim/tests/{test}", json={"outcome": outcome}, timeout=5)
    assert control.status_code == 200
    run_id = call(server, "POST", f"/projects/{project}/tests/{test}/run").json()["data"]["id"]
    clock.now += 60
    assert call(server, "GET", f"/projects/{project}/test-runs/{run_id}").json()["data"]["status"] == outcome


def test_run_probe_answers_201_and_moves_last_execution_at(server: SimulatorServer, clock: Clock) -> None:
    project, _, probe = ids(server)
    server.simulator.plan_probe_executions(probe, status="DEGRADED", seconds=8)
    before = call(server, "GET", f"/projects/{project}/probes/{probe}").json()["data"]
    answer = call(server, "POST", f"/projects/{project}/probes/{probe}/run")
    assert answer.status_code == 201
    execution = answer.json()["data"]
    assert execution["probeId"] == probe and execution["status"] == "QUEUED" and execution["id"]
    clock.now += 5
    assert call(server, "GET", f"/projects/{project}/probes/{probe}").json()["data"] == before
    clock.now += 5
    after = call(server, "GET", f"/projects/{project}/probes/{probe}").json()["data"]
    assert after["lastExecutionAt"] > before["lastExecutionAt"] and after["lastExecutionAt"] >= execution["createdAt"]
    assert after["status"] == "DEGRADED"
    assert after["nextExecutionAt"] == before["nextExecutionAt"]  # the schedule does not move


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/projects/{p}/tests/nope/run", 404, "NOT_FOUND"),
    ("/projects/{p}/probes/nope/run", 404, "NOT_FOUND"),
    ("/projects/nope/tests/{t}/run", 404, "NOT_FOUND"),
    ("/projects/{other}/tests/{t}/run", 404, "NOT_FOUND"),  # a test of another project
    ("/projects/{p}/registrars/x/run", 404, "NOT_FOUND"),
])
def test_writes_to_missing_resources_answer_the_error_envelope(server: SimulatorServer, path: str, status: int,
                                                                code: str) -> None:
    project, test, _ = ids(server)
    other = next(p for p in server.simulator.world.projects if p != project)
    answer = call(server, "POST", path.format(p=project, t=test, other=other))
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert not server.simulator.world.manual_runs


def test_writes_need_the_key_and_the_permission(server: SimulatorServer) -> None:
    project, test, _ = ids(server)
    assert call(server, "POST", f"/projects/{project}/tests/{test}/run", headers={}).status_code == 401
    server.simulator.set_faults(forbidden_projects=[project])
    answer = call(server, "POST", f"/projects/{project}/tests/{test}/run")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "FORBIDDEN"
    assert not server.simulator.world.manual_runs


def test_writes_and_reads_share_one_rate_limit_window(clock: Clock) -> None:
    with SimulatorServer(Simulator(WorldConfig(projects=1), clock=clock, rate_limit_per_minute=3)) as server:
        project, test, _ = ids(server)
        assert call(server, "GET", "/projects").status_code == 200
        assert call(server, "GET", "/projects").status_code == 200
        assert call(server, "POST", f"/projects/{project}/tests/{test}/run").status_code == 201
        limited = call(server, "POST", f"/projects/{project}/tests/{test}/run")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert call(server, "GET", "/projects").status_code == 429
        assert len(server.simulator.world.manual_runs[test]) == 1  # a refused write creates nothing


def test_a_burst_of_429_refuses_writes_too(server: SimulatorServer) -> None:
    project, test, _ = ids(server)
    server.simulator.set_faults(burst_429=1, retry_after_seconds=7)
    limited = call(server, "POST", f"/projects/{project}/tests/{test}/run")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert call(server, "POST", f"/projects/{project}/tests/{test}/run").status_code == 201


def test_scheduled_runs_are_untouched_by_the_plans(server: SimulatorServer, clock: Clock) -> None:
    project, test, _ = ids(server)
    before = call(server, "GET", f"/projects/{project}/test-runs", params={"per_page": 100}).json()["data"]
    server.simulator.plan_test_runs(test, outcome="FAILED", summary={"avgMos": None}, duration=5)
    after = call(server, "GET", f"/projects/{project}/test-runs", params={"per_page": 100}).json()["data"]
    assert before == after
