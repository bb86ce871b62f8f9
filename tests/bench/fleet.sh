#!/usr/bin/env bash
# fleet.sh BUILDDIR OUTFILE: the controller at 1,000 sites (issue "Fleet at
# scale"). One firmfleetd on loopback; 1,000 simulated site agents in one
# process (tests/tools/ffbench_agents.c: a CURVE DEALER per agent with its
# own enrolled key, speaking the real protocol: Hello/Welcome, SiteConfig,
# Assignments applied and acked, DeviceEvents with seq/ack, reconnects).
# Setup through the CLI only: 1,000 `site add` + `agent enroll` (the CLI has
# no batch enroll: one call each, ~7 ms), 100,000 devices in one `device
# import`, one firmware. Then, each bounded:
#   1. `rollout create --waves 100%` over the 100,000 devices, `rollout
#      start`: time until the controller's DB (read-only) shows no pending
#      device and an empty outbox (every Assignment persisted and acked);
#   3. `rollout status NAME --json`: 20 calls, median and max wall clock;
#   2. 20 s of events from every agent as fast as its window and acks
#      allow (the real agent's delay-based window, 16 to 2,000 unacked,
#      siteagent/uplink.c): committed rows/s;
#   5. reconnect storm: events flowing at 5,000/s, kill -9 of the
#      controller, restart; time until all 1,000 agents have a Welcome;
#      then every agent's sent seqs are compared with the stored rows;
#   4. controller CPU (utime+stime of /proc/PID/stat) per 1,000 events and
#      per 1,000 assignments, and its peak RSS (VmHWM).
# Results: "T" lines (a ready markdown table, figure / goal / met) and "N"
# notes in OUTFILE for run.sh; the table is also printed on stderr.
# Knobs: FLEET_SITES (1000), FLEET_DEVICES (100 per site), FLEET_INGEST_S
# (20), FLEET_ROLLOUT_MAX_S (150: scenario 1 gives up then and extrapolates),
# FLEET_STORM_RATE (5000), FLEET_WINDOW (2000: the largest window), FLEET_APPLIED (0; 1: each
# agent also journals the real agent's assignment.applied event per
# Assignment, which the controller follows per event).
AREA=fleet
source "$(dirname "$0")/bench_lib.sh"

SITES=${FLEET_SITES:-1000}
PER_SITE=${FLEET_DEVICES:-100}
INGEST_S=${FLEET_INGEST_S:-20}
ROLLOUT_MAX_S=${FLEET_ROLLOUT_MAX_S:-150}
STORM_RATE=${FLEET_STORM_RATE:-5000}
WINDOW=${FLEET_WINDOW:-2000}
APPLIED=${FLEET_APPLIED:-0}
N_DEV=$((SITES * PER_SITE))
TOOL=$FF_BUILD/tests/tools/ffbench_agents

tline() { printf 'T\t%s\n' "$*" >>"$OUT"; }
now_ms() { date +%s%3N; }
q() { sqlite3 -readonly -cmd ".timeout 5000" "$CTL_DIR/controller.db" "$1" 2>>"$T/sql.err"; }
st() { awk -F= -v k="$1" '$1 == k { print $2 }' "$T/agents.status" 2>/dev/null; }
ctl() { echo "$*" >"$T/agents.ctl"; }
ctl_pid() { echo "${PIDS[ctl]:-}"; }
proc_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# until_true SECONDS CMD...: polls CMD every 0.1 s; 0 when it succeeded in time
until_true() {
  local end=$(($(now_ms) + $1 * 1000)); shift
  while [ "$(now_ms)" -lt $end ]; do "$@" && return 0; sleep 0.1; done
  return 1
}
fail() { bnote "$*"; mnote "FLEET: $*"; exit 1; }

