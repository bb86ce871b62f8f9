#!/usr/bin/env bash
# t_crash_rollout: kill -9 of the controller at random moments during a
# rollout that firmfleet-sim plays with FF_CRASH_DEVICES Polycom phones
# (default 1000) spread over FF_CRASH_SITES sites (default: one per 2,000
# devices), one site agent and one simulator per site, FF_CRASH_KILLS times
# (default 5). `make soak` runs it at 10,000 devices and 50 kills.
#   - every simulator sees each of its devices upgraded (exit status 0);
#   - the rollout completes: done, every device succeeded;
#   - no event lost or duplicated: for each agent the controller's rows are
#     seq 1..last_seq, each once, in order; one upgrade.succeeded and one
#     upgrade.offered per device; each agent's outbox drains;
#   - integrity_check of the controller's database and of each journal ok.
# FF_CRASH_RAMP (default 10s) spreads the devices' power-on and FF_CRASH_GAP
# (default 2) the kills (0.1 to GAP s apart, plus the restart), so that a
# long soak has a rollout long enough for its kills; FF_CRASH_TIMEOUT
# (default 75 s) bounds each simulator; FF_CRASH_MIN_DURING (default 2) kills
# must fall while the simulators run (`make soak`: all of them).
# Layout: namespace ffpk<PID>c holds the controller (198.18.105.1 on its
# loopback); site K has its agent in ffpk<PID>aK, linked to the controller
# by a /30 out of 198.18.104.0/24, and its phones in ffpk<PID>pK on the
# site's LAN 198.18.96.0/21 (the same LAN at every site, as branches do;
# each is its own namespace). Scratch /tmp/crash-*.
source "$(dirname "$0")/lib.sh"
rmdir "$T" 2>/dev/null
T=$(mktemp -d /tmp/crash-roll.XXXXXX)
CTL_DIR=$T/ctl
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SIM=$BIN/firmfleet-sim
NDEV=${FF_CRASH_DEVICES:-1000}
KILLS=${FF_CRASH_KILLS:-5}
PER_SITE=2000 # the LAN's pool holds 2,031
NS=${FF_CRASH_SITES:-$(((NDEV + PER_SITE - 1) / PER_SITE))}
RAMP=${FF_CRASH_RAMP:-10s}
SIMTIMEOUT=${FF_CRASH_TIMEOUT:-75}
GAP=${FF_CRASH_GAP:-2} # kill every 0.1 to GAP s (plus the restart)
MIN_DURING=${FF_CRASH_MIN_DURING:-2} # kills that must fall while the simulators run
[ "$NS" -ge 1 ] && [ "$NS" -le 60 ] && [ $(((NDEV + NS - 1) / NS)) -le $PER_SITE ] ||
  { echo "Bail out! $NDEV devices on $NS sites: 1-60 sites, at most $PER_SITE devices each"; exit 1; }
HP=8080
CTLIP=198.18.105.1
t0=$SECONDS

# The kernel's ARP table is one for all namespaces, capped at gc_thresh3
# (default 1024) entries: each agent holds one per device it talks to, so
# beyond ~1,000 devices entries overflow ("neighbor table overflow" in
# dmesg), packets to devices are dropped and the phones retransmit for
# minutes. Above 1,000 devices the thresholds are raised for the run
# (room for every device twice) and put back on exit.
NEIGH=net.ipv4.neigh.default
NEIGH_SAVED=""
neigh_restore() {
  [ -n "$NEIGH_SAVED" ] || return 0
  local v1 v2 v3
  read -r v1 v2 v3 <<<"$NEIGH_SAVED"
  sysctl -qw $NEIGH.gc_thresh3="$v3" $NEIGH.gc_thresh2="$v2" $NEIGH.gc_thresh1="$v1"
  NEIGH_SAVED=""
}
trap 'neigh_restore; stop_all; lab_down; rm -rf "$T"; exit 1' INT TERM
n3=$(sysctl -n $NEIGH.gc_thresh3)
if [ "$NDEV" -gt 1000 ] && [ "$n3" -lt $((2 * NDEV + 1024)) ]; then
  NEIGH_SAVED="$(sysctl -n $NEIGH.gc_thresh1) $(sysctl -n $NEIGH.gc_thresh2) $n3"
  check "ARP table thresholds raised for $NDEV devices (were $NEIGH_SAVED)" \
    sysctl -qw $NEIGH.gc_thresh1=$((NDEV / 2)) $NEIGH.gc_thresh2=$((NDEV + 512)) $NEIGH.gc_thresh3=$((2 * NDEV + 1024))
fi

