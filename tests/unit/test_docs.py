"""The manual (mkdocs.yml, docs/) agrees with the code: generated parts are current, the site builds with
--strict, and the hand-written pages name what the code has (gate options, exit codes, webhook results,
alert runbooks, repository paths).

Without MkDocs the build test skips, except in CI (tests/support/ci.py), where it fails: `.ci/run` installs `.[docs]`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from exporter import __version__
from exporter.settings import Settings, env_name
from tests.support.ci import unavailable
from tests.support.published import FAMILIES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GENERATED = DOCS / "generated"
RULES = ROOT / "deploy" / "prometheus" / "callmeter-rules.yml"
MKDOCS = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
SITE_URL: str = MKDOCS["site_url"]
PATH = re.compile(r"`((?:exporter|tests|deploy|grafana|benchmarks|docs|\.ci)/[\w./-]*\w)`")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def pages() -> dict[str, str]:
    """Every hand-written page, by its path under docs/."""
    return {str(p.relative_to(DOCS)): p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md"))
            if GENERATED not in p.parents}


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=240)


# -- generated parts ------------------------------------------------------------------------------------

def test_generated_tables_match_the_code() -> None:
    result = run("docs/generate.py", "--check")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_dashboard_pictures_match_the_dashboards() -> None:
    result = run("docs/render_dashboards.py", "--check")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_every_generated_file_is_included_by_a_page() -> None:
    text = "".join(pages().values())
    for path in GENERATED.glob("*.md"):
        assert f'--8<-- "{path.name}"' in text, f"no page includes docs/generated/{path.name}"


def test_every_setting_is_in_the_settings_table_with_its_flag() -> None:
    table = (GENERATED / "settings.md").read_text()
    for name in Settings.model_fields:
        row = next((line for line in table.splitlines() if f"`{env_name(name)}`" in line), None)
        assert row is not None, name
        assert f"`--{name.replace('_', '-')}`" in row, name


def test_every_published_family_is_in_the_metrics_reference() -> None:
    text = "".join(p.read_text() for p in GENERATED.glob("metrics-*.md"))
    for family in [*FAMILIES, "callmeter_exporter_api_errors", "callmeter_exporter_rate_limit_remaining",
                   "callmeter_exporter_observation_delay_seconds", "callmeter_exporter_webhook_deliveries"]:
        assert f"`{family}`" in text or f"`{family}_total`" in text, family


# -- the site -------------------------------------------------------------------------------------------

def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        unavailable("mkdocs-material is not installed (pip install -e '.[docs]'; .ci/run installs '.[test,docs]')")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    runbook = (site / "runbook" / "index.html").read_text()
    for alert in _alerts():
        assert f'id="{alert.lower()}"' in runbook, f"the built runbook has no section #{alert.lower()}"


def test_every_page_is_in_the_nav() -> None:
    def walk(items: list[object]) -> list[str]:
        found: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += walk(value) if isinstance(value, list) else [str(value)]
        return found

    assert sorted(walk(MKDOCS["nav"])) == sorted(pages())


def test_paths_named_in_the_docs_exist() -> None:
    for name, text in pages().items():
        for path in PATH.findall(text):
            assert (ROOT / path).exists(), f"docs/{name} names {path}, which does not exist"


# -- hand-written pages that must follow the code -------------------------------------------------------

def test_the_gate_page_names_every_option_and_exit_code() -> None:
    from exporter.gate.judge import EXIT_NAMES
    from exporter.gate.options import build_parser

    text = page("gate.md")
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in ("--help", "--version"):
                setting = f"CALLMETER_{flag[2:].replace('-', '_').upper()}"
                assert f"`{flag}" in text or setting in (GENERATED / "settings.md").read_text(), flag
    exits = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| (\d) \|", exits, re.MULTILINE) == [str(code) for code in sorted(EXIT_NAMES)]
    assert "callmeter_gate_passed" in text and "## GitHub Actions" in text and "## GitLab CI" in text


def test_the_webhooks_page_names_every_result_and_header() -> None:
    from exporter.webhooks.metrics import RESULTS

    text = page("webhooks.md")
    for result in RESULTS:
        assert f"`{result}`" in text, result
    defaults = Settings.model_fields
    for header in (defaults["webhook_signature_header"].default, defaults["webhook_timestamp_header"].default,
                   "new_status", "current_status", "CALLMETER_WEBHOOK_LISTEN_ADDRESS"):
        assert header in text, header


def _alerts() -> dict[str, dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_every_alert_links_to_its_own_runbook_section() -> None:
    headings = re.findall(r"^## (CallMeter\w+)$", page("runbook.md"), re.MULTILINE)
    alerts = _alerts()
    assert sorted(headings) == sorted(alerts)
    for name, rule in alerts.items():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook_url"] == f"{SITE_URL}runbook/#{name.lower()}", name


def test_the_chart_default_runbook_base_is_the_site() -> None:
    values = yaml.safe_load((ROOT / "deploy/helm/callmeter-exporter/values.yaml").read_text())
    assert values["prometheusRule"]["runbookBaseUrl"].rstrip("/") + "/" == SITE_URL


def test_license_and_changelog() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    debian = Path("/usr/share/common-licenses/Apache-2.0")
    if debian.exists():
        assert license_text == debian.read_text()
    assert __version__ in (ROOT / "CHANGELOG.md").read_text()
