#!/usr/bin/env bash
# site.sh BUILDDIR OUTFILE: one site at full load (issue "one site at full
# load"): SITE_DEVICES simulated phones (default 500; half Cisco 7940 over
# TFTP, half Polycom VVX over HTTP) upgrading at once through one agent, as
# after a power cut: every phone powers on in the same instant (--ramp 0),
# so the agent takes a DHCP burst, then every phone fetches its images
# (Cisco: universal loader, then the SIP load; Polycom: the sip.ld) of
# SITE_IMAGE_MIB MiB (default 4) each, reboots and comes back on the new
# version. Two rollouts (one per family), --waves 100%, no window, no site
# concurrency cap: everything is allowed at once.
# One firmfleetd and one firmfleet-agent (--dhcp, --tftp, --http, --metrics)
# in namespace ffpk<PID>sa, firmfleet-sim in ffpk<PID>sp, on one veth pair
# (LAN 198.18.108.0/22, pool of 1,009 addresses).
# Figures ("T" lines: a ready markdown table; "N" notes) for run.sh:
#   - DHCP burst: from power-on to the last device's first lease (the
#     simulator's -v lines), and the DISCOVER/REQUEST retransmissions in it;
#   - makespan: power-on to every device on its new version with its
#     config read (the simulator's run time), and whether each ended there;
#   - retries: the simulator's (retransmissions and re-fetches) and the
#     agent's metrics (/metrics deltas: DHCP requests and replies, dropped
#     replies, TFTP transfers failed, HTTP timeouts);
#   - the agent's peak RSS (VmHWM, and VmRSS polled every 0.2 s) and CPU
#     (utime+stime of /proc/PID/stat) per device upgraded, beside the
#     controller's and the simulator's CPU in the same run (the machine is
#     shared: compare CPU per device, not wall-clock, across runs).
AREA=site
source "$(dirname "$0")/bench_lib.sh"

N=${SITE_DEVICES:-500}
MIB=${SITE_IMAGE_MIB:-4}
SIM_TIMEOUT=${SITE_TIMEOUT:-240}
NC=$((N / 2)) NP=$((N - N / 2))
[ "$N" -ge 2 ] && [ "$N" -le 1000 ] || { echo "site.sh: SITE_DEVICES 2..1000" >&2; exit 2; }
A=ffpk$$sa P=ffpk$$sp
HP=8080 MP=9108 SRV=198.18.108.1
tline() { printf 'T\t%s\n' "$*" >>"$OUT"; }
s_cleanup() { stop_all 2>/dev/null; lab_down; }
trap 's_cleanup; bench_cleanup' EXIT

net_up() {
  ip netns add $A && LAB_NS+=($A) && ip netns add $P && LAB_NS+=($P) || return 1
  ip -n $A link set lo up && ip -n $P link set lo up &&
    veth $A fsa$$ "" $P fsp$$ "" && ip -n $A addr add $SRV/22 dev fsa$$
}
net_up || { echo "site.sh: namespaces" >&2; exit 1; }
FF_NS=$A
ENDPOINT=tcp://127.0.0.1:$PORT
ctl_start --profiles "$REPO/profiles" || exit 1
ff site add site --tz UTC >/dev/null &&
  ff subnet add site 198.18.108.0/22 --pool 198.18.108.10-198.18.111.250 --router $SRV --lease 86400 >/dev/null &&
  ff agent enroll --site site --out "$T/site.cred" >/dev/null || { echo "site.sh: setup failed" >&2; exit 1; }
