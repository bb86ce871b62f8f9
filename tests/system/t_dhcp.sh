#!/usr/bin/env bash
# t_dhcp.sh: the site agent's DHCP server against real clients in network
# namespaces. The controller and the agent run in the server namespace; the
# configuration (subnets, classes, reservations) goes through the CLI.
#   - busybox udhcpc with exact option 60 bytes (trailing NUL or not,
#     Polycom's binary form), option 77, an OUI: each class gets its options
#     (66, 67, 150, 160), asked for or not; unicast and broadcast replies;
#   - dhclient with `send vendor-class-identifier`, then again from its
#     lease file (INIT-REBOOT): same address; udhcpc's forced renew
#     (RENEWING, unicast): same address;
#   - a reservation with a pinned class; a DECLINE (udhcpc -a finds the
#     address in use) is journaled and reported;
#   - an unknown MAC reaches the controller's inventory as discovered;
#   - dhcrelay (-a: option 82) in a third namespace between a second client
#     network and the server: the subnet is chosen by --relay, option 82
#     comes back to the relay; a one-address pool shows that a release frees
#     the address and that a third client gets nothing while it is taken;
#   - a relay-like probe checks option 82 byte for byte and the B flag of a
#     relayed NAK, and sends a DECLINE; an INFORM from a configured client
#     gets its class's options without an address; a broadcast from a network
#     without a subnet gets silence and one log line;
#   - malformed datagrams do not stop the server;
#   - after kill -9 of the agent the leases are in the journal, a new client
#     gets a new address and the old one gets its own back.
source "$(dirname "$0")/lib.sh"
PROBE=$BIN/tests/tools/dhcp_probe

check "lab namespaces" lab_up ffdsrv ffdcli 198.18.1

# ---- a relay namespace between the server and a second client network ----
# server (vd1: 198.18.3.1) <-> (vr1: 198.18.3.2) relay (vr2: 198.18.2.1) <-> client 2 (vc2)
relay_up() {
  RLY_NS="ffdrly-$$"; CL2_NS="ffdcl2-$$"
  SRV_IF2="vd$$"; RLY_UP="vu$$"; RLY_DN="vw$$"; CL2_IF="vx$$"
  ip netns add "$RLY_NS" && LAB_NS+=("$RLY_NS") || return 1
  ip netns add "$CL2_NS" && LAB_NS+=("$CL2_NS") || return 1
  ip link add "$SRV_IF2" type veth peer name "$RLY_UP" || return 1
  ip link set "$SRV_IF2" netns "$SRV_NS" && ip link set "$RLY_UP" netns "$RLY_NS" || return 1
  ip link add "$RLY_DN" type veth peer name "$CL2_IF" || return 1
  ip link set "$RLY_DN" netns "$RLY_NS" && ip link set "$CL2_IF" netns "$CL2_NS" || return 1
  ip -n "$SRV_NS" addr add 198.18.3.1/24 dev "$SRV_IF2"
  ip -n "$RLY_NS" addr add 198.18.3.2/24 dev "$RLY_UP"
  ip -n "$RLY_NS" addr add 198.18.2.1/24 dev "$RLY_DN"
  local ns
  for ns in "$SRV_NS:$SRV_IF2" "$RLY_NS:$RLY_UP" "$RLY_NS:$RLY_DN" "$CL2_NS:$CL2_IF"; do
    ip -n "${ns%%:*}" link set "${ns#*:}" up || return 1
  done
  ip -n "$RLY_NS" link set lo up; ip -n "$CL2_NS" link set lo up
  ip -n "$SRV_NS" route add 198.18.2.0/24 via 198.18.3.2
}
check "relay namespaces" relay_up

FF_NS="$SRV_NS"
check "controller starts" ctl_start
ff site add branch --tz Europe/Berlin >/dev/null
ff agent enroll --site branch --out "$T/branch.cred" >/dev/null

hex() { printf '%b' "$1" | od -An -tx1 -v | tr -d ' \n'; }

# ---- configuration through the CLI ----
C7940='Cisco Systems, Inc. IP Phone CP-7940G'
cfg() { local d=$1; shift; check "cli: $d" ff "$@"; }
cfg "subnet for the local link" subnet add branch 198.18.1.0/24 --pool 198.18.1.100-198.18.1.120 \
  --router 198.18.1.1 --dns 198.18.1.1,198.18.1.254 --lease 600
