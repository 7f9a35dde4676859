"""The request budget: one limiter that every API request, retries included, passes through.

Two rules together:
- spacing: requests are spread evenly at the current rate, so nothing bursts at start-up or after a pause;
- a sliding window: no 60-second window ever holds more than `window_cap` requests, whatever the rate does.

The rate adapts (AIMD): a 429 halves it and pauses every request until Retry-After has passed; every
quiet minute gives back a twentieth of the base rate. The limiter only computes; the caller sleeps,
and the clock is injected, so hours of schedule are tested without waiting.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, *, per_minute: float, window_cap: int, clock: Callable[[], float],
                 min_per_minute: float | None = None) -> None:
        if per_minute <= 0 or window_cap < 1:
            raise ValueError("per_minute and window_cap must be positive")
        self._clock = clock
        self.base_per_minute = float(per_minute)
        self.per_minute = float(per_minute)
        self.min_per_minute = min_per_minute or max(self.base_per_minute / 8, 0.5)
        self.window_cap = window_cap
        self._sent: deque[float] = deque()
        # Half an interval before the first request: a restart cannot add a burst on top of the
        # requests the previous process sent in the same minute.
        self._next_slot = clock() + self.interval / 2
        self._paused_until = 0.0
        self._last_raise = clock()

    @property
    def interval(self) -> float:
        return WINDOW_SECONDS / self.per_minute

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def now(self) -> float:
        return self._clock()

    def next_free(self) -> float:
        """The slot `reserve()` would book now, without booking it."""
        now = self._clock()
        slot = max(now, self._next_slot, self._paused_until)
        recent = [t for t in self._sent if t > now - WINDOW_SECONDS]
        if len(recent) >= self.window_cap:
            slot = max(slot, recent[-self.window_cap] + WINDOW_SECONDS)
        return slot

    def reserve(self) -> float:
        """Book the next free slot and return its time on the limiter's clock (now, or later)."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - WINDOW_SECONDS:
            self._sent.popleft()
        slot = max(now, self._next_slot, self._paused_until)
        if len(self._sent) >= self.window_cap:
            # The request `window_cap` back must have left the window first.
            slot = max(slot, self._sent[-self.window_cap] + WINDOW_SECONDS)
        self._sent.append(slot)
        self._next_slot = slot + self.interval
        return slot

    def release(self, slot: float) -> None:
        """Give back a booked slot that was not used (cancelled, or overtaken by a pause)."""
        with contextlib.suppress(ValueError):
            self._sent.remove(slot)

    def blocked_for(self) -> float:
        """Seconds until the current pause ends (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float) -> None:
        """No request before `seconds` from now (429 Retry-After, or a rate-limit reset)."""
        until = self._clock() + max(0.0, seconds)
        self._paused_until = max(self._paused_until, until)
        self._next_slot = max(self._next_slot, self._paused_until)

    def on_rate_limited(self) -> None:
        """Multiplicative decrease."""
        self.per_minute = max(self.min_per_minute, self.per_minute / 2)
        self._last_raise = self._clock()

    def on_success(self) -> None:
        """Additive increase: a twentieth of the base rate back for every quiet minute."""
        now = self._clock()
        if self.per_minute >= self.base_per_minute:
            self._last_raise = now
            return
        minutes = (now - self._last_raise) / WINDOW_SECONDS
        if minutes >= 1:
            self.per_minute = min(self.base_per_minute, self.per_minute + self.base_per_minute / 20 * int(minutes))
            self._last_raise = now

    def recent(self) -> list[float]:
        """The booked slots of the last 60 s: what a restart must still count against the window."""
        now = self._clock()
        return [t for t in self._sent if t > now - WINDOW_SECONDS]

    def restore(self, sent: list[float], *, per_minute: float | None = None, paused_until: float = 0.0) -> None:
        """Continue from the previous process's last minute (its request times, on this clock): the
        window holds them, and the next request is spaced from the last of them instead of guessed."""
        now = self._clock()
        recent = sorted(t for t in sent if now - WINDOW_SECONDS < t <= now)
        self._sent = deque(recent)
        if per_minute is not None:
            self.per_minute = min(self.base_per_minute, max(self.min_per_minute, per_minute))
        self._paused_until = max(self._paused_until, paused_until)
        self._next_slot = max(now, recent[-1] + self.interval if recent else now, self._paused_until)

    def sent_in_window(self) -> int:
        now = self._clock()
        return sum(1 for t in self._sent if now - WINDOW_SECONDS < t <= now)