SIMARGS=(--devices "cisco-79xx:$NC" --devices "polycom:$NP" --http-port $HP --mac-prefix 02:5f:6c --seed 5
  --poll 2s --reboot-time 1s --ramp 0 --timeout "$SIM_TIMEOUT" --json -v
  --expect-version cisco-79xx=P0S3-08-12-00 --expect-version polycom=5.9.0.9373)
{
  echo "mac,site,model"
  "$BIN/firmfleet-sim" "${SIMARGS[@]}" --list | awk -F, '{ print $1 ",site," $3 }'
} >"$T/devices.csv"
ff device import "$T/devices.csv" >/dev/null || { echo "site.sh: device import" >&2; exit 1; }
mkdir -p "$T/root" "$T/fw/cisco" "$T/fw/polycom"
agent_start site --dhcp fsa$$ --tftp $SRV --http "$SRV:$HP" --files-root "$T/root" --metrics "127.0.0.1:$MP"
AGENT=${PIDS[site]}
wait_until 30 agent_online site || { echo "site.sh: agent not online" >&2; tail -5 "$T/site.log" >&2; exit 1; }
kib() { head -c $(($1 * 1024)) /dev/urandom >"$2"; }
kib 512 "$T/fw/cisco/P003-08-12-00.bin" # the universal loader
kib 512 "$T/fw/cisco/P003-08-12-00.sbn"
kib $((MIB * 1024)) "$T/fw/cisco/P0S3-08-12-00.sb2" # the SIP load
printf 'P0S3-08-12-00.sb2\n' >"$T/fw/cisco/P0S3-08-12-00.loads"
kib $((MIB * 1024)) "$T/fw/polycom/2345-46200-010.sip.ld"
ff firmware add cisco/P0S3-08-12-00 --models CP-7940G "$T"/fw/cisco/* >/dev/null &&
  ff firmware add polycom/5.9.0.9373 --models VVX_400 "$T"/fw/polycom/* >/dev/null &&
  ff rollout create rc --firmware cisco/P0S3-08-12-00 --profile cisco-79xx --sites site --models CP-7940G \
    --waves 100% --site-concurrency 0 >/dev/null &&
  ff rollout create rp --firmware polycom/5.9.0.9373 --profile polycom --sites site --models VVX_400 \
    --waves 100% --site-concurrency 0 >/dev/null || { echo "site.sh: firmware or rollouts" >&2; exit 1; }
staged() { local r; for r in rc rp; do ff rollout status $r --json | jq -e '[.sites[].staged] | all' >/dev/null || return 1; done; }
wait_until 120 staged || { echo "site.sh: images not staged" >&2; exit 1; }
ff rollout start rc >/dev/null && ff rollout start rp >/dev/null || exit 1
bnote "$N devices ($NC cisco-79xx over TFTP, $NP polycom over HTTP), images $MIB MiB, all powered on at once"

metrics() { ip netns exec $A curl -s --max-time 5 "http://127.0.0.1:$MP/metrics"; }
metrics >"$T/m0.txt"
ip netns exec $A nstat -asz >"$T/nA0.txt"; ip netns exec $P nstat -asz >"$T/nP0.txt"
RSS0=$(awk '/^VmRSS:/ { print $2 }' /proc/$AGENT/status)
read -r A0 _ <<<"$(tree_stat "$AGENT")"
read -r C0 _ <<<"$(tree_stat "${PIDS[ctl]}")"
ip netns exec $P "$BIN/firmfleet-sim" "${SIMARGS[@]}" --iface fsp$$ --quiet >"$T/sim.json" 2>"$T/sim.log" &
SIMPID=$!
# the agent's RSS, polled while the phones run (VmHWM is the exact peak)
peak=0 SIMT=0
while kill -0 $SIMPID 2>/dev/null; do
  r=$(awk '/^VmRSS:/ { print $2 }' /proc/$AGENT/status 2>/dev/null)
  [ -n "$r" ] && [ "$r" -gt $peak ] && peak=$r
  read -r st _ <<<"$(tree_stat $SIMPID)"
  [ "${st:-0}" -gt 0 ] && SIMT=$st # the last poll may come after its exit
  sleep 0.2
done
wait $SIMPID
SIM_RC=$?
read -r A1 _ <<<"$(tree_stat "$AGENT")"
read -r C1 _ <<<"$(tree_stat "${PIDS[ctl]}")"
HWM=$(awk '/^VmHWM:/ { print $2 }' /proc/$AGENT/status)
done_() { local r; for r in rc rp; do [ "$(ff rollout status $r --json | jq -r .rollout.state)" = done ] || return 1; done; }
wait_until 60 done_ && RDONE=yes || RDONE=no
metrics >"$T/m1.txt"
ip netns exec $A nstat -asz >"$T/nA1.txt"; ip netns exec $P nstat -asz >"$T/nP1.txt"
SUCC=$(for r in rc rp; do ff rollout status $r --json --devices | jq '[.devices[] | select(.state == "succeeded")] | length'; done | awk '{ s += $1 } END { print s + 0 }')

# ---- figures ----
j() { jq -r "$1" "$T/sim.json" 2>/dev/null; }
# m FILE NAME [LABELS]: a sample's value (0 when absent)
m() { awk -v n="$2" -v l="${3:-}" '$1 == n l { v = $2 } END { print v + 0 }' "$1"; }
d() { echo $(($(m "$T/m1.txt" "$@" | cut -d. -f1) - $(m "$T/m0.txt" "$@" | cut -d. -f1))); }
# the simulator's -v lines: "t=SEC mac=M ... lease=IP tries=N" and "... fetch=... retransmits=N"
read -r BURST DHCP_RETX LEASED <<<"$(awk '/ lease=/ { split($1, t, "="); split($2, mm, "="); m = mm[2];
    if (!(m in first)) { first[m] = t[2]; n++; if (t[2] > max) max = t[2];
      for (i = 3; i <= NF; i++) if ($i ~ /^tries=/) { split($i, k, "="); rt += k[2] } } }
    END { printf "%.2f %d %d\n", max, rt, n }' "$T/sim.log")"
FETCH_RETX=$(awk '/ fetch=/ { for (i = 3; i <= NF; i++) if ($i ~ /^retransmits=/) { split($i, k, "="); s += k[2] } } END { print s + 0 }' "$T/sim.log")
MAKESPAN=$(j '.seconds')
OK=$(j '[.families[].ok] | add')
UPG=$(j '[.families[].upgraded] | add')
RETRIES=$(j '[.families[].retries] | add')
IMAGES=$(j '[.families[].images] | add')
LEASES=$(j '[.families[].leases] | add')
BYTES=$(j '[.families[].bytes] | add')
HZ=$(getconf CLK_TCK)
ACPU=$(calc "($A1 - $A0) / $HZ")
CCPU=$(calc "($C1 - $C0) / $HZ")
SCPU=$(calc "${SIMT:-0} / $HZ")
per() { fmt "$(calc "$1 * 1000 / ($2 > 0 ? $2 : 1)")" "%.1f"; }
DISC=$(d firmfleet_dhcp_requests_total '{type="discover"}')
REQ=$(d firmfleet_dhcp_requests_total '{type="request"}')
OFFER=$(d firmfleet_dhcp_replies_total '{type="offer"}')
ACK=$(d firmfleet_dhcp_replies_total '{type="ack"}')
NAK=$(d firmfleet_dhcp_replies_total '{type="nak"}')
DROP=$(d firmfleet_dhcp_dropped_total)
TDONE=$(d firmfleet_tftp_transfers_total '{result="done"}')
TFAIL=$(d firmfleet_tftp_transfers_total '{result="failed"}')
H2=$(d firmfleet_http_requests_total '{code="2xx"}')
HTO=$(d firmfleet_http_timeouts_total)
HREJ=$(d firmfleet_http_rejected_total)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
# nstat deltas: nv NS_FILE_PREFIX COUNTER
nv() { echo $(($(awk -v c="$2" '$1 == c { v = $2 } END { print v + 0 }' "${1}1.txt") - $(awk -v c="$2" '$1 == c { v = $2 } END { print v + 0 }' "${1}0.txt"))); }
nd() { local f; [ "$1" = $A ] && f=$T/nA || f=$T/nP; echo $(($(nv "$f" UdpRcvbufErrors) + $(nv "$f" UdpSndbufErrors))); }
nt() { local f; [ "$1" = $A ] && f=$T/nA || f=$T/nP; nv "$f" TcpRetransSegs; }

tline "| figure | value |"
tline "|---|---:|"
tline "| devices powered on at once (cisco-79xx TFTP / polycom HTTP), image size | $N ($NC / $NP), $MIB MiB |"
tline "| DHCP burst: power-on to the last device's first lease | $BURST s ($LEASED leased) |"
tline "| DHCP: leases taken by the devices (every boot) / DISCOVERs the agent got beyond one per lease / REQUEST retransmissions | $LEASES / $((DISC - LEASES)) / $DHCP_RETX |"
tline "| kernel UDP drops, agent side / device side (UdpRcvbufErrors+UdpSndbufErrors, nstat) | $(nd $A) / $(nd $P) |"
tline "| TCP segments retransmitted, device side (TcpRetransSegs) | $(nt $P) |"
tline "| makespan: power-on to every device upgraded, config read | $MAKESPAN s |"
tline "| devices where expected / upgraded / rollouts' succeeded (simulator exit $SIM_RC, rollouts done: $RDONE) | $OK / $UPG / $SUCC |"
tline "| image downloads / payload served | $IMAGES / $(fmt "$(calc "$BYTES / 1048576")" %.0f) MiB |"
tline "| simulator retries (retransmissions and re-fetches) / TFTP block retransmits | $RETRIES / $FETCH_RETX |"
tline "| agent: DHCP discover / request / offer / ack / nak / dropped | $DISC / $REQ / $OFFER / $ACK / $NAK / $DROP |"
tline "| agent: TFTP transfers done / failed; HTTP 2xx / timeouts / rejected | $TDONE / $TFAIL; $H2 / $HTO / $HREJ |"
tline "| agent: SIP check-sync NOTIFYs sent / retransmitted / not sent (prov.restart_failed) | $(d firmfleet_sip_notify_total '{result="sent"}') / $(d firmfleet_sip_notify_retransmits_total) / $(grep -c 'msg=prov.restart_failed' "$T/site.log") |"
tline "| agent peak RSS (VmHWM; polled VmRSS max; RSS before the burst) | $(fmt "$(calc "$HWM / 1024")" %.1f) MiB ($(fmt "$(calc "$peak / 1024")" %.1f); $(fmt "$(calc "$RSS0 / 1024")" %.1f)) |"
tline "| agent CPU for the run / per 1,000 devices upgraded | $(fmt "$ACPU" %.2f) s / $(per "$ACPU" "${UPG:-0}") s |"
tline "| same run: controller CPU / simulator CPU per 1,000 devices | $(per "$CCPU" "${UPG:-0}") s / $(per "$SCPU" "${UPG:-0}") s |"
mnote "site: load average at the end $LOAD (2 cores shared with other work); wall-clock figures move with it, CPU per device less so"
[ "$SIM_RC" = 0 ] || mnote "site: **the simulator exited $SIM_RC: not every device ended where expected** ($(j '[.not_ok[]? | .reason] | group_by(.) | map("\(length)x \(.[0])") | join(", ")'))"
awk -F'\t' '$1 == "T" { print "  " $2 }' "$OUT" >&2
[ "$SIM_RC" = 0 ] && [ "$RDONE" = yes ]
