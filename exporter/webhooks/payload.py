"""A `probe.status_changed` delivery, read tolerantly.

CallMeter's documentation shows `event`, `probe_id`, `probe_name`, `project_id`, `project_name` and
`previous_status`, but not the name of the new status; `new_status`, `status` and `current_status`
are accepted, in that order. Ids are opaque strings (the webhook examples show cuid-style ids, the
API UUIDs); numbers are taken as their text. Unknown fields are ignored. Statuses are upper-cased;
one that is not a plain word is not applied (the read the delivery asks for still happens).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PROBE_EVENT = "probe.status_changed"
STATUS_FIELDS = ("new_status", "status", "current_status")
MAX_ID_LENGTH = 200
_STATUS_WORD = re.compile(r"[A-Z][A-Z0-9_]{0,39}")


class BadPayload(ValueError):
    """The body is not the JSON object a delivery should be; the message says what is wrong (never the body)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    event: str
    probe_id: str
    project_id: str
    status: str | None
    """The new status, when the payload names one in a readable form."""
    previous_status: str | None
    fields: dict[str, Any]
    """The whole decoded body (timestamps are looked up here)."""


def decode(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; BadPayload otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise BadPayload("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    return payload


def status_word(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    word = value.strip().upper()
    return word if _STATUS_WORD.fullmatch(word) else None


def _ident(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_LENGTH:
        raise BadPayload(f"`{name}` is missing or not an id")
    return value.strip()


def event_of(payload: dict[str, Any]) -> str:
    event = payload.get("event")
    if not isinstance(event, str) or not event.strip():
        raise BadPayload("`event` is missing")
    return event.strip()


def parse_delivery(payload: dict[str, Any]) -> Delivery:
    """A probe.status_changed payload as a Delivery; BadPayload when an id is missing or a status is not text."""
    status_value = next((payload[name] for name in STATUS_FIELDS if payload.get(name) is not None), None)
    previous = payload.get("previous_status")
    for value, name in ((status_value, "the new status"), (previous, "`previous_status`")):
        if value is not None and not isinstance(value, str):
            raise BadPayload(f"{name} is not text")
    return Delivery(event=event_of(payload), probe_id=_ident(payload, "probe_id"),
                    project_id=_ident(payload, "project_id"), status=status_word(status_value),
                    previous_status=status_word(previous), fields=payload)
