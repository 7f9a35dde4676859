"""Where the repository is, for tests that read its files or run its tools, at whatever depth they sit."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository: README.md, exporter/, deploy/, grafana/."""
TESTS = ROOT / "tests"
