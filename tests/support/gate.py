"""Run the gate in-process against the simulator on a virtual clock: a 20-minute run judged in milliseconds.

    result = run_gate(["--project", pid, "--test", tid, "--min-mos", "3.5"], world=..., configure=...)
    result.verdict.exit_code, result.requests (method, path, status, seconds since start), result.progress

The simulator and the gate share one clock (the virtual loop's), so the run's timeline, Retry-After
and --timeout all play out as they would in real time.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from exporter.gate.flow import gate
from exporter.gate.judge import Verdict
from exporter.gate.options import parse
from exporter.simulator import DEMO_KEY, Simulator, SimulatorTransport, WorldConfig
from tests.support.vclock import run_virtual

WALL_START = 1_800_000_000.0
BASE_URL = "http://callmeter.invalid/api/v1"  # never reached: the transport answers in-process
WORLD = WorldConfig(projects=2, probes_per_project=2, tests_per_project=2, run_duration=120,
                    probe_interval_minutes=60)
REPORTED = {"avgMos": 4.3, "avgJitterMs": 6.0, "avgPacketLossFraction": 0.2, "avgRttMs": None, "asr": 99.0,
            "ner": 100.0, "registrationFailedCount": 1}
"""The summary of the runs `verdict` judges: RTT null, one registration failure."""


class Unreachable(httpx.AsyncBaseTransport):
    """An API nothing answers for: every attempt fails to connect, as httpx reports a refused port."""

    def __init__(self) -> None:
        self.attempts: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(asyncio.get_running_loop().time())
        raise httpx.ConnectError("All connection attempts failed", request=request)


class RefusedWrites(httpx.AsyncBaseTransport):
    """The simulator, except that its first `refusals` POSTs fail to connect (nothing reaches it)."""

    def __init__(self, simulator: Simulator, refusals: int) -> None:
        self._inner = SimulatorTransport(simulator, latency=0.05)
        self.refusals = refusals

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.refusals > 0:
            self.refusals -= 1
            raise httpx.ConnectError("All connection attempts failed", request=request)
        return await self._inner.handle_async_request(request)


class SmallPages(httpx.AsyncBaseTransport):
    """The simulator, asked for `per_page` items a page whatever the client asks: a long list costs a
    request a page, so a gate that pages through it meets its budget within its first seconds."""

    def __init__(self, simulator: Simulator, per_page: int = 1) -> None:
        self._inner = SimulatorTransport(simulator, latency=0.05)
        self._per_page = per_page

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "per_page" in request.url.params:
            request.url = request.url.copy_set_param("per_page", str(self._per_page))
        return await self._inner.handle_async_request(request)


@dataclass
class GateRun:
    verdict: Verdict
    simulator: Simulator
    requests: list[tuple[str, str, int, float]]
    progress: str

    def count(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r[0] == method)


def first_ids(simulator: Simulator) -> tuple[str, str, str]:
    """(project id, its first test id, its first probe id)."""
    w = simulator.world
    project = next(iter(w.projects))
    test = next(t.id for t in w.tests.values() if t.project_id == project)
    probe = next(p.id for p in w.probes.values() if p.project_id == project)
    return project, test, probe


def simulator_for(world: WorldConfig = WORLD, rate_limit: int | None = None) -> tuple[Simulator, Callable[[], float]]:
    """A simulator on the running (virtual) loop's clock, and that clock as wall time."""
    loop = asyncio.get_running_loop()

    def wall() -> float:
        return WALL_START + loop.time()

    simulator = Simulator(world, clock=wall, rate_limit_per_minute=rate_limit)
    simulator.record_requests = True
    return simulator, wall


def run_gate(argv: list[str] | Callable[[Simulator], list[str]], *, world: WorldConfig = WORLD,
             configure: Callable[[Simulator], None] | None = None, rate_limit: int | None = None,
             during: Callable[[Simulator], None] | None = None, during_at: float = 0.0,
             key: str = DEMO_KEY, base_url: str = BASE_URL,
             transport: Callable[[Simulator], httpx.AsyncBaseTransport] | None = None) -> GateRun:
    """One gate; `argv` may be built from the simulator (for its ids). `during` runs at `during_at` s.
    `transport` replaces the simulator's own (an API that cannot be reached, say)."""

    async def main() -> GateRun:
        simulator, wall = simulator_for(world, rate_limit)
        if configure is not None:
            configure(simulator)
        if during is not None:
            asyncio.get_running_loop().call_later(during_at, during, simulator)
        args = argv(simulator) if callable(argv) else argv
        options = parse([*args, "--api-key", key, "--base-url", base_url])
        err = io.StringIO()
        http = transport(simulator) if transport else SimulatorTransport(simulator, latency=0.05)
        verdict = await gate(options, transport=http, wall=wall, err=err)
        requests = [(method, path, status, at - WALL_START) for at, method, path, status in simulator.requests]
        return GateRun(verdict, simulator, requests, err.getvalue())

    return run_virtual(main())


def reference_loop(*, configure: Callable[[Simulator], None], world: WorldConfig = WORLD,
                   give_up_after: float = 3600.0) -> tuple[int, str | None]:
    """The API reference's CI/CD pattern, step for step (trigger; read the status every 10 s until
    COMPLETED or FAILED; read the run again for avgMos), against the same simulator. Returns the
    requests it sent and the status it ended on (None: still looping after `give_up_after` seconds)."""

    async def main() -> tuple[int, str | None]:
        simulator, _ = simulator_for(world)
        configure(simulator)
        project, test, _ = first_ids(simulator)
        loop = asyncio.get_running_loop()
        headers = {"Authorization": f"Bearer {DEMO_KEY}"}
        transport = SimulatorTransport(simulator, latency=0.05)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL + "/", headers=headers) as http:
            run_id = (await http.post(f"projects/{project}/tests/{test}/run")).json()["data"]["id"]
            status = None
            while loop.time() < give_up_after:
                status = (await http.get(f"projects/{project}/test-runs/{run_id}")).json()["data"]["status"]
                if status in ("COMPLETED", "FAILED"):
                    break
                await asyncio.sleep(10)
            else:
                return len(simulator.requests), None
            (await http.get(f"projects/{project}/test-runs/{run_id}")).json()["data"]["summary"]["avgMos"]
        return len(simulator.requests), status

    return run_virtual(main())


def verdict(*extra: str, outcome: str = "COMPLETED", duration: float = 30, **summary: float | None) -> Verdict:
    """The verdict of `gate --project P --test T --plan basic *extra` on a run of the first test that ends
    `outcome` after `duration` s with REPORTED's summary, overridden by `summary`: what the reports render."""
    def configure(sim: Simulator) -> None:
        sim.plan_test_runs(first_ids(sim)[1], outcome=outcome, summary={**REPORTED, **summary}, duration=duration)

    def args(sim: Simulator) -> list[str]:
        project, test, _ = first_ids(sim)
        return ["--project", project, "--test", test, "--plan", "basic", *extra]

    return run_gate(args, configure=configure).verdict
