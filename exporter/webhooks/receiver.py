"""The webhook receiver: one delivery in, one answer out, and at most a nudge to the poller.

    method ─► size ─► signature ─► JSON ─► event ─► time window ─► replay ─► order ─► sink.push_probe_status
      405      413       401        400     2xx        401          2xx       2xx       2xx

A delivery is a verified nudge, never a second source of truth: the sink (the poller) shows the new
status at once and reads the project's probe list to confirm it, and that read decides. Nothing is
parsed before the signature is good, and a rejected delivery changes nothing. Rejections are counted
by result and logged once per burst; neither a secret nor a signature is ever logged.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from .. import logs
from .memory import DeliveryOrder, ReplayMemory, Seen
from .metrics import WebhookMetrics
from .payload import PROBE_EVENT, BadPayload, decode, event_of, parse_delivery
from .verify import BadTimestamp, Signature, check_signature, delivery_time

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MEMORY = 300.0
"""Seconds a delivery is remembered when no tolerance window is set."""
BURST_QUIET = 60.0
"""A rejection of a kind after this long without one opens a new burst (and is logged again)."""


class StatusSink(Protocol):
    def push_probe_status(self, project_id: str, probe_id: str, status: str | None, received_at: float) -> str:
        """Show the status at once and ask for a confirming read; "applied", "unknown_probe" or "unknown_project"."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    result: str
    body: bytes

    @property
    def allow(self) -> str | None:
        """The Allow header a 405 carries."""
        return "POST" if self.status == 405 else None


_REJECTED = {"missing_signature": (401, b"missing signature\n"),
             "malformed_signature": (401, b"malformed signature\n"),
             "bad_signature": (401, b"bad signature\n"),
             "stale": (401, b"timestamp outside the tolerance window\n"),
             "too_large": (413, b"body over 1 MiB\n"),
             "bad_payload": (400, b"not a CallMeter webhook payload\n"),
             "method_not_allowed": (405, b"only POST\n")}
_HINTS = {
    "bad_signature": "the secret differs from the webhook's in CallMeter: check CALLMETER_WEBHOOK_SECRET(_FILE)",
    "missing_signature": "no signature header: check CALLMETER_WEBHOOK_SIGNATURE_HEADER, or the sender is not "
                         "CallMeter",
    "malformed_signature": "the signature header holds neither sha256=<hex> nor hex",
    "stale": "the sender's clock or the delivery is old: check clocks, or CALLMETER_WEBHOOK_TIMESTAMP_TOLERANCE",
}
_SIGNATURE_RESULTS = {Signature.MISSING: "missing_signature", Signature.MALFORMED: "malformed_signature",
                      Signature.BAD: "bad_signature"}


class _RejectionLog:
    """The first rejection of a burst per result is logged, with the count of the burst before it; a
    burst ends when its kind has been quiet for BURST_QUIET seconds. Good deliveries in between do not
    end it, so forged ones interleaved with real traffic cannot fill the log."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._open: dict[str, tuple[int, float]] = {}
        self._log = logs.get_logger("callmeter.webhooks")

    def rejected(self, result: str, reason: str) -> None:
        now = self._clock()
        count, last = self._open.get(result, (0, float("-inf")))
        if now - last > BURST_QUIET:
            self._log.warning("webhook.rejected", result=result, reason=reason, previous_burst=count or None,
                              hint=_HINTS.get(result))
            count = 0
        self._open[result] = (count + 1, now)


class Receiver:
    def __init__(self, *, secrets: Callable[[], tuple[bytes, ...]], metrics: WebhookMetrics,
                 sink: StatusSink | None = None, signature_header: str = "X-CallMeter-Signature",
                 timestamp_header: str = "X-CallMeter-Timestamp", tolerance: float = 300.0,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic) -> None:
        self._secrets = secrets
        self.metrics = metrics
        self.sink = sink
        self._signature_header = signature_header.lower()
        self._timestamp_header = timestamp_header
        self._tolerance = tolerance
        self._wall = wall
        self._replays = ReplayMemory(ttl=tolerance or DEFAULT_MEMORY, clock=clock)
        self._order = DeliveryOrder()
        self._rejections = _RejectionLog(clock)
        self._log = logs.get_logger("callmeter.webhooks")

    def refuse(self, result: str, reason: str) -> Answer:
        """Count and log a delivery the server refused before it reached `handle`."""
        return self._reject(result, reason)

    def _reject(self, result: str, reason: str, *, verified_at: float | None = None) -> Answer:
        self.metrics.delivered(result, verified_at=verified_at)
        self._rejections.rejected(result, reason)
        status, body = _REJECTED[result]
        return Answer(status, result, body)

    def _done(self, result: str, verified_at: float) -> Answer:
        self.metrics.delivered(result, verified_at=verified_at)
        return Answer(200, result, result.encode() + b"\n")

    def too_large(self) -> Answer:
        """The answer to a body over MAX_BODY_BYTES, for a server that stops reading it early."""
        return self._reject("too_large", f"the body is over {MAX_BODY_BYTES} bytes")

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one delivery. `headers` are keyed by their lower-case names."""
        if method != "POST":
            return self._reject("method_not_allowed", f"method {method[:16]!r}")
        if len(body) > MAX_BODY_BYTES:
            return self.too_large()
        signature = check_signature(body, headers.get(self._signature_header), self._secrets())
        if signature is not Signature.VALID:
            return self._reject(_SIGNATURE_RESULTS[signature], f"signature {signature.value} "
                                f"(header {self._signature_header})")
        now = self._wall()
        try:
            payload = decode(body)
            event = event_of(payload)
            if event != PROBE_EVENT:
                self._log.debug("webhook.ignored", webhook_event=event[:64])
                return self._done("ignored_event", now)
            at = delivery_time(headers, self._timestamp_header, payload)
            delivery = parse_delivery(payload)
        except (BadPayload, BadTimestamp) as exc:
            return self._reject("bad_payload", str(exc), verified_at=now)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Signed, yet a shape no check above foresaw: still the sender's fault, never a crash.
            return self._reject("bad_payload", f"unreadable payload ({type(exc).__name__})", verified_at=now)
        if at is not None and self._tolerance and abs(now - at) > self._tolerance:
            return self._reject("stale", f"delivery time {now - at:+.0f} s from now; the tolerance is "
                                f"{self._tolerance:.0f} s (CALLMETER_WEBHOOK_TIMESTAMP_TOLERANCE)", verified_at=now)
        if not self._replays.first_time(hashlib.sha256(body).digest()):
            return self._done("replayed", now)
        probe = (delivery.project_id, delivery.probe_id)
        seen = Seen(at, delivery.previous_status, delivery.status)
        if self._order.is_older(probe, seen):
            return self._done("out_of_order", now)
        self._order.accept(probe, seen)
        result = "unknown_project"
        if self.sink is not None:
            result = self.sink.push_probe_status(delivery.project_id, delivery.probe_id, delivery.status, now)
        if result == "applied" and delivery.status is None:
            result = "nudged"
        self._log.debug("webhook.delivery", result=result, project=delivery.project_id, probe=delivery.probe_id,
                        status=delivery.status, previous_status=delivery.previous_status)
        return self._done(result, now)
