"""The publish loop: a new snapshot after each change, at most once a `publish_interval`, and at once
(within `URGENT_GAP`) for a webhook's status; and again when cached data is about to go stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..model.snapshot import Snapshot
from ..schedule.scheduler import wait_event

URGENT_GAP = 0.1
"""Seconds between two publishes that a webhook asked for (a flood must not render without pause)."""


class Publisher:
    def __init__(self, *, build: Callable[[], Snapshot], publish: Callable[[Snapshot], Awaitable[None] | None],
                 interval: float, wall: Callable[[], float]) -> None:
        self._build = build
        self._publish = publish
        self._interval = interval
        self._wall = wall
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        self.snapshot = Snapshot()
        """The snapshot published last."""

    def changed(self) -> None:
        """Something a snapshot shows changed: publish within the interval."""
        self._dirty.set()

    def urgent(self) -> None:
        """Publish now (a webhook's status), not after the interval."""
        self._dirty.set()
        self._urgent.set()

    async def run(self) -> None:
        """Publish until cancelled. One task: snapshots can never land out of order."""
        while True:
            # Expiries as of the snapshot's making, not now: one that fell during the pause after the last
            # publish is past by now, and must still wake this loop (at once) rather than drop out of sight.
            expiry = self.snapshot.next_expiry(self.snapshot.taken_at)
            timeout = None if expiry is None else max(0.0, expiry - self._wall()) + 0.01
            await wait_event(self._dirty, timeout)
            self._dirty.clear()
            self.snapshot = self._build()
            published = self._publish(self.snapshot)
            if published is not None:
                await published
            # A webhook's status is published at once (cut short the rest), but not more often than URGENT_GAP.
            await asyncio.sleep(min(URGENT_GAP, self._interval))
            await wait_event(self._urgent, max(0.0, self._interval - URGENT_GAP))
            self._urgent.clear()
