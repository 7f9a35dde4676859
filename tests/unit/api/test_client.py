"""The real client against the simulator over real HTTP.

Each test runs its own event loop (`asyncio.run`), as the rest of the suite does: the `with_client`
fixture runs a coroutine with a fresh client on the simulator and closes the client afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any, TypeVar

import httpx
import pytest
from structlog.testing import capture_logs

from exporter.api import errors
from exporter.api.budget import RateLimiter
from exporter.api.client import CallMeterClient, _Answer, _judge, parse_retry_after
from exporter.api.keysource import KeySource
from exporter.api.models import Probe, Project, TestRun
from exporter.simulator import DEMO_KEY, SimulatorServer
from tests.support.fake_time import FakeTime
from tests.support.paths import ROOT
from tests.support.prometheus import free_port

T = TypeVar("T")


class ClientRunner:
    """`with_client(use, **options)`: `use(client)` on its own event loop, with a client on the simulator
    whose limiter and sleeps run on the test's fake clock; the client is closed whatever happens."""

    def __init__(self, server: SimulatorServer, fake: FakeTime) -> None:
        self._server = server
        self._fake = fake

    def __call__(self, use: Callable[[Any], Awaitable[T]], *, cls: type[CallMeterClient] = CallMeterClient,
                 key: str = DEMO_KEY, per_minute: float = 6000, base_url: str | None = None, **options: Any) -> T:
        async def go() -> T:
            limiter = RateLimiter(per_minute=per_minute, window_cap=int(per_minute), clock=self._fake.clock)
            client = cls(base_url=base_url or self._server.base_url, key=KeySource(value=key), limiter=limiter,
                         sleep=self._fake.sleep, backoff_base=0.5, **options)
            try:
                return await use(client)
            finally:
                await client.aclose()

        return asyncio.run(go())


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def with_client(simulator: SimulatorServer, fake: FakeTime) -> ClientRunner:
    return ClientRunner(simulator, fake)


def first_project(server: SimulatorServer) -> str:
    return next(iter(server.simulator.world.projects))


def list_projects(client: CallMeterClient) -> Awaitable[list[Project]]:
    return client.list_all("/projects", "projects", Project)


