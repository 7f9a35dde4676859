"""Misbehaviour on demand: the switches tests turn on (`Faults`) and how they bend each item of an answer.

The request-level faults (500s, 429 bursts, truncated bodies, latency) are applied where the request is
handled (`app`, `http`); the item-level ones (status overrides, null, dropped, unknown or stringified
fields) here, on every item a route serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


def bend(item: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """The item as the faults make the API send it (changed in place where they allow)."""
    f = faults
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


def _stringify_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stringify_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value
