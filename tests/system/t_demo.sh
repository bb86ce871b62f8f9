#!/usr/bin/env bash
# t_demo: `make run`'s script, deploy/demo.sh, start to end on the build under
# test, with stdout not a terminal: a controller, two site agents and two
# simulated sites in network namespaces, a staged rollout of the Cisco SIP
# load in a night window. Checks its exit status, that the rollout ended
# done with every device where expected (Cisco upgraded, Polycom and Yealink
# held), that munich's canary was held by the window until its agent's clock
# moved into it, that the watch printed plain lines, that no daemon reported
# a sanitizer error, and that nothing is left: no namespace, no process, no
# work directory. The fleet is the demo's default (150 devices per site,
# about 20 s on the ASan build); FF_DEMO_DEVICES in the environment changes it.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
out=$T/demo.out
t0=$SECONDS
FF_DEMO_KEEP_LOGS=1 timeout 170 bash "$REPO/deploy/demo.sh" "$BIN" >"$out" 2>&1
rc=$?
note "deploy/demo.sh took $((SECONDS - t0)) s"
check_eq "deploy/demo.sh exits 0" 0 "$rc"
check "the steps are numbered 1/8 to 8/8" grep -q '^8/8 final status' "$out"
check "the watch ends on done" grep -qE '^[0-9TZ:-]+ sip-8\.12 done wave 3/3 succeeded ([0-9]+)/\1 failed 0' "$out"
check "the final status says done" grep -qE '^ +state: +done$' "$out"
check "the window held munich's canary until its agent's clock moved into it" \
  grep -qE "munich's agent reported [1-9][0-9]* device\(s\) held by the window" "$out"
check "munich's agent was restarted inside the window" grep -q 'munich: agent restarted' "$out"
check_eq "both simulators exit 0 with every device where expected" 2 \
  "$(grep -cE '^ +simulator (berlin|munich): exit 0, ([0-9]+)/\2 where expected' "$out")"
check "the Polycom and Yealink phones were held, not upgraded" \
  grep -qE 'polycom 0 upgraded [1-9][0-9]* held, yealink 0 upgraded [1-9][0-9]* held' "$out"
check "no escape sequences when stdout is not a terminal" bash -c "! LC_ALL=C grep -q $'\x1b' '$out'"
check "the elapsed time is printed" grep -qE '^elapsed: [0-9]+ s$' "$out"

# what it left behind
prefix=$(grep -oE 'namespaces ffdemo[0-9]+-' "$out" | head -1 | sed 's/^namespaces //')
work=$(grep -oE '/tmp/firmfleet-demo\.[A-Za-z0-9]+' "$out" | sort -u)
logs=$(grep -oE '/tmp/firmfleet-demo-logs\.[A-Za-z0-9]+' "$out" | sort -u)
check "the demo named its namespaces" test -n "$prefix"
check_eq "no namespace left behind" "" "$(ip netns list | grep -E "^${prefix:-ffdemo-none}" || true)"
check_eq "no process left behind" "" \
  "$(pgrep -af "${prefix:-ffdemo-none}|firmfleet-demo\.[A-Za-z0-9]" | grep -v pgrep || true)"
check "the work directory was removed" test -n "$work" -a ! -e "${work:-/nonexistent}"
if [ -n "$logs" ] && [ -d "$logs" ]; then
  bad_logs=$(grep -lE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$logs"/*.log 2>/dev/null)
  check_eq "no sanitizer reports in the demo's logs" "" "$bad_logs"
  [ "$_fail" -ne 0 ] && for f in "$logs"/*.log; do echo "# ---- $f"; tail -15 "$f" | sed 's/^/# /'; done
  rm -rf "$logs"
else
  nok "the demo kept its logs when asked (FF_DEMO_KEEP_LOGS=1)"
fi
[ "$_fail" -ne 0 ] && sed 's/^/# /' "$out"
finish
