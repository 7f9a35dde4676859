"""From snapshot to metric families: pure functions, no I/O and no state between calls.

    probe_families(project_label, probes)        -> callmeter_probe_*
    threshold_families(probes, details)          -> callmeter_probe_threshold, callmeter_probe_info
    run_families(project_label, tests, ...)      -> callmeter_test_run_*
    endpoint_outcome_family(tests, tallies)      -> callmeter_test_run_endpoint_outcomes
    settings_family(tests, details)              -> callmeter_test_info
    inventory_families(projects)                 -> callmeter_project_info, callmeter_registrar_info
    snapshot_families(snapshot, now, ...)        -> all of them, stale data left out

A null or missing field yields no sample. Units are converted to Prometheus base units here and
nowhere else: milliseconds to seconds, percentages to ratios.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..api.models import (
    KNOWN_ENDPOINT_OUTCOMES,
    KNOWN_PROBE_STATUSES,
    KNOWN_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    Probe,
    Project,
    Registrar,
    RunSummary,
    Test,
    TestRun,
)
from ..model.details import ProbeDetail, TestDetail, Threshold
from ..model.endpoints import EndpointTally
from ..model.snapshot import ProjectData, Snapshot

CACHED = "Cached: refreshed in the background from the CallMeter API, which is rate-limited."
PROBE_LABELS = ["project", "probe_id", "probe"]
TEST_LABELS = ["project", "test_id", "test"]
ENDPOINT_STATES = ("total", "registered", "registration_failed", "in_call", "completed")

PacketLossUnit = Literal["percent", "fraction"]


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, f"{doc} {CACHED}", labels=labels)


def state_values(current: str | None, known: Iterable[str]) -> Iterator[tuple[str, float]]:
    """A state set: every known state with 0, the current one with 1 (no samples if unknown)."""
    if current is None:
        return
    for state in sorted({*known, current}):
        yield state, 1.0 if state == current else 0.0


def probe_families(rows: Iterable[tuple[str, Probe]], statuses: Iterable[str] = ()) -> list[Metric]:
    status = _gauge("callmeter_probe_status", "Current health of the probe: 1 for its status, 0 for the others.",
                    [*PROBE_LABELS, "status"])
    interval = _gauge("callmeter_probe_interval_seconds", "Configured execution interval of the probe.",
                      PROBE_LABELS)
    last = _gauge("callmeter_probe_last_execution_timestamp_seconds",
                  "Unix time of the probe's last execution.", PROBE_LABELS)
    nxt = _gauge("callmeter_probe_next_execution_timestamp_seconds",
                 "Unix time of the probe's next scheduled execution.", PROBE_LABELS)
    known = {*KNOWN_PROBE_STATUSES, *statuses}
    for project, probe in rows:
        labels = [project, probe.id, probe.name or probe.id]
        for state, value in state_values(probe.status, known):
            status.add_metric([*labels, state], value)
        if probe.interval_minutes is not None:
            interval.add_metric(labels, probe.interval_minutes * 60)
        if probe.last_execution_at is not None:
            last.add_metric(labels, probe.last_execution_at)
        if probe.next_execution_at is not None:
            nxt.add_metric(labels, probe.next_execution_at)
    return [status, interval, last, nxt]


def _ratio(value: float | None, *, percent: bool) -> float | None:
    if value is None:
        return None
    return round(value / 100, 9) if percent else value


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value / 1000, 9)


def quality_values(summary: RunSummary, packet_loss_unit: PacketLossUnit = "percent") -> dict[str, float | None]:
    """A run summary's quality fields in base units, keyed by the suffix of their `callmeter_test_run_*`
    metric (the gate judges these same values); None where the API sent null or nothing."""
    s = summary
    return {
        "mos": s.avg_mos,
        "jitter_seconds": _ms(s.avg_jitter_ms),
        "packet_loss_ratio": _ratio(s.avg_packet_loss_fraction, percent=packet_loss_unit == "percent"),
        "rtt_seconds": _ms(s.avg_rtt_ms),
        "asr_ratio": _ratio(s.asr, percent=True),
        "ner_ratio": _ratio(s.ner, percent=True),
    }


def completed_run_families(rows: Iterable[tuple[str, Test, TestRun]],
                           packet_loss_unit: PacketLossUnit = "percent") -> list[Metric]:
    """Quality and size of the latest COMPLETED run of each test."""
    doc = "of the latest completed run of the test."
    mos = _gauge("callmeter_test_run_mos", f"Average MOS (1-5) {doc}", TEST_LABELS)
    jitter = _gauge("callmeter_test_run_jitter_seconds", f"Average jitter {doc}", TEST_LABELS)
    loss = _gauge("callmeter_test_run_packet_loss_ratio", f"Average packet loss (0-1) {doc}", TEST_LABELS)
    rtt = _gauge("callmeter_test_run_rtt_seconds", f"Average round-trip time {doc}", TEST_LABELS)
    asr = _gauge("callmeter_test_run_asr_ratio", f"Answer-seizure ratio (0-1) {doc}", TEST_LABELS)
    ner = _gauge("callmeter_test_run_ner_ratio", f"Network effectiveness ratio (0-1) {doc}", TEST_LABELS)
    endpoints = _gauge("callmeter_test_run_endpoints", f"Endpoints by state {doc}", [*TEST_LABELS, "state"])
    start = _gauge("callmeter_test_run_start_timestamp_seconds", f"Unix start time {doc}", TEST_LABELS)
    end = _gauge("callmeter_test_run_end_timestamp_seconds", f"Unix end time {doc}", TEST_LABELS)
    for project, test, run in rows:
        labels = [project, test.id, test.name or test.id]
        s = run.summary
        if s is not None:
            quality = quality_values(s, packet_loss_unit)
            for family, value in zip((mos, jitter, loss, rtt, asr, ner), quality.values(), strict=True):
                if value is not None:
                    family.add_metric(labels, value)
            counts = (s.total_endpoints, s.registered_count, s.registration_failed_count, s.in_call_count,
                      s.completed_count)
            for state, count in zip(ENDPOINT_STATES, counts, strict=True):
                if count is not None:
                    endpoints.add_metric([*labels, state], count)
        if run.started_at is not None:
            start.add_metric(labels, run.started_at)
        if run.completed_at is not None:
            end.add_metric(labels, run.completed_at)
    return [mos, jitter, loss, rtt, asr, ner, endpoints, start, end]


def last_status_family(rows: Iterable[tuple[str, Test, TestRun]], statuses: Iterable[str] = ()) -> Metric:
    family = _gauge("callmeter_test_run_last_status",
                    "Status of the latest run of the test, whatever its state: 1 for it, 0 for the others.",
                    [*TEST_LABELS, "status"])
    known = {*KNOWN_RUN_STATUSES, *statuses}
    for project, test, run in rows:
        for state, value in state_values(run.status, known):
            family.add_metric([project, test.id, test.name or test.id, state], value)
    return family


def finished_runs_family(counts: Mapping[tuple[str, str, str], int], test_names: Mapping[tuple[str, str], str]
                         ) -> Metric:
    family = CounterMetricFamily(
        "callmeter_test_runs_finished",
        f"Test runs seen in a terminal state since the exporter started, each run counted once. {CACHED}",
        labels=[*TEST_LABELS, "status"])
    # Every terminal status starts at 0 for every known test, so the first failure is an increase.
    merged = {(project, test_id, status): 0 for (project, test_id) in test_names for status in TERMINAL_RUN_STATUSES}
    merged.update(counts)
    for (project, test_id, status), count in sorted(merged.items()):
        name = test_names.get((project, test_id))
        if name is not None:
            family.add_metric([project, test_id, name, status], count)
    return family


def threshold_value(threshold: Threshold, packet_loss_unit: PacketLossUnit = "percent") -> float | None:
    """A probe threshold in base units; None when it is out of its metric's range (MOS 1-5, a ratio 0-1).
    Packet loss given without a unit follows `CALLMETER_PACKET_LOSS_UNIT`, as the run summaries do."""
    value, unit = threshold.value, threshold.unit
    if unit == "mos":
        return value if 1 <= value <= 5 else None
    if value < 0:
        return None
    if unit == "ms":
        return _ms(value)
    if unit == "s":
        return value
    converted = _ratio(value, percent=unit == "percent" and packet_loss_unit == "percent")
    return converted if converted is not None and converted <= 1 else None


def threshold_families(rows: Iterable[tuple[str, Probe, ProbeDetail]], packet_loss_unit: PacketLossUnit = "percent"
                       ) -> list[Metric]:
    """The warning and critical lines of each probe, and the test each probe runs (where its detail says)."""
    threshold = _gauge("callmeter_probe_threshold", "Threshold CallMeter judges the probe's metric by (mos, "
                       "jitter_seconds, rtt_seconds, packet_loss_ratio), in base units, from the probe's detail.",
                       [*PROBE_LABELS, "metric", "level"])
    info = _gauge("callmeter_probe_info", "The test the probe runs, from the probe's detail (value 1).",
                  [*PROBE_LABELS, "test_id"])
    for project, probe, detail in rows:
        labels = [project, probe.id, probe.name or probe.id]
        info.add_metric([*labels, detail.test_id or ""], 1)
        for t in detail.thresholds:
            value = threshold_value(t, packet_loss_unit)
            if value is not None:
                threshold.add_metric([*labels, t.metric, t.level], value)
    return [threshold, info]


def _label_number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def settings_family(rows: Iterable[tuple[str, Test, TestDetail]]) -> Metric:
    family = _gauge("callmeter_test_info", "What the test is set to do, from its detail (value 1): duration in "
                    "seconds, endpoint count and codecs; empty where the detail does not say.",
                    [*TEST_LABELS, "duration_seconds", "endpoints", "codecs"])
    for project, test, detail in rows:
        duration = detail.duration_seconds if detail.duration_seconds is not None else test.duration_seconds
        endpoints = detail.total_endpoints if detail.total_endpoints is not None else test.total_endpoints
        family.add_metric([project, test.id, test.name or test.id, _label_number(duration),
                           _label_number(endpoints), ",".join(detail.codecs)], 1)
    return family


def endpoint_outcome_family(rows: Iterable[tuple[str, Test, EndpointTally]]) -> Metric:
    """Every group of a tally with every known outcome (0 where none), and any other outcome it counted."""
    family = _gauge("callmeter_test_run_endpoint_outcomes",
                    "Endpoints of the latest completed run of the test whose endpoint listing was read (once per "
                    "run), by group and outcome.", [*TEST_LABELS, "group", "outcome"])
    for project, test, tally in rows:
        labels = [project, test.id, test.name or test.id]
        others = {*tally.extra_outcomes, *(o for _, o in tally.counts)} - set(KNOWN_ENDPOINT_OUTCOMES)
        outcomes = [*KNOWN_ENDPOINT_OUTCOMES, *sorted(others)]
        for group in tally.groups:
            for outcome in outcomes:
                family.add_metric([*labels, group, outcome], tally.counts.get((group, outcome), 0))
    return family


def project_info_family(projects: Iterable[Project]) -> Metric:
    family = _gauge("callmeter_project_info", "CallMeter project visible to the exporter (value 1).",
                    ["project", "project_id", "name"])
    for project in projects:
        family.add_metric([project.label, project.id, project.name or project.label], 1)
    return family


def registrar_family(rows: Iterable[tuple[str, Registrar]]) -> Metric:
    family = _gauge("callmeter_registrar_info", "SIP registrar configured in the project (value 1).",
                    ["project", "registrar_id", "registrar", "uri", "transport"])
    for project, reg in rows:
        family.add_metric([project, reg.id, reg.name or reg.id, reg.uri or "", reg.transport or ""], 1)
    return family


def _test_rows(data: ProjectData, runs: Mapping[str, TestRun]) -> Iterator[tuple[str, Test, TestRun]]:
    for test in data.tests or ():
        run = runs.get(test.id)
        if run is not None:
            yield data.project.label, test, run


def _outcome_rows(data: ProjectData) -> Iterator[tuple[str, Test, EndpointTally]]:
    """Each test's endpoint tally. A newer completed run's takes its place once its listing is read: until
    then the series keep the previous run's values, as the quality series do until a run's detail is read."""
    for test in data.tests or ():
        tally = data.endpoint_outcomes.get(test.id)
        if tally is not None:
            yield data.project.label, test, tally


def snapshot_families(snapshot: Snapshot, *, now: float, packet_loss_unit: PacketLossUnit = "percent"
                      ) -> list[Metric]:
    """Every resource family of the snapshot; a resource older than the snapshot's max data age is left out."""
    fresh = snapshot.fresh
    projects = snapshot.projects
    probes = [(p.project.label, probe) for p in projects if fresh(p.fetched.get("probes"), "probes", now)
              for probe in p.probes or ()]
    with_tests = [p for p in projects if fresh(p.fetched.get("tests"), "tests", now)
                  and fresh(p.fetched.get("test_runs"), "test_runs", now)]
    completed = [row for p in with_tests for row in _test_rows(p, p.latest_completed)]
    latest = [row for p in with_tests for row in _test_rows(p, p.latest_runs)]
    names = {(p.project.label, t.id): t.name or t.id for p in projects if fresh(p.fetched.get("tests"), "tests", now)
             for t in p.tests or ()}
    registrars = [(p.project.label, r) for p in projects if fresh(p.fetched.get("registrars"), "registrars", now)
                  for r in p.registrars or ()]
    thresholds = [(p.project.label, probe, p.probe_details[probe.id]) for p in projects
                  if fresh(p.fetched.get("probes"), "probes", now)
                  for probe in p.probes or () if probe.id in p.probe_details]
    settings = [(p.project.label, t, p.test_details[t.id]) for p in projects
                if fresh(p.fetched.get("tests"), "tests", now) for t in p.tests or () if t.id in p.test_details]
    return [
        project_info_family(p.project for p in projects),
        *probe_families(probes, snapshot.probe_statuses),
        *threshold_families(thresholds, packet_loss_unit),
        *completed_run_families(completed, packet_loss_unit),
        endpoint_outcome_family(row for p in with_tests for row in _outcome_rows(p)),
        last_status_family(latest, snapshot.run_statuses),
        finished_runs_family(snapshot.finished_runs, names),
        settings_family(settings),
        registrar_family(registrars),
    ]
