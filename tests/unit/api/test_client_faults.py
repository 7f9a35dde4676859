"""What the client does with answers that arrive too slowly or never end: in-process, where a subprocess
cannot show it cheaply (the real process against a misbehaving API is tests/e2e/test_faults.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from exporter.api import errors
from exporter.api.budget import RateLimiter
from exporter.api.client import CallMeterClient
from exporter.api.keysource import KeySource
from exporter.api.models import Probe
from exporter.simulator import DEMO_KEY


def _client(handler: Callable[[httpx.Request], Any], **kwargs: Any) -> CallMeterClient:
    loop_time = asyncio.get_running_loop().time
    return CallMeterClient(base_url="https://callmeter.invalid/api/v1", key=KeySource(value=DEMO_KEY),
                           limiter=RateLimiter(per_minute=6000, window_cap=6000, clock=loop_time),
                           transport=httpx.MockTransport(handler), max_attempts=1, **kwargs)


def test_a_body_that_trickles_in_times_out_as_a_whole() -> None:
    """httpx's timeout is per read; a byte every 0.2 s would never trip it. The client's deadline does."""
    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(100):
                await asyncio.sleep(0.2)
                yield b" "

    async def go() -> float:
        client = _client(lambda request: httpx.Response(200, stream=Drip()), timeout=1.0)
        started = time.monotonic()
        try:
            with pytest.raises(errors.ApiTimeout):
                await client.list_all("/projects", "projects", Probe)
        finally:
            await client.aclose()
        return time.monotonic() - started

    assert asyncio.run(go()) < 2.5


def test_an_oversized_body_is_refused_without_reading_it_all() -> None:
    class Endless(httpx.AsyncByteStream):
        sent = 0

        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                Endless.sent += 65536
                yield b"[" * 65536

    async def go() -> None:
        client = _client(lambda request: httpx.Response(200, stream=Endless()), max_body_bytes=1_000_000)
        try:
            with pytest.raises(errors.InvalidResponse, match="larger than"):
                await client.list_all("/projects", "projects", Probe)
        finally:
            await client.aclose()

    asyncio.run(go())
    assert Endless.sent < 2_000_000
