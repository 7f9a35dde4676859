"""A virtual-time asyncio event loop, for tests and benchmarks that run hours of schedule in seconds.

When the loop has nothing ready to run, instead of blocking until the next timer it jumps its clock
forward to that timer. Code under test keeps using `loop.time()` and `asyncio.sleep()` unchanged.
Only for in-process traffic (an httpx transport, not sockets): real I/O is polled, never waited on.

A run replays exactly: the clock is virtual, and `run_virtual` seeds the one source of chance the
exporter has, its retry jitter (`random.uniform` in `exporter.client`).
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.advance(timeout)
            # `now + (when - now)` can land a rounding error short of `when`: land on it exactly.
            scheduled = getattr(self.loop, "_scheduled", None)
            if scheduled:
                self.loop.advance_to(scheduled[0].when())
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = start

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def advance_to(self, moment: float) -> None:
        self._virtual_now = max(self._virtual_now, moment)


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0, seed: int = 0) -> T:
    """Run a coroutine to completion on a fresh virtual-time loop, with `random` seeded.

    Unseeded, the retry jitter would differ with whatever drew from `random` before in the process (a
    benchmark worker's earlier cases) and from one process to the next; the caller's state comes back after."""
    loop = VirtualTimeLoop(start)
    state = random.getstate()
    random.seed(seed)
    try:
        return loop.run_until_complete(main)
    finally:
        random.setstate(state)
        loop.close()
