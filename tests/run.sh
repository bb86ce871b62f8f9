#!/usr/bin/env bash
# run.sh: runs unit test binaries (cmocka, TAP output) and system test scripts
# (TAP lines "ok N - what" / "not ok N - what"), counts every check and ends
# with the one summary line "N passed, N failed".
#   tests/run.sh [--unit BUILDDIR]... [--system BUILDDIR] [--only PATTERN]
# A program that exits non-zero without reporting a failure counts as one
# failure; each program runs under a hard timeout so a hang cannot stall CI.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0
only=""
units=() systems=()
while [ $# -gt 0 ]; do
  case "$1" in
    --unit) units+=("$2"); shift 2 ;;
    --system) systems+=("$2"); shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
logdir=$(mktemp -d /tmp/ff-test-logs.XXXXXX)

run_one() { # label timeout cmd...
  local label=$1 limit=$2; shift 2
  local out="$logdir/$(echo "$label" | tr '/ ' '__').log"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" >"$out" 2>&1
  local rc=$?
  local p f
  p=$(grep -cE '^ok ' "$out")
  f=$(grep -cE '^not ok ' "$out")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $label exited $rc" >>"$out"; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $label reported no checks" >>"$out"; fi
  passed=$((passed + p)); failed=$((failed + f))
  printf '%-48s %4d passed %3d failed  %3ds\n' "$label" "$p" "$f" $((SECONDS - t0))
  if [ "$f" -ne 0 ]; then
    echo "---- $label (last lines of $out)"
    grep -E '^not ok ' "$out" | head -20
    tail -40 "$out" | sed 's/^/    /'
    echo "----"
  fi
}

for b in "${units[@]}"; do
  for t in "$b"/tests/test_*; do
    [ -x "$t" ] || continue
    [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
    CMOCKA_MESSAGE_OUTPUT=TAP run_one "unit[$b] $(basename "$t")" 300 "$t"
  done
done
for b in "${systems[@]}"; do
  for t in tests/system/t_*.sh; do
    [ -f "$t" ] || continue
    [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
    FF_BUILD="$b" run_one "system[$b] $(basename "$t" .sh)" 900 bash "$t"
  done
done
echo "logs: $logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
