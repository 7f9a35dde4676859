"""Never lie, never leak, never fall over: the real exporter process against a misbehaving API.

One simulator process (150 probes a project, so probe lists have two pages) is shared by the tests of
this module, and so are two exporter processes (fast floors, 1.5 s HTTP timeout), one for each
`CALLMETER_SCHEDULE`: `adaptive`, the default, and `fixed`. Each reaches the simulator through a TCP
proxy of its own that can reset, truncate or refuse connections. A fault is applied to both at once,
so both schedules live through the same fault side by side: every check is made on each exporter, and
a failure names the schedule. Each fault is applied, held, and cleared, and the test checks that the
process kept running, kept the last good data (the set of series before the fault is still there
during and after it, and a probe status changed during an outage does not show until the API answers
again), counted the errors by route and kind, logged each burst once per route and project, and
recovered by itself. The time from clearing the fault to a complete fresh refresh is printed for each
schedule at the end of the module (and in faults.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.faultkit import FaultProxy, Samples, SimulatorProcess, parse_samples
from tests.support.processes import ExporterProcess

SCHEDULES = ("adaptive", "fixed")
POLLED = ("projects", "probes", "tests", "test_runs", "registrars")
RESOURCE_FAMILIES = ("callmeter_probe_", "callmeter_test_run", "callmeter_project_info", "callmeter_registrar_info")
ERRORS = "callmeter_exporter_api_errors_total"
REQUESTS = "callmeter_exporter_api_requests_total"
HTTP_TIMEOUT = 1.5
MAX_AGE = 7
"""CALLMETER_MAX_DATA_AGE of the stale-data test."""
RECOVERY: dict[str, dict[str, float]] = defaultdict(dict)
"""What was measured -> schedule -> seconds."""

FAST = {
    "CALLMETER_PLAN": "enterprise",
    "CALLMETER_REQUESTS_PER_MINUTE": "1500",
    # Fixed: every probe list every second. Adaptive: a project's probe list is read when its probes'
    # results should show; 150 probes a project executing every minute put a result due every 0.4 s,
    # and those due within 3 s of each other share one read (timing.COVER), so each probe list is read
    # every 3 to 5 s (4 on average) once the first re-read, 10 s after start (before the results' delay
    # is learned), is past. The safety net, at its least (10 s), bounds the gaps in any case.
    "CALLMETER_PROBES_MIN_INTERVAL": "1",
    "CALLMETER_PROBES_MAX_INTERVAL": "10",
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


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def counters(samples: Samples, name: str, label: str) -> dict[tuple[str, str], float]:
    """{(endpoint, <label>): value} of a self-metric counter (0 for a pair not seen)."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for (sample, labels), number in samples.items():
        if sample == name:
            d = dict(labels)
            out[(d["endpoint"], d[label])] = number
    return out


def grown(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float], label: str) -> float:
    """How much the counters whose second key is `label` grew, summed over the endpoints."""
    return sum(after[k] - before[k] for k in after if k[1] == label)


def shown_status(samples: Samples, probe_id: str) -> str | None:
    for (name, labels), number in samples.items():
        d = dict(labels)
        if name == "callmeter_probe_status" and d.get("probe_id") == probe_id and number == 1:
            return d["status"]
    return None


def probes_shown(samples: Samples) -> bool:
    return any(k[0] == "callmeter_probe_status" for k in samples)


@dataclass(eq=False)
class Exporter:
    """One exporter process, the schedule it runs, and the proxy it reads the API through (if any)."""

    schedule: str
    process: ExporterProcess
    proxy: FaultProxy | None = None

    def samples(self) -> Samples:
        return parse_samples(self.process.metrics())

    def log_mark(self) -> int:
        return len(self.process.output())

    def events(self, since: int) -> list[dict[str, Any]]:
        out = []
        for line in self.process.output()[since:].splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def alive(self) -> None:
        assert self.process.proc.poll() is None, (f"the {self.schedule} exporter exited:\n"
                                                  + self.process.output()[-3000:])

    def fresh_since(self, since: float, samples: Samples) -> bool:
        return value(samples, "callmeter_up") == 1 and all(
            (value(samples, "callmeter_exporter_last_success_timestamp_seconds", resource=r) or 0) >= since
            for r in POLLED)

    @contextlib.contextmanager
    def named(self) -> Iterator[None]:
        """Name the schedule in an assertion that fails inside."""
        try:
            yield
        except AssertionError as exc:
            raise AssertionError(f"[CALLMETER_SCHEDULE={self.schedule}] {exc}") from exc


