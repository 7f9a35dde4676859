"""The state file: what the exporter knows, kept across restarts (`CALLMETER_STATE_FILE`).

What is kept: each project's data with the times it was read (probe and test details and the endpoint
outcomes of completed runs included, so none is read again before its time), the run tracker (latest
and latest completed runs, runs counted, list order and pages, details wanted), the finished-run
counters, the probe statuses seen, the last success per resource, what the schedule has learned
(probe result delays, when runs end), and the limiter's recent request times, so that a restart
spends exactly what is left of the 60 s window.
Never the API key: the file names the key by a one-way fingerprint, so a file written for another
key (another account) is not served.

Written atomically (a temporary file beside it, fsync, rename, fsync of the folder), mode 0600, so
a kill -9 during a write leaves the previous file whole. A file that cannot be used (unreadable,
empty, truncated, corrupt, another format version, another base URL or key, larger than
`MAX_BYTES`) is set aside with one warning line, and the exporter starts cold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import logs
from ..api.models import Probe, Project, Registrar, Test, TestRun
from ..model.details import ProbeDetail, TestDetail
from ..model.endpoints import EndpointTally
from ..model.runs import ProjectRuns, RunTracker
from ..model.snapshot import ProjectData
from ..schedule.timing import Learned

FORMAT = "callmeter-exporter-state"
VERSION = 2
MAX_BYTES = 64 * 1024 * 1024
"""Far above what the bounded caches can hold (2,000 counted runs a project): a larger file is not ours."""


class StateError(Exception):
    """Why a state file cannot be used; the message names the problem, never a secret."""


def key_fingerprint(key: str) -> str:
    """A one-way name for the key: tells "same key" from "another key" without keeping the key."""
    return hashlib.sha256(b"callmeter-exporter state file\0" + key.encode()).hexdigest()[:16]


@dataclass
class SavedState:
    """What a state file holds, in the exporter's own types. Times are Unix times (wall clock)."""

    projects: dict[str, ProjectData] = field(default_factory=dict)
    projects_at: float | None = None
    runs: RunTracker = field(default_factory=RunTracker)
    probe_statuses: set[str] = field(default_factory=set)
    last_success: dict[str, float] = field(default_factory=dict)
    request_times: list[float] = field(default_factory=list)
    rate_per_minute: float | None = None
    paused_until: float = 0.0
    learned: Learned = field(default_factory=Learned)
    """What the schedule has learned: probe result delays, when runs end."""


# -- to and from JSON --------------------------------------------------------------------------

def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _models(items: Any, model: type[BaseModel]) -> Any:
    if items is None:
        return None
    return tuple(model.model_validate(item) for item in items)


def _project_to_json(data: ProjectData) -> dict[str, Any]:
    def many(items: tuple[BaseModel, ...] | None) -> list[dict[str, Any]] | None:
        return None if items is None else [_dump(i) for i in items]

    return {"project": _dump(data.project), "probes": many(data.probes), "tests": many(data.tests),
            "registrars": many(data.registrars),
            "latest_runs": {t: _dump(r) for t, r in data.latest_runs.items()},
            "latest_completed": {t: _dump(r) for t, r in data.latest_completed.items()},
            "fetched": dict(data.fetched),
            "probe_details": {i: _dump(d) for i, d in data.probe_details.items()},
            "test_details": {i: _dump(d) for i, d in data.test_details.items()},
            "endpoint_outcomes": {t: _tally_to_json(e) for t, e in data.endpoint_outcomes.items()}}


def _tally_to_json(tally: EndpointTally) -> dict[str, Any]:
    return {"run_id": tally.run_id, "order_key": tally.order_key, "groups": list(tally.groups),
            "counts": [[g, o, n] for (g, o), n in tally.counts.items()], "read_at": tally.read_at,
            "extra_outcomes": list(tally.extra_outcomes)}


