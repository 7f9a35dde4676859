"""Readiness: when /readyz says ready, when a cold start gave up on the API, and what `--once` waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Readiness:
    def __init__(self, log: Any) -> None:
        self._log = log
        self.ready = asyncio.Event()
        """Every project's lists read once, and none of them stale."""
        self.failed = asyncio.Event()
        """Set when a refresh fails for want of the API (auth, network, 5xx) before the exporter was ready."""
        self.settled = asyncio.Event()
        """Ready, and no run detail, endpoint listing or first detail read outstanding: what `--once` waits for."""

    def down(self) -> None:
        """The API could not be used: before the exporter was ready, that is a failed start."""
        if not self.ready.is_set():
            self.failed.set()

    def unsettle(self) -> None:
        """Something new is outstanding (a finished run's detail)."""
        self.settled.clear()

    def check(self, *, complete: bool, quiet: Callable[[], bool], projects: int) -> None:
        """`complete`: every project's data read and fresh (data restored from a state file counts only
        while it is fresh); `quiet`: nothing outstanding. Watches of running runs (adaptive) are not
        outstanding: what finished has been read."""
        if not complete:
            return
        if not self.ready.is_set():
            self._log.info("exporter.ready", projects=projects)
            self.ready.set()
        if quiet():
            self.settled.set()
