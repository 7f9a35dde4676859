"""The CallMeter API client: paginated, budgeted, retried, and read-only to everyone but the gate.

This module is the one place that owns waiting and retrying, and the one place where httpx exceptions,
and anything a hostile or broken answer could raise while it is read (deep nesting, huge numbers,
oversized bodies, a slow drip of bytes), become the `errors` tree. The send path is layered as httpx
layers its own (`send -> _send_handling_auth -> ... -> _send_single_request`), one concern a step:

    get / page / list_all     the public reads (GET only): the envelope, pagination, the models
      └─ _request             the retry policy: a 5xx, no answer or a garbled body is tried again after
         │                    a backoff with jitter; a 429 pauses the shared limiter until Retry-After
         │                    has passed, then tries again; anything else goes to the caller
         └─ _send             one attempt, judged (`_judge`) and recorded once (`_Recorder`)
            └─ _book_and_send a slot on the shared `RateLimiter`, then the exchange; an exception
               │              comes back as ours, through the table `_TRANSPORT_ERRORS`; an attempt
               │              that never connected (refused, DNS, TLS) gives its slot back
               └─ _exchange   one HTTP exchange within one deadline, its body size bounded

What one attempt ends in (the tree itself is drawn in `errors`):

    an exception ── _TRANSPORT_ERRORS ──► ApiTimeout · ApiConnectionError · InvalidResponse
    an answer ───── _judge ─────────────► the body · RateLimited (429) · error_for_status (4xx, 5xx)
                                          · InvalidResponse (a redirect, or a body that is not an object)

`_Recorder` counts every outcome on the `RequestObserver` (the exporter's own metrics) and logs it
through the burst log, which writes the first error of a burst and the recovery, not every attempt.

Writes. The public methods only read, and the daemon has no way to send anything but a GET. `_request`
takes a `method` and a JSON body so that `exporter/gate`, and nothing else, can subclass the client to
send the two writes the API documents: `POST /projects/{projectId}/tests/{testId}/run` and
`POST /projects/{projectId}/probes/{probeId}/run`. A write is tried again only after a 429 or when no
connection was made (either way the API did nothing); a 5xx, a lost answer or a garbled one may already
have started a run, so it goes to the caller.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from .. import __version__, logs
from . import errors
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
_RETRIED_METHODS = frozenset({"GET", "HEAD"})
"""Methods tried again after a 5xx, a lost or a garbled answer: they change nothing on the server."""

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


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as it travels down the send path; `route` is the template metrics and logs use."""

    method: str
    route: str
    path: str
    params: Mapping[str, Any]
    json: Any = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    content: bytes


@dataclass(frozen=True, slots=True)
class _Limits:
    timeout: float
    max_body_bytes: int
    host: str = ""
    """The API's host, named in transport errors (where a person looks first when nothing answers)."""


def api_host(base_url: str) -> str:
    """The host (and port) of the API's base URL, as errors and progress lines name it (never a key)."""
    return urlsplit(base_url).netloc or base_url


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


def server_time(headers: httpx.Headers) -> float:
    """The answer's Date as Unix time, else ours. A time the server names (an HTTP-date Retry-After, an
    epoch rate-limit reset) is measured against the server's own clock: a host whose clock is a minute
    off would otherwise wait a minute too long, or not at all."""
    raw = headers.get("date")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return time.time()
        if when.tzinfo is not None:
            return when.timestamp()
    return time.time()


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


# -- exceptions to ours: one table, the first row that matches wins ---------------------------------


def _timed_out(route: str, exc: BaseException, limits: _Limits) -> errors.ApiError:
    return errors.ApiTimeout(f"{route} at {limits.host}: no complete answer within {limits.timeout:g}s", route=route)


def _undecodable(route: str, exc: BaseException, limits: _Limits) -> errors.ApiError:
    return _Garbled(f"unexpected response from {route}: undecodable body ({type(exc).__name__})", route=route)


def _too_large(route: str, exc: BaseException, limits: _Limits) -> errors.ApiError:
    return errors.InvalidResponse(f"unexpected response from {route}: body larger than {limits.max_body_bytes} bytes",
                                  route=route)


def _unreachable(route: str, exc: BaseException, limits: _Limits) -> errors.ApiError:
    detail = logs.redact_text(str(exc))[:200]
    kind = errors.NotConnected if isinstance(exc, _NEVER_SENT) else errors.ApiConnectionError
    return kind(f"cannot reach {limits.host} ({route}): {type(exc).__name__}" + (f": {detail}" if detail else ""),
                route=route)


