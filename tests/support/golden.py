"""The golden exposition: the reference snapshot rendered as Prometheus text, kept in tests/golden.

A change to a family, a label, a HELP text or the renderer shows as a diff of that file. After an
intended change, regenerate it and review the diff before committing:

    python -m tests.support.golden
"""

from __future__ import annotations

import sys
from pathlib import Path

from exporter.expose.exposition import render
from exporter.expose.families import snapshot_families
from tests.support.reference import NOW, reference_snapshot

GOLDEN = Path(__file__).parent.parent / "golden" / "reference.prom"


def render_reference() -> bytes:
    """The text exposition of the reference snapshot's resource families, as `/metrics` serves it."""
    return render(snapshot_families(reference_snapshot(), now=NOW)).text


def main() -> int:
    fresh = render_reference()
    old = GOLDEN.read_bytes() if GOLDEN.exists() else None
    if fresh == old:
        print(f"{GOLDEN} is up to date")
        return 0
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_bytes(fresh)
    print(f"wrote {GOLDEN} ({len(fresh)} bytes); review the diff before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
