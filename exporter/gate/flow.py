"""One gate from start to verdict: find the target, trigger it, wait within the deadline, judge.

    gate(options) -> Verdict      never raises for what the API or the options do: each way a gate can
                                  end is a verdict with its exit code (see `judge`)

Requests in a test gate: the project's test list (1; plus the project list when --project is not a
UUID, see `api`), the trigger (1), then the looks `wait` plans (usually 1 or 2, and one more just
before the deadline when the run is late). The whole gate runs within --timeout, except that an API
that cannot be reached ends it as exit 5 after the client's few retries (seconds), whatever --timeout says.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..api import errors
from ..api.budget import RateLimiter
from ..api.client import api_host
from ..api.keysource import KeySource
from ..api.models import Project, Test, TestRun
from ..settings import SettingsError
from .api import GateClient, NotFoundError, in_project, pick
from .judge import (
    API_ERROR,
    RUN_FAILED,
    TIMED_OUT,
    USAGE,
    GateResult,
    Verdict,
    gate_exit,
    judge_probe,
    judge_run,
    not_judged,
    probe_exit,
    run_values,
)
from .options import GateOptions
from .wait import QUEUE_ALLOWANCE, GateObserver, Looks, Progress, Watch, patient, wait_for_probe, wait_for_run

TEST_SLACK = 900.0
"""Default --timeout beyond the test's duration: queueing, and looks after the expected end."""
PROBE_TIMEOUT = 600.0


def gate_limiter(per_minute: float, clock: Callable[[], float]) -> RateLimiter:
    """No 60-second window holds more than `per_minute` requests, yet the few a gate sends at the start
    (find the test, trigger it) go out a second apart rather than a budget's interval apart."""
    cap = max(1, int(per_minute))
    return RateLimiter(per_minute=max(per_minute, 60.0) if per_minute >= 1 else per_minute, window_cap=cap,
                       clock=clock)


@dataclass
class Context:
    options: GateOptions
    client: GateClient
    limiter: RateLimiter
    progress: Progress
    observer: GateObserver
    wall: Callable[[], float]
    deadline: asyncio.Timeout
    started: float
    watch: Watch = field(default_factory=Watch)
    project: str = ""
    target_id: str = ""
    target_name: str = ""

    def limit_time(self, seconds: float) -> None:
        """The gate ends `seconds` after it started (unless --timeout said otherwise)."""
        if self.options.timeout is None:
            self.deadline.reschedule(self.started + seconds)

    def looks(self) -> Looks:
        """The pacing of the looks at a run or probe: the gate's limiter, and its deadline."""
        return Looks(self.limiter, self.deadline.when)

    @property
    def timeout(self) -> float:
        when = self.deadline.when()
        return self.options.timeout or (when - self.started if when is not None else 0.0)

    def verdict(self, code: int, reason: str, **fields: Any) -> Verdict:
        run = self.watch.run
        defaults: dict[str, Any] = {"run_id": run.id if run else None, "status": run.status if run else None}
        return Verdict(kind=self.options.kind, project=self.project or self.options.project,
                       target_id=self.target_id, target_name=self.target_name or self.target_id,
                       exit_code=code, reason=reason, elapsed_seconds=self.progress.elapsed(),
                       requests=self.observer.requests, **(defaults | fields))


def build_client(options: GateOptions, observer: GateObserver, limiter: RateLimiter, *,
                 key: KeySource | None = None, base_url: str | None = None, transport: Any = None) -> GateClient:
    s = options.settings
    if key is None:
        secret = s.api_key.get_secret_value() if s.api_key else None
        key = KeySource(value=secret, path=s.api_key_file if secret is None else None)
    return GateClient(base_url=base_url or s.base_url, key=key, limiter=limiter, timeout=s.http_timeout,
                      max_concurrency=1, observer=observer, transport=transport)


async def gate(options: GateOptions, *, key: KeySource | None = None, base_url: str | None = None,
               transport: Any = None, wall: Callable[[], float] = time.time, err: TextIO | None = None) -> Verdict:
    loop = asyncio.get_running_loop()
    progress = Progress(None if options.quiet else (err or sys.stderr), loop.time)
    observer = GateObserver(progress, api_host(base_url or options.settings.base_url))
    limiter = gate_limiter(options.budget_per_minute, loop.time)
    try:
        client = build_client(options, observer, limiter, key=key, base_url=base_url, transport=transport)
    except SettingsError as exc:
        return Verdict(kind=options.kind, project=options.project, target_id="", target_name="",
                       exit_code=USAGE, reason=str(exc))
    try:
        async with asyncio.timeout(None) as deadline:
            ctx = Context(options, client, limiter, progress, observer, wall, deadline, loop.time())
            deadline.reschedule(ctx.started + (options.timeout or
                                               (PROBE_TIMEOUT if options.kind == "probe" else TEST_SLACK)))
            try:
                return await (_probe_gate(ctx) if options.kind == "probe" else _test_gate(ctx))
            except (NotFoundError, errors.ApiError) as exc:
                return _failed(ctx, exc)
    except TimeoutError:
        return _timed_out(ctx)
    finally:
        await client.aclose()


