"""The JSON-to-metric mapping, on the API reference's own example responses."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.api.models import KNOWN_ENDPOINT_OUTCOMES, Probe, Registrar, Test, TestRun
from exporter.expose.families import (
    completed_run_families,
    endpoint_outcome_family,
    probe_families,
    quality_values,
    registrar_family,
    settings_family,
    snapshot_families,
    threshold_families,
    threshold_value,
)
from exporter.model.details import Detail, ProbeDetail, Threshold, read_probe_detail, read_test_detail
from exporter.model.endpoints import EndpointTally
from exporter.model.snapshot import ProjectData, Snapshot
from tests.support.golden import GOLDEN, render_reference
from tests.support.reference import NOW, load, reference_snapshot


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(self)  # type: ignore[arg-type]
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families

    def value(self, metric: str, /, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, labels)

    def names(self) -> set[str]:
        return {s.name for f in self._families for s in f.samples}


TEST = {"project": "production", "test_id": "abc123", "test": "Production Stress Test"}
PROBE = {"project": "production", "probe_id": "probe_abc123", "probe": "Production Health Check"}


def test_reference_run_is_converted_to_base_units() -> None:
    f = Families(snapshot_families(reference_snapshot(), now=NOW))
    assert f.value("callmeter_test_run_mos", **TEST) == 4.21
    assert f.value("callmeter_test_run_jitter_seconds", **TEST) == 0.0083
    assert f.value("callmeter_test_run_rtt_seconds", **TEST) == 0.0452
    # 0.12 is a percentage: MOS 4.21 is only possible with 0.12 % loss, not 12 %.
    assert f.value("callmeter_test_run_packet_loss_ratio", **TEST) == 0.0012
    assert f.value("callmeter_test_run_asr_ratio", **TEST) == 0.996
    assert f.value("callmeter_test_run_ner_ratio", **TEST) == 1.0
    assert f.value("callmeter_test_run_endpoints", **TEST, state="registration_failed") == 2
    assert f.value("callmeter_test_run_endpoints", **TEST, state="total") == 500
    assert f.value("callmeter_test_run_start_timestamp_seconds", **TEST) == 1768474801.0
    assert f.value("callmeter_test_run_end_timestamp_seconds", **TEST) == 1768474955.0
    assert f.value("callmeter_test_runs_finished_total", **TEST, status="COMPLETED") == 1
    # Zero from the start, so that the first FAILED run is an increase an alert can see.
    assert f.value("callmeter_test_runs_finished_total", **TEST, status="FAILED") == 0


def test_packet_loss_unit_fraction_takes_the_value_as_is() -> None:
    f = Families(snapshot_families(reference_snapshot(), now=NOW, packet_loss_unit="fraction"))
    assert f.value("callmeter_test_run_packet_loss_ratio", **TEST) == 0.12


def test_null_fields_yield_no_series_never_zero_or_nan() -> None:
    f = Families(snapshot_families(reference_snapshot(avgMos=None, avgRttMs=None, inCallCount=None), now=NOW))
    assert f.value("callmeter_test_run_mos", **TEST) is None
    assert f.value("callmeter_test_run_rtt_seconds", **TEST) is None
    assert f.value("callmeter_test_run_endpoints", **TEST, state="in_call") is None
    assert f.value("callmeter_test_run_jitter_seconds", **TEST) == 0.0083


PROBE_SERIES = {"intervalMinutes": ("callmeter_probe_interval_seconds", 900.0),
                "lastExecutionAt": ("callmeter_probe_last_execution_timestamp_seconds", 1768474800.0),
                "nextExecutionAt": ("callmeter_probe_next_execution_timestamp_seconds", 1768475700.0)}
"""Each numeric field of the reference probe, the series it fills, and its value there."""

RUN_SERIES = {
    "avgMos": ("callmeter_test_run_mos", {}, 4.21),
    "avgJitterMs": ("callmeter_test_run_jitter_seconds", {}, 0.0083),
    "avgPacketLossFraction": ("callmeter_test_run_packet_loss_ratio", {}, 0.0012),
    "avgRttMs": ("callmeter_test_run_rtt_seconds", {}, 0.0452),
    "asr": ("callmeter_test_run_asr_ratio", {}, 0.996),
    "ner": ("callmeter_test_run_ner_ratio", {}, 1.0),
    "totalEndpoints": ("callmeter_test_run_endpoints", {"state": "total"}, 500),
    "registeredCount": ("callmeter_test_run_endpoints", {"state": "registered"}, 498),
    "registrationFailedCount": ("callmeter_test_run_endpoints", {"state": "registration_failed"}, 2),
    "inCallCount": ("callmeter_test_run_endpoints", {"state": "in_call"}, 0),
    "completedCount": ("callmeter_test_run_endpoints", {"state": "completed"}, 498),
}
"""Each field of the reference run's summary, the series it fills, and its value there (base units)."""


