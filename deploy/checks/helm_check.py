"""Lint and render the Helm chart with Helm's own code, without a helm binary or a cluster.

Run by deploy/checks/run.sh in a Python 3.12 venv holding helm-sdkpy, helm-python-sdk and PyYAML:

    python deploy/checks/helm_check.py REPO_ROOT

Two libraries, because neither does it all:
- helm-sdkpy wraps Helm's lint, but takes no values and reports lint errors without their text. Each
  values file is linted by linting a copy of the chart whose values.yaml is the file merged over the
  defaults (Helm's own merge, from helm-python-sdk), which is what `helm lint -f FILE` checks.
- helm-python-sdk lints with values (error text included), renders offline (`helm template`) and
  packages, so the rendered objects and the packaged archive can be checked.

Any lint error, any failed render and any failed assertion on the rendered objects exits non-zero.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import helm_python
import helm_sdkpy
import yaml

CHART = Path("deploy/helm/callmeter-exporter")
RULES = Path("deploy/prometheus/callmeter-rules.yml")
DASHBOARDS = Path("grafana/dashboards")
# Where the rules file's runbook links start; the chart replaces it with prometheusRule.runbookBaseUrl.
RUNBOOK_PLACEHOLDER = "https://callmeter.github.io/callmeter-exporter/runbook/#"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


class CheckFailed(Exception):
    pass


def clip(text: str, limit: int = 400) -> str:
    """Helm quotes whole templates in some errors; keep the head and the tail."""
    text = text.strip().replace("\n", " | ")
    return text if len(text) <= limit else f"{text[: limit // 2]} [...] {text[-limit // 2 :]}"


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def lint_sdkpy(chart_dir: Path) -> list[str]:
    """Helm's lint through helm-sdkpy; returns one line per error."""
    config = helm_sdkpy.Configuration(namespace="default")
    result = asyncio.run(helm_sdkpy.Lint(config).run(str(chart_dir)))
    for message in result.get("Messages") or []:
        print(f"    helm-sdkpy  {SEVERITY.get(message.get('Severity'), '?'):7} {message.get('Path')}")
    errors = result.get("Errors") or []
    return [
        f"helm-sdkpy lint error {i + 1} (helm-sdkpy gives no text; see helm-python-sdk)" for i in range(len(errors))
    ]


def lint_python_sdk(chart_dir: Path, values: dict[str, Any] | None) -> list[str]:
    """Helm's lint through helm-python-sdk, values applied; returns one line per error."""
    result = helm_python.lint(str(chart_dir), values)
    for message in result.get("messages") or []:
        print(
            f"    helm-python-sdk {SEVERITY.get(message.get('severity'), '?'):7} "
            f"{message.get('path')}: {clip(str(message.get('error', '')))}"
        )
    return [clip(str(e)) for e in result.get("errors") or []]


