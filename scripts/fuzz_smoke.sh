#!/usr/bin/env bash
# Coverage-guided fuzzing smoke run (docs/fuzzing.md): builds every cargo-fuzz target in fuzz/ once,
# then runs each for FUZZ_SECONDS (default 20) on its committed corpus, two at a time, and fails on
# any crash, timeout or out-of-memory. New inputs go to fuzz/target/smoke-corpus/, never into git.
#
# Stable Rust: no sanitizer (`--sanitizer none`), the sanitizer-coverage instrumentation only, in the
# dev profile (the build dominates a short run; a long campaign uses the release build, see the doc).
#   FUZZ_SECONDS=60 scripts/fuzz_smoke.sh            # longer
#   FUZZ_TARGETS="gateway_frame mentions" scripts/fuzz_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_JOBS=${FUZZ_JOBS:-2}

if ! cargo fuzz --version 2>/dev/null | grep -qF "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# fuzz/Cargo.lock is committed: fail if it would have to change (cargo fuzz has no --locked).
cargo fetch --locked --manifest-path fuzz/Cargo.toml

# Coverage instrumentation for the crates under test only (fuzz/rustc-wrapper.sh).
export RUSTC_WRAPPER="$PWD/fuzz/rustc-wrapper.sh"
build=(--dev --sanitizer none)
start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz build: $((SECONDS - start)) s"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
work=fuzz/target/smoke
rm -rf "$work"
mkdir -p "$work"

run() {
  local t=$1
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "fuzz/corpus/$t"
  # libFuzzer writes new inputs to the first directory only; the committed corpus is read.
  # `timeout` bounds the wall clock even if libFuzzer itself hangs.
  if timeout --kill-after=10 $((FUZZ_SECONDS + 120)) \
    cargo fuzz run "${build[@]}" "$t" "$work/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t/" >"$work/$t.log" 2>&1; then
    echo "ok   $t: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$work/$t.log" | grep -o '[0-9]*$') runs in ${FUZZ_SECONDS} s"
  else
    echo "FAIL $t (log: $work/$t.log, input: $(ls "$work/artifacts/$t/" 2>/dev/null | head -1))"
    grep -m1 -A30 -E "panicked|ERROR: libFuzzer|deadly signal|Timeout|out-of-memory" "$work/$t.log" | head -40 || true
    return 1
  fi
}

pass=0
fail=0
running=0
for t in $targets; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$FUZZ_JOBS" ]; then
    if wait -n; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  if wait -n; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
  running=$((running - 1))
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
