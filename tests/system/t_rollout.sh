#!/usr/bin/env bash
# t_rollout: a whole rollout, end to end. A controller and two site agents
# (berlin, munich), each in its own network namespace, with the phones of
# each site played by real clients in a namespace behind the agent: busybox
# udhcpc sending the exact option 60 bytes of each firmware stage, tftp-hpa
# and curl fetching what each stage is served. Shows:
#   - a Cisco 7940 goes old image -> universal loader -> SIP in one rollout
#     (OS79XX.TXT and XMLDefault.cnf.xml only to the old image, then
#     SEP<MAC>.cnf.xml, then SIPDefault.cnf), observed, not assumed;
#   - a Polycom upgrades over HTTP, its version read from the User-Agent;
#   - a device outside its maintenance window is held (its upgrade files are
#     not served) and is upgraded once the window opens, time being moved by
#     the agent's --clock-offset, never by sleeping;
#   - a second rollout with equal serials re-flashes nothing;
#   - a canary that comes back on its old version halts the rollout with
#     the reason, and the rest of the fleet is never assigned.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)

# ---- topology: ctl <-> site agent <-> phones, twice ----
N_CTL="ffrc-$$" N_SA="ffrsa-$$" N_CA="ffrca-$$" N_SB="ffrsb-$$" N_CB="ffrcb-$$"
IF_CA="ca$$" IF_CB="cb$$" IF_SA="sa$$" IF_SB="sb$$"
topo_up() {
  local ns
  for ns in "$N_CTL" "$N_SA" "$N_CA" "$N_SB" "$N_CB"; do
    ip netns add "$ns" && LAB_NS+=("$ns") || return 1
    ip -n "$ns" link set lo up
  done
  veth "$N_CTL" "ra$$" 198.18.72.1 "$N_SA" "ua$$" 198.18.72.2 &&
    veth "$N_CTL" "rb$$" 198.18.73.1 "$N_SB" "ub$$" 198.18.73.2 &&
    veth "$N_SA" "$IF_SA" 198.18.70.1 "$N_CA" "$IF_CA" "" &&
    veth "$N_SB" "$IF_SB" 198.18.71.1 "$N_CB" "$IF_CB" ""
}
check "namespaces: controller, two sites, their phones" topo_up

ENDPOINT="tcp://*:$PORT"
FF_NS=$N_CTL
check "controller starts with the shipped profiles" ctl_start --profiles "$REPO/profiles"
unset FF_NS

ff site add berlin --tz Europe/Berlin >/dev/null
ff site add munich --tz Europe/Berlin >/dev/null
ff subnet add berlin 198.18.70.0/24 --pool 198.18.70.100-198.18.70.150 --lease 600 >/dev/null
ff subnet add munich 198.18.71.0/24 --pool 198.18.71.100-198.18.71.150 --lease 600 >/dev/null
enroll() { # SITE CTL_ADDR
  ff agent enroll --site "$1" --out "$T/$1.cred" >/dev/null || return 1
  jq --arg e "tcp://$2:$PORT" '.endpoint = $e' "$T/$1.cred" >"$T/$1.cred.new" &&
    cat "$T/$1.cred.new" >"$T/$1.cred" && rm -f "$T/$1.cred.new"
}
check "agents enrolled" enroll berlin 198.18.72.1
enroll munich 198.18.73.1

# The agents' clocks: berlin is at 23:00 local (inside the night window),
# munich at 12:00 (outside) until it is restarted at 23:00.
offset_to() { echo $(($(TZ=Europe/Berlin date -d "today $1" +%s) - $(date +%s))); }
NIGHT="Mon-Sun 22:00-05:00"
HP=8080
agent_up() { # SITE NS IF ADDR OFFSET
  mkdir -p "$T/$1.root"
  FF_NS=$2 agent_start "$1" --dhcp "$3" --tftp "$4" --http "$4:$HP" --files-root "$T/$1.root" \
    --clock-offset "$5"
  wait_until 30 agent_online "$1"
}
check "berlin agent online (clock at 23:00)" agent_up berlin "$N_SA" "$IF_SA" 198.18.70.1 "$(offset_to 23:00)"
check "munich agent online (clock at 12:00)" agent_up munich "$N_SB" "$IF_SB" 198.18.71.1 "$(offset_to 12:00)"

