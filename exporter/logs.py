"""structlog set-up: one event name per happening, JSON in production, readable on a terminal.

Secrets are removed by a processor, not by remembering: every secret registered with
`register_secret` is replaced in every rendered value, tracebacks included, and the same
processor runs on records of the standard library's logging (httpx, httpcore, asyncio).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "cmk_<redacted>"
KEY_PREFIX = "cmk_"
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()


def register_secret(secret: str) -> None:
    """Redact `secret` from now on; for a cmk_ key, also its body alone (an API may echo just that)."""
    global _longest_first
    if not secret:
        return
    _secrets.add(secret)
    body = secret.removeprefix(KEY_PREFIX)
    if body != secret and len(body) >= 16:
        _secrets.add(body)
    _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def forget_secrets() -> None:
    global _longest_first
    _secrets.clear()
    _longest_first = ()


def redact_text(text: str) -> str:
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, int | float | bool):
        return value
    return redact_text(repr(value) if not isinstance(value, BaseException) else str(value))


def redact_secrets(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no registered secret survives in any value."""
    if not _secrets:
        return event_dict
    return {key: _redact_value(value) for key, value in event_dict.items()}


def configure(*, level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if hasattr(stream, "isatty") and stream.isatty() else "json"
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks are rendered to text first so that the redaction below also covers them.
    final: list[Any] = [structlog.processors.format_exc_info, redact_secrets, renderer]
    numeric = getattr(logging, level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # httpx logs every request at INFO, which our own api.request event (at DEBUG) already covers.
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))


def get_logger(name: str = "callmeter") -> Any:
    return structlog.get_logger(name)
