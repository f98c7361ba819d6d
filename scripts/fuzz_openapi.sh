#!/usr/bin/env bash
# OpenAPI fuzzing: schemathesis against the real `chorus` binary's /api/openapi.json, every operation,
# as an authenticated user, bounded in time. Fails on any 5xx, on any response whose status code, content
# type or body the document does not describe, on any 4xx/5xx that is not the contract's {code, message}
# JSON, on a server panic or crash, and when the fuzzing token or the main guild did not survive the run.
# See docs/fuzzing.md, "OpenAPI fuzzing (schemathesis)".
#
# Installs its own pinned schemathesis (scripts/fuzz_openapi_requirements.txt) into a venv, reused while
# that file is unchanged; starts the binary on a free port with a throw-away data dir and no rate limits;
# seeds it over REST and writes schemathesis's config (scripts/fuzz_openapi_setup.py); runs schemathesis
# with the checks and known-defect filters of scripts/fuzz_openapi_hooks.py; stops the server whatever
# happens. Needs python3 (3.11) with venv and pip, and PyPI.
#
# Environment:
#   CHORUS_BIN           binary to test                        [target/debug/chorus]
#   FUZZ_SECONDS         schemathesis time budget, seconds     [150]
#   FUZZ_MAX_EXAMPLES    cap on test cases per operation and phase (unset: schemathesis's default)
#   FUZZ_WORKERS         concurrent schemathesis workers       [1: CPython 3.11 before 3.11.8 can fail
#                        "AST constructor recursion depth mismatch" in hypothesis with several threads]
#   FUZZ_SEED            random seed, to replay a run          [random; printed]
#   FUZZ_VENV            venv directory                        [target/schemathesis-venv]
#   FUZZ_REPORT_DIR      JUnit report, server log, config      [target/fuzz-openapi]
#   FUZZ_NO_KNOWN=1      also fail on the known defects that scripts/fuzz_openapi_hooks.py accepts
# Usage: scripts/fuzz_openapi.sh [extra schemathesis run arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SCHEMATHESIS_VERSION=4.32.5
bin=${CHORUS_BIN:-target/debug/chorus}
seconds=${FUZZ_SECONDS:-150}
workers=${FUZZ_WORKERS:-1}
venv=${FUZZ_VENV:-target/schemathesis-venv}
report_dir=${FUZZ_REPORT_DIR:-target/fuzz-openapi}
seed=${FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
python=${PYTHON:-python3}

[ -x "$bin" ] || { echo "fuzz_openapi: $bin is not built (cargo build --locked --bin chorus)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# --- the pinned schemathesis (and its pinned dependencies) in a venv of its own (target/ is gitignored);
# reinstalled whenever scripts/fuzz_openapi_requirements.txt changes.
requirements=scripts/fuzz_openapi_requirements.txt
stamp=$(sha256sum "$requirements" | cut -c1-16)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ] || ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "fuzz_openapi: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" >"$venv/.requirements"
fi
"$venv/bin/schemathesis" --version | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION" \
  || { echo "fuzz_openapi: $requirements does not pin schemathesis $SCHEMATHESIS_VERSION" >&2; exit 2; }

# --- the server: a free port, a temporary data dir (its cwd too, so no chorus.toml is picked up).
mkdir -p "$report_dir"
report_dir=$(cd "$report_dir" && pwd)
work=$(mktemp -d /tmp/chorus-fuzz.XXXXXX)
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
udp=$("$python" -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
log="$report_dir/server.log"
server_pid=
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$work" && NO_COLOR=1 exec "$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" --no-rate-limits true \
  --udp-port-base "$udp" --rtc-tcp-port 0 --sfu-workers 1 --log "${FUZZ_SERVER_LOG:-info}") >"$log" 2>&1 &
server_pid=$!
ready() { "$python" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/readyz" 2>/dev/null; }
for _ in $(seq 300); do
  ready && break
  kill -0 "$server_pid" 2>/dev/null || { echo "fuzz_openapi: chorus exited at start:" >&2; tail -n 40 "$log" >&2; exit 1; }
  sleep 0.1
done
ready || { echo "fuzz_openapi: chorus not ready after 30 s" >&2; tail -n 40 "$log" >&2; exit 1; }

# --- seed data and write schemathesis's config (auth header, id dictionaries, known-defect hooks).
FUZZ_CACHE_DIR="$report_dir/cache" "$python" scripts/fuzz_openapi_setup.py "$base" "$work" "$root/scripts/fuzz_openapi_hooks.py"
cp "$work/schemathesis.toml" "$report_dir/schemathesis.toml"

# --- the run. `timeout` guards CI against anything that would outlive the budget.
args=(
  run "$base/api/openapi.json"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,error_bodies_are_json
  --phases examples,coverage,fuzzing
  --max-time "$seconds"
  --workers "$workers"
  --seed "$seed"
  --request-timeout 20
  --generation-database none
  --suppress-health-check too_slow,filter_too_much
  --continue-on-failure
  --no-color
  --report junit --report-junit-path "$report_dir/junit.xml"
)
[ -n "${FUZZ_MAX_EXAMPLES:-}" ] && args+=(--max-examples "$FUZZ_MAX_EXAMPLES")
echo "fuzz_openapi: schemathesis $SCHEMATHESIS_VERSION against $base, budget ${seconds}s, seed $seed"
start=$(date +%s)
status=0
HYPOTHESIS_STORAGE_DIRECTORY="$report_dir/hypothesis" timeout --kill-after=15 $((seconds + 240)) \
  "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" "${args[@]}" "$@" || status=$?
echo "fuzz_openapi: schemathesis finished in $(( $(date +%s) - start ))s with status $status (seed $seed)"

# A crash of the server is a failure even when schemathesis did not see it; so is a run whose token or
# main guild did not survive (everything after that was a 401 or 404).
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz_openapi: chorus died during the run" >&2
  status=1
elif ! "$python" scripts/fuzz_openapi_setup.py --check "$base" "$work"; then
  status=1
fi
if grep -q 'panicked' "$log"; then
  echo "fuzz_openapi: the server panicked" >&2
  status=1
fi
if grep -qE 'ERROR|panicked' "$log"; then
  echo "fuzz_openapi: the server logged errors (all in $log):" >&2
  grep -E 'ERROR|panicked' "$log" | head -n 20 >&2
fi
[ "$status" = 124 ] && echo "fuzz_openapi: schemathesis overran its time budget and was stopped" >&2
exit "$status"
