"""Fuzzing the client's parsing boundary: whatever the API answers, only typed errors come out.

Hypothesis makes answers that are valid, drifted (fields missing, renamed, mistyped) and hostile
(huge or non-finite numbers, NaN strings, deep nesting, non-UTF-8 bytes, non-object JSON, junk
headers, bodies that claim gzip), and serves them through an httpx.MockTransport to the real
CallMeterClient. `get`, `page` and `list_all` either return models whose numbers are finite, or
raise an `exporter.errors.ApiError`; nothing else may escape.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from exporter.api import errors
from exporter.api.budget import RateLimiter
from exporter.api.client import RETRY_AFTER_CAP, CallMeterClient, Page
from exporter.api.keysource import KeySource
from exporter.api.models import Probe, Project, Registrar, RunSummary, Test, TestRun
from exporter.simulator import DEMO_KEY
from tests.support.fake_time import FakeTime

MODELS: list[type[BaseModel]] = [Project, Probe, Test, TestRun, Registrar]
_ALL: list[type[BaseModel]] = [*MODELS, RunSummary]
FIELDS = sorted({field.alias or name for model in _ALL for name, field in model.model_fields.items()})

huge_ints = st.sampled_from([2**63, -(2**63) - 1, 10**400, -(10**400), 10**4000])
numbers = st.one_of(st.integers(), huge_ints, st.floats(allow_nan=True, allow_infinity=True))
number_strings = st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e999", "0x10", "4.2", " 7 ", "", "1_000",
                                  "2026-01-15T10:30:00Z", "2026-13-45T99:99:99Z", "0001-01-01T00:00:00+14:00",
                                  "9999-12-31T23:59:59-14:00", "\udcff", "cmk_" + "ab" * 16])
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30), number_strings)
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=12)
items = st.dictionaries(st.sampled_from(FIELDS), st.one_of(junk, st.dictionaries(st.sampled_from(FIELDS), junk,
                                                                                   max_size=6)), max_size=10)
valid_items = st.builds(lambda i, extra: {"id": f"id-{i}", "name": "n", "status": "HEALTHY", **extra},
                        st.integers(0, 10**6), items)
pagination = st.one_of(junk, st.fixed_dictionaries({}, optional={
    "page": junk, "perPage": junk, "total": junk,
    "totalPages": st.one_of(junk, st.integers(-3, 10**12))}))


def envelope(data: Any, pages: Any) -> Any:
    return {"data": data, "meta": {"requestId": "r", "pagination": pages}}


json_bodies = st.one_of(
    st.builds(envelope, st.lists(st.one_of(valid_items, items, junk), max_size=5), pagination),
    st.builds(envelope, st.one_of(valid_items, items, junk), pagination),
    st.builds(lambda e: {"error": e, "meta": {}}, junk),
    st.builds(lambda c, m: {"error": {"code": c, "message": m}}, junk, junk),
    junk,
)


def dump(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _deep(n: int) -> bytes:
    return b'{"data": ' + b"[" * n + b"]" * n + b"}"


def _item_with(field: str, raw: bytes) -> bytes:
    item = b'{"id": "x", "' + field.encode() + b'": ' + raw + b"}"
    return b'{"data": [' + item + b'], "meta": {"pagination": {"totalPages": 1}}}'


HOSTILE = {
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"data"',
    "number": b"42",
    "utf16-garbage": b"\xff\xfe{\x00",
    "truncated": b'{"data": [',
    "braces": b"{" * 50_000,
    "deep-nesting": _deep(100_000),
    "deep-item": b'{"data": [{"id": "x", "summary": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}]}",
    "infinite-total-pages": b'{"data": [{"id": "x"}], "meta": {"pagination": {"totalPages": 1e999}}}',
    "huge-int-field": _item_with("intervalMinutes", b"1" + b"0" * 400),
    "huge-int-summary": b'{"data": [{"id": "x", "summary": {"avgMos": 1' + b"0" * 400 + b"}}]}",
    "int-beyond-str-limit": _item_with("totalEndpoints", b"9" * 5000),
    "huge-float": _item_with("avgMos", b"1e400"),
    "nan-literal": b'{"data": {"id": "x", "summary": {"avgMos": NaN, "asr": -Infinity}}}',
    "nan-strings": _item_with("intervalMinutes", b'"NaN"'),
    "id-object": b'{"data": [{"id": {"nested": [1, 2]}}]}',
    "bom": ("\ufeff" + json.dumps({"data": []})).encode("utf-8"),
    "utf16": json.dumps({"data": []}).encode("utf-16"),
    "lone-surrogate": b'{"data": [{"id": "\\udcff", "name": "\\ud800"}]}',
    "timestamp-overflow": _item_with("lastExecutionAt", b'"0001-01-01T00:00:00+23:59"'),
}

raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(list(HOSTILE.values())),
    json_bodies.map(dump),
)

header_values = st.one_of(st.sampled_from(["0", "-1", "inf", "-inf", "nan", "1e308", "10;w=60", "", "soon",
                                           "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00",
                                           "99999999999999999999"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12))
headers = st.dictionaries(st.sampled_from(["Retry-After", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                                           "RateLimit-Remaining", "RateLimit-Reset", "Content-Encoding"]),
                          header_values, max_size=4)
statuses = st.sampled_from([200, 200, 200, 201, 204, 299, 301, 302, 304, 400, 401, 403, 404, 418, 422, 429, 500,
                            502, 503, 599])
answers = st.tuples(statuses, headers, raw_bodies)


def _finite_numbers(model: BaseModel) -> None:
    for name, value in model:
        if isinstance(value, float):
            assert math.isfinite(value), (type(model).__name__, name, value)
        elif isinstance(value, BaseModel):
            _finite_numbers(value)


async def _exercise(sequence: list[tuple[int, dict[str, str], bytes]], operation: str, model: type[BaseModel]
                    ) -> None:
    served = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal served
        status, head, body = sequence[served % len(sequence)]
        served += 1
        return httpx.Response(status, headers=head, content=body)

    fake = FakeTime()
    limiter = RateLimiter(per_minute=60_000, window_cap=60_000, clock=fake.clock)
    client = CallMeterClient(base_url="https://callmeter.invalid/api/v1", key=KeySource(value=DEMO_KEY),
                             limiter=limiter, transport=httpx.MockTransport(handler), sleep=fake.sleep,
                             max_attempts=2, backoff_base=0.01, timeout=5)
    try:
        if operation == "get":
            result: Any = await client.get("/projects/{projectId}/test-runs/{testRunId}", "projects/p/test-runs/r",
                                           model)
            assert isinstance(result, model)
            _finite_numbers(result)
        elif operation == "page":
            page = await client.page("/projects/{projectId}/probes", "projects/p/probes", 1)
            assert isinstance(page, Page)
            for parsed in client.parse_items("/projects/{projectId}/probes", model, page.items):
                _finite_numbers(parsed)
        else:
            listed = await client.list_all("/projects", "projects", model)
            assert all(isinstance(item, model) for item in listed)
            for item in listed:
                _finite_numbers(item)
            assert served <= 3 * 1000
    except errors.ApiError as exc:
        assert exc.kind in errors.ERROR_KINDS
        assert DEMO_KEY not in str(exc)
    finally:
        await client.aclose()
    # No header may pause the budget beyond the cap on Retry-After (inf would stop polling for good).
    assert limiter.blocked_for() <= RETRY_AFTER_CAP + 1e-6
    assert math.isfinite(limiter.per_minute)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sequence=st.lists(answers, min_size=1, max_size=3), operation=st.sampled_from(["get", "page", "list_all"]),
       model=st.sampled_from(MODELS))
def test_only_typed_errors_leave_the_client(sequence: list[tuple[int, dict[str, str], bytes]], operation: str,
                                            model: type[BaseModel]) -> None:
    asyncio.run(_exercise(sequence, operation, model))


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("operation", ["get", "page", "list_all"])
@pytest.mark.parametrize("status", [200, 404, 500])
def test_hostile_bodies_become_typed_errors_or_lenient_models(name: str, operation: str, status: int) -> None:
    for model in MODELS:
        asyncio.run(_exercise([(status, {}, HOSTILE[name])], operation, model))


@pytest.mark.parametrize("head", [{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "inf"},
                                  {"X-RateLimit-Remaining": "nan"}, {"RateLimit-Remaining": "-inf"},
                                  {"Retry-After": "inf"}, {"Retry-After": "1e999"},
                                  {"Content-Encoding": "gzip"}, {"Content-Encoding": "br"}])
def test_hostile_headers_neither_escape_nor_stall_the_budget(head: dict[str, str]) -> None:
    body = dump(envelope([{"id": "x"}], {"totalPages": 1}))
    for status in (200, 429):
        asyncio.run(_exercise([(status, head, body)], "list_all", Probe))


@settings(max_examples=100, deadline=None)
@given(item=items, model=st.sampled_from(MODELS))
def test_a_drifted_item_parses_or_is_an_invalid_response(item: dict[str, Any], model: type[BaseModel]) -> None:
    body = dump(envelope([item], {"page": 1, "totalPages": 1}))
    asyncio.run(_exercise([(200, {}, body)], "list_all", model))


def test_a_very_large_page_is_read_whole() -> None:
    """An API that ignores per_page and sends 20,000 items in one page is still read, once."""
    big = [{"id": f"probe-{n}", "name": f"Probe {n}", "status": "HEALTHY", "intervalMinutes": 5,
            "x_blob": "y" * 200} for n in range(20_000)]
    body = dump(envelope(big, {"page": 1, "perPage": 100, "total": 20_000, "totalPages": 1}))
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        return httpx.Response(200, content=body)

    async def go() -> list[Probe]:
        fake = FakeTime()
        client = CallMeterClient(base_url="https://callmeter.invalid/api/v1", key=KeySource(value=DEMO_KEY),
                                 limiter=RateLimiter(per_minute=600, window_cap=600, clock=fake.clock),
                                 transport=httpx.MockTransport(handler), sleep=fake.sleep)
        try:
            return await client.list_all("/projects/{projectId}/probes", "projects/p/probes", Probe)
        finally:
            await client.aclose()

    probes = asyncio.run(go())
    assert len(probes) == 20_000
    assert len(calls) == 1
    assert len(body) > 5_000_000
