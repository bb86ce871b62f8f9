#!/usr/bin/env bash
# t_event_retention: firmfleetd --event-retention deletes events older than
# the retention in bounded batches and logs it; the agents' positions stay,
# so after a controller restart nothing pruned comes back and new events go
# on from the right seq. Bad values are refused before anything starts.
# The controller's metrics show the real agent's events arriving in
# EventBatch frames (fewer frames than events).
source "$(dirname "$0")/lib.sh"
N=200

count_events() { # name -> "count min max" of the agent's stored events
  sqlite3 -readonly "$CTL_DIR/controller.db" \
    "SELECT count(*), coalesce(min(e.seq),0), coalesce(max(e.seq),0)
       FROM event e JOIN agent a ON a.id = e.agent_id WHERE a.name = '$1'" 2>/dev/null | tr '|' ' '
}
last_in() {
  sqlite3 -readonly "$CTL_DIR/controller.db" "SELECT last_in_seq FROM agent WHERE name = '$1'" 2>/dev/null
}
stored() { [ "$(last_in "$1")" == "$2" ]; }
none_left() { [ "$(count_events "$1" | cut -d' ' -f1)" == 0 ]; }

# ---- bad values: exit 2, one clear line, no data directory made ----
for v in 5y 0s -1 "" 1h30 3651d 99999999999999999999; do
  "$BIN/firmfleetd" -d "$T/never" --event-retention "$v" >"$T/bad.out" 2>"$T/bad.err"
  rc=$?
  check_eq "--event-retention '$v' is refused (exit 2, one line, nothing created)" \
    "2 1 no" "$rc $(wc -l <"$T/bad.err") $([ -e "$T/never" ] && echo yes || echo no)"
done
check "the refusal says what is allowed" grep -q 'duration from 1s to 3650d' "$T/bad.err"

# ---- events older than 3 s go; the position stays ----
CM=$(free_port)
check "controller starts with --event-retention 3s" ctl_start --event-retention 3s --metrics "127.0.0.1:$CM"
ff site add berlin --tz Europe/Berlin >/dev/null
ff agent enroll --site berlin --out "$T/berlin.cred" >/dev/null
agent_start berlin --synth-events $N --synth-rate 1000
check "all $N events arrive" wait_until 30 stored berlin $N
note "stored now: $(count_events berlin)"
curl -sf "http://127.0.0.1:$CM/metrics" >"$T/c.prom"
mval() { awk -v k="$1" '$1 == k { print $2 }' "$T/c.prom"; }
single=$(mval 'firmfleet_event_frames_total{body="single"}')
batches=$(mval 'firmfleet_event_frames_total{body="batch"}')
batched=$(mval firmfleet_batched_events_total)
note "event frames: $single single, $batches batches carrying $batched events"
check "the agent's events came in EventBatch frames" test "${batches:-0}" -gt 0
check "fewer frames than events ($N)" test $((${single:-0} + ${batches:-0})) -lt $N
check "the batches carried at least the events not sent singly" test "${batched:-0}" -ge $((N - ${single:-0}))
check "and are pruned once older than 3 s" wait_until 20 none_left berlin
check "the controller logs what it pruned" grep -q 'msg=ctl.events_pruned rows=[0-9]* retention_s=3' "$T/ctl.log"
check_eq "the agent's position stays at $N" "$N" "$(last_in berlin)"
check_eq "event list is empty, not an error" "0" "$(ff event list --agent berlin --limit 0 --json | jq length)"

# ---- a controller restart brings nothing back; new events follow on ----
ctl_kill9
check "controller restarts (kill -9 before)" ctl_start --event-retention 1h
check "the agent is back online" wait_until 30 agent_online berlin
agent_kill9 berlin
agent_start berlin --synth-events $((N + 50)) --synth-rate 1000
check "50 more events arrive" wait_until 30 stored berlin $((N + 50))
check_eq "only the new ones are stored: count, min, max seq" "50 $((N + 1)) $((N + 50))" "$(count_events berlin)"

finish
