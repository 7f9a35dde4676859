"""The simulator's detail payloads: probe detail (thresholds), test detail (groups, codecs) and a run's
endpoint listing (phase and outcome of each endpoint, by group).

The reference shows no field of the two details, so the simulated probes use several shapes, as a
real account might: a project's first probe (and fifth, ...) sends every threshold, the second a
partial list with an entry the exporter does not know, the third none, the fourth a partial set
nested in its configuration. A test has two or three groups. A completed run's endpoints end mostly in SUCCESS,
some with warnings or failures, and about one run in three has one endpoint whose outcome is not
one CallMeter documents (MEDIA_TIMEOUT).
"""

from __future__ import annotations

import re
from typing import Any

from .draws import unit
from .entities import SimProbe, SimTest
from .world import World

UNKNOWN_OUTCOME = "MEDIA_TIMEOUT"
"""An outcome CallMeter's documentation does not list: the exporter must keep it as itself."""
FULL_THRESHOLDS: dict[str, Any] = {
    "mos": {"warning": 3.5, "critical": 2.5}, "jitter_ms": {"warning": 30, "critical": 80},
    "rtt_ms": {"warning": 150, "critical": 300}, "packet_loss": {"warning": 1, "critical": 5}}
PARTIAL_THRESHOLDS: list[dict[str, Any]] = [{"metric": "mos", "warning": 4.0},
                                            {"metric": "jitterMs", "level": "critical", "value": 60},
                                            {"metric": "pdd_ms", "warning": 2000}]
NESTED_THRESHOLDS: dict[str, Any] = {"warning": {"mos": 3.8, "packetLossPercent": 2}}
CODECS = (["PCMU", "PCMA", "opus"], ["G722", "PCMU"], ["opus"])


def probe_detail(world: World, probe: SimProbe, view: dict[str, Any]) -> dict[str, Any]:
    """The probe's list view, the test it runs, and thresholds in the shape its number in the project gives
    (the number its name ends in: a deleted probe does not change the others' shapes)."""
    number = re.search(r"(\d+)$", probe.name)
    position = int(number[1]) - 1 if number else int(unit(world.config.seed, probe.id, "shape") * 4)
    detail = {**view, "testId": next((t.id for t in world.tests.values() if t.project_id == probe.project_id), None)}
    shape = position % 4
    if shape == 0:
        detail["thresholds"] = FULL_THRESHOLDS
    elif shape == 1:
        detail["thresholds"] = PARTIAL_THRESHOLDS
    elif shape == 3:
        detail["configuration"] = {"thresholds": NESTED_THRESHOLDS, "timeoutSeconds": 30}
    return detail


def groups(world: World, test: SimTest) -> list[tuple[str, int]]:
    """(name, endpoints) of each group of the test: two, or three for about half the tests."""
    total = test.endpoints
    if unit(world.config.seed, test.id, "groups") < 0.5:
        callers = total * 2 // 5
        return [("Callers", callers), ("Callees", callers), ("Transfer targets", total - 2 * callers)]
    return [("Callers", total // 2), ("Callees", total - total // 2)]


def detail_of_test(world: World, test: SimTest, listed: dict[str, Any]) -> dict[str, Any]:
    """The test's list view with its groups, codecs and media settings."""
    codecs = CODECS[int(unit(world.config.seed, test.id, "codecs") * len(CODECS))]
    return {**listed, "groups": [{"name": name, "size": size, "role": "caller" if i == 0 else "callee"}
                                 for i, (name, size) in enumerate(groups(world, test))],
            "codecs": codecs, "media": {"file": "speech-8k.wav"}}


def _ended(world: World, run_id: str, i: int) -> tuple[str, str]:
    """(phase, outcome) of a registered endpoint of a completed run."""
    draw = unit(world.config.seed, run_id, "endpoint", i)
    if draw < 0.02:
        return "CALLING", "CALL_FAILED"
    if draw < 0.03:
        return "NEGOTIATING", "NEGOTIATION_FAILED"
    if draw < 0.04:
        return "RINGING", "TIMEOUT"
    if draw < 0.09:
        return "CLOSED", "COMPLETED_WITH_WARNINGS"
    return "CLOSED", "SUCCESS"


def run_endpoints(world: World, test: SimTest, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every endpoint of the run, group by group: those that failed to register (as many as the summary
    says, spread over the groups), then how each registered one ended, or INCALL while the run runs."""
    seed, run_id, status = world.config.seed, run["id"], run["status"]
    total = test.endpoints
    failed_count = run["summary"]["registrationFailedCount"]
    failed = set(sorted(range(total), key=lambda i: unit(seed, run_id, "regfail", i))[:failed_count])
    odd = unit(seed, run_id, "unknown") < 1 / 3
    rows, i = [], 0
    for index, (name, size) in enumerate(groups(world, test)):
        for _ in range(size):
            if i in failed:
                phase, outcome = "INITIALIZING", "REGISTRATION_FAILED"
            elif status == "COMPLETED":
                phase, outcome = ("CLOSED", UNKNOWN_OUTCOME) if odd and i == total - 1 else _ended(world, run_id, i)
            elif status == "FAILED":
                phase, outcome = ("CALLING", "CALL_FAILED") if i % 5 < 2 else ("CLOSED", "SUCCESS")
            else:
                phase, outcome = "INCALL", None
            rows.append({"id": f"ep_{i + 1:03d}", "groupIndex": index, "groupName": name, "phase": phase,
                         "outcome": outcome, "role": "caller" if index == 0 else "callee",
                         "sipAccount": f"user{i + 1:03d}@sip.example.com"})
            i += 1
    return rows
