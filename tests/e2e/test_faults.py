"""Never lie, never leak, never fall over: the real exporter process against a misbehaving API.

One simulator process (150 probes a project, so probe lists have two pages) and one exporter process
(fast floors, 1.5 s HTTP timeout) are shared by the tests of this module; the exporter reaches the
simulator through a TCP proxy that can reset, truncate or refuse connections. Each fault is applied,
held, and cleared, and the test checks that the process kept running, kept the last good data (the
set of series before the fault is still there during and after it, and a probe status changed
during an outage does not show until the API answers again), counted the errors by route and kind,
logged each burst once per route and project, and recovered by itself. The time from clearing the
fault to a complete fresh refresh is printed at the end of the module (and in faults.md).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.faultkit import FaultProxy, Samples, SimulatorProcess, parse_samples
from tests.support.processes import ExporterProcess

POLLED = ("projects", "probes", "tests", "test_runs", "registrars")
RESOURCE_FAMILIES = ("callmeter_probe_", "callmeter_test_run", "callmeter_project_info", "callmeter_registrar_info")
HTTP_TIMEOUT = 1.5
RECOVERY: dict[str, float] = {}

FAST = {
    "CALLMETER_PLAN": "enterprise",
    "CALLMETER_REQUESTS_PER_MINUTE": "1500",
    "CALLMETER_PROBES_MIN_INTERVAL": "1",
    # The fault handling under test (client, burst log, up, stale data) is the same in both schedules;
    # the fixed one reads every list on its floor, which these timings were made for. The adaptive
    # schedule is tested under faults in tests/unit/schedule/test_adaptive.py.
    "CALLMETER_SCHEDULE": "fixed",
    # Reads below the plan (endpoint listings, probe and test details) have suites of their own; here
    # they would only add requests in flight across a fault's start, whose late answers close a burst.
    "CALLMETER_RUN_ENDPOINTS": "off",
    "CALLMETER_CONFIG_DETAILS": "off",
    "CALLMETER_TEST_RUNS_MIN_INTERVAL": "2",
    "CALLMETER_INVENTORY_MIN_INTERVAL": "3",
    "CALLMETER_HTTP_TIMEOUT": str(HTTP_TIMEOUT),
    "CALLMETER_LOG_LEVEL": "info",
}


def resource_series(samples: Samples) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {key for key in samples if key[0].startswith(RESOURCE_FAMILIES)}


@dataclass
class Pair:
    sim: SimulatorProcess
    proxy: FaultProxy
    exporter: ExporterProcess
    failures: list[str] = field(default_factory=list)

    def samples(self) -> Samples:
        return parse_samples(self.exporter.metrics())

    def value(self, name: str, samples: Samples | None = None, **labels: str) -> float | None:
        return (samples or self.samples()).get((name, tuple(sorted(labels.items()))))

    def counters(self, name: str, label: str, samples: Samples | None = None) -> dict[tuple[str, str], float]:
        """{(endpoint, <label>): value} of a self-metric counter (0 for a pair not seen)."""
        out: dict[tuple[str, str], float] = defaultdict(float)
        for (sample, labels), value in (samples or self.samples()).items():
            if sample == name:
                d = dict(labels)
                out[(d["endpoint"], d[label])] = value
        return out

    def log_mark(self) -> int:
        return len(self.exporter.output())

    def events(self, since: int) -> list[dict[str, Any]]:
        out = []
        for line in self.exporter.output()[since:].splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def alive(self) -> None:
        assert self.exporter.proc.poll() is None, "the exporter exited:\n" + self.exporter.output()[-3000:]

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> float:
        return self.exporter.wait_for(lambda: bool(condition()), timeout, what)

    def fresh_since(self, since: float, samples: Samples) -> bool:
        return self.value("callmeter_up", samples) == 1 and all(
            (self.value("callmeter_exporter_last_success_timestamp_seconds", samples, resource=r) or 0) >= since
            for r in POLLED)

    def healthy(self) -> None:
        """No fault anywhere, and every resource refreshed since: the start line of every test."""
        self.sim.reset_faults()
        self.proxy.set_mode("pass")
        since = time.time()
        self.wait(lambda: self.fresh_since(since, self.samples()), 30, "a healthy exporter")

    def probe(self, project_slug: str, index: int = 0) -> dict[str, Any]:
        state = self.sim.state()
        project = next(p for p in state["projects"] if p["slug"] == project_slug)
        probes: list[dict[str, Any]] = [p for p in state["probes"] if p["project_id"] == project["id"]]
        return probes[index]

    def shown_status(self, probe_id: str, samples: Samples | None = None) -> str | None:
        for (name, labels), value in (samples or self.samples()).items():
            d = dict(labels)
            if name == "callmeter_probe_status" and d.get("probe_id") == probe_id and value == 1:
                return d["status"]
        return None

    def force(self, probe_id: str) -> str:
        """Force a probe to a status other than the one shown now; returns it."""
        shown = self.shown_status(probe_id)
        status = next(s for s in ("UNHEALTHY", "DEGRADED", "HEALTHY") if s != shown)
        self.sim.control(f"/_sim/probes/{probe_id}", {"status": status})
        return status


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    sim = SimulatorProcess("--projects", "2", "--probes", "150", "--tests", "4", "--run-period", "20",
                           "--run-duration", "4")
    proxy = FaultProxy(sim.port)
    exporter = ExporterProcess(env={**FAST, "CALLMETER_API_KEY": sim.key,
                                    "CALLMETER_BASE_URL": f"{proxy.url}/api/v1"})
    try:
        exporter.wait_ready(60)
        yield Pair(sim, proxy, exporter)
        assert exporter.proc.poll() is None, "the shared exporter died"
        assert "Traceback" not in exporter.output()
    finally:
        code = exporter.stop()
        proxy.close()
        sim.stop()
        report = request.config.pluginmanager.get_plugin("terminalreporter")
        if report is not None and RECOVERY:
            report.write_line("")
            report.write_line("time to recover after the fault was cleared (s):")
            for name, seconds in RECOVERY.items():
                report.write_line(f"  {name:<40} {seconds:5.1f}")
        assert code == 0


@dataclass
class Fault:
    name: str
    start: Callable[[Pair], None]
    stop: Callable[[Pair], None]
    kind: str            # callmeter_exporter_api_errors_total{error}
    code: str            # callmeter_exporter_api_requests_total{code}
    up: float            # callmeter_up while it lasts
    hidden: str = "production"  # project whose forced probe status must not show during the fault
    visible: str | None = None  # project whose forced probe status must show during the fault


def _sim(**faults: Any) -> Callable[[Pair], None]:
    def apply(p: Pair) -> None:
        p.sim.faults(**faults)
    return apply


def _proxy(mode: str) -> Callable[[Pair], None]:
    return lambda p: p.proxy.set_mode(mode)


def _keys(action: str) -> Callable[[Pair], None]:
    def apply(p: Pair) -> None:
        p.sim.control("/_sim/keys", {action: p.sim.key})
    return apply


def _reset(p: Pair) -> None:
    p.sim.reset_faults()


FAULTS = [
    Fault("5xx burst", _sim(error_rate=1.0), _reset, "server_error", "500", 0),
    Fault("connection reset", _proxy("reset"), _proxy("pass"), "connection", "error", 0),
    Fault("connection refused, API back on same port", _proxy("down"), _proxy("pass"), "connection", "error", 0),
    Fault("response cut mid-body", _proxy("truncate"), _proxy("pass"), "connection", "error", 0),
    Fault(f"latency 2.5 s > timeout {HTTP_TIMEOUT:g} s", _sim(latency=2.5), _reset, "timeout", "error", 0),
    Fault("malformed (truncated) JSON", _sim(malformed_rate=1.0), _reset, "invalid_response", "200", 0),
    Fault("401: key revoked, then restored", _keys("revoke"), _keys("restore"), "unauthorized", "401", 0),
    Fault("403 on one project", _sim(forbidden_projects=["staging"]), _reset, "forbidden", "403", 1,
          hidden="staging", visible="production"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_keeps_last_data_counts_logs_once_and_recovers(pair: Pair, fault: Fault) -> None:
    pair.healthy()
    before = pair.samples()
    errors_before = pair.counters("callmeter_exporter_api_errors_total", "error", before)
    requests_before = pair.counters("callmeter_exporter_api_requests_total", "code", before)
    mark = pair.log_mark()
    hidden = pair.probe(fault.hidden)["id"]
    visible = pair.probe(fault.visible)["id"] if fault.visible else None

    fault.start(pair)
    try:
        def erring() -> bool:
            now = pair.counters("callmeter_exporter_api_errors_total", "error")
            return any(now[k] > errors_before[k] for k in now if k[1] == fault.kind)

        pair.wait(erring, 20, f"a {fault.kind} error to be counted")
        hidden_status = pair.force(hidden)
        visible_status = pair.force(visible) if visible else None
        # Retried kinds (5xx, timeouts, connection, garbled bodies) reach the poller only once the
        # client has given up: several attempts on every route, a few seconds of backoff.
        pair.wait(lambda: pair.value("callmeter_up") == fault.up, 30, f"callmeter_up {fault.up:g}")
        time.sleep(1.0)
        during = pair.samples()
        pair.alive()
        assert pair.value("callmeter_up", during) == fault.up
        lost = resource_series(before) - resource_series(during)
        assert not lost, f"series lost during the fault: {sorted(lost)[:5]}"
        assert pair.shown_status(hidden, during) != hidden_status, "a value was shown that the API could not give"
        if visible:
            pair.wait(lambda: pair.shown_status(visible) == visible_status, 10, "the unaffected project to update")

        def repeated() -> bool:
            # A burst must hold more than one failed request before the fault clears: the adaptive
            # schedule may otherwise have met each route's failure only once.
            bursts = {(e.get("route"), e.get("project")) for e in pair.events(mark)
                      if e.get("event") in ("api.error", "api.rate_limited") and e.get("error") == fault.kind}
            now = pair.counters("callmeter_exporter_api_errors_total", "error")
            return sum(now[k] - errors_before[k] for k in now if k[1] == fault.kind) > len(bursts)

        pair.wait(repeated, 60, "a failure repeated within one burst")
    finally:
        cleared = time.time()
        fault.stop(pair)

    def recovered() -> bool:
        s = pair.samples()
        return pair.fresh_since(cleared, s) and pair.shown_status(hidden, s) == hidden_status

    RECOVERY[fault.name] = pair.wait(recovered, 30, "recovery")
    after = pair.samples()
    lost = resource_series(before) - resource_series(after)
    assert not lost, f"series lost after the fault: {sorted(lost)[:5]}"
    pair.sim.control(f"/_sim/probes/{hidden}", {"status": None})
    if visible:
        pair.sim.control(f"/_sim/probes/{visible}", {"status": None})

    # Counted by route and kind, and by route and code.
    errors_after = pair.counters("callmeter_exporter_api_errors_total", "error", after)
    requests_after = pair.counters("callmeter_exporter_api_requests_total", "code", after)
    assert any(errors_after[k] > errors_before[k] for k in errors_after if k[1] == fault.kind)
    assert any(requests_after[k] > requests_before[k] for k in requests_after if k[1] == fault.code)
    assert all(k[0] == "/projects" or (k[0].startswith("/projects/") and "{" in k[0]) for k in errors_after)

    # Logged once per burst (per route and project), not once per failed request; recovery noted.
    events = pair.events(mark)
    bursts = Counter((e.get("route"), e.get("project"), e["error"]) for e in events
                     if e.get("event") in ("api.error", "api.rate_limited") and e.get("error") == fault.kind)
    failed_attempts = sum(errors_after[k] - errors_before[k] for k in errors_after if k[1] == fault.kind)
    assert bursts, "the fault was not logged"
    assert set(bursts.values()) == {1}, bursts
    assert failed_attempts > len(bursts), (failed_attempts, bursts)
    assert any(e.get("event") == "api.recovered" for e in events)
    assert not [e for e in events if e.get("event") == "refresh.crashed" or e.get("level") in ("error", "critical")]


def test_slow_answers_within_the_timeout_are_no_fault(pair: Pair) -> None:
    pair.healthy()
    errors_before = pair.counters("callmeter_exporter_api_errors_total", "error")
    probe = pair.probe("production")["id"]
    pair.sim.faults(latency=0.6)
    try:
        status = pair.force(probe)
        pair.wait(lambda: pair.shown_status(probe) == status, 15, "fresh data through slow answers")
        assert pair.value("callmeter_up") == 1
    finally:
        pair.sim.reset_faults()
        pair.sim.control(f"/_sim/probes/{probe}", {"status": None})
    errors_after = pair.counters("callmeter_exporter_api_errors_total", "error")
    assert errors_after == errors_before


def test_schema_drift_is_absorbed(pair: Pair) -> None:
    pair.healthy()
    baseline = pair.samples()
    intervals = {k: v for k, v in baseline.items() if k[0] == "callmeter_probe_interval_seconds"}
    errors_before = pair.counters("callmeter_exporter_api_errors_total", "error", baseline)

    # Unknown fields everywhere and every number sent as a string: nothing changes.
    since = time.time()
    pair.sim.faults(extra_fields=True, string_numbers=True)
    pair.wait(lambda: pair.fresh_since(since, pair.samples()), 20, "a refresh of drifted payloads")
    drifted = pair.samples()
    assert {k: v for k, v in drifted.items() if k[0] == "callmeter_probe_interval_seconds"} == intervals
    assert resource_series(baseline) <= resource_series(drifted)

    # A status nobody documented becomes a new state of the state set, 1 for it and 0 for the rest.
    probe = pair.probe("production")["id"]
    pair.sim.faults(status_override="MAINTENANCE")
    pair.wait(lambda: pair.shown_status(probe) == "MAINTENANCE", 15, "the new status")
    s = pair.samples()
    assert pair.value("callmeter_probe_status", s, **_probe_labels(s, probe), status="HEALTHY") == 0
    assert sum(v for (n, labels), v in s.items() if n == "callmeter_probe_status"
               and dict(labels)["probe_id"] == probe) == 1

    # A documented field that disappears yields no sample, never a made-up one; the rest stays.
    pair.sim.reset_faults()
    pair.sim.faults(drop_fields=["status"])
    pair.wait(lambda: pair.shown_status(probe) is None, 15, "the status series to go")
    s = pair.samples()
    assert {k for k in s if k[0] == "callmeter_probe_interval_seconds"} == set(intervals)
    assert pair.value("callmeter_up", s) == 1

    since = time.time()
    pair.sim.reset_faults()
    RECOVERY["schema drift (back to documented)"] = pair.wait(
        lambda: pair.shown_status(probe) not in (None, "MAINTENANCE") and pair.fresh_since(since, pair.samples()),
        20, "documented payloads again")
    errors_after = pair.counters("callmeter_exporter_api_errors_total", "error")
    assert errors_after == errors_before, "drift is not an error"


def _probe_labels(samples: Samples, probe_id: str) -> dict[str, str]:
    for (name, labels), _ in samples.items():
        d = dict(labels)
        if name == "callmeter_probe_interval_seconds" and d["probe_id"] == probe_id:
            return d
    raise AssertionError(f"no probe {probe_id}")


def test_stale_data_is_dropped_after_max_age_and_comes_back(pair: Pair) -> None:
    """CALLMETER_MAX_DATA_AGE=5: an API that stops answering stops the resource series 5 s later, while
    the last-success timestamps stay and age; the series return with the API."""
    pair.healthy()
    # The fixed schedule reads probe lists every second: the age of the data is the time since the API
    # stopped answering (the adaptive one reads at executions, minutes apart, past a 5 s max age).
    with ExporterProcess(env={**FAST, "CALLMETER_API_KEY": pair.sim.key, "CALLMETER_BASE_URL": pair.sim.base_url,
                              "CALLMETER_MAX_DATA_AGE": "5", "CALLMETER_SCHEDULE": "fixed"}) as stale:
        stale.wait_ready(60)

        def probes_shown(samples: Samples) -> bool:
            return any(k[0] == "callmeter_probe_status" for k in samples)

        stale.wait_for(lambda: probes_shown(parse_samples(stale.metrics())), 10, "probe series")
        pair.sim.faults(error_rate=1.0)
        broken = time.time()
        try:
            stale.wait_for(lambda: not probes_shown(parse_samples(stale.metrics())), 20, "probe series to expire")
            gone = time.time()
            s = parse_samples(stale.metrics())
            last = s[("callmeter_exporter_last_success_timestamp_seconds", (("resource", "probes"),))]
            assert gone - last >= 5 - 0.5, "dropped before the max age"
            assert gone - last <= 5 + 3, "kept well past the max age"
            assert not [k for k in s if k[0].startswith(("callmeter_test_run_", "callmeter_registrar_info"))]
            # callmeter_up falls when the client gives up (retries with 1 + 2 + 4 s of jittered backoff),
            # which may be after the data has expired.
            stale.wait_for(lambda: parse_samples(stale.metrics())[("callmeter_up", ())] == 0, 10, "callmeter_up 0")
            time.sleep(1.5)
            later = parse_samples(stale.metrics())
            assert later[("callmeter_exporter_last_success_timestamp_seconds", (("resource", "probes"),))] == last
            assert stale.proc.poll() is None
            assert gone - broken < 20
        finally:
            cleared = time.time()
            pair.sim.reset_faults()
        RECOVERY["stale data dropped, API back"] = stale.wait_for(
            lambda: probes_shown(parse_samples(stale.metrics())), 30, "the probe series to return")
        assert cleared > 0


def test_a_list_that_shrinks_while_it_is_read_loses_no_live_probe(pair: Pair) -> None:
    """Offset pagination skips an item when an earlier one is deleted between two page reads; the
    client reads a listing again when its total moves, so a probe that lives on never blinks out."""
    pair.healthy()
    state = pair.sim.state()
    production = next(p["id"] for p in state["projects"] if p["slug"] == "production")
    probes = [p["id"] for p in state["probes"] if p["project_id"] == production]
    doomed, survivors = probes[1:41], set(probes) - set(probes[1:41])
    mark = pair.log_mark()
    missing: list[set[str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            shown = {dict(labels)["probe_id"] for (name, labels) in pair.samples()
                     if name == "callmeter_probe_interval_seconds"}
            if survivors - shown:
                missing.append(survivors - shown)
            time.sleep(0.05)

    pair.sim.faults(latency=0.3)  # page 2 is read a good while after page 1
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for step in range(4):
            time.sleep(1.3)
            for probe in doomed[step * 10:(step + 1) * 10]:
                pair.sim.control("/_sim/delete", {"kind": "probe", "id": probe})
        time.sleep(2.5)
    finally:
        stop.set()
        watcher.join(10)
        pair.sim.reset_faults()
    assert not missing, f"live probes missing from {len(missing)} scrapes, e.g. {sorted(missing[0])[:3]}"
    shown = {dict(labels)["probe_id"] for (name, labels) in pair.samples()
             if name == "callmeter_probe_interval_seconds"}
    assert not shown & set(doomed), "deleted probes are still shown"
    moved = [e for e in pair.events(mark) if e.get("event") == "api.list_moved"]
    print(f"listings read again after the list moved: {len(moved)}")


def test_deleted_resources_go_away_and_a_deleted_project_404s(pair: Pair) -> None:
    """Deletion is the one fault whose data must not be kept: the series of what is gone go away."""
    pair.healthy()
    state = pair.sim.state()
    slug = {p["id"]: p["slug"] for p in state["projects"]}
    staging = next(p["id"] for p in state["projects"] if p["slug"] == "staging")
    probe = pair.probe("production")["id"]
    test = next(t for t in state["tests"] if slug[t["project_id"]] == "production")
    errors_before = pair.counters("callmeter_exporter_api_errors_total", "error")
    mark = pair.log_mark()
    before = pair.samples()
    assert any(dict(k[1]).get("test_id") == test["id"] for k in before)

    pair.sim.control("/_sim/delete", {"kind": "probe", "id": probe})
    pair.sim.control("/_sim/delete", {"kind": "test", "id": test["id"]})
    pair.sim.control("/_sim/delete", {"kind": "project", "id": staging})
    started = time.time()

    def gone() -> bool:
        s = pair.samples()
        return not any(dict(labels).get("probe_id") == probe or dict(labels).get("test_id") == test["id"]
                       or dict(labels).get("project") == "staging" for _, labels in s)

    RECOVERY["deleted probe/test/project: series gone"] = pair.wait(gone, 20, "the deleted resources' series to go")
    pair.alive()
    after = pair.samples()
    assert pair.value("callmeter_up", after) == 1
    kept = {k for k in resource_series(before) if dict(k[1]).get("project") == "production"
            and dict(k[1]).get("probe_id") != probe and dict(k[1]).get("test_id") != test["id"]}
    assert kept <= resource_series(after), "the other resources lost series"
    # The deleted project answered 404 at least once, counted as not_found; logged once per route.
    time.sleep(1.0)
    errors_after = pair.counters("callmeter_exporter_api_errors_total", "error")
    assert any(errors_after[k] > errors_before[k] for k in errors_after if k[1] == "not_found")
    lines = Counter((e.get("route"), e.get("project")) for e in pair.events(mark)
                    if e.get("event") == "api.error" and e.get("error") == "not_found")
    assert set(lines.values()) <= {1}, lines
    assert time.time() - started < 30