@pytest.mark.parametrize("absent", ["null", "missing"])
@pytest.mark.parametrize("field", sorted(PROBE_SERIES))
def test_a_null_or_missing_probe_field_yields_no_series_never_a_fake_zero(field: str, absent: str) -> None:
    raw = {**load("probes")[0]}
    if absent == "null":
        raw[field] = None
    else:
        del raw[field]
    f = Families(probe_families([("production", Probe.model_validate(raw))]))
    name, _ = PROBE_SERIES[field]
    assert f.value(name, **PROBE) is None
    assert not [s for fam in f.collect() if fam.name == name for s in fam.samples]
    # Only that series: the probe's other fields are still published, with their values.
    for other, (other_name, value) in PROBE_SERIES.items():
        if other != field:
            assert f.value(other_name, **PROBE) == value, other
    assert f.value("callmeter_probe_status", **PROBE, status="HEALTHY") == 1


@pytest.mark.parametrize("field", sorted(RUN_SERIES))
def test_a_null_summary_field_yields_no_series_and_only_that_one(field: str) -> None:
    f = Families(snapshot_families(reference_snapshot(**{field: None}), now=NOW))
    name, labels, _ = RUN_SERIES[field]
    assert f.value(name, **TEST, **labels) is None
    for other, (other_name, other_labels, value) in RUN_SERIES.items():
        if other != field:
            assert f.value(other_name, **TEST, **other_labels) == value, other


def test_a_real_zero_is_published_as_zero() -> None:
    probe = Probe.model_validate({**load("probes")[0], "intervalMinutes": 0})
    assert Families(probe_families([("production", probe)])).value("callmeter_probe_interval_seconds", **PROBE) == 0
    f = Families(snapshot_families(reference_snapshot(avgJitterMs=0, asr=0, registrationFailedCount=0), now=NOW))
    assert f.value("callmeter_test_run_jitter_seconds", **TEST) == 0
    assert f.value("callmeter_test_run_asr_ratio", **TEST) == 0
    assert f.value("callmeter_test_run_endpoints", **TEST, state="registration_failed") == 0


def test_probe_status_is_a_state_set_including_new_statuses() -> None:
    probe = Probe.model_validate({**load("probes")[0], "status": "maintenance"})
    f = Families(probe_families([("production", probe)], {"MAINTENANCE"}))
    assert f.value("callmeter_probe_status", **PROBE, status="MAINTENANCE") == 1
    for status in ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN"):
        assert f.value("callmeter_probe_status", **PROBE, status=status) == 0
    assert f.value("callmeter_probe_interval_seconds", **PROBE) == 900
    assert f.value("callmeter_probe_next_execution_timestamp_seconds", **PROBE) == 1768475700.0


def test_garbled_status_is_bounded() -> None:
    probe = Probe.model_validate({**load("probes")[0], "status": "<script>" * 20})
    assert probe.status == "UNRECOGNIZED"


