#!/usr/bin/env bash
# t_assign: controller -> agent journaled messages. 300 device assignments go
# out in batches while the agent and the controller are killed with SIGKILL
# between and during them; afterwards the agent holds all 300 exactly once
# (one assignment.applied event each), the controller's outbox is drained,
# and assigning the same firmware again changes nothing. Bad input is refused
# with one line and no outbox row.
source "$(dirname "$0")/lib.sh"
N=300

outbox() { sqlite3 -readonly "$CTL_DIR/controller.db" 'SELECT count(*) FROM outbox'; }
applied() { sqlite3 -readonly "$CTL_DIR/controller.db" \
  "SELECT count(*), count(DISTINCT mac) FROM event WHERE kind = 'assignment.applied'" | tr '|' ' '; }
held() { sqlite3 -readonly "$T/berlin.state/journal.db" 'SELECT count(*) FROM assignments' 2>/dev/null; }

check "controller starts" ctl_start
ff site add berlin --tz Europe/Berlin >/dev/null
ff site add lonely --tz UTC >/dev/null
ff agent enroll --site berlin --out "$T/berlin.cred" >/dev/null
{ echo "mac,site,model"
  for i in $(seq 1 $N); do printf '00:04:f2:00:%02x:%02x,berlin,CP-7940G\n' $((i / 256)) $((i % 256)); done
  echo "00:04:f2:ff:00:01,lonely,CP-7940G"
  echo "00:04:f2:ff:00:02,berlin,CP-7960G"
} >"$T/devices.csv"
check "devices imported" ff device import "$T/devices.csv"
printf 'P0S3-08-12-00' >"$T/OS79XX.TXT"
check "firmware added" ff firmware add cisco/8.12.0 --models CP-7940G "$T/OS79XX.TXT"
agent_start berlin
check "agent online" wait_until 30 agent_online berlin

bad 1 "unknown device" ff device assign 00:04:f2:aa:aa:aa --firmware cisco/8.12.0
bad 1 "unknown firmware" ff device assign 00:04:f2:00:00:01 --firmware cisco/9.9
bad 1 "model the firmware does not list" ff device assign 00:04:f2:ff:00:02 --firmware cisco/8.12.0
bad 1 "malformed MAC" ff device assign 00:04:f2:00:00:zz --firmware cisco/8.12.0
bad 1 "site without an agent" ff device assign 00:04:f2:ff:00:01 --firmware cisco/8.12.0
bad 1 "a bad one among good ones" ff device assign 00:04:f2:00:00:01 00:04:f2:aa:aa:aa --firmware cisco/8.12.0
bad 2 "missing --firmware" ff device assign 00:04:f2:00:00:01

# 30 batches of 10, with SIGKILLs of either side between and during them
assign_batch() { ff device assign "$@" --firmware cisco/8.12.0 >/dev/null 2>&1; }
kills=0
for b in $(seq 0 29); do
  macs=()
  for i in $(seq $((b * 10 + 1)) $((b * 10 + 10))); do macs+=("$(printf '00:04:f2:00:%02x:%02x' $((i / 256)) $((i % 256)))"); done
  wait_until 60 assign_batch "${macs[@]}" || nok "batch $b could not be assigned"
  case $((RANDOM % 4)) in
    0) agent_kill9 berlin; agent_start berlin; kills=$((kills + 1)) ;;
    1) ctl_kill9; ctl_start >/dev/null; kills=$((kills + 1)) ;;
  esac
done
note "$kills kills during 30 batches"
check "at least 5 kills happened" test $kills -ge 5
all_applied() { [ "$(applied)" == "$N $N" ] && [ "$(outbox)" == 0 ]; }
check "all $N assignments applied once and the outbox drained" wait_until 120 all_applied
check_eq "assignment.applied events: count distinct" "$N $N" "$(applied)"
check_eq "agent journal holds $N assignments" "$N" "$(held)"

# the same desired state again is a no-op at the agent
check "re-assigning all of them is accepted" ff device assign $(cut -d, -f1 "$T/devices.csv" | sed -n "2,$((N + 1))p") --firmware cisco/8.12.0
drained() { [ "$(outbox)" == 0 ]; }
check "re-assignment delivered and acked" wait_until 60 drained
sleep 1
check_eq "no new assignment.applied events" "$N $N" "$(applied)"
check "integrity_check ok at both ends" test "$(sqlite3 -readonly "$CTL_DIR/controller.db" 'PRAGMA integrity_check')/$(sqlite3 -readonly "$T/berlin.state/journal.db" 'PRAGMA integrity_check')" = ok/ok
finish
