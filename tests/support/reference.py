"""The reference snapshot: the API reference's own example responses (tests/fixtures), as one project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exporter.api.models import Probe, Project, Registrar, RunEndpoint, Test, TestRun
from exporter.model.endpoints import EndpointTracker
from exporter.model.snapshot import ProjectData, Snapshot

FIXTURES = Path(__file__).parent.parent / "fixtures"
NOW = 1768476000.0  # 2026-01-15T11:20:00Z


def load(name: str) -> Any:
    """The `data` of a recorded response, tests/fixtures/reference_<name>.json."""
    return json.loads((FIXTURES / f"reference_{name}.json").read_text())["data"]


def reference_snapshot(**run_changes: Any) -> Snapshot:
    """The fixtures as a snapshot read at NOW; `run_changes` overrides fields of the run's summary."""
    project = Project.model_validate(load("projects")[0])
    test = Test.model_validate(load("tests")[0])
    run_payload = load("test_run")
    run_payload["summary"].update(run_changes)
    run = TestRun.model_validate(run_payload)
    # The reference lists one endpoint of the run's 500: taken here as the whole listing.
    tracker = EndpointTracker()
    tracker.consider(project.id, {test.id: run}, sizes={}, now=0.0)
    tracker.absorb_page(project.id, run.id, 1, [RunEndpoint.model_validate(e) for e in load("endpoints")], 1, wall=NOW)
    data = ProjectData(
        project=project,
        probes=tuple(Probe.model_validate(p) for p in load("probes")),
        tests=(test,),
        registrars=tuple(Registrar.model_validate(r) for r in load("registrars")),
        latest_runs={test.id: run}, latest_completed={test.id: run}, endpoint_outcomes=tracker.of(project.id).done,
        fetched=dict.fromkeys(("probes", "tests", "registrars", "test_runs"), NOW))
    return Snapshot(projects=(data,), finished_runs={("production", "abc123", "COMPLETED"): 1})
