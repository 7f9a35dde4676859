"""The CallMeter API client: read-only, paginated, budgeted, retried.

This module is the one place that owns waiting and retrying. Every attempt first books a slot on the
shared `RateLimiter`; 5xx answers, timeouts and connection errors are retried with exponential
backoff and jitter; a 429 pauses every request until its Retry-After has passed. httpx exceptions
are converted here into the `errors` hierarchy and nowhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from . import __version__, errors, logs
from .budget import RateLimiter
from .keysource import KeySource
from .models import Pagination

PER_PAGE = 100
MAX_PAGES = 1000
RETRY_AFTER_DEFAULT = 60.0
RETRY_AFTER_CAP = 900.0

M = TypeVar("M", bound=BaseModel)


class RequestObserver(Protocol):
    def request(self, endpoint: str, code: str, seconds: float) -> None: ...
    def error(self, endpoint: str, kind: str) -> None: ...
    def rate_limited(self) -> None: ...
    def rate_limit_remaining(self, remaining: float) -> None: ...


class NullObserver:
    def request(self, endpoint: str, code: str, seconds: float) -> None: ...
    def error(self, endpoint: str, kind: str) -> None: ...
    def rate_limited(self) -> None: ...
    def rate_limit_remaining(self, remaining: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    pagination: Pagination | None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; capped."""
    if value is None or not value.strip():
        return RETRY_AFTER_DEFAULT
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return RETRY_AFTER_DEFAULT
        if when.tzinfo is None:
            return RETRY_AFTER_DEFAULT
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return RETRY_AFTER_DEFAULT
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _header_number(headers: httpx.Headers, *names: str) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        # IETF RateLimit fields may carry parameters (`10;w=60`); the number comes first.
        try:
            return float(raw.split(";")[0].split(",")[0].strip())
        except ValueError:
            continue
    return None


