"""Families shaped like a snapshot's, a fresh Exposition, and what real scrapers send, for the
exposition and server tests."""

from __future__ import annotations

import zlib

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.api.models import Probe, Project
from exporter.expose.exposition import Exposition
from exporter.expose.families import probe_families, project_info_family
from exporter.expose.selfmetrics import ExporterMetrics

PROMETHEUS_2_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                       "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                       "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;"
                       "q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")

TEXT_ONLY_ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
"""What a scraper that reads only the classic text format (0.0.4) sends."""


def sample_families(probes: int = 20, *, interval: float = 5.0) -> list[Metric]:
    """Families shaped like a real snapshot's: project info and the probe families."""
    project = Project.model_construct(id="p-1", slug="production", name='Production "EU"')
    rows = [("production", Probe.model_construct(
        id=f"probe-{i:03d}", name=f"sip-trunk-{i:03d} registration\\backup",
        status=("HEALTHY", "DEGRADED", "UNHEALTHY")[i % 3], interval_minutes=interval,
        last_execution_at=1_700_000_000.0 + i, next_execution_at=1_700_000_300.0 + i)) for i in range(probes)]
    return [project_info_family([project]), *probe_families(rows)]


def make_exposition() -> tuple[Exposition, ExporterMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    metrics = ExporterMetrics(registry, budget_per_minute=60.0)
    return Exposition(registry, metrics), metrics


def whole(exposition: Exposition, *, openmetrics: bool, gzipped: bool = False) -> bytes:
    """The body the server would send, joined."""
    parts, _ = exposition.body(openmetrics=openmetrics, gzipped=gzipped)
    return b"".join(parts)


def one_gzip_member(data: bytes) -> bytes:
    """Decode `data`, failing unless it is exactly one complete gzip member (what single-member readers need)."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = decoder.decompress(data) + decoder.flush()
    assert decoder.eof, "the gzip stream is not finished"
    assert decoder.unused_data == b"", "bytes after the first gzip member"
    return decoded
