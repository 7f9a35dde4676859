"""A fake clock for the limiter and the client's sleeps: hours of waiting cost no wall time."""

from __future__ import annotations


class FakeTime:
    """`clock` for a RateLimiter, `sleep` for a CallMeterClient; `slept` keeps every wait asked for."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