_Convert = Callable[[str, BaseException, _Limits], errors.ApiError]
_TRANSPORT_ERRORS: tuple[tuple[tuple[type[BaseException], ...], _Convert], ...] = (
    ((TimeoutError, httpx.TimeoutException), _timed_out),  # before HTTPError, which TimeoutException is
    ((httpx.DecodingError,), _undecodable),  # a broken gzip or charset: a truncated answer, retried
    ((_TooLarge,), _too_large),
    ((httpx.HTTPError, httpx.InvalidURL, UnicodeError), _unreachable),
)
_CAUGHT = tuple(kind for kinds, _ in _TRANSPORT_ERRORS for kind in kinds)
_NEVER_SENT = (httpx.ConnectError,)
"""No connection was made (refused, DNS, TLS handshake), so nothing reached the API: the attempt cost
the key nothing of its rate limit."""


def _translate(route: str, exc: BaseException, limits: _Limits) -> errors.ApiError:
    return next(make(route, exc, limits) for kinds, make in _TRANSPORT_ERRORS if isinstance(exc, kinds))


# -- an answer to a body or ours ----------------------------------------------------------------------


def _unexpected(route: str, why: str, status: int = 200,
                cls: type[errors.InvalidResponse] = errors.InvalidResponse) -> errors.InvalidResponse:
    return cls(f"unexpected response from {route}: {why}", route=route, status=status)


def _judge(route: str, answer: _Answer) -> dict[str, Any] | errors.ApiError:
    """The body of a usable answer, or the typed error the answer stands for."""
    status = answer.status
    body = _decode(answer.content)
    if status == 429:
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now=server_time(answer.headers))
        return errors.RateLimited(f"{route}: rate limited, retry after {retry_after:.0f}s",
                                  retry_after=retry_after, route=route)
    if status >= 400:
        code, message = _error_fields(body)
        return errors.error_for_status(status, f"{route}: HTTP {status} {code}: {message}", route=route, code=code)
    if not 200 <= status < 300:
        # Redirects are not followed (they could carry the key elsewhere); 1xx is not an answer.
        return _unexpected(route, f"HTTP {status} is not a success", status)
    if body is None:
        return _unexpected(route, "body is not a JSON object", status, _Garbled)
    return body


