#!/usr/bin/env bash
# t_sip_notify: the agent makes a device fetch now. A phone (sipp as a UAS,
# in its own network namespace) has a DHCP reservation; its DHCP DISCOVER
# (busybox udhcpc with option 60 "SipPhone/1.0", from the phone's MAC) makes
# the agent's profile "sipphone" recognise it, whose restart is
# `check-sync;reboot=true`; the controller assigns it a
# firmware with no window, so the agent offers the upgrade at once and sends
# a SIP NOTIFY to the phone's port. Checked: the NOTIFY arrives with the
# profile's Event header and the generic headers of a NOTIFY
# (Subscription-State, CSeq, Max-Forwards, Content-Length), the phone's 200
# comes back as device.restart ok=1 at the controller, upgrade.offered says
# restart=sent, once; the agent's own journal holds the device's state
# `offered`. A garbage datagram sent to the agent's SIP socket hurts nothing.
source "$(dirname "$0")/lib.sh"

command -v sipp >/dev/null || { note "sipp not installed"; echo "1..0 # SKIP no sipp"; exit 0; }
check "lab namespaces" lab_up agtpsrv agtpcli 198.18.60
PHONE_MAC=02:60:00:00:00:02

mkdir -p "$T/profiles"
cat >"$T/profiles/sipphone.json" <<'JSON'
{
  "name": "sipphone",
  "description": "test phone: SIP NOTIFY check-sync;reboot=true",
  "priority": 50,
  "recognise": ["vendor-prefix:SipPhone"],
  "version": [{"from": "vendor", "regex": "^SipPhone/([0-9.]+)"}],
  "final_image": "*.rom",
  "restart": {"event": "check-sync;reboot=true"}
}
JSON

cat >"$T/uas.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="phone answering NOTIFY">
  <recv request="NOTIFY" crlf="true"></recv>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
XML

FF_NS="$SRV_NS"
check "controller starts with the profile" ctl_start --profiles "$T/profiles"
ff site add branch --tz Europe/Berlin >/dev/null
ff agent enroll --site branch --out "$T/branch.cred" >/dev/null
check "subnet" ff subnet add branch 198.18.60.0/24 --pool 198.18.60.100-198.18.60.120 --lease 600
check "phone added with a reservation" ff device add "$PHONE_MAC" --site branch --model SP-1 --ip "$CLI_IP"
ip -n "$CLI_NS" link set "$CLI_IF" address "$PHONE_MAC"
ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
printf 'firmware-image' >"$T/sp-2.0.rom"
check "firmware added" ff firmware add sipco/2.0 --models SP-1 "$T/sp-2.0.rom"

# the phone: sipp on 5060, one call, every message traced
(cd "$T" && ip netns exec "$CLI_NS" timeout 60 sipp -sf "$T/uas.xml" -i "$CLI_IP" -p 5060 -m 1 \
  -nostdin -trace_msg -message_file "$T/sipp.msg" >"$T/sipp.out" 2>&1) &
PIDS[sipp]=$!
sleep 0.5

agent_start branch --log-level debug --dhcp "$SRV_IF"
check "agent online" wait_until 30 agent_online branch
has_config() { grep -q 'prov.config profiles=1 of=1 devices=1' "$T/branch.log"; }
check "agent holds the profile and the device" wait_until 20 has_config
vhex=$(printf 'SipPhone/1.0' | od -An -tx1 -v | tr -d ' \n')
dhcp_once() { ip netns exec "$CLI_NS" timeout 10 busybox udhcpc -i "$CLI_IF" -n -q -f -V "" \
  -x "0x3c:$vhex" -s /bin/true >>"$T/udhcpc.out" 2>&1; }
check "the phone got its lease" dhcp_once
recognised() { sqlite3 -readonly "$T/branch.state/journal.db" \
  "SELECT profile || ' ' || version FROM prov_device WHERE mac = '$PHONE_MAC'" 2>/dev/null | grep -qx 'sipphone 1.0'; }
check "the agent recognised the phone (profile, version)" wait_until 10 recognised
version_ev() { ff event list --kind device.version | grep -q 'version=1.0 profile=sipphone'; }
check "device.version reached the controller" wait_until 20 version_ev
check "device assigned" ff device assign "$PHONE_MAC" --firmware sipco/2.0

got_notify() { grep -q 'NOTIFY sip:' "$T/sipp.msg" 2>/dev/null; }
check "the phone received a NOTIFY" wait_until 20 got_notify
check "Event header is the profile's" grep -q '^Event: check-sync;reboot=true' "$T/sipp.msg"
check "Subscription-State: terminated" grep -q '^Subscription-State: terminated' "$T/sipp.msg"
check "CSeq N NOTIFY" grep -qE '^CSeq: [0-9]+ NOTIFY' "$T/sipp.msg"
check "Max-Forwards: 70" grep -q '^Max-Forwards: 70' "$T/sipp.msg"
check "Via with a z9hG4bK branch and rport" grep -qE '^Via: SIP/2.0/UDP 198\.18\.60\.1:[0-9]+;branch=z9hG4bK[0-9a-f]+;rport' "$T/sipp.msg"
check "Request-URI to the phone's address" grep -q "NOTIFY sip:anonymous@$CLI_IP:5060 SIP/2.0" "$T/sipp.msg"
check "Content-Length: 0" grep -q '^Content-Length: 0' "$T/sipp.msg"

restart_ok() { ff event list --kind device.restart | grep -q 'ok=1 status=200'; }
check "device.restart ok=1 reached the controller" wait_until 20 restart_ok
offered_sent() { ff event list --kind upgrade.offered | grep -q 'restart=sent'; }
check "upgrade.offered restart=sent reached the controller" wait_until 20 offered_sent
check_eq "upgrade.offered once" 1 "$(ff event list --kind upgrade.offered | grep -c 'restart=sent')"
check_eq "device state in the agent's journal" offered \
  "$(sqlite3 -readonly "$T/branch.state/journal.db" "SELECT state FROM prov_device WHERE mac = '$PHONE_MAC'")"
check "sipp saw one successful call" wait_until 20 bash -c "! kill -0 ${PIDS[sipp]} 2>/dev/null"

# hostile input at the agent's SIP port: ignored, the agent lives on
sport=$(ip netns exec "$SRV_NS" ss -Hunlp 2>/dev/null | grep firmfleet-agent | awk '{print $4}' | sed 's/.*://' | head -1)
if [ -n "$sport" ]; then
  ip netns exec "$SRV_NS" bash -c "printf 'SIP/2.0 200 garbage\r\n\r\n' >/dev/udp/127.0.0.1/$sport" 2>/dev/null
  ip netns exec "$SRV_NS" bash -c "head -c 3000 /dev/urandom >/dev/udp/127.0.0.1/$sport" 2>/dev/null
fi
sleep 0.5
check "agent still running after garbage" kill -0 "${PIDS[branch]}"
finish
