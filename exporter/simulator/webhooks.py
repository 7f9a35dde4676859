"""The simulator's probe webhooks: a signed `probe.status_changed` delivery on every probe status change.

Like CallMeter, it fires only when a probe's status changes (every pair of states), never when it
stays, and retries a delivery that was not answered 2xx. A watcher thread compares every probe's
status with the last one seen, every `tick` seconds and at once after a control route forced one;
a sender thread posts the deliveries in order of their due time, so a retried delivery may arrive
after a newer one, as it can from CallMeter.

What CallMeter's documentation leaves open is a choice here, set through `configure` (and the control
route `POST /_sim/webhooks`): the new-status field's name, where a timestamp goes (header, body or
nowhere), the signature header and its form (`sha256=<hex>` or bare hex).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from .world import World

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before each retry of a delivery that was not answered 2xx."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str | None = None
    secret: str = ""
    signature_header: str = "X-CallMeter-Signature"
    signature_format: str = "sha256"  # "sha256" (sha256=<hex>) or "hex"
    status_field: str = "new_status"
    timestamp: str = "body"  # "body" (a `timestamp` field, Unix seconds), "header" or "none"
    timestamp_header: str = "X-CallMeter-Timestamp"
    retries: int = 3
    tick: float = 0.1
    verify_tls: bool = True


@dataclass
class Sent:
    """One attempt at a delivery, as the tests read them."""

    at: float
    probe_id: str
    status: str
    attempt: int
    code: int | None


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    body: bytes = field(compare=False)
    probe_id: str = field(compare=False)
    status: str = field(compare=False)
    attempt: int = field(compare=False, default=0)


class Watched(Protocol):
    """What the sender needs of the simulator (`simulator.app.Simulator`): the lock it serves under, its
    clock, and the world whose probes it watches (read afresh: a test may swap the world)."""

    @property
    def lock(self) -> AbstractContextManager[object]: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def world(self) -> World: ...


def signature(body: bytes, secret: str, form: str) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return digest if form == "hex" else "sha256=" + digest


class WebhookSender:
    """Watches the simulator's probes and delivers their changes to `config.url`; idle until configured."""

    def __init__(self, simulator: Watched) -> None:
        self._sim = simulator
        self.config = WebhookConfig()
        self.sent: deque[Sent] = deque(maxlen=10_000)
        self._known: dict[str, str] = {}
        self._queue: list[_Queued] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control -------------------------------------------------------------------------------

    def configure(self, **changes: Any) -> WebhookConfig:
        """Change the configuration; a URL starts the watcher and sender (from the statuses of now)."""
        unknown = set(changes) - set(WebhookConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown webhook settings: {sorted(unknown)}")
        with self._cond:
            self.config = replace(self.config, **changes)
        if self.config.url and not self._threads:
            self._known = self.statuses()
            for target, name in ((self._watch, "simulator-webhook-watch"), (self._send, "simulator-webhook-send")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self.config

    def describe(self) -> dict[str, Any]:
        """The configuration without the secret, and how the deliveries went."""
        config = {k: v for k, v in self.config.__dict__.items() if k != "secret"}
        codes: dict[str, int] = {}
        for sent in list(self.sent):
            codes[str(sent.code)] = codes.get(str(sent.code), 0) + 1
        return {**config, "sent": len(self.sent), "codes": codes, "queued": len(self._queue)}

    def poke(self) -> None:
        """Look at the probes now (a control route just forced a status)."""
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    # -- watching ------------------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        """Every probe's status now, as the API would report it."""
        sim = self._sim
        with sim.lock:
            now = sim.clock()
            return {p.id: str(sim.world.probe_view(p, now)["status"]) for p in sim.world.probes.values()}

    def check(self) -> int:
        """Queue a delivery for every probe whose status changed since the last check; how many.
        The first check only takes note."""
        now_statuses = self.statuses()
        if not self._known:
            self._known = now_statuses
            return 0
        changed = 0
        for probe_id, status in now_statuses.items():
            previous = self._known.get(probe_id)
            if previous is not None and previous != status:
                self._enqueue(probe_id, previous, status)
                changed += 1
        self._known = now_statuses
        return changed

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.config.tick)
            self._poke.clear()
            if not self._stop.is_set():
                self.check()

    def payload(self, probe_id: str, previous: str, status: str) -> dict[str, Any]:
        sim = self._sim
        with sim.lock:
            probe = sim.world.probes.get(probe_id)
            project = sim.world.projects.get(probe.project_id) if probe else None
            now = sim.clock()
        payload: dict[str, Any] = {
            "event": "probe.status_changed", "probe_id": probe_id, "probe_name": probe.name if probe else None,
            "project_id": project.id if project else None, "project_name": project.name if project else None,
            "previous_status": previous, self.config.status_field: status}
        if self.config.timestamp == "body":
            payload["timestamp"] = round(now, 3)
        return payload

    def _enqueue(self, probe_id: str, previous: str, status: str) -> None:
        body = json.dumps(self.payload(probe_id, previous, status), separators=(",", ":")).encode()
        with self._cond:
            heapq.heappush(self._queue, _Queued(time.monotonic(), next(self._seq), body, probe_id, status))
            self._cond.notify()

    # -- sending -------------------------------------------------------------------------------

    def _next(self) -> _Queued | None:
        with self._cond:
            while not self._stop.is_set():
                if self._queue and self._queue[0].due <= time.monotonic():
                    return heapq.heappop(self._queue)
                wait = self._queue[0].due - time.monotonic() if self._queue else None
                self._cond.wait(wait)
        return None

    def _send(self) -> None:
        with httpx.Client(timeout=5.0, verify=self.config.verify_tls) as client:
            while (item := self._next()) is not None:
                code = self.deliver(client, item.body)
                self.sent.append(Sent(time.time(), item.probe_id, item.status, item.attempt, code))
                if (code is None or not 200 <= code < 300) and item.attempt < min(self.config.retries,
                                                                                   len(RETRY_DELAYS)):
                    retry = replace(item, due=time.monotonic() + RETRY_DELAYS[item.attempt],
                                    seq=next(self._seq), attempt=item.attempt + 1)
                    with self._cond:
                        heapq.heappush(self._queue, retry)

    def deliver(self, client: httpx.Client, body: bytes) -> int | None:
        """POST one signed delivery; its HTTP status, or None when no answer came."""
        config = self.config
        if not config.url:
            return None
        headers = {"Content-Type": "application/json", "User-Agent": "callmeter-simulator-webhooks",
                   config.signature_header: signature(body, config.secret, config.signature_format)}
        if config.timestamp == "header":
            headers[config.timestamp_header] = datetime.fromtimestamp(self._sim.clock(), UTC).isoformat()
        try:
            return client.post(config.url, content=body, headers=headers).status_code
        except httpx.HTTPError:
            return None
