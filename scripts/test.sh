#!/usr/bin/env bash
# Runs the whole Chorus test suite on a fresh machine: installs what the tests need (Debian
# packages), starts the services they use (the MongoDB stand-in from ../shared, Redis), checks
# formatting and lints, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- system packages: pkg-config and libopus (the opus crate links the system library) for the media
# tests, redis-server.
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The web client's end-to-end tests drive Debian's Chromium with npm's playwright-core.
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The peer SFU the bench compares Chorus with (`chorus-bench compare`), and `ip` for its namespace.
command -v janus >/dev/null 2>&1 || need+=(janus)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# nftables, openssl, coturn and nginx for the network-namespace browser cases (web/tests/e2e/network.e2e.mjs,
# proxy.e2e.mjs).
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
# The call-quality browser case's camera (Y4M) and microphone (WAV) files (web/tests/e2e/callbed.mjs).
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
# The ACME test CA (pebble, pebble-challtestsrv) for the --acme-domain test.
command -v pebble >/dev/null 2>&1 || need+=(pebble)
# Instruction counts of the SFU's forwarding path (scripts/callgrind_check.sh).
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
# Emoji in screenshots (reactions, call buttons) instead of empty boxes.
fc-list 2>/dev/null | grep -qi "Noto Color Emoji" || need+=(fonts-noto-color-emoji)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- disk: a full test build takes ~10 GB of target/ (the fuzz and release builds more). A fresh clone
# gains nothing from incremental compilation, whose files are a sixth of that; report the space so a
# failure from a full disk says so at the top of the log.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
echo "disk: $(df -h . | awk 'NR==2 {print $4 " free of " $2}')"

# --- Redis (cluster-mode tests); start one if none answers.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /tmp/chorus-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/chorus-redis \
    --logfile /tmp/chorus-redis/redis.log || echo "warning: could not start redis-server"
fi

# --- services started here are stopped on exit.
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT

# --- MongoDB stand-in (the store conformance suite runs against it when the URI is set).
mongo_tools=../shared/tools/mongo-test-server
if [ -z "${CHORUS_TEST_MONGODB_URI:-}" ] && [ -x "$mongo_tools/start.sh" ]; then
  CHORUS_TEST_MONGODB_URI=$("$mongo_tools/start.sh")
  export CHORUS_TEST_MONGODB_URI
  cleanup+=('"$mongo_tools/stop.sh"')
  echo "MongoDB stand-in at $CHORUS_TEST_MONGODB_URI"
elif [ -z "${CHORUS_TEST_MONGODB_URI:-}" ]; then
  echo "note: ../shared/tools/mongo-test-server not found and CHORUS_TEST_MONGODB_URI unset: MongoDB conformance will be SKIPPED"
fi

# --- S3-compatible storage for the attachment tests: moto's S3 server (PyPI; no MinIO is packaged
# here), pinned in scripts/moto_requirements.txt, in a venv reused while that file is unchanged.
if [ -z "${CHORUS_TEST_S3_URI:-}" ]; then
  moto_venv=target/moto-venv
  if ! cmp -s scripts/moto_requirements.txt "$moto_venv/requirements.txt" 2>/dev/null; then
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q -r scripts/moto_requirements.txt
    cp scripts/moto_requirements.txt "$moto_venv/requirements.txt"
  fi
  s3_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >target/moto.log 2>&1 &
  cleanup+=("kill $! 2>/dev/null")
  for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.2; done
  curl -fs -o /dev/null -X PUT "http://127.0.0.1:$s3_port/chorus-test"
  export CHORUS_TEST_S3_URI="s3://chorus-test?endpoint=http://127.0.0.1:$s3_port&region=us-east-1&allow_http=true"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  echo "S3 (moto) at 127.0.0.1:$s3_port"
fi

# --- the web client's npm dependencies (playwright-core only; it never downloads a browser).
(cd web && npm ci --no-audit --no-fund --loglevel=error)

cargo fmt --all -- --check
# The OpenAPI document lists exactly the routes the routers serve.
python3 scripts/check_openapi.py
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# --- the forwarding path's instruction counts (valgrind callgrind) against sfu/callgrind-baseline.txt: a
# change that makes forwarding cost more instructions per packet than the tolerance fails here (~30 s).
./scripts/callgrind_check.sh

# --- coverage-guided fuzzing: every cargo-fuzz target in fuzz/ for 20 s on its committed corpus (docs/fuzzing.md).
./scripts/fuzz_smoke.sh

# --- deploy/: Prometheus config, alert rules and their unit tests, the Grafana dashboard (check.sh installs
# Debian's prometheus for promtool if it is missing).
./deploy/check.sh

# --- chorus-bench cannot rot: a few seconds of each scenario against the real binary.
cargo build --locked --bin chorus
# --- OpenAPI fuzzing: schemathesis against the real binary, every operation, ~2.5 minutes (docs/fuzzing.md).
scripts/fuzz_openapi.sh
cargo build --locked -p chorus-bench --bin chorus-bench
target/debug/chorus-bench smoke --spawn target/debug/chorus
# ... and one minute of the soak (chat + voice with joins and leaves; fails when RSS or descriptors keep growing).
target/debug/chorus-bench soak --spawn target/debug/chorus --duration 60 --interval 5 --warmup 20
# ... and its Janus client: one small side-by-side round in a network namespace of its own.
as_root target/debug/chorus-bench compare --spawn target/debug/chorus --rooms 1 --participants 3 --talkers 2 --duration 3

# --- the web client: unit tests of the pure modules, then end to end in headless Chromium against
# the real binary (screenshots land in target/screenshots).
node --test web/tests/unit/*.test.js
CHORUS_BIN="$PWD/target/debug/chorus" node --test --test-concurrency=1 web/tests/e2e/*.e2e.mjs