def wait_each(exporters: Iterable[Exporter], condition: Callable[[Exporter], Any], timeout: float,
              what: str) -> dict[Exporter, float]:
    """Poll `condition` on every exporter until it has held on each; the seconds each one took. The
    conditions waited for hold from then on (a counter grew, a fault shows, a fresh read came)."""
    pending = list(exporters)
    took: dict[Exporter, float] = {}
    start = time.monotonic()
    while pending:
        for exporter in list(pending):
            exporter.alive()
            with contextlib.suppress(httpx.HTTPError):
                if condition(exporter):
                    took[exporter] = time.monotonic() - start
                    pending.remove(exporter)
        if pending and time.monotonic() - start > timeout:
            late = pending[0]
            raise AssertionError(f"timed out after {timeout}s waiting for {what} under "
                                 f"{', '.join(e.schedule for e in pending)}:\n" + late.process.output()[-3000:])
        time.sleep(0.1)
    return took


@contextlib.contextmanager
def started(sim: SimulatorProcess, *, proxied: bool = False, **env: str) -> Iterator[tuple[Exporter, ...]]:
    """An exporter for each schedule, with the FAST settings and `env`, ready (`proxied`: each through a
    FaultProxy of its own); on leaving, checked (alive, no traceback) and stopped, which it must do cleanly."""
    with contextlib.ExitStack() as stack:

        def start(schedule: str) -> Exporter:
            proxy = FaultProxy(sim.port) if proxied else None
            if proxy is not None:
                stack.callback(proxy.close)
            process = stack.enter_context(ExporterProcess(env={
                **FAST, "CALLMETER_SCHEDULE": schedule, "CALLMETER_API_KEY": sim.key,
                "CALLMETER_BASE_URL": f"{proxy.url}/api/v1" if proxy is not None else sim.base_url, **env}))
            return Exporter(schedule, process, proxy)

        exporters = tuple(start(schedule) for schedule in SCHEDULES)
        for exporter in exporters:
            exporter.process.wait_ready(60)
        yield exporters
        for exporter in exporters:
            with exporter.named():
                exporter.alive()
                assert "Traceback" not in exporter.process.output()
    for exporter in exporters:
        with exporter.named():
            assert exporter.process.proc.returncode == 0, "the exporter did not stop cleanly"


@dataclass
class Rig:
    """The simulator, and an exporter of each schedule reading it through a proxy of its own. Faults are
    turned on and off through it, so that it knows when the last one was cleared."""

    sim: SimulatorProcess
    exporters: tuple[Exporter, ...]
    cleared_at: float = 0.0
    """When the last fault was cleared (at first none was: the exporters are ready, every resource read)."""
    faulty: bool = False

    def wait(self, condition: Callable[[Exporter], Any], timeout: float, what: str) -> dict[Exporter, float]:
        return wait_each(self.exporters, condition, timeout, what)

    def faults(self, **faults: Any) -> None:
        """Turn simulator fault switches on (`faults.Faults`)."""
        self.faulty = True
        self.sim.faults(**faults)

    @property
    def proxies(self) -> list[FaultProxy]:
        return [e.proxy for e in self.exporters if e.proxy is not None]

    def proxy_mode(self, mode: str) -> None:
        self.faulty = True
        for proxy in self.proxies:
            proxy.set_mode(mode)

    def revoke(self) -> None:
        self.faulty = True
        self.sim.control("/_sim/keys", {"revoke": self.sim.key})

    def clear(self) -> float:
        """Every fault off (simulator switches, proxy, revoked key); returns the moment just before, so
        that a read that failed under the fault cannot have succeeded after it."""
        self.cleared_at = time.time()
        self.sim.reset_faults()
        for proxy in self.proxies:
            proxy.set_mode("pass")
        self.sim.control("/_sim/keys", {"restore": self.sim.key})
        self.faulty = False
        return self.cleared_at

    def healthy(self) -> None:
        """No fault anywhere, and every resource read by each exporter since the last one was cleared: the
        start line of every test. (A test that saw its exporters recover leaves them there already.)"""
        if self.faulty:
            self.clear()
        since = self.cleared_at
        self.wait(lambda e: e.fresh_since(since, e.samples()), 30, "a healthy exporter")

    def probe(self, project_slug: str, index: int = 0) -> dict[str, Any]:
        state = self.sim.state()
        project = next(p for p in state["projects"] if p["slug"] == project_slug)
        probes: list[dict[str, Any]] = [p for p in state["probes"] if p["project_id"] == project["id"]]
        return probes[index]

    def force(self, probe_id: str) -> str:
        """Force a probe to a status that no exporter shows now; returns it."""
        shown = {shown_status(e.samples(), probe_id) for e in self.exporters}
        status = next(s for s in ("UNHEALTHY", "DEGRADED", "HEALTHY") if s not in shown)
        self.sim.control(f"/_sim/probes/{probe_id}", {"status": status})
        return status

    def unforce(self, probe_id: str) -> None:
        self.sim.control(f"/_sim/probes/{probe_id}", {"status": None})


