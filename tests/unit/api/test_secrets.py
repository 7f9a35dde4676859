"""The API key is never shown: redacted from errors, logs and tracebacks, and refused without an echo when it
cannot travel in a header (the real process on every error path is tests/e2e/test_secrets.py)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter import logs
from exporter.api import errors
from exporter.api.budget import RateLimiter
from exporter.api.client import CallMeterClient
from exporter.api.keysource import KeySource
from exporter.api.models import Project
from exporter.settings import SettingsError
from tests.support.keys import new_key


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure(level="debug", fmt="json", stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_key_echoed_back_by_the_api_is_redacted_from_errors_and_logs(log_buffer: io.StringIO) -> None:
    key = new_key()
    echo = {"error": {"code": f"BAD_KEY_{key}", "message": f"key {key} (body {key[4:]}) is revoked"}}

    async def go() -> errors.ApiError:
        client = CallMeterClient(base_url="https://callmeter.invalid/api/v1", key=KeySource(value=key),
                                 limiter=RateLimiter(per_minute=600, window_cap=600, clock=lambda: 0.0),
                                 transport=httpx.MockTransport(lambda r: httpx.Response(401, json=echo)))
        try:
            await client.list_all("/projects", "projects", Project)
        except errors.ApiError as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("no error")

    exc = asyncio.run(go())
    assert isinstance(exc, errors.Unauthorized)
    assert key not in str(exc) and key[4:] not in str(exc)
    assert "cmk_<redacted>" in str(exc)
    text = log_buffer.getvalue()
    assert "api.error" in text
    assert key[4:] not in text


def test_tracebacks_and_stdlib_records_are_redacted(log_buffer: io.StringIO) -> None:
    key = new_key()
    KeySource(value=key)  # registers it
    log = logs.get_logger("test")
    try:
        raise RuntimeError(f"boom with {key}")
    except RuntimeError:
        log.exception("refresh.crashed", detail={"nested": [key]})
    logging.getLogger("httpcore.http11").debug("send_request_headers %s", {"authorization": f"Bearer {key}"})
    logging.getLogger("asyncio").error("Task exception", exc_info=ValueError(key))
    text = log_buffer.getvalue()
    assert text.count("cmk_<redacted>") >= 4
    assert key not in text and key[4:] not in text


def test_a_key_that_cannot_travel_in_a_header_is_refused_without_being_echoed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        KeySource(value="cmk_caf\u00e9" + "0" * 28)
    assert "caf" not in str(raised.value)
    path = tmp_path / "key"
    path.write_text("cmk_\u00e9t\u00e9" + "0" * 28)
    with pytest.raises(SettingsError) as raised:
        KeySource(path=path)
    assert "\u00e9t\u00e9" not in str(raised.value)