def _tally_from_json(raw: Mapping[str, Any]) -> EndpointTally:
    key = raw["order_key"]
    return EndpointTally(run_id=str(raw["run_id"]), order_key=float(key) if key is not None else None,
                         counts={(str(g), str(o)): int(n) for g, o, n in raw["counts"]},
                         groups=tuple(map(str, raw["groups"])), read_at=float(raw["read_at"]),
                         extra_outcomes=tuple(map(str, raw.get("extra_outcomes", ()))))


def _project_from_json(raw: Mapping[str, Any]) -> ProjectData:
    return ProjectData(
        project=Project.model_validate(raw["project"]), probes=_models(raw["probes"], Probe),
        tests=_models(raw["tests"], Test), registrars=_models(raw["registrars"], Registrar),
        latest_runs=_runs(raw["latest_runs"]), latest_completed=_runs(raw["latest_completed"]),
        fetched={str(k): float(v) for k, v in raw["fetched"].items()},
        # Files written before these were kept have none: they are read again, once.
        probe_details={str(k): ProbeDetail.model_validate(v) for k, v in raw.get("probe_details", {}).items()},
        test_details={str(k): TestDetail.model_validate(v) for k, v in raw.get("test_details", {}).items()},
        endpoint_outcomes={str(k): _tally_from_json(v) for k, v in raw.get("endpoint_outcomes", {}).items()})


def _runs(raw: Mapping[str, Any]) -> dict[str, TestRun]:
    return {str(k): TestRun.model_validate(v) for k, v in raw.items()}


def _project_runs_to_json(p: ProjectRuns) -> dict[str, Any]:
    return {"latest_runs": {t: _dump(r) for t, r in p.latest_runs.items()},
            "latest_completed": {t: _dump(r) for t, r in p.latest_completed.items()},
            "detail_for_test": dict(p.detail_for_test),
            "wanted_runs": {i: _dump(r) for i, r in p.wanted_runs.items()},
            "counted": dict(p.counted), "count_floor": p.count_floor if math.isfinite(p.count_floor) else None,
            "seen_runs": sorted(p.seen_runs), "open_runs": sorted(p.open_runs), "run_order": p.run_order,
            "run_pages": p.run_pages, "pages_per_listing": p.pages_per_listing, "cold": p.cold}


def _project_runs_from_json(raw: Mapping[str, Any]) -> ProjectRuns:
    floor = raw["count_floor"]
    return ProjectRuns(
        latest_runs=_runs(raw["latest_runs"]), latest_completed=_runs(raw["latest_completed"]),
        detail_for_test={str(k): str(v) for k, v in raw["detail_for_test"].items()},
        wanted_runs=_runs(raw["wanted_runs"]),
        counted={str(k): float(v) for k, v in raw["counted"].items()},
        count_floor=float(floor) if floor is not None else float("-inf"),
        seen_runs=frozenset(map(str, raw["seen_runs"])), open_runs=frozenset(map(str, raw["open_runs"])),
        run_order=raw["run_order"], run_pages=raw["run_pages"], pages_per_listing=float(raw["pages_per_listing"]),
        cold=bool(raw["cold"]))


def _learned(raw: Mapping[str, Any]) -> Learned:
    return Learned(**{f.name: {str(k): float(v) for k, v in raw[f.name].items()} for f in dataclasses.fields(Learned)})


def to_json(state: SavedState, *, base_url: str, key: str, written_at: float) -> dict[str, Any]:
    runs = state.runs
    return {
        "format": FORMAT, "version": VERSION, "written_at": written_at,
        "base_url": base_url, "key": key_fingerprint(key),
        "projects": [_project_to_json(p) for p in state.projects.values()],
        "projects_at": state.projects_at,
        "runs": {"projects": {pid: _project_runs_to_json(p) for pid, p in runs.projects.items()},
                 "finished": [[*k, n] for k, n in runs.finished.items()], "statuses": sorted(runs.statuses),
                 "started_at": runs.started_at},
        "probe_statuses": sorted(state.probe_statuses),
        "last_success": dict(state.last_success),
        "limiter": {"sent": list(state.request_times), "per_minute": state.rate_per_minute,
                    "paused_until": state.paused_until},
        "learned": dataclasses.asdict(state.learned),
    }


