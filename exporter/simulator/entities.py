"""The things in the simulated account: projects, probes, tests and registrars, as the world holds them.

Plain data below the world (`world`), its probe executions (`executions`) and its runs (`runs`), so
that each of them can name these types without importing another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimProject:
    id: str
    slug: str
    name: str


@dataclass
class SimProbe:
    id: str
    project_id: str
    name: str
    interval_minutes: float
    phase: float
    forced_status: str | None = None
    result_delay: float = 0.0
    """Seconds from an execution to its result in the probe list (plus a per-execution jitter)."""
    stalled_since: float | None = None
    """From this moment the probe no longer executes, and its `nextExecutionAt` stays in the past."""


@dataclass
class SimTest:
    id: str
    project_id: str
    name: str
    endpoints: int
    period: float
    phase: float
    null_rtt: bool = False
    duration: float = 30.0
    """The test's `durationSeconds`, unrounded."""


@dataclass
class SimRegistrar:
    id: str
    project_id: str
    name: str
    uri: str
    transport: str
