"""The poller: a priority scheduler that spends the request budget where it matters, and publishes
an immutable snapshot after each change.

Each unit of work is a `Job` (refresh one resource of one project). The loop waits for the next free
slot of the budget, and only then picks the most important job that is due, so a probe refresh never
queues behind inventory that was picked early. Intervals come from `planner.make_plan` and are
recomputed when the inventory or the rate changes. A job that fails keeps the last good data.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors, logs
from .budget import RateLimiter
from .client import PER_PAGE, CallMeterClient
from .models import Probe, Project, Registrar, Test, TestRun
from .planner import Floors, Inventory, Plan, pages, plan_for
from .selfmetrics import ExporterMetrics
from .snapshot import ProjectData, Snapshot

PRIORITY = {"probes": 0, "test_runs": 1, "test_run_details": 2, "projects": 3, "tests": 3, "registrars": 3}
ROUTES = {
    "projects": "/projects",
    "probes": "/projects/{projectId}/probes",
    "tests": "/projects/{projectId}/tests",
    "registrars": "/projects/{projectId}/registrars",
    "test_runs": "/projects/{projectId}/test-runs",
    "test_run_details": "/projects/{projectId}/test-runs/{testRunId}",
}
FIRST_READ = 10.0
"""Subtracted from a list's priority until it has been read once."""
COUNTED_RUNS_KEPT = 2000
DETAIL_RATE_WINDOW = 1800.0
"""Run details wanted are counted over this long: runs finish in bursts (several per listing), and
the plan's reserve for details must not swing with each burst."""


@dataclass(eq=False)
class Job:
    resource: str
    project_id: str | None = None
    run_id: str | None = None
    due: float = 0.0
    running: bool = False
    refreshed: bool = False
    """Has this job succeeded once? Until then its data is missing, not just old."""

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.resource, self.project_id, self.run_id)


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait until the event is set or the timeout passes. Unlike `asyncio.wait_for` on Python 3.11,
    a cancellation that races the event is never lost, so stopping the poller cannot hang."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


def chosen_projects(projects: list[Project], project_filter: tuple[str, ...]) -> list[Project]:
    """The projects `CALLMETER_PROJECTS` names, by id or slug; all of them when it names none."""
    wanted = set(project_filter)
    return [p for p in projects if not wanted or p.id in wanted or (p.slug and p.slug in wanted)]


def _newer(a: TestRun, b: TestRun) -> bool:
    """Is run a more recent than run b? A run with no timestamp yet has not started: it is the newest."""
    ka, kb = a.order_key, b.order_key
    if ka == kb:
        return a.id > b.id
    if ka is None:
        return True
    if kb is None:
        return False
    return ka > kb


def detect_order(runs: list[TestRun]) -> str | None:
    """"asc" when a page lists its oldest run first, "desc" when newest first, None when it cannot tell."""
    keys = [r.order_key for r in runs if r.order_key is not None]
    if len(keys) < 2 or keys[0] == keys[-1]:
        return None
    return "asc" if keys[0] < keys[-1] else "desc"


@dataclass
class _ProjectState:
    project: Project
    probes: tuple[Probe, ...] | None = None
    probes_at: float | None = None
    tests: tuple[Test, ...] | None = None
    tests_at: float | None = None
    registrars: tuple[Registrar, ...] | None = None
    registrars_at: float | None = None
    runs_at: float | None = None
    latest_runs: dict[str, TestRun] = field(default_factory=dict)
    latest_completed: dict[str, TestRun] = field(default_factory=dict)
    detail_for_test: dict[str, str] = field(default_factory=dict)
    wanted_runs: dict[str, TestRun] = field(default_factory=dict)
    counted: dict[str, float] = field(default_factory=dict)
    count_floor: float = float("-inf")
    seen_runs: frozenset[str] = frozenset()
    open_runs: frozenset[str] = frozenset()
    """Runs the last listing showed unfinished: the next listing reads back until it has seen them."""
    run_order: str | None = None
    run_pages: int | None = None
    pages_per_listing: float = 1.0
    """Run-list pages a listing reads, averaged over the warm listings: what the plan budgets."""
    cold: bool = True

    def freeze(self) -> ProjectData:
        return ProjectData(project=self.project, probes=self.probes, probes_at=self.probes_at, tests=self.tests,
                           tests_at=self.tests_at, registrars=self.registrars, registrars_at=self.registrars_at,
                           latest_runs=dict(self.latest_runs), runs_at=self.runs_at,
                           latest_completed=dict(self.latest_completed))

    @property
    def complete(self) -> bool:
        return None not in (self.probes_at, self.tests_at, self.registrars_at, self.runs_at)


