"""What the poller has read: each project's data, every status seen, and the snapshot built from them.

The poller applies what each read returns (`apply`) to the project's data as it is when the read
ends, and builds every snapshot it publishes from here (`snapshot`). Statuses that webhooks pushed
are laid over the probe lists (`overlay`) until a read decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..api.models import Project
from ..model.kinds import STAMPED, Kind
from ..model.runs import RunTracker
from ..model.snapshot import ProjectData, Snapshot
from .overlay import StatusOverlay
from .state import SavedState


def chosen_projects(projects: list[Project], project_filter: tuple[str, ...]) -> list[Project]:
    """The projects `CALLMETER_PROJECTS` names, by id or slug; all of them when it names none."""
    wanted = set(project_filter)
    return [p for p in projects if not wanted or p.id in wanted or (p.slug and p.slug in wanted)]


class Store:
    def __init__(self, *, runs: RunTracker, overlay: StatusOverlay) -> None:
        self.projects: dict[str, ProjectData] = {}
        self.projects_at: float | None = None
        """Unix time the project list was last read; None until it has been."""
        self.probe_statuses: set[str] = set()
        """Every probe status ever seen: a series that left a state reads 0, not absent."""
        self.hidden_projects: set[str] = set()
        """Ids and slugs of visible projects that CALLMETER_PROJECTS leaves out."""
        self.overlay = overlay
        self._runs = runs

    def label(self, project_id: str | None) -> str | None:
        data = self.projects.get(project_id) if project_id else None
        return data.project.label if data else project_id

    def find(self, project_id: str) -> ProjectData | None:
        """A project by its id, or by its slug (webhooks may name either; ids are opaque)."""
        return self.projects.get(project_id) or next(
            (d for d in self.projects.values() if d.project.slug == project_id), None)

    def take_projects(self, listed: list[Project], project_filter: tuple[str, ...], *, at: float
                      ) -> tuple[list[str], list[str]]:
        """The project list as read, less what `CALLMETER_PROJECTS` leaves out; returns the ids of the
        projects new to it and of those gone from it, which the poller schedules and drops."""
        self.projects_at = at
        chosen = chosen_projects(listed, project_filter)
        ids = {p.id for p in chosen}
        self.hidden_projects = {name for p in listed if p.id not in ids for name in (p.id, p.slug) if name}
        gone = [pid for pid in self.projects if pid not in ids]
        new = []
        for project in chosen:
            if project.id in self.projects:
                self.projects[project.id] = dataclasses.replace(self.projects[project.id], project=project)
            else:
                self.projects[project.id] = ProjectData(project)
                new.append(project.id)
        return new, gone

    def apply(self, project_id: str, kind: Kind, fields: dict[str, Any], *, began: float, done: float) -> bool:
        """Lay the fields a read returned over the project's data as it is now; False when the project
        was dropped while it was read. A stamped kind's read time is `began`: what changed after it
        started may not be in it."""
        if "probes" in fields:
            self.probe_statuses.update(p.status for p in fields["probes"] if p.status)
        current = self.projects.get(project_id)
        if current is None:
            return False
        if not fields:
            return True
        if kind.stamped:
            fields = {**fields, "fetched": {**current.fetched, kind.name: began}}
        if "probes" in fields:
            self.overlay.settle(project_id, fields["probes"], read_started=began, read_done=done)
        self.projects[project_id] = dataclasses.replace(current, **fields)
        return True

    def push_status(self, project_id: str, probe_id: str, status: str, received_at: float) -> None:
        """A webhook's status for a known probe: shown until a read decides; a status only a webhook has
        named still gets its 0 series on the other probes."""
        self.overlay.push(project_id, probe_id, status, received_at)
        self.probe_statuses.add(status)

    def drop(self, project_id: str) -> None:
        self.projects.pop(project_id, None)
        self.overlay.forget(project_id)

    def complete(self, fresh: Callable[[float | None, str, float], bool], wall: float) -> bool:
        """Has the project list been read, and every project each stamped kind, none of them stale?"""
        if self.projects_at is None:
            return False
        return all(all(fresh(p.fetched.get(k), k, wall) for k in STAMPED) for p in self.projects.values())

    def snapshot(self, *, taken_at: float, max_ages: Mapping[str, float]) -> Snapshot:
        overlay = self.overlay
        return Snapshot(
            projects=tuple(dataclasses.replace(d, probes=overlay.apply(pid, d.probes)) if pid in overlay else d
                           for pid, d in self.projects.items()),
            finished_runs=dict(self._runs.finished),
            probe_statuses=frozenset(self.probe_statuses),
            run_statuses=frozenset(self._runs.statuses),
            taken_at=taken_at,
            max_data_age=dict(max_ages),
        )

    def restore(self, saved: SavedState) -> None:
        self.projects = dict(saved.projects)
        self.projects_at = saved.projects_at
        self.probe_statuses = set(saved.probe_statuses)
