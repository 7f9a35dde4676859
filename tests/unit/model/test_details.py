"""Probe and test details: the shapes the readers know, and shapes they do not (no value, no crash)."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.model.details import Detail, read_probe_detail, read_test_detail, read_thresholds


def thresholds(raw: dict[str, Any]) -> dict[tuple[str, str], tuple[float, str]]:
    found, _ = read_thresholds(raw)
    return {(t.metric, t.level): (t.value, t.unit) for t in found}


def test_thresholds_keyed_by_metric_keep_their_value_and_unit() -> None:
    raw = {"thresholds": {"mos": {"warning": 3.5, "critical": 2.5}, "jitter_ms": {"warning": 30, "critical": 80},
                          "rttMs": {"warn": "150"}, "packet_loss": {"crit": 5}}}
    assert thresholds(raw) == {("mos", "warning"): (3.5, "mos"), ("mos", "critical"): (2.5, "mos"),
                               ("jitter_seconds", "warning"): (30, "ms"), ("jitter_seconds", "critical"): (80, "ms"),
                               ("rtt_seconds", "warning"): (150, "ms"),
                               ("packet_loss_ratio", "critical"): (5, "percent")}


def test_thresholds_as_a_list_with_levels_as_keys_or_as_values() -> None:
    raw = {"thresholds": [{"metric": "mos", "warning": 4.0}, {"name": "jitterSeconds", "critical": 0.06},
                          {"metric": "rtt", "level": "warning", "value": 200},
                          {"key": "packetLossRatio", "level": "CRITICAL", "threshold": 0.05}]}
    assert thresholds(raw) == {("mos", "warning"): (4.0, "mos"), ("jitter_seconds", "critical"): (0.06, "s"),
                               ("rtt_seconds", "warning"): (200, "ms"),
                               ("packet_loss_ratio", "critical"): (0.05, "ratio")}


def test_thresholds_keyed_by_level_nested_in_the_configuration() -> None:
    raw = {"configuration": {"thresholds": {"warning": {"mos": 3.8, "packetLossPercent": 2}}}}
    assert thresholds(raw) == {("mos", "warning"): (3.8, "mos"), ("packet_loss_ratio", "warning"): (2, "percent")}


def test_unknown_metrics_and_levels_are_handed_back_not_read() -> None:
    found, unread = read_thresholds({"thresholds": {"pdd_ms": {"warning": 2000}, "mos": {"info": 4.2, "warning": 3}}})
    assert [(t.metric, t.level) for t in found] == [("mos", "warning")]
    assert unread == ["pdd_ms.warning", "mos.info"]


@pytest.mark.parametrize("raw", [
    {}, {"thresholds": None}, {"thresholds": "strict"}, {"thresholds": 3.5}, {"thresholds": [1, "mos", None]},
    {"thresholds": {"mos": 3.5}}, {"thresholds": {"mos": {"warning": None}}}, {"thresholds": {"mos": {"warning": "x"}}},
    {"thresholds": {"mos": {"warning": True}}}, {"thresholds": {"mos": {"warning": float("nan")}}},
    {"thresholds": {"mos": {"warning": {"value": 3.5}}}}, {"config": "flat"}, {"settings": {"thresholds": []}},
    {"thresholds": [{"metric": None, "warning": 3}, {"level": "warning"}]},
    {"thresholdSettings": {"mos": {"warning": 3.5}}},  # renamed: not a shape the exporter knows
])
def test_shapes_the_reader_does_not_know_yield_nothing(raw: dict[str, Any]) -> None:
    assert read_thresholds(raw)[0] == ()


def test_the_first_of_two_values_for_one_threshold_wins() -> None:
    raw = {"thresholds": [{"metric": "mos", "warning": 3.5}, {"metric": "avgMos", "warning": 4.5}]}
    assert thresholds(raw) == {("mos", "warning"): (3.5, "mos")}


def test_probe_detail_keeps_the_test_it_runs_and_drops_the_rest() -> None:
    detail = Detail.model_validate({"id": "p1", "name": "Trunk", "testId": 42, "status": "HEALTHY",
                                    "thresholds": {"mos": {"warning": 3.5}}, "secretToken": "x"})
    kept, unread = read_probe_detail(detail, read_at=100.0)
    assert (kept.id, kept.test_id, kept.read_at, unread) == ("p1", "42", 100.0, [])
    assert "secretToken" not in kept.model_dump_json()


def test_test_detail_reads_duration_endpoints_codecs_and_groups() -> None:
    raw = {"id": "t1", "durationSeconds": "120", "groups": [
        {"name": "Callers", "size": 250, "codecs": ["PCMU", {"name": "G729"}]}, {"size": 250}, "junk"],
        "media": {"codecs": "opus, PCMU"}, "codecs": ["PCMA", "", "x" * 40, "PCMA"]}
    detail = read_test_detail(Detail.model_validate(raw), read_at=5.0)
    assert detail.duration_seconds == 120
    assert detail.total_endpoints == 500  # no totalEndpoints: the sum of the groups' sizes
    assert detail.codecs == ("PCMA", "opus", "PCMU", "G729")
    assert detail.groups == ("Callers", "1")


def test_test_detail_without_settings_has_none() -> None:
    detail = read_test_detail(Detail.model_validate({"id": "t1", "groups": "two", "codecs": 7,
                                                     "config": {"totalEndpoints": 12}}), read_at=5.0)
    assert (detail.duration_seconds, detail.total_endpoints, detail.codecs, detail.groups) == (None, 12, (), ())
    partial = read_test_detail(Detail.model_validate({"id": "t2", "groups": [{"name": "A", "size": 3}, {}]}), 1.0)
    assert partial.total_endpoints is None  # one group's size is unknown: no sum