class Poller:
    def __init__(
        self,
        *,
        client: CallMeterClient,
        limiter: RateLimiter,
        metrics: ExporterMetrics,
        publish: Callable[[Snapshot], Awaitable[None] | None],
        project_filter: tuple[str, ...] = (),
        floors: Floors | None = None,
        lookback_pages: int = 3,
        max_concurrency: int = 4,
        max_data_age: float | None = None,
        publish_interval: float = 1.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._metrics = metrics
        self._publish = publish
        self._filter = project_filter
        self._floors = floors or Floors()
        self._lookback = lookback_pages
        self._max_concurrency = max_concurrency
        self._max_data_age = max_data_age
        self._publish_interval = publish_interval
        self._wall = wall
        self._log = logs.get_logger("callmeter.poller")
        self._projects: dict[str, _ProjectState] = {}
        self._projects_at: float | None = None
        self._jobs: dict[tuple[str, str | None, str | None], Job] = {}
        self._finished: dict[tuple[str, str, str], int] = {}
        self._probe_statuses: set[str] = set()
        self._run_statuses: set[str] = set()
        self._detail_wants: deque[float] = deque()  # when each detail was wanted (loop time)
        self._counting_since: float | None = None  # the first warm run listing: wants are counted from here
        self._plan: Plan | None = None
        self._planned_for: Inventory | None = None
        self._wake = asyncio.Event()
        self._dirty = asyncio.Event()
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        """Set when a refresh fails for want of the API (auth, network, 5xx) before the exporter was ready."""
        self.settled = asyncio.Event()
        """Ready, and no run detail outstanding: what `--once` waits for."""
        self.snapshot = Snapshot()
        self._missing_logged: set[str] = set()

    # -- public --------------------------------------------------------------------------------

    @property
    def plan(self) -> Plan | None:
        return self._plan

    async def run(self) -> None:
        """Poll until cancelled."""
        self._add(Job("projects", due=self._now()))
        publisher = asyncio.create_task(self._publisher(), name="callmeter-publisher")
        running: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(self._max_concurrency)
        try:
            while True:
                job = await self._next_due()
                await gate.acquire()
                # Book nothing yet: wait for the budget's next free slot, then choose, so that
                # the most important job due at the moment of sending is the one that goes.
                wait = self._limiter.next_free() - self._now()
                if wait > 0:
                    await asyncio.sleep(wait)
                job = self._pick() or job
                if job.running or job.key not in self._jobs:
                    gate.release()
                    continue
                job.running = True
                task = asyncio.create_task(self._execute(job, gate), name=f"callmeter-{job.resource}")
                running.add(task)
                task.add_done_callback(running.discard)
                await asyncio.sleep(0)  # let it book its slot before we look at the budget again
        finally:
            publisher.cancel()
            for task in [*running, publisher]:
                task.cancel()
            await asyncio.gather(*running, publisher, return_exceptions=True)

    # -- scheduling ----------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _add(self, job: Job) -> None:
        if job.key not in self._jobs:
            self._jobs[job.key] = job
            self._wake.set()

    def _pick(self) -> Job | None:
        now = self._now()
        # asyncio may wake a timer a hair early; a job due within a millisecond is due now.
        due = [j for j in self._jobs.values() if not j.running and j.due <= now + 1e-3]
        return min(due, key=lambda j: (self._rank(j, now), j.due)) if due else None

    def _rank(self, job: Job, now: float) -> float:
        """The job's priority (lower goes first). Data never fetched is missing, not just old, so every
        list is read once, in priority order, before any is refreshed: a tight plan may otherwise fill
        every slot with probe and run-list refreshes and leave the test names, which the run metrics
        carry and readiness waits for, only idle slots. Inventory a whole interval overdue goes above
        run details, so that a stream of finished runs cannot starve it."""
        rank = float(PRIORITY[job.resource])
        if job.resource == "test_run_details":
            return rank
        if not job.refreshed:
            return rank - FIRST_READ
        if rank > PRIORITY["test_run_details"] and now - job.due > self.interval(job.resource):
            return PRIORITY["test_run_details"] - 0.5
        return rank

    async def _next_due(self) -> Job:
        while True:
            job = self._pick()
            if job is not None:
                return job
            self._wake.clear()
            waiting = [j.due for j in self._jobs.values() if not j.running]
            timeout = max(0.0, min(waiting) - self._now()) if waiting else None
            await wait_event(self._wake, timeout)

    def interval(self, resource: str) -> float:
        if self._plan is None:
            return {"probes": self._floors.probes, "test_runs": self._floors.test_runs}.get(
                resource, self._floors.inventory)
        return self._plan.intervals.get(resource, self._floors.inventory)

    def inventory(self) -> Inventory:
        projects = list(self._projects.values())

        def count(items: tuple[Any, ...] | None, upstream: int | None) -> int:
            return pages(len(items) if items is not None else upstream, PER_PAGE)

        return Inventory(
            projects=len(projects),
            probe_pages=sum(count(p.probes, p.project.probe_count) for p in projects),
            test_pages=sum(count(p.tests, p.project.test_count) for p in projects),
            registrar_pages=sum(count(p.registrars, p.project.registrar_count) for p in projects),
            run_pages=sum(p.pages_per_listing for p in projects),
        )

    def _replan(self, *, reason: str) -> None:
        inventory = self.inventory()
        budget = self._limiter.per_minute
        plan = plan_for(inventory, self._floors, budget, details_per_minute=self._details_per_minute())
        grew = inventory.grew_since(self._planned_for)
        self._plan, self._planned_for = plan, inventory
        intervals = dict(plan.intervals)
        intervals["test_run_details"] = intervals["test_runs"]
        self._metrics.set_intervals(intervals)
        if grew or reason == "rate":
            event = self._log.warning if plan.stretched else self._log.info
            hint = None
            if plan.stretched:
                hint = (f"the floors need {plan.needed_per_minute:.1f} requests/min but the budget is "
                        f"{budget:.1f}/min: raise CALLMETER_PLAN or CALLMETER_REQUESTS_PER_MINUTE, narrow "
                        f"CALLMETER_PROJECTS, or raise the *_MIN_INTERVAL floors")
            event("schedule.plan", reason=reason, projects=inventory.projects, budget_per_minute=round(budget, 2),
                  intervals={k: round(v, 1) for k, v in plan.intervals.items()}, stretched=list(plan.stretched),
                  details_per_minute=round(plan.detail_reserve_per_minute, 2),
                  hint=hint)

    def _reschedule(self, job: Job, started: float) -> None:
        job.running = False
        if job.resource == "test_run_details":
            return
        job.due = max(started + self.interval(job.resource), self._now())
        self._wake.set()

    # -- execution -----------------------------------------------------------------------------

    async def _execute(self, job: Job, gate: asyncio.Semaphore) -> None:
        started = self._now()
        rate_before = self._limiter.per_minute
        try:
            await self._refresh(job)
        except errors.Unauthorized:
            self._down()
        except errors.NotFound:
            self._metrics.set_up(True)
            self._gone(job)
        except (errors.TransportError, errors.ServerError, errors.InvalidResponse):
            self._down()
        except errors.ApiError:
            self._metrics.set_up(True)  # reached and authenticated; this resource just failed (403, 429...)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not stop the poller; it is logged with its traceback
            self._log.exception("refresh.crashed", resource=job.resource, project=job.project_id)
        else:
            job.refreshed = True
            self._metrics.set_up(True)
            self._metrics.succeeded(job.resource, self._wall())
            self._log.info("refresh.done", resource=job.resource, project=self._label(job.project_id),
                           run=job.run_id, seconds=round(self._now() - started, 3))
        finally:
            gate.release()
            if job.key in self._jobs:
                if job.resource == "test_run_details":
                    self._jobs.pop(job.key, None)
                self._reschedule(job, started)
            self._check_ready()
            self._metrics.set_details_pending(sum(len(p.detail_for_test) for p in self._projects.values()))
            self._dirty.set()
        if self._limiter.per_minute != rate_before:
            self._replan(reason="rate")

    def _label(self, project_id: str | None) -> str | None:
        state = self._projects.get(project_id) if project_id else None
        return state.project.label if state else project_id

    def _down(self) -> None:
        self._metrics.set_up(False)
        if not self.ready.is_set():
            self.failed.set()

    async def _refresh(self, job: Job) -> None:
        if job.resource == "projects":
            await self._refresh_projects()
            return
        assert job.project_id is not None
        state = self._projects.get(job.project_id)
        if state is None:
            self._jobs.pop(job.key, None)
            return
        pid = state.project.id
        now = self._wall()
        if job.resource == "probes":
            probes = await self._client.list_all(ROUTES["probes"], f"projects/{pid}/probes", Probe)
            state.probes, state.probes_at = tuple(probes), now
            self._probe_statuses.update(p.status for p in probes if p.status)
        elif job.resource == "tests":
            tests = await self._client.list_all(ROUTES["tests"], f"projects/{pid}/tests", Test)
            state.tests, state.tests_at = tuple(tests), now
        elif job.resource == "registrars":
            regs = await self._client.list_all(ROUTES["registrars"], f"projects/{pid}/registrars", Registrar)
            state.registrars, state.registrars_at = tuple(regs), now
        elif job.resource == "test_runs":
            await self._refresh_runs(state)
            state.runs_at = now
        elif job.resource == "test_run_details":
            assert job.run_id is not None
            run = await self._client.get(ROUTES["test_run_details"], f"projects/{pid}/test-runs/{job.run_id}",
                                         TestRun)
            self._absorb_detail(state, run)
        if job.resource != "test_run_details":
            self._replan(reason="inventory")  # cheap; it logs only when the inventory grew

    async def _refresh_projects(self) -> None:
        projects = await self._client.list_all(ROUTES["projects"], "projects", Project)
        self._projects_at = self._wall()
        chosen = chosen_projects(projects, self._filter)
        for name in set(self._filter) - {p.id for p in projects} - {p.slug for p in projects if p.slug}:
            if name not in self._missing_logged:
                self._missing_logged.add(name)
                self._log.warning("projects.not_visible", project=name,
                                  hint="CALLMETER_PROJECTS names a project this key cannot see")
        ids = {p.id for p in chosen}
        for gone in [pid for pid in self._projects if pid not in ids]:
            self._drop_project(gone)
        now = self._now()
        for project in chosen:
            if project.id in self._projects:
                self._projects[project.id].project = project
                continue
            self._projects[project.id] = _ProjectState(project)
            for resource in ("probes", "test_runs", "tests", "registrars"):
                self._add(Job(resource, project.id, due=now))
        self._replan(reason="inventory")

    def _drop_project(self, project_id: str) -> None:
        self._projects.pop(project_id, None)
        for key in [k for k in self._jobs if k[1] == project_id]:
            del self._jobs[key]

    def _gone(self, job: Job) -> None:
        """404: the resource was deleted; its series go, and the project list is checked again soon."""
        if job.resource == "test_run_details":
            return
        if job.project_id is not None:
            self._log.info("project.gone", project=job.project_id, resource=job.resource)
            self._drop_project(job.project_id)
            projects = self._jobs.get(("projects", None, None))
            if projects is not None:
                projects.due = min(projects.due, self._now())

    # -- test runs -----------------------------------------------------------------------------

    async def _refresh_runs(self, state: _ProjectState) -> None:
        pid = state.project.id
        route, path = ROUTES["test_runs"], f"projects/{pid}/test-runs"
        pages: dict[int, list[TestRun]] = {}

        async def read(number: int) -> int:
            page = await self._client.page(route, path, number)
            pages[number] = self._client.parse_items(route, TestRun, page.items, path=path)
            total = page.pagination.total_pages if page.pagination and page.pagination.total_pages else 1
            return max(total, 1)

        first = state.run_pages if state.run_order == "asc" and state.run_pages else 1
        total = await read(first)
        order = detect_order(pages[first]) or state.run_order
        if order == "asc":
            # Oldest first: the newest runs are on the last page. Jump there from page 1, or read
            # forward from last cycle's last page to the pages added since.
            if first == 1 and total > 1:
                first = total
                total = await read(first)
            number = first
            while number < total and len(pages) < self._lookback + 1:
                number += 1
                total = await read(number)
            number, step = first - 1, -1
        else:
            number, step = max(pages) + 1, 1
        # Then back in time while the runs read so far do not reach what we already know.
        while (1 <= number <= total and number not in pages and len(pages) < self._lookback + 1
               and self._need_older(state, pages)):
            total = await read(number)
            number += step
        state.run_order, state.run_pages = order, total
        runs = [run for n in sorted(pages) for run in pages[n]]
        if not state.cold:  # a cold start reads back further, once
            state.pages_per_listing += 0.2 * (len(pages) - state.pages_per_listing)
            if self._counting_since is None:
                self._counting_since = self._now()
        self._absorb_runs(state, runs)
        state.cold = False

    def _need_older(self, state: _ProjectState, pages: dict[int, list[TestRun]]) -> bool:
        runs = [r for page in pages.values() for r in page]
        if not runs:
            return False
        if state.cold:
            completed = {r.test_id for r in runs if r.status == "COMPLETED"}
            expected = len(state.tests) if state.tests is not None else state.project.test_count
            return expected is None or len(completed) < expected
        ids = {r.id for r in runs}
        # An unfinished run pushed off the pages read (an oldest-first list puts it on the page before
        # the last) would otherwise finish unseen, its test stuck at RUNNING until its next run.
        return not any(r.id in state.seen_runs for r in runs) or not state.open_runs <= ids

    def _absorb_runs(self, state: _ProjectState, runs: list[TestRun]) -> None:
        label = state.project.label
        for run in runs:
            if run.test_id is None:
                continue
            if run.status:
                self._run_statuses.add(run.status)
            latest = state.latest_runs.get(run.test_id)
            if latest is None or latest.id == run.id or _newer(run, latest):
                state.latest_runs[run.test_id] = run
            if run.terminal and run.status and run.id not in state.counted and (
                    run.order_key is None or run.order_key >= state.count_floor):
                key = (label, run.test_id, run.status)
                self._finished[key] = self._finished.get(key, 0) + 1
                state.counted[run.id] = run.order_key or self._wall()
            if run.status == "COMPLETED":
                self._want_detail(state, run)
        state.seen_runs = frozenset(r.id for r in runs)
        state.open_runs = frozenset(r.id for r in runs if not r.terminal)
        if len(state.counted) > COUNTED_RUNS_KEPT:
            ordered = sorted(state.counted.items(), key=lambda item: item[1])
            drop = ordered[: len(ordered) - COUNTED_RUNS_KEPT // 2]
            state.count_floor = drop[-1][1]
            for run_id, _ in drop:
                del state.counted[run_id]

    def _details_per_minute(self) -> float:
        """Run details wanted a minute over the last `DETAIL_RATE_WINDOW` (at least 10 minutes counted,
        so that the first few wants do not look like a flood)."""
        if self._counting_since is None:
            return 0.0
        now = self._now()
        while self._detail_wants and self._detail_wants[0] < now - DETAIL_RATE_WINDOW:
            self._detail_wants.popleft()
        span = min(DETAIL_RATE_WINDOW, max(now - self._counting_since, 600.0))
        return len(self._detail_wants) * 60.0 / span

    def _want_detail(self, state: _ProjectState, run: TestRun) -> None:
        assert run.test_id is not None
        current = state.latest_completed.get(run.test_id)
        if current is not None and (current.id == run.id or not _newer(run, current)):
            return  # a terminal run never changes: its details are fetched once
        if run.summary is not None:
            state.latest_completed[run.test_id] = run
            return
        pending = state.detail_for_test.get(run.test_id)
        if pending == run.id:
            return
        due = self._now()
        if pending is not None:
            older = state.wanted_runs.get(pending)
            if older is not None and not _newer(run, older):
                return
            replaced = self._jobs.pop(("test_run_details", state.project.id, pending), None)
            state.wanted_runs.pop(pending, None)
            if replaced is not None:
                due = replaced.due  # the newer run keeps the older one's place in the queue
        if not state.cold:  # a cold start's catch-up happens once: it is not part of the rate
            self._detail_wants.append(self._now())
        state.detail_for_test[run.test_id] = run.id
        state.wanted_runs[run.id] = run
        self.settled.clear()
        self._add(Job("test_run_details", state.project.id, run.id, due=due))

    def _absorb_detail(self, state: _ProjectState, run: TestRun) -> None:
        state.wanted_runs.pop(run.id, None)
        if run.test_id is None:
            return
        if state.detail_for_test.get(run.test_id) == run.id:
            del state.detail_for_test[run.test_id]
        current = state.latest_completed.get(run.test_id)
        if run.status == "COMPLETED" and (current is None or current.id == run.id or _newer(run, current)):
            state.latest_completed[run.test_id] = run

    # -- readiness and publishing --------------------------------------------------------------

    def _check_ready(self) -> None:
        if self._projects_at is None:
            return
        if all(p.complete for p in self._projects.values()):
            if not self.ready.is_set():
                self._log.info("exporter.ready", projects=len(self._projects))
                self.ready.set()
            if not any(k[0] == "test_run_details" for k in self._jobs):
                self.settled.set()

    def build_snapshot(self) -> Snapshot:
        if self._max_data_age is not None:
            ages = dict.fromkeys(("probes", "tests", "registrars", "test_runs"), self._max_data_age)
        else:
            # Three missed refreshes, and never less than 15 minutes.
            ages = {r: max(3 * self.interval(r), 900.0) for r in ("probes", "tests", "registrars", "test_runs")}
        return Snapshot(
            projects=tuple(p.freeze() for p in self._projects.values()),
            finished_runs=dict(self._finished),
            probe_statuses=frozenset(self._probe_statuses),
            run_statuses=frozenset(self._run_statuses),
            taken_at=self._wall(),
            max_data_age=ages,
        )

    async def _publisher(self) -> None:
        while True:
            expiry = self.snapshot.next_expiry(self._wall())
            timeout = None if expiry is None else max(0.0, expiry - self._wall()) + 0.01
            await wait_event(self._dirty, timeout)
            self._dirty.clear()
            self.snapshot = self.build_snapshot()
            published = self._publish(self.snapshot)
            if published is not None:
                await published  # one publisher task: snapshots can never land out of order
            await asyncio.sleep(self._publish_interval)
