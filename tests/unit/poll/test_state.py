"""The state file: restarts that lose nothing, counters that never count twice, files that cannot be used."""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.api.keysource import KeySource
from exporter.api.models import TestRun
from exporter.expose.families import snapshot_families
from exporter.poll.resume import capture, resume
from exporter.poll.state import VERSION, SavedState, StateFile, from_json, key_fingerprint, to_json
from exporter.simulator import DEMO_KEY, Simulator, WorldConfig
from tests.support.budget import max_in_window
from tests.support.simulated import SimulatedExporter, build
from tests.support.vclock import run_virtual

WORLD = WorldConfig(projects=2, probes_per_project=2, tests_per_project=3, run_period=120, run_duration=30,
                    history_runs=20)
BASE_URL = "http://callmeter.invalid/api/v1"


def finished(sim: SimulatedExporter) -> dict[tuple[str, str, str], int]:
    return dict(sim.poller.runs.finished)


def truth_finished_between(simulator: Simulator, since: float, until: float) -> dict[tuple[str, str], int]:
    """(test id, status) -> runs whose final state became visible in (since, until], from the simulator."""
    counts: dict[tuple[str, str], int] = {}
    for project_id in simulator.world.projects:
        for created, run_id, test in simulator.world.runs_of_project(project_id, until):
            view = simulator.world.run_view(test, run_id, created, until, detail=False)
            done = view.get("completedAt")
            if view["status"] in ("COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW") and done:
                at = TestRun.model_validate(view).completed_at
                if at is not None and since < at <= until:
                    key = (test.id, view["status"])
                    counts[key] = counts.get(key, 0) + 1
    return counts


def restart(tmp_path: Path, *, first: float, down: float, second: float, state: bool,
            check: Any = None, key_limit: int = 60, world: WorldConfig = WORLD) -> dict[str, Any]:
    """Run an exporter, stop it, run a second one against the same simulated CallMeter."""
    path = tmp_path / "state.json"
    out: dict[str, Any] = {}

    async def main() -> None:
        extra = {"state_file": path} if state else {}
        a = build(world, key_limit=key_limit, **extra)
        a.start()
        await asyncio.sleep(first)
        await a.stop()
        await a.exporter.save_state()
        out["a_finished"], out["a_stopped_at"], out["a_snapshot"] = finished(a), a.wall(), a.poller.build_snapshot()
        out["a_requests"] = len(a.simulator.requests)
        await asyncio.sleep(down)
        b = build(world, key_limit=key_limit, simulator=a.simulator, keep_snapshots=True, **extra)
        out["b_restored_snapshot"] = b.poller.build_snapshot()
        out["a_learned"], out["b_learned"] = asdict(a.poller.policy.learned), asdict(b.poller.policy.learned)
        out["b_ready_at_start"] = b.poller.readiness.ready.is_set()
        out["b_started_at"] = b.wall()
        b.start()
        await asyncio.sleep(0.5)
        out["b_first_snapshot"] = b.snapshots[0] if b.snapshots else None
        out["b_first_request_at"] = min((t for t, *_ in a.simulator.requests[out["a_requests"]:]), default=None)
        await asyncio.sleep(second)
        out["simulator"] = a.simulator
        if check is not None:
            check(b, out)
        await b.stop()
        out["b_finished"], out["simulator"], out["b"] = finished(b), a.simulator, b

    run_virtual(main())
    return out


