#!/usr/bin/env bash
# Instruction counts of the SFU's forwarding path under valgrind's callgrind, checked against the
# committed baseline (sfu/callgrind-baseline.txt). Counts are deterministic for the same binary and
# input (unlike time on these shared machines), so a change that makes forwarding cost more fails
# here. The binary is sfu/examples/forward_count.rs in the dev profile (what CI builds anyway):
# the counts guard against regressions; docs/benchmarks.md also records release-profile counts.
#
#   scripts/callgrind_check.sh             # check (fails outside baseline × (1 ± tolerance))
#   scripts/callgrind_check.sh --update    # write the baseline from this run
#   CALLGRIND_PROFILE=release scripts/callgrind_check.sh --print   # counts only, any profile
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:---check}
profile=${CALLGRIND_PROFILE:-dev}
baseline=sfu/callgrind-baseline.txt
# Room setups differ from run to run in random keys and hash seeds (±0.2 %; incremental builds or not
# made no difference), and machines may differ in the CPU paths their crypto takes; 5 % covers that
# and catches any real per-packet regression. A count 5 % below the baseline fails too: commit the
# new baseline, or a later regression of that size would pass unseen.
tolerance=${CALLGRIND_TOLERANCE:-0.05}
command -v valgrind >/dev/null || { echo "callgrind_check: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build -q --locked -p sfu --example forward_count --profile "$profile"
dir=debug; [ "$profile" = dev ] || dir=$profile
bin=target/$dir/examples/forward_count
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
case $mode in
  --check | --update | --print) ;;
  *) echo "usage: scripts/callgrind_check.sh [--check | --update | --print]" >&2; exit 2 ;;
esac
status=0
for case in room2 room10 room50 timers10; do
  valgrind --tool=callgrind --callgrind-out-file="$out/$case" --collect-atstart=no \
    --toggle-collect='*measured_*' "$bin" "$case" >"$out/$case.log" 2>&1 || { cat "$out/$case.log"; exit 1; }
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/$case")
  # The example prints what the count is divided by (forwarded packets, or timer passes).
  units=$(awk '$1 == "units" {print $2; exit}' "$out/$case.log")
  if ! [[ $total =~ ^[1-9][0-9]*$ && $units =~ ^[1-9][0-9]*$ ]]; then
    echo "callgrind_check: no count for $case (total '$total', units '$units')" >&2
    cat "$out/$case.log" >&2
    exit 1
  fi
  per=$(( total / units ))
  line="$case $per"
  case $mode in
    --update) echo "$line" >>"$out/new-baseline" ;;
    --print) echo "$line instructions per unit (profile $profile)" ;;
    --check)
      base=$(awk -v c="$case" '$1 == c {print $2}' "$baseline")
      [ -n "$base" ] || { echo "callgrind_check: no baseline for $case in $baseline" >&2; exit 1; }
      limit=$(awk -v b="$base" -v t="$tolerance" 'BEGIN {printf "%d", b * (1 + t)}')
      change=$(awk -v b="$base" -v p="$per" 'BEGIN {printf "%+.2f", (p - b) * 100 / b}')
      floor=$(awk -v b="$base" -v t="$tolerance" 'BEGIN {printf "%d", b * (1 - t)}')
      if [ "$per" -gt "$limit" ]; then
        echo "callgrind_check: $case costs $per instructions per unit, baseline $base ($change %, limit $limit)" >&2
        status=1
      elif [ "$per" -lt "$floor" ]; then
        # Cheaper is good, but a stale baseline would let a later regression of that size through.
        echo "callgrind_check: $case $per instructions per unit, below the baseline $base ($change %): commit scripts/callgrind_check.sh --update" >&2
        status=1
      else
        echo "callgrind_check: $case $per instructions per unit (baseline $base, $change %)"
      fi ;;
  esac
done
if [ "$mode" = --update ]; then
  { echo "# case instructions-per-unit ($profile profile; scripts/callgrind_check.sh --update writes this)"; cat "$out/new-baseline"; } >"$baseline"
  cat "$baseline"
fi
exit $status
