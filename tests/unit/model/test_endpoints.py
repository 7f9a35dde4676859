"""The endpoint tracker: which completed runs to read, page by page, and the bounded tally they make."""

from __future__ import annotations

from typing import Any

from exporter.api.models import RunEndpoint, TestRun
from exporter.model.endpoints import MAX_GROUPS, MAX_UNKNOWN_OUTCOMES, OTHER_GROUP, EndpointTracker

P = "proj"


def run(run_id: str, created: str, status: str = "COMPLETED") -> TestRun:
    return TestRun.model_validate({"id": run_id, "testId": "t1", "status": status, "createdAt": created})


def endpoints(*rows: tuple[Any, ...]) -> list[RunEndpoint]:
    """(id, group name, outcome) or (id, group name, outcome, group index)."""
    return [RunEndpoint.model_validate({"id": r[0], "groupName": r[1], "outcome": r[2],
                                        "groupIndex": r[3] if len(r) > 3 else None}) for r in rows]


def test_each_tests_newest_completed_run_is_wanted_once() -> None:
    tracker = EndpointTracker()
    first = run("r1", "2026-01-15T10:00:00Z")
    assert tracker.consider(P, {"t1": first}, sizes={"t1": 250}, now=0) == ["r1"]
    assert tracker.consider(P, {"t1": first}, sizes={}, now=1) == []
    assert tracker.consider(P, {"t1": run("r0", "2026-01-15T09:00:00Z")}, sizes={}, now=2) == []  # older
    assert tracker.consider(P, {"t2": run("x", "2026-01-15T10:00:00Z", "FAILED")}, sizes={}, now=3) == []
    # A newer run takes the older one's place before its listing was read.
    assert tracker.consider(P, {"t1": run("r2", "2026-01-15T11:00:00Z")}, sizes={}, now=4) == ["r2"]
    assert tracker.next_read(P, "r1") is None
    assert tracker.next_read(P, "r2") == ("t1", 1)


def test_pages_add_up_and_the_last_one_completes_the_tally() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    page1 = endpoints(("e1", "Callers", "SUCCESS"), ("e2", "Callees", "CALL_FAILED"))
    assert tracker.absorb_page(P, "r1", 1, page1, 2, wall=10.0) is None
    assert tracker.next_read(P, "r1") == ("t1", 2)
    assert tracker.absorb_page(P, "r1", 1, page1, 2, wall=10.0) is None  # a page already read: ignored
    page2 = endpoints(("e2", "Callees", "CALL_FAILED"), ("e3", "Callers", "SUCCESS"), ("e4", "Callees", None))
    assert tracker.absorb_page(P, "r1", 2, page2, 2, wall=11.0) is not None
    tally = tracker.of(P).done["t1"]
    assert tally.run_id == "r1" and tally.read_at == 11.0
    assert dict(tally.counts) == {("Callers", "SUCCESS"): 2, ("Callees", "CALL_FAILED"): 1, ("Callees", "NONE"): 1}
    assert tally.groups == ("Callers", "Callees")
    assert tracker.next_read(P, "r1") is None
    # A terminal run never changes: the same run is not wanted again.
    assert tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=1) == []


def test_a_listing_without_pagination_or_repeating_itself_stops() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    assert tracker.absorb_page(P, "r1", 1, endpoints(("e1", "A", "SUCCESS")), None, wall=1.0) is not None
    tracker.consider(P, {"t1": run("r2", "2026-01-15T11:00:00Z")}, sizes={}, now=0)
    assert tracker.absorb_page(P, "r2", 1, endpoints(("e1", "A", "SUCCESS")), 9, wall=1.0) is None
    assert tracker.absorb_page(P, "r2", 2, endpoints(("e1", "A", "SUCCESS")), 9, wall=1.0) is not None