def test_with_a_state_file_a_restart_continues_the_counters_and_serves_at_once(tmp_path: Path) -> None:
    out = restart(tmp_path, first=900, down=30, second=900, state=True)
    a, b = out["a_finished"], out["b_finished"]
    assert a and all(b.get(k, 0) >= n for k, n in a.items())  # never lower: no counter reset
    # What B added is what really finished while it was down and running (each run counted once).
    truth = truth_finished_between(out["simulator"], out["a_stopped_at"] - 60, out["b"].wall())
    added = sum(b.values()) - sum(a.values())
    assert 0 < added <= sum(truth.values())
    restored = out["b_restored_snapshot"]
    assert len(restored.projects) == 2 and all(p.probes and p.latest_completed for p in restored.projects)
    assert all(p.probe_details and p.test_details and p.endpoint_outcomes for p in restored.projects)
    # Every field as it was read, timestamps, summaries, details and endpoint tallies included; and what
    # the schedule learned.
    assert restored.projects == out["a_snapshot"].projects
    assert out["a_learned"]["probe_delay"] and out["b_learned"] == out["a_learned"]
    assert out["b_ready_at_start"]
    first = out["b_first_snapshot"]
    assert first is not None and all(p.probes and p.latest_completed for p in first.projects)
    assert out["b_first_request_at"] is None or first.taken_at <= out["b_first_request_at"]


def test_known_terminal_runs_are_not_fetched_again_after_a_restart(tmp_path: Path) -> None:
    out = restart(tmp_path, first=900, down=5, second=120, state=True)
    simulator: Simulator = out["simulator"]
    known = {run.id for p in out["a_snapshot"].projects for run in p.latest_completed.values()}
    assert known
    after = [path for _, _, path, _ in simulator.requests[out["a_requests"]:] if path.rsplit("/", 1)[-1] in known]
    assert not after, f"fetched again after the restart: {after[:3]}"


def test_a_file_written_before_details_were_kept_still_loads(tmp_path: Path) -> None:
    async def main() -> SavedState:
        sim = build(WORLD, key_limit=60)
        sim.start()
        await asyncio.sleep(600)
        await sim.stop()
        return capture(sim.poller)

    saved = run_virtual(main())
    assert all(p.probe_details and p.endpoint_outcomes for p in saved.projects.values())
    raw = to_json(saved, base_url=BASE_URL, key=DEMO_KEY, written_at=0.0)
    for project in raw["projects"]:
        for name in ("probe_details", "test_details", "endpoint_outcomes"):
            del project[name]
    loaded = from_json(json.loads(json.dumps(raw)), base_url=BASE_URL, key=DEMO_KEY, lookback_pages=3)
    assert loaded.projects.keys() == saved.projects.keys()
    assert all(not p.probe_details and not p.endpoint_outcomes and p.probes for p in loaded.projects.values())