def test_multi_page_listing_reads_every_page(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    pid = first_project(simulator)
    # Enough runs for several pages of 100.
    world = simulator.simulator.world
    for test in world.tests.values():
        world.manual_runs[test.id] = [world.start - 3600 + i for i in range(60)]
    runs = with_client(lambda client: client.list_all("/projects/{projectId}/test-runs", f"projects/{pid}/test-runs",
                                                      TestRun))
    expected = len(world.runs_of_project(pid, simulator.simulator.clock()))
    assert expected > 200
    assert len(runs) == expected == len({r.id for r in runs})
    pages = [path for _, _, path, _ in simulator.simulator.requests if path.endswith("/test-runs")]
    assert len(pages) == -(-expected // 100)


def test_every_request_is_a_get_with_bearer_auth_and_user_agent(simulator: SimulatorServer,
                                                                with_client: ClientRunner) -> None:
    seen: list[dict[str, str]] = []
    sim = simulator.simulator
    original = sim.handle

    def spy(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Any:
        seen.append({"method": method, **{k.lower(): v for k, v in headers.items()}})
        return original(method, target, headers, body)

    sim.handle = spy  # type: ignore[method-assign]
    with_client(list_projects)
    assert seen and all(s["method"] == "GET" for s in seen)
    assert all(s["authorization"] == f"Bearer {DEMO_KEY}" for s in seen)
    assert all(s["user-agent"].startswith("callmeter-exporter/") for s in seen)


def test_unauthorized_is_typed_and_not_retried(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    with capture_logs() as logs, pytest.raises(errors.Unauthorized) as raised:
        with_client(list_projects, key="cmk_" + "0" * 32)
    assert raised.value.code == "UNAUTHORIZED"
    assert len(simulator.simulator.requests) == 1
    assert any(e["event"] == "api.error" and e["error"] == "unauthorized" and e["route"] == "/projects"
               for e in logs)


@pytest.mark.parametrize("style", ["seconds", "http-date"])
def test_retry_after_is_honoured(simulator: SimulatorServer, with_client: ClientRunner, fake: FakeTime,
                                 style: str) -> None:
    simulator.simulator.set_faults(burst_429=1, retry_after=style, retry_after_seconds=20)
    projects = with_client(list_projects)
    assert len(projects) == 2
    statuses = [status for *_, status in simulator.simulator.requests]
    assert statuses == [429, 200]
    # The second attempt waited for Retry-After (an HTTP-date has one-second resolution).
    assert 19 <= sum(fake.slept) <= 22


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) == 60
    assert parse_retry_after("garbage") == 60
    assert parse_retry_after("999999") == 900
    assert parse_retry_after("-5") == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30


def test_server_errors_are_retried_with_backoff(simulator: SimulatorServer, with_client: ClientRunner,
                                                fake: FakeTime) -> None:
    sim = simulator.simulator
    sim.set_faults(error_rate=1.0)
    pid = first_project(simulator)
    with pytest.raises(errors.ServerError):
        with_client(lambda client: client.list_all("/projects/{projectId}/probes", f"projects/{pid}/probes", Probe),
                    max_attempts=3)
    assert [s for *_, s in sim.requests] == [500, 500, 500]
    backoffs = [s for s in fake.slept if s > 0.01]
    assert len(backoffs) == 2 and backoffs[1] > backoffs[0] * 0.6  # exponential with jitter


def test_a_transient_500_is_invisible_to_the_caller(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    sim = simulator.simulator
    calls = {"n": 0}
    original = sim.handle

    def flaky(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            sim.faults.error_rate = 1.0
        else:
            sim.faults.error_rate = 0.0
        return original(method, target, headers, body)

    sim.handle = flaky  # type: ignore[method-assign]
    assert len(with_client(list_projects)) == 2
    assert [s for *_, s in sim.requests] == [500, 200]


def test_malformed_body_is_an_invalid_response(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    simulator.simulator.set_faults(malformed_rate=1.0)
    with pytest.raises(errors.InvalidResponse) as raised:
        with_client(list_projects)
    assert raised.value.route == "/projects"


def test_budget_is_shared_by_retries(simulator: SimulatorServer, with_client: ClientRunner, fake: FakeTime) -> None:
    """A retry books its own slot: four attempts at 60/min take at least three intervals."""
    simulator.simulator.set_faults(error_rate=1.0)
    with pytest.raises(errors.ServerError):
        with_client(list_projects, per_minute=60, max_attempts=4)
    assert fake.now >= 3 * 1.0


# -- one place counts every outcome -----------------------------------------------------------------------


class Recording:
    """A RequestObserver that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def request(self, endpoint: str, code: str, seconds: float) -> None:
        self.calls.append(("request", endpoint, code))

    def error(self, endpoint: str, kind: str) -> None:
        self.calls.append(("error", endpoint, kind))

    def rate_limited(self) -> None:
        self.calls.append(("rate_limited",))

    def rate_limit_remaining(self, remaining: float) -> None:
        self.calls.append(("remaining", str(remaining)))


def test_every_attempt_is_counted_once_with_its_outcome(simulator: SimulatorServer,
                                                        with_client: ClientRunner) -> None:
    simulator.simulator.set_faults(burst_429=1)
    observer = Recording()
    with_client(list_projects, observer=observer)
    assert observer.calls == [("request", "/projects", "429"), ("error", "/projects", "rate_limited"),
                              ("rate_limited",), ("request", "/projects", "200")]


def test_an_attempt_without_an_answer_is_counted_as_code_error(with_client: ClientRunner) -> None:
    observer = Recording()
    closed = f"http://127.0.0.1:{free_port()}/api/v1"  # nothing listens there: the connection is refused
    with pytest.raises(errors.ApiConnectionError):
        with_client(list_projects, base_url=closed, observer=observer, max_attempts=2)
    assert observer.calls == [("request", "/projects", "error"), ("error", "/projects", "connection")] * 2


def test_an_attempt_that_never_connected_costs_no_slot_in_the_window(fake: FakeTime) -> None:
    # Two requests a minute (a Free key's gate): four refused attempts in a few seconds, not four minutes.
    limiter = RateLimiter(per_minute=60, window_cap=2, clock=fake.clock)

    async def go() -> None:
        client = CallMeterClient(base_url=f"http://127.0.0.1:{free_port()}/api/v1", key=KeySource(value=DEMO_KEY),
                                 limiter=limiter, sleep=fake.sleep)
        try:
            await list_projects(client)
        finally:
            await client.aclose()

    with pytest.raises(errors.ApiConnectionError):
        asyncio.run(go())
    assert limiter.sent_in_window() == 0
    assert fake.now < 15  # the backoff (1, 2, 4 s with jitter) and the 1 s spacing only


# -- the protected write path (only exporter/gate subclasses it) ------------------------------------------

RUN_ROUTE = "/projects/{projectId}/tests/{testId}/run"


class WritingClient(CallMeterClient):
    """What the gate does: a subclass that sends one of the two documented writes through `_request`."""

    async def trigger(self, pid: str, tid: str) -> dict[str, Any]:
        return await self._request(RUN_ROUTE, f"projects/{pid}/tests/{tid}/run", method="POST", json={})


def first_test(server: SimulatorServer) -> tuple[str, str]:
    test = next(iter(server.simulator.world.tests.values()))
    return test.project_id, test.id


def trigger_first_test(server: SimulatorServer) -> Callable[[WritingClient], Awaitable[dict[str, Any]]]:
    pid, tid = first_test(server)
    return lambda client: client.trigger(pid, tid)


def test_public_methods_cannot_send_a_write() -> None:
    public = [name for name in dir(CallMeterClient) if not name.startswith("_")]
    assert set(public) == {"aclose", "get", "page", "list_all", "parse_items"}
    for name in public:
        parameters = inspect.signature(getattr(CallMeterClient, name)).parameters
        assert not {"method", "json", "body", "content"} & set(parameters), name


def test_no_module_but_the_gate_reaches_the_write_path() -> None:
    """The daemon's code cannot send a write: nothing in the package outside the client and the gate calls
    `_request`, the only way to choose a method."""
    package = ROOT / "exporter"
    callers = [path.relative_to(package).as_posix() for path in package.rglob("*.py")
               if re.search(r"\._request\(", path.read_text())]
    assert [c for c in callers if c != "api/client.py" and not c.startswith("gate")] == []


def test_a_subclass_sends_a_post_with_its_json_body_through_the_budget(simulator: SimulatorServer,
                                                                       with_client: ClientRunner) -> None:
    seen: list[tuple[str, str, bytes]] = []
    sim = simulator.simulator
    original = sim.handle

    def spy(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Any:
        seen.append((method, {k.lower(): v for k, v in headers.items()}.get("content-type", ""), body))
        return original(method, target, headers, body)

    sim.handle = spy  # type: ignore[method-assign]
    body = with_client(trigger_first_test(simulator), cls=WritingClient)
    assert body["data"]["testId"] == first_test(simulator)[1] and body["data"]["status"] == "PENDING"
    assert seen == [("POST", "application/json", b"{}")]
    assert [(method, status) for _, method, _, status in sim.requests] == [("POST", 201)]


def test_a_write_is_not_repeated_after_a_server_error(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    """A 5xx may come after the run started: trying again could start a second one."""
    simulator.simulator.set_faults(error_rate=1.0)
    with pytest.raises(errors.ServerError):
        with_client(trigger_first_test(simulator), cls=WritingClient, max_attempts=4)
    assert [status for *_, status in simulator.simulator.requests] == [500]


def test_a_write_is_repeated_after_a_429(simulator: SimulatorServer, with_client: ClientRunner,
                                         fake: FakeTime) -> None:
    """A 429 means the API did nothing, so the write waits for Retry-After and goes again."""
    simulator.simulator.set_faults(burst_429=1, retry_after_seconds=5)
    assert with_client(trigger_first_test(simulator), cls=WritingClient)["data"]["testId"] == first_test(simulator)[1]
    assert [status for *_, status in simulator.simulator.requests] == [429, 201]
    assert 4 <= sum(fake.slept) <= 7


def test_a_write_that_never_connected_is_sent_again(simulator: SimulatorServer, with_client: ClientRunner) -> None:
    """A refused connection sent nothing, so the write goes again (4 attempts, like a read) and no run starts."""
    observer = Recording()
    closed = f"http://127.0.0.1:{free_port()}/api/v1"  # nothing listens there: the connection is refused
    with pytest.raises(errors.NotConnected) as caught:
        with_client(trigger_first_test(simulator), cls=WritingClient, base_url=closed, observer=observer,
                    max_attempts=4)
    assert [c for c in observer.calls if c[0] == "request"] == [("request", RUN_ROUTE, "error")] * 4
    assert caught.value.kind == "connection"  # the metric's label is unchanged
    assert simulator.simulator.requests == []


def test_a_write_whose_connection_failed_after_connecting_is_not_sent_again(with_client: ClientRunner) -> None:
    """A connection that was made and then dropped may have carried the write: it is not repeated."""
    attempts: list[str] = []

    class DroppedAfterConnecting(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            attempts.append(request.method)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    with pytest.raises(errors.ApiConnectionError) as caught:
        with_client(lambda client: client.trigger("p", "t"), cls=WritingClient,
                    transport=DroppedAfterConnecting(), max_attempts=4)
    assert not isinstance(caught.value, errors.NotConnected)
    assert attempts == ["POST"]


def test_an_http_date_retry_after_is_measured_on_the_servers_clock_not_ours() -> None:
    """A host whose clock is ten minutes behind the API must still wait 30 s, not ten and a half minutes."""
    server_now = time.time() + 600  # the API's clock, ten minutes ahead of ours
    headers = httpx.Headers({"date": formatdate(server_now, usegmt=True),
                             "retry-after": formatdate(server_now + 30, usegmt=True)})
    judged = _judge("/projects", _Answer(429, headers, b'{"error": {"code": "RATE_LIMITED"}}'))
    assert isinstance(judged, errors.RateLimited)
    assert 29 <= judged.retry_after <= 31
    without_date = _judge("/projects", _Answer(429, httpx.Headers({"retry-after": "7"}), b"{}"))
    assert isinstance(without_date, errors.RateLimited) and without_date.retry_after == 7
