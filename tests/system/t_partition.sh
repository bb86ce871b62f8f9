#!/usr/bin/env bash
# t_partition: a site agent cut off from its controller (the agent-side veth
# of the uplink set down in the agent's namespace) for the length of a
# maintenance window. Real clients play the phones: busybox udhcpc with
# Polycom's option 60, curl with the Polycom User-Agent, tftp-hpa.
#   - before the cut: a Polycom rollout (window 22:00-05:00) is assigned;
#     the agent's clock is at 12:00, so P1 waits for its window; P2's
#     inventory serial is set to the target: the agent skips it;
#   - during the cut: DHCP and TFTP go on for a device that needs nothing;
#     P1, outside its window, is held (its image is not served); the agent
#     is killed and restarted still cut off, its clock at 23:00: P1 is
#     upgraded (image, reboot, new version seen) with the agent deciding
#     alone; P2 is never served the image; every event is journaled;
#   - the link returns: every event journaled during the cut reaches the
#     controller once, in order: the controller's rows for the agent are
#     seq 1..last_seq without gap or double, the agent's outbox drains, and
#     the counts by kind of the cut's events equal what the agent had
#     journaled and what the clients did; the rollout converges (P1
#     succeeded, P2 skipped, done).
# Namespaces ffcr*, addresses in 198.18.85.0/24 and 198.18.86.0/24 only.
source "$(dirname "$0")/lib.sh"
rmdir "$T" 2>/dev/null
T=$(mktemp -d /tmp/crash-part.XXXXXX)
CTL_DIR=$T/ctl
REPO=$(cd "$(dirname "$0")/../.." && pwd)

N_CTL="ffcrpc-$$" N_SA="ffcrpa-$$" N_PH="ffcrph-$$"
UPL="pu$$" IF_SA="ps$$" IF_PH="pp$$"
topo_up() {
  local ns
  for ns in "$N_CTL" "$N_SA" "$N_PH"; do
    ip netns add "$ns" && LAB_NS+=("$ns") || return 1
    ip -n "$ns" link set lo up
  done
  veth "$N_CTL" "pr$$" 198.18.85.1 "$N_SA" "$UPL" 198.18.85.2 &&
    veth "$N_SA" "$IF_SA" 198.18.86.1 "$N_PH" "$IF_PH" ""
}
check "namespaces: controller, site agent, phones" topo_up

ENDPOINT="tcp://*:$PORT"
FF_NS=$N_CTL
check "controller starts with the shipped profiles" ctl_start --profiles "$REPO/profiles"
unset FF_NS
ff site add cut --tz Europe/Berlin >/dev/null
ff subnet add cut 198.18.86.0/24 --pool 198.18.86.100-198.18.86.150 --lease 600 >/dev/null
ff agent enroll --site cut --out "$T/cut.cred" >/dev/null
jq --arg e "tcp://198.18.85.1:$PORT" '.endpoint = $e' "$T/cut.cred" >"$T/cred.new" &&
  cat "$T/cred.new" >"$T/cut.cred"

offset_to() { echo $(($(TZ=Europe/Berlin date -d "today $1" +%s) - $(date +%s))); }
HP=8080
mkdir -p "$T/root"
head -c 70000 /dev/urandom >"$T/root/plain.bin"
agent_up() { # OFFSET
  FF_NS=$N_SA agent_start cut --dhcp "$IF_SA" --tftp 198.18.86.1 --http "198.18.86.1:$HP" \
    --files-root "$T/root" --clock-offset "$1"
}
agent_up "$(offset_to 12:00)"
check "agent online (clock at 12:00)" wait_until 30 agent_online cut

