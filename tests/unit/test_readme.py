"""The README is the front door: short, its commands and settings true to the code, its links alive.

The manual (docs/) carries every setting, metric and option; tests/unit/test_docs.py holds it to the code.
"""

from __future__ import annotations

import re

import yaml

from exporter.settings import DEFAULT_PORT, Settings
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\]\(((?!https?://|#)[^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_a_front_door_not_the_manual() -> None:
    assert len(README.splitlines()) < 250


def test_quick_start_and_the_test_suite_are_one_command_each() -> None:
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/callmeter-exporter --demo" in README
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test,docs]' && .venv/bin/python -m pytest"
    assert command in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test,docs]'" in ci and ci.rstrip().endswith(".venv/bin/python -m pytest")


def test_every_setting_named_is_a_setting_and_its_default_is_the_models() -> None:
    rows = re.findall(r"^\| `CALLMETER_([A-Z_]+)` \| ([^|]+) \|", README, re.MULTILINE)
    assert len(rows) == 10
    for name, default in rows:
        field = Settings.model_fields[name.lower()]  # KeyError: the README names a setting that does not exist
        shown = re.fullmatch(r"`([^`]*)`", default.strip())
        if shown:  # a literal default is the model's own
            assert shown.group(1) == str(field.default), name


def test_the_scrape_config_reaches_the_default_port_with_a_job_the_alerts_know() -> None:
    block = re.search(r"```yaml\n(scrape_configs:.*?)```", README, re.DOTALL)
    assert block is not None
    job = yaml.safe_load(block.group(1))["scrape_configs"][0]
    assert "callmeter" in job["job_name"]
    assert job["static_configs"][0]["targets"] == [f"localhost:{DEFAULT_PORT}"]
    rules = (ROOT / "deploy" / "prometheus" / "callmeter-rules.yml").read_text()
    assert 'up{job=~".*callmeter.*"} == 0' in rules  # CallMeterExporterDown


def test_every_local_link_leads_to_a_file() -> None:
    links = LINK.findall(README)
    assert len(links) > 20
    for target in links:
        assert (ROOT / target).exists(), target


def test_the_helm_example_sets_values_the_chart_has() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "callmeter-exporter" / "values.yaml").read_text())
    assert "apiKey" in values and "plan" in values["config"]
    assert "--set apiKey=cmk_... --set config.plan=basic" in README
