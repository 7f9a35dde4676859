"""promtool check metrics on what we publish: the exposition the server sends, the golden exposition, and
what the gate pushes to a Pushgateway."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.gate.push import grouping_key, registry_for
from tests.support.exposition import make_exposition, sample_families, whole
from tests.support.gate import verdict
from tests.support.golden import GOLDEN
from tests.support.prometheus import promtool_check_metrics


def test_text_body_is_clean_for_promtool() -> None:
    exposition, metrics = make_exposition()
    metrics.request("/projects", "200", 0.2)
    metrics.error("/projects/{projectId}/probes", "timeout")
    exposition.publish(sample_families())
    code, printed = promtool_check_metrics(whole(exposition, openmetrics=False))
    assert code == 0 and not printed.strip(), printed


def test_the_golden_exposition_is_clean_for_promtool() -> None:
    code, printed = promtool_check_metrics(GOLDEN.read_bytes())
    assert code == 0 and not printed.strip(), printed


@pytest.mark.usefixtures("no_callmeter_environment")
def test_pushed_metrics_are_labelled_like_the_exporters_and_pass_promtool() -> None:
    v = verdict("--min-mos", "3.5")
    assert grouping_key(v) == {"project": v.project, "test_id": v.target_id}
    text = generate_latest(registry_for(v)).decode()
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["callmeter_gate_passed"].value == 1 and samples["callmeter_gate_passed"].labels == {
        "test": v.target_name}
    assert samples["callmeter_gate_mos"].value == 4.3
    assert samples["callmeter_gate_jitter_seconds"].value == 0.006
    assert samples["callmeter_gate_run_duration_seconds"].value == 30
    assert "callmeter_gate_rtt_seconds" not in samples  # null in the summary: no sample, never 0
    code, printed = promtool_check_metrics(text)
    assert code == 0, printed
