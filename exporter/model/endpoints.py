"""Endpoint outcomes of each test's latest completed run: which runs to read, and what their pages add up to.

A state machine with no event loop, like the run tracker. Per project it keeps, per test, the tally
of the run whose endpoint listing was read to the end (`EndpointTally`, kept in the project's data
and so in the state file: a terminal run never changes, so it is never read again) and the read in
progress of a newer one (`EndpointRead`: the next page and what the pages so far added up to).

Label values are bounded here. A group is one the test's configuration names (by name, or by its
position), or, while the configuration is not known, one of the first `MAX_GROUPS` seen; any other
is folded into `OTHER_GROUP`. An outcome CallMeter does not document is kept as itself, up to
`MAX_UNKNOWN_OUTCOMES` a run; others are folded into UNRECOGNIZED. Each read says how many values
it folded, for the cardinality counter and log line. An undocumented outcome a test's earlier run had
stays in its tally at 0 (up to the same cap), so its series goes to 0 rather than away.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..api.models import KNOWN_ENDPOINT_OUTCOMES, RunEndpoint, TestRun

MAX_GROUPS = 16
MAX_UNKNOWN_OUTCOMES = 4
OTHER_GROUP = "_other"
NO_GROUP = "_none"
NO_OUTCOME = "NONE"
"""An endpoint the listing gives no outcome for (CallMeter sets one when the endpoint ends)."""
FOLDED_OUTCOME = "UNRECOGNIZED"
MAX_PAGES = 1000
PER_PAGE = 100
RATE_WINDOW = 1800.0


@dataclass(frozen=True, slots=True)
class EndpointTally:
    """Endpoints of one completed run by (group, outcome), read to the last page."""

    run_id: str
    order_key: float | None
    counts: Mapping[tuple[str, str], int]
    groups: tuple[str, ...]
    """Every group label the tally has, in the order met (each shows every known outcome, 0 if none)."""
    read_at: float
    extra_outcomes: tuple[str, ...] = ()
    """Undocumented outcomes shown for every group: this run's, and those earlier runs of the test had."""


@dataclass
class EndpointRead:
    """The listing of one run being read, page by page."""

    run: TestRun
    wanted_at: float = 0.0
    """Loop time the run's listing became wanted (its pages age from then, as run details do)."""
    next_page: int = 1
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    folded_groups: set[str] = field(default_factory=set)
    folded_outcomes: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)

    @property
    def folded(self) -> int:
        return len(self.folded_groups) + len(self.folded_outcomes)


@dataclass
class ProjectEndpoints:
    done: dict[str, EndpointTally] = field(default_factory=dict)
    """Test id -> the tally of its latest completed run read so far."""
    reading: dict[str, EndpointRead] = field(default_factory=dict)
    """Test id -> the newer completed run being read (at most one a test: the newest)."""
    given_up: dict[str, float | None] = field(default_factory=dict)
    """Test id -> order key of a run whose listing kept failing: not wanted again (a newer run is)."""
    cold: bool = True


def _group_key(endpoint: RunEndpoint) -> str:
    if endpoint.group_name and endpoint.group_name.strip():
        return endpoint.group_name.strip()[:64]
    return str(endpoint.group_index) if endpoint.group_index is not None else NO_GROUP


def _newer(key: float | None, run_id: str, than_key: float | None, than_id: str) -> bool:
    if key == than_key:
        return run_id > than_id
    if key is None or than_key is None:
        return key is None
    return key > than_key


