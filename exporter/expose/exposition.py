"""Pre-rendered exposition: resource metrics are rendered once per snapshot, not once per scrape.

A body is two cached parts in a row: the snapshot's families, rendered when the snapshot is
published, then the exporter's own metrics, rendered again only when one of them has changed (and,
for OpenMetrics, the closing `# EOF`).

Plain gauge and counter families (all the resource families) are rendered here, each sample line
once for both formats; anything else goes to client_python's renderers. The tests hold the two to
the same bytes.

Gzip makes one gzip member, because not every client reads concatenated members (httpx and some
browsers stop after the first). The snapshot part is compressed once, on first request, up to a
sync flush, and the compressor's state there is kept; the small own part is compressed as a
continuation of a copy of that state. Each scrape then writes the snapshot's compressed bytes as
they are, followed by a short tail that closes the same deflate stream.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client import utils as client_utils
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest as render_text
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector

from .selfmetrics import ExporterMetrics

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_EOF = b"# EOF\n"
_GZIP_LEVEL = 6
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
render_openmetrics: Callable[[Collector], bytes] = openmetrics_exposition.generate_latest  # untyped upstream
go_float: Callable[[float], str] = client_utils.floatToGoString  # untyped upstream


class _Families:
    """Adapts a list of families to the Collector interface client_python's renderers take."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class Rendered:
    """One set of families in both formats (OpenMetrics without `# EOF`), and its gzip prefixes once asked."""

    __slots__ = ("_deflated", "openmetrics", "text")

    def __init__(self, text: bytes, openmetrics: bytes) -> None:
        self.text = text
        self.openmetrics = openmetrics
        self._deflated: dict[bool, tuple[bytes, zlib._Compress]] = {}

    def body(self, openmetrics: bool) -> bytes:
        return self.openmetrics if openmetrics else self.text

    def deflated(self, openmetrics: bool) -> tuple[bytes, zlib._Compress]:
        """The gzip stream of the body up to a sync flush, and the compressor to continue it from there."""
        cached = self._deflated.get(openmetrics)
        if cached is None:
            compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
            prefix = compressor.compress(self.body(openmetrics)) + compressor.flush(zlib.Z_SYNC_FLUSH)
            cached = self._deflated[openmetrics] = (prefix, compressor)
        return cached


def render(families: Iterable[Metric]) -> Rendered:
    """Render families in both formats; pure, so it may run in a worker thread.

    One family at a time, written straight into the two buffers (whose bytes `getvalue` hands over
    without a copy), so that a large snapshot is never also held as lines or pieces.
    """
    text, openmetrics = io.BytesIO(), io.BytesIO()
    for family in families:
        fast = _render_plain_family(family)
        if fast is None:
            one = _Families((family,))
            text.write(render_text(one))
            openmetrics.write(render_openmetrics(one).removesuffix(_EOF))
        else:
            text_head, openmetrics_head, samples = fast
            text.write(text_head)
            text.write(samples)
            openmetrics.write(openmetrics_head)
            openmetrics.write(samples)
    return Rendered(text.getvalue(), openmetrics.getvalue())


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _render_plain_family(family: Metric) -> tuple[bytes, bytes, bytes] | None:
    """(text head, OpenMetrics head, samples) of a plain gauge or counter family, or None for client_python to do.

    Resource families are this simple: one sample per label set, no timestamps, exemplars or units, so
    their sample lines are the same in both formats and are made once, with one template per label set
    instead of client_python's per-label validation and formatting (several times faster; the tests
    hold the output byte for byte to client_python's).
    """
    if family.type not in ("gauge", "counter") or family.unit or not _NAME.fullmatch(family.name):
        return None
    sample_name = family.name + "_total" if family.type == "counter" else family.name
    templates: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}
    lines: list[str] = []
    for sample in family.samples:
        if (sample.name != sample_name or sample.timestamp is not None or sample.exemplar is not None
                or getattr(sample, "native_histogram", None) is not None):
            return None
        labels = sample.labels
        keys = tuple(labels)
        template = templates.get(keys)
        if template is None:
            ordered = tuple(sorted(keys))
            if not all(_LABEL_NAME.fullmatch(key) for key in ordered):
                return None
            pairs = ",".join(f'{key}="%s"' for key in ordered)
            line = f"{sample_name}{{{pairs}}} %s\n" if ordered else f"{sample_name} %s\n"
            template = templates[keys] = (line, ordered)
        pattern, ordered = template
        lines.append(pattern % (*[_escape(labels[key]) for key in ordered], go_float(sample.value)))
    doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
    quoted_doc = doc.replace('"', '\\"')  # OpenMetrics escapes quotes in HELP too
    text_head = f"# HELP {sample_name} {doc}\n# TYPE {sample_name} {family.type}\n"
    openmetrics_head = f"# HELP {family.name} {quoted_doc}\n# TYPE {family.name} {family.type}\n"
    return text_head.encode(), openmetrics_head.encode(), "".join(lines).encode()