P1=00:04:f2:00:85:01 # upgraded inside its window, during the cut
P2=00:04:f2:00:85:02 # its serial already matches: skipped
X=00:04:f2:00:85:09  # needs nothing: a lease and a file
ff device add $P1 --site cut --model VVX400 >/dev/null
ff device add $P2 --site cut --model VVX400 >/dev/null
ff device add $X --site cut --model CP-7960G >/dev/null # not in the rollout
mkdir -p "$T/fw"
head -c 300000 /dev/urandom >"$T/fw/2345-46200-010.sip.ld"
check "polycom 5.9.0.9373 in the catalog" ff firmware add polycom/5.9.0.9373 --models VVX400 "$T"/fw/*

# ---- phones: udhcpc, curl, tftp in the phones' namespace ----
udhcpc_script "$T/udhcpc.sh"
hex() { printf '%b' "$1" | od -An -tx1 -v | tr -d ' \n'; }
POLY_HEX="0000363d"$(hex '\x17\x01\x07Polycom\x02\x0cSoundPointIP')
UA_OLD='FileTransport PolycomVVX-VVX_400-UA/5.8.0.1000'
UA_NEW='FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373'
boot() { # MAC: the phone (re)boots and gets a lease
  ip -n "$N_PH" addr flush dev "$IF_PH"
  ip -n "$N_PH" link set dev "$IF_PH" address "$1"
  rm -f "$T/lease.$1"
  UDHCP_OUT="$T/lease.$1" ip netns exec "$N_PH" busybox udhcpc -i "$IF_PH" -n -q -f -V "" \
    -x "0x3c:$POLY_HEX" -s "$T/udhcpc.sh" -t 5 -T 1 >/dev/null 2>&1 && [ -s "$T/lease.$1" ]
}
hget() { ip netns exec "$N_PH" curl -sf -m 5 -A "$2" -o "$3" "http://198.18.86.1:$HP/$1"; }
tget() { rm -f "$T/got.$1"; ip netns exec "$N_PH" tftp -m binary 198.18.86.1 -c get "$1" "$T/got.$1" >/dev/null 2>&1 && cmp -s "$T/root/$1" "$T/got.$1"; }

state() { ff rollout status "$1" --json --devices | jq -r --arg m "$2" '.devices[] | select(.mac == $m) | .state'; }
is_state() { [ "$(state "$1" "$2")" == "$3" ]; }
rstate_is() { [ "$(ff rollout status "$1" --json | jq -r '.rollout.state')" == "$2" ]; }
staged() { ff rollout status "$1" --json | jq -e '[.sites[].staged] | all' >/dev/null; }
JR=$T/cut.state/journal.db
jq1() { sqlite3 -readonly "$JR" "$1" 2>/dev/null; }
agent_state() { jq1 "SELECT state FROM prov_device WHERE mac = '$1'"; }
agent_state_is() { [ "$(agent_state "$1")" == "$2" ]; }
cq() { sqlite3 -readonly "$CTL_DIR/controller.db" "$1"; }
AGENT_ID=$(cq "SELECT id FROM agent WHERE name = 'cut'")

# ---- before the cut ----
check "rollout created (nights only)" ff rollout create nightly --firmware polycom/5.9.0.9373 \
  --profile polycom --sites cut --models VVX400 --window "Mon-Sun 22:00-05:00" --waves 100%
check "the agent staged the image" wait_until 60 staged nightly
check "rollout started" ff rollout start nightly
check "P1 waiting for its window" wait_until 30 is_state nightly $P1 waiting_window
check "P2's inventory serial set to the target" ff device set $P2 --serial-firmware 5.9.0.9373
check "P2 skipped by the agent (serial)" wait_until 30 is_state nightly $P2 skipped
check "the agent's event (reason=serial) is at the controller" \
  test "$(cq "SELECT count(*) FROM event WHERE agent_id = $AGENT_ID AND kind = 'upgrade.skipped' AND mac = '$P2' AND detail LIKE '%reason=serial%'")" -ge 1
drained() { [ "$(jq1 'SELECT count(*) FROM outbox')" == 0 ]; }
check "the agent's outbox is empty before the cut" wait_until 20 drained
SEQ0=$(jq1 "SELECT value FROM meta WHERE key = 'last_seq'")
note "last_seq before the cut: $SEQ0"

# ---- the cut ----
check "uplink cut (link down in the agent's namespace)" ip -n "$N_SA" link set "$UPL" down
offline() { ! agent_online cut; }
check "the controller sees the agent offline" wait_until 60 offline
check "the agent logs the link as down" wait_until 30 grep -q 'msg=uplink.down' "$T/cut.log"

check "X: a lease while cut off" boot $X
check "X: a file from the files root over TFTP" tget plain.bin
check "P1: a lease while cut off" boot $P1
check "P1: its config over HTTP" hget 000000000000.cfg "$UA_OLD" "$T/p1.cfg"
check_fails "P1 outside its window (12:00): the image is not served" \
  hget 2345-46200-010.sip.ld "$UA_OLD" "$T/p1.ld"
check_eq "P1 waiting at the agent" waiting "$(agent_state $P1)"
check "P2: a lease while cut off" boot $P2
hget 000000000000.cfg "$UA_OLD" "$T/p2.cfg"
check_fails "P2 (skipped): the image is not served" hget 2345-46200-010.sip.ld "$UA_OLD" "$T/p2.ld"

# the window opens: the agent restarts with its clock at 23:00, still cut off
agent_kill9 cut
agent_up "$(offset_to 23:00)"
check "agent back (clock at 23:00), still cut off, serving DHCP" wait_until 20 boot $P1
check "P1 offered inside its window, decided at the agent" wait_until 30 agent_state_is $P1 offered
names_image() { hget 000000000000.cfg "$UA_OLD" "$T/p1b.cfg" && grep -q 'APP_FILE_PATH="2345-46200-010.sip.ld"' "$T/p1b.cfg"; }
check "P1: its config names the image" names_image
check "P1: the image over HTTP" hget 2345-46200-010.sip.ld "$UA_OLD" "$T/p1.ld"
check "P1: the image bytes are the catalog's" cmp -s "$T/fw/2345-46200-010.sip.ld" "$T/p1.ld"
check "P1 installed at the agent" wait_until 20 agent_state_is $P1 installed
check "P1 reboots: a lease" boot $P1
hget 000000000000.cfg "$UA_NEW" "$T/p1c.cfg"
check "P1 succeeded at the agent, the new version seen" wait_until 20 agent_state_is $P1 succeeded
check "P2 still skipped at the agent" agent_state_is $P2 skipped
boot $P2 # from P2's own address: the agent names the device by its lease
check_fails "P2 still not served the image" hget 2345-46200-010.sip.ld "$UA_OLD" "$T/p2.ld"
check "X: another TFTP transfer" tget plain.bin
check "still cut off: the controller has seen none of it" offline
check_eq "the controller's P1 is still waiting_window" waiting_window "$(state nightly $P1)"

# what the agent journaled during the cut, by kind (from its outbox)
SEQ1=$(jq1 "SELECT value FROM meta WHERE key = 'last_seq'")
OUT_N=$(jq1 'SELECT count(*) FROM outbox')
note "journaled during the cut: seq $((SEQ0 + 1))..$SEQ1, outbox $OUT_N rows"
check_eq "the outbox holds every event of the cut (seq $((SEQ0 + 1))..$SEQ1)" "$((SEQ1 - SEQ0))" "$OUT_N"
KINDS="dhcp.lease tftp.start tftp.done upgrade.waiting upgrade.offered upgrade.downloading upgrade.installed upgrade.verifying upgrade.succeeded upgrade.skipped device.version"
declare -A AG=()
for k in $KINDS; do
  AG[$k]=$(jq1 "SELECT count(*) FROM outbox WHERE instr(payload, CAST('$k' AS BLOB)) > 0")
done
note "agent outbox by kind: $(for k in $KINDS; do printf '%s=%s ' "$k" "${AG[$k]}"; done)"
check_eq "journaled: a new lease each for X, P1, P2" 3 "${AG[dhcp.lease]}"
check "journaled: two TFTP transfers done" test "${AG[tftp.done]}" -ge 2
for k in upgrade.offered upgrade.downloading upgrade.installed upgrade.verifying upgrade.succeeded; do
  check_eq "journaled: one $k (P1)" 1 "${AG[$k]}"
done
check_eq "journaled: no skip during the cut (P2's was before)" 0 "${AG[upgrade.skipped]}"

# ---- the link returns ----
check "uplink back" ip -n "$N_SA" link set "$UPL" up
check "agent online again" wait_until 60 agent_online cut
check "the agent's outbox drains" wait_until 60 drained
all_in() { [ "$(cq "SELECT count(*) FROM event WHERE agent_id = $AGENT_ID")" -ge "$SEQ1" ]; }
wait_until 30 all_in
SEQ2=$(jq1 "SELECT value FROM meta WHERE key = 'last_seq'")
check_eq "controller: rows, distinct seq, min, max = 1..last_seq ($SEQ2)" "$SEQ2|$SEQ2|1|$SEQ2" \
  "$(cq "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM event WHERE agent_id = $AGENT_ID")"
check_eq "controller: stored in seq order" 0 \
  "$(cq "SELECT count(*) FROM event a JOIN event b ON a.agent_id = b.agent_id AND a.id < b.id AND a.seq > b.seq WHERE a.agent_id = $AGENT_ID")"
bykind_ok=1
for k in $KINDS; do
  c=$(cq "SELECT count(*) FROM event WHERE agent_id = $AGENT_ID AND seq > $SEQ0 AND seq <= $SEQ1 AND kind = '$k'")
  [ "$c" == "${AG[$k]}" ] || { bykind_ok=0; note "kind $k: agent journaled ${AG[$k]}, controller stored $c"; }
done
check "the cut's events by kind: the controller stored what the agent journaled" test $bykind_ok = 1
check_eq "P1's upgrade events in order at the controller" \
  "upgrade.offered upgrade.downloading upgrade.installed upgrade.verifying upgrade.succeeded" \
  "$(cq "SELECT kind FROM event WHERE agent_id = $AGENT_ID AND seq > $SEQ0 AND mac = '$P1' AND kind IN ('upgrade.offered','upgrade.downloading','upgrade.installed','upgrade.verifying','upgrade.succeeded') ORDER BY seq" | tr '\n' ' ' | sed 's/ $//')"
check "rollout: P1 succeeded" wait_until 30 is_state nightly $P1 succeeded
check "rollout: P2 skipped" is_state nightly $P2 skipped
check "rollout converges: done" wait_until 30 rstate_is nightly done
note "P1 at the controller: $(cq "SELECT seq || ':' || kind || ':' || detail FROM event WHERE agent_id = $AGENT_ID AND mac = '$P1' AND kind IN ('device.version', 'upgrade.succeeded') ORDER BY seq" | tr '\n' ' ')"
check_eq "the inventory records P1's version" 5.9.0.9373 "$(ff device show $P1 --json | jq -r '.version')"
check "agent journal integrity_check ok" test "$(jq1 'PRAGMA integrity_check')" = ok
finish
