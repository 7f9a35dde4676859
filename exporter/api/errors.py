"""Errors the CallMeter client raises; nothing else escapes it.

    ApiError                      any failure to get a usable answer from the API
    ├── TransportError            no HTTP answer at all
    │   ├── ApiTimeout            no complete answer within the timeout
    │   └── ApiConnectionError    refused, reset, DNS, TLS
    │       └── NotConnected      no connection was made (refused, DNS, TLS handshake): nothing was sent
    ├── InvalidResponse           not the documented envelope: garbled, too large, a redirect
    └── HttpError                 an error status with the documented error envelope
        ├── BadRequest            400 / 422
        ├── Unauthorized          401: key missing, invalid, revoked or expired
        ├── Forbidden             403: the key's role may not read this
        ├── NotFound              404: deleted, or never visible to this key
        ├── RateLimited           429, carries the Retry-After delay in seconds
        └── ServerError           5xx

`kind` is the bounded label value used by `callmeter_exporter_api_errors_total`.
"""

from __future__ import annotations


class ApiError(Exception):
    kind = "error"

    def __init__(self, message: str, *, route: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.route = route
        self.status = status


class TransportError(ApiError):
    kind = "connection"


class ApiTimeout(TransportError):
    kind = "timeout"


class ApiConnectionError(TransportError):
    kind = "connection"


class NotConnected(ApiConnectionError):
    """No connection was made, so the request never reached the API: a write may be sent again."""


class InvalidResponse(ApiError):
    kind = "invalid_response"


class HttpError(ApiError):
    kind = "client_error"

    def __init__(self, message: str, *, route: str = "", status: int | None = None, code: str = "") -> None:
        super().__init__(message, route=route, status=status)
        self.code = code


class BadRequest(HttpError):
    kind = "client_error"


class Unauthorized(HttpError):
    kind = "unauthorized"


class Forbidden(HttpError):
    kind = "forbidden"


class NotFound(HttpError):
    kind = "not_found"


class RateLimited(HttpError):
    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, route: str = "", status: int | None = 429,
                 code: str = "RATE_LIMITED") -> None:
        super().__init__(message, route=route, status=status, code=code)
        self.retry_after = retry_after


class ServerError(HttpError):
    kind = "server_error"


ERROR_KINDS = ("unauthorized", "forbidden", "not_found", "rate_limited", "server_error", "client_error",
               "timeout", "connection", "invalid_response")


def error_for_status(status: int, message: str, *, route: str, code: str) -> HttpError:
    """Map an HTTP error status to its typed exception (429 is handled by the caller)."""
    if status == 401:
        return Unauthorized(message, route=route, status=status, code=code)
    if status == 403:
        return Forbidden(message, route=route, status=status, code=code)
    if status == 404:
        return NotFound(message, route=route, status=status, code=code)
    if status >= 500:
        return ServerError(message, route=route, status=status, code=code)
    return BadRequest(message, route=route, status=status, code=code)
