"""The snapshot: everything /metrics shows, frozen, built by the poller and swapped in whole.

Readers hold a reference to one snapshot and never see a half-applied refresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..api.models import Probe, Project, Registrar, Test, TestRun
from .details import ProbeDetail, TestDetail
from .endpoints import EndpointTally


@dataclass(frozen=True, slots=True)
class ProjectData:
    """What is known of one project; a field is None until its first successful listing."""

    project: Project
    probes: tuple[Probe, ...] | None = None
    tests: tuple[Test, ...] | None = None
    registrars: tuple[Registrar, ...] | None = None
    latest_runs: Mapping[str, TestRun] = field(default_factory=dict)
    """Latest run of each test id, whatever its status (from the run list)."""
    latest_completed: Mapping[str, TestRun] = field(default_factory=dict)
    """Latest COMPLETED run of each test id, with its summary (from the run details)."""
    fetched: Mapping[str, float] = field(default_factory=dict)
    """Resource kind -> Unix time its last successful read began (absent: never read)."""
    probe_details: Mapping[str, ProbeDetail] = field(default_factory=dict)
    """Probe id -> its detail (thresholds), read once every inventory interval the budget has room for."""
    test_details: Mapping[str, TestDetail] = field(default_factory=dict)
    """Test id -> its detail (duration, endpoints, codecs, groups), read as the probe details."""
    endpoint_outcomes: Mapping[str, EndpointTally] = field(default_factory=dict)
    """Test id -> endpoints by group and outcome of its latest completed run whose listing was read."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    projects: tuple[ProjectData, ...] = ()
    finished_runs: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """(project label, test id, status) -> terminal runs observed."""
    probe_statuses: frozenset[str] = frozenset()
    run_statuses: frozenset[str] = frozenset()
    taken_at: float = 0.0
    max_data_age: Mapping[str, float] = field(default_factory=dict)
    """Per resource: data older than this many seconds (at render time) is not served as current."""

    def fresh(self, at: float | None, resource: str, now: float) -> bool:
        if at is None:
            return False
        limit = self.max_data_age.get(resource)
        return limit is None or now - at <= limit

    def next_expiry(self, now: float) -> float | None:
        """When the next still-served value goes stale: the moment the exposition must be rendered again."""
        expiries = []
        for p in self.projects:
            for resource, at in p.fetched.items():
                limit = self.max_data_age.get(resource)
                if limit is not None and now - at <= limit:
                    expiries.append(at + limit)
        return min(expiries) if expiries else None
