"""The run tracker: what the exporter knows of test runs, as a state machine with no event loop.

Per project it keeps the run list's order and length, the latest run and the latest COMPLETED run of
each test, the runs whose details (the quality summary) are wanted, and which terminal runs were
counted. Across projects it keeps the finished-run counters and the rate at which details are wanted.
The poller reads pages as a `RunListing` says, hands them back, and turns the `DetailWant`s it gets
into jobs. A run's detail, wanted or fetched to see whether a running run has ended, updates the same
state as a listing would. Every method takes the time it needs as an argument, so tests drive it
directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field

from ..api.models import TestRun

COUNTED_RUNS_KEPT = 2000
DETAIL_RATE_WINDOW = 1800.0
"""Run details wanted are counted over this long: runs finish in bursts (several per listing), and
the plan's reserve for details must not swing with each burst."""


def newer(a: TestRun, b: TestRun) -> bool:
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
class ProjectRuns:
    """What one project's run listings and run details have shown."""

    latest_runs: dict[str, TestRun] = field(default_factory=dict)
    latest_completed: dict[str, TestRun] = field(default_factory=dict)
    detail_for_test: dict[str, str] = field(default_factory=dict)
    """Test id -> the run whose details are wanted (at most one per test: the newest)."""
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


@dataclass(frozen=True, slots=True)
class DetailWant:
    """A finished run whose details are wanted; it takes the place of `replaces` (an older run's want)."""

    run_id: str
    replaces: str | None = None


class RunListing:
    """Which pages of one project's run list to read, one at a time.

    Read `next_page`, hand its runs and the list's page count to `add`, until `next_page` is None;
    then `RunTracker.absorb_listing` takes the runs read."""

    def __init__(self, runs: ProjectRuns, *, lookback_pages: int, expected_tests: int | None) -> None:
        self._state = runs
        self._lookback = lookback_pages
        self._expected_tests = expected_tests
        self.pages: dict[int, list[TestRun]] = {}
        self.total = 1
        self.order: str | None = None
        self._steps = self._walk()
        self.next_page: int | None = next(self._steps)

    def add(self, runs: list[TestRun], total_pages: int) -> None:
        assert self.next_page is not None
        self.pages[self.next_page] = runs
        self.total = max(total_pages, 1)
        try:
            self.next_page = self._steps.send(None)
        except StopIteration:
            self.next_page = None

    @property
    def runs(self) -> list[TestRun]:
        return [run for n in sorted(self.pages) for run in self.pages[n]]

    def _walk(self) -> Generator[int, None, None]:
        state, pages, room = self._state, self.pages, self._lookback + 1
        first = state.run_pages if state.run_order == "asc" and state.run_pages else 1
        yield first
        self.order = detect_order(pages[first]) or state.run_order
        if self.order == "asc":
            # Oldest first: the newest runs are on the last page. Jump there from page 1, or read
            # forward from last cycle's last page to the pages added since.
            if first == 1 and self.total > 1:
                first = self.total
                yield first
            number = first
            while number < self.total and len(pages) < room:
                number += 1
                yield number
            number, step = first - 1, -1
        else:
            number, step = max(pages) + 1, 1
        # Then back in time while the runs read so far do not reach what we already know.
        while 1 <= number <= self.total and number not in pages and len(pages) < room and self._need_older():
            yield number
            number += step

    def _need_older(self) -> bool:
        runs, state = self.runs, self._state
        if not runs:
            return False
        if state.cold:
            completed = {r.test_id for r in runs if r.status == "COMPLETED"}
            return self._expected_tests is None or len(completed) < self._expected_tests
        ids = {r.id for r in runs}
        # An unfinished run pushed off the pages read (an oldest-first list puts it on the page before
        # the last) would otherwise finish unseen, its test stuck at RUNNING until its next run.
        return not any(r.id in state.seen_runs for r in runs) or not state.open_runs <= ids


