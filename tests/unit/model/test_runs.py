"""The run tracker, driven directly: no event loop, no client, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.api.models import TestRun
from exporter.model.runs import COUNTED_RUNS_KEPT, RunListing, RunTracker, detect_order, newer

T0 = 1_800_000_000.0


def run(run_id: str, test: str, at: float, status: str = "COMPLETED", **extra: Any) -> TestRun:
    created = datetime.fromtimestamp(at, UTC).isoformat()
    return TestRun.model_validate({"id": run_id, "testId": test, "status": status, "createdAt": created, **extra})


def read(listing: RunListing, pages: dict[int, list[TestRun]]) -> list[int]:
    """Feed a listing the pages it asks for; return the page numbers in the order asked."""
    asked = []
    while listing.next_page is not None:
        asked.append(listing.next_page)
        listing.add(pages.get(listing.next_page, []), len(pages))
    return asked


def newest_first(runs: list[TestRun], per_page: int) -> dict[int, list[TestRun]]:
    ordered = sorted(runs, key=lambda r: r.order_key or 0, reverse=True)
    return {n + 1: ordered[i:i + per_page] for n, i in enumerate(range(0, len(ordered), per_page))}


def test_order_is_told_by_the_timestamps_of_a_page() -> None:
    a, b = run("a", "t", T0), run("b", "t", T0 + 1)
    assert detect_order([a, b]) == "asc" and detect_order([b, a]) == "desc"
    assert detect_order([a]) is None and detect_order([a, run("c", "t", T0)]) is None
    assert newer(b, a) and not newer(a, b)
    assert newer(TestRun.model_validate({"id": "p", "testId": "t", "status": "PENDING"}), b)


def test_cold_start_reads_back_until_every_test_has_a_completed_run() -> None:
    tracker = RunTracker(lookback_pages=5)
    tracker.of("p")
    # test "b" last completed long ago: only page 3 has it.
    history = [run(f"a{i}", "a", T0 + 100 - i) for i in range(6)] + [run("b0", "b", T0)]
    pages = newest_first(history, per_page=3)
    listing = tracker.listing("p", expected_tests=2)
    assert read(listing, pages) == [1, 2, 3]
    wants = tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0 + 200)
    assert {w.run_id for w in wants} == {"a0", "b0"}  # the newest completed run of each test


def test_a_warm_listing_reads_one_page_when_it_reaches_known_runs() -> None:
    tracker = RunTracker(lookback_pages=3)
    tracker.of("p")
    runs = [run(f"r{i}", "a", T0 + i) for i in range(5)]
    listing = tracker.listing("p", expected_tests=1)
    read(listing, newest_first(runs, 10))
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    runs.append(run("r5", "a", T0 + 5))
    listing = tracker.listing("p", expected_tests=1)
    assert read(listing, newest_first(runs, 3)) == [1]


def test_oldest_first_lists_jump_to_the_last_page() -> None:
    tracker = RunTracker(lookback_pages=1)
    tracker.of("p")
    runs = [run(f"r{i}", "a", T0 + i) for i in range(9)]
    pages = {n + 1: runs[i:i + 3] for n, i in enumerate(range(0, 9, 3))}
    listing = tracker.listing("p", expected_tests=1)
    assert read(listing, pages) == [1, 3]  # the newest page; the test's latest run is there
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.of("p").latest_runs["a"].id == "r8"
    assert tracker.of("p").run_pages == 3 and tracker.of("p").run_order == "asc"


def test_terminal_runs_are_counted_once_and_a_newer_run_replaces_a_wanted_detail() -> None:
    tracker = RunTracker()
    tracker.of("p")

    def listing_of(runs: list[TestRun]) -> list[Any]:
        listing = tracker.listing("p", expected_tests=1)
        read(listing, {1: runs})
        return tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)

    first = run("r1", "a", T0, summary=None)
    wants = listing_of([first, run("f1", "a", T0 - 1, status="FAILED")])
    assert [w.run_id for w in wants] == ["r1"] and wants[0].replaces is None
    second = run("r2", "a", T0 + 10)
    wants = listing_of([second, first])
    assert [(w.run_id, w.replaces) for w in wants] == [("r2", "r1")]
    assert tracker.finished == {("proj", "a", "COMPLETED"): 2, ("proj", "a", "FAILED"): 1}
    assert tracker.details_pending == 1
    tracker.absorb_detail("p", "proj", run("r2", "a", T0 + 10, summary={"avgMos": 4.1}), wall=T0 + 20)
    assert tracker.details_pending == 0
    assert tracker.of("p").latest_completed["a"].summary is not None


def test_counted_runs_are_trimmed_and_older_runs_never_recounted() -> None:
    tracker = RunTracker()
    state = tracker.of("p")
    runs = [run(f"r{i}", "a", T0 + i, summary={"avgMos": 4.0}) for i in range(COUNTED_RUNS_KEPT + 1)]
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: runs})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert len(state.counted) == COUNTED_RUNS_KEPT // 2
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: runs[:10]})  # forgotten, but older than the floor: not counted again
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.finished[("proj", "a", "COMPLETED")] == COUNTED_RUNS_KEPT + 1


def test_a_dropped_project_is_not_brought_back_by_a_late_listing() -> None:
    tracker = RunTracker()
    tracker.of("p")
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [run("r1", "a", T0, summary=None)]})
    tracker.drop("p")
    assert tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0) == []
    assert "p" not in tracker.projects


def test_the_detail_rate_leaves_out_the_cold_start_and_old_wants() -> None:
    tracker = RunTracker()
    tracker.of("p")
    for i in range(3):
        listing = tracker.listing("p", expected_tests=1)
        read(listing, {1: [run(f"r{i}", "a", T0 + i, summary=None)]})
        tracker.absorb_listing("p", "proj", listing, now=60.0 * i, wall=T0)
    assert tracker.details_per_minute(600.0) == 2 * 60.0 / 600.0  # the cold start's want is not counted
    assert tracker.details_per_minute(600.0 + 1800.0 + 121) == 0.0


def test_a_detail_that_shows_a_run_ended_updates_the_latest_run_and_counts_it_once() -> None:
    """A running run's detail, read when it should have ended: the latest run and latest completed run
    update at once, and the listing that shows it later counts nothing twice."""
    tracker = RunTracker()
    tracker.of("p")
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [run("r0", "a", T0 - 100, summary={"avgMos": 4.0}, completedAt="2027-01-15T07:58:20Z")]})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    listing = tracker.listing("p", expected_tests=1)
    running = run("r1", "a", T0, status="RUNNING")
    read(listing, {1: [running, run("r0", "a", T0 - 100, summary={"avgMos": 4.0})]})
    tracker.absorb_listing("p", "proj", listing, now=60.0, wall=T0 + 10)
    assert tracker.of("p").latest_runs["a"].status == "RUNNING"
    tracker.absorb_detail("p", "proj", run("r1", "a", T0, status="RUNNING"), wall=T0 + 30)
    assert tracker.finished == {("proj", "a", "COMPLETED"): 1} and tracker.take_results() == []
    ended = datetime.fromtimestamp(T0 + 40, UTC).isoformat()
    done = run("r1", "a", T0, summary={"avgMos": 4.2}, completedAt=ended)
    tracker.absorb_detail("p", "proj", done, wall=T0 + 45)
    state = tracker.of("p")
    assert state.latest_runs["a"].status == "COMPLETED"
    assert state.latest_completed["a"].id == "r1" and state.latest_completed["a"].summary is not None
    assert tracker.finished == {("proj", "a", "COMPLETED"): 2}
    assert tracker.take_results() == [T0 + 40]  # the run ended while watched: its freshness is measured
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [run("r1", "a", T0, summary=None, completedAt=ended)]})
    assert tracker.absorb_listing("p", "proj", listing, now=120.0, wall=T0 + 60) == []  # nothing left to want
    assert tracker.finished == {("proj", "a", "COMPLETED"): 2} and tracker.take_results() == []


def test_a_failed_run_is_a_result_when_first_seen_and_old_runs_are_not_measured() -> None:
    tracker = RunTracker()
    tracker.of("p")
    listing = tracker.listing("p", expected_tests=1)
    before = datetime.fromtimestamp(T0 - 50, UTC).isoformat()
    read(listing, {1: [run("f0", "a", T0 - 100, status="FAILED", completedAt=before)]})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.take_results() == []  # it ended before the exporter looked
    listing = tracker.listing("p", expected_tests=1)
    after = datetime.fromtimestamp(T0 + 20, UTC).isoformat()
    read(listing, {1: [run("f1", "a", T0, status="FAILED", completedAt=after),
                       run("f0", "a", T0 - 100, status="FAILED", completedAt=before)]})
    tracker.absorb_listing("p", "proj", listing, now=60.0, wall=T0 + 30)
    assert tracker.take_results() == [T0 + 20]


# -- the edges of the listing walk and the tracker (mutation testing found these untested) ---------------


def test_newer_breaks_ties_by_id_and_a_run_without_time_is_the_newest() -> None:
    a, b = run("a", "t", T0), run("b", "t", T0)
    assert newer(b, a) and not newer(a, b) and not newer(a, a)
    pending = TestRun.model_validate({"id": "p", "testId": "t", "status": "PENDING"})
    assert newer(pending, a) and not newer(a, pending)


def test_order_is_read_from_the_first_and_last_run_of_a_page() -> None:
    assert detect_order([run("a", "t", T0 + 2), run("b", "t", T0 + 1), run("c", "t", T0 + 3)]) == "asc"
    assert detect_order([run("a", "t", T0 + 1), run("b", "t", T0 + 3), run("c", "t", T0 + 1)]) is None


def test_a_cold_listing_reads_back_at_most_its_lookback_and_one_page() -> None:
    tracker = RunTracker(lookback_pages=2)
    tracker.of("p")
    history = [run(f"a{i}", "a", T0 + 100 - i) for i in range(12)]  # test "b" has no completed run anywhere
    assert read(tracker.listing("p", expected_tests=2), newest_first(history, per_page=2)) == [1, 2, 3]
    tracker = RunTracker(lookback_pages=2)
    tracker.of("p")
    # Without the number of tests, a cold listing reads as far back as it may.
    assert read(tracker.listing("p", expected_tests=None), newest_first(history, per_page=2)) == [1, 2, 3]


def test_a_cold_listing_stops_once_every_test_has_a_completed_run() -> None:
    tracker = RunTracker(lookback_pages=5)
    tracker.of("p")
    history = [run("a1", "a", T0 + 9, "RUNNING"), run("b1", "b", T0 + 8),  # page 1: b completed, a running
               run("a0", "a", T0 + 7), run("x", "b", T0 + 6)]              # page 2: a completed
    assert read(tracker.listing("p", expected_tests=2), newest_first(history, per_page=2)) == [1, 2]
    tracker = RunTracker(lookback_pages=5)
    tracker.of("p")
    assert read(tracker.listing("p", expected_tests=1), newest_first(history, per_page=2)) == [1]


def test_a_one_page_list_is_read_once() -> None:
    tracker = RunTracker(lookback_pages=5)
    tracker.of("p")
    assert read(tracker.listing("p", expected_tests=3), {1: [run("a0", "a", T0)]}) == [1]


def test_a_warm_listing_reads_back_to_an_unfinished_run_pushed_off_the_first_page() -> None:
    tracker = RunTracker(lookback_pages=3)
    tracker.of("p")
    runs = [run("r0", "a", T0, "RUNNING"), run("r1", "b", T0 + 1)]
    listing = tracker.listing("p", expected_tests=2)
    read(listing, newest_first(runs, 10))
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.of("p").open_runs == {"r0"}
    runs += [run("r2", "b", T0 + 2), run("r3", "b", T0 + 3)]
    # Page 1 (r3, r2) holds no run seen before: read on; page 2 (r1, r0) has them and the open r0.
    assert read(tracker.listing("p", expected_tests=2), newest_first(runs, 2)) == [1, 2]
    runs = [run("r2", "b", T0 + 2), run("r1", "b", T0 + 1), run("r0", "a", T0)]
    # Page 1 holds r1, seen before, but not the open r0: read on to find it.
    assert read(tracker.listing("p", expected_tests=2), newest_first(runs, 2)) == [1, 2]


def test_an_oldest_first_list_reads_on_from_last_cycles_last_page() -> None:
    tracker = RunTracker(lookback_pages=3)
    state = tracker.of("p")
    state.cold, state.run_order, state.run_pages = False, "asc", 2
    state.seen_runs = frozenset({"r3", "r4", "r5"})
    runs = [run(f"r{i}", "a", T0 + i) for i in range(12)]
    pages = {n + 1: runs[i:i + 3] for n, i in enumerate(range(0, 12, 3))}
    assert read(tracker.listing("p", expected_tests=1), pages) == [2, 3, 4]


def test_the_pages_a_listing_costs_are_averaged_over_warm_listings_only() -> None:
    tracker = RunTracker(lookback_pages=5)
    tracker.of("p")
    runs = [run(f"r{i}", "a", T0 + i) for i in range(9)]
    listing = tracker.listing("p", expected_tests=2)  # cold: reads back further, and is not averaged
    assert read(listing, newest_first(runs, 3)) == [1, 2, 3]
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.of("p").pages_per_listing == 1.0 and tracker.of("p").cold is False
    runs += [run(f"n{i}", "a", T0 + 10 + i) for i in range(6)]
    listing = tracker.listing("p", expected_tests=2)
    assert read(listing, newest_first(runs, 3)) == [1, 2, 3]  # two new pages, then the known runs
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.of("p").pages_per_listing == pytest.approx(1.0 + 0.2 * (3 - 1.0))


def test_a_run_finished_exactly_when_counting_began_is_history() -> None:
    tracker = RunTracker(lookback_pages=1, started_at=T0)
    tracker.of("p")
    done = [run("at", "a", T0 - 50, completedAt=datetime.fromtimestamp(T0, UTC).isoformat()),
            run("after", "b", T0 - 40, completedAt=datetime.fromtimestamp(T0 + 1, UTC).isoformat())]
    listing = tracker.listing("p", expected_tests=2)
    read(listing, {1: done})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0 + 10)
    assert tracker.finished == {("proj", "b", "COMPLETED"): 1}


def asc_state(tracker: RunTracker, *, run_pages: int, seen: set[str], open_runs: set[str]) -> None:
    state = tracker.of("p")
    state.cold, state.run_order, state.run_pages = False, "asc", run_pages
    state.seen_runs, state.open_runs = frozenset(seen), frozenset(open_runs)


def oldest_first(count: int, per_page: int) -> dict[int, list[TestRun]]:
    runs = [run(f"r{i}", "a", T0 + i) for i in range(count)]
    return {n + 1: runs[i:i + per_page] for n, i in enumerate(range(0, count, per_page))}


def test_an_oldest_first_list_of_one_page_is_read_once() -> None:
    tracker = RunTracker(lookback_pages=3)
    tracker.of("p")
    assert read(tracker.listing("p", expected_tests=1), oldest_first(3, per_page=3)) == [1]


def test_an_oldest_first_list_reads_forward_no_further_than_its_lookback() -> None:
    tracker = RunTracker(lookback_pages=2)
    asc_state(tracker, run_pages=2, seen={"r3"}, open_runs=set())
    assert read(tracker.listing("p", expected_tests=1), oldest_first(30, per_page=3)) == [2, 3, 4]


def test_an_oldest_first_list_reads_back_page_by_page_to_an_open_run() -> None:
    tracker = RunTracker(lookback_pages=3)
    asc_state(tracker, run_pages=3, seen={"r0", "r1"}, open_runs={"r0"})
    assert read(tracker.listing("p", expected_tests=1), oldest_first(9, per_page=3)) == [3, 2, 1]


def test_an_empty_first_page_ends_the_listing() -> None:
    tracker = RunTracker(lookback_pages=3)
    tracker.of("p")
    listing = tracker.listing("p", expected_tests=2)
    assert listing.next_page == 1
    listing.add([], 3)  # the list emptied while it was read
    assert listing.next_page is None


def test_a_cold_listing_whose_first_page_completes_every_test_reads_no_more() -> None:
    tracker = RunTracker(lookback_pages=3)
    tracker.of("p")
    pages = newest_first([run("a1", "a", T0 + 3), run("b1", "b", T0 + 2), run("a0", "a", T0 + 1),
                          run("b0", "b", T0)], per_page=2)
    assert read(tracker.listing("p", expected_tests=2), pages) == [1]


def test_a_page_of_only_the_open_runs_already_seen_is_enough() -> None:
    tracker = RunTracker(lookback_pages=3)
    state = tracker.of("p")
    state.cold, state.seen_runs, state.open_runs = False, frozenset({"r1"}), frozenset({"r1"})
    pages = {1: [run("r1", "a", T0 + 1, "RUNNING")], 2: [run("r0", "a", T0)]}
    assert read(tracker.listing("p", expected_tests=1), pages) == [1]


def test_dropping_a_project_the_tracker_does_not_know_is_harmless() -> None:
    tracker = RunTracker()
    tracker.drop("nowhere")
    assert tracker.projects == {}


def test_a_run_without_a_test_is_skipped_not_the_rest_of_its_page() -> None:
    tracker = RunTracker()
    tracker.of("p")
    orphan = TestRun.model_validate({"id": "o", "status": "FAILED", "createdAt": "2027-01-15T08:00:10Z"})
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [orphan, run("r1", "a", T0, "FAILED")]})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert tracker.finished == {("proj", "a", "FAILED"): 1} and tracker.statuses == {"FAILED"}


def test_a_terminal_run_without_timestamps_is_counted_at_the_time_it_was_seen() -> None:
    tracker = RunTracker()
    state = tracker.of("p")
    timeless = TestRun.model_validate({"id": "t1", "testId": "a", "status": "FAILED"})
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [timeless]})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0 + 7)
    assert state.counted == {"t1": T0 + 7}
    tracker.absorb_detail("p", "proj", TestRun.model_validate({"id": "t2", "testId": "a", "status": "FAILED"}),
                          wall=T0 + 9)
    assert state.counted["t2"] == T0 + 9


def test_trimming_keeps_the_newest_by_time_and_floors_at_the_newest_dropped() -> None:
    tracker = RunTracker()
    state = tracker.of("p")
    # Ids sort against time: the trim must go by time.
    runs = [run(f"r{COUNTED_RUNS_KEPT - i:05d}", "a", T0 + i, "FAILED") for i in range(COUNTED_RUNS_KEPT)]
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: runs})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert len(state.counted) == COUNTED_RUNS_KEPT  # at the bound: nothing trimmed yet
    listing = tracker.listing("p", expected_tests=1)
    read(listing, {1: [run("newest", "a", T0 + COUNTED_RUNS_KEPT, "FAILED")]})
    tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0)
    assert len(state.counted) == COUNTED_RUNS_KEPT // 2
    kept = sorted(state.counted.values())
    assert kept[0] == T0 + COUNTED_RUNS_KEPT // 2 + 1 and kept[-1] == T0 + COUNTED_RUNS_KEPT
    assert state.count_floor == T0 + COUNTED_RUNS_KEPT // 2


def test_a_newer_completed_run_without_summary_is_wanted_and_replaces_the_older_want() -> None:
    tracker = RunTracker()
    state = tracker.of("p")
    for name, at, summary in (("r1", T0, {"avgMos": 4.0}), ("r2", T0 + 10, None), ("r3", T0 + 20, None)):
        listing = tracker.listing("p", expected_tests=1)
        read(listing, {1: [run(name, "a", at, summary=summary)]})
        tracker.absorb_listing("p", "proj", listing, now=0.0, wall=T0 + 30)
        if name == "r1":
            assert state.latest_completed["a"].id == "r1"  # its summary came with the listing
    assert state.detail_for_test == {"a": "r3"} and set(state.wanted_runs) == {"r3"}
    tracker.absorb_detail("p", "proj", run("r3", "a", T0 + 20, summary={"avgMos": 3.0}), wall=T0 + 40)
    assert state.wanted_runs == {} and state.latest_completed["a"].id == "r3"
    tracker.absorb_detail("p", "proj", run("r2", "a", T0 + 10, summary={"avgMos": 2.0}), wall=T0 + 41)
    assert state.latest_completed["a"].id == "r3"  # an older run's late detail does not take its place


def test_a_detail_that_comes_first_starts_the_watch_for_results() -> None:
    tracker = RunTracker()
    tracker.of("p")
    done = run("r1", "a", T0, "FAILED", completedAt=datetime.fromtimestamp(T0 + 5, UTC).isoformat())
    tracker.absorb_detail("p", "proj", done, wall=T0)
    assert tracker.take_results() == [T0 + 5]


def test_the_detail_rate_is_zero_before_counting_and_keeps_a_want_exactly_a_window_old() -> None:
    tracker = RunTracker()
    assert tracker.details_per_minute(1000.0) == 0.0
    tracker.of("p")
    for i in range(3):
        listing = tracker.listing("p", expected_tests=1)
        read(listing, {1: [run(f"r{i}", "a", T0 + i, summary=None)]})
        tracker.absorb_listing("p", "proj", listing, now=60.0 * i, wall=T0)
    assert tracker.details_per_minute(60.0 + 1800.0) == 2 * 60.0 / 1800.0