def merged_copy(chart_dir: Path, merged: dict[str, Any], into: Path) -> Path:
    """A copy of the chart, symlinks resolved, whose values.yaml is `merged`."""
    target = into / chart_dir.name
    shutil.copytree(chart_dir, target, symlinks=False)
    (target / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    return target


def render(chart_dir: Path, values: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]]:
    with helm_python.Chart.load(str(chart_dir)) as chart:
        manifests = chart.render(values, name="cm", namespace="monitoring", is_install=True)
    text = "\n---\n".join(body for name, body in sorted(manifests.items()) if not name.endswith("NOTES.txt"))
    docs = [d for d in yaml.safe_load_all(text) if d]
    return text, docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def check_objects(repo: Path, values: dict[str, Any], text: str, docs: list[dict[str, Any]]) -> None:
    """Assert what the chart promises, for the merged `values`."""
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    expect(spec["replicas"] == 1, "Deployment must run exactly one replica")
    expect(spec["strategy"]["type"] == "Recreate", "Deployment strategy must be Recreate")
    pod = spec["template"]["spec"]
    expect(pod.get("automountServiceAccountToken") is False, "the pod must not mount a token")
    psc = pod["securityContext"]
    expect(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, "pod must run as 65532")
    expect(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    (container,) = pod["containers"]
    csc = container["securityContext"]
    expect(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    expect(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities drop ALL")
    expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness on /healthz")
    expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness on /readyz")
    hooks = values["webhooks"]
    own_port = hooks["enabled"] and hooks.get("port") is not None
    expect(
        [(p["name"], p["containerPort"]) for p in container["ports"]]
        == [("http-metrics", 10190), *([("http-webhooks", hooks.get("port"))] if own_port else [])],
        "container port http-metrics 10190 (and http-webhooks when the receiver has its own)",
    )
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    expect("CALLMETER_API_KEY" not in env, "the key must come from a file, never an env var")
    expect(env.get("CALLMETER_PLAN") == values["config"]["plan"], "CALLMETER_PLAN from config.plan")
    if values["config"]["projects"]:
        expect(env.get("CALLMETER_PROJECTS") == ",".join(values["config"]["projects"]), "CALLMETER_PROJECTS")
    annotations = spec["template"]["metadata"].get("annotations") or {}
    expect(
        not any("key" in k or "secret" in k for k in annotations if k.startswith("checksum/")),
        "no checksum annotation on the key Secret: a rotated key must not restart the pod",
    )

    secrets = [d for d in docs if d.get("kind") == "Secret"]
    key_secrets = [s for s in secrets if "api-key" in (s.get("data") or {})]
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    existing = values["existingSecret"]["name"]
    if values["demo"]:
        expect("--demo" in container.get("args", []), "demo: --demo passed")
        expect("CALLMETER_API_KEY_FILE" not in env and not key_secrets, "demo: no key at all")
    elif existing or values["apiKey"]:
        secret_name = volumes["api-key"]["secret"]["secretName"]
        item = volumes["api-key"]["secret"]["items"][0]
        expect("subPath" not in mounts["api-key"], "the key mount must not use subPath (no updates)")
        expect(
            env.get("CALLMETER_API_KEY_FILE") == f"{mounts['api-key']['mountPath']}/{item['path']}",
            "CALLMETER_API_KEY_FILE points at the mounted key",
        )
        if existing:
            expect(
                secret_name == existing and item["key"] == values["existingSecret"]["key"],
                "existingSecret name and key used",
            )
            expect(not key_secrets, "existingSecret: the chart makes no key Secret")
        else:
            expect(
                len(key_secrets) == 1 and key_secrets[0]["metadata"]["name"] == secret_name,
                "apiKey: the chart makes the key Secret the pod mounts",
            )
            stored = base64.b64decode(key_secrets[0]["data"]["api-key"]).decode()
            expect(stored == values["apiKey"], "apiKey stored as is")
    if values["webConfig"]["enabled"]:
        expect(
            env.get("CALLMETER_WEB_CONFIG_FILE", "").startswith(mounts["web-config"]["mountPath"]),
            "CALLMETER_WEB_CONFIG_FILE points into the web-config mount",
        )

    check_state(values, pod, container, docs)

    service = one(docs, "Service")
    expect(
        [p["name"] for p in service["spec"]["ports"]] == ["http-metrics", *(["http-webhooks"] if own_port else [])],
        "Service port http-metrics (and http-webhooks)",
    )
    check_webhooks(values, docs, env, mounts, volumes)
    check_network_policy(values, docs, deployment, container)

    monitors = [d for d in docs if d.get("kind") == "ServiceMonitor"]
    expect(len(monitors) == int(values["serviceMonitor"]["enabled"]), "ServiceMonitor iff enabled")
    for monitor in monitors:
        expect(monitor["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
        (endpoint,) = monitor["spec"]["endpoints"]
        expect(endpoint["port"] == "http-metrics", "ServiceMonitor scrapes port http-metrics")
        expect(endpoint["interval"] == values["serviceMonitor"]["interval"], "ServiceMonitor interval")
        labels = monitor["metadata"]["labels"]
        expect(
            all(labels.get(k) == v for k, v in values["serviceMonitor"]["labels"].items()),
            "ServiceMonitor carries serviceMonitor.labels",
        )

    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    expect(len(rules) == int(values["prometheusRule"]["enabled"]), "PrometheusRule iff enabled")
    for rule in rules:
        canonical_text = (repo / RULES).read_text()
        runbook = values["prometheusRule"]["runbookBaseUrl"].rstrip("/") + "/runbook/#"
        expect(RUNBOOK_PLACEHOLDER in canonical_text, f"{RULES} has no runbook link starting {RUNBOOK_PLACEHOLDER}")
        canonical = yaml.safe_load(canonical_text.replace(RUNBOOK_PLACEHOLDER, runbook))
        expect(rule["spec"]["groups"] == canonical["groups"],
               f"PrometheusRule groups differ from {RULES} with its runbook links moved to {runbook}")
        links = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
        expect(all(link.startswith(runbook) for link in links), f"every runbook_url starts with {runbook}")
        for template in ("{{ $value", "{{ $labels."):
            if template in canonical_text:
                expect(template in text, f"PrometheusRule lost the Prometheus template {template} }}}}")
        print(
            f"    PrometheusRule: {len(canonical['groups'])} groups, "
            f"{sum(len(g['rules']) for g in canonical['groups'])} rules equal to {RULES}; "
            f"Prometheus templates intact; runbook links at {runbook}"
        )

    maps = [
        d
        for d in docs
        if d.get("kind") == "ConfigMap"
        and (d["metadata"].get("labels") or {}).get(values["dashboards"]["label"]) == values["dashboards"]["labelValue"]
    ]
    canonical_dashboards = sorted((repo / DASHBOARDS).glob("*.json"))
    if not values["dashboards"]["enabled"]:
        expect(not maps, "no dashboard ConfigMaps when dashboards.enabled is false")
    else:
        expect(canonical_dashboards, f"no dashboards in {DASHBOARDS}")
        data = {k: v for m in maps for k, v in m["data"].items()}
        expect(
            sorted(data) == [p.name for p in canonical_dashboards],
            f"dashboard ConfigMaps {sorted(data)} != {DASHBOARDS}/*.json",
        )
        for path in canonical_dashboards:
            expect(
                json.loads(data[path.name]) == json.loads(path.read_text()),
                f"ConfigMap copy of {path.name} differs from {path}",
            )
        print(f"    dashboards: {len(maps)} ConfigMaps equal to {DASHBOARDS}/*.json")


def check_state(
    values: dict[str, Any], pod: dict[str, Any], container: dict[str, Any], docs: list[dict[str, Any]]
) -> None:
    """The state file: on its volume (emptyDir or a claim), writable by 65532, never in demo mode."""
    state = values["state"]
    persistence = state["persistence"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = [d for d in docs if d.get("kind") == "PersistentVolumeClaim"]
    if not state["enabled"] or values["demo"]:
        expect("CALLMETER_STATE_FILE" not in env, "no state file when state.enabled is false or in demo mode")
        expect("state" not in mounts and "state" not in volumes and not claims, "no state volume")
        print("    state: none")
        return
    mount = mounts["state"]
    expect(mount["mountPath"] == state["mountPath"] and not mount.get("readOnly"), "state volume mounted writable")
    expect(
        env.get("CALLMETER_STATE_FILE") == f"{state['mountPath']}/{state['fileName']}",
        "CALLMETER_STATE_FILE names a file inside the state volume",
    )
    psc = pod["securityContext"]
    expect(psc.get("fsGroup") == 65532, "fsGroup 65532, so the non-root user can write the state volume")
    volume = volumes["state"]
    if not persistence["enabled"]:
        expect("emptyDir" in volume and isinstance(volume["emptyDir"], dict), "state on an emptyDir by default")
        expect(not claims, "an emptyDir needs no claim")
        print(f"    state: emptyDir {volume['emptyDir']}")
        return
    claim_name = volume["persistentVolumeClaim"]["claimName"]
    if persistence["existingClaim"]:
        expect(claim_name == persistence["existingClaim"] and not claims, "existingClaim used, no claim made")
        print(f"    state: existing claim {claim_name}")
        return
    (claim,) = claims
    spec = claim["spec"]
    expect(claim["metadata"]["name"] == claim_name, "the pod mounts the claim the chart makes")
    expect(spec["accessModes"] == persistence["accessModes"], "claim accessModes")
    expect(spec["resources"]["requests"]["storage"] == persistence["size"], "claim size")
    storage_class = persistence["storageClass"]
    if storage_class:
        expect(spec.get("storageClassName") == ("" if storage_class == "-" else storage_class), "storageClassName")
    else:
        expect("storageClassName" not in spec, "no storageClassName: the cluster default")
    expect((claim["metadata"].get("annotations") or {}) == persistence["annotations"], "claim annotations as given")
    print(f"    state: claim {claim_name} {spec['accessModes']} {persistence['size']}")


def check_webhooks(
    values: dict[str, Any],
    docs: list[dict[str, Any]],
    env: dict[str, Any],
    mounts: dict[str, Any],
    volumes: dict[str, Any],
) -> None:
    """The receiver: secrets from a mounted file, its own port, and an Ingress of its path alone."""
    hooks = values["webhooks"]
    ingresses = [d for d in docs if d.get("kind") == "Ingress"]
    hook_secrets = [d for d in docs if d.get("kind") == "Secret" and "webhook-secrets" in (d.get("data") or {})]
    if not hooks["enabled"]:
        expect(not any(k.startswith("CALLMETER_WEBHOOK") for k in env), "webhooks off: no CALLMETER_WEBHOOK_*")
        expect(not ingresses and not hook_secrets, "webhooks off: no Ingress, no webhook Secret")
        return
    item = volumes["webhook-secrets"]["secret"]["items"][0]
    expect("subPath" not in mounts["webhook-secrets"], "the webhook secrets mount must not use subPath")
    expect(
        env.get("CALLMETER_WEBHOOK_SECRET_FILE") == f"{mounts['webhook-secrets']['mountPath']}/{item['path']}",
        "CALLMETER_WEBHOOK_SECRET_FILE points at the mounted secrets",
    )
    expect("CALLMETER_WEBHOOK_SECRET" not in env, "webhook secrets come from a file, never an env var")
    expect(env.get("CALLMETER_WEBHOOK_PATH") == hooks["path"], "CALLMETER_WEBHOOK_PATH from webhooks.path")
    if hooks.get("port") is not None:
        expect(env.get("CALLMETER_WEBHOOK_LISTEN_ADDRESS") == f":{hooks.get('port')}", "the receiver's own address")
    if hooks["existingSecret"]["name"]:
        expect(not hook_secrets, "webhooks.existingSecret: the chart makes no webhook Secret")
        expect(item["key"] == hooks["existingSecret"]["key"], "webhooks.existingSecret key used")
    else:
        stored = base64.b64decode(hook_secrets[0]["data"]["webhook-secrets"]).decode()
        expect(stored.splitlines() == hooks["secrets"], "webhooks.secrets stored one a line")
    expect(len(ingresses) == int(hooks["ingress"]["enabled"]), "webhook Ingress iff enabled")
    for ingress in ingresses:
        (rule,) = ingress["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        port = "http-webhooks" if hooks.get("port") is not None else "http-metrics"
        expect(
            path["path"] == hooks["path"] and path["pathType"] == "Exact"
            and path["backend"]["service"]["port"]["name"] == port,
            "the Ingress routes the webhook path alone, to the receiver's port",
        )
    print(f"    webhooks: secrets file, {'own port' if hooks.get('port') is not None else 'metrics port'}, "
          f"{len(ingresses)} Ingress")


# A rule's sources: None when the rule has no "from" (any source), else its peers.
Sources = list[dict[str, Any]] | None


def open_to(policy: dict[str, Any], port: int) -> Sources:
    """Who the policy lets in on a TCP `port`: the peers of every rule naming it (None: anyone)."""
    peers: list[dict[str, Any]] = []
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
            continue
        if not rule.get("from"):
            return None  # a rule without "from" admits any source, whatever the other rules say
        peers += rule["from"]
    return peers


def check_network_policy(
    values: dict[str, Any], docs: list[dict[str, Any]], deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    """The NetworkPolicy: the exporter's pods, ingress only, the metrics port to metricsFrom alone."""
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    settings = values["networkPolicy"]
    expect(len(policies) == int(settings["enabled"]), "NetworkPolicy iff networkPolicy.enabled")
    if not policies:
        return
    (policy,) = policies
    spec = policy["spec"]
    expect(policy["apiVersion"] == "networking.k8s.io/v1", "NetworkPolicy apiVersion networking.k8s.io/v1")
    expect(policy["metadata"]["namespace"] == deployment["metadata"]["namespace"], "NetworkPolicy beside the pod")
    selector = spec["podSelector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    expect(
        set(selector) == {"matchLabels"} and selector["matchLabels"]
        and selector["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        and all(pod_labels.get(k) == v for k, v in selector["matchLabels"].items()),
        "the NetworkPolicy selects the exporter's pods by the Deployment's selector labels",
    )
    expect(spec["policyTypes"] == ["Ingress"] and "egress" not in spec,
           "ingress only: the exporter must still reach the CallMeter API and DNS")

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    metrics_port = ports["http-metrics"]
    hooks_port = ports.get("http-webhooks")
    rules = spec.get("ingress") or []
    for rule in rules:
        expect(rule.get("ports"), "every rule names its ports (a rule without ports opens them all)")
        for entry in rule["ports"]:
            expect(isinstance(entry.get("port"), int) and "endPort" not in entry, f"one numbered port: {entry}")
    opened = sorted({p["port"] for rule in rules for p in rule["ports"]})
    expect(opened == sorted(p for p in (metrics_port, hooks_port) if p is not None),
           f"the policy opens exactly the exporter's ports, not {opened}")
    metrics_peers = open_to(policy, metrics_port)
    expect(metrics_peers is not None and metrics_peers == settings["metricsFrom"] and metrics_peers,
           f"port {metrics_port} (/metrics) open to networkPolicy.metricsFrom alone, not {metrics_peers}")
    if hooks_port is not None:
        wanted = settings["webhooksFrom"] or None
        expect(open_to(policy, hooks_port) == wanted,
               f"webhook port {hooks_port} open to {'networkPolicy.webhooksFrom' if wanted else 'any source'}")
        print(f"    networkPolicy: {metrics_port} from {len(metrics_peers)} peer(s), webhook port {hooks_port} from "
              f"{f'{len(wanted)} peer(s)' if wanted else 'anywhere'}")
    else:
        print(f"    networkPolicy: {metrics_port} from {len(metrics_peers)} peer(s); no webhook port of its own")


def check_package(repo: Path, chart_dir: Path, workdir: Path) -> None:
    """`helm package` must carry the canonical rules and dashboards, not dangling links."""
    archive = Path(helm_python.package(str(chart_dir), destination=str(workdir)))
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        prefix = f"{chart_dir.name}/files/"
        rules = members.get(prefix + "callmeter-rules.yml")
        expect(rules is not None and rules.isfile(), "packaged chart lacks files/callmeter-rules.yml")
        expect(
            tar.extractfile(rules).read() == (repo / RULES).read_bytes(),  # type: ignore[union-attr]
            "packaged rules differ from the canonical file",
        )
        for path in sorted((repo / DASHBOARDS).glob("*.json")):
            member = members.get(prefix + "dashboards/" + path.name)
            expect(member is not None and member.isfile(), f"packaged chart lacks {path.name}")
            expect(
                tar.extractfile(member).read() == path.read_bytes(),  # type: ignore[union-attr]
                f"packaged {path.name} differs from the canonical file",
            )
    print(f"    helm package: {archive.name} holds the canonical rules and dashboards")


def main(repo: Path) -> int:
    chart_dir = repo / CHART
    values_files = [chart_dir / "values.yaml", *sorted((chart_dir / "ci").glob("*.yaml"))]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="helm-check-") as tmp:
        workdir = Path(tmp)
        cases = []
        try:
            with helm_python.Chart.load(str(chart_dir)) as chart:
                for path in values_files:
                    user = None if path.name == "values.yaml" else (yaml.safe_load(path.read_text()) or {})
                    cases.append((path, user, chart.merge_values(user)))
        except helm_python.HelmError as exc:
            print(f"helm checks FAILED: the chart does not load: {exc}")
            return 1
        for index, (path, user, merged) in enumerate(cases):
            label = path.relative_to(repo)
            print(f"  == {label}")
            try:
                errors = lint_python_sdk(chart_dir, user)
                target = chart_dir if user is None else merged_copy(chart_dir, merged, workdir / str(index))
                errors += lint_sdkpy(target)
                if errors:
                    raise CheckFailed("; ".join(errors))
                text, docs = render(chart_dir, user)
                print(f"    rendered: {', '.join(sorted(d['kind'] for d in docs))}")
                check_objects(repo, merged, text, docs)
                print("    ok")
            except (CheckFailed, helm_python.HelmError, helm_sdkpy.HelmError, KeyError) as exc:
                print(f"    FAIL: {type(exc).__name__}: {clip(str(exc))}")
                failures.append(f"{label}: {clip(str(exc))}")

        print("  == a misspelt value must be rejected by values.schema.json")
        typo = {"servicemonitor": {"enabled": True}}
        errors = lint_python_sdk(chart_dir, typo)
        if not any("servicemonitor" in e for e in errors):
            failures.append("a misspelt top-level key passed the lint")
        else:
            print("    ok (rejected)")

        print("  == networkPolicy.enabled without metricsFrom must fail, never shut Prometheus out silently")
        try:
            render(chart_dir, {"networkPolicy": {"enabled": True}})
            failures.append("networkPolicy.enabled without metricsFrom rendered")
        except helm_python.HelmError as exc:
            if "networkPolicy.metricsFrom" in str(exc) and "monitoring" in str(exc):
                print("    ok (failed with the example)")
            else:
                failures.append(f"networkPolicy without metricsFrom failed without its message: {clip(str(exc))}")

        print("  == helm package")
        try:
            check_package(repo, chart_dir, workdir)
        except (CheckFailed, helm_python.HelmError) as exc:
            print(f"    FAIL: {exc}")
            failures.append(f"package: {exc}")

    if failures:
        print("helm checks FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"helm checks passed ({len(values_files)} values files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path.cwd()))
