"""Probe and test details: the thresholds a probe is judged by, and what a test is set to do.

The API reference names these payloads ("full probe configuration ... and threshold definitions",
"full test configuration including groups, codecs, and media settings") but shows no field of
them. So the readers here know a few plausible shapes and nothing else: a shape they do not know
yields no threshold or setting (never a guess, never a crash), and the keys they could not read are
handed back, so that the poller can log them once and the real shape can be added.

Thresholds, under `thresholds` (at the top, or in a `config`, `configuration` or `settings` object):

    {"mos": {"warning": 3.5, "critical": 2.5}, "jitter_ms": {"warning": 30, "critical": 80}}
    [{"metric": "mos", "warning": 3.5, "critical": 2.5}, ...]
    [{"metric": "mos", "level": "warning", "value": 3.5}, ...]
    {"warning": {"mos": 3.5, "jitterMs": 30}, "critical": {...}}

Metric keys are matched in a closed table (`METRICS`), so a probe has at most 4 metrics x 2 levels
= 8 threshold series. Values are kept as sent, with their unit; `families` converts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field

from ..api.models import ApiModel, Id, LenientFloat, LenientInt, LenientStr

Unit = Literal["ms", "s", "percent", "ratio", "mos"]

METRICS: dict[str, tuple[str, Unit]] = {
    "mos": ("mos", "mos"), "avgmos": ("mos", "mos"),
    "jitter": ("jitter_seconds", "ms"), "jitterms": ("jitter_seconds", "ms"), "avgjitterms": ("jitter_seconds", "ms"),
    "jitterseconds": ("jitter_seconds", "s"),
    "rtt": ("rtt_seconds", "ms"), "rttms": ("rtt_seconds", "ms"), "avgrttms": ("rtt_seconds", "ms"),
    "roundtriptime": ("rtt_seconds", "ms"), "roundtriptimems": ("rtt_seconds", "ms"),
    "rttseconds": ("rtt_seconds", "s"),
    "packetloss": ("packet_loss_ratio", "percent"), "packetlosspercent": ("packet_loss_ratio", "percent"),
    "packetlossrate": ("packet_loss_ratio", "percent"), "fractionlost": ("packet_loss_ratio", "percent"),
    "avgpacketlossfraction": ("packet_loss_ratio", "percent"), "loss": ("packet_loss_ratio", "percent"),
    "packetlossratio": ("packet_loss_ratio", "ratio"),
}
"""Normalised key (lower case, no `_`, `-` or space) -> (the `metric` label, the unit of the value).
Packet loss is in percent unless the key says ratio: CallMeter documents `fraction_lost` in %."""
LEVELS = {"warning": "warning", "warn": "warning", "critical": "critical", "crit": "critical"}
CONTAINERS = ("config", "configuration", "settings")
"""Objects a detail may nest its configuration in."""
MAX_CODECS = 8
_CODEC = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./+_-]{0,31}")
_GROUP = re.compile(r"[^\x00-\x1f]{1,64}")


def _norm(key: object) -> str:
    return re.sub(r"[_\-\s]", "", str(key)).lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def found(raw: Mapping[str, Any], key: str) -> Any:
    """`raw[key]`, or the same key in one of the `CONTAINERS` objects (None when nowhere)."""
    if raw.get(key) is not None:
        return raw[key]
    for container in CONTAINERS:
        inner = raw.get(container)
        if isinstance(inner, dict) and inner.get(key) is not None:
            return inner[key]
    return None


class Detail(ApiModel):
    """A detail payload as sent: its id, and every other field, for the readers below."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: Id

    @property
    def raw(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# -- thresholds --------------------------------------------------------------------------------

class Threshold(ApiModel):
    """One line CallMeter judges a probe's metric by, in the unit it was sent in."""

    metric: str
    """The `metric` label: mos, jitter_seconds, rtt_seconds or packet_loss_ratio."""
    level: str
    """warning or critical."""
    value: float
    unit: Unit


class ProbeDetail(ApiModel):
    """What the exporter keeps of `GET /projects/{projectId}/probes/{probeId}`."""

    id: Id
    test_id: LenientStr = Field(default=None, alias="testId")
    """The test the probe runs, where the detail names one: it ties the thresholds to that test."""
    thresholds: tuple[Threshold, ...] = ()
    read_at: float = Field(alias="readAt")
    """Unix time the detail was read."""


def _entries(block: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(metric key, level key, value) of every entry of a thresholds block, in the shapes above."""
    if isinstance(block, dict):
        for outer, inner in block.items():
            if not isinstance(inner, dict):
                yield outer, None, inner
                continue
            for key, value in inner.items():
                if _norm(outer) in LEVELS:  # {"warning": {"mos": 3.5}}
                    yield key, outer, value
                else:  # {"mos": {"warning": 3.5}}
                    yield outer, key, value
    elif isinstance(block, list):
        for item in block:
            if not isinstance(item, dict):
                continue
            metric = item.get("metric", item.get("name", item.get("key")))
            if "level" in item:  # {"metric": "mos", "level": "warning", "value": 3.5}
                yield metric, item.get("level"), item.get("value", item.get("threshold"))
                continue
            for key, value in item.items():  # {"metric": "mos", "warning": 3.5, "critical": 2.5}
                if _norm(key) in LEVELS:
                    yield metric, key, value


def read_thresholds(raw: Mapping[str, Any]) -> tuple[tuple[Threshold, ...], list[str]]:
    """(the thresholds as sent, with their unit; the entries not understood) of a probe detail."""
    thresholds: dict[tuple[str, str], Threshold] = {}
    unread: list[str] = []
    for metric_key, level_key, value in _entries(found(raw, "thresholds")):
        metric, level, number = METRICS.get(_norm(metric_key)), LEVELS.get(_norm(level_key)), _number(value)
        if metric is None or level is None or number is None:
            unread.append(f"{metric_key}.{level_key}"[:60])
            continue
        key = (metric[0], level)
        if key not in thresholds:
            thresholds[key] = Threshold(metric=metric[0], level=level, value=number, unit=metric[1])
    return tuple(thresholds.values()), unread


def read_probe_detail(detail: Detail, read_at: float) -> tuple[ProbeDetail, list[str]]:
    """The probe detail to keep, and the threshold entries it could not read."""
    raw = detail.raw
    thresholds, unread = read_thresholds(raw)
    test_id = found(raw, "testId")
    kept = ProbeDetail(id=detail.id, testId=str(test_id) if isinstance(test_id, str | int) else None,
                       thresholds=thresholds, readAt=read_at)
    return kept, unread


# -- test settings -----------------------------------------------------------------------------

class TestDetail(ApiModel):
    """What the exporter keeps of `GET /projects/{projectId}/tests/{testId}`."""

    __test__ = False  # not a pytest test class

    id: Id
    duration_seconds: LenientFloat = Field(default=None, alias="durationSeconds")
    total_endpoints: LenientInt = Field(default=None, alias="totalEndpoints")
    codecs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """Configured group names, in order: what bounds the `group` label of the test's endpoint outcomes."""
    read_at: float = Field(alias="readAt")


def _codec_names(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from (part.strip() for part in value.split(","))
    elif isinstance(value, list):
        for item in value:
            name = item.get("name", item.get("codec")) if isinstance(item, dict) else item
            if isinstance(name, str):
                yield name.strip()


def _groups(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = found(raw, "groups")
    return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []


def read_codecs(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The test's codecs, in its order, without repeats: at the top, in its media settings, or per group."""
    media = found(raw, "media")
    sources = [found(raw, "codecs"), media.get("codecs") if isinstance(media, dict) else None,
               *(group.get("codecs") for group in _groups(raw))]
    names: list[str] = []
    for source in sources:
        for name in _codec_names(source):
            if _CODEC.fullmatch(name) and name not in names and len(names) < MAX_CODECS:
                names.append(name)
    return tuple(names)


def group_names(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """Configured group names in order; a group without a usable name is named by its position."""
    names = []
    for position, group in enumerate(_groups(raw)):
        name = group.get("name", group.get("groupName"))
        usable = isinstance(name, str) and _GROUP.fullmatch(name.strip())
        names.append(name.strip() if usable and isinstance(name, str) else str(position))
    return tuple(names)


def _group_size(group: Mapping[str, Any]) -> int | None:
    for key in ("size", "endpointCount", "endpoints", "count"):
        number = _number(group.get(key))
        if number is not None and number >= 0:
            return int(number)
    return None


def read_test_detail(detail: Detail, read_at: float) -> TestDetail:
    """The test settings to keep: duration, endpoint count (or the sum of its groups'), codecs, groups."""
    raw = detail.raw
    endpoints = found(raw, "totalEndpoints")
    sizes = [_group_size(g) for g in _groups(raw)]
    if endpoints is None and sizes and all(s is not None for s in sizes):
        endpoints = sum(s for s in sizes if s is not None)
    return TestDetail(id=detail.id, durationSeconds=found(raw, "durationSeconds"), totalEndpoints=endpoints,
                      codecs=read_codecs(raw), groups=group_names(raw), readAt=read_at)
