"""The README is the user's manual: it must name every setting and every metric the exporter has."""

from __future__ import annotations

import re

from exporter.settings import Settings
from tests.support.paths import ROOT
from tests.support.published import FAMILIES

README = (ROOT / "README.md").read_text()


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


def test_the_gate_section_names_every_option_and_exit_code() -> None:
    from exporter.gate.judge import EXIT_NAMES
    from exporter.gate.options import build_parser

    section = README.split("## CI/CD quality gate", 1)[1].split("\n## ", 1)[0]
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in ("--help", "--version"):
                assert f"`{flag}" in section or f"`CALLMETER_{flag[2:].replace('-', '_').upper()}`" in README, flag
    codes = re.findall(r"^\| (\d) \|", section, re.MULTILINE)
    assert codes == [str(code) for code in sorted(EXIT_NAMES)]
    assert "callmeter_gate_passed" in section and "```yaml" in section and "GitLab CI" in section