async def _test_gate(ctx: Context) -> Verdict:
    o, client = ctx.options, ctx.client
    test: Test | None = None
    if o.run_id is not None:
        run_id = o.run_id
        project, run = await patient(lambda: in_project(client, o.project, lambda p: client.read_run(p, run_id)))
        ctx.watch.run = run
        if run.test_id and (not run.terminal or o.pushgateway):
            test_id = run.test_id
            test = await patient(lambda: client.read_test(project.id, test_id))
    else:
        project, tests = await patient(lambda: in_project(client, o.project, client.list_tests))
        test = pick(tests, o.test or "", "test", "name", f" in project {project.label}")
        ctx.watch.phase = "triggering the run"
        run = await patient(lambda: client.run_test(project.id, test.id))
        ctx.progress.say(f"triggered run {run.id} of test {test.name or test.id!r} in project {project.label}")
    project = await _named(ctx, project)
    ctx.target_id = test.id if test else run.test_id or ""
    ctx.target_name = (test.name if test else None) or ctx.target_id
    duration = (test.duration_seconds if test else None) or 0.0
    ctx.limit_time(duration + QUEUE_ALLOWANCE + TEST_SLACK)
    ctx.watch.phase = "waiting for the run to end"
    run = await wait_for_run(client, project.id, run, duration=duration, looks=ctx.looks(), wall=ctx.wall,
                             progress=ctx.progress, watch=ctx.watch)
    return _judged(ctx, run)


async def _named(ctx: Context, project: Project) -> Project:
    """The project with its slug, which labels the pushed metrics as the exporter labels its own (one
    GET, only when pushing and the slug is not known yet)."""
    if ctx.options.pushgateway and project.slug is None:
        project = await patient(lambda: ctx.client.read_project(project.id))
    ctx.project = project.label
    return project


def _judged(ctx: Context, run: TestRun) -> Verdict:
    o = ctx.options
    unit = o.settings.packet_loss_unit
    duration = (run.completed_at - run.started_at) if run.completed_at and run.started_at else None
    if run.status != "COMPLETED":
        why = f"the run ended {run.status}"
        return ctx.verdict(RUN_FAILED, why, gates=not_judged(o.limits, why), values=run_values(run, unit),
                           run_seconds=duration)
    values, results = judge_run(run, o.limits, packet_loss_unit=unit, allow_missing=o.allow_missing)
    code, reason = gate_exit(results)
    return ctx.verdict(code, reason, gates=tuple(results), values=values, run_seconds=duration)


async def _probe_gate(ctx: Context) -> Verdict:
    o, client = ctx.options, ctx.client
    project, probes = await patient(lambda: in_project(client, o.project, client.list_probes))
    probe = pick(probes, o.probe or "", "probe", "name", f" in project {project.label}")
    project = await _named(ctx, project)
    ctx.target_id, ctx.target_name = probe.id, probe.name or probe.id
    ctx.watch.phase = "triggering the probe"
    execution = await patient(lambda: client.run_probe(project.id, probe.id))
    ctx.progress.say(f"triggered an execution of probe {ctx.target_name!r} in project {project.label}")
    ctx.watch.phase = "waiting for the probe's execution"
    probe = await wait_for_probe(client, project.id, probe, execution, looks=ctx.looks(), progress=ctx.progress,
                                 watch=ctx.watch)
    result = judge_probe(probe.status, o.min_probe_status)
    code = probe_exit(probe.status, o.min_probe_status)
    left = probe.status or "without a status"
    reason = result.message if code != RUN_FAILED else f"the execution left the probe {left}: nothing to judge"
    return ctx.verdict(code, reason, gates=(result,), run_id=execution.id, status=probe.status)


def _failed(ctx: Context, exc: Exception) -> Verdict:
    """A target that is not there is a usage error (2); any other API failure is exit 5."""
    usage = isinstance(exc, NotFoundError | errors.NotFound)
    reason = str(exc) if usage else f"the CallMeter API could not be used: {exc}"
    if not usage and ctx.watch.phase.startswith("triggering"):
        if isinstance(exc, errors.NotConnected):
            reason += " (no connection was made, so nothing was triggered)"
        elif not isinstance(exc, errors.Unauthorized):
            reason += " (the trigger may have started a run or execution anyway: look before you trigger again)"
    return ctx.verdict(USAGE if usage else API_ERROR, reason, gates=_not_judged(ctx, reason))


def _timed_out(ctx: Context) -> Verdict:
    """Exit 4, unless the API could not be reached at the last attempt: that is exit 5 whatever
    --timeout says (a timeout shorter than the client's few retries must not hide a dead address)."""
    if ctx.observer.unreachable is not None:
        reason = (f"the CallMeter API could not be used: cannot reach {ctx.observer.host} "
                  f"({ctx.observer.unreachable}): no connection within {ctx.progress.elapsed():.0f}s")
        return ctx.verdict(API_ERROR, reason, gates=_not_judged(ctx, reason))
    seen = ctx.watch.run.status if ctx.watch.run else ctx.watch.probe.status if ctx.watch.probe else None
    reason = f"timed out after {ctx.timeout:.0f}s {ctx.watch.phase}" + (f" (last seen: {seen})" if seen else "")
    return ctx.verdict(TIMED_OUT, reason, gates=_not_judged(ctx, "timed out"))


def _not_judged(ctx: Context, why: str) -> tuple[GateResult, ...]:
    return not_judged(ctx.options.limits, why)