# ---- inventory and catalog ----
C_B=00:1b:d4:00:01:01   # 7940 at berlin
C_M=00:1b:d4:00:02:01   # 7940 at munich
P_B=00:04:f2:00:01:02   # Polycom VVX 400 at berlin
P_M1=00:04:f2:00:02:02  # Polycom canary at munich
P_M2=00:04:f2:00:02:03  # Polycom at munich, never assigned
ff device add $C_B --site berlin --model CP-7940G >/dev/null
ff device add $C_M --site munich --model CP-7940G >/dev/null
ff device add $P_B --site berlin --model VVX400 >/dev/null
ff device add $P_M1 --site munich --model VVX400 >/dev/null
ff device add $P_M2 --site munich --model VVX400 >/dev/null

FW=$T/fw
mkdir -p "$FW/cisco" "$FW/poly" "$FW/poly6"
for f in P003-08-12-00.bin P003-08-12-00.sbn P0S3-08-12-00.loads P0S3-08-12-00.sb2; do
  head -c $((40000 + RANDOM)) /dev/urandom >"$FW/cisco/$f"
done
head -c 300000 /dev/urandom >"$FW/poly/2345-46200-010.sip.ld"
head -c 200000 /dev/urandom >"$FW/poly6/2345-46200-010.sip.ld"
check "cisco SIP bundle in the catalog" ff firmware add cisco/P0S3-08-12-00 --models CP-7940G,CP-7960G "$FW"/cisco/*
check "polycom 5.9.0.9373 in the catalog" ff firmware add polycom/5.9.0.9373 --models VVX400 "$FW"/poly/*
check "polycom 6.0.0.1 in the catalog" ff firmware add polycom/6.0.0.1 --models VVX400 "$FW"/poly6/*

# ---- the phones ----
cat >"$T/udhcpc.sh" <<'EOF'
#!/bin/sh
# udhcpc script: configure the address, keep what the server said
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"
    env | grep -E '^(ip|opt150|tftp|boot_file|serverid|opt43)=' >"$UDHCP_OUT" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
EOF
chmod +x "$T/udhcpc.sh"
hex() { printf '%b' "$1" | od -An -tx1 -v | tr -d ' \n'; }
CISCO_OLD=$(hex 'Cisco Systems, Inc. IP Phone\0')
CISCO_7940=$(hex 'Cisco Systems, Inc. IP Phone CP-7940G\0')
POLY_HEX="0000363d"$(hex '\x17\x01\x07Polycom\x02\x0cSoundPointIP')
UA_OLD='FileTransport PolycomVVX-VVX_400-UA/5.8.0.1000'
UA_NEW='FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373'

# boot NS IF MAC VENDORHEX: the phone (re)boots and gets a lease
boot() {
  ip -n "$1" addr flush dev "$2"
  ip -n "$1" link set dev "$2" address "$3"
  UDHCP_OUT="$T/lease.$3" ip netns exec "$1" busybox udhcpc -i "$2" -n -q -f -V "" \
    -x "0x3c:$4" -s "$T/udhcpc.sh" -t 5 -T 1 >/dev/null 2>&1
}
lease_of() { sed -n "s/^$2=//p" "$T/lease.$1"; }
# tget NS SERVER NAME: fetch NAME over TFTP into $T/got/NAME
mkdir -p "$T/got"
tget() { rm -f "$T/got/$3"; (cd "$T/got" && ip netns exec "$1" tftp -m binary "$2" -c get "$3" "$3") >/dev/null 2>&1 && [ -s "$T/got/$3" ]; }
hget() { # NS URL UA OUT
  ip netns exec "$1" curl -sf -A "$3" -o "$4" "$2"
}
state() { # ROLLOUT MAC
  ff rollout status "$1" --json --devices | jq -r --arg m "$2" '.devices[] | select(.mac == $m) | .state'
}
is_state() { [ "$(state "$1" "$2")" == "$3" ]; }
rstate() { ff rollout status "$1" --json | jq -r '.rollout.state'; }
rstate_is() { [ "$(rstate "$1")" == "$2" ]; }
downloads() { sqlite3 -readonly "$CTL_DIR/controller.db" "SELECT count(*) FROM event WHERE kind = 'upgrade.downloading'"; }

# ---- rollout 1: every CP-7940G in berlin and munich, nights only ----
check "rollout created" ff rollout create phones --firmware cisco/P0S3-08-12-00 --profile cisco-79xx \
  --sites berlin,munich --models CP-7940G --window "$NIGHT" --waves 100% --max-failures 1
staged() { ff rollout status phones --json | jq -e '[.sites[].staged] | all' >/dev/null; }
check "both sites staged the images before the rollout starts" wait_until 60 staged
check "rollout started" ff rollout start phones
check "berlin 7940 offered (window open)" wait_until 30 is_state phones $C_B offered
check "munich 7940 waiting for its window" wait_until 30 is_state phones $C_M waiting_window

# berlin: old image -> loader -> SIP
check "berlin 7940, old image: a lease" boot "$N_CA" "$IF_CA" $C_B "$CISCO_OLD"
check_eq "old image: option 150 is the agent" c6124601 "$(lease_of $C_B opt150)"
check "old image: OS79XX.TXT served" tget "$N_CA" 198.18.70.1 OS79XX.TXT
check_eq "OS79XX.TXT names the loader, no trailing whitespace" "P003-08-12-00" "$(od -An -c "$T/got/OS79XX.TXT" | tr -d ' \n')"
check "old image: XMLDefault.cnf.xml served" tget "$N_CA" 198.18.70.1 XMLDefault.cnf.xml
check "XMLDefault.cnf.xml points the 7940 at the loader" grep -q 'loadInformation8 model="IP Phone 7940">P003-08-12-00<' "$T/got/XMLDefault.cnf.xml"
check "old image: the loader image" tget "$N_CA" 198.18.70.1 P003-08-12-00.sbn
check_eq "loader bytes are the catalog's" "$(sha256sum <"$FW/cisco/P003-08-12-00.sbn")" "$(sha256sum <"$T/got/P003-08-12-00.sbn")"
check "berlin 7940 downloading" wait_until 20 is_state phones $C_B downloading
check "loader booted: a lease with the model in option 60" boot "$N_CA" "$IF_CA" $C_B "$CISCO_7940"
check_fails "loader: XMLDefault.cnf.xml is only for the old image" tget "$N_CA" 198.18.70.1 XMLDefault.cnf.xml
MACU=$(echo $C_B | tr -d : | tr a-f A-F)
check "loader: SEP<MAC>.cnf.xml served" tget "$N_CA" 198.18.70.1 "SEP$MACU.cnf.xml"
check "SEP<MAC>.cnf.xml loads the SIP image" grep -q '>P0S3-08-12-00<' "$T/got/SEP$MACU.cnf.xml"
check "loader: SIP image .loads" tget "$N_CA" 198.18.70.1 P0S3-08-12-00.loads
check "loader: SIP image .sb2" tget "$N_CA" 198.18.70.1 P0S3-08-12-00.sb2
check "berlin 7940 installed" wait_until 20 is_state phones $C_B installed
check "SIP image booted: a lease" boot "$N_CA" "$IF_CA" $C_B "$CISCO_7940"
check "berlin 7940 verifying after its reboot" wait_until 20 is_state phones $C_B verifying
check "SIP image: SIPDefault.cnf served" tget "$N_CA" 198.18.70.1 SIPDefault.cnf
check "SIPDefault.cnf: image_version is the SIP load" grep -q '^image_version: *P0S3-08-12-00' "$T/got/SIPDefault.cnf"
check "SIP image: SIP<MAC>.cnf served" tget "$N_CA" 198.18.70.1 "SIP$MACU.cnf"
check "berlin 7940 succeeded, seen running the SIP load" wait_until 20 is_state phones $C_B succeeded
check_eq "the inventory records its version" P0S3-08-12-00 "$(ff device show $C_B --json | jq -r '.version')"

# munich: held outside its window
check "munich 7940, old image: a lease" boot "$N_CB" "$IF_CB" $C_M "$CISCO_OLD"
check_fails "outside the window: OS79XX.TXT is not served" tget "$N_CB" 198.18.71.1 OS79XX.TXT
check_fails "outside the window: the SIP image is not served either" tget "$N_CB" 198.18.71.1 P0S3-08-12-00.sb2
check "munich 7940 still waiting for its window" is_state phones $C_M waiting_window
check_eq "rollout still running" running "$(rstate phones)"

# the window opens: munich's agent restarts with its clock at 23:00
agent_kill9 munich
check "munich agent back, clock at 23:00" agent_up munich "$N_SB" "$IF_SB" 198.18.71.1 "$(offset_to 23:00)"
check "munich 7940 offered once its window opened" wait_until 30 is_state phones $C_M offered
boot "$N_CB" "$IF_CB" $C_M "$CISCO_OLD"
check "window open: OS79XX.TXT served" tget "$N_CB" 198.18.71.1 OS79XX.TXT
tget "$N_CB" 198.18.71.1 P003-08-12-00.sbn
boot "$N_CB" "$IF_CB" $C_M "$CISCO_7940"
MACU2=$(echo $C_M | tr -d : | tr a-f A-F)
tget "$N_CB" 198.18.71.1 "SEP$MACU2.cnf.xml"
tget "$N_CB" 198.18.71.1 P0S3-08-12-00.loads
check "window open: the SIP image" tget "$N_CB" 198.18.71.1 P0S3-08-12-00.sb2
boot "$N_CB" "$IF_CB" $C_M "$CISCO_7940"
tget "$N_CB" 198.18.71.1 SIPDefault.cnf
tget "$N_CB" 198.18.71.1 "SIP$MACU2.cnf"
check "munich 7940 succeeded after its window opened" wait_until 20 is_state phones $C_M succeeded
check "rollout phones done" wait_until 20 rstate_is phones done

# ---- rollout 2: the same firmware again: serials equal, nothing re-flashed ----
before=$(downloads)
check "second rollout created" ff rollout create phones-again --firmware cisco/P0S3-08-12-00 \
  --profile cisco-79xx --sites berlin,munich --models CP-7940G --waves 100%
check "second rollout started" ff rollout start phones-again
check "berlin 7940 skipped (serial)" wait_until 20 is_state phones-again $C_B skipped
check "munich 7940 skipped (serial)" wait_until 20 is_state phones-again $C_M skipped
boot "$N_CA" "$IF_CA" $C_B "$CISCO_7940"
check_fails "no SEP<MAC>.cnf.xml upgrade for a device already there" tget "$N_CA" 198.18.70.1 "SEP$MACU.cnf.xml"
check "second rollout done" wait_until 20 rstate_is phones-again done
check_eq "no image downloaded in the second run" "$before" "$(downloads)"

# ---- rollout 3: a Polycom over HTTP ----
check "polycom rollout created" ff rollout create poly --firmware polycom/5.9.0.9373 --profile polycom \
  --sites berlin --models VVX400 --waves 100%
check "polycom rollout started" ff rollout start poly
check "polycom boots with its binary option 60" boot "$N_CA" "$IF_CA" $P_B "$POLY_HEX"
check "polycom offered" wait_until 20 is_state poly $P_B offered
check "master config over HTTP" hget "$N_CA" "http://198.18.70.1:$HP/000000000000.cfg" "$UA_OLD" "$T/got/poly.cfg"
check "master config names the image" grep -q 'APP_FILE_PATH="2345-46200-010.sip.ld"' "$T/got/poly.cfg"
check "image over HTTP" hget "$N_CA" "http://198.18.70.1:$HP/2345-46200-010.sip.ld" "$UA_OLD" "$T/got/poly.ld"
check_eq "image bytes are the catalog's" "$(sha256sum <"$FW/poly/2345-46200-010.sip.ld")" "$(sha256sum <"$T/got/poly.ld")"
check "polycom installed" wait_until 20 is_state poly $P_B installed
boot "$N_CA" "$IF_CA" $P_B "$POLY_HEX"
hget "$N_CA" "http://198.18.70.1:$HP/000000000000.cfg" "$UA_NEW" "$T/got/poly2.cfg"
check "polycom succeeded, the new version in its User-Agent" wait_until 20 is_state poly $P_B succeeded

# ---- rollout 4: the canary comes back on its old version: halted ----
check "canary rollout created" ff rollout create poly6 --firmware polycom/6.0.0.1 --profile polycom \
  --sites munich --models VVX400 --waves 1,100% --max-failures 0
check "canary rollout started" ff rollout start poly6
canary=$(ff rollout status poly6 --json --devices | jq -r '.devices[] | select(.wave == 1) | .mac')
other=$P_M2; [ "$canary" == "$P_M2" ] && other=$P_M1
check "canary booted" boot "$N_CB" "$IF_CB" "$canary" "$POLY_HEX"
check "canary offered" wait_until 20 is_state poly6 "$canary" offered
hget "$N_CB" "http://198.18.71.1:$HP/000000000000.cfg" "$UA_OLD" "$T/got/p6.cfg"
check "canary fetched the image" hget "$N_CB" "http://198.18.71.1:$HP/2345-46200-010.sip.ld" "$UA_OLD" "$T/got/p6.ld"
boot "$N_CB" "$IF_CB" "$canary" "$POLY_HEX"
hget "$N_CB" "http://198.18.71.1:$HP/000000000000.cfg" "$UA_OLD" "$T/got/p6b.cfg"
check "canary failed: came back on its old version" wait_until 20 is_state poly6 "$canary" failed
reason=$(ff rollout status poly6 --json | jq -r '.failures[0].reason')
check "failure reason names the version it came back on ($reason)" grep -q '5.8.0.1000' <<<"$reason"
check "rollout halted" wait_until 20 rstate_is poly6 halted
note "halt reason: $(ff rollout status poly6 --json | jq -r '.rollout.reason')"
halt_says_why() { ff rollout status poly6 --json | jq -e '.rollout.reason | test("fail")' >/dev/null; }
check "halt reason says why" halt_says_why
check_eq "the rest of the fleet was never assigned" pending "$(state poly6 "$other")"

# ---- rollout 5: a 7960 that asks for its image again after the reboot ----
C_F=00:1b:d4:00:01:09
CISCO_7960=$(hex 'Cisco Systems, Inc. IP Phone CP-7960G\0')
ff device add $C_F --site berlin --model CP-7960G >/dev/null
check "7960 rollout created and started" ff rollout create c7960 --firmware cisco/P0S3-08-12-00 \
  --profile cisco-79xx --sites berlin --models CP-7960G --waves 100% --max-failures 1
ff rollout start c7960 >/dev/null
check "7960 boots on an SCCP application" boot "$N_CA" "$IF_CA" $C_F "$CISCO_7960"
check "7960 offered" wait_until 20 is_state c7960 $C_F offered
MACF=$(echo $C_F | tr -d : | tr a-f A-F)
tget "$N_CA" 198.18.70.1 "SEP$MACF.cnf.xml"
check "7960 fetched the SIP image" tget "$N_CA" 198.18.70.1 P0S3-08-12-00.sb2
check "7960 installed" wait_until 20 is_state c7960 $C_F installed
boot "$N_CA" "$IF_CA" $C_F "$CISCO_7960"
tget "$N_CA" 198.18.70.1 P0S3-08-12-00.sb2
check "7960 failed: it asked for its image again after the reboot" wait_until 20 is_state c7960 $C_F failed
check "one failure within --max-failures 1: the rollout is done" wait_until 20 rstate_is c7960 done

finish
