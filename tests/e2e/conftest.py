"""The slow tier. Everything under tests/e2e starts real processes (the exporter or a piece of it, the
simulator, Prometheus, Alertmanager, the Pushgateway, promtool, amtool, wrk), or soaks for a long while
(test_memory_soak: two simulated hours under tracemalloc). The folder gives the `e2e` marker, so
`pytest -m e2e` runs exactly these tests and `pytest -m "not e2e"` exactly tests/unit."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the marker must be there when it looks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