def test_the_restart_spends_only_what_is_left_of_the_window(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def check(b: SimulatedExporter, out: dict[str, Any]) -> None:
        times = [t for t, *_ in out["simulator"].requests]
        seen.update(times=times, a=out["a_requests"], b_started_at=out["b_started_at"])

    # A Free key (8 a minute for the exporter) that six projects keep busy, and a restart within a second.
    busy = WorldConfig(projects=6, probes_per_project=2, tests_per_project=3, run_period=120, run_duration=30)
    restart(tmp_path, first=300, down=1, second=300, state=True, check=check, key_limit=10, world=busy)
    times, after = seen["times"], seen["times"][seen["a"]:]
    # Never more than the budget in a minute, across the restart ...
    assert max_in_window(times) <= 8
    # ... and no less than what was left of it: the window the restart falls in is full, the second process
    # goes on within one interval (7.5 s) of its start, and keeps the budget busy (8 a minute, 5 minutes).
    straddling = [sum(1 for u in times if t - 60 < u <= t) for t in after if t < seen["b_started_at"] + 60]
    assert straddling and max(straddling) == 8
    assert after[0] - seen["b_started_at"] <= 7.5
    assert len(after) >= 32


def test_without_a_state_file_history_is_a_baseline_not_counted_again(tmp_path: Path) -> None:
    out = restart(tmp_path, first=900, down=30, second=900, state=False)
    truth = truth_finished_between(out["simulator"], out["b_started_at"], out["b"].wall())
    b = out["b_finished"]
    # The second process counts only runs that finished after it started: never its history.
    assert sum(b.values()) <= sum(truth.values())
    assert sum(b.values()) >= sum(truth.values()) - 6  # the last minute's runs may not be listed yet


def test_the_file_is_private_and_never_holds_the_key(tmp_path: Path) -> None:
    restart(tmp_path, first=300, down=1, second=10, state=True)
    path = tmp_path / "state.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert DEMO_KEY not in text and key_fingerprint(DEMO_KEY) in text
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind


def test_a_restored_snapshot_older_than_the_stale_limit_is_not_served(tmp_path: Path) -> None:
    out = restart(tmp_path, first=300, down=3 * 3600, second=0.0, state=True)
    assert not out["b_ready_at_start"]
    snapshot = out["b_restored_snapshot"]
    names = {f.name for f in snapshot_families(snapshot, now=out["b_started_at"]) if f.samples}
    assert "callmeter_probe_status" not in names and "callmeter_test_run_mos" not in names


# -- files that cannot be used ---------------------------------------------------------------------

def good_file(tmp_path: Path) -> Path:
    restart(tmp_path, first=200, down=1, second=1, state=True)
    return tmp_path / "state.json"


def load(path: Path, key: str = DEMO_KEY, base_url: str = BASE_URL) -> tuple[SavedState | None, list[Any]]:
    with capture_logs() as logs:
        saved = StateFile(path, base_url=base_url).load(key=key, lookback_pages=3)
    return saved, logs


def mutate(path: Path, change: Any) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not valid JSON"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(b"\x00\xff garbage"), "not valid JSON"),
    (lambda p: mutate(p, lambda r: r.update(version=VERSION + 1)), "format version"),
    (lambda p: mutate(p, lambda r: r.update(key=key_fingerprint("cmk_" + "0" * 32))), "another API key"),
    (lambda p: mutate(p, lambda r: r.update(base_url="https://elsewhere.example/api/v1")),
     "another CALLMETER_BASE_URL"),
    (lambda p: mutate(p, lambda r: r["projects"][0].pop("fetched")), "corrupt"),
    (lambda p: mutate(p, lambda r: r["runs"].update(finished=[["a", "b"]])), "corrupt"),
    (lambda p: mutate(p, lambda r: r["learned"].update(probe_delay={"x": "soon"})), "corrupt"),
])
def test_an_unusable_file_gives_one_warning_and_a_cold_start(tmp_path: Path, damage: Any, problem: str) -> None:
    path = good_file(tmp_path)
    assert load(path)[0] is not None
    damage(path)
    saved, logs = load(path)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert saved is None and len(warnings) == 1 and problem in warnings[0]["problem"]
    assert DEMO_KEY not in json.dumps(warnings, default=str)


def test_an_unreadable_file_gives_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.symlink_to(path)  # a loop: stat and open fail, even for root
    saved, logs = load(path)
    assert saved is None and [e["event"] for e in logs] == ["state.unusable"]


def test_an_exporter_with_an_unusable_file_starts_cold_and_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "callmeter-exporter-state", "version": 1, "proj')

    async def main() -> None:
        sim = build(WORLD, key_limit=60, state_file=path)
        assert not sim.poller.store.projects
        sim.start()
        await asyncio.sleep(120)
        await sim.stop()
        await sim.exporter.save_state()

    run_virtual(main())
    assert load(path)[0] is not None


