#!/usr/bin/env bash
# demo.sh: what `make run` does. A firmware rollout at fleet scale, on one
# machine, with the embedded defaults:
#   - a controller (firmfleetd, SQLite store in a temp dir, the shipped vendor
#     profiles) in its own network namespace;
#   - two branch sites, berlin and munich (Europe/Berlin), each with a site
#     agent (DHCP, TFTP, HTTP) in a namespace linked to the controller's, and
#     a phones namespace behind it where firmfleet-sim plays the site's
#     devices on the real wire: Cisco 7940s on their old image, Polycom VVX
#     400s and Yealink SIP-T46Gs (150 per site by default);
#   - a staged rollout of the Cisco SIP load (canary, 10%, 100%) inside a night
#     window: berlin's agent clock is at 23:00, munich's at 12:00, so munich's
#     canary waits until its agent is restarted with its clock at 23:00;
#   - `firmfleet rollout watch` until it is done, the final status, then every
#     process, namespace and temp dir is removed (also on failure and Ctrl-C).
# Exit 0 only when the rollout is done with every Cisco phone upgraded and the
# other families held on their versions, as the simulators report.
#
#   deploy/demo.sh [BUILDDIR]
#   FF_DEMO_DEVICES=N   devices per site (default 150: 2/3 Cisco, 1/6 each other)
#   FF_DEMO_KEEP_LOGS=1 keep the log directory after a successful run
#   KEEP=1              leave everything running after the rollout until Ctrl-C
# Needs root (network namespaces). Addresses 198.18.90.0/24-198.18.93.0/24;
# namespaces ffdemo<PID>-*.
set -uo pipefail
B=${1:-build}
B=$(cd "$B" && pwd) || exit 2
REPO=$(cd "$(dirname "$0")/.." && pwd)
PER_SITE=${FF_DEMO_DEVICES:-150}
case $PER_SITE in '' | *[!0-9]*) echo "demo: FF_DEMO_DEVICES must be a number" >&2; exit 2 ;; esac
[ "$PER_SITE" -ge 6 ] && [ "$PER_SITE" -le 240 ] || { echo "demo: FF_DEMO_DEVICES: 6 to 240" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 2; }
N_POLY=$((PER_SITE / 6)) N_YEA=$((PER_SITE / 6))
N_CISCO=$((PER_SITE - N_POLY - N_YEA))
SITES=(berlin munich)

T0=$SECONDS
W=$(mktemp -d /tmp/firmfleet-demo.XXXXXX)    # controller, agents, firmware
L=$(mktemp -d /tmp/firmfleet-demo-logs.XXXXXX) # logs: kept on failure
P=ffdemo$$                                    # namespace prefix
CTL=$W/ctl PORT=7600 HP=80
NSS=() PIDS=() RESULT=fail STEP=0 NSTEPS=8

# ---- output ----
if [ -t 1 ]; then BOLD=$'\033[1m' OFF=$'\033[0m'; else BOLD="" OFF=""; fi
step() { STEP=$((STEP + 1)); printf '%s%d/%d %s%s\n' "$BOLD" "$STEP" "$NSTEPS" "$*" "$OFF"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
ff() { "$B/firmfleet" -d "$CTL" "$@"; }
elapsed() { echo $((SECONDS - T0)); }

# wait_for SECONDS WHAT CMD...: polls CMD every 0.2 s; dies after SECONDS
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out after ${limit} s waiting for $what"
    sleep 0.2
  done
}

