"""The metrics reference (docs/metrics.md) and the kinds table (docs/architecture.md).

Every family is taken from what the exporter really renders: the resource families of the reference
snapshot (tests/support/reference.py, the API reference's own example responses, with one probe
detail and one test detail added so that every family has a sample), and the exporter's own
registry (`ExporterMetrics`, `WebhookMetrics`) after one of each event. Names, types, labels and
HELP texts come from those families; only where the data comes from is written here, in `SOURCES`,
and `render_*` fails when a family has no entry or an entry names a family or kind that does not
exist. (A `Kind.families` field in exporter/model/kinds.py could hold the resource part one day.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.api.errors import ERROR_KINDS
from exporter.expose.families import CACHED, snapshot_families
from exporter.expose.selfmetrics import ExporterMetrics
from exporter.model.details import ProbeDetail, TestDetail, Threshold
from exporter.model.kinds import KINDS
from exporter.settings import Settings, env_name
from exporter.webhooks.metrics import WebhookMetrics
from tests.support.reference import NOW, reference_snapshot

from .markdown import code, header, table


class Source(NamedTuple):
    group: str
    """Which table of docs/metrics.md lists it."""
    kinds: tuple[str, ...]
    """The resource kinds (`KINDS`) it is read from; empty for what the exporter measures itself."""
    fields: str
    """The API fields, or the part of the exporter, its values come from."""
    unit: str | None = None
    """None: the unit its name's suffix gives."""


GROUPS = ("probes", "runs", "inventory", "exporter", "webhooks")
SUMMARY = "the run detail's `summary`"

SOURCES: dict[str, Source] = {
    "callmeter_probe_status": Source("probes", ("probes",), "`status`", "state set: 1 or 0"),
    "callmeter_probe_interval_seconds": Source("probes", ("probes",), "`intervalMinutes`, in seconds"),
    "callmeter_probe_last_execution_timestamp_seconds": Source("probes", ("probes",), "`lastExecutionAt`"),
    "callmeter_probe_next_execution_timestamp_seconds": Source("probes", ("probes",), "`nextExecutionAt`"),
    "callmeter_probe_threshold": Source("probes", ("probe_details",), "the detail's thresholds",
                                        "base unit of its `metric`"),
    "callmeter_probe_info": Source("probes", ("probe_details",), "the detail's `testId`", "info: value 1"),
    "callmeter_test_run_mos": Source("runs", ("test_run_details",), f"`avgMos` in {SUMMARY}", "MOS, 1 to 5"),
    "callmeter_test_run_jitter_seconds": Source("runs", ("test_run_details",), "`avgJitterMs` ÷ 1000"),
    "callmeter_test_run_packet_loss_ratio": Source("runs", ("test_run_details",),
                                                   "`avgPacketLossFraction` ÷ 100 (see the packet-loss unit)"),
    "callmeter_test_run_rtt_seconds": Source("runs", ("test_run_details",), "`avgRttMs` ÷ 1000"),
    "callmeter_test_run_asr_ratio": Source("runs", ("test_run_details",), "`asr` ÷ 100"),
    "callmeter_test_run_ner_ratio": Source("runs", ("test_run_details",), "`ner` ÷ 100"),
    "callmeter_test_run_endpoints": Source("runs", ("test_run_details",),
                                           "`totalEndpoints`, `registeredCount`, `registrationFailedCount`, "
                                           "`inCallCount`, `completedCount`", "endpoints"),
    "callmeter_test_run_start_timestamp_seconds": Source("runs", ("test_run_details",), "`startedAt`"),
    "callmeter_test_run_end_timestamp_seconds": Source("runs", ("test_run_details",), "`completedAt`"),
    "callmeter_test_run_endpoint_outcomes": Source("runs", ("test_run_endpoints",),
                                                   "each endpoint's outcome and group, every page once",
                                                   "endpoints"),
    "callmeter_test_run_last_status": Source("runs", ("test_runs",), "`status` of the test's newest run",
                                             "state set: 1 or 0"),
    "callmeter_test_runs_finished": Source("runs", ("test_runs", "test_run_details"),
                                           "runs seen reaching a terminal `status`", "runs"),
    "callmeter_test_info": Source("runs", ("test_details", "tests"),
                                  "`durationSeconds`, `totalEndpoints`, codecs", "info: value 1"),
    "callmeter_project_info": Source("inventory", ("projects",), "`id`, `slug`, `name`", "info: value 1"),
    "callmeter_registrar_info": Source("inventory", ("registrars",), "`id`, `name`, `uri`, `transport`",
                                       "info: value 1"),
    "callmeter_up": Source("exporter", (), "the last refresh's answer", "1 or 0"),
    "callmeter_exporter_build_info": Source("exporter", (), "the package version", "info: value 1"),
    "callmeter_exporter_api_requests": Source("exporter", (), "every API request", "requests"),
    "callmeter_exporter_api_errors": Source("exporter", (), "every failed API request", "requests"),
    "callmeter_exporter_api_request_duration_seconds": Source("exporter", (), "every API request"),
    "callmeter_exporter_rate_limited": Source("exporter", (), "429 answers", "answers"),
    "callmeter_exporter_request_budget_per_minute": Source("exporter", (), "the key's limit times the budget share",
                                                           "requests a minute"),
    "callmeter_exporter_requests_per_minute": Source("exporter", (), "the rate limiter", "requests a minute"),
    "callmeter_exporter_rate_limit_remaining": Source("exporter", (), "the API's rate-limit headers", "requests"),
    "callmeter_exporter_refresh_interval_seconds": Source("exporter", (), "the plan"),
    "callmeter_exporter_last_success_timestamp_seconds": Source("exporter", (), "the last good read per kind"),
    "callmeter_exporter_run_details_pending": Source("exporter", (), "the run tracker", "runs"),
    "callmeter_exporter_series_capped": Source("exporter", (), "the cardinality caps", "label values"),
    "callmeter_exporter_observation_delay_seconds": Source("exporter", (), "CallMeter's timestamps and the "
                                                           "exporter's clock"),
    "callmeter_exporter_webhook_deliveries": Source("webhooks", (), "the webhook receiver", "deliveries"),
    "callmeter_exporter_webhook_last_delivery_timestamp_seconds": Source("webhooks", (), "the webhook receiver"),
    "callmeter_exporter_webhook_confirmation_delay_seconds": Source("webhooks", (), "the webhook receiver and "
                                                                    "the next probe-list read"),
    "callmeter_exporter_webhook_disagreements": Source("webhooks", (), "the webhook receiver and the next "
                                                       "probe-list read", "deliveries"),
}