# ---- namespaces ----
# net_up: the controller's namespace, and per site an agent and a phones
# namespace; added to LAB_NS, so that lib.sh's lab_down removes them
net_up() {
  local c=ffpk$$c k a p
  ip netns add $c && LAB_NS+=($c) || return 1
  ip -n $c link set lo up && ip -n $c addr add $CTLIP/32 dev lo || return 1
  for k in $(seq 1 "$NS"); do
    a=ffpk$$a$k p=ffpk$$p$k
    ip netns add $a && LAB_NS+=($a) || return 1
    ip netns add $p && LAB_NS+=($p) || return 1
    ip -n $a link set lo up && ip -n $p link set lo up || return 1
    # uplink: 198.18.104.(4k+1) controller side, .(4k+2) agent side
    ip link add fpc$$_$k type veth peer name fpu$$_$k || return 1
    ip link set fpc$$_$k netns $c && ip link set fpu$$_$k netns $a || return 1
    ip -n $c addr add 198.18.104.$((4 * k + 1))/30 dev fpc$$_$k &&
      ip -n $a addr add 198.18.104.$((4 * k + 2))/30 dev fpu$$_$k || return 1
    ip -n $c link set fpc$$_$k up && ip -n $a link set fpu$$_$k up || return 1
    ip -n $a route add $CTLIP/32 via 198.18.104.$((4 * k + 1)) || return 1
    # the site's LAN
    ip link add fps$$_$k type veth peer name fpp$$_$k || return 1
    ip link set fps$$_$k netns $a && ip link set fpp$$_$k netns $p || return 1
    ip -n $a addr add 198.18.96.1/21 dev fps$$_$k || return 1
    ip -n $a link set fps$$_$k up && ip -n $p link set fpp$$_$k up || return 1
  done
}
check "namespaces: controller, $NS agents, $NS phone LANs" net_up
FF_NS=ffpk$$c
ENDPOINT=tcp://$CTLIP:$PORT
check "controller starts with the shipped profiles" ctl_start --profiles "$REPO/profiles"

# ---- sites, devices, agents ----
# site K: NDEV/NS devices (the first NDEV % NS sites one more), MAC prefix 02:5f:(0x60+K)
sim_args() { # K: the simulator's options for site K (without --iface)
  local k=$1 n=$((NDEV / NS + (k <= NDEV % NS ? 1 : 0)))
  echo "--server 198.18.96.1 --http-port $HP --devices polycom:$n --mac-prefix 02:5f:$(printf %02x $((0x60 + k))) \
--seed $k --poll 1s --reboot-time 300ms --ramp $RAMP"
}
sites=""
echo "mac,site,model" >"$T/devices.csv"
for k in $(seq 1 "$NS"); do
  ff site add s$k --tz Europe/Berlin >/dev/null
  ff subnet add s$k 198.18.96.0/21 --pool 198.18.96.10-198.18.103.250 --router 198.18.96.1 \
    --lease 3600 >/dev/null
  ff agent enroll --site s$k --out "$T/s$k.cred" >/dev/null
  # shellcheck disable=SC2046
  "$SIM" $(sim_args $k) --list | awk -F, -v s=s$k '{ print $1 "," s ",VVX400" }' >>"$T/devices.csv"
  sites=$sites${sites:+,}s$k
done
check "$NDEV devices in the inventory" ff device import "$T/devices.csv"
check_eq "inventory: $NDEV devices on $NS sites" "$NDEV" "$(($(wc -l <"$T/devices.csv") - 1))"
mkdir -p "$T/root"
for k in $(seq 1 "$NS"); do
  FF_NS=ffpk$$a$k agent_start s$k --dhcp fps$$_$k --tftp 198.18.96.1 --http "198.18.96.1:$HP" \
    --files-root "$T/root"