class _BurstLog:
    """Logs the first error of a burst per route and kind; counts the rest; notes the recovery."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}
        self._log = logs.get_logger("callmeter.client")

    def error(self, route: str, exc: errors.ApiError) -> None:
        key = (route, exc.kind)
        if key in self._open:
            self._open[key] += 1
            return
        self._open[key] = 1
        event = "api.rate_limited" if isinstance(exc, errors.RateLimited) else "api.error"
        self._log.warning(event, route=route, status=exc.status, error=exc.kind, message=str(exc))

    def success(self, route: str) -> None:
        for key in [k for k in self._open if k[0] == route]:
            count = self._open.pop(key)
            self._log.info("api.recovered", route=route, error=key[1], failed_attempts=count)


class CallMeterClient:
    def __init__(
        self,
        *,
        base_url: str,
        key: KeySource,
        limiter: RateLimiter,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_concurrency: int = 4,
        observer: RequestObserver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff_base: float = 1.0,
    ) -> None:
        self._key = key
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._observer: RequestObserver = observer or NullObserver()
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._gate = asyncio.Semaphore(max_concurrency)
        self._bursts = _BurstLog()
        self._log = logs.get_logger("callmeter.client")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"callmeter-exporter/{__version__}", "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- public reads -------------------------------------------------------------------------

    async def get(self, route: str, path: str, model: type[M]) -> M:
        """One resource (`data` is an object)."""
        body = await self._request(route, path, {})
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._invalid(route, "data is not an object")
        return self._parse(route, model, data)

    async def page(self, route: str, path: str, page: int, per_page: int = PER_PAGE) -> Page:
        """One page of a list (`data` is an array)."""
        body = await self._request(route, path, {"page": page, "per_page": per_page})
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._invalid(route, "data is not an array of objects")
        meta = body.get("meta")
        raw = meta.get("pagination") if isinstance(meta, dict) else None
        pagination = Pagination.model_validate(raw) if isinstance(raw, dict) else None
        return Page(items=data, pagination=pagination)

    async def list_all(self, route: str, path: str, model: type[M]) -> list[M]:
        """Every item of a list, page by page, until the last page, an empty page, or totalPages 0."""
        seen: dict[str, M] = {}
        number = 1
        while number <= MAX_PAGES:
            page = await self.page(route, path, number)
            for item in self.parse_items(route, model, page.items):
                # A page count that moves while we list can repeat an item: keep one per id.
                seen[getattr(item, "id", str(len(seen)))] = item
            total_pages = page.pagination.total_pages if page.pagination else None
            if not page.items or total_pages is None or total_pages <= 0 or number >= total_pages:
                break
            number += 1
        return list(seen.values())

    def parse_items(self, route: str, model: type[M], items: list[dict[str, Any]]) -> list[M]:
        return [self._parse(route, model, item) for item in items]

    # -- internals ----------------------------------------------------------------------------

    def _parse(self, route: str, model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = ",".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
            raise self._invalid(route, f"{model.__name__} payload lacks or garbles: {fields}") from None

    def _invalid(self, route: str, why: str, status: int = 200) -> errors.InvalidResponse:
        exc = errors.InvalidResponse(f"unexpected response from {route}: {why}", route=route, status=status)
        self._observer.error(route, exc.kind)
        self._bursts.error(route, exc)
        return exc

    async def _request(self, route: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self._attempt(route, path, params)
            except errors.RateLimited as exc:
                self._limiter.pause(exc.retry_after)
                self._limiter.on_rate_limited()
                self._observer.rate_limited()
                self._bursts.error(route, exc)
                if attempt >= self._max_attempts:
                    raise
                continue  # the limiter holds the next attempt until Retry-After has passed
            except (errors.ServerError, errors.TransportError) as exc:
                self._bursts.error(route, exc)
                if attempt >= self._max_attempts:
                    raise
                delay = self._backoff_base * 2 ** (attempt - 1)
                await self._sleep(delay * random.uniform(0.5, 1.5))
                continue
            except errors.ApiError as exc:
                self._bursts.error(route, exc)
                raise
            self._limiter.on_success()
            self._bursts.success(route)
            return body

    async def _attempt(self, route: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        async with self._gate:
            while True:
                slot = self._limiter.reserve()
                wait = slot - self._limiter.now()
                if wait > 0:
                    await self._sleep(wait)
                if self._limiter.blocked_for() <= 0:
                    break
                self._limiter.release(slot)  # a 429 arrived while we waited: queue behind it
            started = time.perf_counter()
            try:
                response = await self._http.get(
                    path.lstrip("/"), params=params or None,
                    headers={"Authorization": f"Bearer {self._key.get()}"})
                content = response.content
            except httpx.TimeoutException:
                exc: errors.ApiError = errors.ApiTimeout(f"{route}: timed out", route=route)
            except (httpx.TransportError, httpx.DecodingError) as transport_error:
                exc = errors.ApiConnectionError(
                    f"{route}: {type(transport_error).__name__}", route=route)
            else:
                exc = None  # type: ignore[assignment]
            elapsed = time.perf_counter() - started
            if exc is not None:
                self._observer.request(route, "error", elapsed)
                self._observer.error(route, exc.kind)
                raise exc
        status = response.status_code
        self._observer.request(route, str(status), elapsed)
        self._log.debug("api.request", route=route, status=status, seconds=round(elapsed, 4),
                        page=params.get("page"))
        remaining = _header_number(response.headers, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is not None:
            self._observer.rate_limit_remaining(remaining)
            if remaining <= 0:
                reset = _header_number(response.headers, "x-ratelimit-reset", "ratelimit-reset")
                if reset is not None:
                    # X-RateLimit-Reset is an epoch time at some APIs and a delay at others.
                    self._limiter.pause(reset - time.time() if reset > 1e9 else reset)
        body = self._decode(route, status, content)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._observer.error(route, errors.RateLimited.kind)
            raise errors.RateLimited(f"{route}: rate limited, retry after {retry_after:.0f}s",
                                     retry_after=retry_after, route=route)
        if status >= 400:
            code, message = self._error_fields(body)
            exc = errors.error_for_status(status, f"{route}: HTTP {status} {code}: {message}",
                                          route=route, code=code)
            self._observer.error(route, exc.kind)
            raise exc
        if body is None:
            raise self._invalid(route, "body is not a JSON object", status)
        return body

    @staticmethod
    def _decode(route: str, status: int, content: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _error_fields(body: dict[str, Any] | None) -> tuple[str, str]:
        error = body.get("error") if body else None
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            return (str(code)[:64] if code else "UNKNOWN", logs.redact_text(str(message))[:200] if message else "")
        return "UNKNOWN", "no error envelope"
