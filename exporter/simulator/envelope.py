"""The API's answers: the JSON envelope (`data`, `meta.requestId`, `meta.pagination`), the error shape, paging.

Every answer the simulator gives is built here, so the envelope the API reference describes is in one
place; a route that cannot answer 2xx raises `ApiFault` from wherever it finds out.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

NOT_FOUND = "Resource does not exist or is not accessible"
"""The message of a 404 for a path that names nothing (or something the key may not see)."""


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ApiFault(Exception):
    """An error answer (status, CallMeter's error `code`, message), raised inside a route."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": "application/json"})


def one(item: dict[str, Any], status: int = 200) -> Response:
    """A single resource: `{"data": item, "meta": {"requestId"}}`."""
    return json_response(status, {"data": item, "meta": {"requestId": str(uuid.uuid4())}})


def error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message},
                                  "meta": {"requestId": str(uuid.uuid4())}})


def paging(query: dict[str, str]) -> tuple[int, int]:
    """(page, per_page) from the query: 1 and 25 by default, at most 100 a page; 422 when invalid."""
    try:
        page = int(query.get("page", "1"))
        per_page = int(query.get("per_page", "25"))
    except ValueError:
        raise ApiFault(422, "VALIDATION_ERROR", "Invalid page parameter") from None
    if page < 1 or per_page < 1:
        raise ApiFault(422, "VALIDATION_ERROR", "Invalid page parameter")
    return page, min(per_page, 100)


def envelope(chunk: list[dict[str, Any]], page: int, per_page: int, total: int) -> Response:
    """One page of a list, with its pagination."""
    pagination = {"page": page, "perPage": per_page, "total": total, "totalPages": math.ceil(total / per_page)}
    return json_response(200, {"data": chunk, "meta": {"requestId": str(uuid.uuid4()), "pagination": pagination}})


def page_of(items: list[dict[str, Any]], query: dict[str, str]) -> Response:
    """The page of `items` the query asks for."""
    page, per_page = paging(query)
    return envelope(items[(page - 1) * per_page: page * per_page], page, per_page, len(items))
