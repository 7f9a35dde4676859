"""The poller: runs the jobs the scheduler hands it, and joins the parts that keep what they read.

    Scheduler ─ job ─► Poller._execute ─► READS[kind] (poll.reads) ─ fields ─► Store.apply
                                  │                                               │
                                  ├─► Planning.replan (the inventory grew)        ├─► Publisher (a new snapshot)
                                  └─► Readiness.check                             └─► Spare (what it now wants)

A read that fails keeps the last good data; the `up` signal says whether the API could be used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import logs
from ..api import errors
from ..api.budget import RateLimiter
from ..api.client import CallMeterClient
from ..api.models import Project
from ..expose.selfmetrics import ExporterMetrics
from ..model.kinds import KINDS, PER_PROJECT, SPARE
from ..model.runs import DetailWant, RunTracker
from ..model.snapshot import Snapshot
from ..schedule.adaptive import TimingPolicy
from ..schedule.scheduler import Job, Scheduler
from ..schedule.spare import ConfigDetails, RunEndpoints, Spare
from ..settings import Floors, Settings
from ..webhooks.metrics import WebhookMetrics
from .overlay import StatusOverlay
from .planning import Planning
from .publisher import Publisher
from .readiness import Readiness
from .reads import QUIET, READS
from .store import Store

PROJECTS = KINDS["projects"]
DETAILS = KINDS["test_run_details"]
DETAIL_PATIENCE = 60.0
"""Adaptive: a run detail wanted for longer than this goes ahead of the run lists and inventory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PollOptions:
    """What the settings decide about polling (`Settings`: the setting of the same name)."""

    project_filter: tuple[str, ...] = ()
    floors: Floors = field(default_factory=Floors)
    lookback_pages: int = 3
    max_concurrency: int = 4
    max_data_age: float | None = None
    publish_interval: float = 1.0
    schedule: str = "adaptive"
    probes_max_interval: float = 300.0
    run_endpoints: RunEndpoints = "auto"
    config_details: ConfigDetails = "auto"

    @classmethod
    def of(cls, settings: Settings, *, floors: Floors | None = None, publish_interval: float = 1.0) -> PollOptions:
        """The settings' options; `floors` replaces the *_MIN_INTERVAL settings (the demo's)."""
        return cls(project_filter=settings.project_filter, floors=floors or settings.floors,
                   lookback_pages=settings.run_lookback_pages, max_concurrency=settings.max_concurrency,
                   max_data_age=settings.max_data_age, publish_interval=publish_interval, schedule=settings.schedule,
                   probes_max_interval=settings.probes_max_interval, run_endpoints=settings.run_endpoints,
                   config_details=settings.config_details)


