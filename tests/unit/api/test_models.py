"""The lenient field types every API model is built from, read directly."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from exporter.api.models import Id, LenientFloat, LenientInt, LenientStr, Probe, StatusWord, TestRun, Timestamp


@pytest.mark.parametrize(("field", "raw", "expected"), [
    (LenientFloat, 4.21, 4.21),
    (LenientFloat, "4.21", 4.21),
    (LenientFloat, 3, 3.0),
    (LenientFloat, True, None),
    (LenientFloat, "nan", None),
    (LenientFloat, "inf", None),
    (LenientFloat, 10**400, None),
    (LenientFloat, "soon", None),
    (LenientFloat, [1], None),
    (LenientInt, "500", 500),
    (LenientInt, 2.9, 2),
    (LenientInt, "1e400", None),
    (Timestamp, "2026-01-15T11:20:00Z", 1768476000.0),
    (Timestamp, "2026-01-15T12:20:00+01:00", 1768476000.0),
    (Timestamp, "2026-01-15T11:20:00", None),
    (Timestamp, "2026-13-45T00:00:00Z", None),
    (Timestamp, 1768476000, None),
    (StatusWord, " healthy ", "HEALTHY"),
    (StatusWord, "CANNOT_RUN_FOR_NOW", "CANNOT_RUN_FOR_NOW"),
    (StatusWord, "<script>", "UNRECOGNIZED"),
    (StatusWord, "", None),
    (StatusWord, 3, None),
    (LenientStr, "Production", "Production"),
    (LenientStr, 42, "42"),
    (LenientStr, False, None),
    (LenientStr, {"a": 1}, None),
])
def test_a_lenient_field_reads_what_it_can_and_none_otherwise(field: Any, raw: Any, expected: Any) -> None:
    assert TypeAdapter(field).validate_python(raw) == expected


def test_an_id_is_required_and_may_be_a_number() -> None:
    assert TypeAdapter(Id).validate_python(7) == "7"
    with pytest.raises(ValidationError):
        TypeAdapter(Id).validate_python(None)
    with pytest.raises(ValidationError):
        Probe.model_validate({"name": "no id"})


def test_the_types_apply_through_aliases_and_nesting() -> None:
    run = TestRun.model_validate({"id": 1, "status": "completed", "createdAt": "2026-01-15T11:20:00Z",
                                  "summary": {"avgMos": "4.2", "totalEndpoints": "10"}})
    assert (run.id, run.status, run.created_at) == ("1", "COMPLETED", 1768476000.0)
    assert run.summary is not None and (run.summary.avg_mos, run.summary.total_endpoints) == (4.2, 10)
    assert TestRun.model_validate({"id": "r", "summary": "garbled"}).summary is None