def test_the_key_file_key_names_the_state(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(DEMO_KEY)
    assert KeySource(path=key_file).get() == DEMO_KEY and key_fingerprint(DEMO_KEY) != key_fingerprint(DEMO_KEY + "x")


def test_resume_takes_up_the_limiter_the_schedule_and_what_was_read() -> None:
    """`capture` and `resume` on their own: what the second process's limiter, scheduler and metrics hold."""
    out: dict[str, Any] = {}

    async def main() -> None:
        a = build(WORLD, key_limit=60)
        a.start()
        await asyncio.sleep(300)
        await a.stop()
        a.limiter.on_rate_limited()  # a 429 just now: half the rate, and a pause of 30 s
        a.limiter.pause(30)
        saved = capture(a.poller)
        never = next(iter(saved.projects))
        saved.projects[never].fetched.pop("registrars")  # a list never read before the stop
        out["never"] = never
        saved.runs.of(never).detail_for_test["a-test"] = "a-run"  # a run whose details were still wanted
        long_ago = saved.projects[never].fetched["tests"] = a.wall() - 100_000  # long past its interval
        test_id, tally = next(iter(saved.projects[never].endpoint_outcomes.items()))
        del saved.projects[never].endpoint_outcomes[test_id]  # a completed run whose listing is not read yet
        out.update(long_ago=long_ago, unread=(test_id, tally.run_id))
        b = build(WORLD, key_limit=60, simulator=a.simulator)
        with capture_logs() as logs:
            resume(b.poller, saved)
        wall, now = b.wall(), b.poller.now()
        reading = b.poller.spare.endpoints.of(never).reading.get(test_id)
        out["reading"] = (reading.run.id, reading.wanted_at) if reading else None
        # A pause that ended before the restart pauses nothing.
        saved.paused_until = a.wall() - 5
        b2 = build(WORLD, key_limit=60, simulator=a.simulator)
        resume(b2.poller, saved)
        out["b2_blocked"] = b2.limiter.blocked_for()
        await b2.stop()
        out.update(saved=saved, a_rate=a.limiter.per_minute, a_wall=a.wall(), wall=wall, now=now, logs=logs,
                   rate=b.limiter.per_minute, blocked=b.limiter.blocked_for(), recent=b.limiter.recent(),
                   last_success=dict(b.metrics.last_success), statuses=set(b.poller.store.probe_statuses),
                   jobs={key: (job.due, job.refreshed) for key, job in b.poller.scheduler.jobs.items()},
                   interval=b.poller.planning.interval, wanted=b.poller.runs.projects)
        await b.stop()

    run_virtual(main())
    saved: SavedState = out["saved"]
    wall, now = out["wall"], out["now"]
    assert saved.rate_per_minute == out["a_rate"] == out["rate"] == 24.0  # 60 x 0.8, halved
    assert saved.paused_until == pytest.approx(out["a_wall"] + 30)
    assert out["blocked"] == pytest.approx(30.0)
    assert out["recent"] == pytest.approx([now - (wall - t) for t in saved.request_times]) and out["recent"]
    assert out["last_success"] == saved.last_success and saved.last_success
    assert out["statuses"] == saved.probe_statuses and saved.probe_statuses
    assert any(e["event"] == "schedule.plan" and e["reason"] == "restore" for e in out["logs"])
    # Each list comes due its interval after it was read (now, if that has passed), as one already read.
    assert out["jobs"][("projects", None, None)] == (
        pytest.approx(now + max(0.0, saved.projects_at + out["interval"]("projects") - wall)), True)
    for pid, data in saved.projects.items():
        for kind in ("probes", "tests", "test_runs", "registrars"):
            at = data.fetched.get(kind)
            if at is None:
                assert (kind, pid) == ("registrars", out["never"])
                assert out["jobs"][(kind, pid, None)] == (now, False)  # due at once, as never read
                continue
            assert out["jobs"][(kind, pid, None)] == (
                pytest.approx(now + max(0.0, at + out["interval"](kind) - wall)), True), (kind, pid)
        for run_id in out["wanted"][pid].detail_for_test.values():  # details still wanted: due at once
            assert out["jobs"][("test_run_details", pid, run_id)] == (now, False)
    assert sum(len(r.detail_for_test) for r in out["wanted"].values()) > 0
    assert out["jobs"][("tests", out["never"], None)] == (now, True)  # its interval passed long ago: due now
    assert out["reading"] == (out["unread"][1], now)  # its listing is wanted again, from now
    assert out["b2_blocked"] == 0
