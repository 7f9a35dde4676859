"""What the receiver remembers between deliveries, each bounded: recent deliveries (replays), the newest
delivery per probe (order), and when each project's probe list was last asked for (nudges).

How "older" is known, for `DeliveryOrder`:
- both deliveries carry a time: the earlier one is older;
- otherwise the statuses tell, where the payloads name them: a delivery that leads *into* the newest
  one's previous status (its new status is that previous status, and its own previous status is not
  the newest one's new status) came before it;
- otherwise arrival order: the later arrival is the newer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


class ReplayMemory:
    """Keys seen in the last `ttl` seconds, at most `max_entries` of them (the oldest go first)."""

    def __init__(self, *, ttl: float, max_entries: int = 10_000, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: bytes) -> bool:
        """True, and remembered, when `key` was not seen within the ttl; False for a replay."""
        now = self._clock()
        seen = self._seen
        while seen:
            oldest, at = next(iter(seen.items()))
            if at > now - self._ttl:
                break
            del seen[oldest]
        if key in seen:
            return False
        if len(seen) >= self._max:
            seen.popitem(last=False)
        seen[key] = now
        return True


@dataclass(frozen=True, slots=True)
class Seen:
    at: float | None
    """The delivery's own time, when it carried one."""
    previous: str | None
    status: str | None


class DeliveryOrder:
    """The newest delivery per probe, for at most `max_probes` probes (the least recently heard go first)."""

    def __init__(self, *, max_probes: int = 10_000) -> None:
        self._max = max_probes
        self._newest: OrderedDict[tuple[str, str], Seen] = OrderedDict()

    def is_older(self, probe: tuple[str, str], delivery: Seen) -> bool:
        """Did `delivery` happen before the newest delivery already accepted for the probe?"""
        newest = self._newest.get(probe)
        if newest is None:
            return False
        if delivery.at is not None and newest.at is not None and delivery.at != newest.at:
            return delivery.at < newest.at
        return (delivery.status is not None and newest.previous is not None and delivery.status == newest.previous
                and delivery.previous != newest.status)

    def accept(self, probe: tuple[str, str], delivery: Seen) -> None:
        newest = self._newest
        newest.pop(probe, None)
        if len(newest) >= self._max:
            newest.popitem(last=False)
        newest[probe] = delivery


class NudgeGate:
    """At most one nudge per key every `min_gap` seconds."""

    def __init__(self, *, min_gap: float, clock: Callable[[], float], max_keys: int = 4096) -> None:
        self.min_gap = min_gap
        self._clock = clock
        self._max = max_keys
        self._last: OrderedDict[Hashable, float] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.min_gap:
            return False
        self._last.pop(key, None)
        while len(self._last) >= self._max:
            self._last.popitem(last=False)
        self._last[key] = now
        return True