def _preferences(header: str) -> dict[str, float]:
    """`a/b;q=0.5, c` -> {"a/b": 0.5, "c": 1.0}, keeping the highest q of each token; a malformed q counts as 0.

    Not cached: the header is the client's to choose, and a cache keyed by it is memory a client fills."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        token, *params = item.split(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        weights[token] = max(q, weights.get(token, 0.0))
    return weights


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics when the client accepts it at least as much as the classic text format."""
    weights = _preferences(accept)
    openmetrics = weights.get("application/openmetrics-text", 0.0)
    return openmetrics > 0 and openmetrics >= weights.get("text/plain", 0.0)


def wants_gzip(accept_encoding: str) -> bool:
    """True when gzip is named with a non-zero q (`gzip;q=0` refuses it)."""
    weights = _preferences(accept_encoding)
    return max(weights.get("gzip", 0.0), weights.get("x-gzip", 0.0)) > 0


class Exposition:
    """The cached /metrics body: `publish` swaps in a snapshot's families, `body` serves them."""

    def __init__(self, registry: CollectorRegistry, self_metrics: ExporterMetrics) -> None:
        self._registry = registry
        self._self = self_metrics
        self._resources = render(())
        self._own: tuple[int, Rendered] | None = None
        # per format: the gzip tail for (snapshot render, own-metrics version)
        self._tails: dict[bool, tuple[Rendered, int, bytes]] = {}

    def publish(self, families: Iterable[Metric]) -> None:
        """Render a new snapshot's families and swap them in with one assignment."""
        self.publish_rendered(render(families))

    def publish_rendered(self, rendered: Rendered) -> None:
        """Swap in families rendered elsewhere (by `render`, e.g. in a worker thread)."""
        current = self._resources
        if rendered.text == current.text and rendered.openmetrics == current.openmetrics:
            return  # nothing changed: keep the current render and its gzip streams
        self._resources = rendered

    def _own_part(self) -> tuple[int, Rendered]:
        version = self._self.version  # read before rendering: a change during the render re-renders next time
        own = self._own
        if own is None or own[0] != version:
            rendered = render(self._registry.collect())
            own = self._own = (version, Rendered(rendered.text, rendered.openmetrics + _EOF))
        return own

    def body(self, *, openmetrics: bool, gzipped: bool) -> tuple[list[bytes], str]:
        """The body as byte strings to write in order, and its content type."""
        resources = self._resources  # one read: a scrape sees one snapshot, whatever publish does meanwhile
        version, own = self._own_part()
        content_type = OPENMETRICS if openmetrics else TEXT
        if not gzipped:
            return [resources.body(openmetrics), own.body(openmetrics)], content_type
        prefix, compressor = resources.deflated(openmetrics)
        cached = self._tails.get(openmetrics)
        if cached is not None and cached[0] is resources and cached[1] == version:
            tail = cached[2]
        else:
            continuation = compressor.copy()
            tail = continuation.compress(own.body(openmetrics)) + continuation.flush(zlib.Z_FINISH)
            self._tails[openmetrics] = (resources, version, tail)
        return [prefix, tail], content_type