@pytest.fixture(scope="module")
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    sim = SimulatorProcess("--projects", "2", "--probes", "150", "--tests", "4", "--run-period", "20",
                           "--run-duration", "4")
    try:
        with started(sim, proxied=True) as exporters:
            yield Rig(sim, exporters)
    finally:
        sim.stop()
        report = request.config.pluginmanager.get_plugin("terminalreporter")
        if report is not None and RECOVERY:
            report.write_line("")
            report.write_line(f"{'time to recover after the fault was cleared (s)':<57}"
                              + "".join(f"{s:>10}" for s in SCHEDULES))
            for name, seconds in RECOVERY.items():
                report.write_line(f"  {name:<55}" + "".join(f"{seconds.get(s, math.nan):10.1f}" for s in SCHEDULES))


def recovered_in(name: str, took: dict[Exporter, float]) -> None:
    RECOVERY[name].update({e.schedule: seconds for e, seconds in took.items()})


@dataclass
class Fault:
    name: str
    start: Callable[[Rig], None]  # `Rig.clear` ends it
    kind: str            # callmeter_exporter_api_errors_total{error}
    code: str            # callmeter_exporter_api_requests_total{code}
    up: float            # callmeter_up while it lasts
    hidden: str = "production"  # project whose forced probe status must not show during the fault
    visible: str | None = None  # project whose forced probe status must show during the fault


def _sim(**faults: Any) -> Callable[[Rig], None]:
    return lambda r: r.faults(**faults)


def _proxy(mode: str) -> Callable[[Rig], None]:
    return lambda r: r.proxy_mode(mode)


FAULTS = [
    Fault("5xx burst", _sim(error_rate=1.0), "server_error", "500", 0),
    Fault("connection reset", _proxy("reset"), "connection", "error", 0),
    Fault("connection refused, API back on same port", _proxy("down"), "connection", "error", 0),
    Fault("response cut mid-body", _proxy("truncate"), "connection", "error", 0),
    Fault(f"latency 2.5 s > timeout {HTTP_TIMEOUT:g} s", _sim(latency=2.5), "timeout", "error", 0),
    Fault("malformed (truncated) JSON", _sim(malformed_rate=1.0), "invalid_response", "200", 0),
    Fault("401: key revoked, then restored", Rig.revoke, "unauthorized", "401", 0),
    Fault("403 on one project", _sim(forbidden_projects=["staging"]), "forbidden", "403", 1,
          hidden="staging", visible="production"),
]