class Poller:
    def __init__(self, *, client: CallMeterClient, limiter: RateLimiter, metrics: ExporterMetrics,
                 publish: Callable[[Snapshot], Awaitable[None] | None], options: PollOptions = PollOptions(),
                 wall: Callable[[], float] = time.time, webhook_metrics: WebhookMetrics | None = None) -> None:
        self.client = client
        self.limiter = limiter
        self.metrics = metrics
        self._filter = options.project_filter
        self.wall = wall
        self._log = logs.get_logger("callmeter.poller")
        self.runs = RunTracker(lookback_pages=options.lookback_pages, started_at=wall())
        self.spare = Spare(run_endpoints=options.run_endpoints, config_details=options.config_details)
        self.store = Store(runs=self.runs, overlay=StatusOverlay(webhook_metrics))
        self.planning = Planning(floors=options.floors, limiter=limiter, runs=self.runs, spare=self.spare,
                                 metrics=metrics, log=self._log, max_data_age=options.max_data_age)
        adaptive = options.schedule == "adaptive"
        self.scheduler = Scheduler(limiter=limiter, interval=self.planning.interval,
                                   max_concurrency=options.max_concurrency,
                                   patience=DETAIL_PATIENCE if adaptive else None, hold=adaptive)
        self.policy = TimingPolicy(adaptive=adaptive, scheduler=self.scheduler, runs=self.runs, observer=metrics,
                               max_interval=options.probes_max_interval, fixed_interval=options.floors.probes,
                               now=self.now, wall=wall)
        self.readiness = Readiness(self._log)
        self.publisher = Publisher(build=self.build_snapshot, publish=publish, interval=options.publish_interval,
                                   wall=wall)
        self._logged: set[tuple[str, str]] = set()
        """(kind, field) of detail fields logged as unread, and ("project", name) of projects not visible."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        """Poll until cancelled."""
        self.scheduler.add(Job(PROJECTS.name, due=self.now()))
        publisher = asyncio.create_task(self.publisher.run(), name="callmeter-publisher")
        try:
            await self.scheduler.run(self._execute)
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    def republish(self) -> None:
        """Publish a new snapshot now (a webhook's status), not after the publish interval."""
        self.publisher.urgent()

    def build_snapshot(self) -> Snapshot:
        return self.store.snapshot(taken_at=self.wall(), max_ages=self.planning.max_ages())

    # -- what a read function may call (`reads.Context`) ------------------------------------------

    def want_details(self, project_id: str, wants: list[DetailWant]) -> None:
        if wants:
            self.readiness.unsettle()
        self.policy.want_details(project_id, wants)

    def capped(self, family: str, folded: int, **where: str) -> None:
        """Label values folded by a cardinality cap: counted, and logged."""
        self.metrics.series_capped(family, folded)
        self._log.warning("cardinality.capped", family=family, folded=folded, **where,
                          hint="label values beyond the cap were folded into _other / UNRECOGNIZED")

    def unread(self, kind: str, keys: list[str], **where: str) -> None:
        """Detail fields the exporter could not read: logged once per kind and field."""
        new = [k for k in keys if (kind, k) not in self._logged]
        if new:
            self._logged.update((kind, k) for k in new)
            self._log.info("details.unread", resource=kind, fields=new[:10], **where,
                           hint="a shape the exporter does not know yet: these yield no series")

    # -- the plan and the reads below it -------------------------------------------------------

    def replan(self, *, reason: str) -> None:
        self.planning.replan(self.store.projects, self.policy, reason=reason, now=self.now())
        self.top_up()

    def top_up(self) -> None:
        """Queue the spare jobs the spare work wants (`spare`), within what the plan leaves over."""
        if self.planning.plan is None:
            return
        now, wall = self.now(), self.wall()
        queued = {(k[0], k[1], k[2]) for k in self.scheduler.jobs if k[0] in SPARE and k[1] and k[2]}
        for want in self.spare.wants(wall=wall, interval=self.planning.interval("tests"), room=self.planning.room,
                                     queued=queued):
            self.scheduler.add(Job(want.resource, want.project_id, want.item, due=now + max(0.0, want.due - wall),
                                   spare=want.spare, wanted_since=want.wanted_since))

    def _spare_update(self, project_id: str) -> None:
        """What the project's lists and runs now show may want spare reads (new probes, completed runs)."""
        self.spare.update(self.store.projects[project_id], self.runs.of(project_id), now=self.now())
        self.top_up()

    def check_ready(self) -> None:
        fresh = Snapshot(max_data_age=self.planning.max_ages()).fresh
        self.readiness.check(complete=self.store.complete(fresh, self.wall()), projects=len(self.store.projects),
                             quiet=self._quiet)

    def _quiet(self) -> bool:
        return self.runs.details_pending == 0 and self.spare.settled(room=self.planning.room)

    # -- execution -----------------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        started = self.now()
        ok = False
        changed = True
        try:
            changed = await self._refresh(job)
        except errors.Unauthorized as exc:
            self._down(exc)
        except errors.NotFound:
            self.metrics.set_up(True)
            self._gone(job)
        except (errors.TransportError, errors.ServerError, errors.InvalidResponse) as exc:
            self._down(exc)
        except errors.ApiError:
            self.metrics.set_up(True)  # reached and authenticated; this resource just failed (403, 429...)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not stop the poller; it is logged with its traceback
            self._log.exception("refresh.crashed", resource=job.resource, project=job.project_id)
        else:
            ok = job.refreshed = True
            self.metrics.set_up(True)
            self.metrics.succeeded(job.resource, self.wall())
            self._log.info("refresh.done", resource=job.resource, project=self.store.label(job.project_id),
                           run=job.item, seconds=round(self.now() - started, 3))
        finally:
            self.scheduler.finish(job, started)
            if job.resource in SPARE:
                self.spare.finished(job.resource, job.project_id, job.item, ok=ok, wall=self.wall())
                self.top_up()
            self.check_ready()
            self.metrics.set_details_pending(self.runs.details_pending)
            if changed:  # a read below the plan that changed nothing shown does not make a snapshot
                self.publisher.changed()
        if self.planning.rate_moved():
            self.replan(reason="rate")

    def _down(self, exc: errors.ApiError) -> None:
        self.metrics.set_up(False, reason=logs.redact_text(f"{exc.kind}: {exc}")[:300])
        self.readiness.down()

    async def _refresh(self, job: Job) -> bool:
        """Read the job's kind; False when nothing was read that a snapshot shows (no fields)."""
        kind = KINDS[job.resource]
        if not kind.per_project:
            await self._refresh_projects()
            return True
        assert job.project_id is not None
        data = self.store.projects.get(job.project_id)
        if data is None:
            self.scheduler.remove(job.key)
            return True
        began = self.wall()
        fields = await READS[kind.name](self, kind, data, job.item)
        quiet = bool(fields.pop(QUIET, False))
        if not self.store.apply(job.project_id, kind, fields, began=began, done=self.wall()):
            return True  # dropped while it was read
        self._spare_update(job.project_id)
        if not fields:
            return False
        if kind.periodic:
            self.replan(reason="inventory")  # cheap; it logs only when the inventory grew
        return not quiet

    async def _refresh_projects(self) -> None:
        listed = await self.client.list_all(PROJECTS.route, PROJECTS.path(), Project)
        new, gone = self.store.take_projects(listed, self._filter, at=self.wall())
        names = {p.id for p in listed} | {p.slug for p in listed if p.slug}
        for name in sorted(set(self._filter) - names):
            if ("project", name) not in self._logged:
                self._logged.add(("project", name))
                self._log.warning("projects.not_visible", project=name,
                                  hint="CALLMETER_PROJECTS names a project this key cannot see")
        for project_id in gone:
            self._drop_project(project_id)
        now = self.now()
        for project_id in new:
            for kind in PER_PROJECT:
                self.scheduler.add(Job(kind.name, project_id, due=now))
        self.replan(reason="inventory")

    def _drop_project(self, project_id: str) -> None:
        self.spare.drop(project_id)
        self.store.drop(project_id)
        self.runs.drop(project_id)
        self.scheduler.remove_project(project_id)
        self.policy.drop(project_id)

    def _gone(self, job: Job) -> None:
        """404: the resource was deleted; its series go, and the project list is checked again soon."""
        if not KINDS[job.resource].periodic or job.project_id is None:
            return
        self._log.info("project.gone", project=job.project_id, resource=job.resource)
        self._drop_project(job.project_id)
        self.scheduler.hurry((PROJECTS.name, None, None))
