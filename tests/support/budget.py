"""Checks on request times that the budget must hold, for the poller's tests and the end-to-end ones."""

from __future__ import annotations


def max_in_window(times: list[float]) -> int:
    """The most requests in any 60 s window."""
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 60:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