def _reference_snapshot_with_details() -> list[Metric]:
    """The reference snapshot, plus one probe detail and one test detail (the reference shows neither)."""
    snapshot = reference_snapshot()
    (data,) = snapshot.projects
    probe = data.probes[0] if data.probes else None
    test = data.tests[0] if data.tests else None
    assert probe is not None and test is not None, "the reference snapshot lost its probe or test"
    probe_detail = ProbeDetail(id=probe.id, testId=test.id, readAt=NOW, thresholds=(
        Threshold(metric="mos", level="warning", value=3.5, unit="mos"),))
    test_detail = TestDetail(id=test.id, durationSeconds=120, totalEndpoints=2, codecs=("PCMA",), readAt=NOW)
    data = dataclasses.replace(data, probe_details={probe.id: probe_detail}, test_details={test.id: test_detail})
    return snapshot_families(dataclasses.replace(snapshot, projects=(data,)), now=NOW)


def _own_families() -> list[Metric]:
    """The exporter's own registry after one of each event, so that every family and label shows."""
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry, budget_per_minute=8.0)
    route = KINDS["probes"].route
    metrics.request(route, "200", 0.1)
    metrics.error(route, ERROR_KINDS[0])
    metrics.rate_limited()
    metrics.rate_limit_remaining(5)
    metrics.observed("probes", 1.0)
    metrics.series_capped("callmeter_test_run_endpoint_outcomes", 1)
    metrics.set_up(True)
    metrics.succeeded("probes", NOW)
    metrics.set_intervals({"probes": 60.0})
    hooks = WebhookMetrics(registry)
    hooks.delivered("applied", verified_at=NOW)
    hooks.confirmed(1.0)
    hooks.disagreed()
    return list(registry.collect())


