"""The resource kinds: one row per thing the exporter reads from CallMeter, and the function that reads it.

A row says where a kind is read (its route, the `endpoint` label of the request metrics), how
important it is (its priority class: lower goes first), how often it may be read (its floor
setting and the ceiling the plan may stretch it to), the model its items parse into, and which
field of `snapshot.ProjectData` it fills, so which metric families it feeds (README, "Metrics").
The poller, the planner, the snapshot's freshness and `--show-schedule` all read this table.
Adding a kind is a row here and its read function.

    kind              route                                         fills                families
    projects          /projects                                     (the project set)    callmeter_project_info
    probes            /projects/{projectId}/probes                  probes               callmeter_probe_*
    test_runs         /projects/{projectId}/test-runs               latest_runs          callmeter_test_last_run_*,
                                                                                         callmeter_test_runs_finished_total
    test_run_details  /projects/{projectId}/test-runs/{testRunId}   latest_completed     callmeter_test_run_* (quality)
    test_run_endpoints  /projects/{projectId}/test-runs/{testRunId}/endpoints
                                                                    endpoint_outcomes    callmeter_test_run_endpoint_
                                                                                         outcomes
    tests             /projects/{projectId}/tests                   tests                test names on every test series
    registrars        /projects/{projectId}/registrars              registrars           callmeter_registrar_info
    probe_details     /projects/{projectId}/probes/{probeId}        probe_details        callmeter_probe_threshold,
                                                                                         callmeter_probe_info
    test_details      /projects/{projectId}/tests/{testId}          test_details         callmeter_test_info

Run endpoints, probe details and test details are read one request a job, below the plan, with
what it leaves over (`spare`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .details import Detail, ProbeDetail, TestDetail, read_probe_detail, read_test_detail
from .models import ApiModel, Probe, Project, Registrar, RunEndpoint, Test, TestRun
from .runs import DetailWant, ProjectRuns, RunTracker
from .snapshot import ProjectData
from .spare import ENDPOINTS, PROBE_DETAILS, TEST_DETAILS, Spare

if TYPE_CHECKING:
    from .adaptive import Schedule
    from .client import CallMeterClient
    from .planner import Floors


class Context(Protocol):
    """What a read function may use: the poller hands itself."""

    client: CallMeterClient
    runs: RunTracker
    probe_statuses: set[str]
    spare: Spare

    def now(self) -> float: ...
    def wall(self) -> float: ...
    def want_details(self, project_id: str, wants: list[DetailWant]) -> None: ...
    @property
    def schedule(self) -> Schedule: ...
    def capped(self, family: str, folded: int, **where: str) -> None: ...
    def unread(self, kind: str, keys: list[str], **where: str) -> None: ...


QUIET = "quiet"
"""Not a field: a read function sets it True when nothing a snapshot shows changed (no publish)."""

Read = Callable[["Context", "Kind", ProjectData, str | None], Awaitable[dict[str, Any]]]
"""(context, kind, the project's data, the item id for one-item kinds) -> the `ProjectData` fields it
read. The poller applies them to the project's data as it is when the read ends: reads of one project
run side by side, and none may undo another."""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    """The `resource` label of the exporter's own metrics."""
    route: str
    priority: float
    model: type[ApiModel]
    floor: str
    """The `Floors` field (a `*_MIN_INTERVAL` setting) this kind is read no more often than."""
    ceiling: Callable[[float], float]
    """The longest interval the plan may stretch it to, from its floor: every class stays alive."""
    fills: str | None = None
    """The `ProjectData` field it fills."""
    read: Read | None = None
    per_project: bool = True
    periodic: bool = True
    """False: one job per item, read once (a terminal run never changes)."""
    stamped: bool = True
    """Its reads set `ProjectData.fetched[name]`: its data goes stale, and readiness waits for it."""
    upstream_count: str | None = None
    """The `Project` field counting its items, which prices it before its first read."""
    cost_moves: bool = False
    """Its cost per refresh is an average that moves with every read (not a sign the inventory grew)."""

    def path(self, project_id: str | None = None, item: str | None = None) -> str:
        path = self.route.lstrip("/").replace("{projectId}", project_id or "")
        return _ITEM.sub(lambda _: item or "", path)

    def floor_of(self, floors: Floors) -> float:
        return float(getattr(floors, self.floor))


async def read_list(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """Every page of a project's list, kept as the kind's field."""
    assert kind.fills is not None
    items = await ctx.client.list_all(kind.route, kind.path(data.project.id), kind.model)
    return {kind.fills: tuple(items)}


async def read_probes(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    sent = ctx.wall()
    fields = await read_list(ctx, kind, data, item)
    # Every status ever seen stays in the state set, so a series that left a state reads 0, not absent.
    ctx.probe_statuses.update(p.status for p in fields["probes"] if p.status)
    ctx.schedule.probes_read(data.project.id, fields["probes"], sent=sent, seen=ctx.wall())
    return fields


async def read_runs(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """The pages of the run list that the run tracker asks for; finished runs become detail wants."""
    project = data.project
    path = kind.path(project.id)
    expected = len(data.tests) if data.tests is not None else project.test_count
    listing = ctx.runs.listing(project.id, expected_tests=expected)
    while listing.next_page is not None:
        page = await ctx.client.page(kind.route, path, listing.next_page)
        runs = ctx.client.parse_items(kind.route, TestRun, page.items, path=path)
        total = page.pagination.total_pages if page.pagination and page.pagination.total_pages else 1
        listing.add(runs, total)
    wants = ctx.runs.absorb_listing(project.id, project.label, listing, now=ctx.now(), wall=ctx.wall())
    ctx.want_details(project.id, wants)
    ctx.schedule.runs_listed(data)
    return _with_runs(ctx, data)


async def read_run_detail(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """One run's detail: a finished run's summary (the test's latest quality data), or a look at a
    running run that should have ended by now."""
    assert item is not None
    sent = ctx.wall()
    run = await ctx.client.get(kind.route, kind.path(data.project.id, item), TestRun)
    seen = ctx.wall()
    ctx.runs.absorb_detail(data.project.id, data.project.label, run, wall=seen)
    ctx.schedule.detail_read(data.project.id, run, sent=sent, seen=seen)
    return _with_runs(ctx, data)


async def read_run_endpoints(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """One page of a completed run's endpoint listing; its last page completes the run's tally."""
    assert item is not None
    pid, tracker = data.project.id, ctx.spare.endpoints
    where = tracker.next_read(pid, item)
    if where is None:  # a newer completed run of the test took its place
        return {}
    test_id, number = where
    path = kind.path(pid, item)
    page = await ctx.client.page(kind.route, path, number)
    endpoints = ctx.client.parse_items(kind.route, RunEndpoint, page.items, path=path)
    total = page.pagination.total_pages if page.pagination else None
    read = tracker.absorb_page(pid, item, number, endpoints, total, groups=ctx.spare.groups_of(pid, test_id),
                               wall=ctx.wall())
    if read is None:  # not the last page: nothing to show yet
        return {}
    if read.folded:
        ctx.capped("callmeter_test_run_endpoint_outcomes", read.folded, project=data.project.label, test_id=test_id,
                   run=item)
    return {"endpoint_outcomes": dict(tracker.of(pid).done)}


async def read_probe_details(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """One probe's detail: its thresholds, and the test it runs."""
    assert item is not None
    detail, unread = read_probe_detail(await ctx.client.get(kind.route, kind.path(data.project.id, item), Detail),
                                       ctx.wall())
    if unread:
        ctx.unread(kind.name, unread, project=data.project.label, probe_id=item)
    kept = ctx.spare.keep_probe(data.project.id, item, detail)
    return {"probe_details": kept, QUIET: not _shows_new(data.probe_details.get(item), detail)}


async def read_test_details(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """One test's detail: duration, endpoint count, codecs, groups."""
    assert item is not None
    detail = read_test_detail(await ctx.client.get(kind.route, kind.path(data.project.id, item), Detail), ctx.wall())
    kept = ctx.spare.keep_test(data.project.id, item, detail)
    return {"test_details": kept, QUIET: not _shows_new(data.test_details.get(item), detail)}


def _shows_new(before: ProbeDetail | TestDetail | None, after: ProbeDetail | TestDetail) -> bool:
    """Does a detail read change what is shown? Its read time alone does not: a re-read that found the
    same settings is kept (with its time, for the state file) but makes no new snapshot."""
    return before is None or before.model_copy(update={"read_at": after.read_at}) != after


def _with_runs(ctx: Context, data: ProjectData) -> dict[str, Any]:
    runs = ctx.runs.projects.get(data.project.id) or ProjectRuns()
    return {"latest_runs": dict(runs.latest_runs), "latest_completed": dict(runs.latest_completed)}


_ITEM = re.compile(r"\{(?!projectId\})\w+\}")


def _inventory_ceiling(floor: float) -> float:
    return max(floor * 24, 6 * 3600)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("probes", "/projects/{projectId}/probes", 0, Probe, "probes", lambda f: max(f * 60, 3600),
         fills="probes", read=read_probes, upstream_count="probe_count"),
    Kind("test_runs", "/projects/{projectId}/test-runs", 1, TestRun, "test_runs", lambda f: f * 10,
         fills="latest_runs", read=read_runs, cost_moves=True),
    Kind("test_run_details", "/projects/{projectId}/test-runs/{testRunId}", 2, TestRun, "test_runs",
         lambda f: f * 10, fills="latest_completed", read=read_run_detail, periodic=False, stamped=False),
    Kind(ENDPOINTS, "/projects/{projectId}/test-runs/{testRunId}/endpoints", 2.5, RunEndpoint, "test_runs",
         lambda f: f * 10, fills="endpoint_outcomes", read=read_run_endpoints, periodic=False, stamped=False),
    Kind("projects", "/projects", 3, Project, "inventory", _inventory_ceiling, per_project=False),
    Kind("tests", "/projects/{projectId}/tests", 3, Test, "inventory", _inventory_ceiling,
         fills="tests", read=read_list, upstream_count="test_count"),
    Kind("registrars", "/projects/{projectId}/registrars", 3, Registrar, "inventory", _inventory_ceiling,
         fills="registrars", read=read_list, upstream_count="registrar_count"),
    Kind(PROBE_DETAILS, "/projects/{projectId}/probes/{probeId}", 3, Detail, "inventory", _inventory_ceiling,
         fills="probe_details", read=read_probe_details, periodic=False, stamped=False),
    Kind(TEST_DETAILS, "/projects/{projectId}/tests/{testId}", 3, Detail, "inventory", _inventory_ceiling,
         fills="test_details", read=read_test_details, periodic=False, stamped=False),
)}
"""In priority order: the order of the plan, of `--show-schedule` and of the landing page."""

SPARE = (ENDPOINTS, PROBE_DETAILS, TEST_DETAILS)
"""Kinds read below the plan (`spare`), one request a job."""
PERIODIC = tuple(k for k in KINDS.values() if k.periodic)
PER_PROJECT = tuple(k for k in KINDS.values() if k.per_project and k.periodic)
STAMPED = tuple(k.name for k in PER_PROJECT if k.stamped)
"""The kinds whose data a project must have to be complete, and whose data goes stale."""


def upstream_count(kind: Kind, project: Project) -> int | None:
    value: Any = getattr(project, kind.upstream_count) if kind.upstream_count else None
    return value if isinstance(value, int) else None
