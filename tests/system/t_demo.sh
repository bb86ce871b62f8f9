#!/usr/bin/env bash
# t_demo: `make run`'s script runs start to end on the build under test: the
# agent comes online, pulls its image, and everything is cleaned up after.
source "$(dirname "$0")/lib.sh"
out=$T/demo.out
bash "$(dirname "$0")/../../deploy/demo.sh" "$BIN" >"$out" 2>&1
check_eq "deploy/demo.sh exits 0" 0 $?
check "demo shows berlin online" grep -qE '^berlin +berlin +.*(yes|true|online)' "$out"
check "demo shows the image cached" grep -q 'sha256 verified' "$out"
check "demo removed its work directory" \
  test -z "$(grep -o '/tmp/firmfleet-demo\.[A-Za-z0-9]*' "$out" | sort -u | while read -r d; do [ -e "$d" ] && echo "$d"; done)"
check "no daemon left running" test -z "$(pgrep -f "firmfleet-demo" || true)"
[ "$_fail" -ne 0 ] && sed 's/^/# /' "$out"
finish
