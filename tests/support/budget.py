"""Checks on request times that the budget must hold, for the poller's tests and the end-to-end ones."""

from __future__ import annotations

ROUNDING = 1e-6
"""A request booked exactly 60 s after another (as the limiter books the one after a full window) is
outside that one's window; `t - 60` computed in floating point may land a hair short of it."""


def max_in_window(times: list[float]) -> int:
    """The most requests in any 60 s window (a request 60 s after another is in the next one)."""
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 60 + ROUNDING:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