class EndpointTracker:
    """Every project's `ProjectEndpoints`, and the rate at which listing pages are wanted."""

    def __init__(self) -> None:
        self.projects: dict[str, ProjectEndpoints] = {}
        self._wants: deque[tuple[float, int]] = deque()  # (loop time, pages) of each warm want
        self._counting_since: float | None = None

    def of(self, project_id: str) -> ProjectEndpoints:
        return self.projects.setdefault(project_id, ProjectEndpoints())

    def drop(self, project_id: str) -> None:
        self.projects.pop(project_id, None)

    def restore(self, project_id: str, done: Mapping[str, EndpointTally]) -> None:
        state = self.of(project_id)
        state.done.update(done)
        state.cold = False

    @property
    def pending(self) -> int:
        return sum(len(p.reading) for p in self.projects.values())

    # -- what to read ------------------------------------------------------------------------

    def consider(self, project_id: str, completed: Mapping[str, TestRun], *, sizes: Mapping[str, int | None],
                 now: float) -> list[str]:
        """Take each test's latest completed run as the tracker knows it; the runs newly wanted.
        `sizes` is each test's endpoint count (what its listing will cost)."""
        state = self.of(project_id)
        wanted = []
        for test_id, run in completed.items():
            if run.status != "COMPLETED" or not self._is_new(state, test_id, run):
                continue
            state.reading[test_id] = EndpointRead(run, wanted_at=now)
            wanted.append(run.id)
            if not state.cold:
                self._wants.append((now, -(-(sizes.get(test_id) or 1) // PER_PAGE)))
                if self._counting_since is None:
                    self._counting_since = now
        state.cold = False
        return wanted

    def give_up(self, project_id: str, run_id: str) -> None:
        """Stop reading a run's listing (it keeps failing); the test's next completed run is read instead."""
        state = self.projects.get(project_id)
        found = self.next_read(project_id, run_id)
        if state is not None and found is not None:
            read = state.reading.pop(found[0])
            state.given_up[found[0]] = read.run.order_key

    @staticmethod
    def _is_new(state: ProjectEndpoints, test_id: str, run: TestRun) -> bool:
        if test_id in state.given_up:
            key = state.given_up[test_id]
            if not _newer(run.order_key, run.id, key, "") or run.order_key == key:
                return False
            del state.given_up[test_id]
        for known in (state.done.get(test_id), state.reading.get(test_id)):
            if known is None:
                continue
            known_id, known_key = (known.run_id, known.order_key) if isinstance(known, EndpointTally) else (
                known.run.id, known.run.order_key)
            if known_id == run.id or not _newer(run.order_key, run.id, known_key, known_id):
                return False
        return True

    def next_read(self, project_id: str, run_id: str) -> tuple[str, int] | None:
        """(test id, page) to read next for the run; None when it is no longer wanted."""
        state = self.projects.get(project_id)
        for test_id, read in (state.reading.items() if state else ()):
            if read.run.id == run_id:
                return test_id, read.next_page
        return None

    def wanted_runs(self, project_id: str) -> list[str]:
        state = self.projects.get(project_id)
        return [read.run.id for read in state.reading.values()] if state else []

    # -- what was read -----------------------------------------------------------------------

    def absorb_page(self, project_id: str, run_id: str, page: int, endpoints: list[RunEndpoint],
                    total_pages: int | None, *, groups: tuple[str, ...] = (), wall: float) -> EndpointRead | None:
        """Add one page of the run's listing. Returns the read when this page was its last (its tally is
        then done), else None. `groups` is the test's configured groups (empty when not known)."""
        state = self.projects.get(project_id)
        found = self.next_read(project_id, run_id)
        if state is None or found is None or found[1] != page:
            return None
        test_id, _ = found
        read = state.reading[test_id]
        before = len(read.seen)
        for number, endpoint in enumerate(endpoints):
            key = endpoint.id or f"#{page}:{number}"
            if key in read.seen:
                continue
            read.seen.add(key)
            label = (self._group(read, endpoint, groups), self._outcome(read, endpoint.outcome))
            read.counts[label] = read.counts.get(label, 0) + 1
        last = (not endpoints or total_pages is None or total_pages <= page or page >= MAX_PAGES
                or len(read.seen) == before)
        if not last:
            read.next_page = page + 1
            return None
        del state.reading[test_id]
        earlier = state.done.get(test_id)
        extra = [*sorted(read.unknown), *(earlier.extra_outcomes if earlier else ())]
        kept = tuple(dict.fromkeys(o for o in extra if o not in KNOWN_ENDPOINT_OUTCOMES))[:MAX_UNKNOWN_OUTCOMES]
        state.done[test_id] = EndpointTally(run_id, read.run.order_key, dict(read.counts), tuple(read.groups), wall,
                                            extra_outcomes=tuple(sorted(kept)))
        return read

    @staticmethod
    def _group(read: EndpointRead, endpoint: RunEndpoint, configured: tuple[str, ...]) -> str:
        raw = _group_key(endpoint)
        if configured:
            allowed = configured[:MAX_GROUPS]
            if raw in allowed:
                label = raw
            elif endpoint.group_index is not None and 0 <= endpoint.group_index < len(allowed):
                label = allowed[endpoint.group_index]
            else:
                label = OTHER_GROUP
        else:
            known = [g for g in read.groups if g != OTHER_GROUP]
            label = raw if raw in known or len(known) < MAX_GROUPS else OTHER_GROUP
        if label == OTHER_GROUP:
            read.folded_groups.add(raw)
        if label not in read.groups:
            read.groups.append(label)
        return label

    @staticmethod
    def _outcome(read: EndpointRead, outcome: str | None) -> str:
        if outcome is None:
            return NO_OUTCOME
        if outcome in KNOWN_ENDPOINT_OUTCOMES or outcome in read.unknown or outcome == FOLDED_OUTCOME:
            return outcome
        if len(read.unknown) < MAX_UNKNOWN_OUTCOMES:
            read.unknown.add(outcome)
            return outcome
        read.folded_outcomes.add(outcome)
        return FOLDED_OUTCOME

    # -- demand ------------------------------------------------------------------------------

    def pages_per_minute(self, now: float) -> float:
        """Listing pages wanted a minute over the last `RATE_WINDOW` (at least 10 minutes counted), cold
        starts aside: what a finished run's listing costs, times how often runs complete."""
        if self._counting_since is None:
            return 0.0
        while self._wants and self._wants[0][0] < now - RATE_WINDOW:
            self._wants.popleft()
        span = min(RATE_WINDOW, max(now - self._counting_since, 600.0))
        return sum(pages for _, pages in self._wants) * 60.0 / span
