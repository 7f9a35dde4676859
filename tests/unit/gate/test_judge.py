"""The judge on its own: each gate's result as the reports show it, its edges, and the exit code's reason.

The flow tests see the verdict's exit code and reason; the reports print every field of each result (limit,
value, the value as shown, the message). These pin those fields for each way a gate can end.
"""

from __future__ import annotations

import pytest

from exporter.api.models import TestRun
from exporter.gate.judge import GATES, GateResult, gate_exit, judge_probe, judge_value, not_judged, run_values

SPEC = {spec.option: spec for spec in GATES}


def result(*fields: object) -> GateResult:
    return GateResult(*fields)  # type: ignore[arg-type]


def test_a_value_past_its_limit_fails_with_every_field_shown() -> None:
    assert judge_value(SPEC["min_mos"], 3.5, 3.1, allow_missing=False) == result(
        "MOS", "min_mos", 3.5, ">= 3.5", 3.1, "3.1", "fail", "MOS 3.1 is below the minimum 3.5")
    assert judge_value(SPEC["max_jitter_seconds"], 0.03, 0.05, allow_missing=False) == result(
        "jitter", "max_jitter_seconds", 0.03, "<= 30 ms", 0.05, "50 ms", "fail",
        "jitter 50 ms is above the maximum 30 ms")


def test_a_value_within_its_limit_passes_with_every_field_shown() -> None:
    assert judge_value(SPEC["min_asr_ratio"], 0.95, 0.996, allow_missing=False) == result(
        "ASR", "min_asr_ratio", 0.95, ">= 95 %", 0.996, "99.6 %", "pass", "ASR 99.6 % >= 95 %")


@pytest.mark.parametrize("option", sorted(SPEC))
def test_a_value_exactly_at_its_limit_passes(option: str) -> None:
    spec = SPEC[option]
    limit = spec.high / 2 if spec.option != "min_mos" else 3.5
    assert judge_value(spec, limit, limit, allow_missing=False).outcome == "pass"


def test_a_null_value_is_missing_or_skipped_and_says_which_field() -> None:
    spec = SPEC["max_rtt_seconds"]
    assert judge_value(spec, 0.15, None, allow_missing=False) == result(
        "RTT", "max_rtt_seconds", 0.15, "<= 150 ms", None, "null", "missing",
        "RTT: the run summary has no avgRttMs (null), so --max-rtt-seconds cannot pass; add --allow-missing to "
        "accept a missing value")
    assert judge_value(spec, 0.15, None, allow_missing=True) == result(
        "RTT", "max_rtt_seconds", 0.15, "<= 150 ms", None, "null", "skipped",
        "RTT: the run summary has no avgRttMs (null); skipped (--allow-missing)")


@pytest.mark.parametrize(("status", "minimum", "outcome", "message"), [
    ("HEALTHY", "HEALTHY", "pass", "probe status HEALTHY is no worse than HEALTHY"),
    ("DEGRADED", "DEGRADED", "pass", "probe status DEGRADED is no worse than DEGRADED"),
    ("DEGRADED", "HEALTHY", "fail", "probe status DEGRADED is worse than HEALTHY"),
    ("UNKNOWN", "UNHEALTHY", "fail", "probe status UNKNOWN is worse than UNHEALTHY"),
])
def test_the_probe_gate_shows_the_status_against_the_minimum(status: str, minimum: str, outcome: str,
                                                               message: str) -> None:
    assert judge_probe(status, minimum) == result(
        "probe status", "min_probe_status", minimum, f">= {minimum}", status, status, outcome, message)


def test_a_probe_without_a_status_fails_shown_as_null() -> None:
    assert judge_probe(None, "UNHEALTHY") == result(
        "probe status", "min_probe_status", "UNHEALTHY", ">= UNHEALTHY", None, "null", "fail",
        "probe status null is worse than UNHEALTHY")


def test_gates_not_judged_keep_their_limits_and_say_why() -> None:
    assert not_judged({"max_registration_failures": 0.0, "min_mos": 3.5}, "the run FAILED") == (
        result("MOS", "min_mos", 3.5, ">= 3.5", None, "-", "skipped", "MOS: not judged, the run FAILED"),
        result("registration failures", "max_registration_failures", 0.0, "<= 0", None, "-", "skipped",
               "registration failures: not judged, the run FAILED"),
    )


def test_the_exit_reason_names_every_failure_and_counts_the_skipped() -> None:
    failed = judge_value(SPEC["min_mos"], 3.5, 3.1, allow_missing=False)
    missing = judge_value(SPEC["max_rtt_seconds"], 0.15, None, allow_missing=False)
    passed = judge_value(SPEC["min_ner_ratio"], 0.9, 1.0, allow_missing=False)
    skipped = judge_value(SPEC["max_rtt_seconds"], 0.15, None, allow_missing=True)
    assert gate_exit([failed, passed, missing]) == (1, f"{failed.message}; {missing.message}")
    assert gate_exit([]) == (0, "the run completed (no quality gate was given)")
    assert gate_exit([passed]) == (0, "every gate passed")
    assert gate_exit([passed, skipped, skipped]) == (0, "every gate passed (2 skipped: null in the summary)")


def test_registration_failures_are_judged_as_a_number_and_null_stays_null() -> None:
    run = TestRun.model_validate({"id": "r", "status": "COMPLETED", "summary": {"registrationFailedCount": 3}})
    assert run_values(run, "percent")["registration_failures"] == 3.0
    run = TestRun.model_validate({"id": "r", "status": "COMPLETED", "summary": {"avgMos": 4.0}})
    values = run_values(run, "percent")
    assert values["registration_failures"] is None and values["mos"] == 4.0
    assert set(run_values(TestRun.model_validate({"id": "r"}), "percent").values()) == {None}