cfg "subnet behind the relay" subnet add branch 198.18.2.0/24 --pool 198.18.2.50-198.18.2.50 \
  --router 198.18.2.1 --relay 198.18.2.1 --lease 600
cfg "class c7940 (NUL ignored)" class add c7940 --priority 10 --match "vendor:$C7940" \
  --option 150=@server --option 66=@server --option 67=text:OS79XX.TXT
cfg "class cisco-old (byte-exact with NUL)" class add cisco-old --priority 5 \
  --match 'vendor:Cisco Systems, Inc. IP Phone\0' --option 67=text:XMLDefault.cnf.xml
cfg "class polycom (enterprise)" class add polycom --priority 20 --match enterprise:13885 \
  --option 160=http://198.18.1.1/polycom/
cfg "class digium (prefix)" class add digium --priority 30 --match vendor-prefix:digium_D40 \
  --option 160=http://198.18.1.1/digium/
cfg "class yealink (oui)" class add yealink --priority 40 --match oui:00:15:65 \
  --option 66=yealink-prov.branch.lan
cfg "class ciscoap (suffix, substring)" class add ciscoap --priority 50 \
  --match vendor-suffix:c1240 --match 'vendor-substring:AP.LAP' --option 43=hex:f104c6120101
cfg "class prov (user class)" class add prov --priority 60 --match user-class:prov-a \
  --option 67=text:userclass.cfg
cfg "reserved device with a pinned class" device add 02:00:00:00:aa:01 --site branch \
  --ip 198.18.1.10 --class c7940
cfg "reserved device for the decline" device add 02:00:00:00:aa:02 --site branch --ip 198.18.1.11

agent_start branch --dhcp "$SRV_IF" --dhcp "$SRV_IF2"
check "agent online" wait_until 30 agent_online branch
config_in() { grep -q 'msg=dhcp.config .*subnets=2 classes=7 devices=2' "$T/branch.log"; }
check "agent has the DHCP configuration" wait_until 20 config_in

# the client script prints what it got, then end=EVENT once done (a client
# in the background is read only after that); with CONFIGURE=1 it also sets
# the address and default route (so a release can be sent unicast)
cat >"$T/env.sh" <<'EOF'
#!/bin/sh
echo "event=$1"
env | grep -E '^[a-z][a-z0-9_]*=' | sort
if [ -n "$CONFIGURE" ]; then
  case "$1" in
    bound|renew) ip addr add "$ip/$mask" dev "$interface"; ip route add default via "$router" ;;
    deconfig) ip addr flush dev "$interface" ;;
  esac
fi
echo "end=$1"
EOF
chmod +x "$T/env.sh"

setmac() { ip -n "$CLI_NS" link set dev "$CLI_IF" address "$1"; }
# udhcp OUT MAC VENDORHEX [udhcpc args]: one exchange, exits after the lease
udhcp() {
  local out=$1 mac=$2 vhex=$3; shift 3
  setmac "$mac"
  in_cli busybox udhcpc -i "$CLI_IF" -n -q -f -V "" ${vhex:+-x "0x3c:$vhex"} -s "$T/env.sh" \
    -t 4 -T 1 "$@" >"$out" 2>&1
}
val() { sed -n "s/^$2=//p" "$1" | tail -1; }
pool_ip() { [[ "$1" =~ ^198\.18\.1\.(1[0-1][0-9]|120)$ ]]; }

# ---- classes ----
udhcp "$T/c1" 00:00:0c:00:00:01 "$(hex "$C7940\\0")"
ip1=$(val "$T/c1" ip)
check "c7940 with trailing NUL: an address from the pool ($ip1)" pool_ip "$ip1"
check_eq "c7940 with trailing NUL: option 150 = server" c6120101 "$(val "$T/c1" opt150)"
check_eq "c7940 with trailing NUL: option 66 = server (text)" 198.18.1.1 "$(val "$T/c1" tftp)"
check_eq "c7940 with trailing NUL: option 67" OS79XX.TXT "$(val "$T/c1" bootfile)"
check_eq "subnet: router" 198.18.1.1 "$(val "$T/c1" router)"
check_eq "subnet: dns" "198.18.1.1 198.18.1.254" "$(val "$T/c1" dns)"
check_eq "lease time" 600 "$(val "$T/c1" lease)"
check_eq "server identifier" 198.18.1.1 "$(val "$T/c1" serverid)"
check_eq "T1 = 0.5 lease" 0000012c "$(val "$T/c1" opt58)"
check_eq "T2 = 0.875 lease" 0000020d "$(val "$T/c1" opt59)"

