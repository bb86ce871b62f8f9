#!/usr/bin/env bash
# t_crash_rollout: kill -9 of the controller at random moments during a
# rollout that firmfleet-sim plays with FF_CRASH_DEVICES Polycom phones
# (default 1000) against one site agent, FF_CRASH_KILLS times (default 5).
#   - the simulator sees every device upgraded (exit status 0);
#   - the rollout completes: done, every device succeeded;
#   - no event lost or duplicated: the controller's rows for the agent are
#     seq 1..last_seq, each once, in order; one upgrade.succeeded and one
#     upgrade.offered per device; the agent's outbox drains;
#   - integrity_check of the controller's database ok.
# Namespaces ffcr*, addresses in 198.18.84.0/22 only; scratch /tmp/crash-*.
source "$(dirname "$0")/lib.sh"
rmdir "$T" 2>/dev/null
T=$(mktemp -d /tmp/crash-roll.XXXXXX)
CTL_DIR=$T/ctl
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SIM=$BIN/firmfleet-sim
NDEV=${FF_CRASH_DEVICES:-1000}
KILLS=${FF_CRASH_KILLS:-5}

check "lab namespaces" lab_up ffcrrs ffcrrc 198.18.84
ip -n "$SRV_NS" addr del 198.18.84.1/24 dev "$SRV_IF"
ip -n "$SRV_NS" addr add 198.18.84.1/22 dev "$SRV_IF"
FF_NS="$SRV_NS"
check "controller starts with the shipped profiles" ctl_start --profiles "$REPO/profiles"
ff site add fleet --tz Europe/Berlin >/dev/null
ff subnet add fleet 198.18.84.0/22 --pool 198.18.84.10-198.18.87.250 --router 198.18.84.1 \
  --lease 3600 >/dev/null
ff agent enroll --site fleet --out "$T/fleet.cred" >/dev/null
HP=8080
mkdir -p "$T/root" "$T/fw"
SIMARGS=(--iface "$CLI_IF" --server 198.18.84.1 --http-port $HP --devices "polycom:$NDEV"
  --mac-prefix 02:5f:84 --seed 3 --poll 1s --reboot-time 300ms --ramp 10s)
{
  echo "mac,site,model"
  "$SIM" "${SIMARGS[@]}" --list | awk -F, '{ print $1 ",fleet,VVX400" }'
} >"$T/devices.csv"
check "$NDEV devices in the inventory" ff device import "$T/devices.csv"
agent_start fleet --dhcp "$SRV_IF" --tftp 198.18.84.1 --http "198.18.84.1:$HP" --files-root "$T/root"
check "agent online" wait_until 30 agent_online fleet
head -c 60000 /dev/urandom >"$T/fw/2345-46200-010.sip.ld"
check "polycom 5.9.0.9373 in the catalog" ff firmware add polycom/5.9.0.9373 --models VVX400 "$T"/fw/*
check "rollout created" ff rollout create fleet59 --firmware polycom/5.9.0.9373 --profile polycom \
  --sites fleet --models VVX400 --waves 100%
staged() { ff rollout status fleet59 --json | jq -e '[.sites[].staged] | all' >/dev/null; }
check "the agent staged the image" wait_until 60 staged
check "rollout started" ff rollout start fleet59

in_cli "$SIM" "${SIMARGS[@]}" --expect-version polycom=5.9.0.9373 --timeout 75 --json \
  >"$T/sim.json" 2>"$T/sim.log" &
SIMPID=$!
rstate_is() { [ "$(ff rollout status fleet59 --json | jq -r '.rollout.state')" == "$1" ]; }
# kills go on while the devices upgrade, then while their events drain
kills=0 during=0
for i in $(seq 1 "$KILLS"); do
  sleep "$((RANDOM % 2)).$((RANDOM % 10 + 1))"
  running=0
  kill -0 $SIMPID 2>/dev/null && running=1
  [ $running = 0 ] && rstate_is done && break
  during=$((during + running))
  ctl_kill9
  kills=$((kills + 1))
  ctl_start || { note "controller did not come back after kill $kills"; break; }
done
wait $SIMPID
SIM_RC=$?
note "sim: exit $SIM_RC: $(jq -c '[.seconds, (.families[] | {ok, upgraded, failed, images, retries})]' "$T/sim.json" 2>/dev/null)"
check "the controller was killed $kills times, $during while the simulator ran (>= 2)" test $during -ge 2
check_eq "the simulator: every device upgraded (exit status 0)" 0 "$SIM_RC"
check_eq "the simulator: $NDEV on 5.9.0.9373" "$NDEV" "$(jq '[.families[].ok] | add' "$T/sim.json")"

check "rollout done" wait_until 60 rstate_is done
check_eq "rollout: every device succeeded" "$NDEV" \
  "$(ff rollout status fleet59 --json --devices | jq '[.devices[] | select(.state == "succeeded")] | length')"

JR=$T/fleet.state/journal.db
drained() { [ "$(sqlite3 -readonly "$JR" 'SELECT count(*) FROM outbox')" == 0 ]; }
check "the agent's outbox drains" wait_until 60 drained
cq() { sqlite3 -readonly "$CTL_DIR/controller.db" "$1"; }
AID=$(cq "SELECT id FROM agent WHERE name = 'fleet'")
LAST=$(sqlite3 -readonly "$JR" "SELECT value FROM meta WHERE key = 'last_seq'")
note "agent last_seq $LAST"
check_eq "controller: rows, distinct seq, min, max = 1..last_seq" "$LAST|$LAST|1|$LAST" \
  "$(cq "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM event WHERE agent_id = $AID")"
check_eq "controller: stored in seq order" 0 \
  "$(cq "SELECT count(*) FROM event a JOIN event b ON a.agent_id = b.agent_id AND a.id < b.id AND a.seq > b.seq WHERE a.agent_id = $AID")"
for k in upgrade.offered upgrade.succeeded; do
  check_eq "one $k per device" "$NDEV|$NDEV" \
    "$(cq "SELECT count(*), count(DISTINCT mac) FROM event WHERE agent_id = $AID AND kind = '$k'")"
done
check "controller integrity_check ok" test "$(cq 'PRAGMA integrity_check')" = ok
check "agent journal integrity_check ok" test "$(sqlite3 -readonly "$JR" 'PRAGMA integrity_check')" = ok
finish