[ -x "$FF_BUILD/firmfleetd" ] && [ -x "$FF_BUILD/firmfleet" ] || fail "controller or CLI not built in $FF_BUILD"
if [ ! -x "$TOOL" ]; then
  bnote "building the load tool (make B=$FF_BUILD units would too)"
  make -s -C "$REPO" B="$FF_BUILD" "$TOOL" >"$T/make.log" 2>&1 || fail "could not build $TOOL (see make B=... units)"
fi
command -v sqlite3 >/dev/null || fail "sqlite3 (the CLI) is needed to read the controller's DB"
# 1,000 TCP connections in the controller; 3 sockets per agent in the tool
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((SITES * 4 + 256)) ] || fail "open file limit $(ulimit -n) is too low for $SITES agents"

# ---- setup ----
ENDPOINT=tcp://127.0.0.1:$PORT
ctl_start --profiles "$REPO/profiles" >/dev/null || fail "controller did not start"
SRV[ctl]=${PIDS[ctl]}
t=$(now_ms)
: >"$T/creds.list"
for i in $(seq 1 "$SITES"); do
  s=$(printf 'site%04d' "$i")
  ff site add "$s" --tz UTC >/dev/null 2>>"$T/cli.log" || fail "site add $s failed: $(tail -1 "$T/cli.log")"
  ff agent enroll --site "$s" --out "$T/$s.cred" >/dev/null 2>>"$T/cli.log" \
    || fail "agent enroll $s failed: $(tail -1 "$T/cli.log")"
  echo "$T/$s.cred" >>"$T/creds.list"
done
ENROLL_S=$(calc "($(now_ms) - $t) / 1000")
bnote "$SITES sites and agents enrolled through the CLI in ${ENROLL_S} s"

# One file would do by the man page ("at most 100000 devices (and 4 MiB)"),
# but the CLI sends the rows as JSON, ~1.8x the CSV, under the 4 MiB message
# cap: 100,000 rows are refused ("too large for one import"). So: files of
# at most 25,000 devices, each one `device import` (one transaction).
SITES_PER_FILE=$(( 25000 / PER_SITE > 0 ? 25000 / PER_SITE : 1 ))
awk -v n="$SITES" -v d="$PER_SITE" -v per="$SITES_PER_FILE" -v dir="$T" 'BEGIN {
  for (i = 1; i <= n; i++) {
    f = sprintf("%s/devices-%03d.csv", dir, int((i - 1) / per))
    if (!(f in seen)) { seen[f] = 1; print "mac,site,model" >f }
    for (j = 1; j <= d; j++)
      printf "02:00:%02x:%02x:%02x:%02x,site%04d,CP-7940G\n", int(i / 256), i % 256, int(j / 256), j % 256, i >f
  }
}'
t=$(now_ms)
N_FILES=0
for f in "$T"/devices-*.csv; do
  ff device import "$f" >/dev/null 2>>"$T/cli.log" || fail "device import failed: $(tail -1 "$T/cli.log")"
  N_FILES=$((N_FILES + 1))
done
IMPORT_S=$(calc "($(now_ms) - $t) / 1000")
[ "$(q 'SELECT count(*) FROM device')" = "$N_DEV" ] || fail "device import: $(q 'SELECT count(*) FROM device') devices, not $N_DEV"
mkdir -p "$T/fw"
for f in P003-08-12-00.bin P003-08-12-00.sbn P0S3-08-12-00.loads P0S3-08-12-00.sb2; do
  head -c 40000 /dev/urandom >"$T/fw/$f"
