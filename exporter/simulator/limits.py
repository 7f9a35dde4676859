"""Per-key rate limiting as CallMeter does it: a sliding minute per API key, then 429 with a Retry-After.

Kept apart from the fault switches: the limit is the API's normal behaviour, the faults are not
(though a 429 burst and the Retry-After form are faults, and use `too_many` here).
"""

from __future__ import annotations

import math
from collections import deque
from email.utils import formatdate

from .envelope import Response, error


class KeyWindows:
    """The requests each key made in the last minute, against a limit a minute (None: no limit)."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float) -> float | None:
        """Book the request and return None, or, when the key's minute is spent, the seconds until it frees."""
        if not self.per_minute:
            return None
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return max(1.0, window[0] + 60 - now)
        window.append(now)
        return None

    def headers(self, key: str, now: float) -> dict[str, str]:
        """X-RateLimit-Limit, -Remaining and -Reset for the key (none without a limit)."""
        if not self.per_minute:
            return {}
        window = self._windows.get(key, deque())
        return {
            "X-RateLimit-Limit": str(self.per_minute),
            "X-RateLimit-Remaining": str(max(0, self.per_minute - len(window))),
            "X-RateLimit-Reset": str(math.ceil(window[0] + 60 - now) if window else 60),
        }


def too_many(seconds: float, now: float, *, retry_after: str, clock_offset: float) -> Response:
    """A 429 whose Retry-After says `seconds` in the form asked for ("seconds", "http-date" or "none")."""
    response = error(429, "RATE_LIMITED", "Rate limit exceeded")
    if retry_after == "http-date":
        # An HTTP date is read off CallMeter's clock, like every timestamp it sends.
        at = now + clock_offset + math.ceil(seconds)
        response.headers["Retry-After"] = formatdate(at, usegmt=True)
    elif retry_after != "none":
        response.headers["Retry-After"] = str(math.ceil(seconds))
    return response
