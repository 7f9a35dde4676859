"""Checking a delivery's signature and its time.

The signature is HMAC-SHA256 of the raw body under the webhook's secret, sent hex-encoded in one
header, either as `sha256=<hex>` or as the bare hex (CallMeter's documentation does not show which;
both are accepted, as is a comma-separated list of them). It is compared in constant time against
every secret in use.

A delivery's time, where it carries one (a header, or a `timestamp`, `occurred_at` or `sent_at`
field of the body), is Unix seconds (milliseconds are recognised by their size) or ISO 8601.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
BODY_TIME_FIELDS = ("timestamp", "occurred_at", "sent_at")
MAX_SIGNATURE_HEADER = 1024
_MILLISECONDS = 1e11  # a Unix time above this is in milliseconds (1e11 s is the year 5138)


class Signature(Enum):
    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    BAD = "bad"


def parse_signatures(header: str) -> list[bytes] | None:
    """The digests a signature header carries, or None when it is not `sha256=<hex>` / bare hex (a list)."""
    if len(header) > MAX_SIGNATURE_HEADER:
        return None
    digests = []
    for item in header.split(","):
        item = item.strip()
        scheme, sep, value = item.partition("=")
        if sep:
            if scheme.strip().lower() != "sha256":
                return None
            item = value.strip()
        if not SHA256_HEX.fullmatch(item):
            return None
        digests.append(bytes.fromhex(item))
    return digests


def check_signature(body: bytes, header: str | None, secrets: Iterable[bytes]) -> Signature:
    """Is `header` a signature of `body` under one of `secrets`? Every comparison takes constant time."""
    if header is None or not header.strip():
        return Signature.MISSING
    digests = parse_signatures(header)
    if not digests:
        return Signature.MALFORMED
    valid = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        for digest in digests:
            # No early exit: the time taken says nothing about which secret or digest matched.
            valid |= hmac.compare_digest(expected, digest)
    return Signature.VALID if valid else Signature.BAD


def sign(body: bytes, secret: str | bytes) -> str:
    """The `sha256=<hex>` signature of `body` (what the simulator and the tests send)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class BadTimestamp(ValueError):
    """A timestamp is present but cannot be read."""


def parse_time(value: Any) -> float:
    """Unix seconds from Unix seconds or milliseconds (number or numeric string) or ISO 8601 with a zone."""
    if isinstance(value, bool):
        raise BadTimestamp("a timestamp cannot be a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise BadTimestamp("the timestamp is neither Unix time nor ISO 8601") from None
            if parsed.tzinfo is None:
                raise BadTimestamp("an ISO 8601 timestamp needs a time zone") from None
            try:
                return parsed.timestamp()
            except (OverflowError, ValueError, OSError):
                raise BadTimestamp("the ISO 8601 timestamp is out of range") from None
    if not isinstance(value, int | float):
        raise BadTimestamp("the timestamp is not a number")
    try:
        seconds = float(value)  # an int of 400 digits does not fit a float: OverflowError, not a crash below
    except OverflowError:
        raise BadTimestamp("the timestamp is out of range") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadTimestamp("the timestamp is not a positive number")
    return seconds / 1000 if seconds > _MILLISECONDS else seconds


def delivery_time(headers: Mapping[str, str], header_name: str, payload: Mapping[str, Any]) -> float | None:
    """The delivery's time: from the body (which the signature covers) first, else from the header; None."""
    for name in BODY_TIME_FIELDS:
        value = payload.get(name)
        if value is not None:
            return parse_time(value)
    raw = headers.get(header_name.lower())
    if raw is not None and raw.strip():
        return parse_time(raw)
    return None