def _decode(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        return None
    return body if isinstance(body, dict) else None


def _error_fields(body: dict[str, Any] | None) -> tuple[str, str]:
    """Code and message of the error envelope, bounded and scrubbed (an API may echo the key back)."""
    error = body.get("error") if body else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return (logs.redact_text(str(code))[:64] if code else "UNKNOWN",
                logs.redact_text(str(message))[:200] if message else "")
    return "UNKNOWN", "no error envelope"


# -- counting and logging: one place ------------------------------------------------------------------


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


class _Recorder:
    """The one place an outcome is counted (on the observer) and logged (burst log, debug line)."""

    def __init__(self, observer: RequestObserver) -> None:
        self.observer = observer
        self.bursts = _BurstLog()
        self._log = logs.get_logger("callmeter.client")

    def attempt(self, call: _Call, status: int | None, seconds: float, error: errors.ApiError | None, *,
                remaining: float | None = None) -> None:
        """One attempt: its answer's `status` (None when none came), time, error and remaining budget."""
        if status is None:
            self.observer.request(call.route, "error", seconds)
        else:
            self.observer.request(call.route, str(status), seconds)
            self._log.debug("api.request", route=call.route, status=status, seconds=round(seconds, 4),
                            page=call.params.get("page"))
        if remaining is not None:
            self.observer.rate_limit_remaining(remaining)
        self.outcome(call.route, call.path, error)

    def outcome(self, route: str, path: str, error: errors.ApiError | None, *, parsed: bool = False) -> None:
        """An error, or a success: an answer arrived, or (`parsed`) its payload's models were read too."""
        if error is None:
            self.bursts.success(route, path, parsed=parsed)
            return
        self.observer.error(route, error.kind)
        if isinstance(error, errors.RateLimited):
            self.observer.rate_limited()
        self.bursts.error(route, path, error)


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
        self._limits = _Limits(timeout=timeout, max_body_bytes=max_body_bytes,
                               host=api_host(base_url))
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._recorder = _Recorder(observer or NullObserver())
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._gate = asyncio.Semaphore(max_concurrency)
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
        body = await self._request(route, path)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._reject(route, path, "data is not an object")
        item = self._parse(route, path, model, data)
        self._recorder.outcome(route, path, None, parsed=True)
        return item

    async def page(self, route: str, path: str, page: int, per_page: int = PER_PAGE) -> Page:
        """One page of a list (`data` is an array); its items are parsed by `parse_items`."""
        body = await self._request(route, path, {"page": page, "per_page": per_page})
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._reject(route, path, "data is not an array of objects")
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
        self._recorder.outcome(route, path, None, parsed=True)
        return parsed

    def _parse(self, route: str, path: str, model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = ",".join(".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False))
            raise self._reject(route, path, f"{model.__name__} payload lacks or garbles: {fields[:200]}") from None

    def _reject(self, route: str, path: str, why: str) -> errors.InvalidResponse:
        """An answer whose payload is unusable, recorded here."""
        exc = _unexpected(route, why)
        self._recorder.outcome(route, path, exc)
        return exc

    # -- the send path ------------------------------------------------------------------------

    async def _request(self, route: str, path: str, params: Mapping[str, Any] | None = None, *,
                       method: str = "GET", json: Any = None) -> dict[str, Any]:
        """The body of one request, tried again as the module docstring says.

        Protected: only `exporter/gate` passes a `method` other than GET (and a JSON body)."""
        call = _Call(method, route, path, params or {}, json)
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await self._send(call)
            except errors.RateLimited as exc:
                self._limiter.pause(exc.retry_after)
                self._limiter.on_rate_limited()
                if attempt >= self._max_attempts:
                    raise
                continue  # the limiter holds the next attempt until Retry-After has passed
            except (_Garbled, errors.ServerError, errors.TransportError) as exc:
                # A truncated answer, a 5xx or no answer is usually gone on the next try. A write goes
                # again only when it never left (it may have started a run otherwise).
                unsent = isinstance(exc, errors.NotConnected)
                if attempt >= self._max_attempts or (method not in _RETRIED_METHODS and not unsent):
                    raise
                delay = self._backoff_base * 2 ** (attempt - 1)
                await self._sleep(delay * random.uniform(0.5, 1.5))
                continue
            self._limiter.on_success()
            return body

    async def _send(self, call: _Call) -> dict[str, Any]:
        """One attempt: booked, sent, judged, and recorded once whatever its outcome."""
        outcome, seconds = await self._book_and_send(call)
        if isinstance(outcome, errors.ApiError):
            self._recorder.attempt(call, None, seconds, outcome)
            raise outcome
        remaining = self._heed_rate_limit_headers(outcome.headers)
        judged = _judge(call.route, outcome)
        error = judged if isinstance(judged, errors.ApiError) else None
        self._recorder.attempt(call, outcome.status, seconds, error, remaining=remaining)
        if isinstance(judged, errors.ApiError):
            raise judged
        return judged

    async def _book_and_send(self, call: _Call) -> tuple[_Answer | errors.ApiError, float]:
        """The answer (or our error for the exception that came instead) and the seconds it took."""
        async with self._gate:
            slot = await self._book()
            started = time.perf_counter()
            outcome: _Answer | errors.ApiError
            try:
                outcome = await self._exchange(call)
            except _CAUGHT as exc:
                if isinstance(exc, _NEVER_SENT):
                    # Its retries then wait for their backoff only, not for a window that a dead
                    # address filled (a small budget would hold each of them for a minute).
                    self._limiter.release(slot)
                outcome = _translate(call.route, exc, self._limits)
            return outcome, time.perf_counter() - started

    async def _book(self) -> float:
        """Wait for a slot on the shared limiter and return it; one a 429 blocked while we waited is
        given back."""
        while True:
            slot = self._limiter.reserve()
            wait = slot - self._limiter.now()
            if wait > 0:
                await self._sleep(wait)
            if self._limiter.blocked_for() <= 0:
                return slot
            self._limiter.release(slot)  # a 429 arrived while we waited: queue behind it

    async def _exchange(self, call: _Call) -> _Answer:
        """Status, headers and body of one request, within one deadline for the whole exchange.

        httpx's timeout bounds each read, not the answer: a body that trickles in a byte at a time
        would never time out without the outer deadline. The body is read up to `max_body_bytes`
        (after decompression), so an endless or bomb answer cannot exhaust memory."""
        request = self._http.build_request(call.method, call.path.lstrip("/"), params=call.params or None,
                                           json=call.json,
                                           headers={"Authorization": f"Bearer {self._key.get()}"})
        limit = self._limits.max_body_bytes
        async with asyncio.timeout(self._limits.timeout):
            response = await self._http.send(request, stream=True)
            try:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _TooLarge
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge
                    chunks.append(chunk)
            finally:
                await response.aclose()
        return _Answer(response.status_code, response.headers, b"".join(chunks))

    def _heed_rate_limit_headers(self, headers: httpx.Headers) -> float | None:
        """The remaining budget the API reports; at 0, the shared limiter pauses until its reset."""
        remaining = _header_number(headers, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is not None and remaining <= 0:
            reset = _header_number(headers, "x-ratelimit-reset", "ratelimit-reset")
            if reset is not None:
                # X-RateLimit-Reset is an epoch time at some APIs and a delay at others.
                delay = reset - server_time(headers) if reset > 1e9 else reset
                self._limiter.pause(min(delay, RETRY_AFTER_CAP))
        return remaining
