"""The function that reads each kind (`READS[kind.name]`), and what it may use of the poller.

A read function gets the poller's side it needs (`Context`), the kind's row (`model.kinds`), the
project's data as it is when the read starts, and the item id for one-item kinds; it returns the
`ProjectData` fields it read. The poller applies them to the project's data as it is when the read
ends: reads of one project run side by side, and none may undo another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..api.client import CallMeterClient
from ..api.models import RunEndpoint, TestRun
from ..model.details import Detail, ProbeDetail, TestDetail, read_probe_detail, read_test_detail
from ..model.kinds import ENDPOINTS, PROBE_DETAILS, TEST_DETAILS, Kind
from ..model.runs import DetailWant, ProjectRuns, RunTracker
from ..model.snapshot import ProjectData
from ..schedule.adaptive import TimingPolicy
from ..schedule.spare import Spare


class Context(Protocol):
    """What a read function may use: the poller hands itself."""

    client: CallMeterClient
    runs: RunTracker
    spare: Spare
    policy: TimingPolicy

    def now(self) -> float: ...
    def wall(self) -> float: ...
    def want_details(self, project_id: str, wants: list[DetailWant]) -> None: ...
    def capped(self, family: str, folded: int, **where: str) -> None: ...
    def unread(self, kind: str, keys: list[str], **where: str) -> None: ...


QUIET = "quiet"
"""Not a field: a read function sets it True when nothing a snapshot shows changed (no publish)."""

Read = Callable[["Context", "Kind", ProjectData, str | None], Awaitable[dict[str, Any]]]
"""(context, kind, the project's data, the item id for one-item kinds) -> the `ProjectData` fields it
read. The poller applies them to the project's data as it is when the read ends: reads of one project
run side by side, and none may undo another."""


async def read_list(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """Every page of a project's list, kept as the kind's field."""
    assert kind.fills is not None
    items = await ctx.client.list_all(kind.route, kind.path(data.project.id), kind.model)
    return {kind.fills: tuple(items)}


async def read_probes(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    sent = ctx.wall()
    fields = await read_list(ctx, kind, data, item)
    ctx.policy.probes_read(data.project.id, fields["probes"], sent=sent, seen=ctx.wall())
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
    ctx.policy.runs_listed(data)
    return _with_runs(ctx, data)


async def read_run_detail(ctx: Context, kind: Kind, data: ProjectData, item: str | None) -> dict[str, Any]:
    """One run's detail: a finished run's summary (the test's latest quality data), or a look at a
    running run that should have ended by now."""
    assert item is not None
    sent = ctx.wall()
    run = await ctx.client.get(kind.route, kind.path(data.project.id, item), TestRun)
    seen = ctx.wall()
    ctx.runs.absorb_detail(data.project.id, data.project.label, run, wall=seen)
    ctx.policy.detail_read(data.project.id, run, sent=sent, seen=seen)
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


READS: dict[str, Read] = {
    "probes": read_probes,
    "test_runs": read_runs,
    "test_run_details": read_run_detail,
    ENDPOINTS: read_run_endpoints,
    "tests": read_list,
    "registrars": read_list,
    PROBE_DETAILS: read_probe_details,
    TEST_DETAILS: read_test_details,
}
"""The read function of every per-project kind (the project list is the poller's own: it decides the projects)."""
