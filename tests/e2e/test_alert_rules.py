"""The shipped alert rules and example configs pass promtool/amtool, and every alert is documented.

Needs the Debian packages prometheus and prometheus-alertmanager (skipped without them, failed in CI).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.paths import ROOT, SITE_URL
from tests.support.prometheus import require_binary, run_prometheus

RULES = ROOT / "deploy" / "prometheus" / "callmeter-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "callmeter-rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
# The runbook is a page of the manual; the rules link to it on the published site (mkdocs.yml site_url),
# an address the Helm chart replaces with prometheusRule.runbookBaseUrl.
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = f"{SITE_URL}runbook/#"

SEVERITIES = {"critical", "warning", "info"}


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_rule_file_passes_promtool_check() -> None:
    _run(require_binary("promtool"), "check", "rules", str(RULES))


def test_rule_unit_tests_pass() -> None:
    _run(require_binary("promtool"), "test", "rules", str(RULE_TESTS))


def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    result = _run(require_binary("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert "callmeter-rules.yml" in result.stdout + result.stderr


def test_example_alertmanager_config_is_valid() -> None:
    _run(require_binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=CallMeterProbeUnhealthy", "severity=critical", "project=acme"], "callmeter-oncall"),
        (["alertname=CallMeterTestMOSLow", "severity=warning", "project=acme"], "callmeter-team"),
        (["alertname=SomethingElse", "severity=critical"], "default"),
    ],
)
def test_example_alertmanager_routes_callmeter_alerts_by_severity(labels: list[str], receiver: str) -> None:
    _run(
        require_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )


@pytest.fixture(scope="module")
def alerting_rules() -> Iterator[list[dict[str, Any]]]:
    """The alerting rules as Prometheus itself loads them (name, query, duration, labels, annotations)."""
    config = "global:\n  evaluation_interval: 1m\nrule_files:\n  - callmeter-rules.yml\n"
    with run_prometheus(config, files={"callmeter-rules.yml": RULES}) as prometheus:
        rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
    alerting = [rule for rule in rules if rule["type"] == "alerting"]
    assert alerting, "no alerting rule loaded"
    yield alerting


def test_alert_names_are_prefixed_and_unique(alerting_rules: list[dict[str, Any]]) -> None:
    names = [rule["name"] for rule in alerting_rules]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"CallMeter[A-Z][A-Za-z]+", name) for name in names), names


def test_every_alert_has_severity_summary_description_and_runbook(alerting_rules: list[dict[str, Any]]) -> None:
    for rule in alerting_rules:
        name = rule["name"]
        assert rule["labels"].get("severity") in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == RUNBOOK_URL + name.lower(), name


def test_descriptions_name_the_project_and_the_probe_test_or_exporter(
    alerting_rules: list[dict[str, Any]],
) -> None:
    for rule in alerting_rules:
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        query = rule["query"]
        if "callmeter_probe_" in query:
            wanted = ["$labels.project", "$labels.probe"]
        elif "callmeter_test_" in query:
            wanted = ["$labels.project", "$labels.test"]
        else:
            wanted = ["$labels.instance"]
        for label in wanted:
            assert label in text, f"{rule['name']} does not mention {label}"


def test_no_alert_uses_absent(alerting_rules: list[dict[str, Any]]) -> None:
    # absent() fires for a series that is missing, which is the one case these rules stay quiet on.
    assert not [rule["name"] for rule in alerting_rules if "absent" in rule["query"]]


def _github_anchor(heading: str) -> str:
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return anchor.replace(" ", "-")


def test_every_runbook_url_has_a_runbook_heading(alerting_rules: list[dict[str, Any]]) -> None:
    text = RUNBOOK.read_text()
    alert_headings = re.findall(r"^##+ (CallMeter\w+)\s*$", text, flags=re.MULTILINE)
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    for rule in alerting_rules:
        anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
        assert anchor in anchors, f"{rule['name']}: no heading with anchor #{anchor} in {RUNBOOK.name}"
    assert sorted(alert_headings) == sorted(rule["name"] for rule in alerting_rules)


def _unit_test_cases() -> list[tuple[str, bool]]:
    """(alertname, expects a firing alert) for every `alert_rule_test` entry of the unit tests."""
    cases = []
    for chunk in re.split(r"^\s*- (?=\{?eval_time:)", RULE_TESTS.read_text(), flags=re.MULTILINE)[1:]:
        match = re.search(r"alertname: (\w+)", chunk)
        assert match, chunk
        silent = re.search(r"exp_alerts: \[\]", chunk) is not None
        cases.append((match.group(1), not silent))
    return cases


def test_every_alert_has_firing_and_silent_unit_tests(alerting_rules: list[dict[str, Any]]) -> None:
    cases = _unit_test_cases()
    firing = {name for name, fires in cases if fires}
    silent = {name for name, fires in cases if not fires}
    names = {rule["name"] for rule in alerting_rules}
    assert names - firing == set(), "alerts without a firing unit test"
    assert names - silent == set(), "alerts without a silent unit test"