udhcp "$T/c2" 00:00:0c:00:00:02 "$(hex "$C7940")" -B
check_eq "c7940 without NUL (broadcast reply): option 150" c6120101 "$(val "$T/c2" opt150)"
check "two clients, two addresses" test "$(val "$T/c2" ip)" != "$ip1"

udhcp "$T/c3" 00:00:0c:00:00:03 "$(hex 'Cisco Systems, Inc. IP Phone\0')"
check_eq "cisco-old, exact bytes with NUL: option 67" XMLDefault.cnf.xml "$(val "$T/c3" bootfile)"
udhcp "$T/c4" 00:00:0c:00:00:04 "$(hex 'Cisco Systems, Inc. IP Phone')"
check "cisco-old without the NUL: no class, no option 67" test -z "$(val "$T/c4" bootfile)"
check "cisco-old without the NUL: still an address" pool_ip "$(val "$T/c4" ip)"

POLY="0000363d"$(hex '\x17\x01\x07Polycom\x02\x0cSoundPointIP')
udhcp "$T/c5" 00:04:f2:00:00:05 "$POLY"
check_eq "polycom binary option 60: option 160" "$(hex 'http://198.18.1.1/polycom/')" \
  "$(val "$T/c5" opt160)"
udhcp "$T/c6" 00:00:00:00:00:06 "$(hex 'digium_D40_1_0_5_46476')"
# (busybox shows option 66 as $tftp only when it is a valid host name, so
# URLs are checked through option 160, which it passes on as hex)
check_eq "digium prefix: option 160 URL" "$(hex 'http://198.18.1.1/digium/')" "$(val "$T/c6" opt160)"
udhcp "$T/c7" 00:15:65:00:00:07 "$(hex 'yealink')"
check_eq "yealink by OUI: option 66" yealink-prov.branch.lan "$(val "$T/c7" tftp)"
udhcp "$T/c8" 00:00:00:00:00:08 "$(hex 'Cisco AP c1240')"
check_eq "cisco AP by suffix: option 43" f104c6120101 "$(val "$T/c8" opt43)"
udhcp "$T/c9" 00:00:00:00:00:09 "$(hex 'Cisco AP.LAP1510')"
check_eq "cisco AP by substring: option 43" f104c6120101 "$(val "$T/c9" opt43)"
udhcp "$T/c10" 00:00:00:00:00:0a "" -x "0x4d:$(hex 'prov-a')"
check_eq "user class 77 (raw string): option 67" userclass.cfg "$(val "$T/c10" bootfile)"
udhcp "$T/c11" 00:00:00:00:00:0b "" -x "0x4d:$(hex '\x03abc\x06prov-a')"
check_eq "user class 77 (RFC 3004 instances): option 67" userclass.cfg "$(val "$T/c11" bootfile)"

# ---- reservation, pinned class ----
udhcp "$T/r1" 02:00:00:00:aa:01 "$(hex 'snom320')"
check_eq "reservation: fixed address" 198.18.1.10 "$(val "$T/r1" ip)"
check_eq "reservation: pinned class gets option 150" c6120101 "$(val "$T/r1" opt150)"

# ---- dhclient: vendor class from its config, then INIT-REBOOT from its lease file ----
cat >"$T/dhclient.conf" <<EOF
option cisco-tftp code 150 = array of ip-address;
send vendor-class-identifier "$C7940";
request subnet-mask, routers, domain-name-servers, tftp-server-name, bootfile-name, cisco-tftp;
EOF
# (dhclient gives its script a clean environment, and declines the lease
# when the script fails on BOUND)
cat >"$T/dhclient.sh" <<EOF
#!/bin/sh
env | grep -E '^(reason|new_ip_address|new_tftp_server_name|new_bootfile_name|new_cisco_tftp)=' |
  sort >>"$T/dhclient.out"
