"""The state file's format on its own: every field through a round trip, the names it writes, the files
of earlier versions, its log lines, and how it writes (mutation testing found these untested)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.api.models import TestRun
from exporter.model.endpoints import EndpointTally
from exporter.model.runs import ProjectRuns, RunTracker
from exporter.model.snapshot import ProjectData
from exporter.poll import state
from exporter.poll.state import SavedState, StateError, StateFile, from_json, key_fingerprint, to_json
from exporter.schedule.timing import Learned
from exporter.simulator import DEMO_KEY
from tests.support.reference import NOW, reference_snapshot

BASE_URL = "http://callmeter.invalid/api/v1"


def run(run_id: str, status: str = "COMPLETED") -> TestRun:
    return TestRun.model_validate({"id": run_id, "testId": "abc123", "status": status,
                                   "startedAt": "2026-01-15T11:00:01Z", "summary": {"avgMos": 4.1}})


def rich_state() -> SavedState:
    """A state with every field set to something other than its default."""
    data = reference_snapshot().projects[0]
    unread = ProjectData(project=data.project.model_copy(update={"id": "p2", "slug": "staging"}), probes=None,
                         tests=(), registrars=None, fetched={"tests": NOW - 5},
                         endpoint_outcomes={"t9": EndpointTally("r9", None, {("A", "SUCCESS"): 2}, ("A",), NOW)})
    tracker = RunTracker(lookback_pages=5, started_at=NOW - 3600)
    tracker.projects = {
        data.project.id: ProjectRuns(
            latest_runs={"abc123": run("r2", "RUNNING")}, latest_completed={"abc123": run("r1")},
            detail_for_test={"abc123": "r1"}, wanted_runs={"r1": run("r1")}, counted={"r0": NOW - 100.0},
            count_floor=NOW - 200.0, seen_runs=frozenset({"r0", "r1"}), open_runs=frozenset({"r2"}),
            run_order="asc", run_pages=4, pages_per_listing=1.5, cold=False),
        "p2": ProjectRuns(),  # the defaults: count_floor -inf, nothing seen, cold
    }
    tracker.finished = {("production", "abc123", "COMPLETED"): 7, ("production", "abc123", "FAILED"): 1}
    tracker.statuses = {"COMPLETED", "ARCHIVED"}
    return SavedState(projects={data.project.id: data, "p2": unread}, projects_at=NOW - 30, runs=tracker,
                      probe_statuses={"HEALTHY", "MAINTENANCE"}, last_success={"probes": NOW - 10, "tests": NOW - 20},
                      request_times=[NOW - 50, NOW - 20.5], rate_per_minute=4.5, paused_until=NOW + 12,
                      learned=Learned(probe_delay={"p": 4.5}, probe_late={"p": 6.0}, probe_streak={"p": 2.0},
                                      run_early={"abc123": 1.05}, run_late={"abc123": 1.3}))


def round_trip(saved: SavedState, *, lookback_pages: int = 5) -> SavedState:
    raw = json.loads(json.dumps(to_json(saved, base_url=BASE_URL, key=DEMO_KEY, written_at=NOW)))
    return from_json(raw, base_url=BASE_URL, key=DEMO_KEY, lookback_pages=lookback_pages)


def test_every_field_survives_the_round_trip() -> None:
    saved = rich_state()
    loaded = round_trip(saved, lookback_pages=5)
    assert loaded.projects == saved.projects
    assert loaded.projects["p2"].probes is None and loaded.projects["p2"].tests == ()
    assert loaded.projects_at == saved.projects_at
    assert loaded.runs.projects == saved.runs.projects
    assert loaded.runs.projects["p2"].count_floor == float("-inf")
    assert loaded.runs.finished == saved.runs.finished and loaded.runs.statuses == saved.runs.statuses
    assert loaded.runs.started_at == NOW - 3600 and loaded.runs.lookback_pages == 5
    assert loaded.probe_statuses == saved.probe_statuses and loaded.last_success == saved.last_success
    assert loaded.request_times == saved.request_times
    assert loaded.rate_per_minute == 4.5 and loaded.paused_until == NOW + 12
    assert loaded.learned == saved.learned


def test_the_lookback_comes_from_the_settings_not_the_file() -> None:
    assert round_trip(rich_state(), lookback_pages=9).runs.lookback_pages == 9


def test_the_file_uses_the_apis_field_names_leaves_out_nulls_and_says_when_it_was_written() -> None:
    raw = to_json(rich_state(), base_url=BASE_URL, key=DEMO_KEY, written_at=NOW)
    assert raw["written_at"] == NOW
    probe = raw["projects"][0]["probes"][0]
    assert set(probe) == {"id", "name", "status", "intervalMinutes", "lastExecutionAt", "nextExecutionAt"}
    latest = raw["runs"]["projects"][reference_snapshot().projects[0].project.id]["latest_runs"]["abc123"]
    assert "completedAt" not in latest and latest["testId"] == "abc123"
    assert raw["runs"]["projects"]["p2"]["count_floor"] is None  # -inf is not JSON
    encoded = StateFile(Path("unused"), base_url=BASE_URL).encode(rich_state(), key=DEMO_KEY, written_at=NOW)
    assert json.loads(encoded)["written_at"] == NOW and b'", "' not in encoded  # compact


def test_the_keys_fingerprint_is_stable_across_versions() -> None:
    # Files already written name their key so: a different fingerprint would set every one of them aside.
    assert key_fingerprint("cmk_live_0123456789abcdef") == "25ce8865c7203ae8"


def test_a_tally_from_a_file_of_an_earlier_version_loads() -> None:
    raw = to_json(rich_state(), base_url=BASE_URL, key=DEMO_KEY, written_at=NOW)
    del raw["projects"][1]["endpoint_outcomes"]["t9"]["extra_outcomes"]  # written before they were kept
    tally = from_json(raw, base_url=BASE_URL, key=DEMO_KEY, lookback_pages=3).projects["p2"].endpoint_outcomes["t9"]
    assert tally.extra_outcomes == () and tally.order_key is None and tally.counts == {("A", "SUCCESS"): 2}


@pytest.mark.parametrize(("change", "problem"), [
    (lambda raw: [raw], "not a callmeter-exporter state file"),
    (lambda raw: {**raw, "format": "other"}, "not a callmeter-exporter state file"),
    (lambda raw: {**raw, "version": 1}, "format version 1, this exporter reads version 2"),
    (lambda raw: {**raw, "base_url": "https://elsewhere.example"}, "written for another CALLMETER_BASE_URL"),
    (lambda raw: {**raw, "key": "0" * 16}, "written for another API key (account)"),
    (lambda raw: {**raw, "limiter": {}}, "corrupt (KeyError)"),
    (lambda raw: {**raw, "last_success": {"probes": "soon"}}, "corrupt (ValueError)"),
])
def test_a_file_that_cannot_be_used_says_why(change: Any, problem: str) -> None:
    raw = to_json(rich_state(), base_url=BASE_URL, key=DEMO_KEY, written_at=NOW)
    with pytest.raises(StateError, match=f"^{problem.replace('(', '[(]').replace(')', '[)]')}$"):
        from_json(change(raw), base_url=BASE_URL, key=DEMO_KEY, lookback_pages=3)


# -- the file: its log lines, its size limit, how it is written ------------------------------------------


def test_each_outcome_of_a_load_is_one_log_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    file = StateFile(path, base_url=BASE_URL)
    with capture_logs() as logs:
        assert file.load(key=DEMO_KEY, lookback_pages=3) is None
        file.write(file.encode(rich_state(), key=DEMO_KEY, written_at=NOW))
        assert file.load(key=DEMO_KEY, lookback_pages=7) is not None
        path.write_text("")
        assert file.load(key=DEMO_KEY, lookback_pages=3) is None
    # A file written for the same base URL by another process (another StateFile) is taken.
    path.write_text(json.dumps(to_json(rich_state(), base_url=BASE_URL, key=DEMO_KEY, written_at=NOW)))
    loaded = StateFile(path, base_url=BASE_URL).load(key=DEMO_KEY, lookback_pages=7)
    assert loaded is not None and loaded.runs.lookback_pages == 7
    assert logs == [
        {"event": "state.none", "log_level": "info", "path": str(path), "hint": "no state file yet: starting cold"},
        {"event": "state.restored", "log_level": "info", "path": str(path), "projects": 2},
        {"event": "state.unusable", "log_level": "warning", "path": str(path), "problem": "empty",
         "hint": "starting cold; the file is replaced at the next save"},
    ]


def test_a_file_that_is_not_a_file_is_unusable_with_the_systems_reason(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()
    with capture_logs() as logs:
        assert StateFile(path, base_url=BASE_URL).load(key=DEMO_KEY, lookback_pages=3) is None
    assert [(e["event"], e["problem"]) for e in logs] == [("state.unusable", "Is a directory")]


def test_the_size_limit_refuses_only_what_is_over_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "MAX_BYTES", 16)
    path = tmp_path / "state.json"
    file = StateFile(path, base_url=BASE_URL)
    for text, problem in (("x" * 16, "not valid JSON (truncated or corrupt)"), ("x" * 17, "larger than 16 bytes")):
        path.write_text(text)
        with capture_logs() as logs:
            assert file.load(key=DEMO_KEY, lookback_pages=3) is None
        assert [e["problem"] for e in logs] == [problem]


def test_the_file_is_written_beside_itself_then_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename within the folder is atomic; a temporary file elsewhere (another file system) would be a copy."""
    path = tmp_path / "state.json"
    renamed: list[tuple[str, str]] = []
    replace = os.replace

    def spy(src: str, dst: str) -> None:
        renamed.append((src, str(dst)))
        replace(src, dst)

    monkeypatch.setattr(state.os, "replace", spy)
    StateFile(path, base_url=BASE_URL).write(b"{}")
    [(src, dst)] = renamed
    assert dst == str(path) and Path(src).parent == tmp_path
    assert Path(src).name.startswith(".state.json.") and src.endswith(".tmp")
    assert path.read_bytes() == b"{}" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_write_leaves_the_old_file_no_temporary_one_and_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"old")

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state.os, "replace", fail)
    with capture_logs() as logs:
        StateFile(path, base_url=BASE_URL).write(b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert logs == [{"event": "state.save_failed", "log_level": "warning", "path": str(path),
                     "error": "No space left on device"}]
    unlink = os.unlink

    def stuck(name: str) -> None:  # the temporary file cannot be removed either: the first error is reported
        unlink(name)
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(state.os, "unlink", stuck)
    with capture_logs() as logs:
        StateFile(path, base_url=BASE_URL).write(b"new")
    assert [e["error"] for e in logs] == ["No space left on device"]
    errors = {"error": OSError(None, None)}  # an OSError without strerror is named by its type
    monkeypatch.setattr(state.os, "replace", lambda src, dst: (_ for _ in ()).throw(errors["error"]))
    with capture_logs() as logs:
        StateFile(path, base_url=BASE_URL).write(b"new")
    assert [e["error"] for e in logs] == ["OSError"]
