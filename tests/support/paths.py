"""Where the repository is, for tests that read its files or run its tools, at whatever depth they sit."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
"""The repository: README.md, exporter/, deploy/, grafana/."""
TESTS = ROOT / "tests"
SITE_URL: str = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["site_url"]
"""The published manual (mkdocs.yml `site_url`), ending in a slash: where alerts link their runbook."""