@dataclass(frozen=True)
class Before:
    """What an exporter showed before a fault, and where its log stood."""

    samples: Samples
    log: int

    @classmethod
    def of(cls, exporter: Exporter) -> Before:
        return cls(exporter.samples(), exporter.log_mark())


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_keeps_last_data_counts_logs_once_and_recovers(rig: Rig, fault: Fault) -> None:
    rig.healthy()
    before = {e: Before.of(e) for e in rig.exporters}
    hidden = rig.probe(fault.hidden)["id"]
    visible = rig.probe(fault.visible)["id"] if fault.visible else None

    def new_errors(e: Exporter, samples: Samples | None = None) -> float:
        return grown(counters(samples or e.samples(), ERRORS, "error"),
                     counters(before[e].samples, ERRORS, "error"), fault.kind)

    fault.start(rig)
    try:
        rig.wait(lambda e: new_errors(e) > 0, 20, f"a {fault.kind} error to be counted")
        hidden_status = rig.force(hidden)
        visible_status = rig.force(visible) if visible else None
        # Retried kinds (5xx, timeouts, connection, garbled bodies) reach the poller only once the
        # client has given up: several attempts on every route, a few seconds of backoff.
        rig.wait(lambda e: value(e.samples(), "callmeter_up") == fault.up, 30, f"callmeter_up {fault.up:g}")
        time.sleep(1.0)
        for e in rig.exporters:
            during = e.samples()
            with e.named():
                e.alive()
                assert value(during, "callmeter_up") == fault.up
                lost = resource_series(before[e].samples) - resource_series(during)
                assert not lost, f"series lost during the fault: {sorted(lost)[:5]}"
                assert shown_status(during, hidden) != hidden_status, "a value was shown that the API could not give"
        if visible:
            rig.wait(lambda e: shown_status(e.samples(), visible) == visible_status, 10,
                     "the unaffected project to update")

        def repeated(e: Exporter) -> bool:
            # A burst must hold more than one failed request before the fault clears: the adaptive
            # schedule may otherwise have met each route's failure only once.
            bursts = {(ev.get("route"), ev.get("project")) for ev in e.events(before[e].log)
                      if ev.get("event") in ("api.error", "api.rate_limited") and ev.get("error") == fault.kind}
            return new_errors(e) > len(bursts)

        rig.wait(repeated, 60, "a failure repeated within one burst")
    finally:
        cleared = rig.clear()

    def recovered(e: Exporter) -> bool:
        s = e.samples()
        return e.fresh_since(cleared, s) and shown_status(s, hidden) == hidden_status

    recovered_in(fault.name, rig.wait(recovered, 30, "recovery"))
    after = {e: e.samples() for e in rig.exporters}
    rig.unforce(hidden)
    if visible:
        rig.unforce(visible)

    for e in rig.exporters:
        with e.named():
            lost = resource_series(before[e].samples) - resource_series(after[e])
            assert not lost, f"series lost after the fault: {sorted(lost)[:5]}"

            # Counted by route and kind, and by route and code.
            errors_after = counters(after[e], ERRORS, "error")
            assert new_errors(e, after[e]) > 0
            assert grown(counters(after[e], REQUESTS, "code"), counters(before[e].samples, REQUESTS, "code"),
                         fault.code) > 0
            assert all(k[0] == "/projects" or (k[0].startswith("/projects/") and "{" in k[0]) for k in errors_after)

            # Logged once per burst (per route and project), not once per failed request; recovery noted.
            events = e.events(before[e].log)
            bursts = Counter((ev.get("route"), ev.get("project"), ev["error"]) for ev in events
                             if ev.get("event") in ("api.error", "api.rate_limited") and ev.get("error") == fault.kind)
            assert bursts, "the fault was not logged"
            assert set(bursts.values()) == {1}, bursts
            assert new_errors(e, after[e]) > len(bursts), (new_errors(e, after[e]), bursts)
            assert any(ev.get("event") == "api.recovered" for ev in events)
            assert not [ev for ev in events
                        if ev.get("event") == "refresh.crashed" or ev.get("level") in ("error", "critical")]


def test_slow_answers_within_the_timeout_are_no_fault(rig: Rig) -> None:
    rig.healthy()
    errors_before = {e: counters(e.samples(), ERRORS, "error") for e in rig.exporters}
    probe = rig.probe("production")["id"]
    rig.faults(latency=0.6)
    try:
        status = rig.force(probe)
        rig.wait(lambda e: shown_status(e.samples(), probe) == status, 15, "fresh data through slow answers")
        for e in rig.exporters:
            with e.named():
                assert value(e.samples(), "callmeter_up") == 1
    finally:
        rig.clear()
        rig.unforce(probe)
    for e in rig.exporters:
        with e.named():
            assert counters(e.samples(), ERRORS, "error") == errors_before[e]


