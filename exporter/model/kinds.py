"""The resource kinds: one row per thing the exporter reads from CallMeter.

A row says where a kind is read (its route, the `endpoint` label of the request metrics), how
important it is (its priority class: lower goes first), how often it may be read (its floor
setting and the ceiling the plan may stretch it to), the model its items parse into, and which
field of `snapshot.ProjectData` it fills, so which metric families it feeds (docs/metrics.md).
The poller, the planner, the snapshot's freshness and `--show-schedule` all read this table; the
function that reads a kind is `poll.reads.READS[kind.name]`. Adding a kind is a row here and a read
function there.

    kind              route                                         fills                families
    projects          /projects                                     (the project set)    callmeter_project_info
    probes            /projects/{projectId}/probes                  probes               callmeter_probe_*
    test_runs         /projects/{projectId}/test-runs               latest_runs          callmeter_test_run_last_status,
                                                                                         callmeter_test_runs_finished_total
    test_run_details  /projects/{projectId}/test-runs/{testRunId}   latest_completed     callmeter_test_run_* (quality)
    test_run_endpoints  /projects/{projectId}/test-runs/{testRunId}/endpoints
                                                                    endpoint_outcomes    callmeter_test_run_endpoint_
                                                                                         outcomes
    tests             /projects/{projectId}/tests                   tests                test names on every test series
    registrars        /projects/{projectId}/registrars              registrars           callmeter_registrar_info
    probe_details     /projects/{projectId}/probes/{probeId}        probe_details        callmeter_probe_threshold,
                                                                                         callmeter_probe_info
    test_details      /projects/{projectId}/tests/{testId}          test_details         callmeter_test_info

Run endpoints, probe details and test details are read one request a job, below the plan, with
what it leaves over (`spare`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api.models import ApiModel, Probe, Project, Registrar, RunEndpoint, Test, TestRun
from ..settings import Floors
from .details import Detail

ENDPOINTS = "test_run_endpoints"
PROBE_DETAILS = "probe_details"
TEST_DETAILS = "test_details"


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    """The `resource` label of the exporter's own metrics."""
    route: str
    priority: float
    model: type[ApiModel]
    floor: str
    """The `Floors` field (a `*_MIN_INTERVAL` setting) this kind is read no more often than."""
    ceiling: Callable[[float], float]
    """The longest interval the plan may stretch it to, from its floor: every class stays alive."""
    fills: str | None = None
    """The `ProjectData` field it fills."""
    per_project: bool = True
    periodic: bool = True
    """False: one job per item, read once (a terminal run never changes)."""
    stamped: bool = True
    """Its reads set `ProjectData.fetched[name]`: its data goes stale, and readiness waits for it."""
    upstream_count: str | None = None
    """The `Project` field counting its items, which prices it before its first read."""
    cost_moves: bool = False
    """Its cost per refresh is an average that moves with every read (not a sign the inventory grew)."""

    def path(self, project_id: str | None = None, item: str | None = None) -> str:
        path = self.route.lstrip("/").replace("{projectId}", project_id or "")
        return _ITEM.sub(lambda _: item or "", path)

    def floor_of(self, floors: Floors) -> float:
        return float(getattr(floors, self.floor))


_ITEM = re.compile(r"\{(?!projectId\})\w+\}")


def _inventory_ceiling(floor: float) -> float:
    return max(floor * 24, 6 * 3600)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("probes", "/projects/{projectId}/probes", 0, Probe, "probes", lambda f: max(f * 60, 3600),
         fills="probes", upstream_count="probe_count"),
    Kind("test_runs", "/projects/{projectId}/test-runs", 1, TestRun, "test_runs", lambda f: f * 10,
         fills="latest_runs", cost_moves=True),
    Kind("test_run_details", "/projects/{projectId}/test-runs/{testRunId}", 2, TestRun, "test_runs",
         lambda f: f * 10, fills="latest_completed", periodic=False, stamped=False),
    Kind(ENDPOINTS, "/projects/{projectId}/test-runs/{testRunId}/endpoints", 2.5, RunEndpoint, "test_runs",
         lambda f: f * 10, fills="endpoint_outcomes", periodic=False, stamped=False),
    Kind("projects", "/projects", 3, Project, "inventory", _inventory_ceiling, per_project=False),
    Kind("tests", "/projects/{projectId}/tests", 3, Test, "inventory", _inventory_ceiling,
         fills="tests", upstream_count="test_count"),
    Kind("registrars", "/projects/{projectId}/registrars", 3, Registrar, "inventory", _inventory_ceiling,
         fills="registrars", upstream_count="registrar_count"),
    Kind(PROBE_DETAILS, "/projects/{projectId}/probes/{probeId}", 3, Detail, "inventory", _inventory_ceiling,
         fills="probe_details", periodic=False, stamped=False),
    Kind(TEST_DETAILS, "/projects/{projectId}/tests/{testId}", 3, Detail, "inventory", _inventory_ceiling,
         fills="test_details", periodic=False, stamped=False),
)}
"""In priority order: the order of the plan, of `--show-schedule` and of the landing page."""

SPARE = (ENDPOINTS, PROBE_DETAILS, TEST_DETAILS)
"""Kinds read below the plan (`spare`), one request a job."""
PERIODIC = tuple(k for k in KINDS.values() if k.periodic)
PER_PROJECT = tuple(k for k in KINDS.values() if k.per_project and k.periodic)
STAMPED = tuple(k.name for k in PER_PROJECT if k.stamped)
"""The kinds whose data a project must have to be complete, and whose data goes stale."""


def upstream_count(kind: Kind, project: Project) -> int | None:
    value: Any = getattr(project, kind.upstream_count) if kind.upstream_count else None
    return value if isinstance(value, int) else None