def from_json(raw: Any, *, base_url: str, key: str, lookback_pages: int) -> SavedState:
    """The state in a parsed file; StateError when it is not one this exporter may use."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise StateError("not a callmeter-exporter state file")
    if raw.get("version") != VERSION:
        raise StateError(f"format version {raw.get('version')!r}, this exporter reads version {VERSION}")
    if raw.get("base_url") != base_url:
        raise StateError("written for another CALLMETER_BASE_URL")
    if raw.get("key") != key_fingerprint(key):
        raise StateError("written for another API key (account)")
    try:
        projects = [_project_from_json(p) for p in raw["projects"]]
        runs = RunTracker(
            lookback_pages=lookback_pages, started_at=raw["runs"]["started_at"],
            projects={str(pid): _project_runs_from_json(p) for pid, p in raw["runs"]["projects"].items()},
            finished={(str(a), str(b), str(c)): int(n) for a, b, c, n in raw["runs"]["finished"]},
            statuses=set(map(str, raw["runs"]["statuses"])))
        limiter = raw["limiter"]
        return SavedState(
            projects={p.project.id: p for p in projects}, projects_at=raw["projects_at"], runs=runs,
            probe_statuses=set(map(str, raw["probe_statuses"])),
            last_success={str(k): float(v) for k, v in raw["last_success"].items()},
            request_times=[float(t) for t in limiter["sent"]], rate_per_minute=limiter["per_minute"],
            paused_until=float(limiter["paused_until"]), learned=_learned(raw["learned"]))
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
        raise StateError(f"corrupt ({type(exc).__name__})") from None


# -- the file ----------------------------------------------------------------------------------

class StateFile:
    def __init__(self, path: Path, *, base_url: str) -> None:
        self.path = path
        self._base_url = base_url
        self._log = logs.get_logger("callmeter.state")

    def load(self, *, key: str, lookback_pages: int) -> SavedState | None:
        """The saved state, or None (one warning line when a file was there but is unusable)."""
        try:
            size = self.path.stat().st_size
            if size > MAX_BYTES:
                raise StateError(f"larger than {MAX_BYTES} bytes")
            text = self.path.read_bytes()
        except FileNotFoundError:
            self._log.info("state.none", path=str(self.path), hint="no state file yet: starting cold")
            return None
        except (OSError, StateError) as exc:
            self._unusable(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
            return None
        try:
            if not text.strip():
                raise StateError("empty")
            try:
                raw = json.loads(text)
            except (ValueError, RecursionError):
                raise StateError("not valid JSON (truncated or corrupt)") from None
            state = from_json(raw, base_url=self._base_url, key=key, lookback_pages=lookback_pages)
        except StateError as exc:
            self._unusable(str(exc))
            return None
        self._log.info("state.restored", path=str(self.path), projects=len(state.projects))
        return state

    def _unusable(self, why: str) -> None:
        self._log.warning("state.unusable", path=str(self.path), problem=why,
                          hint="starting cold; the file is replaced at the next save")

    def encode(self, state: SavedState, *, key: str, written_at: float) -> bytes:
        """The file's bytes. Call it where the state cannot change meanwhile (on the event loop)."""
        return json.dumps(to_json(state, base_url=self._base_url, key=key, written_at=written_at),
                          separators=(",", ":")).encode()

    def write(self, payload: bytes) -> None:
        """Write atomically (safe off the event loop); an OSError is logged and the previous file stays."""
        folder = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(payload)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self._log.warning("state.save_failed", path=str(self.path), error=exc.strerror or type(exc).__name__)

