"""The README is the user's manual: it must name every setting and every metric the exporter has."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.settings import Settings
from tests.support.published import FAMILIES

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`CALLMETER_{name.upper()}`" in README, name


def test_every_metric_family_is_documented() -> None:
    documented = set(re.findall(r"`(callmeter_[a-z_]+)", README))
    for family in [*FAMILIES, "callmeter_exporter_api_errors", "callmeter_exporter_rate_limit_remaining"]:
        assert family in documented or f"{family}_total" in documented, family


def test_quick_start_is_one_command_that_starts_the_demo() -> None:
    assert "pip install . && .venv/bin/callmeter-exporter --demo" in README
    assert "pip install -e '.[test]' && .venv/bin/python -m pytest" in README