def test_probe_without_status_has_no_state_series() -> None:
    probe = Probe.model_validate({**load("probes")[0], "status": None})
    f = Families(probe_families([("production", probe)]))
    assert "callmeter_probe_status" not in f.names()
    assert f.value("callmeter_probe_interval_seconds", **PROBE) == 900


def test_run_without_summary_gives_only_timestamps() -> None:
    test = Test.model_validate(load("tests")[0])
    run = TestRun.model_validate({k: v for k, v in load("test_run").items() if k != "summary"})
    f = Families(completed_run_families([("production", test, run)]))
    assert f.names() == {"callmeter_test_run_start_timestamp_seconds", "callmeter_test_run_end_timestamp_seconds"}


def test_latest_status_state_set_and_info_metrics() -> None:
    f = Families(snapshot_families(reference_snapshot(), now=NOW))
    assert f.value("callmeter_test_run_last_status", **TEST, status="COMPLETED") == 1
    assert f.value("callmeter_test_run_last_status", **TEST, status="STOPPING") == 0
    assert f.value("callmeter_project_info", project="production",
                   project_id="c3d4e5f6-a7b8-9012-cdef-123456789012", name="Production") == 1
    assert f.value("callmeter_registrar_info", project="production", registrar_id="reg_abc123",
                   registrar="Production SBC", uri="sip:pbx.example.com", transport="UDP") == 1


def test_stale_resources_are_not_served() -> None:
    snapshot = reference_snapshot()
    aged = Snapshot(projects=snapshot.projects, finished_runs=snapshot.finished_runs,
                    max_data_age={"probes": 60.0, "tests": 3600.0, "test_runs": 3600.0, "registrars": 3600.0})
    f = Families(snapshot_families(aged, now=NOW + 120))
    assert "callmeter_probe_status" not in f.names()
    assert f.value("callmeter_test_run_mos", **TEST) == 4.21
    assert aged.next_expiry(NOW) == NOW + 60


def test_deleted_test_takes_its_run_series_with_it() -> None:
    snapshot = reference_snapshot()
    data = snapshot.projects[0]
    before = {n for n in Families(snapshot_families(snapshot, now=NOW)).names() if n.startswith("callmeter_test_run")}
    assert {"callmeter_test_run_mos", "callmeter_test_run_last_status", "callmeter_test_runs_finished_total"} <= before
    gone = ProjectData(project=data.project, probes=data.probes, tests=(), latest_runs=data.latest_runs,
                       latest_completed=data.latest_completed,
                       fetched={"probes": NOW, "tests": NOW, "test_runs": NOW})
    f = Families(snapshot_families(Snapshot(projects=(gone,), finished_runs=snapshot.finished_runs), now=NOW))
    assert not {n for n in f.names() if n.startswith("callmeter_test_run")}
    # Only the test's series: the project and its probes are still served (an empty exposition is no pass).
    assert f.value("callmeter_project_info", project="production", project_id=data.project.id,
                   name="Production") == 1
    assert f.value("callmeter_probe_status", **PROBE, status="HEALTHY") == 1


def probe_detail(raw: dict[str, object]) -> ProbeDetail:
    return read_probe_detail(Detail.model_validate({"id": "probe_abc123", **raw}), read_at=NOW)[0]


