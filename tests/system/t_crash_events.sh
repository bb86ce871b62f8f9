#!/usr/bin/env bash
# t_crash_events: an agent journals 10,000 events while the controller (then,
# in a second round, the agent) is killed with SIGKILL at random moments.
# Afterwards the controller holds exactly 10,000 distinct events with
# sequence numbers 1..10000: nothing lost, nothing doubled.
source "$(dirname "$0")/lib.sh"
N=10000
RATE=${FF_SYNTH_RATE:-2000}

count_events() { # name -> "count distinct min max"
  sqlite3 -readonly "$CTL_DIR/controller.db" \
    "SELECT count(*), count(DISTINCT e.seq), coalesce(min(e.seq),0), coalesce(max(e.seq),0)
       FROM event e JOIN agent a ON a.id = e.agent_id WHERE a.name = '$1'" 2>/dev/null | tr '|' ' '
}
all_in() { [ "$(count_events "$1")" == "$N $N 1 $N" ]; }

check "controller starts" ctl_start
ff site add berlin --tz Europe/Berlin >/dev/null
ff site add munich --tz Europe/Berlin >/dev/null
ff agent enroll --site berlin --out "$T/berlin.cred" >/dev/null
ff agent enroll --site munich --out "$T/munich.cred" >/dev/null

# round 1: kill the controller
agent_start berlin --synth-events $N --synth-rate $RATE
wait_until 30 agent_online berlin
kills=0 during=0
for i in $(seq 1 6); do
  sleep "0.$((RANDOM % 9 + 1))"
  before=$(count_events berlin | cut -d' ' -f1)
  ctl_kill9; kills=$((kills + 1))
  [ "${before:-0}" -lt $N ] && during=$((during + 1))
  note "controller kill $kills with ${before:-0} events stored"
  ctl_start || break
done
check "controller was killed $kills times, $during of them mid-stream (>= 3)" test $during -ge 3
check "all $N events arrive after the controller crashes" wait_until 300 all_in berlin
check_eq "berlin: count, distinct, min, max seq" "$N $N 1 $N" "$(count_events berlin)"
check "integrity_check ok" test "$(sqlite3 -readonly "$CTL_DIR/controller.db" 'PRAGMA integrity_check')" = ok

# round 2: kill the agent
agent_start munich --synth-events $N --synth-rate $RATE
wait_until 30 agent_online munich
kills=0 during=0
for i in $(seq 1 6); do
  sleep "0.$((RANDOM % 9 + 1))"
  before=$(count_events munich | cut -d' ' -f1)
  agent_kill9 munich; kills=$((kills + 1))
  [ "${before:-0}" -lt $N ] && during=$((during + 1))
  note "agent kill $kills with ${before:-0} events stored"
  agent_start munich --synth-events $N --synth-rate $RATE
done
check "agent was killed $kills times, $during of them mid-stream (>= 3)" test $during -ge 3
check "all $N events arrive after the agent crashes" wait_until 300 all_in munich
check_eq "munich: count, distinct, min, max seq" "$N $N 1 $N" "$(count_events munich)"
check "agent drained its journal" wait_until 60 grep -q 'msg=uplink.drained' "$T/munich.log"
check "event list --json agrees" \
  test "$(ff event list --agent munich --limit 0 --json | jq 'map(.seq) | unique | length')" = $N
finish