def families() -> list[Metric]:
    """Every family the exporter can publish, as it renders them."""
    return [*_reference_snapshot_with_details(), *_own_families()]


def exposed_name(family: Metric) -> str:
    return f"{family.name}_total" if family.type == "counter" else family.name


def labels_of(family: Metric) -> list[str]:
    seen: dict[str, None] = {}
    for sample in family.samples:
        for label in sample.labels:
            if label != "le":
                seen[label] = None
    return list(seen)


def unit_of(family: Metric, source: Source) -> str:
    if source.unit is not None:
        return source.unit
    name = family.name
    if name.endswith("_timestamp_seconds"):
        return "Unix time, seconds"
    if name.endswith("_seconds"):
        return "seconds"
    if name.endswith("_ratio"):
        return "ratio, 0 to 1"
    raise ValueError(f"{name}: its name gives no unit; give one in SOURCES")


def _checked() -> list[tuple[Metric, Source]]:
    found = families()
    names = [f.name for f in found]
    missing = [name for name in names if name not in SOURCES]
    gone = [name for name in SOURCES if name not in names]
    unknown = [k for s in SOURCES.values() for k in s.kinds if k not in KINDS]
    if missing or gone or unknown:
        raise ValueError(f"docs/docgen/metrics_table.py SOURCES is out of date: families without an entry "
                         f"{missing}, entries for no family {gone}, unknown kinds {unknown}")
    return [(f, SOURCES[f.name]) for f in found]


def help_of(family: Metric) -> str:
    return family.documentation.removesuffix(CACHED).strip()


def render_group(group: str) -> str:
    rows = [[code(exposed_name(f)), f.type, ", ".join(code(label) for label in labels_of(f)) or "none",
             unit_of(f, s), help_of(f)]
            for f, s in _checked() if s.group == group]
    return header("docs/generate.py", "a metric family") + table(["Metric", "Type", "Labels", "Unit", "HELP text"],
                                                                  rows)


ALSO_FEEDS = {"tests": "the `test` label of every test series"}


def floor_setting(floor: str) -> str:
    """The setting behind a `Floors` field: `probes` is CALLMETER_PROBES_MIN_INTERVAL."""
    name = f"{floor}_min_interval"
    if name not in Settings.model_fields:
        raise ValueError(f"no setting {name} for the floor {floor}")
    return env_name(name)


def _kind_sources(rows: Iterable[tuple[Metric, Source]]) -> dict[str, list[str]]:
    by_kind: dict[str, list[str]] = {name: [] for name in KINDS}
    for family, source in rows:
        for kind in source.kinds:
            by_kind[kind].append(code(exposed_name(family)))
    return by_kind


def render_sources() -> str:
    """Where each resource family's values come from: kind, route and fields."""
    rows = [[code(exposed_name(f)), ", ".join(code(k) for k in s.kinds),
             "<br>".join(code(KINDS[k].route) for k in s.kinds), s.fields]
            for f, s in _checked() if s.kinds]
    return header("docs/generate.py", "a metric family or exporter/model/kinds.py") + table(
        ["Metric", "Kind (`resource`)", "Route (`endpoint`)", "From"], rows)


def render_kinds() -> str:
    """The table of kinds: route, priority class, floor, what it fills and the families it feeds."""
    feeds = _kind_sources(_checked())
    for kind, also in ALSO_FEEDS.items():
        feeds[kind].append(also)
    rows = [[code(kind.name), code(kind.route), f"{kind.priority:g}", code(floor_setting(kind.floor)),
             code(kind.fills) if kind.fills else "the project set",
             "yes" if kind.periodic else "no: one read per item", ", ".join(feeds[kind.name])]
            for kind in KINDS.values()]
    return header("docs/generate.py", "exporter/model/kinds.py") + table(
        ["Kind", "Route", "Priority", "Floor", "Fills", "Periodic", "Metric families"], rows, ["-", "-", "-:"])


def outputs() -> dict[str, str]:
    files = {f"metrics-{group}.md": render_group(group) for group in GROUPS}
    files["metrics-sources.md"] = render_sources()
    files["kinds.md"] = render_kinds()
    return files