echo "--" >>"$T/dhclient.out"
exit 0
EOF
chmod +x "$T/dhclient.sh"
dhcl() {
  setmac 00:00:0c:00:00:21
  in_cli timeout 20 dhclient -4 -1 -v -cf "$T/dhclient.conf" \
    -sf "$T/dhclient.sh" -lf "$T/dhclient.leases" -pf "$T/dhclient.pid" "$CLI_IF" >>"$T/dhclient.log" 2>&1
  in_cli dhclient -x -pf "$T/dhclient.pid" >/dev/null 2>&1
}
dhcl
dip=$(sed -n 's/^new_ip_address=//p' "$T/dhclient.out" | tail -1)
check "dhclient: an address from the pool ($dip)" pool_ip "$dip"
check "dhclient: option 150 from the class" grep -q "^new_cisco_tftp=198.18.1.1$" "$T/dhclient.out"
check "dhclient: option 66 from the class" grep -q "^new_tftp_server_name=198.18.1.1$" "$T/dhclient.out"
check_eq "dhclient: option 67" OS79XX.TXT "$(sed -n 's/^new_bootfile_name=//p' "$T/dhclient.out" | tail -1)"
: >"$T/dhclient.out"
dhcl
check "dhclient again from its lease file: INIT-REBOOT" grep -q '^reason=REBOOT' "$T/dhclient.out"
dip2=$(sed -n 's/^new_ip_address=//p' "$T/dhclient.out" | tail -1)
check "dhclient INIT-REBOOT: same address ($dip2)" test -n "$dip" -a "$dip2" == "$dip"
in_cli ip addr flush dev "$CLI_IF"

# ---- RENEWING: udhcpc stays, configures the address, renews on SIGUSR1 ----
cat >"$T/cfg.sh" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew) ip addr add "$ip/$mask" dev "$interface" 2>/dev/null; echo "event=$1 ip=$ip" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
EOF
chmod +x "$T/cfg.sh"
setmac 00:00:0c:00:00:31
ip netns exec "$CLI_NS" busybox udhcpc -i "$CLI_IF" -f -V "" -x "0x3c:$(hex "$C7940")" \
  -s "$T/cfg.sh" -p "$T/udhcpc.pid" >"$T/renew.out" 2>&1 &
UPID=$!
check "udhcpc bound" wait_until 10 grep -q '^event=bound' "$T/renew.out"
rip=$(sed -n 's/^event=bound ip=//p' "$T/renew.out" | head -1)
kill -USR1 "$(cat "$T/udhcpc.pid")"
check "udhcpc renew (unicast REQUEST with ciaddr) answered" wait_until 10 grep -q '^event=renew' "$T/renew.out"
rip2=$(sed -n 's/^event=renew ip=//p' "$T/renew.out" | head -1)
check "renew keeps the address ($rip2)" test -n "$rip" -a "$rip2" == "$rip"
kill $UPID; wait $UPID 2>/dev/null
in_cli ip addr flush dev "$CLI_IF"

# ---- DECLINE: the reserved address is in use on the wire ----
in_srv ip addr add 198.18.1.11/32 dev "$SRV_IF"
udhcp "$T/d1" 02:00:00:00:aa:02 "" -a -t 2
in_srv ip addr del 198.18.1.11/32 dev "$SRV_IF"
lease_state() { sqlite3 -readonly "$T/branch.state/journal.db" "SELECT state FROM dhcp_lease WHERE addr = '$1'"; }
check_eq "decline: journaled as declined" declined "$(lease_state 198.18.1.11)"
decline_event() { ff event list --kind dhcp.decline --json | jq -e '.[] | select(.mac == "02:00:00:00:aa:02")'; }
check "decline: dhcp.decline event at the controller" wait_until 15 decline_event

# ---- events and discovery ----
discovered() {
  ff device list --json | jq -e '.[] | select(.mac == "00:00:00:00:00:06" and .origin == "discovered")'
}
check "unknown MAC in the inventory as discovered" wait_until 15 discovered
check "device.discovered carries the vendor class" \
  grep -q 'msg=dhcp.discovered mac=00:00:00:00:00:06 vendor_class="digium_D40_1_0_5_46476"' "$T/branch.log"
check "reserved devices are not 'discovered'" test -z "$(ff event list --kind device.discovered --mac 02:00:00:00:aa:01 --json | jq -r '.[].mac')"
lease_event() {
  ff event list --kind dhcp.lease --mac 00:00:0c:00:00:01 --json |
    jq -e --arg ip "$ip1" '.[] | select(.detail | contains("ip=" + $ip) and contains("class=c7940") and contains("renew=0"))'
}
check "dhcp.lease event with ip, class, vendor class" wait_until 15 lease_event