def test_thresholds_are_in_base_units_and_only_where_given() -> None:
    probe = Probe.model_validate(load("probes")[0])
    detail = probe_detail({"testId": "abc123", "thresholds": {
        "mos": {"warning": 3.5}, "jitter_ms": {"critical": 80}, "rttSeconds": {"warning": 0.25},
        "packet_loss": {"warning": 1, "critical": 5}, "packetLossRatio": {"warning": 0.5}}})
    f = Families(threshold_families([("production", probe, detail)]))
    assert f.value("callmeter_probe_threshold", **PROBE, metric="mos", level="warning") == 3.5
    assert f.value("callmeter_probe_threshold", **PROBE, metric="mos", level="critical") is None
    assert f.value("callmeter_probe_threshold", **PROBE, metric="jitter_seconds", level="critical") == 0.08
    assert f.value("callmeter_probe_threshold", **PROBE, metric="rtt_seconds", level="warning") == 0.25
    # Packet loss in percent, as CallMeter documents it; the first of two warnings wins.
    assert f.value("callmeter_probe_threshold", **PROBE, metric="packet_loss_ratio", level="warning") == 0.01
    assert f.value("callmeter_probe_threshold", **PROBE, metric="packet_loss_ratio", level="critical") == 0.05
    assert f.value("callmeter_probe_info", **PROBE, test_id="abc123") == 1
    fraction = Families(threshold_families([("production", probe, detail)], packet_loss_unit="fraction"))
    assert fraction.value("callmeter_probe_threshold", **PROBE, metric="packet_loss_ratio", level="critical") is None


def test_thresholds_out_of_their_metrics_range_yield_no_series() -> None:
    probe = Probe.model_validate(load("probes")[0])
    detail = probe_detail({"thresholds": {"mos": {"warning": 35, "critical": 0}, "jitter": {"warning": -1},
                                          "packet_loss": {"critical": 500}}})
    f = Families(threshold_families([("production", probe, detail)]))
    assert not [s for fam in f.collect() if fam.name == "callmeter_probe_threshold" for s in fam.samples]
    assert f.value("callmeter_probe_info", **PROBE, test_id="") == 1


def test_test_info_labels_come_from_the_detail_then_the_list() -> None:
    test = Test.model_validate(load("tests")[0])
    raw = {"id": "abc123", "codecs": ["PCMU", "opus"], "durationSeconds": 90.5}
    detail = read_test_detail(Detail.model_validate(raw), read_at=NOW)
    f = Families([settings_family([("production", test, detail)])])
    assert f.value("callmeter_test_info", **TEST, duration_seconds="90.5", endpoints="500", codecs="PCMU,opus") == 1


def test_endpoint_outcomes_show_every_known_outcome_of_every_group_and_the_unknown_ones() -> None:
    test = Test.model_validate(load("tests")[0])
    tally = EndpointTally("xyz789", 1.0, {("Callers", "SUCCESS"): 240, ("Callees", "CALL_FAILED"): 3,
                                          ("Callees", "MEDIA_TIMEOUT"): 1}, ("Callers", "Callees"), NOW,
                          extra_outcomes=("MEDIA_TIMEOUT", "ODD"))
    f = Families([endpoint_outcome_family([("production", test, tally)])])
    for group in ("Callers", "Callees"):
        for outcome in KNOWN_ENDPOINT_OUTCOMES:
            assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group=group, outcome=outcome) is not None
    assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group="Callers", outcome="SUCCESS") == 240
    assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group="Callers", outcome="TIMEOUT") == 0
    assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group="Callees", outcome="MEDIA_TIMEOUT") == 1
    assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group="Callers", outcome="MEDIA_TIMEOUT") == 0
    assert f.value("callmeter_test_run_endpoint_outcomes", **TEST, group="Callees", outcome="ODD") == 0


def test_outcomes_go_with_the_test_and_the_run_lists_freshness() -> None:
    snapshot = reference_snapshot()
    data = snapshot.projects[0]
    assert Families(snapshot_families(snapshot, now=NOW)).value(
        "callmeter_test_run_endpoint_outcomes", **TEST, group="Callers", outcome="SUCCESS") == 1
    gone = ProjectData(project=data.project, tests=(), endpoint_outcomes=data.endpoint_outcomes, fetched=data.fetched)
    assert "callmeter_test_run_endpoint_outcomes" not in Families(
        snapshot_families(Snapshot(projects=(gone,)), now=NOW)).names()
    aged = Snapshot(projects=snapshot.projects, max_data_age={"test_runs": 60.0})
    assert "callmeter_test_run_endpoint_outcomes" not in Families(snapshot_families(aged, now=NOW + 120)).names()


