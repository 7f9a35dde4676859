"""Pydantic models of the CallMeter API v1 payloads.

Every model accepts unknown fields (the API is "in active development") and treats every
documented field except `id` as optional: a missing or null field becomes None and later yields
no sample, never a zero. Numbers sent as strings are coerced; a value that cannot be read as
the documented type becomes None rather than failing the whole page.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

TERMINAL_RUN_STATUSES = frozenset({"COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW"})
KNOWN_RUN_STATUSES = ("PENDING", "QUEUED", "RUNNING", "STOPPING", "COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW")
KNOWN_PROBE_STATUSES = ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN")
_STATUS_WORD = re.compile(r"[A-Z][A-Z0-9_]{0,39}")


def _lenient_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _lenient_int(value: Any) -> int | None:
    number = _lenient_float(value)
    return int(number) if number is not None else None


def _lenient_timestamp(value: Any) -> float | None:
    """ISO 8601 (a trailing Z included) to unix seconds; None when unreadable or naive garbage."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


def _status_word(value: Any) -> str | None:
    """Upper-case status word; anything that is not a plain identifier becomes UNRECOGNIZED so that a
    garbled payload cannot mint unbounded label values."""
    if not isinstance(value, str) or not value.strip():
        return None
    word = value.strip().upper()
    return word if _STATUS_WORD.fullmatch(word) else "UNRECOGNIZED"


def _lenient_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return None


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Pagination(ApiModel):
    page: int | None = None
    per_page: int | None = Field(default=None, alias="perPage")
    total: int | None = None
    total_pages: int | None = Field(default=None, alias="totalPages")

    _ints = field_validator("page", "per_page", "total", "total_pages", mode="before")(
        lambda v: _lenient_int(v))


class Project(ApiModel):
    id: str
    slug: str | None = None
    name: str | None = None
    test_count: int | None = Field(default=None, alias="testCount")
    probe_count: int | None = Field(default=None, alias="probeCount")
    registrar_count: int | None = Field(default=None, alias="registrarCount")

    _strs = field_validator("id", "slug", "name", mode="before")(lambda v: _lenient_str(v))
    _ints = field_validator("test_count", "probe_count", "registrar_count", mode="before")(
        lambda v: _lenient_int(v))

    @property
    def label(self) -> str:
        """The `project` label: the slug, which is short and stable, else the id."""
        return self.slug or self.id


class Probe(ApiModel):
    id: str
    name: str | None = None
    status: str | None = None
    interval_minutes: float | None = Field(default=None, alias="intervalMinutes")
    last_execution_at: float | None = Field(default=None, alias="lastExecutionAt")
    next_execution_at: float | None = Field(default=None, alias="nextExecutionAt")

    _strs = field_validator("id", "name", mode="before")(lambda v: _lenient_str(v))
    _status = field_validator("status", mode="before")(lambda v: _status_word(v))
    _float = field_validator("interval_minutes", mode="before")(lambda v: _lenient_float(v))
    _times = field_validator("last_execution_at", "next_execution_at", mode="before")(
        lambda v: _lenient_timestamp(v))


class Test(ApiModel):
    __test__ = False  # not a pytest test class

    id: str
    name: str | None = None
    duration_seconds: float | None = Field(default=None, alias="durationSeconds")
    total_endpoints: int | None = Field(default=None, alias="totalEndpoints")
    created_at: float | None = Field(default=None, alias="createdAt")

    _strs = field_validator("id", "name", mode="before")(lambda v: _lenient_str(v))
    _float = field_validator("duration_seconds", mode="before")(lambda v: _lenient_float(v))
    _int = field_validator("total_endpoints", mode="before")(lambda v: _lenient_int(v))
    _time = field_validator("created_at", mode="before")(lambda v: _lenient_timestamp(v))


class RunSummary(ApiModel):
    total_endpoints: int | None = Field(default=None, alias="totalEndpoints")
    registered_count: int | None = Field(default=None, alias="registeredCount")
    registration_failed_count: int | None = Field(default=None, alias="registrationFailedCount")
    in_call_count: int | None = Field(default=None, alias="inCallCount")
    completed_count: int | None = Field(default=None, alias="completedCount")
    avg_mos: float | None = Field(default=None, alias="avgMos")
    avg_jitter_ms: float | None = Field(default=None, alias="avgJitterMs")
    avg_packet_loss_fraction: float | None = Field(default=None, alias="avgPacketLossFraction")
    avg_rtt_ms: float | None = Field(default=None, alias="avgRttMs")
    asr: float | None = None
    ner: float | None = None

    _ints = field_validator("total_endpoints", "registered_count", "registration_failed_count",
                            "in_call_count", "completed_count", mode="before")(lambda v: _lenient_int(v))
    _floats = field_validator("avg_mos", "avg_jitter_ms", "avg_packet_loss_fraction", "avg_rtt_ms",
                              "asr", "ner", mode="before")(lambda v: _lenient_float(v))


class TestRun(ApiModel):
    __test__ = False

    id: str
    test_id: str | None = Field(default=None, alias="testId")
    status: str | None = None
    created_at: float | None = Field(default=None, alias="createdAt")
    started_at: float | None = Field(default=None, alias="startedAt")
    completed_at: float | None = Field(default=None, alias="completedAt")
    summary: RunSummary | None = None

    _strs = field_validator("id", "test_id", mode="before")(lambda v: _lenient_str(v))
    _status = field_validator("status", mode="before")(lambda v: _status_word(v))
    _times = field_validator("created_at", "started_at", "completed_at", mode="before")(
        lambda v: _lenient_timestamp(v))
    _summary = field_validator("summary", mode="before")(lambda v: v if isinstance(v, dict) else None)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def order_key(self) -> float | None:
        """When the run began, as far as the payload tells; used to find the newest run."""
        return self.created_at or self.started_at or self.completed_at


class Registrar(ApiModel):
    id: str
    name: str | None = None
    uri: str | None = None
    transport: str | None = None

    _strs = field_validator("id", "name", "uri", "transport", mode="before")(lambda v: _lenient_str(v))


class ProbeExecution(ApiModel):
    """The answer to Run Probe, "the queued probe execution details" (the reference shows no fields)."""

    id: str | None = None
    status: str | None = None
    created_at: float | None = Field(default=None, alias="createdAt")

    _strs = field_validator("id", mode="before")(lambda v: _lenient_str(v))
    _status = field_validator("status", mode="before")(lambda v: _status_word(v))
    _time = field_validator("created_at", mode="before")(lambda v: _lenient_timestamp(v))
