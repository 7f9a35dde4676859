"""Pre-rendered exposition: resource metrics are rendered once per snapshot, not once per scrape.

A scrape joins two cached parts: the snapshot's families (rendered when the snapshot is published)
and the exporter's own metrics (rendered again only when one of them has changed). Gzip variants
are made on first request and kept; two gzip members in a row form one valid gzip stream
(RFC 1952 section 2.2), so the parts are compressed separately and never recompressed together.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest as render_text
from prometheus_client.openmetrics.exposition import generate_latest as render_openmetrics

from .selfmetrics import ExporterMetrics

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_EOF = b"# EOF\n"


class _Families:
    """Adapts a list of families to the Collector interface client_python's renderers take."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


@dataclass(slots=True)
class _Part:
    text: bytes
    openmetrics: bytes  # without the closing "# EOF"
    _gzipped: dict[bool, bytes] = field(default_factory=dict)

    def body(self, openmetrics: bool) -> bytes:
        return self.openmetrics if openmetrics else self.text

    def gzipped(self, openmetrics: bool) -> bytes:
        cached = self._gzipped.get(openmetrics)
        if cached is None:
            cached = self._gzipped[openmetrics] = gzip.compress(self.body(openmetrics), compresslevel=6, mtime=0)
        return cached


def render(families: Iterable[Metric]) -> _Part:
    source = _Families(families)
    return _Part(text=render_text(source), openmetrics=render_openmetrics(source).removesuffix(_EOF))


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def wants_gzip(accept_encoding: str) -> bool:
    return any(token.split(";")[0].strip() == "gzip" and not token.replace(" ", "").endswith(";q=0")
               for token in accept_encoding.split(","))


class Exposition:
    def __init__(self, registry: CollectorRegistry, self_metrics: ExporterMetrics) -> None:
        self._registry = registry
        self._self = self_metrics
        self._resources = render(())
        self._own: _Part | None = None
        self._own_version = -1
        self._eof_gz = gzip.compress(_EOF, mtime=0)

    def publish(self, families: Iterable[Metric]) -> None:
        """Render a new snapshot's families and swap them in with one assignment."""
        self._resources = render(families)

    def publish_rendered(self, part: _Part) -> None:
        self._resources = part

    def _own_part(self) -> _Part:
        version = self._self.version
        if self._own is None or version != self._own_version:
            self._own = render(self._registry.collect())
            self._own_version = version
        return self._own

    def body(self, *, openmetrics: bool, gzipped: bool) -> tuple[list[bytes], str]:
        """The body as a list of byte strings to write in order, and its content type."""
        resources, own = self._resources, self._own_part()
        content_type = OPENMETRICS if openmetrics else TEXT
        if gzipped:
            parts = [resources.gzipped(openmetrics), own.gzipped(openmetrics)]
            if openmetrics:
                parts.append(self._eof_gz)
        else:
            parts = [resources.body(openmetrics), own.body(openmetrics)]
            if openmetrics:
                parts.append(_EOF)
        return parts, content_type
