"""The world's two pure helpers: deterministic draws and API timestamps."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime


# Both are pure and called for every run and probe of every page served: the caches make hours of
# simulated traffic cheap (a run's timestamps and draws are asked for again on every listing).
@functools.lru_cache(maxsize=1 << 16)
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=1 << 17)
def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from its inputs."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
