"""Reads below the plan: the detail queue, the pace, the modes, failed listings (no event loop)."""

from __future__ import annotations

from exporter.api.models import Probe, Project, Test, TestRun
from exporter.model.details import ProbeDetail
from exporter.model.kinds import ENDPOINTS, PROBE_DETAILS, TEST_DETAILS
from exporter.model.runs import ProjectRuns
from exporter.model.snapshot import ProjectData
from exporter.schedule.spare import ENDPOINT_RETRIES, ROOM_USE, Spare

PROJECT = Project.model_validate({"id": "p"})
RUN = TestRun.model_validate({"id": "r1", "testId": "t1", "status": "COMPLETED", "createdAt": "2026-01-15T10:00:00Z"})


def data(probes: int = 2, tests: int = 1, **fields: object) -> ProjectData:
    return ProjectData(project=PROJECT, probes=tuple(Probe(id=f"probe{i}") for i in range(probes)),
                       tests=tuple(Test(id=f"t{i + 1}") for i in range(tests)), **fields)  # type: ignore[arg-type]


def runs(*completed: TestRun) -> ProjectRuns:
    return ProjectRuns(latest_completed={r.test_id or "": r for r in completed})


def test_details_longest_unread_first_and_paced_to_half_the_room() -> None:
    spare = Spare(run_endpoints="off")
    spare.update(data(tests=0), runs(), now=0.0)
    wants = list(spare.wants(wall=1000.0, interval=900.0, room=6.0, queued=set()))
    assert [(w.resource, w.item) for w in wants] == [(PROBE_DETAILS, "probe0"), (PROBE_DETAILS, "probe1")]
    gap = 60 / (ROOM_USE * 6.0)
    assert [w.due for w in wants] == [1000.0, 1000.0 + gap] and all(w.spare for w in wants)
    # Two are out: no more until one comes back; then a test listed since, unread, before any re-read.
    out = {(w.resource, "p", w.item) for w in wants}
    assert list(spare.wants(wall=1001.0, interval=900.0, room=6.0, queued=out)) == []
    spare.update(data(), runs(), now=1.0)
    spare.finished(PROBE_DETAILS, "p", "probe0", ok=True, wall=1001.0)
    (test,) = spare.wants(wall=1001.0, interval=900.0, room=6.0, queued={(PROBE_DETAILS, "p", "probe1")})
    assert (test.resource, test.item, test.due) == (TEST_DETAILS, "t1", 1000.0 + 2 * gap)
    spare.finished(PROBE_DETAILS, "p", "probe1", ok=False, wall=1002.0)  # a failed read waits its turn too
    spare.finished(TEST_DETAILS, "p", "t1", ok=True, wall=1003.0)
    again = list(spare.wants(wall=1004.0, interval=900.0, room=6.0, queued=set()))
    assert [(w.item, w.due) for w in again] == [("probe0", 1901.0), ("probe1", 1902.0)]


def test_no_room_no_spare_reads_but_on_still_reads_listings() -> None:
    for mode, expected in (("auto", []), ("on", [(ENDPOINTS, "r1", False)]), ("off", [])):
        spare = Spare(run_endpoints=mode)  # type: ignore[arg-type]
        spare.update(data(), runs(RUN), now=0.0)
        wants = spare.wants(wall=0.0, interval=900.0, room=0.0, queued=set())
        assert [(w.resource, w.item, w.spare) for w in wants] == expected, mode


def test_restored_details_are_read_again_only_when_due() -> None:
    kept = {"probe0": ProbeDetail(id="probe0", readAt=500.0), "probe1": ProbeDetail(id="probe1", readAt=100.0)}
    spare = Spare(run_endpoints="off", config_details="auto")
    restored = data(tests=0, probe_details=kept)
    spare.restore({"p": restored})
    spare.update(restored, runs(), now=0.0)
    wants = list(spare.wants(wall=600.0, interval=900.0, room=60.0, queued=set()))
    assert [(w.item, w.due) for w in wants] == [("probe1", 1000.0), ("probe0", 1400.0)]
    assert spare.settled(room=60.0)


def test_a_listing_that_keeps_failing_is_given_up_and_the_next_run_is_read() -> None:
    spare = Spare(run_endpoints="auto", config_details="off")
    spare.update(data(), runs(RUN), now=0.0)
    assert not spare.settled(room=6.0) and spare.settled(room=0.0)
    for attempt in range(ENDPOINT_RETRIES):
        (want,) = spare.wants(wall=100.0 * attempt, interval=900.0, room=60.0, queued=set())
        assert want.item == "r1" and want.due >= 100.0 * attempt
        spare.finished(ENDPOINTS, "p", "r1", ok=False, wall=100.0 * attempt)
    assert list(spare.wants(wall=1000.0, interval=900.0, room=60.0, queued=set())) == []
    newer = TestRun.model_validate({**RUN.model_dump(by_alias=True), "id": "r2", "createdAt": "2026-01-15T11:00:00Z"})
    spare.update(data(), runs(newer), now=1.0)
    assert [w.item for w in spare.wants(wall=1000.0, interval=900.0, room=60.0, queued=set())] == ["r2"]