# ---- cleanup: every process we started, every namespace, the temp dirs ----
cleanup() {
  local rc=$? p ns i
  trap - EXIT INT TERM
  [ -t 1 ] && printf '\033[?25h' # the cursor, should the watch have been cut short
  for p in "${PIDS[@]}" $(cat "$W"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null; done
  for i in $(seq 1 50); do # up to 5 s for a clean stop (agents commit their journal)
    local alive=0
    for p in "${PIDS[@]}" $(cat "$W"/*.pid 2>/dev/null); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}" $(cat "$W"/*.pid 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  for ns in "${NSS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$W"
  if [ "$RESULT" = ok ] && [ "${FF_DEMO_KEEP_LOGS:-0}" != 1 ]; then
    rm -rf "$L"
    echo "cleaned up: processes, namespaces $P-*, $W and the logs (FF_DEMO_KEEP_LOGS=1 keeps them)"
  else
    echo "cleaned up: processes, namespaces $P-*, $W; logs kept in $L"
  fi
  echo "elapsed: $(elapsed) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: terminated" >&2; exit 143' TERM

# start NAME NS CMD...: runs CMD in namespace NS, stderr+stdout to $L/NAME.log,
# its pid in $W/NAME.pid (a restart replaces it)
start() {
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" "$@" >>"$L/$name.log" 2>&1 &
  echo $! >"$W/$name.pid"
}
stop() { # NAME: SIGTERM, up to 5 s, then SIGKILL
  local p i
  p=$(cat "$W/$1.pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  rm -f "$W/$1.pid"
}

# ---- 1: the controller ----
ns_add() { ip netns add "$1" && NSS+=("$1") && ip -n "$1" link set lo up; }
veth() { # NS1 IF1 IP1 NS2 IF2 IP2 (an empty IP: none)
  ip link add "$2" type veth peer name "$5" || return 1
  ip link set "$2" netns "$1" && ip link set "$5" netns "$4" || return 1
  [ -z "$3" ] || ip -n "$1" addr add "$3/24" dev "$2" || return 1
  [ -z "$6" ] || ip -n "$4" addr add "$6/24" dev "$5" || return 1
  ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}
ns_add "$P-ctl" || die "cannot create network namespace $P-ctl"
start firmfleetd "$P-ctl" "$B/firmfleetd" -d "$CTL" --listen "tcp://*:$PORT" --profiles "$REPO/profiles"
wait_for 20 "the controller" ff site list
step "controller up: datadir $CTL, $(ff profile list --json | jq '.profiles | length') vendor profiles"
info "logs in $L/"

# ---- 2: namespaces, sites, agents ----
# site i: uplink 198.18.9<i>.0/24 (controller .1, agent .2),
#         phones LAN 198.18.9<i+2>.0/24 (agent .1, pool .10-.250)
offset_to() { echo $(($(TZ=Europe/Berlin date -d "today $1" +%s) - $(date +%s))); }
NIGHT="daily 22:00-05:00"
agent_up() { # SITE INDEX LOCALTIME
  local s=$1 i=$2
  start "agent-$s" "$P-$s" "$B/firmfleet-agent" -c "$W/$s.cred" -s "$W/$s.state" \
    --dhcp "d$i$P" --tftp "198.18.9$((i + 2)).1" --http "198.18.9$((i + 2)).1:$HP" \
    --files-root "$W/$s.root" --clock-offset "$(offset_to "$3")"
}
online() { ff agent list --json | jq -e --arg n "$1" '.[] | select(.name == $n and .online)'; }
i=0
for s in "${SITES[@]}"; do
  ns_add "$P-$s" && ns_add "$P-$s-ph" || die "cannot create the namespaces of $s"
  veth "$P-ctl" "u$i$P" "198.18.9$i.1" "$P-$s" "a$i$P" "198.18.9$i.2" &&
    veth "$P-$s" "d$i$P" "198.18.9$((i + 2)).1" "$P-$s-ph" "p$i$P" "" ||
    die "cannot create the links of $s"
  ff site add "$s" --tz Europe/Berlin --description "$s branch" >/dev/null || die "site add $s"
  ff subnet add "$s" "198.18.9$((i + 2)).0/24" --pool "198.18.9$((i + 2)).10-198.18.9$((i + 2)).250" \
    --router "198.18.9$((i + 2)).1" --lease 3600 >/dev/null || die "subnet add $s"
  ff agent enroll --site "$s" --out "$W/$s.cred" >/dev/null || die "agent enroll $s"
  jq --arg e "tcp://198.18.9$i.1:$PORT" '.endpoint = $e' "$W/$s.cred" >"$W/$s.cred.new" &&
    cat "$W/$s.cred.new" >"$W/$s.cred" && rm -f "$W/$s.cred.new"
  mkdir -p "$W/$s.root"
  i=$((i + 1))
done
step "network: namespaces $P-{ctl,berlin,munich,berlin-ph,munich-ph}, sites berlin and munich enrolled"
info "berlin: uplink 198.18.90.0/24, phones 198.18.92.0/24; munich: uplink 198.18.91.0/24, phones 198.18.93.0/24"

agent_up berlin 0 23:00
agent_up munich 1 12:00
for s in "${SITES[@]}"; do wait_for 30 "the $s agent to come online (log $L/agent-$s.log)" online "$s"; done
step "agents online, serving DHCP, TFTP, HTTP (agent-berlin.log, agent-munich.log)"
info "agent clocks: berlin 23:00 local, munich 12:00; the rollout window will be $NIGHT"

# ---- 3: firmware ----
FW=$W/fw
mkdir -p "$FW/cisco" "$FW/polycom" "$FW/yealink"
kib() { head -c $(($1 * 1024)) /dev/urandom >"$2"; }
kib 256 "$FW/cisco/P003-08-12-00.bin"   # universal loader
kib 256 "$FW/cisco/P003-08-12-00.sbn"
kib 768 "$FW/cisco/P0S3-08-12-00.sb2"   # the SIP load
printf 'P0S3-08-12-00.sb2\n' >"$FW/cisco/P0S3-08-12-00.loads"
kib 1024 "$FW/polycom/2345-46200-010.sip.ld"
kib 512 "$FW/yealink/T46-28.83.0.50.rom"
ff firmware add cisco/P0S3-08-12-00 --models CP-7940G --description "SIP 8.12 via the universal loader" \
  "$FW"/cisco/* >/dev/null 2>>"$L/cli.log" || die "firmware add cisco (see $L/cli.log)"
ff firmware add polycom/5.9.0.9373 --models VVX_400 "$FW"/polycom/* >/dev/null 2>>"$L/cli.log" ||
  die "firmware add polycom"
ff firmware add yealink/28.83.0.50 --models SIP-T46G "$FW"/yealink/* >/dev/null 2>>"$L/cli.log" ||
  die "firmware add yealink"
step "firmware catalog: $(ff firmware list --json | jq -r '[.[] | .name // (.vendor + "/" + .version)] | join(", ")' 2>/dev/null)"

# ---- 4: devices ----
SIMARGS=(--devices "cisco-79xx:$N_CISCO" --devices "polycom:$N_POLY" --devices "yealink:$N_YEA"
  --http-port "$HP" --poll 2s --reboot-time 500ms --ramp 2s --seed 7 --timeout 100 --quiet --json
  --expect-version cisco-79xx=P0S3-08-12-00)
{
  echo "mac,site,model"
  i=0
  for s in "${SITES[@]}"; do
    "$B/firmfleet-sim" "${SIMARGS[@]}" --mac-prefix "02:5f:9$i" --list |
      awk -F, -v s="$s" '{ print $1 "," s "," $3 }'
    i=$((i + 1))
  done
} >"$W/devices.csv"
ff device import "$W/devices.csv" >/dev/null || die "device import"
step "inventory: $(($(wc -l <"$W/devices.csv") - 1)) devices imported (firmfleet-sim --list | firmfleet device import)"
info "per site: $N_CISCO CP-7940G on the old image, $N_POLY Polycom VVX 400, $N_YEA Yealink SIP-T46G"

# ---- 5: the rollout, planned and staged ----
R=sip-8.12
ff rollout create $R --firmware cisco/P0S3-08-12-00 --profile cisco-79xx --sites berlin,munich \
  --models CP-7940G --waves canary,10%,100% --window "$NIGHT" --max-failures 2 \
  >>"$L/cli.log" 2>&1 || die "rollout create (see $L/cli.log)"
staged() { ff rollout status $R --json | jq -e '[.sites[].staged] | all'; }
wait_for 60 "both agents to stage the images" staged
step "rollout $R created: $((N_CISCO * 2)) CP-7940G, waves canary,10%,100%, window '$NIGHT'"
info "both agents have the images staged; Polycom and Yealink are not in it: they must stay"

# ---- 7: the phones power on, the rollout starts ----
i=0
for s in "${SITES[@]}"; do
  start "sim-$s" "$P-$s-ph" "$B/firmfleet-sim" "${SIMARGS[@]}" --iface "p$i$P" \
    --server "198.18.9$((i + 2)).1" --mac-prefix "02:5f:9$i"
  i=$((i + 1))
done
# munich's canary waits for its window; a few seconds after berlin's canary
# is done its agent is restarted with its clock inside the window. This runs
# in the background so that the watch stays in the foreground; on a terminal
# it writes only to demo.log (a line would break the watch's redraw).
note() {
  echo "$(date -u +%FT%TZ) +$(elapsed)s $*" >>"$L/demo.log"
  [ -t 1 ] || echo "    -- $*"
}
munich_window() {
  local end=$((SECONDS + 90)) doc
  while [ $SECONDS -lt $end ]; do
    doc=$(ff rollout status $R --json 2>/dev/null) &&
      jq -e '([.sites[] | select(.site == "berlin") | .counts.succeeded] | add) >= 1 and
             ([.sites[] | select(.site == "munich") | .counts.waiting_window] | add) >= 1' \
        <<<"$doc" >/dev/null && break
    sleep 0.5
  done
  note "munich: its canary is held outside the window (agent clock 12:00); wave 2 cannot start"
  sleep 4
  stop agent-munich
  agent_up munich 1 23:00
  note "munich: agent restarted with its clock at 23:00 local: window open"
}
ff rollout start $R >>"$L/cli.log" 2>&1 || die "rollout start"
munich_window &
PIDS+=($!)
step "rollout started; $((PER_SITE * 2)) simulated devices power on (sim-berlin.log, sim-munich.log)"
info "berlin's canary goes first; munich's waits until its agent restarts with its clock at 23:00"
[ -t 1 ] || info "(stdout is not a terminal: one plain line per change; on a terminal the bars redraw)"
timeout --foreground "${FF_DEMO_WATCH_LIMIT:-150}" "$B/firmfleet" -d "$CTL" rollout watch $R --interval 0.5
wrc=$?
[ $wrc = 130 ] && exit 130
[ $wrc = 124 ] && echo "demo: the rollout did not finish within ${FF_DEMO_WATCH_LIMIT:-150} s" >&2
[ -t 1 ] && sed 's/^[^ ]* +[0-9]*s /    -- /' "$L/demo.log" 2>/dev/null

# ---- 8: outcome ----
step "final status after $(elapsed) s"
ff rollout status $R | sed '/./s/^/    /'
held=$(ff event list --agent munich --kind upgrade.waiting --json 2>/dev/null |
  jq '[.[] | select(.detail | test("reason=window"))] | length' 2>/dev/null)
info "munich's agent reported ${held:-?} device(s) held by the window (firmfleet event list --kind upgrade.waiting)"
sim_ok=1
for s in "${SITES[@]}"; do
  p=$(cat "$W/sim-$s.pid")
  [ $wrc = 0 ] || kill "$p" 2>/dev/null # a rollout that did not finish: do not wait out their timeout
  src=0
  wait "$p" || src=$?
  rm -f "$W/sim-$s.pid"
  line=$(sed -n '/^{/,/^}/p' "$L/sim-$s.log" | jq -sr 'last |
    "\([.families[].ok] | add)/\(.devices) where expected after \(.seconds | floor) s (" +
    ([.families[] | "\(.family) \(.upgraded) upgraded \(.held) held"] | join(", ")) + ")"' 2>/dev/null)
  info "simulator $s: exit $src, ${line:-no summary}"
  [ $src = 0 ] || sim_ok=0
done
state=$(ff rollout status $R --json | jq -r .rollout.state)
if [ "$wrc" = 0 ] && [ "$state" = "done" ] && [ $sim_ok = 1 ]; then
  RESULT=ok
  echo "rollout $R: done; every simulated device ended where expected"
else
  echo "demo: rollout $R: $state (watch exit $wrc); simulators all exit 0: $([ $sim_ok = 1 ] && echo yes || echo no)" >&2
fi

if [ "${KEEP:-0}" = 1 ]; then
  echo "running; firmfleet -d $CTL ... works in another shell. Ctrl-C stops and cleans up."
  while sleep 3600; do :; done
fi
[ $RESULT = ok ] || exit 1
exit 0
