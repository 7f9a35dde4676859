"""The cached exposition: rendered once per snapshot, own metrics joined, one gzip member, negotiation."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest as render_text
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.expose.exposition import (
    OPENMETRICS,
    TEXT,
    _Families,
    render,
    render_openmetrics,
    wants_gzip,
    wants_openmetrics,
)
from exporter.expose.families import finished_runs_family
from exporter.expose.selfmetrics import ExporterMetrics
from tests.support.exposition import (
    PROMETHEUS_2_ACCEPT,
    PROMETHEUS_3_ACCEPT,
    make_exposition,
    one_gzip_member,
    sample_families,
    whole,
)

parse_openmetrics: Callable[[str], Iterator[Metric]] = openmetrics_parser.text_string_to_metric_families  # untyped


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize(("accept_encoding", "expected"), [
    ("gzip", True),
    ("GZIP", True),
    ("x-gzip", True),
    ("deflate, gzip;q=0.5", True),
    ("gzip, deflate, br", True),
    ("gzip;q=0", False),
    ("gzip; q=0.0", False),
    ("gzip;q=0.000, deflate", False),
    ("gzip;q=nonsense", False),
    ("br, gzip;q=0, *", False),
    ("identity", False),
    ("", False),
])
def test_gzip_is_used_only_when_accepted_with_a_non_zero_q(accept_encoding: str, expected: bool) -> None:
    assert wants_gzip(accept_encoding) is expected


@pytest.mark.parametrize(("accept", "expected"), [
    (PROMETHEUS_2_ACCEPT, True),
    (PROMETHEUS_3_ACCEPT, True),
    ("application/openmetrics-text", True),
    ("text/plain;version=0.0.4", False),
    ("text/plain;q=1, application/openmetrics-text;version=1.0.0;q=0.5", False),
    ("application/openmetrics-text;q=0, text/plain", False),
    ("*/*", False),
    ("", False),
])
def test_openmetrics_is_served_when_preferred_over_text(accept: str, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected


# ---------------------------------------------------------------- formats


def test_text_body_holds_resources_and_own_metrics_and_passes_the_parser() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families())
    parts, content_type = exposition.body(openmetrics=False, gzipped=False)
    assert content_type == TEXT
    names = {family.name for family in parse_text(b"".join(parts).decode())}
    assert {"callmeter_probe_status", "callmeter_project_info", "callmeter_up",
            "callmeter_exporter_build_info"} <= names
    assert b"# EOF" not in b"".join(parts)


def test_openmetrics_body_ends_with_exactly_one_eof() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families())
    parts, content_type = exposition.body(openmetrics=True, gzipped=False)
    body = b"".join(parts)
    assert content_type == OPENMETRICS
    assert body.endswith(b"\n# EOF\n")
    assert body.count(b"# EOF") == 1
    names = {family.name for family in parse_openmetrics(body.decode())}  # the strict parser wants the EOF last
    assert {"callmeter_probe_status", "callmeter_up"} <= names


def test_an_empty_exposition_is_valid_before_the_first_snapshot() -> None:
    exposition, _ = make_exposition()
    assert b"callmeter_up" in whole(exposition, openmetrics=False)
    openmetrics = whole(exposition, openmetrics=True)
    assert openmetrics.endswith(b"# EOF\n") and openmetrics.count(b"# EOF") == 1
    list(parse_openmetrics(openmetrics.decode()))
    assert one_gzip_member(whole(exposition, openmetrics=True, gzipped=True)) == openmetrics


# ---------------------------------------------------------------- gzip


@pytest.mark.parametrize("openmetrics", [False, True])
def test_gzip_body_is_one_member_that_decodes_to_the_plain_body(openmetrics: bool) -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families(200))
    compressed = whole(exposition, openmetrics=openmetrics, gzipped=True)
    plain = whole(exposition, openmetrics=openmetrics)
    assert one_gzip_member(compressed) == plain
    assert gzip.decompress(compressed) == plain
    assert len(compressed) < len(plain) / 5


def test_own_metrics_change_recompresses_only_the_tail() -> None:
    exposition, metrics = make_exposition()
    exposition.publish(sample_families(200))
    (prefix, tail), _ = exposition.body(openmetrics=True, gzipped=True)
    again, _ = exposition.body(openmetrics=True, gzipped=True)
    assert again[0] is prefix and again[1] is tail  # nothing recompressed while nothing changed

    metrics.request("/projects", "200", 0.1)
    (new_prefix, new_tail), _ = exposition.body(openmetrics=True, gzipped=True)
    assert new_prefix is prefix  # the snapshot's compressed bytes are reused as they are
    decoded = one_gzip_member(new_prefix + new_tail)
    assert b'callmeter_exporter_api_requests_total{code="200",endpoint="/projects"} 1.0' in decoded
    assert decoded == whole(exposition, openmetrics=True)


def test_a_new_snapshot_gets_a_new_gzip_stream() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families(interval=5.0))
    first = whole(exposition, openmetrics=False, gzipped=True)
    exposition.publish(sample_families(interval=7.0))
    second = one_gzip_member(whole(exposition, openmetrics=False, gzipped=True))
    assert second != one_gzip_member(first)
    assert b"callmeter_probe_interval_seconds" in second and b" 420.0\n" in second


# ---------------------------------------------------------------- caching and swapping


def test_resources_are_rendered_once_per_snapshot() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families())
    first, _ = exposition.body(openmetrics=False, gzipped=False)
    for _ in range(5):
        parts, _ = exposition.body(openmetrics=False, gzipped=False)
        assert parts[0] is first[0] and parts[1] is first[1]


def test_own_metrics_are_rendered_again_only_after_a_change() -> None:
    exposition, metrics = make_exposition()
    (_, own), _ = exposition.body(openmetrics=False, gzipped=False)
    (_, unchanged), _ = exposition.body(openmetrics=False, gzipped=False)
    assert unchanged is own
    metrics.set_up(True)
    (_, changed), _ = exposition.body(openmetrics=False, gzipped=False)
    assert changed is not own
    assert b"callmeter_up 1.0" in changed


def test_a_body_taken_before_publish_stays_whole() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families(interval=5.0))
    before = whole(exposition, openmetrics=False)
    parts, _ = exposition.body(openmetrics=False, gzipped=False)
    exposition.publish(sample_families(interval=9.0))
    assert b"".join(parts) == before
    assert whole(exposition, openmetrics=False) != before


def test_an_unchanged_snapshot_keeps_the_current_render_and_its_gzip() -> None:
    exposition, _ = make_exposition()
    exposition.publish(sample_families())
    (prefix, _), _ = exposition.body(openmetrics=True, gzipped=True)
    exposition.publish(sample_families())  # the same data again, from new family objects
    (again, _), _ = exposition.body(openmetrics=True, gzipped=True)
    assert again is prefix


def test_rendered_elsewhere_can_be_swapped_in() -> None:
    exposition, _ = make_exposition()
    rendered = render(sample_families(interval=3.0))
    exposition.publish_rendered(rendered)
    parts, _ = exposition.body(openmetrics=False, gzipped=False)
    assert parts[0] is rendered.text


# ---------------------------------------------------------------- the fast renderer matches client_python


def client_python_render(families: list[Metric]) -> tuple[bytes, bytes]:
    source = _Families(families)
    return render_text(source), render_openmetrics(source).removesuffix(b"# EOF\n")


def test_rendering_matches_client_python_byte_for_byte_on_resource_families() -> None:
    families = sample_families(50)
    families.append(finished_runs_family({("production", "t-1", "COMPLETED"): 3, ("staging", "t\\2", "FAILED"): 1},
                                         {("production", "t-1"): 'Call "A"\nB', ("staging", "t\\2"): "ü"}))
    rendered = render(families)
    assert (rendered.text, rendered.openmetrics) == client_python_render(families)


def test_families_the_fast_path_does_not_take_are_left_to_client_python() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ExporterMetrics(registry, budget_per_minute=60.0).request("/projects", "200", 0.2)  # counters with _created
    families = [
        *registry.collect(),
        GaugeMetricFamily("with_unit_seconds", "Has a unit.", value=1.0, unit="seconds"),
        InfoMetricFamily("build", "Info family.", value={"version": "1"}),
    ]
    stamped = GaugeMetricFamily("stamped", "Has a timestamp.", labels=["a"])
    stamped.add_metric(["x"], 1.0, timestamp=1_700_000_000.5)
    families.append(stamped)
    rendered = render(families)
    assert (rendered.text, rendered.openmetrics) == client_python_render(families)


_label_text = st.text(st.characters(codec="utf-8"), max_size=12)
_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12))


@settings(max_examples=200, deadline=None)
@given(doc=_label_text, counter=st.booleans(),
       rows=st.lists(st.tuples(_label_text, _label_text, _values), max_size=8, unique_by=lambda row: row[:2]))
def test_rendering_matches_client_python_for_any_label_values_and_numbers(
        doc: str, counter: bool, rows: list[tuple[str, str, float]]) -> None:
    family: Metric
    if counter:
        family = CounterMetricFamily("callmeter_things", doc, labels=["project", "zeta_name"])
        rows = [(a, b, abs(v) if v == v else v) for a, b, v in rows]
    else:
        family = GaugeMetricFamily("callmeter_level", doc, labels=["zeta_name", "project"])
    for first, second, value in rows:
        family.add_metric([first, second], value)
    rendered = render([family, GaugeMetricFamily("callmeter_plain", doc, value=1.5)])
    assert (rendered.text, rendered.openmetrics) == client_python_render([family, GaugeMetricFamily(
        "callmeter_plain", doc, value=1.5)])
