"""The schedule's timing: the policy of `timing` applied to the scheduler's jobs.

The poller hands every probe list, run list and run detail it reads to `TimingPolicy`. Whatever
`CALLMETER_SCHEDULE` says, the schedule learns from them and measures freshness
(`callmeter_exporter_observation_delay_seconds`). With `adaptive` (the default) it also sets when each
project's probe list is read next (just after its probes' next results should show, or at the reads
`timing.choose_reads` keeps when the budget cannot pay for one per execution), and it watches each
running run whose test has a duration, reading its detail just after it should have ended. With
`fixed`, every list stays on the plan's clock, as before.

What it has learned is `self.learned` (`timing.Learned`), one plain object.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from ..api.models import Probe, TestRun
from ..model.kinds import KINDS
from ..model.runs import DetailWant, RunTracker
from ..model.snapshot import ProjectData
from ..settings import Floors
from .choice import Choice, choose_reads
from .planner import Inventory, Plan, adaptive_plan, plan_for
from .scheduler import Job, JobKey, Scheduler
from .timing import HORIZON, Learned, ProbeTimes, RunTimes

PROBES = KINDS["probes"].name
DETAILS = KINDS["test_run_details"].name
RECHOOSE = 30.0
"""While the budget cannot pay for every execution, the reads are chosen again at most this often
(and after a read that missed a result)."""
UNDER_FIXED = 0.99
"""Probe lists earn credit at this share of the rate `fixed` would read them at, so that small slips
(a read that waited for a slot) cannot take the adaptive schedule above `fixed`."""
EMPTY_WEIGHT = 0.02
"""Weight of each read in the running share of reads that showed nothing awaited: the part of the
credit kept back for reads no plan foresees (a second look after a miss)."""
RATE_WINDOW = 1800.0
HOUR = 3600.0
WATCHED = frozenset({"RUNNING", "STOPPING"})


class Observer(Protocol):
    """Where the schedule reports how long a new result took to show (the self-metrics' observation delay)."""

    def observed(self, resource: str, seconds: float) -> None: ...


class TimingPolicy:
    def __init__(self, *, adaptive: bool, scheduler: Scheduler, runs: RunTracker, observer: Observer,
                 max_interval: float, fixed_interval: float, now: Callable[[], float], wall: Callable[[], float],
                 learned: Learned | None = None) -> None:
        self.adaptive = adaptive
        self.learned = learned or Learned()
        self.probes = ProbeTimes(self.learned, max_interval=max_interval)
        self.watches = RunTimes(self.learned)
        self._scheduler = scheduler
        self._runs = runs
        self._observer = observer
        self._now, self._wall = now, wall
        self._fixed_interval = fixed_interval
        self._rate = 0.0  # probe-list requests a second the adaptive schedule earns credit at
        self._balance = 0.0  # requests it may send before it reads more than `fixed` would have
        self._balance_at: float | None = None
        self._pages: dict[str, float] = {}
        self._wanted: dict[str, float] = {}  # project -> probe-list reads an hour its executions want
        self._empty = 0.0  # share of recent probe-list reads that showed no awaited result (misses, mostly)
        self._choice: Choice | None = None
        self._chosen_at = float("-inf")
        self._watch_reads: deque[float] = deque()
        self._looking = True

    # -- the plan ------------------------------------------------------------------------------

    def plan(self, inventory: Inventory, floors: Floors, budget: float, *, probe_pages: Mapping[str, float],
             reserved_per_minute: float = 0.0) -> Plan:
        """The plan for this schedule: `planner.adaptive_plan` with what the reads have taught, or the
        fixed plan. `reserved_per_minute` joins the run details' reserve (the endpoint listings, when on)."""
        details = self._runs.details_per_minute(self._now()) + reserved_per_minute
        if not self.adaptive:
            return plan_for(inventory, floors, budget, details_per_minute=details)
        return adaptive_plan(inventory, floors, budget, details_per_minute=details + self.watch_reads_per_minute(),
                             probe_reads_per_minute=self.probe_reads_per_minute(probe_pages),
                             safety_interval=self.probes.max_interval, details_pending=self._runs.details_pending)

    def probe_reads_per_minute(self, pages: Mapping[str, float]) -> float:
        """Probe-list requests a minute that one read per execution would take (the safety net included)."""
        self._pages = dict(pages)
        fixed = 3600 / self._fixed_interval
        return sum(cost * self._wanted.get(pid, fixed) for pid, cost in pages.items()) / 60

    def watch_reads_per_minute(self) -> float:
        now = self._wall()
        while self._watch_reads and self._watch_reads[0] < now - RATE_WINDOW:
            self._watch_reads.popleft()
        return len(self._watch_reads) * 60 / RATE_WINDOW

    def use(self, plan: Plan) -> None:
        """The plan in force: the probe interval of the fixed clock, and the rate at which probe lists
        earn credit: `UNDER_FIXED` times what `fixed` would send where the plan pays for a read per
        execution (reads that missed a result, and learning, take from the margin), else what it pays."""
        if plan.fixed_probe_interval is not None:
            self._fixed_interval = plan.fixed_probe_interval
        # Looks at running runs only while the reserve pays for every detail: on a budget short even of
        # those, a look that finds a run still running is a request the details and probe lists lack.
        self._looking = plan.pays_details
        fixed = UNDER_FIXED * sum(self._pages.values()) / self._fixed_interval
        paid = plan.probe_reads_paid
        rate = fixed if plan.pays_every_execution or paid is None else min(fixed, paid / 60)
        if abs(rate - self._rate) > 1e-9:
            self._accrue(self._wall())
            self._rate, self._choice = rate, None
            if self.adaptive:
                self._time_probes(None)

    @property
    def choice(self) -> Choice | None:
        """The reads kept when the credit cannot pay for one per execution (None when it can)."""
        return self._choice

    def drop(self, project_id: str) -> None:
        self.probes.drop(project_id)
        self.watches.prune(project_id, keep=set())
        self._wanted.pop(project_id, None)

    # -- what the reads showed -----------------------------------------------------------------

    def want_details(self, project_id: str, wants: list[DetailWant]) -> None:
        """A detail job per want; a newer run keeps the place in the queue of the one it replaces. A run
        already watched (adaptive) is wanted from now on, and read at once. A test's first quality data
        is missing data (`Job.missing`)."""
        now = self._now()
        runs = self._runs.of(project_id)
        for want in wants:
            replaced = self._scheduler.remove((DETAILS, project_id, want.replaces)) if want.replaces else None
            run = runs.wanted_runs.get(want.run_id)
            missing = run is not None and run.test_id not in runs.latest_completed
            watched = self._scheduler.jobs.get((DETAILS, project_id, want.run_id))
            if watched is not None:  # a look at a running run that a listing saw finish first
                watched.wanted_since, watched.missing = now, missing
                self._scheduler.time_job(watched.key, now)
                continue
            self._scheduler.add(Job(DETAILS, project_id, want.run_id, wanted_since=now, missing=missing,
                                    due=replaced.due if replaced is not None else now))

    def probes_read(self, project_id: str, probes: tuple[Probe, ...], *, sent: float, seen: float) -> None:
        read = self.probes.read(project_id, probes, sent=sent, seen=seen)
        for delay in read.observed:
            self._observer.observed(PROBES, delay)
        first = project_id not in self._wanted
        self._wanted[project_id] = self.probes.reads_per_hour(project_id, seen, fixed_interval=self._fixed_interval)
        pages = self._pages.get(project_id, 1.0)
        self._accrue(seen)
        # A project's first read is one `fixed` makes too: it costs no credit.
        self._balance -= 0.0 if first else pages
        self._empty += EMPTY_WEIGHT * ((read.hits == 0) - self._empty)
        if self.adaptive:
            self._time_probes(project_id, rechoose=read.misses > 0)

    def runs_listed(self, data: ProjectData) -> None:
        self._observe_runs()
        if not self.adaptive:
            return
        project_id = data.project.id
        durations = {t.id: t.duration_seconds for t in data.tests or () if t.duration_seconds and self._looking}
        running = {}
        for test_id, run in self._runs.of(project_id).latest_runs.items():
            duration = durations.get(test_id)
            if run.status in WATCHED and run.started_at is not None and duration:
                running[run.id] = (test_id, run.started_at, duration)
        for run_id, (test_id, started_at, duration) in running.items():
            key: JobKey = (DETAILS, project_id, run_id)
            if key in self._scheduler.jobs:
                continue
            first = self.watches.watch(project_id, run_id, test_id, started_at=started_at, duration=duration)
            if first is not None:
                self._scheduler.add(Job(DETAILS, project_id, run_id, due=self._loop(first), speculative=True))
        reading = {k[2] for k in self._scheduler.jobs if k[0] == DETAILS and k[1] == project_id and k[2]}
        self.watches.prune(project_id, keep=set(running) | reading)

    def detail_read(self, project_id: str, run: TestRun, *, sent: float, seen: float) -> None:
        self._observe_runs()
        if not self.adaptive or not self.watches.watching(run.id):
            return
        self._watch_reads.append(seen)
        summary = run.summary
        progress = None
        if summary is not None and summary.registered_count and summary.completed_count is not None:
            progress = (summary.completed_count, summary.registered_count)
        again = self.watches.read(run.id, sent=sent, seen=seen, over=run.terminal, progress=progress,
                                  started_at=run.started_at)
        if again is not None:
            self._scheduler.time_job((DETAILS, project_id, run.id), self._loop(again))

    def _observe_runs(self) -> None:
        wall = self._wall()
        for ended in self._runs.take_results():
            self._observer.observed("test_runs", wall - ended)

    # -- timing the probe lists ----------------------------------------------------------------

    def _loop(self, at: float) -> float:
        """A Unix time as the scheduler's loop time."""
        return self._now() + (at - self._wall())

    def _time_probes(self, project_id: str | None, *, rechoose: bool = False) -> None:
        """Set when the probe lists come due: the one just read (`project_id`), or all of them. While the
        credit pays for a read per execution (and the safety net) over the next `HORIZON`, each project
        is read at its own next results; otherwise at the reads `choose_reads` keeps within the credit."""
        now = self._wall()
        self._accrue(now)
        credit = (self._balance + self._rate * HORIZON) * (1 - self._empty)
        wanted = sum(self._pages.get(p, 1.0) * w for p, w in self._wanted.items()) * HORIZON / HOUR
        if wanted <= credit:
            self._choice = None
        elif rechoose or self._choice is None or now - self._chosen_at > RECHOOSE:
            self._choose(now, credit)
        targets = [project_id] if project_id is not None and self._choice is None else list(self.probes.projects)
        for pid in targets:
            state = self.probes.projects.get(pid)
            if state is None or state.read_at is None:
                continue
            due = self.probes.next_read(pid, now, fixed_interval=self._fixed_interval)
            kept = self._choice.reads.get(pid) if self._choice is not None else None
            if kept is not None:
                due = next((t for t in kept if t > state.read_at + 0.5), due)
            self._scheduler.time_job((PROBES, pid, None), self._loop(due))

    def _choose(self, now: float, credit: float) -> None:
        budget = credit
        moments, cost, last_read = {}, {}, {}
        for pid, state in self.probes.projects.items():
            pages = self._pages.get(pid, 1.0)
            found = self.probes.moments(pid, now, now + HORIZON)
            if not found:  # on the fixed clock, or no probes: paid for before the others are chosen
                budget -= pages * self._wanted.get(pid, 0.0) * HORIZON / HOUR
                continue
            moments[pid], cost[pid] = found, pages
            if state.read_at is not None:
                last_read[pid] = state.read_at
        net = max(self.probes.max_interval, self._fixed_interval)
        self._choice = choose_reads(moments, cost, max(budget, 0.0), last_read=last_read, period=HORIZON,
                                    max_gap=net)
        self._chosen_at = now

    def _accrue(self, now: float) -> None:
        """Credit earned since the last look, up to an hour's worth (a quiet hour is not saved up for a burst)."""
        if self._balance_at is not None and now > self._balance_at:
            self._balance = min(self._balance + self._rate * (now - self._balance_at), self._rate * HOUR)
        self._balance_at = now if self._balance_at is None else max(now, self._balance_at)
