"""The API's two writes in the simulator, Run Test and Run Probe, and the plans tests give them.

    POST /projects/{projectId}/tests/{testId}/run    201: the new run, PENDING; it then goes QUEUED,
                                                     RUNNING for the test's durationSeconds, and ends
                                                     as planned (COMPLETED unless a test says otherwise)
    POST /projects/{projectId}/probes/{probeId}/run  201: the queued execution; it runs after a while
                                                     and moves the probe's lastExecutionAt

Control routes (tests that run the simulator as a process): `POST /_sim/tests/{testId}` with
`{"outcome", "summary", "duration"}`, `POST /_sim/probe-executions/{probeId}` with `{"status", "seconds"}`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .envelope import NOT_FOUND, ApiFault
from .world import World


def post(world: World, parts: list[str], now: float, *, forbidden: Collection[str]) -> dict[str, Any]:
    """The `data` of a 201 for `POST /projects/{p}/(tests|probes)/{id}/run`; ApiFault otherwise."""
    if len(parts) != 5 or parts[0] != "projects" or parts[2] not in ("tests", "probes") or parts[4] != "run":
        raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
    project = world.projects.get(parts[1])
    if project is None:
        raise ApiFault(404, "NOT_FOUND", NOT_FOUND)
    if project.id in forbidden or project.slug in forbidden:
        raise ApiFault(403, "FORBIDDEN", "Insufficient permissions for this operation")
    if parts[2] == "tests":
        test = world.tests.get(parts[3])
        if test is None or test.project_id != project.id:
            raise ApiFault(404, "NOT_FOUND", "Test not found")
        run_id = world.start_run(test.id, now)
        return {"id": run_id, "testId": test.id, "status": "PENDING", "createdAt": world.stamp(now)}
    probe = world.probes.get(parts[3])
    if probe is None or probe.project_id != project.id:
        raise ApiFault(404, "NOT_FOUND", "Probe not found")
    count = world.triggers.run_probe(probe.id, now)
    return {"id": f"exec_{probe.id.removeprefix('probe_')[:8]}_{count:04d}", "probeId": probe.id,
            "status": "QUEUED", "createdAt": world.stamp(now)}


def control(world: World, method: str, parts: list[str], payload: dict[str, Any]) -> bool:
    """The two control routes; False when the request is neither."""
    if method != "POST" or len(parts) != 2 or parts[0] not in ("tests", "probe-executions"):
        return False
    if parts[0] == "tests":
        if parts[1] not in world.tests:
            raise KeyError(parts[1])
        world.triggers.plan_test(parts[1], outcome=payload.get("outcome"), summary=payload.get("summary"),
                                 duration=payload.get("duration"))
    else:
        if parts[1] not in world.probes:
            raise KeyError(parts[1])
        world.triggers.plan_probe(parts[1], status=payload.get("status"), seconds=payload.get("seconds"))
    return True