class RunTracker:
    """Every project's `ProjectRuns`, the finished-run counters and the rate of wanted details."""

    def __init__(self, *, lookback_pages: int = 3, started_at: float | None = None,
                 projects: dict[str, ProjectRuns] | None = None,
                 finished: dict[tuple[str, str, str], int] | None = None, statuses: set[str] | None = None) -> None:
        """`projects`, `finished` and `statuses`: what a state file kept (`poll.state`)."""
        self.lookback_pages = lookback_pages
        self.started_at = started_at
        """Unix time the counting began: runs that finished before it are a baseline, not counted."""
        self.projects: dict[str, ProjectRuns] = projects or {}
        self.finished: dict[tuple[str, str, str], int] = finished or {}
        """(project label, test id, status) -> terminal runs observed."""
        self.statuses: set[str] = statuses or set()
        self._detail_wants: deque[float] = deque()  # when each detail was wanted (loop time)
        self._counting_since: float | None = None  # the first warm run listing: wants are counted from here
        self._watching_since: float | None = None  # Unix time of the first listing or detail taken
        self._results: list[float] = []

    def load(self, saved: RunTracker) -> None:
        """Take over a restored tracker's state, keeping this object (the schedule holds it)."""
        lookback = self.lookback_pages
        self.__dict__.update(saved.__dict__)
        self.lookback_pages = lookback

    def of(self, project_id: str) -> ProjectRuns:
        return self.projects.setdefault(project_id, ProjectRuns())

    def drop(self, project_id: str) -> None:
        self.projects.pop(project_id, None)

    @property
    def details_pending(self) -> int:
        return sum(len(p.detail_for_test) for p in self.projects.values())

    def listing(self, project_id: str, *, expected_tests: int | None) -> RunListing:
        return RunListing(self.of(project_id), lookback_pages=self.lookback_pages, expected_tests=expected_tests)

    def absorb_listing(self, project_id: str, label: str, listing: RunListing, *, now: float, wall: float
                       ) -> list[DetailWant]:
        """Take what a listing read; `now` is loop time (the detail rate), `wall` Unix time (counted runs)."""
        state = self.projects.get(project_id)
        if state is None:  # the project was dropped while its runs were read
            return []
        state.run_order, state.run_pages = listing.order, listing.total
        if not state.cold:  # a cold start reads back further, once
            state.pages_per_listing += 0.2 * (len(listing.pages) - state.pages_per_listing)
            if self._counting_since is None:
                self._counting_since = now
        wants = self._absorb_runs(state, label, listing.runs, now=now, wall=wall)
        state.cold = False
        return wants

    def _absorb_runs(self, state: ProjectRuns, label: str, runs: list[TestRun], *, now: float, wall: float
                     ) -> list[DetailWant]:
        wants: list[DetailWant] = []
        self._watching(wall)
        for run in runs:
            if run.test_id is None:
                continue
            self._latest(state, run)
            self._count(state, label, run, wall=wall)
            if run.status == "COMPLETED":
                want = self._want_detail(state, run, now=now)
                if want is not None:
                    wants.append(want)
        state.seen_runs = frozenset(r.id for r in runs)
        state.open_runs = frozenset(r.id for r in runs if not r.terminal)
        self._trim_counted(state)
        return wants

    def _watching(self, wall: float) -> None:
        if self._watching_since is None:
            self._watching_since = wall

    def _latest(self, state: ProjectRuns, run: TestRun) -> None:
        assert run.test_id is not None
        if run.status:
            self.statuses.add(run.status)
        latest = state.latest_runs.get(run.test_id)
        if latest is None or latest.id == run.id or newer(run, latest):
            state.latest_runs[run.test_id] = run

    def _count(self, state: ProjectRuns, label: str, run: TestRun, *, wall: float) -> None:
        """Count a terminal run once; a run that failed is a final result as soon as it is seen."""
        assert run.test_id is not None
        if run.terminal and run.status and run.id not in state.counted and (
                run.order_key is None or run.order_key >= state.count_floor):
            if not (state.cold and self._finished_before_start(run)):
                key = (label, run.test_id, run.status)
                self.finished[key] = self.finished.get(key, 0) + 1
            state.counted[run.id] = run.order_key or wall
            if run.status != "COMPLETED":
                self._result(run)

    def _result(self, run: TestRun) -> None:
        """A run's final result (status, and summary when it completed) is known now."""
        ended = run.completed_at
        if ended is not None and self._watching_since is not None and ended >= self._watching_since:
            self._results.append(ended)

    def take_results(self) -> list[float]:
        """completedAt of each run whose final result became known since the last call, among the runs
        that ended while the exporter was watching (what `observation_delay_seconds` measures)."""
        results, self._results = self._results, []
        return results
    def _finished_before_start(self, run: TestRun) -> bool:
        """A run already terminal in a project's first listing is history (a baseline), unless CallMeter
        says it completed after counting began: a restart must never count a project's history again."""
        if self.started_at is None:
            return False
        return run.completed_at is None or run.completed_at <= self.started_at

    @staticmethod
    def _trim_counted(state: ProjectRuns) -> None:
        if len(state.counted) > COUNTED_RUNS_KEPT:
            ordered = sorted(state.counted.items(), key=lambda item: item[1])
            drop = ordered[: len(ordered) - COUNTED_RUNS_KEPT // 2]
            state.count_floor = drop[-1][1]
            for run_id, _ in drop:
                del state.counted[run_id]

    def _want_detail(self, state: ProjectRuns, run: TestRun, *, now: float) -> DetailWant | None:
        assert run.test_id is not None
        current = state.latest_completed.get(run.test_id)
        if current is not None and (current.id == run.id or not newer(run, current)):
            return None  # a terminal run never changes: its details are fetched once
        if run.summary is not None:
            state.latest_completed[run.test_id] = run
            self._result(run)
            return None
        pending = state.detail_for_test.get(run.test_id)
        if pending == run.id:
            return None
        if pending is not None:
            older = state.wanted_runs.get(pending)
            if older is not None and not newer(run, older):
                return None
            state.wanted_runs.pop(pending, None)
        if not state.cold:  # a cold start's catch-up happens once: it is not part of the rate
            self._detail_wants.append(now)
        state.detail_for_test[run.test_id] = run.id
        state.wanted_runs[run.id] = run
        return DetailWant(run.id, replaces=pending)

    def absorb_detail(self, project_id: str, label: str, run: TestRun, *, wall: float) -> None:
        """Take one run's detail: a finished run's quality summary, or a look at a running run that may
        have ended since. Either way it is the run's newest state, as a listing would show it."""
        state = self.projects.get(project_id)
        if state is None:
            return
        state.wanted_runs.pop(run.id, None)
        if run.test_id is None:
            return
        self._watching(wall)
        self._latest(state, run)
        self._count(state, label, run, wall=wall)
        if state.detail_for_test.get(run.test_id) == run.id:
            del state.detail_for_test[run.test_id]
        current = state.latest_completed.get(run.test_id)
        if run.status == "COMPLETED" and (current is None or current.id == run.id or newer(run, current)):
            if current is None or current.id != run.id:
                self._result(run)
            state.latest_completed[run.test_id] = run

    def details_per_minute(self, now: float) -> float:
        """Run details wanted a minute over the last `DETAIL_RATE_WINDOW` (at least 10 minutes counted,
        so that the first few wants do not look like a flood)."""
        if self._counting_since is None:
            return 0.0
        while self._detail_wants and self._detail_wants[0] < now - DETAIL_RATE_WINDOW:
            self._detail_wants.popleft()
        span = min(DETAIL_RATE_WINDOW, max(now - self._counting_since, 600.0))
        return len(self._detail_wants) * 60.0 / span