done
all_online() {
  local l
  l=$(ff agent list --json) && [ "$(jq '[.[] | select(.online == true)] | length' <<<"$l")" = "$NS" ]
}
check "$NS agents online" wait_until 60 all_online
mkdir -p "$T/fw"
head -c 60000 /dev/urandom >"$T/fw/2345-46200-010.sip.ld"
check "polycom 5.9.0.9373 in the catalog" ff firmware add polycom/5.9.0.9373 --models VVX400 "$T"/fw/*
check "rollout created" ff rollout create fleet59 --firmware polycom/5.9.0.9373 --profile polycom \
  --sites "$sites" --models VVX400 --waves 100%
staged() { ff rollout status fleet59 --json | jq -e '[.sites[].staged] | all' >/dev/null; }
check "every agent staged the image" wait_until 120 staged
note "setup: $((SECONDS - t0)) s"
check "rollout started" ff rollout start fleet59

# ---- the rollout, with kills ----
t1=$SECONDS
declare -a SIMPID=()
for k in $(seq 1 "$NS"); do
  # shellcheck disable=SC2046
  ip netns exec ffpk$$p$k "$SIM" --iface fpp$$_$k $(sim_args $k) --expect-version polycom=5.9.0.9373 \
    --timeout "$SIMTIMEOUT" --json >"$T/sim$k.json" 2>"$T/sim$k.log" &
  SIMPID[$k]=$!
done
sims_running() { local p; for p in "${SIMPID[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
rstate_is() { [ "$(ff rollout status fleet59 --json | jq -r '.rollout.state')" == "$1" ]; }
# kills go on while the devices upgrade, then while their events drain
kills=0 during=0 restart_max=0
for i in $(seq 1 "$KILLS"); do
  sleep "$((RANDOM % GAP)).$((RANDOM % 10 + 1))"
  running=0
  sims_running && running=1
  [ $running = 0 ] && rstate_is done && break
  during=$((during + running))
  ctl_kill9
  kills=$((kills + 1))
  tr=$SECONDS
  ctl_start || { note "controller did not come back after kill $kills"; break; }
  [ $((SECONDS - tr)) -gt $restart_max ] && restart_max=$((SECONDS - tr))
done
t_kills=$((SECONDS - t1))
SIM_RC=0
for k in $(seq 1 "$NS"); do
  wait "${SIMPID[$k]}" || SIM_RC=$?
done
t_sims=$((SECONDS - t1))
note "kills: $kills ($during while the simulators ran) in $t_kills s; slowest restart to admin answer: $restart_max s"
note "simulators: all ended after $t_sims s, last exit status $SIM_RC"
for k in $(seq 1 "$NS"); do
  note "sim s$k: $(jq -c '[.seconds, (.families[] | {ok, upgraded, failed, images, retries})]' "$T/sim$k.json" 2>/dev/null)"
done
check "the controller was killed $kills times, $during while the simulators ran (>= $MIN_DURING)" test $during -ge "$MIN_DURING"
check_eq "the simulators: every device upgraded (every exit status 0)" 0 "$SIM_RC"
check_eq "the simulators: $NDEV on 5.9.0.9373" "$NDEV" "$(cat "$T"/sim*.json | jq -s '[.[].families[].ok] | add')"

check "rollout done" wait_until 120 rstate_is done
note "rollout: done after $((SECONDS - t1)) s"
check_eq "rollout: every device succeeded" "$NDEV" \
  "$(ff rollout status fleet59 --json --devices | jq '[.devices[] | select(.state == "succeeded")] | length')"

# ---- no event lost or doubled, per agent ----
cq() { sqlite3 -readonly "$CTL_DIR/controller.db" "$1"; }
events=0 bad=""
for k in $(seq 1 "$NS"); do
  JR=$T/s$k.state/journal.db
  drained() { [ "$(sqlite3 -readonly "$JR" 'SELECT count(*) FROM outbox')" == 0 ]; }
  wait_until 60 drained || bad="$bad s$k:outbox"
  AID=$(cq "SELECT id FROM agent WHERE name = 's$k'")
  LAST=$(sqlite3 -readonly "$JR" "SELECT value FROM meta WHERE key = 'last_seq'")
  events=$((events + LAST))
  got=$(cq "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM event WHERE agent_id = $AID")
  [ "$got" == "$LAST|$LAST|1|$LAST" ] || bad="$bad s$k:seq($got,last=$LAST)"
  ooo=$(cq "SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY id) AS prev FROM event WHERE agent_id = $AID) WHERE seq < prev")
  [ "$ooo" == 0 ] || bad="$bad s$k:order($ooo)"
  [ "$(sqlite3 -readonly "$JR" 'PRAGMA integrity_check')" = ok ] || bad="$bad s$k:journal"
done
note "events checked: $events (agents' last_seq summed)"
check_eq "every agent: outbox drained, rows = distinct seq = 1..last_seq, in seq order, journal ok" "" "$bad"
for kd in upgrade.offered upgrade.succeeded; do
  check_eq "one $kd per device" "$NDEV|$NDEV" \
    "$(cq "SELECT count(*), count(DISTINCT mac) FROM event WHERE kind = '$kd'")"
done
check "controller integrity_check ok" test "$(cq 'PRAGMA integrity_check')" = ok
note "t_crash_rollout: $NDEV devices, $NS sites, $kills kills: $((SECONDS - t0)) s"
neigh_restore
finish