def test_groups_are_the_configured_ones_by_name_or_position_and_others_fold() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    page = endpoints(("e1", "Callers", "SUCCESS", 0), ("e2", None, "SUCCESS", 1), ("e3", "Intruders", "TIMEOUT", 7),
                     ("e4", "Rogue", "SUCCESS", None))
    read = tracker.absorb_page(P, "r1", 1, page, 1, groups=("Callers", "Callees"), wall=1.0)
    assert read is not None and read.folded == 2
    tally = tracker.of(P).done["t1"]
    assert dict(tally.counts) == {("Callers", "SUCCESS"): 1, ("Callees", "SUCCESS"): 1,
                                  (OTHER_GROUP, "TIMEOUT"): 1, (OTHER_GROUP, "SUCCESS"): 1}


def test_without_a_configuration_the_first_groups_are_kept_up_to_the_cap() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    page = endpoints(*((f"e{i}", f"G{i}", "SUCCESS") for i in range(MAX_GROUPS + 3)))
    read = tracker.absorb_page(P, "r1", 1, page, 1, wall=1.0)
    assert read is not None and read.folded == 3
    tally = tracker.of(P).done["t1"]
    assert len(tally.groups) == MAX_GROUPS + 1 and tally.groups[-1] == OTHER_GROUP
    assert tally.counts[(OTHER_GROUP, "SUCCESS")] == 3


def test_undocumented_outcomes_are_kept_as_themselves_up_to_the_cap() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    odd = [f"ODD_{i}" for i in range(MAX_UNKNOWN_OUTCOMES + 2)]
    page = endpoints(("a", "G", "MEDIA_TIMEOUT"), ("b", "G", "MEDIA_TIMEOUT"),
                     *((f"e{i}", "G", name) for i, name in enumerate(odd)), ("z", "G", "not a word!"))
    read = tracker.absorb_page(P, "r1", 1, page, 1, wall=1.0)
    assert read is not None and read.folded == 3  # ODD_3, ODD_4, ODD_5
    counts = tracker.of(P).done["t1"].counts
    assert counts[("G", "MEDIA_TIMEOUT")] == 2
    assert {o for _, o in counts} == {"MEDIA_TIMEOUT", "ODD_0", "ODD_1", "ODD_2", "UNRECOGNIZED"}
    assert counts[("G", "UNRECOGNIZED")] == 4  # three folded, and the garbled word


def test_an_undocumented_outcome_an_earlier_run_had_stays_in_the_next_tally() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    tracker.absorb_page(P, "r1", 1, endpoints(("a", "G", "MEDIA_TIMEOUT"), ("b", "G", "SUCCESS")), 1, wall=1.0)
    tracker.consider(P, {"t1": run("r2", "2026-01-15T11:00:00Z")}, sizes={}, now=0)
    tracker.absorb_page(P, "r2", 1, endpoints(("a", "G", "ODD"), ("b", "G", "SUCCESS")), 1, wall=2.0)
    tally = tracker.of(P).done["t1"]
    assert tally.run_id == "r2" and tally.extra_outcomes == ("MEDIA_TIMEOUT", "ODD")
    assert ("G", "MEDIA_TIMEOUT") not in tally.counts


def test_a_run_given_up_is_not_wanted_again_but_the_next_one_is() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=0)
    tracker.give_up(P, "r1")
    assert tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={}, now=1) == []
    assert tracker.consider(P, {"t1": run("r2", "2026-01-15T11:00:00Z")}, sizes={}, now=2) == ["r2"]


def test_pages_wanted_a_minute_count_warm_wants_only() -> None:
    tracker = EndpointTracker()
    tracker.consider(P, {"t1": run("r1", "2026-01-15T10:00:00Z")}, sizes={"t1": 500}, now=0)  # cold start
    assert tracker.pages_per_minute(600) == 0
    for minute in range(1, 11):
        created = f"2026-01-15T11:{minute:02d}:00Z"
        tracker.consider(P, {"t1": run(f"r{minute + 1}", created)}, sizes={"t1": 450}, now=60.0 * minute)
    # Ten runs of 450 endpoints (5 pages each) in ten minutes.
    assert tracker.pages_per_minute(600) == 5.0