# ---- through a real relay (dhcrelay -a adds option 82) ----
in_srv timeout 25 tcpdump -i "$SRV_IF2" -n -vv -l 'udp port 67' >"$T/tcpdump.out" 2>"$T/tcpdump.err" &
TDPID=$!
sleep 1
ip netns exec "$RLY_NS" dhcrelay -d -4 -a --no-pid -iu "$RLY_UP" -id "$RLY_DN" 198.18.3.1 >>"$T/dhcrelay.log" 2>&1 &
PIDS[dhcrelay]=$!
# dhcrelay prints "Sending on ..." once its sockets are up; on a loaded machine
# that can take a while, so wait for it rather than a fixed time
wait_until 20 grep -q '^Sending on' "$T/dhcrelay.log" || note "dhcrelay did not say it is ready"
udhcp2() {
  local out=$1 mac=$2; shift 2
  ip -n "$CL2_NS" link set dev "$CL2_IF" address "$mac"
  ip netns exec "$CL2_NS" busybox udhcpc -i "$CL2_IF" -n -q -f -V "" -x "0x3c:$(hex "$C7940")" \
    -s "$T/env.sh" -t 4 -T 1 "$@" >"$out" 2>&1
}
# the first client stays (busybox sends no RELEASE with -q -R: it quits
# before it counts as bound), configures its address and route, and
# releases on SIGUSR2: a unicast routed through the relay namespace
ip netns exec "$RLY_NS" sysctl -qw net.ipv4.ip_forward=1
ip -n "$CL2_NS" link set dev "$CL2_IF" address 00:00:0c:00:02:01
CONFIGURE=1 ip netns exec "$CL2_NS" busybox udhcpc -i "$CL2_IF" -f -V "" \
  -x "0x3c:$(hex "$C7940")" -s "$T/env.sh" -p "$T/x1.pid" >"$T/x1" 2>&1 &
X1=$!
# end=bound: the script has written everything (event=bound comes first)
check "relayed client bound" wait_until 40 grep -q '^end=bound' "$T/x1"
check_eq "relayed: the relay's subnet (by --relay)" 198.18.2.50 "$(val "$T/x1" ip)"
check_eq "relayed: router of that subnet" 198.18.2.1 "$(val "$T/x1" router)"
check_eq "relayed: server id is the address the relay talks to" 198.18.3.1 "$(val "$T/x1" serverid)"
check_eq "relayed: class options too, @server = the address the relay talks to" c6120301 \
  "$(val "$T/x1" opt150)"
kill -USR2 "$(cat "$T/x1.pid")"
rel_state() { [ "$(lease_state 198.18.2.50)" == released ]; }
check "relayed client released its address: journaled" wait_until 5 rel_state
kill "$X1"; wait "$X1" 2>/dev/null
release_event() { ff event list --kind dhcp.release --mac 00:00:0c:00:02:01 --json | jq -e 'length > 0'; }
check "dhcp.release event at the controller" wait_until 15 release_event
udhcp2 "$T/x2" 00:00:0c:00:02:02
check_eq "release frees it: the one-address pool serves another client" 198.18.2.50 "$(val "$T/x2" ip)"
udhcp2 "$T/x3" 00:00:0c:00:02:03
check "no address is handed to two clients: a third client gets none" test -z "$(val "$T/x3" ip)"
wait $TDPID 2>/dev/null
# each server -> relay reply block must carry the agent information option
o82_replies() {
  awk '/^[0-9]/ { hdr = 0 } / 198\.18\.3\.1\.67 > 198\.18\.2\.1\.67/ { hdr = 1 }
       hdr && /Agent-Information/ { n++; hdr = 0 } END { print n + 0 }' "$T/tcpdump.out"
}
replies() { grep -c '198\.18\.3\.1\.67 > 198\.18\.2\.1\.67' "$T/tcpdump.out"; }
n82=$(o82_replies); nrep=$(replies)
note "replies to the relay: $nrep, with option 82: $n82"
check "option 82 added by dhcrelay comes back in every reply ($n82 of $nrep)" test "$nrep" -ge 4 -a "$n82" -eq "$nrep"
kill "${PIDS[dhcrelay]}" 2>/dev/null; wait "${PIDS[dhcrelay]}" 2>/dev/null; unset 'PIDS[dhcrelay]'