def _intervals(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {k: v for k, v in samples.items() if k[0] == "callmeter_probe_interval_seconds"}


def _probe_labels(samples: Samples, probe_id: str) -> dict[str, str]:
    for (name, labels), _ in samples.items():
        d = dict(labels)
        if name == "callmeter_probe_interval_seconds" and d["probe_id"] == probe_id:
            return d
    raise AssertionError(f"no probe {probe_id}")


def test_schema_drift_is_absorbed(rig: Rig) -> None:
    rig.healthy()
    baseline = {e: e.samples() for e in rig.exporters}
    errors_before = {e: counters(s, ERRORS, "error") for e, s in baseline.items()}

    # Unknown fields everywhere and every number sent as a string: nothing changes.
    since = time.time()
    rig.faults(extra_fields=True, string_numbers=True)
    rig.wait(lambda e: e.fresh_since(since, e.samples()), 20, "a refresh of drifted payloads")
    for e in rig.exporters:
        drifted = e.samples()
        with e.named():
            assert _intervals(drifted) == _intervals(baseline[e])
            assert resource_series(baseline[e]) <= resource_series(drifted)

    # A status nobody documented becomes a new state of the state set, 1 for it and 0 for the rest.
    probe = rig.probe("production")["id"]
    rig.faults(status_override="MAINTENANCE")
    rig.wait(lambda e: shown_status(e.samples(), probe) == "MAINTENANCE", 15, "the new status")
    for e in rig.exporters:
        s = e.samples()
        with e.named():
            assert value(s, "callmeter_probe_status", **_probe_labels(s, probe), status="HEALTHY") == 0
            assert sum(v for (n, labels), v in s.items() if n == "callmeter_probe_status"
                       and dict(labels)["probe_id"] == probe) == 1

    # A documented field that disappears yields no sample, never a made-up one; the rest stays.
    rig.clear()
    rig.faults(drop_fields=["status"])
    rig.wait(lambda e: shown_status(e.samples(), probe) is None, 15, "the status series to go")
    for e in rig.exporters:
        s = e.samples()
        with e.named():
            assert set(_intervals(s)) == set(_intervals(baseline[e]))
            assert value(s, "callmeter_up") == 1

    def documented(e: Exporter) -> bool:
        s = e.samples()
        return shown_status(s, probe) not in (None, "MAINTENANCE") and e.fresh_since(since, s)

    since = rig.clear()
    recovered_in("schema drift (back to documented)", rig.wait(documented, 20, "documented payloads again"))
    for e in rig.exporters:
        with e.named():
            assert counters(e.samples(), ERRORS, "error") == errors_before[e], "drift is not an error"


def test_stale_data_is_dropped_after_max_age_and_comes_back(rig: Rig) -> None:
    """CALLMETER_MAX_DATA_AGE=7: an API that stops answering stops the resource series 7 s later, while
    the last-success timestamps stay and age; the series return with the API."""
    rig.healthy()
    # The max age is above the gaps between two reads of a probe list here (fixed: 1 s; adaptive: 3 to
    # 5 s, see FAST), so the data expires only when the API stops answering. (In an account whose probes
    # execute minutes apart, the adaptive schedule reads minutes apart: a max age must be longer still.)
    with started(rig.sim, CALLMETER_MAX_DATA_AGE=str(MAX_AGE)) as stale:
        wait_each(stale, lambda e: probes_shown(e.samples()), 10, "probe series")
        mark = {e: e.log_mark() for e in stale}
        rig.faults(error_rate=1.0)
        broken = time.time()
        try:
            took = wait_each(stale, lambda e: not probes_shown(e.samples()), 20, "probe series to expire")
            lasts = {e: value(e.samples(), "callmeter_exporter_last_success_timestamp_seconds", resource="probes")
                     for e in stale}
            looked = time.time()
            # callmeter_up falls when the client gives up (retries with 1 + 2 + 4 s of jittered backoff),
            # which may be after the data has expired.
            wait_each(stale, lambda e: value(e.samples(), "callmeter_up") == 0, 10, "callmeter_up 0")
            time.sleep(max(0.0, looked + 1.5 - time.time()))  # the timestamps stay as they age
            for e in stale:
                gone, last, s = broken + took[e], lasts[e], e.samples()
                with e.named():
                    assert last is not None
                    assert gone - last >= MAX_AGE - 0.5, "dropped before the max age"
                    assert gone - last <= MAX_AGE + 3, "kept well past the max age"
                    assert not [k for k in s if k[0].startswith(("callmeter_test_run_", "callmeter_registrar_info"))]
                    assert value(s, "callmeter_exporter_last_success_timestamp_seconds", resource="probes") == last
                    assert gone - broken < 20
        finally:
            cleared = rig.clear()
        recovered_in("stale data dropped, API back", wait_each(
            stale, lambda e: probes_shown(e.samples()), 30, "the probe series to return"))
        for e in stale:
            s = e.samples()
            with e.named():
                # Back from a read the API answered after the fault was cleared, and the recovery logged.
                assert (value(s, "callmeter_exporter_last_success_timestamp_seconds", resource="probes")
                        or 0) >= cleared
                assert value(s, "callmeter_up") == 1
                assert any(ev.get("event") == "api.recovered" for ev in e.events(mark[e]))


def test_a_list_that_shrinks_while_it_is_read_loses_no_live_probe(rig: Rig) -> None:
    """Offset pagination skips an item when an earlier one is deleted between two page reads; the
    client reads a listing again when its total moves, so a probe that lives on never blinks out."""
    rig.healthy()
    state = rig.sim.state()
    production = next(p["id"] for p in state["projects"] if p["slug"] == "production")
    probes = [p["id"] for p in state["probes"] if p["project_id"] == production]
    doomed = probes[1:1 + 5 * len(rig.exporters)]
    survivors = set(probes) - set(doomed)
    batches = {e: doomed[5 * i:5 * (i + 1)] for i, e in enumerate(rig.exporters)}
    deleted: set[Exporter] = set()
    hook_errors: list[BaseException] = []
    lock = threading.Lock()
    page_two = f"GET /api/v1/projects/{production}/probes?page=2&".encode()
    marks = {e: e.log_mark() for e in rig.exporters}
    missing: list[tuple[str, set[str]]] = []
    stop = threading.Event()

    # Each exporter's own reading meets a deletion, whenever its schedule reads: when its proxy is about
    # to pass on its first request for page 2, five probes of page 1 are deleted. The other exporter's
    # deletion falls where it falls; two in all can move at most two readings in a row, and the client
    # reads a list that moved again twice (LIST_RESTARTS).
    def deleting(e: Exporter) -> Callable[[bytes], None]:
        def hook(head: bytes) -> None:
            with lock:
                if not head.startswith(page_two) or e in deleted:
                    return
                deleted.add(e)
                try:
                    for probe in batches[e]:
                        rig.sim.control("/_sim/delete", {"kind": "probe", "id": probe})
                except Exception as exc:  # in the proxy's thread: kept for the test to fail on
                    hook_errors.append(exc)
        return hook

    def shown(e: Exporter) -> set[str]:
        return {dict(labels)["probe_id"] for (name, labels) in e.samples()
                if name == "callmeter_probe_interval_seconds"}

    def watch() -> None:
        while not stop.is_set():
            for e in rig.exporters:
                with contextlib.suppress(httpx.HTTPError):
                    lost = survivors - shown(e)
                    if lost:
                        missing.append((e.schedule, lost))
            time.sleep(0.05)

    rig.wait(lambda e: survivors <= shown(e), 10, "every probe shown")  # published a moment after it is read
    rig.faults(latency=0.3)  # page 2 is read a good while after page 1
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for e in rig.exporters:
            assert e.proxy is not None
            e.proxy.on_request = deleting(e)
        rig.wait(lambda e: e in deleted, 20, "a deletion while the list is read")
        # Watched until each exporter has read the list after the last delete.
        rig.wait(lambda e: not shown(e) & set(doomed), 15, "deleted probes to go")
    finally:
        for proxy in rig.proxies:
            proxy.on_request = None
        stop.set()
        watcher.join(10)
        rig.clear()
    assert not hook_errors, hook_errors
    assert not missing, (f"live probes missing from {len(missing)} scrapes, e.g. under {missing[0][0]}: "
                         f"{sorted(missing[0][1])[:3]}")
    for e in rig.exporters:
        moved = [ev for ev in e.events(marks[e]) if ev.get("event") == "api.list_moved"]
        print(f"{e.schedule}: listings read again after the list moved: {len(moved)}")
        with e.named():
            assert moved, "a reading that met a deletion was not read again"


def test_deleted_resources_go_away_and_a_deleted_project_404s(rig: Rig) -> None:
    """Deletion is the one fault whose data must not be kept: the series of what is gone go away."""
    # With the project list read every 3 s, either schedule may see a deleted project there before any
    # read of the project's own lists meets it, and then drops it without a 404 (the same outcome). Two
    # more exporters read the project list once a minute (as in production: every 15), so that a read of
    # the project's lists gets the 404 first; these tell the 404 and its log line.
    with started(rig.sim, CALLMETER_INVENTORY_MIN_INTERVAL="60") as slow:
        rig.healthy()
        state = rig.sim.state()
        slug = {p["id"]: p["slug"] for p in state["projects"]}
        staging = next(p["id"] for p in state["projects"] if p["slug"] == "staging")
        probe = rig.probe("production")["id"]
        test = next(t for t in state["tests"] if slug[t["project_id"]] == "production")
        everyone = (*rig.exporters, *slow)
        before = {e: Before.of(e) for e in everyone}
        for e in rig.exporters:
            with e.named():
                assert any(dict(k[1]).get("test_id") == test["id"] for k in before[e].samples)

        rig.sim.control("/_sim/delete", {"kind": "probe", "id": probe})
        rig.sim.control("/_sim/delete", {"kind": "test", "id": test["id"]})
        rig.sim.control("/_sim/delete", {"kind": "project", "id": staging})
        started_at = time.time()

        def gone(e: Exporter) -> bool:
            return not any(dict(labels).get("probe_id") == probe or dict(labels).get("test_id") == test["id"]
                           or dict(labels).get("project") == "staging" for _, labels in e.samples())

        def project_gone(e: Exporter) -> bool:
            return not any(dict(labels).get("project") == "staging" for _, labels in e.samples())

        recovered_in("deleted probe/test/project: series gone",
                     rig.wait(gone, 20, "the deleted resources' series to go"))
        wait_each(slow, project_gone, 20, "the deleted project's series to go")
        for e in rig.exporters:
            after = e.samples()
            with e.named():
                e.alive()
                assert value(after, "callmeter_up") == 1
                kept = {k for k in resource_series(before[e].samples) if dict(k[1]).get("project") == "production"
                        and dict(k[1]).get("probe_id") != probe and dict(k[1]).get("test_id") != test["id"]}
                assert kept <= resource_series(after), "the other resources lost series"
        # The deleted project answered 404 at least once (the slow exporters: surely), counted as
        # not_found; logged once per route of its lists. A run's detail is one item: a run of the deleted
        # test whose detail was due (adaptive: one watched while it ran, read when it should end) answers
        # 404 too, and a detail of another run of the project read in between ends that burst: a line each.
        time.sleep(1.0)
        for e in everyone:
            s = e.samples()
            lines = Counter((ev.get("route"), ev.get("project")) for ev in e.events(before[e].log)
                            if ev.get("event") == "api.error" and ev.get("error") == "not_found"
                            and ev.get("route") != "/projects/{projectId}/test-runs/{testRunId}")
            with e.named():
                assert value(s, "callmeter_up") == 1
                assert set(lines.values()) <= {1}, lines
                if e in slow:
                    assert grown(counters(s, ERRORS, "error"), counters(before[e].samples, ERRORS, "error"),
                                 "not_found") > 0
                    assert lines, "the 404 was not logged"
        assert time.time() - started_at < 30
