"""The gate's reports, all read from one `Verdict`: a table for people, JUnit XML for CI test reporters,
Markdown for GitHub's job summary, JSON for scripts. A verdict holds ids, names and numbers only, so
no report can carry the key.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from .judge import API_ERROR, RUN_FAILED, TIMED_OUT, USAGE, GateResult, Verdict


def _target(v: Verdict) -> str:
    name = v.target_name if v.target_name == v.target_id else f"{v.target_name!r} ({v.target_id})"
    return f"project {v.project} · {v.kind} {name}" if v.target_id else f"project {v.project}"


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def _facts(v: Verdict) -> str:
    """What ran and what it cost: run, status, how long it ran, how long the gate took, requests."""
    parts = []
    if v.run_id:
        parts.append(f"{'run' if v.kind == 'test' else 'execution'} {v.run_id}")
    if v.status:
        parts.append(v.status)
    if v.run_seconds is not None:
        parts.append(f"ran {_clock(v.run_seconds)}")
    parts.append(f"gate took {_clock(v.elapsed_seconds)}, {v.requests} API request{'s' * (v.requests != 1)}")
    return " · ".join(parts)


def table(v: Verdict) -> str:
    """The one-screen summary printed on stdout."""
    lines = [f"CallMeter gate: {v.outcome.upper()} (exit {v.exit_code}): {v.reason}", f"  {_target(v)}",
             f"  {_facts(v)}"]
    if v.gates:
        rows = [("gate", "value", "limit", "result"),
                *((g.title, g.shown, g.shown_limit, g.outcome) for g in v.gates)]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
    return "\n".join(lines) + "\n"


_MARK = {"pass": "✅ pass", "fail": "❌ fail", "missing": "❌ null", "skipped": "⏭️ skipped"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(v: Verdict) -> str:
    """A section for `$GITHUB_STEP_SUMMARY`."""
    icon = "✅" if v.passed else "❌"
    out = [f"### {icon} CallMeter gate: {v.outcome} (exit {v.exit_code})", "", f"{_cell(_target(v))}<br>",
           _cell(_facts(v)), "",
           f"**{_cell(v.reason)}**", ""]
    if v.gates:
        out += ["| gate | value | limit | result |", "|---|---|---|---|"]
        out += [f"| {_cell(g.title)} | {_cell(g.shown)} | {_cell(g.shown_limit)} | {_MARK[g.outcome]} |"
                for g in v.gates]
        out.append("")
    return "\n".join(out) + "\n"


def as_json(v: Verdict) -> str:
    payload: dict[str, Any] = {
        "passed": v.passed, "exit_code": v.exit_code, "outcome": v.outcome, "reason": v.reason, "kind": v.kind,
        "project": v.project, "target": {"id": v.target_id, "name": v.target_name},
        "run": {"id": v.run_id, "status": v.status, "duration_seconds": v.run_seconds},
        "gates": [{"gate": g.option, "title": g.title, "limit": g.limit, "limit_shown": g.shown_limit,
                   "value": g.value, "value_shown": g.shown, "outcome": g.outcome, "message": g.message}
                  for g in v.gates],
        "values": dict(v.values), "elapsed_seconds": round(v.elapsed_seconds, 3), "requests": v.requests,
    }
    return json.dumps(payload, indent=2) + "\n"


def junit_xml(v: Verdict) -> str:
    """JUnit XML: one case for the run (or execution) itself, one per gate; failures and skips as
    GitLab, Jenkins and the GitHub test-report actions read them."""
    cases = [_status_case(v), *(_gate_case(v, g) for g in v.gates)]
    count = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
    for case in cases:
        for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            count[key] += case.find(kind) is not None
    attrs = {k: str(n) for k, n in count.items()} | {"time": f"{v.elapsed_seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "callmeter-gate", **attrs})
    suite = ET.SubElement(root, "testsuite", {"name": f"callmeter gate {v.project} {v.target_name}".strip(), **attrs})
    props = ET.SubElement(suite, "properties")
    for name, value in (("project", v.project), ("kind", v.kind), ("target_id", v.target_id),
                        ("run_id", v.run_id or ""), ("status", v.status or ""), ("exit_code", str(v.exit_code))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    suite.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _case(v: Verdict, name: str) -> ET.Element:
    return ET.Element("testcase", {"classname": f"callmeter.{v.project}.{v.target_name}", "name": name,
                                   "time": f"{v.elapsed_seconds:.3f}"})


def _status_case(v: Verdict) -> ET.Element:
    case = _case(v, f"{'run' if v.kind == 'test' else 'execution'} finished")
    if v.exit_code == RUN_FAILED:
        ET.SubElement(case, "failure", {"message": v.reason, "type": "RunFailed"}).text = v.reason
    elif v.exit_code in (TIMED_OUT, API_ERROR, USAGE):
        kind = {TIMED_OUT: "Timeout", API_ERROR: "ApiError", USAGE: "UsageError"}[v.exit_code]
        ET.SubElement(case, "error", {"message": v.reason, "type": kind}).text = v.reason
    return case


def _gate_case(v: Verdict, g: GateResult) -> ET.Element:
    case = _case(v, f"{g.title} {g.shown_limit}")
    if g.failed:
        ET.SubElement(case, "failure", {"message": g.message, "type": "GateFailed"}).text = g.message
    elif g.outcome == "skipped":
        ET.SubElement(case, "skipped", {"message": g.message})
    return case
