"""The CallMeter API client: read-only, paginated, budgeted, retried.

This module is the one place that owns waiting and retrying. Every attempt first books a slot on the
shared `RateLimiter`; 5xx answers, timeouts, connection errors and bodies that are not JSON are
retried with exponential backoff and jitter; a 429 pauses every request until its Retry-After has
passed. httpx exceptions, and anything a hostile or broken answer could raise while it is read
(deep nesting, huge numbers, oversized bodies, a slow drip of bytes), are converted here into the
`errors` hierarchy and nowhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
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
LIST_RESTARTS = 2
"""A listing whose total moves while its pages are read is read again, at most this many times."""
MAX_BODY_BYTES = 32 * 1024 * 1024
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
    """The first finite number among the named headers (inf or NaN would stall or poison the budget)."""
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        # IETF RateLimit fields may carry parameters (`10;w=60`); the number comes first.
        try:
            number = float(raw.split(";")[0].split(",")[0].strip())
        except ValueError:
            continue
        if math.isfinite(number):
            return number
    return None


class _Garbled(errors.InvalidResponse):
    """A success status whose body is not a JSON object: often a truncated answer, so it is retried."""


class _TooLarge(Exception):
    pass


def _scope(path: str) -> str:
    """The project a path belongs to ("" for /projects): bursts are told apart per project, so one
    forbidden or deleted project does not reopen a burst every time another one answers."""
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "projects" else ""


class _BurstLog:
    """Logs the first error of a burst per route, project and kind; counts the rest; notes the recovery.

    An answer that arrived closes the bursts of its route and project, except an `invalid_response`
    one: that closes only once a payload has also been parsed, so a persistently garbled payload
    behind a good envelope logs once, not on every request.
    """

    MAX_OPEN = 1024  # bursts of deleted projects never close; they must not pile up

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, str], int] = {}
        self._log = logs.get_logger("callmeter.client")

    def error(self, route: str, path: str, exc: errors.ApiError) -> None:
        key = (route, _scope(path), exc.kind)
        if key in self._open:
            self._open[key] += 1
            return
        if len(self._open) >= self.MAX_OPEN:
            del self._open[next(iter(self._open))]
        self._open[key] = 1
        event = "api.rate_limited" if isinstance(exc, errors.RateLimited) else "api.error"
        self._log.warning(event, route=route, project=key[1] or None, status=exc.status, error=exc.kind,
                          message=str(exc))

    def success(self, route: str, path: str, *, parsed: bool) -> None:
        scope = _scope(path)
        for key in [k for k in self._open if k[:2] == (route, scope)
                    and (parsed or k[2] != errors.InvalidResponse.kind)]:
            count = self._open.pop(key)
            self._log.info("api.recovered", route=route, project=scope or None, error=key[2],
                           failed_attempts=count)


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
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._key = key
        self._timeout = timeout
        self._max_body = max_body_bytes
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
            raise self._invalid(route, path, "data is not an object")
        item = self._parse(route, path, model, data)
        self._bursts.success(route, path, parsed=True)
        return item

    async def page(self, route: str, path: str, page: int, per_page: int = PER_PAGE) -> Page:
        """One page of a list (`data` is an array); its items are parsed by `parse_items`."""
        body = await self._request(route, path, {"page": page, "per_page": per_page})
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._invalid(route, path, "data is not an array of objects")
        meta = body.get("meta")
        raw = meta.get("pagination") if isinstance(meta, dict) else None
        try:
            pagination = Pagination.model_validate(raw) if isinstance(raw, dict) else None
        except ValidationError:
            pagination = None  # every field is lenient; an unreadable block counts as absent
        return Page(items=data, pagination=pagination)

    async def list_all(self, route: str, path: str, model: type[M]) -> list[M]:
        """Every item of a list, page by page, until the last page, an empty page, or totalPages 0.

        Offset pagination skips an item when an earlier one is deleted between two page reads, so a
        listing whose total moves while it is read starts again (at most `LIST_RESTARTS` times; the
        last reading is kept whatever happens to it)."""
        for restart in range(LIST_RESTARTS + 1):
            items, moved = await self._read_list(route, path, model, stop_when_moved=restart < LIST_RESTARTS)
            if not moved:
                break
            self._log.info("api.list_moved", route=route, restart=restart + 1,
                           hint="the list changed while its pages were read; reading it again")
        return items

    async def _read_list(self, route: str, path: str, model: type[M], *, stop_when_moved: bool
                         ) -> tuple[list[M], bool]:
        seen: dict[str, M] = {}
        first: tuple[int | None, int | None] | None = None
        number = 1
        while number <= MAX_PAGES:
            page = await self.page(route, path, number)
            before = len(seen)
            for item in self.parse_items(route, model, page.items, path=path):
                # A list that grows while we read can repeat an item: keep one per id.
                seen[str(getattr(item, "id", len(seen)))] = item
            p = page.pagination
            shape = (p.total, p.total_pages) if p is not None else (None, None)
            if first is None:
                first = shape
            elif shape != first and stop_when_moved:
                return list(seen.values()), True
            total_pages = p.total_pages if p is not None else None
            if not page.items or total_pages is None or total_pages <= 0 or number >= total_pages:
                break
            if len(seen) == before:
                break  # a page with nothing new: the API is repeating itself, not paginating
            number += 1
        return list(seen.values()), False

    def parse_items(self, route: str, model: type[M], items: list[dict[str, Any]], *, path: str = "") -> list[M]:
        """The items of a page as models; `path` (the page's) tells the project in the error log."""
        parsed = [self._parse(route, path, model, item) for item in items]
        self._bursts.success(route, path, parsed=True)
        return parsed

    # -- internals ----------------------------------------------------------------------------

    def _parse(self, route: str, path: str, model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = ",".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
            raise self._invalid(route, path, f"{model.__name__} payload lacks or garbles: {fields[:200]}") from None

    def _invalid(self, route: str, path: str, why: str, status: int = 200,
                 cls: type[errors.InvalidResponse] = errors.InvalidResponse) -> errors.InvalidResponse:
        """An unusable answer, counted and logged (once per burst) here."""
        exc = cls(f"unexpected response from {route}: {why}", route=route, status=status)
        self._observer.error(route, exc.kind)
        self._bursts.error(route, path, exc)
        return exc

    async def _request(self, route: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self._attempt(route, path, params)
            except _Garbled:
                # Already counted and logged; a truncated answer is usually gone on the next try.
                if attempt >= self._max_attempts:
                    raise
                delay = self._backoff_base * 2 ** (attempt - 1)
                await self._sleep(delay * random.uniform(0.5, 1.5))
                continue
            except errors.RateLimited as exc:
                self._limiter.pause(exc.retry_after)
                self._limiter.on_rate_limited()
                self._observer.rate_limited()
                self._bursts.error(route, path, exc)
                if attempt >= self._max_attempts:
                    raise
                continue  # the limiter holds the next attempt until Retry-After has passed
            except (errors.ServerError, errors.TransportError) as exc:
                self._bursts.error(route, path, exc)
                if attempt >= self._max_attempts:
                    raise
                delay = self._backoff_base * 2 ** (attempt - 1)
                await self._sleep(delay * random.uniform(0.5, 1.5))
                continue
            except errors.InvalidResponse:
                raise  # counted and logged where it was found
            except errors.ApiError as exc:
                self._bursts.error(route, path, exc)
                raise
            self._limiter.on_success()
            self._bursts.success(route, path, parsed=False)
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
            exc: errors.ApiError | None = None
            try:
                status, headers, content = await self._fetch(path, params)
            except (TimeoutError, httpx.TimeoutException):
                exc = errors.ApiTimeout(f"{route}: no complete answer within {self._timeout:g}s", route=route)
            except httpx.DecodingError as decoding_error:
                exc = _Garbled(f"unexpected response from {route}: undecodable body "
                               f"({type(decoding_error).__name__})", route=route)
            except _TooLarge:
                exc = errors.InvalidResponse(f"unexpected response from {route}: body larger than "
                                             f"{self._max_body} bytes", route=route)
            except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as transport_error:
                detail = logs.redact_text(str(transport_error))[:200]
                exc = errors.ApiConnectionError(f"{route}: {type(transport_error).__name__}"
                                                + (f": {detail}" if detail else ""), route=route)
            elapsed = time.perf_counter() - started
            if exc is not None:
                self._observer.request(route, "error", elapsed)
                self._observer.error(route, exc.kind)
                if isinstance(exc, errors.InvalidResponse):
                    self._bursts.error(route, path, exc)  # the others are logged by `_request`, which retries them
                raise exc
        self._observer.request(route, str(status), elapsed)
        self._log.debug("api.request", route=route, status=status, seconds=round(elapsed, 4),
                        page=params.get("page"))
        remaining = _header_number(headers, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is not None:
            self._observer.rate_limit_remaining(remaining)
            if remaining <= 0:
                reset = _header_number(headers, "x-ratelimit-reset", "ratelimit-reset")
                if reset is not None:
                    # X-RateLimit-Reset is an epoch time at some APIs and a delay at others.
                    delay = reset - time.time() if reset > 1e9 else reset
                    self._limiter.pause(min(delay, RETRY_AFTER_CAP))
        body = self._decode(content)
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"))
            self._observer.error(route, errors.RateLimited.kind)
            raise errors.RateLimited(f"{route}: rate limited, retry after {retry_after:.0f}s",
                                     retry_after=retry_after, route=route)
        if status >= 400:
            code, message = self._error_fields(body)
            http_error = errors.error_for_status(status, f"{route}: HTTP {status} {code}: {message}",
                                                 route=route, code=code)
            self._observer.error(route, http_error.kind)
            raise http_error
        if not 200 <= status < 300:
            # Redirects are not followed (they could carry the key elsewhere); 1xx is not an answer.
            raise self._invalid(route, path, f"HTTP {status} is not a success", status)
        if body is None:
            raise self._invalid(route, path, "body is not a JSON object", status, _Garbled)
        return body

    async def _fetch(self, path: str, params: dict[str, Any]) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and body of one GET, within one deadline for the whole exchange.

        httpx's timeout bounds each read, not the answer: a body that trickles in a byte at a time
        would never time out without the outer deadline. The body is read up to `max_body_bytes`
        (after decompression), so an endless or bomb answer cannot exhaust memory."""
        request = self._http.build_request("GET", path.lstrip("/"), params=params or None,
                                           headers={"Authorization": f"Bearer {self._key.get()}"})
        async with asyncio.timeout(self._timeout):
            response = await self._http.send(request, stream=True)
            try:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self._max_body:
                    raise _TooLarge
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_body:
                        raise _TooLarge
                    chunks.append(chunk)
            finally:
                await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)

    @staticmethod
    def _decode(content: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _error_fields(body: dict[str, Any] | None) -> tuple[str, str]:
        """Code and message of the error envelope, bounded and scrubbed (an API may echo the key back)."""
        error = body.get("error") if body else None
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            return (logs.redact_text(str(code))[:64] if code else "UNKNOWN",
                    logs.redact_text(str(message))[:200] if message else "")
        return "UNKNOWN", "no error envelope"