# -- the golden exposition (tests/golden/reference.prom; `python -m tests.support.golden` rewrites it) ------


def test_reference_snapshot_renders_the_golden_exposition_byte_for_byte() -> None:
    """tests/golden/reference.prom is what /metrics serves for the API reference's own examples.

    Regenerated by `python -m tests.support.golden` only after an intended change, and reviewed as a diff
    (`git diff tests/golden/reference.prom`) in the same commit as the change: every changed line must be
    one the change explains (a family, label or HELP text renamed or added); a sample value that moves
    without a change to the mapping, a series that disappears, or a 0 where the fixture has null means the
    change broke the mapping, and the file must not be regenerated to hide it. The tests above pin the
    values independently, so a regenerated file cannot make a wrong value pass them."""
    rendered, golden = render_reference(), GOLDEN.read_bytes()
    # Compared as text for a readable diff; the encoding is UTF-8 both ways, so equal text is equal bytes.
    assert rendered.decode() == golden.decode(), "intended? run `python -m tests.support.golden` and review the diff"
    assert rendered == golden


# -- defaults, edges and staleness per resource (mutation testing found these untested) ------------------


def test_percent_is_the_default_packet_loss_unit_everywhere() -> None:
    run = reference_snapshot().projects[0].latest_completed["abc123"]
    assert run.summary is not None
    assert quality_values(run.summary)["packet_loss_ratio"] == 0.0012
    test = Test.model_validate(load("tests")[0])
    f = Families(completed_run_families([("production", test, run)]))
    assert f.value("callmeter_test_run_packet_loss_ratio", **TEST) == 0.0012
    assert threshold_value(Threshold(metric="packet_loss_ratio", level="warning", value=1, unit="percent")) == 0.01


@pytest.mark.parametrize(("unit", "value", "expected"), [
    ("mos", 1.0, 1.0), ("mos", 5.0, 5.0), ("mos", 0.99, None), ("mos", 5.01, None),
    ("ms", 0.0, 0.0), ("ms", 250.0, 0.25), ("ms", -1.0, None),
    ("s", 2.5, 2.5), ("s", 0.0, 0.0),
    ("percent", 100.0, 1.0), ("percent", 150.0, None), ("percent", 0.0, 0.0),
    ("ratio", 1.0, 1.0), ("ratio", 1.5, None), ("ratio", -0.1, None),
])
def test_a_threshold_at_the_edge_of_its_range(unit: str, value: float, expected: float | None) -> None:
    threshold = Threshold(metric="x", level="warning", value=value, unit=unit)  # type: ignore[arg-type]
    assert threshold_value(threshold) == expected


def test_test_info_falls_back_to_the_list_and_leaves_unknowns_empty() -> None:
    test = Test.model_validate({**load("tests")[0], "durationSeconds": 120, "totalEndpoints": 40})
    detail = read_test_detail(Detail.model_validate({"id": "abc123", "totalEndpoints": 8}), read_at=NOW)
    f = Families([settings_family([("production", test, detail)])])
    assert f.value("callmeter_test_info", **TEST, duration_seconds="120", endpoints="8", codecs="") == 1
    bare = Test.model_validate({"id": "abc123", "name": "Production Stress Test"})
    f = Families([settings_family([("production", bare, read_test_detail(Detail.model_validate({"id": "abc123"}),
                                                                         read_at=NOW))])])
    assert f.value("callmeter_test_info", **TEST, duration_seconds="", endpoints="", codecs="") == 1


def test_a_registrar_without_uri_or_transport_has_empty_labels() -> None:
    f = Families([registrar_family([("production", Registrar.model_validate({"id": "reg_1"}))])])
    assert f.value("callmeter_registrar_info", project="production", registrar_id="reg_1", registrar="reg_1", uri="",
                   transport="") == 1


