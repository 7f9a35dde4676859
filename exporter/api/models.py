"""Pydantic models of the CallMeter API v1 payloads.

Every model accepts unknown fields (the API is "in active development") and treats every
documented field except `id` as optional: a missing or null field becomes None and later yields
no sample, never a zero. Numbers sent as strings are coerced; a value that cannot be read as
the documented type becomes None rather than failing the whole page.

That leniency is declared once, as field types (`LenientFloat`, `LenientInt`, `Timestamp`, `StatusWord`,
`LenientStr`, `Id`), and the models below only name them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

TERMINAL_RUN_STATUSES = frozenset({"COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW"})
KNOWN_RUN_STATUSES = ("PENDING", "QUEUED", "RUNNING", "STOPPING", "COMPLETED", "FAILED", "CANNOT_RUN_FOR_NOW")
KNOWN_PROBE_STATUSES = ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN")
KNOWN_ENDPOINT_OUTCOMES = ("SUCCESS", "COMPLETED_WITH_WARNINGS", "REGISTRATION_FAILED", "CALL_FAILED",
                           "NEGOTIATION_FAILED", "TIMEOUT", "OSERROR", "TEARDOWN_ERROR")
"""CallMeter's endpoint outcomes (docs, "Endpoint statuses"), least severe first."""
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


def _object_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) else None


def _iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()


# The field types of every model: each reads what the API sends as leniently as the module docstring says.
LenientFloat = Annotated[float | None, BeforeValidator(_lenient_float)]
"""A number, or a string holding one; None when unreadable or not finite."""
LenientInt = Annotated[int | None, BeforeValidator(_lenient_int)]
"""As LenientFloat, truncated to an integer."""
Timestamp = Annotated[float | None, BeforeValidator(_lenient_timestamp), PlainSerializer(_iso, when_used="json")]
"""An ISO 8601 time with a zone, as unix seconds; written back as ISO 8601 (the state file reads it again)."""
StatusWord = Annotated[str | None, BeforeValidator(_status_word)]
"""An upper-case status word, or UNRECOGNIZED: a bounded label value."""
LenientStr = Annotated[str | None, BeforeValidator(_lenient_str)]
"""A string, or a number written as one."""
Id = Annotated[str, BeforeValidator(_lenient_str)]
"""As LenientStr, but required: an item without a readable id fails to parse."""


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Pagination(ApiModel):
    page: LenientInt = None
    per_page: LenientInt = Field(default=None, alias="perPage")
    total: LenientInt = None
    total_pages: LenientInt = Field(default=None, alias="totalPages")


class Project(ApiModel):
    id: Id
    slug: LenientStr = None
    name: LenientStr = None
    test_count: LenientInt = Field(default=None, alias="testCount")
    probe_count: LenientInt = Field(default=None, alias="probeCount")
    registrar_count: LenientInt = Field(default=None, alias="registrarCount")

    @property
    def label(self) -> str:
        """The `project` label: the slug, which is short and stable, else the id."""
        return self.slug or self.id


class Probe(ApiModel):
    id: Id
    name: LenientStr = None
    status: StatusWord = None
    interval_minutes: LenientFloat = Field(default=None, alias="intervalMinutes")
    last_execution_at: Timestamp = Field(default=None, alias="lastExecutionAt")
    next_execution_at: Timestamp = Field(default=None, alias="nextExecutionAt")


class Test(ApiModel):
    __test__ = False  # not a pytest test class

    id: Id
    name: LenientStr = None
    duration_seconds: LenientFloat = Field(default=None, alias="durationSeconds")
    total_endpoints: LenientInt = Field(default=None, alias="totalEndpoints")
    created_at: Timestamp = Field(default=None, alias="createdAt")


class RunSummary(ApiModel):
    total_endpoints: LenientInt = Field(default=None, alias="totalEndpoints")
    registered_count: LenientInt = Field(default=None, alias="registeredCount")
    registration_failed_count: LenientInt = Field(default=None, alias="registrationFailedCount")
    in_call_count: LenientInt = Field(default=None, alias="inCallCount")
    completed_count: LenientInt = Field(default=None, alias="completedCount")
    avg_mos: LenientFloat = Field(default=None, alias="avgMos")
    avg_jitter_ms: LenientFloat = Field(default=None, alias="avgJitterMs")
    avg_packet_loss_fraction: LenientFloat = Field(default=None, alias="avgPacketLossFraction")
    avg_rtt_ms: LenientFloat = Field(default=None, alias="avgRttMs")
    asr: LenientFloat = None
    ner: LenientFloat = None


class TestRun(ApiModel):
    __test__ = False

    id: Id
    test_id: LenientStr = Field(default=None, alias="testId")
    status: StatusWord = None
    created_at: Timestamp = Field(default=None, alias="createdAt")
    started_at: Timestamp = Field(default=None, alias="startedAt")
    completed_at: Timestamp = Field(default=None, alias="completedAt")
    summary: Annotated[RunSummary | None, BeforeValidator(_object_or_none)] = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def order_key(self) -> float | None:
        """When the run began, as far as the payload tells; used to find the newest run."""
        return self.created_at or self.started_at or self.completed_at


class Registrar(ApiModel):
    id: Id
    name: LenientStr = None
    uri: LenientStr = None
    transport: LenientStr = None


class RunEndpoint(ApiModel):
    """One endpoint of a test run (`GET .../test-runs/{testRunId}/endpoints`); its SIP account is not kept."""

    id: LenientStr = None
    group_index: LenientInt = Field(default=None, alias="groupIndex")
    group_name: LenientStr = Field(default=None, alias="groupName")
    phase: StatusWord = None
    outcome: StatusWord = None


class ProbeExecution(ApiModel):
    """The answer to Run Probe, "the queued probe execution details" (the reference shows no fields)."""

    id: LenientStr = None
    status: StatusWord = None
    created_at: Timestamp = Field(default=None, alias="createdAt")