done
ff firmware add cisco/P0S3-08-12-00 --models CP-7940G "$T"/fw/* >/dev/null 2>>"$T/cli.log" \
  || fail "firmware add failed: $(tail -1 "$T/cli.log")"

mkfifo "$T/agents.ctl"
RSS_PRE=$(proc_field "$(ctl_pid)" VmRSS)
t=$(now_ms)
"$TOOL" --creds "$T/creds.list" --status "$T/agents.status" --control "$T/agents.ctl" \
  --window "$WINDOW" $([ "$APPLIED" = 1 ] && echo --applied) >>"$T/agents.log" 2>&1 &
SRV[agents]=$!
all_online() { [ "$(st online)" = "$SITES" ]; }
until_true 60 all_online || fail "only $(st online) of $SITES agents came online in 60 s"
CONNECT_S=$(calc "($(st all_online_at) - $t) / 1000")
sleep 2
RSS_ONLINE=$(proc_field "$(ctl_pid)" VmRSS)
PER_AGENT_KIB=$(calc "($RSS_ONLINE - $RSS_PRE) / $SITES")
bnote "$SITES agents online in ${CONNECT_S} s (first connect: CURVE handshake, ZAP, Hello, Welcome, SiteConfig of $PER_SITE devices)"

# ---- 1. a rollout over every device ----
t=$(now_ms)
# one transaction on the controller's loop: 4.5 s at 100,000 devices, ~55 s
# at 1,000,000 (FLEET_DEVICES=1000), past the CLI's default 30 s
ff --timeout 600 rollout create fleet --firmware cisco/P0S3-08-12-00 --profile cisco-79xx --models CP-7940G \
  --waves 100% >/dev/null 2>>"$T/cli.log" || fail "rollout create failed: $(tail -1 "$T/cli.log")"
CREATE_S=$(calc "($(now_ms) - $t) / 1000")
RID=$(q "SELECT id FROM rollouts WHERE name = 'fleet'")
[ "$(q "SELECT count(*) FROM rollout_devices WHERE rollout_id = $RID")" = "$N_DEV" ] \
  || fail "the rollout holds $(q "SELECT count(*) FROM rollout_devices WHERE rollout_id = $RID") devices, not $N_DEV"
PID1=$(ctl_pid)
c0=$(cpu_ticks "$PID1")
t0=$(now_ms)
ff rollout start fleet >/dev/null 2>>"$T/cli.log" || fail "rollout start failed: $(tail -1 "$T/cli.log")"
ROLL_DONE=0 PEND=$N_DEV OUTBOX=-1
rollout_done() {
  local r
  r=$(q "SELECT (SELECT count(*) FROM rollout_devices WHERE rollout_id = $RID AND state = 'pending'),
                (SELECT count(*) FROM outbox)") || return 1
  PEND=${r%%|*}; OUTBOX=${r##*|}
  [ "$PEND" = 0 ] && [ "$OUTBOX" = 0 ]
}
end=$((t0 + ROLLOUT_MAX_S * 1000))
while [ "$(now_ms)" -lt $end ]; do
  rollout_done && { ROLL_DONE=1; break; }
  sleep 0.25
done
t1=$(now_ms)
c1=$(cpu_ticks "$PID1")
ROLL_S=$(calc "($t1 - $t0) / 1000")
ASSIGNED=$((N_DEV - PEND))
ROLL_CPU=$(calc "($c1 - $c0) / $HZ")
STATES=$(q "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM rollout_devices
            WHERE rollout_id = $RID GROUP BY state)")
if [ $ROLL_DONE = 1 ]; then
  bnote "1. $N_DEV assignments persisted and acked in ${ROLL_S} s (agents applied $(st assignments)); $STATES"
else
  bnote "1. gave up after ${ROLL_S} s: $ASSIGNED of $N_DEV assigned, outbox $OUTBOX rows; $STATES"
  # the engine would go on assigning through the next scenarios: stop it
  ff rollout pause fleet >/dev/null 2>>"$T/cli.log" || bnote "1. rollout pause failed: $(tail -1 "$T/cli.log")"
fi
ROLL_JIN=$(st journaled_in); ROLL_DUPS=$(st dups)
ROLL_RATE=$(calc "$ASSIGNED / $ROLL_S")
ROLL_CPU_K=$(calc "$ROLL_CPU / ($ASSIGNED / 1000)")
# the engine's pace, from the controller's own rollout.device events (one per assignment)
TICK_PACE=$(q "SELECT count(*) || ' assignments in ' || count(DISTINCT received_ms / 1000) || ' distinct seconds'
               FROM event WHERE agent_id IS NULL AND kind = 'rollout.device' AND detail LIKE '%state=assigned%'")

# ---- 3. rollout status latency on 100,000 devices ----
LAT=()
LAT_FAIL=0
ff rollout status fleet --json >"$T/status.json" 2>>"$T/cli.log" || bnote "3. rollout status --json failed: $(tail -1 "$T/cli.log")"
for i in $(seq 1 20); do
  a=$(date +%s%N)
  ff rollout status fleet --json >/dev/null 2>>"$T/cli.log" || LAT_FAIL=$((LAT_FAIL + 1))
  b=$(date +%s%N)
  LAT+=("$(calc "($b - $a) / 1e6")")
  [ $LAT_FAIL -ge 3 ] && break            # the CLI waits 30 s each: give up
done
LAT_MED=$(median "${LAT[@]}")
LAT_MAX=$(printf '%s\n' "${LAT[@]}" | sort -g | tail -1)
bnote "3. rollout status --json: median ${LAT_MED} ms, max ${LAT_MAX} ms, ${#LAT[@]} calls, $LAT_FAIL failed ($(wc -c <"$T/status.json") bytes)"

# ---- idle: 1,000 agents connected, heartbeats only ----
c0=$(cpu_ticks "$PID1"); t0=$(now_ms)
sleep 5
IDLE_CORES=$(calc "($(cpu_ticks "$PID1") - $c0) / $HZ / (($(now_ms) - $t0) / 1000)")

# ---- 2. sustained ingest ----
drained() { [ "$(st events_top)" = "$(st events_acked)" ]; }
until_true 30 drained || bnote "agents not drained before the ingest run"
E_ALL0=$(q "SELECT count(*) FROM event")
ctl "rate -1"
sleep 2                                   # windows fill; then measure
e0=$(q "SELECT count(*) FROM event"); c0=$(cpu_ticks "$PID1"); t0=$(now_ms); r0=$(st rewinds); s0=$(st events_sent)
sleep "$INGEST_S"
e1=$(q "SELECT count(*) FROM event"); c1=$(cpu_ticks "$PID1"); t1=$(now_ms); r1=$(st rewinds); s1=$(st events_sent)
RSS_INGEST=$(proc_field "$PID1" VmRSS)
ctl "rate 0"
ING_S=$(calc "($t1 - $t0) / 1000")
ING_N=$((e1 - e0))
ING_RATE=$(calc "$ING_N / $ING_S")
ING_CPU=$(calc "($c1 - $c0) / $HZ")
ING_CPU_K=$(calc "$ING_CPU / ($ING_N / 1000)")
ING_CORES=$(calc "$ING_CPU / $ING_S")
SENT_DUP=$(calc "($s1 - $s0) / ($ING_N > 0 ? $ING_N : 1)")
WIN_AVG=$(calc "$(st windows) / $SITES")
RTT_AVG=$(calc "$(st rtt_sum_ms) / ($(st rtt_n) > 0 ? $(st rtt_n) : 1)")
bnote "2. ingest: $ING_N events in ${ING_S} s = $(fmt "$ING_RATE" %.0f)/s committed; controller CPU ${ING_CPU} s ($(fmt "$ING_CORES" %.2f) cores); rewinds $((r1 - r0)); sent/committed $(fmt "$SENT_DUP" %.2f); window at the end $(fmt "$WIN_AVG" %.0f) per agent, mean send-to-ack $(fmt "$RTT_AVG" %.0f) ms"
until_true 30 drained || bnote "agents still not drained 30 s after the ingest run"
HWM1=$(proc_field "$PID1" VmHWM)

# ---- 5. reconnect storm ----
ctl "rate $STORM_RATE"
sleep 3
ROWS_AT_KILL_T=$(now_ms)
TOP_AT_KILL=$(st events_top)
t_kill=$(now_ms)
ctl_kill9
unset 'SRV[ctl]'
ROWS_AT_KILL=$(q "SELECT count(*) FROM event WHERE agent_id IS NOT NULL")
t_restart=$(now_ms)
ctl_start --profiles "$REPO/profiles" >/dev/null || fail "controller did not restart"
SRV[ctl]=${PIDS[ctl]}
PID2=$(ctl_pid)
t_up=$(now_ms)
storm_done() { [ "$(st online)" = "$SITES" ] && [ "$(st all_online_at)" -gt "$t_kill" ]; }
STORM_OK=0
until_true 60 storm_done && STORM_OK=1
STORM_KILL_S=$(calc "($(st all_online_at) - $t_kill) / 1000")
STORM_RESTART_S=$(calc "($(st all_online_at) - $t_restart) / 1000")
STORM_UP_S=$(calc "($t_up - $t_restart) / 1000")
c_storm=$(cpu_ticks "$PID2")
[ $STORM_OK = 1 ] || bnote "5. only $(st online) of $SITES agents back online in 60 s"
sleep 2
ctl "rate 0"
until_true 30 drained || bnote "5. agents not drained 30 s after the storm"
ctl "dump $T/agents.dump"
until_true 5 test -s "$T/agents.dump"
q "SELECT a.name, count(e.seq), coalesce(max(e.seq), 0) FROM agent a LEFT JOIN event e ON e.agent_id = a.id
   GROUP BY a.id" | tr '|' ' ' >"$T/ctl.rows"
# per agent, with the agent's top (seqs made), acked (the controller's
# durable ack) and the rows stored: rows = highest seq stored (contiguous
# from 1, no duplicate: UNIQUE(agent_id, seq) besides), rows >= acked (an
# acked event is on disk), rows <= top. Seqs made but not yet stored when
# the agents were not drained in time are "undelivered", not lost.
CHECK=$(awk 'NR == FNR { top[$1] = $2; acked[$1] = $3; next }
  { n++; if (!($1 in top)) { miss++; next }
    if ($2 != $3) gap++
    if ($2 < acked[$1]) { lost += acked[$1] - $2; lostag++ }
    if ($2 > top[$1]) extra += $2 - top[$1]
    if (top[$1] > $2) undel += top[$1] - $2
    rows += $2; made += top[$1] }
  END { printf "%d %d %d %d %d %d %d %d %d\n", n, miss + 0, gap + 0, lost + 0, lostag + 0, extra + 0, undel + 0, rows, made }' \
  "$T/agents.dump" "$T/ctl.rows")
read -r CK_N CK_MISS CK_GAP CK_LOST CK_LOSTAG CK_EXTRA CK_UNDEL CK_ROWS CK_MADE <<<"$CHECK"
BEHIND=$(st behind); REBASE=$(st rebase)
STORM_INTEGRITY=0
[ "$CK_N" = "$SITES" ] && [ "$CK_MISS" = 0 ] && [ "$CK_GAP" = 0 ] && [ "$CK_LOST" = 0 ] &&
  [ "$CK_EXTRA" = 0 ] && [ "$BEHIND" = 0 ] && [ "$REBASE" = 0 ] && STORM_INTEGRITY=1
DURING=$((CK_MADE - TOP_AT_KILL))
bnote "5. storm: all $SITES online $(fmt "$STORM_KILL_S" %.2f) s after kill -9 ($(fmt "$STORM_RESTART_S" %.2f) s after restart; controller answering the CLI after $(fmt "$STORM_UP_S" %.2f) s); rows at kill $ROWS_AT_KILL, seqs made $CK_MADE, rows now $CK_ROWS; acked-but-missing $CK_LOST, beyond-made $CK_EXTRA, agents with gaps $CK_GAP, undelivered (not drained) $CK_UNDEL, behind $BEHIND"
HWM2=$(proc_field "$PID2" VmHWM)
HWM_MAX=$(( (HWM1 > HWM2 ? HWM1 : HWM2) ))
c_end=$(cpu_ticks "$PID2")

# ---- 4. memory, CPU per unit, and the table ----
RSS_MIB=$(calc "$HWM_MAX / 1024")
EV_PER_CPU_S=$(calc "$ING_N / $ING_CPU")
# per core: what one controller core ingests, each agent reporting 1 event/s
# (a busy branch: 100 devices, DHCP/TFTP/HTTP steps), plus the idle cost
AG_PER_CORE=$(calc "1 / (1 / $EV_PER_CPU_S + $IDLE_CORES / $SITES)")
IDLE_PER_CORE=$(calc "$IDLE_CORES > 0 ? $SITES / $IDLE_CORES : 0")
met() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**not met**"; fi; }
ROLL_MET=$([ $ROLL_DONE = 1 ] && met "$ROLL_S <= 10" || echo "**not met** (not done in ${ROLLOUT_MAX_S} s)")
ROLL_FIG="$(fmt "$ROLL_S" %.1f) s"
[ $ROLL_DONE = 1 ] || ROLL_FIG="> $(fmt "$ROLL_S" %.0f) s ($ASSIGNED of $N_DEV in that time: $(fmt "$ROLL_RATE" %.0f)/s, so ~$(calc "$N_DEV / $ROLL_RATE" | xargs printf %.0f) s for all)"

tline "| # | figure | firmfleet | goal | |"
tline "|---|---|---:|---|---|"
tline "| 1 | rollout start → all $N_DEV assignments persisted and acked by $SITES agents | $ROLL_FIG | ≤10 s | $ROLL_MET |"
tline "| 1 | controller CPU per 1,000 assignments$([ "$APPLIED" = 1 ] && echo " (each also brings one assignment.applied event)") | $(fmt "$ROLL_CPU_K" %.3f) s | — | |"
tline "| 2 | device-event ingest, durable (WAL, synchronous=FULL), ${INGEST_S} s, all agents flat out, windows 16-$WINDOW | $(fmt "$ING_RATE" %.0f)/s | ≥50,000/s | $(met "$ING_RATE >= 50000") |"
tline "| 2 | controller CPU per 1,000 events | $(fmt "$ING_CPU_K" %.3f) s | — | |"
tline "| 3 | \`rollout status --json\` on $N_DEV devices, 20 calls (CLI process included) | median $(fmt "$LAT_MED" %.0f) ms, max $(fmt "$LAT_MAX" %.0f) ms$([ $LAT_FAIL = 0 ] || echo ", $LAT_FAIL of ${#LAT[@]} failed") | ≤200 ms | $([ $LAT_FAIL = 0 ] && met "$LAT_MAX <= 200" || echo "**not met**") |"
tline "| 4 | controller peak RSS (VmHWM, both runs) | $(fmt "$RSS_MIB" %.0f) MiB | ≤512 MiB | $(met "$RSS_MIB <= 512") |"
tline "| 5 | reconnect storm: kill -9, restart → all $SITES agents Welcomed | $(fmt "$STORM_KILL_S" %.2f) s after the kill ($(fmt "$STORM_RESTART_S" %.2f) s after restart) | — | $([ $STORM_OK = 1 ] && echo "all back" || echo "**$(st online) of $SITES**") |"
tline "| 5 | events lost or doubled across the kill: acked but not stored / stored twice or beyond what agents made / agents with gaps (made $CK_MADE, stored $CK_ROWS$([ "$CK_UNDEL" = 0 ] || echo ", $CK_UNDEL still undelivered when the wait ended")) | $CK_LOST / $CK_EXTRA / $CK_GAP | 0 | $([ $STORM_INTEGRITY = 1 ] || echo "**not met**")$([ $STORM_INTEGRITY = 1 ] && [ "$CK_UNDEL" = 0 ] && echo met)$([ $STORM_INTEGRITY = 1 ] && [ "$CK_UNDEL" != 0 ] && echo "nothing lost so far; **not drained in 30 s**, so not proven") |"
tline "| — | agents per controller core at the measured ingest cost, each agent sending 1 event/s ($(fmt "$EV_PER_CPU_S" %.0f) events per CPU-second; $SITES idle agents use $(fmt "$(calc "$IDLE_CORES * 100")" %.1f)% of a core) | $(fmt "$AG_PER_CORE" %.0f) | Salt: ~1,250 minions/core (15,000 on 12 cores) | $(fmt "$(calc "$AG_PER_CORE / 1250")" %.1f)× |"

mnote "FLEET memory: controller RSS $(calc "$RSS_PRE / 1024" | xargs printf %.0f) MiB before the agents connect, $(calc "$RSS_ONLINE / 1024" | xargs printf %.0f) MiB with all $SITES online and idle: $(fmt "$PER_AGENT_KIB" %.0f) KiB per connected agent (CURVE session, ZeroMQ pipes, peer state); during ingest $(calc "$RSS_INGEST / 1024" | xargs printf %.0f) MiB"
mnote "FLEET setup: $SITES sites + agents enrolled one CLI call each in ${ENROLL_S} s (no batch enroll in the CLI); $N_DEV devices in $N_FILES \`device import\` calls (25,000 each: 100,000 in one file are refused, the JSON the CLI sends exceeds the 4 MiB cap) in ${IMPORT_S} s; all agents online in ${CONNECT_S} s from a cold start; rollout create on $N_DEV devices ${CREATE_S} s"
mnote "FLEET 1: rollout devices by state at the end: $STATES; the engine's pace: $TICK_PACE; agents applied $(st assignments) assignments, receiving $ROLL_JIN journaled messages ($ROLL_DUPS duplicates: resent before their ack came); controller CPU ${ROLL_CPU} s over $(fmt "$ROLL_S" %.1f) s"
mnote "FLEET 2: $ING_N rows in ${ING_S} s; controller $(fmt "$ING_CORES" %.2f) cores busy = $(fmt "$EV_PER_CPU_S" %.0f) events per CPU-second; sent/committed $(fmt "$SENT_DUP" %.2f), rewinds (ack stalls) $((r1 - r0)); agents' windows at the end $(fmt "$WIN_AVG" %.0f) on average, mean send-to-ack $(fmt "$RTT_AVG" %.0f) ms; RSS during ingest $(calc "$RSS_INGEST / 1024" | xargs printf %.0f) MiB"
mnote "FLEET per core: one controller core ingests $(fmt "$EV_PER_CPU_S" %.0f) events per CPU-second; with every one of the $SITES agents sending flat out the controller used $(fmt "$ING_CORES" %.2f) cores; idle (heartbeats every 5 s; the finished-assigning rollout still ticks) the $SITES agents cost $(fmt "$(calc "$IDLE_CORES * 100")" %.2f)% of a core (~$(fmt "$IDLE_PER_CORE" %.0f) idle agents per core). Salt's public anchor: one master ~15,000 minions on 12 cores, ~1,250 per core"
mnote "FLEET 5: events at $STORM_RATE/s over all agents while the controller was killed and restarted; rows at kill $ROWS_AT_KILL; made before the kill $TOP_AT_KILL, during and after $DURING; stored in the end $CK_ROWS of $CK_MADE; behind (controller acked, then lost) $BEHIND; rebase $REBASE; controller CPU to bring all back $(calc "$c_storm / $HZ") s, $(calc "$c_end / $HZ") s by the end"
mnote "FLEET: agents' counters at the end: $(tr '\n' ' ' <"$T/agents.status")"

ctl quit
for i in $(seq 1 50); do kill -0 "${SRV[agents]}" 2>/dev/null || break; sleep 0.1; done
srv_stop agents
srv_stop ctl
unset 'PIDS[ctl]'
bnote "table:"
awk -F'\t' '$1 == "T" { print "  " $2 }' "$OUT" >&2
exit 0
