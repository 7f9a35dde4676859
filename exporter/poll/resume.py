"""Across restarts: what the poller hands a state file (`capture`), and how it takes one up (`resume`).

The state file's format is `state`; this is the poller's side: data and run tracker as they are,
request times turned into Unix times (a loop clock means nothing to the next process), and back.
"""

from __future__ import annotations

from ..model.kinds import KINDS, PER_PROJECT
from ..schedule.scheduler import Job
from .poller import Poller
from .state import SavedState

PROJECTS = KINDS["projects"].name
DETAILS = KINDS["test_run_details"].name


def capture(poller: Poller) -> SavedState:
    """What a state file keeps: the data and the run tracker as they are now, request times as Unix times."""
    wall, now, store, limiter = poller.wall(), poller.now(), poller.store, poller.limiter
    return SavedState(projects=dict(store.projects), projects_at=store.projects_at, runs=poller.runs,
                      probe_statuses=set(store.probe_statuses), last_success=dict(poller.metrics.last_success),
                      request_times=[wall - (now - t) for t in limiter.recent()], rate_per_minute=limiter.per_minute,
                      paused_until=wall + limiter.blocked_for(), learned=poller.policy.learned)


def resume(poller: Poller, saved: SavedState) -> None:
    """Before `Poller.run`: take up a saved state. Its data is published at once with the times it was
    read (the stale-data rule applies to it as to any data), each list comes due when its interval
    since that read has passed, and the limiter counts the previous process's last minute."""
    wall, now, store, scheduler = poller.wall(), poller.now(), poller.store, poller.scheduler
    store.restore(saved)
    poller.runs.load(saved.runs)
    poller.policy.learned.take(saved.learned)
    poller.spare.restore(store.projects)
    for resource, at in saved.last_success.items():
        poller.metrics.succeeded(resource, at)
    poller.limiter.restore([now - (wall - t) for t in saved.request_times], per_minute=saved.rate_per_minute,
                           paused_until=now + max(0.0, saved.paused_until - wall))
    poller.replan(reason="restore")

    def job(resource: str, project_id: str | None, at: float | None) -> Job:
        due = now if at is None else now + max(0.0, at + poller.planning.interval(resource) - wall)
        return Job(resource, project_id, due=due, refreshed=at is not None)

    scheduler.add(job(PROJECTS, None, saved.projects_at))
    for pid, data in store.projects.items():
        for kind in PER_PROJECT:
            scheduler.add(job(kind.name, pid, data.fetched.get(kind.name)))
    for pid in store.projects:
        for run_id in poller.runs.of(pid).detail_for_test.values():  # the details the tracker still wants
            scheduler.add(Job(DETAILS, pid, run_id, due=now))
            poller.readiness.unsettle()
    for data in store.projects.values():
        poller.spare.update(data, poller.runs.of(data.project.id), now=now)
    poller.top_up()
    poller.check_ready()
    poller.publisher.changed()