def with_probe_detail(snapshot: Snapshot) -> Snapshot:
    """The reference snapshot with a detail for its probe: packet loss thresholds of 1 and 5 (percent)."""
    data = snapshot.projects[0]
    detail = probe_detail({"testId": "abc123", "thresholds": {"packet_loss": {"warning": 1, "critical": 5}}})
    project = ProjectData(project=data.project, probes=data.probes, tests=data.tests, registrars=data.registrars,
                          latest_runs=data.latest_runs, latest_completed=data.latest_completed,
                          endpoint_outcomes=data.endpoint_outcomes, fetched=data.fetched,
                          probe_details={"probe_abc123": detail},
                          test_details={"abc123": read_test_detail(Detail.model_validate({"id": "abc123"}),
                                                                   read_at=NOW)})
    return Snapshot(projects=(project,), finished_runs=snapshot.finished_runs, max_data_age=snapshot.max_data_age,
                    probe_statuses=snapshot.probe_statuses, run_statuses=snapshot.run_statuses)


FAMILIES_OF = {
    "probes": {"callmeter_probe_status", "callmeter_probe_interval_seconds", "callmeter_probe_threshold",
               "callmeter_probe_info"},
    "tests": {"callmeter_test_run_mos", "callmeter_test_run_last_status", "callmeter_test_runs_finished_total",
              "callmeter_test_info", "callmeter_test_run_endpoint_outcomes"},
    "test_runs": {"callmeter_test_run_mos", "callmeter_test_run_last_status", "callmeter_test_run_endpoint_outcomes"},
    "registrars": {"callmeter_registrar_info"},
}
"""What each resource's freshness decides: its families go when its data is stale or was never read."""


@pytest.mark.parametrize("how", ["stale", "never read"])
@pytest.mark.parametrize("resource", sorted(FAMILIES_OF))
def test_each_resources_families_go_with_its_data_and_only_they(resource: str, how: str) -> None:
    base = with_probe_detail(reference_snapshot())
    everything = set().union(*FAMILIES_OF.values()) | {"callmeter_project_info"}
    assert everything <= Families(snapshot_families(base, now=NOW + 120)).names()
    data = base.projects[0]
    fetched = dict(data.fetched)
    if how == "never read":
        del fetched[resource]
    project = ProjectData(project=data.project, probes=data.probes, tests=data.tests, registrars=data.registrars,
                          latest_runs=data.latest_runs, latest_completed=data.latest_completed,
                          endpoint_outcomes=data.endpoint_outcomes, fetched=fetched,
                          probe_details=data.probe_details, test_details=data.test_details)
    ages = {resource: 60.0} if how == "stale" else {}
    snapshot = Snapshot(projects=(project,), finished_runs=base.finished_runs, max_data_age=ages)
    names = Families(snapshot_families(snapshot, now=NOW + 120)).names()
    gone = FAMILIES_OF[resource]
    assert not names & gone
    assert everything - gone <= names


def test_the_snapshots_known_statuses_and_unit_reach_the_families() -> None:
    base = with_probe_detail(reference_snapshot())
    snapshot = Snapshot(projects=base.projects, finished_runs=base.finished_runs,
                        probe_statuses=frozenset({"MAINTENANCE"}), run_statuses=frozenset({"ARCHIVED"}))
    f = Families(snapshot_families(snapshot, now=NOW))
    assert f.value("callmeter_probe_status", **PROBE, status="MAINTENANCE") == 0
    assert f.value("callmeter_test_run_last_status", **TEST, status="ARCHIVED") == 0
    critical = {**PROBE, "metric": "packet_loss_ratio", "level": "critical"}
    assert f.value("callmeter_probe_threshold", **critical) == 0.05
    fraction = Families(snapshot_families(snapshot, now=NOW, packet_loss_unit="fraction"))
    assert fraction.value("callmeter_probe_threshold", **critical) is None  # 5 as a fraction is out of range
