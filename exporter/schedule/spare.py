"""Reads below the plan: probe and test details, and the endpoint listings of completed runs.

None of them is a periodic list the planner stretches. Probe and test details cost one request per
probe and per test every inventory interval; an endpoint listing costs one request per 100
endpoints, once per completed run. So they are read with what the plan leaves over ("room": the
budget less what the periodic classes and the run-detail reserve take, `planner.room_per_minute`),
one request per job, paced to half the room (`ROOM_USE`: the other half stays free for what cannot
be foreseen, a burst of finished runs or another user of the key), and each such job gives its slot
up to any other job that comes due before the slot after it (`Job.spare`).

`CALLMETER_RUN_ENDPOINTS` decides for the endpoint listings: `auto` reads them as above; `on`
makes them a class of their own, right below run details, with a reserve in the plan (as run
details have); `off` never reads them. `CALLMETER_CONFIG_DETAILS` (`auto` or `off`) does the same
for probe and test details, which are always spare.

Which detail comes next is a queue in read order: the head was read longest ago, a new probe or
test goes to the front, a read (or a failed attempt) goes to the back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..model.details import ProbeDetail, TestDetail
from ..model.endpoints import EndpointTracker
from ..model.kinds import ENDPOINTS, PROBE_DETAILS, TEST_DETAILS
from ..model.runs import ProjectRuns, newer
from ..model.snapshot import ProjectData

RunEndpoints = Literal["auto", "on", "off"]
ConfigDetails = Literal["auto", "off"]
SPARE_JOBS = 2
"""Spare jobs of each kind of work (listing pages, details) queued at once: enough to use the idle
slots of a large budget."""
ROOM_USE = 0.5
"""Spare reads take at most this share of the room the plan leaves over."""
ENDPOINT_RETRIES = 3
"""A listing page that fails this many times in a row is given up (the run's outcomes are not shown)."""

Key = tuple[str, str, str]
"""(kind, project id, item id)."""


@dataclass(frozen=True, slots=True)
class Want:
    """A job the spare work asks for: `due` in Unix time; `spare`: it gives its slot up (see above)."""

    resource: str
    project_id: str
    item: str
    due: float
    spare: bool
    wanted_since: float | None = None
    """Loop time a listing page became wanted (`on`: it ages as a run detail does)."""


class Spare:
    """The details kept per project, the detail queue, and the endpoint tracker."""

    def __init__(self, *, run_endpoints: RunEndpoints = "auto", config_details: ConfigDetails = "auto") -> None:
        self.run_endpoints = run_endpoints
        self.config_details = config_details
        self.endpoints = EndpointTracker()
        self.probe_details: dict[str, dict[str, ProbeDetail]] = {}
        self.test_details: dict[str, dict[str, TestDetail]] = {}
        self._queue: deque[tuple[Key, float]] = deque()  # (item, when it was last read or tried)
        self._listed: set[Key] = set()  # the items the lists show now
        self._out: set[Key] = set()  # taken from the queue, not back yet
        self._unread: set[Key] = set()  # listed, and no detail read yet
        self._failures: dict[Key, int] = {}
        self._retry_at: dict[Key, float] = {}
        self._paced = float("-inf")  # Unix time the next spare job may go, at the pace of the room

    # -- what the lists and runs say -----------------------------------------------------------

    def restore(self, projects: Mapping[str, ProjectData]) -> None:
        """Take up what a state file kept: details with their read times, endpoint tallies."""
        for pid, data in projects.items():
            self.probe_details[pid] = dict(data.probe_details)
            self.test_details[pid] = dict(data.test_details)
            self.endpoints.restore(pid, data.endpoint_outcomes)

    def update(self, data: ProjectData, runs: ProjectRuns, *, now: float) -> None:
        """After any read of the project: new probes and tests join the detail queue, gone ones leave,
        and each test's newest completed run is wanted for its endpoint listing."""
        pid = data.project.id
        self._sync(PROBE_DETAILS, pid, data.probes, self.probe_details.setdefault(pid, {}))
        self._sync(TEST_DETAILS, pid, data.tests, self.test_details.setdefault(pid, {}))
        if self.run_endpoints == "off":
            return
        completed = dict(runs.latest_completed)
        for test_id, run in runs.latest_runs.items():
            known = completed.get(test_id)
            if run.status == "COMPLETED" and (known is None or newer(run, known)):
                completed[test_id] = run
        sizes = {t.id: t.total_endpoints for t in data.tests or ()}
        for test_id, detail in self.test_details.get(pid, {}).items():
            sizes[test_id] = detail.total_endpoints or sizes.get(test_id)
        self.endpoints.consider(pid, completed, sizes=sizes, now=now)

    def _sync(self, kind: str, pid: str, items: tuple[Any, ...] | None, kept: dict[str, Any]) -> None:
        if items is None:
            return
        ids = {str(item.id) for item in items}
        for gone in [k for k in self._listed if k[0] == kind and k[1] == pid and k[2] not in ids]:
            self._listed.discard(gone)
            self._unread.discard(gone)
            kept.pop(gone[2], None)
        unread, read = [], []
        for item in sorted(ids):
            key = (kind, pid, item)
            if key not in self._listed:
                self._listed.add(key)
                at = getattr(kept.get(item), "read_at", None)
                if at is None:
                    unread.append((key, float("-inf")))
                    self._unread.add(key)
                else:
                    read.append((key, float(at)))
        self._queue.extendleft(reversed(unread))
        if read:
            read.sort(key=lambda entry: entry[1])
            if self._queue and self._queue[-1][1] > read[0][1]:
                # Restored details, read before what the queue holds: one sort puts them in place.
                self._queue = deque(sorted([*self._queue, *read], key=lambda entry: entry[1]))
            else:
                self._queue.extend(read)

    def drop(self, project_id: str) -> None:
        self.endpoints.drop(project_id)
        self.probe_details.pop(project_id, None)
        self.test_details.pop(project_id, None)
        self._listed = {k for k in self._listed if k[1] != project_id}
        self._unread = {k for k in self._unread if k[1] != project_id}

    def keep_probe(self, project_id: str, item: str, detail: ProbeDetail) -> dict[str, ProbeDetail]:
        """Keep a probe detail just read; the project's probe details, for its data."""
        kept = self.probe_details.setdefault(project_id, {})
        kept[item] = detail
        return dict(kept)

    def keep_test(self, project_id: str, item: str, detail: TestDetail) -> dict[str, TestDetail]:
        kept = self.test_details.setdefault(project_id, {})
        kept[item] = detail
        return dict(kept)

    def settled(self, *, room: float) -> bool:
        """Nothing the plan lets through is still to be read for the first time (what `--once` waits for)."""
        if (self.run_endpoints == "on" or (self.run_endpoints == "auto" and room)) and self.endpoints.pending:
            return False
        return not (self.config_details == "auto" and room and self._unread)

    # -- what to read next ---------------------------------------------------------------------

    def wants(self, *, wall: float, interval: float, room: float, queued: set[Key]) -> Iterator[Want]:
        """Jobs to add (those in `queued` are in the scheduler already): the wanted endpoint pages while
        the mode allows (up to `SPARE_JOBS` at once when spare), then the details longest unread (up to
        `SPARE_JOBS` at once). `room` is the requests a minute the plan leaves over (0: none); spare jobs
        come due no faster than `ROOM_USE` of it."""
        spare_jobs = sum(1 for key in queued if key[0] == ENDPOINTS and self.run_endpoints == "auto")
        if self.run_endpoints == "on" or (self.run_endpoints == "auto" and room):
            for pid, state in self.endpoints.projects.items():
                for read in state.reading.values():
                    key = (ENDPOINTS, pid, read.run.id)
                    spare = self.run_endpoints == "auto"
                    if key in queued or (spare and spare_jobs >= SPARE_JOBS):
                        continue
                    spare_jobs += spare
                    due = self._retry_at.get(key, 0.0)
                    yield Want(ENDPOINTS, pid, read.run.id, self._pace(due, room, wall) if spare else due, spare,
                               None if spare else read.wanted_at)
        if self.config_details == "off" or not room:
            return
        detail_jobs = sum(1 for key in queued if key[0] != ENDPOINTS)
        while detail_jobs < SPARE_JOBS and self._queue:
            key, at = self._queue.popleft()
            if key not in self._listed or key in self._out:
                continue
            self._out.add(key)
            detail_jobs += 1
            yield Want(key[0], key[1], key[2], self._pace(at + interval, room, wall), True)

    def _pace(self, due: float, room: float, wall: float) -> float:
        """When a spare job wanted from `due` may go: a job due by now goes after the previous one, by
        `ROOM_USE` of the room; one due later keeps its time (at most `SPARE_JOBS` a kind are queued)."""
        ready = max(self._paced, wall)
        if due > ready:
            return due
        self._paced = ready + 60.0 / (ROOM_USE * room)
        return ready

    def finished(self, resource: str, project_id: str | None, item: str | None, *, ok: bool, wall: float) -> None:
        """A spare job ended: a detail goes back to the queue; a listing page that failed is tried again
        later, and given up after `ENDPOINT_RETRIES` failures in a row."""
        if project_id is None or item is None:
            return
        key = (resource, project_id, item)
        if resource in (PROBE_DETAILS, TEST_DETAILS):
            self._out.discard(key)
            self._unread.discard(key)  # read, or tried: `--once` does not wait for it again
            if key in self._listed:
                self._queue.append((key, wall))
            return
        if resource != ENDPOINTS:
            return
        if ok:
            self._failures.pop(key, None)
            self._retry_at.pop(key, None)
            return
        self._failures[key] = failures = self._failures.get(key, 0) + 1
        self._retry_at[key] = wall + 60.0 * failures
        if failures >= ENDPOINT_RETRIES:
            self.endpoints.give_up(project_id, item)
            self._failures.pop(key, None)
            self._retry_at.pop(key, None)

    def reserved_per_minute(self, now: float) -> float:
        """What the plan sets aside for endpoint listings: their demand when `on`, else nothing."""
        return self.endpoints.pages_per_minute(now) if self.run_endpoints == "on" else 0.0

    def groups_of(self, project_id: str, test_id: str) -> tuple[str, ...]:
        detail = self.test_details.get(project_id, {}).get(test_id)
        return detail.groups if detail is not None else ()
