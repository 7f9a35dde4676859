"""The alert list of docs/alerts.md, from deploy/prometheus/callmeter-rules.yml.

The condition shown is the rule's own expression when it is one line, else the line marked
`# THRESHOLD` (the one place its literal number is set); the note is that mark's comment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .markdown import code, header, table

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "callmeter-rules.yml"
PROBE_LINE = "callmeter_test:probe_threshold:strictest"


class Alert(NamedTuple):
    name: str
    group: str
    rule: dict[str, Any]
    threshold_line: str | None
    threshold_note: str


def _threshold_lines(text: str) -> dict[str, tuple[str, str]]:
    """Alert name -> (the code of its `# THRESHOLD` line, the comment after the mark)."""
    found: dict[str, tuple[str, str]] = {}
    current = None
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"\s*- (alert|record): (\S+)", line)
        if match:
            current = match.group(2) if match.group(1) == "alert" else None
            continue
        if current and "# THRESHOLD" in line:
            code_part, _, comment = line.partition("# THRESHOLD")
            code_part = re.sub(r"^\s*expr:\s*", "", code_part).strip()
            comment = comment.lstrip(":").strip()
            if comment.endswith("...") and number + 1 < len(lines):
                # The comment goes on at the end of the next line: "...in every 15-minute window".
                comment = comment[:-3] + " " + lines[number + 1].partition("#")[2].strip().lstrip(".")
            found[current] = (code_part, comment)
    return found


def alerts(path: Path = RULES) -> list[Alert]:
    text = path.read_text()
    marks = _threshold_lines(text)
    out = []
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                line, note = marks.get(rule["alert"], (None, ""))
                out.append(Alert(rule["alert"], group["name"], rule, line, note))
    return out


def _without_comments(expr: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in expr.strip().splitlines()]
    return [line for line in lines if line]


def condition(alert: Alert) -> str:
    if PROBE_LINE in alert.rule["expr"] and alert.threshold_line:
        # The literal line; the other branch compares with the probes' own line.
        return code(alert.threshold_line) + ", or the probes' [warning line](#the-probes-warning-line)"
    return code(" ".join(_without_comments(alert.rule["expr"])))


def render() -> str:
    rows = [[f"[{a.name}](runbook.md#{a.name.lower()})", code(a.group), a.rule.get("labels", {}).get("severity", ""),
             code(a.rule.get("for", "0m")), condition(a), a.threshold_note or "—"]
            for a in alerts()]
    return header("docs/generate.py", "deploy/prometheus/callmeter-rules.yml") + table(
        ["Alert", "Group", "Severity", "For", "Fires when", "Note"], rows)
