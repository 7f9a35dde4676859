"""The gate's reports (table, JUnit XML, Markdown, JSON), read back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from exporter.gate import report
from tests.support.gate import verdict

GATES = ("--min-mos", "3.5", "--max-rtt-seconds", "0.15", "--max-registration-failures", "0")


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_junit_of_a_failed_gate_has_one_case_per_gate_and_the_failures() -> None:
    v = verdict(*GATES, "--allow-missing")
    assert v.exit_code == 1
    root = ET.fromstring(report.junit_xml(v))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    counts = [suite.get(name) for name in ("tests", "failures", "errors", "skipped")]
    assert counts == ["4", "1", "0", "1"]
    by_name = cases(root)
    assert list(by_name) == ["run finished", "MOS >= 3.5", "RTT <= 150 ms", "registration failures <= 0"]
    assert list(by_name["run finished"]) == [] and list(by_name["MOS >= 3.5"]) == []
    skipped = by_name["RTT <= 150 ms"].find("skipped")
    assert skipped is not None and "avgRttMs" in skipped.get("message", "")
    failure = by_name["registration failures <= 0"].find("failure")
    assert failure is not None and failure.get("message") == "registration failures 1 is above the maximum 0"
    assert all(case.get("classname") == f"callmeter.{v.project}.{v.target_name}" for case in by_name.values())
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["run_id"] == v.run_id and props["exit_code"] == "1" and props["status"] == "COMPLETED"
    float(suite.get("time", "x"))


@pytest.mark.parametrize(("make", "code", "kind", "element"), [
    (lambda: verdict("--min-mos", "3.5"), 0, None, None),
    (lambda: verdict("--min-mos", "3.5", outcome="FAILED"), 3, "RunFailed", "failure"),
    (lambda: verdict("--min-mos", "3.5", "--timeout", "10", duration=600), 4, "Timeout", "error"),
])
def test_junit_status_case_per_exit_code(make, code: int, kind: str | None, element: str | None) -> None:  # type: ignore[no-untyped-def]
    v = make()
    assert v.exit_code == code, v.reason
    root = ET.fromstring(report.junit_xml(v))
    status = cases(root)["run finished"]
    if element is None:
        assert list(status) == []
    else:
        found = status.find(element)
        assert found is not None and found.get("type") == kind and found.get("message") == v.reason
    mos = cases(root)["MOS >= 3.5"]
    assert (mos.find("skipped") is not None) == (code != 0)


@pytest.mark.parametrize(("code", "kind"), [(5, "ApiError"), (2, "UsageError")])
def test_junit_reports_api_and_usage_errors_as_errors(code: int, kind: str) -> None:
    v = replace(verdict(), exit_code=code, reason="HTTP 401 <UNAUTHORIZED> & more")
    root = ET.fromstring(report.junit_xml(v))
    error = cases(root)["run finished"].find("error")
    assert error is not None and error.get("type") == kind and error.get("message") == v.reason


def test_markdown_summary_has_a_row_per_gate_and_escapes_pipes() -> None:
    v = verdict(*GATES)
    v = replace(v, target_name="quality | nightly")
    text = report.markdown(v)
    assert text.startswith("### ❌ CallMeter gate: gate failed (exit 1)")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| gate | value | limit | result |" and len(rows) == 4
    assert "quality \\| nightly" in text
    assert "| RTT | null | <= 150 ms | ❌ null |" in rows


def test_json_report_for_scripts() -> None:
    v = verdict(*GATES, "--allow-missing")
    data = json.loads(report.as_json(v))
    assert data["passed"] is False and data["exit_code"] == 1 and data["outcome"] == "gate failed"
    assert data["run"] == {"id": v.run_id, "status": "COMPLETED", "duration_seconds": 30}
    assert [(g["gate"], g["outcome"]) for g in data["gates"]] == [
        ("min_mos", "pass"), ("max_rtt_seconds", "skipped"), ("max_registration_failures", "fail")]
    assert data["values"]["jitter_seconds"] == 0.006 and data["values"]["rtt_seconds"] is None
    assert data["requests"] == v.requests >= 3


def test_table_fits_one_screen() -> None:
    v = verdict(*GATES, "--allow-missing")
    lines = report.table(v).splitlines()
    assert lines[0] == f"CallMeter gate: GATE FAILED (exit 1): {v.reason}"
    assert len(lines) == 7 and max(map(len, lines)) <= 120
    assert lines[1].startswith("  project ") and lines[2].startswith(f"  run {v.run_id} · COMPLETED · ran 30s")
    assert lines[4].split() == ["MOS", "4.3", ">=", "3.5", "pass"]
