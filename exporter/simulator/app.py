"""The simulated CallMeter API v1: one request in, one response out, under one lock.

`Simulator.handle()` is shared by the real HTTP server (`simulator.http`) and the in-process httpx
transport. An API request is authenticated, counted against its key's limit (`limits`), given the
request-level faults (`faults`), then routed (`routes`) and put in its envelope (`envelope`); requests
under `/_sim/` go to the control routes (`control`), with which tests that run the simulator as a
separate process flip probes, inject faults and revoke keys. The methods here do the same in process.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from . import writes
from .config import WorldConfig
from .control import control
from .envelope import ApiFault, Response, error
from .faults import Faults
from .limits import KeyWindows, too_many
from .routes import Routes
from .webhooks import WebhookSender
from .world import World

__all__ = ["API_PREFIX", "DEMO_KEY", "DEMO_KEY_LIMIT", "Simulator"]

DEMO_KEY = "cmk_" + "d3" * 16
DEMO_KEY_LIMIT = 600
"""The demo key's rate limit a minute (the exporter's demo and the gate's --demo run against it)."""
API_PREFIX = "/api/v1"


class Simulator:
    """The simulated account (`world`) behind the API, with its keys, limits, faults and request log."""

    def __init__(self, config: WorldConfig | None = None, *, clock: Callable[[], float] = time.time,
                 keys: set[str] | None = None, rate_limit_per_minute: int | None = None) -> None:
        self.clock = clock
        self.world = World.build(config or WorldConfig(), start=clock())
        self.keys = set(keys or {DEMO_KEY})
        self.revoked: set[str] = set()
        self.limits = KeyWindows(rate_limit_per_minute)
        self.faults = Faults()
        self.lock = threading.RLock()
        self.requests: list[tuple[float, str, str, int]] = []  # (time, method, path, status), API routes only
        self.record_requests = True
        self._random = random.Random(self.world.config.seed)
        self.webhooks = WebhookSender(self)
        """Signed probe.status_changed deliveries; idle until a URL is configured (POST /_sim/webhooks)."""

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        path, _, query_text = target.partition("?")
        query = dict(part.partition("=")[::2] for part in query_text.split("&") if part)
        with self.lock:
            if path.startswith("/_sim/"):
                return control(self, method, path, body)
            if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
                return error(404, "NOT_FOUND", "No such route")
            response = self._api(method, path[len(API_PREFIX):] or "/", query, headers)
            if self.record_requests:
                self.requests.append((self.clock(), method, path, response.status))
            return response

    def api_request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    # -- API -----------------------------------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        key = _bearer(headers)
        if key not in self.keys or key in self.revoked:
            return error(401, "UNAUTHORIZED", "Invalid or expired API key")
        now = self.clock()
        refused = self._refused(key, now)
        if refused is not None:
            return refused
        try:
            response = Routes(self.world, self.faults, now).serve(method, path, query)
        except ApiFault as fault:
            response = error(fault.status, fault.code, fault.message)
        if response.status == 200 and self.faults.malformed_rate and self._random.random() < self.faults.malformed_rate:
            response = Response(200, response.body[: max(1, len(response.body) // 2)], response.headers)
        if self.faults.rate_limit_headers:
            response.headers.update(self.limits.headers(key, now))
        return response

    def _refused(self, key: str, now: float) -> Response | None:
        """What an authenticated request gets before it is routed, if not routed: 429 when its key's minute
        is spent or a burst of 429s is on, 500 when an injected error draws it."""
        wait = self.limits.admit(key, now)
        if wait is not None:
            return self._too_many(wait, now)
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            return self._too_many(self.faults.retry_after_seconds, now)
        if self.faults.error_rate and self._random.random() < self.faults.error_rate:
            return error(500, "INTERNAL_ERROR", "Unexpected server error")
        return None

    def _too_many(self, seconds: float, now: float) -> Response:
        return too_many(seconds, now, retry_after=self.faults.retry_after, clock_offset=self.world.clock_offset)

    # -- control (also served under /_sim/, by simulator.control) ------------------------------

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


def _bearer(headers: dict[str, str]) -> str:
    """The API key of a `Authorization: Bearer <key>` header, or ""."""
    auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
