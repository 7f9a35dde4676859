"""The poller: reads what the schedule says is due, keeps each project's data, and publishes an
immutable snapshot after each change.

The rooms it joins: `kinds` (what there is to read, and how), `scheduler` (when), `planner` (how
often the budget allows), `runs` (what the run lists and details mean). A read that fails keeps the
last good data; the `up` signal says whether the API could be used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import errors, logs
from .adaptive import Schedule
from .budget import RateLimiter
from .choice import Choice
from .client import PER_PAGE, CallMeterClient
from .kinds import KINDS, PER_PROJECT, QUIET, SPARE, STAMPED, Kind, upstream_count
from .models import Project
from .planner import Floors, Inventory, Plan, has_room, pages, room_per_minute
from .runs import DetailWant, RunTracker
from .scheduler import Job, Scheduler, wait_event
from .selfmetrics import ExporterMetrics
from .snapshot import ProjectData, Snapshot
from .spare import ConfigDetails, RunEndpoints, Spare
from .state import SavedState
from .webhooks import StatusOverlay, WebhookMetrics

PROJECTS = KINDS["projects"]
PROBES = KINDS["probes"]
DETAILS = KINDS["test_run_details"]
DETAIL_PATIENCE = 60.0
"""Adaptive: a run detail wanted for longer than this goes ahead of the run lists and inventory."""
URGENT_GAP = 0.1
"""Seconds between two publishes that a webhook asked for (a flood must not render without pause)."""


def chosen_projects(projects: list[Project], project_filter: tuple[str, ...]) -> list[Project]:
    """The projects `CALLMETER_PROJECTS` names, by id or slug; all of them when it names none."""
    wanted = set(project_filter)
    return [p for p in projects if not wanted or p.id in wanted or (p.slug and p.slug in wanted)]


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
        schedule: str = "adaptive",
        probes_max_interval: float = 300.0,
        webhook_metrics: WebhookMetrics | None = None,
        run_endpoints: RunEndpoints = "auto",
        config_details: ConfigDetails = "auto",
    ) -> None:
        self.client = client
        self._limiter = limiter
        self._metrics = metrics
        self._publish = publish
        self._filter = project_filter
        self._floors = floors or Floors()
        self._max_data_age = max_data_age
        self._publish_interval = publish_interval
        self.wall = wall
        self._log = logs.get_logger("callmeter.poller")
        self.projects: dict[str, ProjectData] = {}
        self._projects_at: float | None = None
        self.runs = RunTracker(lookback_pages=lookback_pages, started_at=wall())
        self.probe_statuses: set[str] = set()
        self.spare = Spare(run_endpoints=run_endpoints, config_details=config_details)
        self._room = 0.0
        """Requests a minute the plan leaves over for spare reads (0: none)."""
        self._logged_unread: set[tuple[str, str]] = set()
        adaptive = schedule == "adaptive"
        self.scheduler = Scheduler(limiter=limiter, interval=self.interval, max_concurrency=max_concurrency,
                                   patience=DETAIL_PATIENCE if adaptive else None, hold=adaptive)
        self.schedule = Schedule(adaptive=adaptive, scheduler=self.scheduler, runs=self.runs, metrics=metrics,
                                 max_interval=probes_max_interval, fixed_interval=self._floors.probes,
                                 now=self.now, wall=wall)
        self._plan: Plan | None = None
        self._planned_for: Inventory | None = None
        self._planned_rate = limiter.per_minute
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        self.overlay = StatusOverlay(webhook_metrics)
        """Webhook statuses laid over the probe lists until a read decides (`webhooks.push`)."""
        self.hidden_projects: set[str] = set()
        """Ids and slugs of visible projects that CALLMETER_PROJECTS leaves out."""
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        """Set when a refresh fails for want of the API (auth, network, 5xx) before the exporter was ready."""
        self.settled = asyncio.Event()
        """Ready, and no run detail, endpoint listing or first detail read outstanding: what `--once` waits for."""
        self.snapshot = Snapshot()
        self._missing_logged: set[str] = set()

    # -- public --------------------------------------------------------------------------------

    @property
    def plan(self) -> Plan | None:
        return self._plan

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        """Poll until cancelled."""
        self.scheduler.add(Job(PROJECTS.name, due=self.now()))
        publisher = asyncio.create_task(self._publisher(), name="callmeter-publisher")
        try:
            await self.scheduler.run(self._execute)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    def republish(self) -> None:
        """Publish a new snapshot now (a webhook's status), not after the publish interval."""
        self._dirty.set()
        self._urgent.set()

    def want_details(self, project_id: str, wants: list[DetailWant]) -> None:
        if wants:
            self.settled.clear()
        self.schedule.want_details(project_id, wants)

    def capped(self, family: str, folded: int, **where: str) -> None:
        """Label values folded by a cardinality cap: counted, and logged."""
        self._metrics.series_capped(family, folded)
        self._log.warning("cardinality.capped", family=family, folded=folded, **where,
                          hint="label values beyond the cap were folded into _other / UNRECOGNIZED")

    def unread(self, kind: str, keys: list[str], **where: str) -> None:
        """Detail fields the exporter could not read: logged once per kind and field."""
        new = [k for k in keys if (kind, k) not in self._logged_unread]
        if new:
            self._logged_unread.update((kind, k) for k in new)
            self._log.info("details.unread", resource=kind, fields=new[:10], **where,
                           hint="a shape the exporter does not know yet: these yield no series")

    # -- reads below the plan (spare) -------------------------------------------------------------

    def _top_up(self) -> None:
        """Queue the spare jobs the spare work wants (`spare`), within what the plan leaves over."""
        if self._plan is None:
            return
        now, wall = self.now(), self.wall()
        queued = {(k[0], k[1], k[2]) for k in self.scheduler.jobs if k[0] in SPARE and k[1] and k[2]}
        for want in self.spare.wants(wall=wall, interval=self.interval("tests"), room=self._room,
                                     queued=queued):
            self.scheduler.add(Job(want.resource, want.project_id, want.item, due=now + max(0.0, want.due - wall),
                                   spare=want.spare, wanted_since=want.wanted_since))

    # -- across restarts -----------------------------------------------------------------------

    def saved_state(self) -> SavedState:
        """What a state file keeps: the data and the run tracker as they are now, request times as Unix times."""
        wall, now = self.wall(), self.now()
        return SavedState(projects=dict(self.projects), projects_at=self._projects_at, runs=self.runs,
                          probe_statuses=set(self.probe_statuses), last_success=dict(self._metrics.last_success),
                          request_times=[wall - (now - t) for t in self._limiter.recent()],
                          rate_per_minute=self._limiter.per_minute,
                          paused_until=wall + self._limiter.blocked_for(), learned=self.schedule.learned)

    def restore(self, saved: SavedState) -> None:
        """Before `run`: take up a saved state. Its data is published at once with the times it was read
        (the stale-data rule applies to it as to any data), each list comes due when its interval since
        that read has passed, and the limiter counts the previous process's last minute."""
        wall, now = self.wall(), self.now()
        self.projects = dict(saved.projects)
        self._projects_at = saved.projects_at
        self.runs.load(saved.runs)
        learned = self.schedule.learned
        for name, values in dataclasses.asdict(saved.learned).items():
            getattr(learned, name).update(values)
        self.probe_statuses = set(saved.probe_statuses)
        self.spare.restore(self.projects)
        for resource, at in saved.last_success.items():
            self._metrics.succeeded(resource, at)
        self._limiter.restore([now - (wall - t) for t in saved.request_times], per_minute=saved.rate_per_minute,
                              paused_until=now + max(0.0, saved.paused_until - wall))
        self._replan(reason="restore")

        def job(resource: str, project_id: str | None, at: float | None) -> Job:
            due = now if at is None else now + max(0.0, at + self.interval(resource) - wall)
            return Job(resource, project_id, due=due, refreshed=at is not None)

        self.scheduler.add(job(PROJECTS.name, None, saved.projects_at))
        for pid, data in self.projects.items():
            for kind in PER_PROJECT:
                self.scheduler.add(job(kind.name, pid, data.fetched.get(kind.name)))
        self._want_tracked_details()
        for data in self.projects.values():
            self.spare.update(data, self.runs.of(data.project.id), now=now)
        self._top_up()
        self._check_ready()
        self._dirty.set()

    def _want_tracked_details(self) -> None:
        """A detail job for every run the tracker still wants (after a restore)."""
        for pid in self.projects:
            for run_id in self.runs.of(pid).detail_for_test.values():
                self.scheduler.add(Job(DETAILS.name, pid, run_id, due=self.now()))
                self.settled.clear()

    # -- the plan ------------------------------------------------------------------------------

    def interval(self, resource: str) -> float:
        if self._plan is None:
            return KINDS[resource].floor_of(self._floors)
        return self._plan.intervals.get(resource, self._floors.inventory)

    def inventory(self) -> Inventory:
        def cost(kind: Kind, data: ProjectData) -> float:
            if kind.cost_moves:
                return self.runs.of(data.project.id).pages_per_listing
            items = getattr(data, kind.fills) if kind.fills else None
            return pages(len(items) if items is not None else upstream_count(kind, data.project), PER_PAGE)

        return Inventory(projects=len(self.projects),
                         requests={k.name: sum(cost(k, d) for d in self.projects.values()) for k in PER_PROJECT})

    def _replan(self, *, reason: str) -> None:
        inventory = self.inventory()
        budget = self._limiter.per_minute
        probe_pages = {pid: pages(len(d.probes) if d.probes is not None else upstream_count(PROBES, d.project),
                                  PER_PAGE) for pid, d in self.projects.items()}
        plan = self.schedule.plan(inventory, self._floors, budget, probe_pages=probe_pages,
                                  reserved_per_minute=self.spare.reserved_per_minute(self.now()))
        grew = inventory.grew_since(self._planned_for)
        turned = self._plan is not None and plan.pays_every_execution != self._plan.pays_every_execution
        self._plan, self._planned_for, self._planned_rate = plan, inventory, budget
        self.schedule.use(plan)
        intervals = dict(plan.intervals)
        intervals[DETAILS.name] = intervals["test_runs"]
        self._metrics.set_intervals(intervals)
        self._room = room_per_minute(plan, inventory) if has_room(plan, inventory) else 0.0
        self._top_up()
        if grew or turned or reason == "rate":
            log_plan(self._log, plan, reason=reason, projects=inventory.projects, choice=self.schedule.choice)

    # -- execution -----------------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        started = self.now()
        ok = False
        changed = True
        try:
            changed = await self._refresh(job)
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
            ok = job.refreshed = True
            self._metrics.set_up(True)
            self._metrics.succeeded(job.resource, self.wall())
            self._log.info("refresh.done", resource=job.resource, project=self._label(job.project_id),
                           run=job.item, seconds=round(self.now() - started, 3))
        finally:
            self.scheduler.finish(job, started)
            if job.resource in SPARE:
                self.spare.finished(job.resource, job.project_id, job.item, ok=ok, wall=self.wall())
                self._top_up()
            self._check_ready()
            self._metrics.set_details_pending(self.runs.details_pending)
            if changed:  # a read below the plan that changed nothing shown does not make a snapshot
                self._dirty.set()
        if self._limiter.per_minute != self._planned_rate:
            self._replan(reason="rate")

    def _label(self, project_id: str | None) -> str | None:
        data = self.projects.get(project_id) if project_id else None
        return data.project.label if data else project_id

    def _down(self) -> None:
        self._metrics.set_up(False)
        if not self.ready.is_set():
            self.failed.set()

    async def _refresh(self, job: Job) -> bool:
        """Read the job's kind; False when nothing was read that a snapshot shows (no fields)."""
        kind = KINDS[job.resource]
        if not kind.per_project:
            await self._refresh_projects()
            return True
        assert job.project_id is not None and kind.read is not None
        data = self.projects.get(job.project_id)
        if data is None:
            self.scheduler.remove(job.key)
            return True
        began = self.wall()
        fields = await kind.read(self, kind, data, job.item)
        current = self.projects.get(job.project_id)
        if current is None:  # dropped while it was read
            return True
        quiet = bool(fields.pop(QUIET, False))
        if not fields:
            self._spare_update(job.project_id)
            return False
        if kind.stamped:
            fields["fetched"] = {**current.fetched, kind.name: began}
        if kind is PROBES:
            self.overlay.settle(job.project_id, fields["probes"], read_started=began, read_done=self.wall())
        self.projects[job.project_id] = dataclasses.replace(current, **fields)
        self._spare_update(job.project_id)
        if kind.periodic:
            self._replan(reason="inventory")  # cheap; it logs only when the inventory grew
        return not quiet

    async def _refresh_projects(self) -> None:
        projects = await self.client.list_all(PROJECTS.route, PROJECTS.path(), Project)
        self._projects_at = self.wall()
        chosen = chosen_projects(projects, self._filter)
        ids = {p.id for p in chosen}
        self.hidden_projects = {name for p in projects if p.id not in ids for name in (p.id, p.slug) if name}
        for name in set(self._filter) - {p.id for p in projects} - {p.slug for p in projects if p.slug}:
            if name not in self._missing_logged:
                self._missing_logged.add(name)
                self._log.warning("projects.not_visible", project=name,
                                  hint="CALLMETER_PROJECTS names a project this key cannot see")
        for gone in [pid for pid in self.projects if pid not in ids]:
            self._drop_project(gone)
        now = self.now()
        for project in chosen:
            if project.id in self.projects:
                self.projects[project.id] = dataclasses.replace(self.projects[project.id], project=project)
                continue
            self.projects[project.id] = ProjectData(project)
            for kind in PER_PROJECT:
                self.scheduler.add(Job(kind.name, project.id, due=now))
        self._replan(reason="inventory")

    def _spare_update(self, project_id: str) -> None:
        """What the project's lists and runs now show may want spare reads (new probes, completed runs)."""
        self.spare.update(self.projects[project_id], self.runs.of(project_id), now=self.now())
        self._top_up()

    def _drop_project(self, project_id: str) -> None:
        self.spare.drop(project_id)
        self.projects.pop(project_id, None)
        self.overlay.forget(project_id)
        self.runs.drop(project_id)
        self.scheduler.remove_project(project_id)
        self.schedule.drop(project_id)

    def _gone(self, job: Job) -> None:
        """404: the resource was deleted; its series go, and the project list is checked again soon."""
        if not KINDS[job.resource].periodic:
            return
        if job.project_id is not None:
            self._log.info("project.gone", project=job.project_id, resource=job.resource)
            self._drop_project(job.project_id)
            self.scheduler.hurry((PROJECTS.name, None, None))

    # -- readiness and publishing --------------------------------------------------------------

    def _check_ready(self) -> None:
        if self._projects_at is None:
            return
        fresh, wall = Snapshot(max_data_age=self._max_ages()).fresh, self.wall()
        # Complete and not stale: data restored from a state file counts only while it is fresh.
        if all(all(fresh(p.fetched.get(k), k, wall) for k in STAMPED) for p in self.projects.values()):
            if not self.ready.is_set():
                self._log.info("exporter.ready", projects=len(self.projects))
                self.ready.set()
            # Watches of running runs (adaptive) are not outstanding: what finished has been read.
            if self.runs.details_pending == 0 and self.spare.settled(room=self._room):
                self.settled.set()

    def _max_ages(self) -> dict[str, float]:
        if self._max_data_age is not None:
            return dict.fromkeys(STAMPED, self._max_data_age)
        # Three missed refreshes, and never less than 15 minutes.
        return {r: max(3 * self.interval(r), 900.0) for r in STAMPED}

    def build_snapshot(self) -> Snapshot:
        ages = self._max_ages()
        overlay = self.overlay
        return Snapshot(
            projects=tuple(dataclasses.replace(d, probes=overlay.apply(pid, d.probes)) if pid in overlay else d
                           for pid, d in self.projects.items()),
            finished_runs=dict(self.runs.finished),
            probe_statuses=frozenset(self.probe_statuses),
            run_statuses=frozenset(self.runs.statuses),
            taken_at=self.wall(),
            max_data_age=ages,
        )

    async def _publisher(self) -> None:
        while True:
            expiry = self.snapshot.next_expiry(self.wall())
            timeout = None if expiry is None else max(0.0, expiry - self.wall()) + 0.01
            await wait_event(self._dirty, timeout)
            self._dirty.clear()
            self.snapshot = self.build_snapshot()
            published = self._publish(self.snapshot)
            if published is not None:
                await published  # one publisher task: snapshots can never land out of order
            # A webhook's status is published at once (cut short the rest), but not more often than URGENT_GAP.
            await asyncio.sleep(min(URGENT_GAP, self._publish_interval))
            await wait_event(self._urgent, max(0.0, self._publish_interval - URGENT_GAP))
            self._urgent.clear()


def log_plan(log: Any, plan: Plan, *, reason: str, projects: int, choice: Choice | None) -> None:
    """`schedule.plan`: a warning when a class is stretched, with what would change it; with the adaptive
    schedule, also what the probe lists' executions want and what the budget pays for."""
    event = log.warning if plan.stretched else log.info
    budget = plan.budget_per_minute
    hint = None
    if plan.stretched:
        hint = (f"the floors need {plan.needed_per_minute:.1f} requests/min but the budget is "
                f"{budget:.1f}/min: raise CALLMETER_PLAN or CALLMETER_REQUESTS_PER_MINUTE, narrow "
                f"CALLMETER_PROJECTS, or raise the *_MIN_INTERVAL floors")
    extra: dict[str, object] = {}
    if plan.probe_reads_wanted is not None and plan.probe_reads_paid is not None:
        wanted, paid = plan.probe_reads_wanted * 60, plan.probe_reads_paid * 60
        extra = {"schedule": plan.schedule, "probe_reads_per_hour": {"wanted": round(wanted), "paid": round(paid)}}
        if not plan.pays_every_execution:
            wait = f" (a result waits {choice.delay:.0f} s on average for its read)" if choice is not None else ""
            extra["probe_reads"] = (f"the budget pays for {paid:.0f} of the {wanted:.0f} probe-list reads an hour "
                                    f"that one read per execution would take: it keeps the reads that save the most "
                                    f"waiting{wait}")
    event("schedule.plan", reason=reason, projects=projects, budget_per_minute=round(budget, 2),
          intervals={k: round(v, 1) for k, v in plan.intervals.items()}, stretched=list(plan.stretched),
          details_per_minute=round(plan.detail_reserve_per_minute, 2), hint=hint, **extra)