# ---- a network without a subnet: silence, one log line per MAC ----
ip netns exec "$RLY_NS" busybox udhcpc -i "$RLY_UP" -n -q -f -V "" -s "$T/env.sh" -t 3 -T 1 >"$T/ns.out" 2>&1
check "no subnet for that network: no lease" test -z "$(val "$T/ns.out" ip)"
rmac=$(ip -n "$RLY_NS" -br link show "$RLY_UP" | awk '{print $3}')
check_eq "no subnet: logged once for that MAC" 1 "$(grep -c "msg=dhcp.no_subnet mac=$rmac" "$T/branch.log")"

# ---- relay-like probe: option 82 byte for byte, NAK with the B flag, DECLINE ----
in_cli ip addr add 198.18.1.2/24 dev "$CLI_IF"
in_cli "$PROBE" relay "$CLI_IF" 198.18.1.1 198.18.1.2 02:00:00:00:bb:01 decline >"$T/probe.out" 2>&1
check "probe as relay (giaddr inside the cidr): offer, ack, 82 echoed, NAK with B flag" \
  grep -q '^nak bflag=1' "$T/probe.out"
pip=$(sed -n 's/^declined //p' "$T/probe.out")
declined_p() { [ "$(lease_state "$pip")" == declined ]; }
check "probe's DECLINE of $pip journaled" wait_until 5 declined_p
# a phone with a static address asks for its boot server (Polycom, Yealink do)
in_cli "$PROBE" inform "$CLI_IF" 198.18.1.1 198.18.1.2 00:04:f2:00:00:61 "$POLY" >"$T/inform.out" 2>&1
check "INFORM: ACK to ciaddr, no yiaddr, no lease time" grep -q '^inform-ack$' "$T/inform.out"
check_eq "INFORM: the class's option 160" "$(hex 'http://198.18.1.1/polycom/')" \
  "$(sed -n 's/^opt160=//p' "$T/inform.out")"
check_eq "INFORM: subnet router" c6120101 "$(sed -n 's/^opt3=//p' "$T/inform.out")"
in_cli ip addr flush dev "$CLI_IF"

# ---- kill -9: leases survive, nobody gets an address twice ----
udhcp "$T/k1" 00:00:0c:00:00:51 "$(hex "$C7940")"
kip=$(val "$T/k1" ip)
agent_kill9 branch
row() { sqlite3 -readonly "$T/branch.state/journal.db" "SELECT addr, state FROM dhcp_lease WHERE mac = '$1'"; }
check_eq "after kill -9: the lease is in the journal" "$kip|bound" "$(row 00:00:0c:00:00:51)"
agent_start branch --dhcp "$SRV_IF" --dhcp "$SRV_IF2"
check "agent back online" wait_until 30 agent_online branch
loaded() { grep -q 'msg=dhcp.leases_loaded rows=[1-9]' "$T/branch.log"; }
check "agent reloaded its leases" wait_until 10 loaded
udhcp "$T/k2" 00:00:0c:00:00:52 "$(hex "$C7940")"
k2=$(val "$T/k2" ip)
check "a new client after the restart gets another address ($k2)" test -n "$k2" -a "$k2" != "$kip"
udhcp "$T/k3" 00:00:0c:00:00:51 "$(hex "$C7940")"
check_eq "the old client gets its address back" "$kip" "$(val "$T/k3" ip)"
check_eq "and the c7940 client of the first round too" "$ip1" \
  "$(udhcp "$T/k4" 00:00:0c:00:00:01 "$(hex "$C7940\\0")"; val "$T/k4" ip)"
dups=$(sqlite3 -readonly "$T/branch.state/journal.db" \
  "SELECT count(*) FROM (SELECT mac FROM dhcp_lease WHERE state = 'bound' GROUP BY mac HAVING count(*) > 1)")
check_eq "journal: no MAC bound twice" 0 "$dups"

# ---- malformed datagrams ----
check "probe sends 1000 malformed datagrams" in_cli "$PROBE" garbage "$CLI_IF" 67 1000
check "agent still running" kill -0 "${PIDS[branch]}"
udhcp "$T/g1" 00:00:0c:00:00:41 "$(hex "$C7940")"
check "still serving after the garbage" pool_ip "$(val "$T/g1" ip)"

stop_all
check "clean stop logged the counters" grep -q 'msg=dhcp.stop .*bad=[1-9]' "$T/branch.log"
finish
