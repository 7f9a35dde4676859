"""The simulated CallMeter API v1: routing, envelope, pagination, errors, per-key rate limit, faults.

`Simulator.handle()` maps one request to one response and is shared by the real HTTP server
(`simulator.http`) and the in-process httpx transport. Control routes under `/_sim/` let tests that
run the simulator as a separate process flip probes, inject faults and revoke keys.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from email.utils import formatdate
from typing import Any

from . import details, writes
from .config import WorldConfig
from .webhooks import WebhookSender
from .world import World

DEMO_KEY = "cmk_" + "d3" * 16
DEMO_KEY_LIMIT = 600
"""The demo key's rate limit a minute (the exporter's demo and the gate's --demo run against it)."""
API_PREFIX = "/api/v1"
TERMINAL = ("COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW")


@dataclass
class Faults:
    """Switches for misbehaviour; all off by default."""

    error_rate: float = 0.0          # share of API requests answered 500
    latency: float = 0.0             # seconds added to every API request
    malformed_rate: float = 0.0      # share of 200 answers with a truncated body
    burst_429: int = 0               # the next N API requests get 429
    retry_after: str = "seconds"     # "seconds", "http-date" or "none"
    retry_after_seconds: float = 2.0
    rate_limit_headers: bool = False  # send X-RateLimit-Limit/-Remaining/-Reset
    run_order: str = "desc"          # run lists newest first ("desc") or oldest first ("asc")
    forbidden_projects: list[str] = field(default_factory=list)
    string_numbers: bool = False     # numbers sent as strings
    extra_fields: bool = False       # unknown fields on every item
    drop_fields: list[str] = field(default_factory=list)  # fields removed from every item
    null_fields: list[str] = field(default_factory=list)  # fields sent as null on every item that has them
    status_override: str | None = None  # every probe and run reports this status


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Simulator:
    def __init__(self, config: WorldConfig | None = None, *, clock: Callable[[], float] = time.time,
                 keys: set[str] | None = None, rate_limit_per_minute: int | None = None) -> None:
        self.clock = clock
        self.world = World.build(config or WorldConfig(), start=clock())
        self.keys = set(keys or {DEMO_KEY})
        self.revoked: set[str] = set()
        self.rate_limit_per_minute = rate_limit_per_minute
        self.faults = Faults()
        self.lock = threading.RLock()
        self.requests: list[tuple[float, str, str, int]] = []  # (time, method, path, status), API routes only
        self.record_requests = True
        self._windows: dict[str, deque[float]] = {}
        self._random = random.Random(self.world.config.seed)
        self.webhooks = WebhookSender(self)
        """Signed probe.status_changed deliveries; idle until a URL is configured (POST /_sim/webhooks)."""

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        path, _, query_text = target.partition("?")
        query = dict(part.partition("=")[::2] for part in query_text.split("&") if part)
        with self.lock:
            if path.startswith("/_sim/"):
                return self._control(method, path, body)
            if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
                return self._error(404, "NOT_FOUND", "No such route")
            response = self._api(method, path[len(API_PREFIX):] or "/", query, headers)
            if self.record_requests:
                self.requests.append((self.clock(), method, path, response.status))
            return response

    def api_request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    # -- API -----------------------------------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if key not in self.keys or key in self.revoked:
            return self._error(401, "UNAUTHORIZED", "Invalid or expired API key")
        now = self.clock()
        limited = self._rate_limit(key, now)
        if limited is not None:
            return limited
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            return self._too_many(self.faults.retry_after_seconds, now)
        if self.faults.error_rate and self._random.random() < self.faults.error_rate:
            return self._error(500, "INTERNAL_ERROR", "Unexpected server error")
        try:
            response = self._route(method, path, query, now)
        except _ApiFault as fault:
            response = self._error(fault.status, fault.code, fault.message)
        if response.status == 200 and self.faults.malformed_rate and self._random.random() < self.faults.malformed_rate:
            response = Response(200, response.body[: max(1, len(response.body) // 2)], response.headers)
        if self.faults.rate_limit_headers and self.rate_limit_per_minute:
            window = self._windows.get(key, deque())
            response.headers.update({
                "X-RateLimit-Limit": str(self.rate_limit_per_minute),
                "X-RateLimit-Remaining": str(max(0, self.rate_limit_per_minute - len(window))),
                "X-RateLimit-Reset": str(math.ceil(window[0] + 60 - now) if window else 60),
            })
        return response

    def _rate_limit(self, key: str, now: float) -> Response | None:
        if not self.rate_limit_per_minute:
            return None
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.rate_limit_per_minute:
            return self._too_many(max(1.0, window[0] + 60 - now), now)
        window.append(now)
        return None

    def _too_many(self, seconds: float, now: float) -> Response:
        response = self._error(429, "RATE_LIMITED", "Rate limit exceeded")
        mode = self.faults.retry_after
        if mode == "http-date":
            # An HTTP date is read off CallMeter's clock, like every timestamp it sends.
            at = now + self.world.clock_offset + math.ceil(seconds)
            response.headers["Retry-After"] = formatdate(at, usegmt=True)
        elif mode != "none":
            response.headers["Retry-After"] = str(math.ceil(seconds))
        return response

    def _route(self, method: str, path: str, query: dict[str, str], now: float) -> Response:
        parts = [p for p in path.split("/") if p]
        w = self.world
        if method == "POST":
            return self._post(parts, now)
        if method != "GET":
            raise _ApiFault(405, "METHOD_NOT_ALLOWED", "Only GET and POST are supported")
        if parts == ["projects"]:
            return self._list([self._project(p) for p in w.projects.values()], query)
        if len(parts) < 2 or parts[0] != "projects":
            raise _ApiFault(404, "NOT_FOUND", "Resource does not exist or is not accessible")
        project = w.projects.get(parts[1])
        if project is None:
            raise _ApiFault(404, "NOT_FOUND", "Resource does not exist or is not accessible")
        if project.id in self.faults.forbidden_projects or project.slug in self.faults.forbidden_projects:
            raise _ApiFault(403, "FORBIDDEN", "Insufficient permissions for this operation")
        rest = parts[2:]
        pid = project.id
        if not rest:
            return self._one(self._project(project))
        kind, ident, tail = rest[0], (rest[1] if len(rest) > 1 else None), rest[2:]
        if kind == "probes":
            probes = [p for p in w.probes.values() if p.project_id == pid]
            if ident is None:
                return self._list([self._item(w.probe_view(p, now)) for p in probes], query)
            probe = w.probes.get(ident)
            if probe is None or probe.project_id != pid or tail:
                raise _ApiFault(404, "NOT_FOUND", "Probe not found")
            return self._one(self._item(details.probe_detail(w, probe, w.probe_view(probe, now))))
        if kind == "tests":
            tests = [t for t in w.tests.values() if t.project_id == pid]
            if ident is None:
                return self._list([self._item(self._test(t)) for t in tests], query)
            test = w.tests.get(ident)
            if test is None or test.project_id != pid or tail:
                raise _ApiFault(404, "NOT_FOUND", "Test not found")
            return self._one(self._item(details.detail_of_test(w, test, self._test(test))))
        if kind == "test-runs":
            if ident is None:
                return self._runs(pid, query, now)
            run = w.find_run(pid, ident, now)
            if run is None or tail not in ([], ["endpoints"]):
                raise _ApiFault(404, "NOT_FOUND", "Test run not found")
            if tail == ["endpoints"]:
                return self._list([self._item(e) for e in details.run_endpoints(w, w.tests[run["testId"]], run)],
                                  query)
            return self._one(self._item(run))
        if kind == "registrars" and ident is None:
            return self._list([self._item({"id": r.id, "name": r.name, "uri": r.uri, "transport": r.transport})
                               for r in w.registrars.values() if r.project_id == pid], query)
        raise _ApiFault(404, "NOT_FOUND", "Resource does not exist or is not accessible")

    # -- the two writes: Run Test and Run Probe (simulator.writes) --------------------------

    def _post(self, parts: list[str], now: float) -> Response:
        try:
            data = writes.post(self.world, parts, now, forbidden=self.faults.forbidden_projects)
        except writes.WriteRefused as refused:
            raise _ApiFault(refused.status, refused.code, refused.message) from None
        return self._one(data, status=201)

    def plan_test_runs(self, test_id: str, *, outcome: str | None = None, summary: dict[str, Any] | None = None,
                       duration: float | None = None) -> None:
        """How the test's triggered runs end: terminal status (None: the usual draw), summary fields
        laid over the drawn ones (a None value sends null), RUNNING time in seconds."""
        with self.lock:
            writes.control(self.world, "POST", ["tests", test_id],
                           {"outcome": outcome, "summary": summary, "duration": duration})

    def plan_probe_executions(self, probe_id: str, *, status: str | None = None, seconds: float | None = None
                              ) -> None:
        """What a triggered execution of the probe leaves (None: its usual status) and how long it takes."""
        with self.lock:
            writes.control(self.world, "POST", ["probe-executions", probe_id], {"status": status, "seconds": seconds})

    def _runs(self, pid: str, query: dict[str, str], now: float) -> Response:
        rows = self.world.runs_of_project(pid, now)
        if self.faults.run_order == "desc":
            rows.reverse()
        page, per_page = self._paging(query)
        chunk = rows[(page - 1) * per_page: page * per_page]
        views = [self._item(self.world.run_view(test, run_id, created, now, detail=False))
                 for created, run_id, test in chunk]
        return self._envelope(views, page, per_page, len(rows))

    # -- shapes --------------------------------------------------------------------------------

    def _project(self, p: Any) -> dict[str, Any]:
        w = self.world
        return {"id": p.id, "slug": p.slug, "name": p.name, "description": f"{p.name} SIP infrastructure testing",
                "testCount": sum(1 for t in w.tests.values() if t.project_id == p.id),
                "probeCount": sum(1 for x in w.probes.values() if x.project_id == p.id),
                "registrarCount": sum(1 for r in w.registrars.values() if r.project_id == p.id)}

    def _test(self, t: Any) -> dict[str, Any]:
        return {"id": t.id, "name": t.name, "durationSeconds": self.world.test_duration(t),
                "totalEndpoints": t.endpoints, "createdAt": self.world.stamp(self.world.start - 86400)}

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        f = self.faults
        if f.status_override and "status" in item:
            item["status"] = f.status_override
        for name in f.null_fields:
            if name in item:
                item[name] = None
        for name in f.drop_fields:
            item.pop(name, None)
            if isinstance(item.get("summary"), dict):
                item["summary"].pop(name, None)
        if f.extra_fields:
            item["x_internalScore"] = {"nested": [1, 2, 3]}
            item["labels"] = ["drift"]
        if f.string_numbers:
            item = _stringify_numbers(item)
        return item

    def _paging(self, query: dict[str, str]) -> tuple[int, int]:
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "25"))
        except ValueError:
            raise _ApiFault(422, "VALIDATION_ERROR", "Invalid page parameter") from None
        if page < 1 or per_page < 1:
            raise _ApiFault(422, "VALIDATION_ERROR", "Invalid page parameter")
        return page, min(per_page, 100)

    def _list(self, items: list[dict[str, Any]], query: dict[str, str]) -> Response:
        page, per_page = self._paging(query)
        return self._envelope(items[(page - 1) * per_page: page * per_page], page, per_page, len(items))

    def _envelope(self, chunk: list[dict[str, Any]], page: int, per_page: int, total: int) -> Response:
        pagination = {"page": page, "perPage": per_page, "total": total, "totalPages": math.ceil(total / per_page)}
        return self._json(200, {"data": chunk, "meta": {"requestId": str(uuid.uuid4()), "pagination": pagination}})

    def _one(self, item: dict[str, Any], status: int = 200) -> Response:
        return self._json(status, {"data": item, "meta": {"requestId": str(uuid.uuid4())}})

    def _error(self, status: int, code: str, message: str) -> Response:
        return self._json(status, {"error": {"code": code, "message": message},
                                   "meta": {"requestId": str(uuid.uuid4())}})

    @staticmethod
    def _json(status: int, payload: Any) -> Response:
        return Response(status, json.dumps(payload, separators=(",", ":")).encode(),
                        {"Content-Type": "application/json"})

    # -- control -------------------------------------------------------------------------------

    def set_probe_status(self, probe_id: str, status: str | None) -> None:
        with self.lock:
            self.world.force_probe_status(probe_id, status, self.clock())

    def delete(self, kind: str, ident: str) -> None:
        with self.lock:
            tables: dict[str, dict[str, Any]] = {"project": self.world.projects, "probe": self.world.probes,
                                                 "test": self.world.tests, "registrar": self.world.registrars}
            table = tables[kind]
            del table[ident]

    def set_faults(self, **changes: Any) -> Faults:
        with self.lock:
            self.faults = replace(self.faults, **changes)
            return self.faults

    def state(self) -> dict[str, Any]:
        w = self.world
        with self.lock:
            return {
                "key": sorted(self.keys)[0],
                "projects": [{"id": p.id, "slug": p.slug, "name": p.name} for p in w.projects.values()],
                "probes": [{"id": p.id, "project_id": p.project_id, "name": p.name,
                            "status": w.probe_view(p, self.clock())["status"]} for p in w.probes.values()],
                "tests": [{"id": t.id, "project_id": t.project_id, "name": t.name} for t in w.tests.values()],
                "requests": len(self.requests),
                "faults": {f.name: getattr(self.faults, f.name) for f in fields(Faults)},
            }

    def _control(self, method: str, path: str, body: bytes) -> Response:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "BAD_REQUEST", "body must be JSON")
        parts = [p for p in path.split("/") if p][1:]
        try:
            if method == "GET" and parts == ["state"]:
                return self._json(200, self.state())
            if method == "POST" and len(parts) == 2 and parts[0] == "probes":
                self.set_probe_status(parts[1], payload.get("status"))
                self.webhooks.poke()
            elif parts == ["webhooks"]:
                if method == "POST":
                    self.webhooks.configure(**payload)
                return self._json(200, self.webhooks.describe())
            elif method == "POST" and parts == ["faults"]:
                self.set_faults(**payload)
            elif method == "POST" and parts == ["reset-faults"]:
                self.faults = Faults()
            elif method == "POST" and parts == ["delete"]:
                self.delete(payload["kind"], payload["id"])
            elif writes.control(self.world, method, parts, payload):
                pass
            elif method == "POST" and parts == ["keys"]:
                if "revoke" in payload:
                    self.revoked.add(payload["revoke"])
                if "restore" in payload:
                    self.revoked.discard(payload["restore"])
            else:
                return self._error(404, "NOT_FOUND", "No such control route")
        except (KeyError, TypeError) as exc:
            return self._error(400, "BAD_REQUEST", f"bad control request: {exc}")
        return self._json(200, self.state())


class _ApiFault(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message




def _stringify_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stringify_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value
