#!/usr/bin/env bash
# bench_dhcp.sh BUILDDIR OUTFILE: DHCPv4 DORA, firmfleet-agent beside Kea and
# dnsmasq. The server runs in one namespace, perfdhcp (broadcast mode, -l
# IFACE) in another; every server hands out the same /21 pool with the same
# class (option 60 prefix "Cisco" gets option 66), and keeps leases on disk
# (Kea memfile persist, dnsmasq leasefile, ours its journal).
#   1. a real client (busybox udhcpc) must get an address and option 66 from
#      the server, or the server is not measured;
#   2. highest rate with <= 0.1% of exchanges lost: rate ladder of short runs
#      (a failed step is retried once), then one step between pass and fail;
#   3. server CPU per 1,000 leases at one fixed rate all servers sustain
#      (half the lowest maximum), and fsync/fdatasync calls per lease
#      (strace, a separate run, not timed).
AREA=dhcp
source "$(dirname "$0")/bench_lib.sh"

CLIENTS=${BENCH_DHCP_CLIENTS:-1000}
STEP_SECS=${BENCH_DHCP_STEP_SECS:-3}
FIXED_SECS=${BENCH_DHCP_FIXED_SECS:-15}
LADDER=(100 250 500 750 1000 1500 2000 3000 4000 6000 8000 12000 16000 24000 32000)
LADDER_BUDGET=${BENCH_DHCP_LADDER_BUDGET:-75}   # seconds per server
VENDOR="Cisco Systems, Inc. IP Phone CP-7961G"
VENDOR_HEX=$(printf '%s' "$VENDOR" | od -An -tx1 | tr -d ' \n')
POOL_START=198.18.105.0 POOL_END=198.18.111.254

bench_lab_up 198.18.104 21 || { bnote "could not make the lab"; exit 1; }

# ---- the servers ----
kea_start() {
  local d=$T/kea; rm -rf "$d"; mkdir -p "$d"
  cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$SRV_IF" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/leases4.csv", "lfc-interval": 0 },
  "valid-lifetime": 3600,
  "client-classes": [ { "name": "phones", "test": "substring(option[60].text,0,5) == 'Cisco'",
      "option-data": [ { "name": "tftp-server-name", "data": "$SRV_IP" } ] } ],
  "subnet4": [ { "id": 1, "subnet": "$SRV_NET", "pools": [ { "pool": "$POOL_START - $POOL_END" } ],
      "option-data": [ { "name": "routers", "data": "$SRV_IP" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "$d/kea.log" } ], "severity": "WARN" } ]
} }
EOF
  srv_start kea env KEA_PIDFILE_DIR="$d" KEA_LOCKFILE_DIR="$d" kea-dhcp4 -c "$d/kea.json"
}
dnsmasq_start() {
  local d=$T/dnsmasq; rm -rf "$d"; mkdir -p "$d"
  srv_start dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 \
    --user=root --group=root --pid-file="$d/pid" --log-facility="$d/dnsmasq.log" --quiet-dhcp \
    --interface="$SRV_IF" --bind-interfaces --no-ping --dhcp-lease-max=100000 \
    --dhcp-range="$POOL_START,$POOL_END,255.255.248.0,1h" --dhcp-leasefile="$d/leases" \
    --dhcp-option=3,"$SRV_IP" \
    --dhcp-vendorclass=set:phones,Cisco --dhcp-option=tag:phones,66,"$SRV_IP"
}
firmfleet_start() {
  ff_up || return 1
  ff subnet add bench "$SRV_NET" --pool "$POOL_START-$POOL_END" --router "$SRV_IP" --lease 3600 \
    >/dev/null 2>>"$T/cli.log" \
    || { FF_REASON="'firmfleet subnet add' failed: $(tail -1 "$T/cli.log")"; return 1; }
  ff class add phones --match vendor-prefix:Cisco --option 66=@server >/dev/null 2>>"$T/cli.log" \
    || { FF_REASON="'firmfleet class add' failed: $(tail -1 "$T/cli.log")"; return 1; }
  ff_agent_start --dhcp "$SRV_IF" || return 1
  SRV[firmfleet]=${SRV[agent]}
}
server_start() { # NAME: 0 when it answers a real client
  FF_REASON=""
  case $1 in
    kea) kea_start ;;
    dnsmasq) dnsmasq_start ;;
    firmfleet) firmfleet_start || return 1 ;;
  esac
  probe "$1"
}
server_stop() {
  if [ "$1" = firmfleet ]; then ff_down; unset 'SRV[firmfleet]'; else srv_stop "$1"; fi
}

# probe NAME: busybox udhcpc with option 60 must get an address in the pool
# and option 66 = the server's address (up to 15 s: the server may still be
# starting).
probe() {
  local name=$1 out=$T/udhcpc.$1 i
  printf '#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip tftp=$tftp router=$router" >>%s\nexit 0\n' "$out" >"$T/udhcpc.sh"
  chmod +x "$T/udhcpc.sh"; rm -f "$out"
  for i in 1 2 3; do
    srv_alive "$name" || break
    in_cli timeout 8 busybox udhcpc -i "$CLI_IF" -n -q -f -t 4 -T 1 -A 1 -V "$VENDOR" -O tftp \
      -s "$T/udhcpc.sh" >>"$T/udhcpc.log" 2>&1 && [ -s "$out" ] && break
  done
  if ! srv_alive "$name"; then FF_REASON="${FF_REASON:-server exited (log: $(tail -1 "$T/$name.log" 2>/dev/null))}"; return 1; fi
  if [ ! -s "$out" ]; then FF_REASON="no DHCP lease for busybox udhcpc in 24 s"; return 1; fi
  local ip tftp
  ip=$(sed -n 's/.*ip=\([^ ]*\).*/\1/p' "$out" | tail -1)
  tftp=$(sed -n 's/.*tftp=\([^ ]*\).*/\1/p' "$out" | tail -1)
  case "$ip" in 198.18.10[5-9].*|198.18.11[01].*) ;; *) FF_REASON="lease $ip outside the pool"; return 1 ;; esac
  [ "$tftp" = "$SRV_IP" ] || { FF_REASON="option 66 was '$tftp', expected $SRV_IP"; return 1; }
  return 0
}

# perf RATE SECS [PERFDHCP OPTIONS]: one perfdhcp run; prints "sentDO recvDO
# sentRA recvRA". perfdhcp draws the same client MACs (from -R CLIENTS) in the
# same order every run, so after the first ~CLIENTS exchanges most DORAs are
# from clients that already hold a lease (devices rebooting) - alike for all.
perf() {
  local rate=$1 secs=$2; shift 2
  in_cli timeout $((secs + 20)) perfdhcp -4 -l "$CLI_IF" -r "$rate" -R "$CLIENTS" -p "$secs" -W 500000 \
    -o "60,$VENDOR_HEX" "$@" 2>&1 | tee -a "$T/perfdhcp.log" | awk '
      /Statistics for: DISCOVER-OFFER/ { s = 1 } /Statistics for: REQUEST-ACK/ { s = 2 }
      /^sent packets:/ { sent[s] = $3 } /^received packets:/ { recv[s] = $3 }
      END { printf "%d %d %d %d\n", sent[1], recv[1], sent[2], recv[2] }'
}
# verdict RATE SECS "sentDO recvDO sentRA recvRA": pass | fail | genlimit
verdict() {
  awk -v r="$1" -v p="$2" -v l="$3" 'BEGIN {
    split(l, a, " "); if (a[1] < 0.9 * r * p) { print "genlimit"; exit }
    lost = (a[1] - a[4]) / a[1]; print (lost <= 0.001 ? "pass" : "fail") }'
}

ladder() { # NAME: prints the highest passing rate (0 if none) and a flag
  local name=$1 best=0 fail=0 flag="" r l v t0=$SECONDS try secs
  for r in "${LADDER[@]}"; do
    [ $((SECONDS - t0)) -lt "$LADDER_BUDGET" ] || { flag=" (time budget)"; break; }
    # at least ~2,000 exchanges per step, so that 0.1% is two of them
    secs=$(( (2000 + r - 1) / r )); [ "$secs" -lt "$STEP_SECS" ] && secs=$STEP_SECS
    [ "$secs" -gt 8 ] && secs=8
    for try in 1 2; do
      srv_alive "$name" || { echo "0 (server died)"; return; }
      l=$(perf "$r" "$secs"); v=$(verdict "$r" "$secs" "$l")
      bnote "$name rate $r/s: sent/recv DO ${l% * *} RA ${l#* * } -> $v"
      [ "$v" = fail ] && [ "$try" = 1 ] && continue
      break
    done
    if [ "$v" = pass ]; then best=$r; continue; fi
    [ "$v" = genlimit ] && flag=" (perfdhcp could not send faster)"
    fail=$r; break
  done
  if [ "$fail" -gt 0 ] && [ "$best" -gt 0 ] && [ "$v" = fail ]; then
    local mid=$(((best + fail) / 2 / 50 * 50))
    if [ "$mid" -gt "$best" ]; then
      l=$(perf "$mid" "$STEP_SECS"); v=$(verdict "$mid" "$STEP_SECS" "$l")
      bnote "$name rate $mid/s: sent/recv DO ${l% * *} RA ${l#* * } -> $v"
      [ "$v" = pass ] && best=$mid
    fi
  fi
  [ "$fail" = 0 ] && [ -z "$flag" ] && flag=" (top of the ladder)"
  echo "$best$flag"
}

ver kea "kea-dhcp4 $(pkgver kea-dhcp4-server)"
ver dnsmasq "dnsmasq $(pkgver dnsmasq-base)"
ver perfdhcp "perfdhcp $(pkgver kea-admin)"
mnote "DHCP: perfdhcp -4 -l IFACE -R $CLIENTS (broadcast, option 60 '$VENDOR'); pool $POOL_START-$POOL_END of $SRV_NET; ladder of runs of ${STEP_SECS}-8 s (at least 2,000 exchanges each; a failed step is retried once), pass = at most 0.1% of started exchanges without ACK; CPU per 1,000 ACKed leases from a ${FIXED_SECS}s run at one rate for all."

declare -A MAXR=()
SERVERS=()
for s in kea dnsmasq firmfleet; do
  bnote "$s: starting"
  if ! server_start "$s"; then
    skip "$s" "$FF_REASON"; server_stop "$s"; continue
  fi
  SERVERS+=("$s")
  m=$(ladder "$s")
  MAXR[$s]=${m%% *}
  bnote "$s: max $m"
  res "DORA" "max rate, <=0.1% lost" "$s" "${MAXR[$s]}" "leases/s" higher
  [ "$m" != "${m%% *}" ] && mnote "DHCP $s max rate: $m"
  server_stop "$s"
done

[ ${#SERVERS[@]} -gt 0 ] || exit 0
# one rate every measured server sustained: half the lowest maximum, 50..1000
low=$(for s in "${SERVERS[@]}"; do echo "${MAXR[$s]}"; done | sort -n | head -1)
FIXED=$((low / 2 / 50 * 50)); [ "$FIXED" -lt 50 ] && FIXED=50; [ "$FIXED" -gt 1000 ] && FIXED=1000
mnote "DHCP CPU: fixed rate $FIXED leases/s (half the lowest maximum) for ${FIXED_SECS}s, fresh lease store; fsync/fdatasync calls counted with strace -f in a separate 3 s run at the same rate from clients never seen before (every ACK a new lease)."

for s in "${SERVERS[@]}"; do
  server_start "$s" || { skip "$s" "restart failed: $FF_REASON"; server_stop "$s"; continue; }
  sleep 0.5
  cpu_begin "$s"; sleep 3
  res "idle" "CPU while idle" "$s" "$(calc "100 * $(cpu_end "$s") / 3")" "% of a core" lower
  cpu_begin "$s"; [ "$s" = firmfleet ] && cpu_begin ctl
  l=$(perf "$FIXED" "$FIXED_SECS")
  sleep 0.3
  cpu=$(cpu_end "$s")
  acks=$(echo "$l" | awk '{print $4}')
  lost=$(echo "$l" | awk '{ if ($1 > 0) printf "%.3f", 100 * ($1 - $4) / $1; else print "n/a" }')
  bnote "$s fixed $FIXED/s: $l, cpu ${cpu}s"
  if [ "${acks:-0}" -gt 0 ]; then
    res "DORA" "CPU s per 1,000 leases @ $FIXED/s" "$s" "$(calc "$cpu * 1000 / $acks")" "s" lower
    res "DORA" "lost @ $FIXED/s" "$s" "$lost" "%" check
  fi
  if [ "$s" = firmfleet ]; then
    mnote "DHCP firmfleet: controller CPU during the fixed-rate run $(cpu_end ctl) s (not in the agent's figure)."
  fi
  # durability: sync calls per lease, in a separate untimed run. strace logs
  # each call as it happens (a -c summary is lost when a multi-threaded
  # tracee is detached by SIGINT)
  if command -v strace >/dev/null; then
    rm -f "$T/strace.$s"
    strace -f -qq -e trace=fsync,fdatasync,sync_file_range,msync,sync,syncfs \
      -o "$T/strace.$s" -p "${SRV[$s]}" 2>"$T/strace.$s.err" &
    st=$!
    sleep 1
    l=$(perf "$FIXED" 3 -b mac=00:0c:02:00:00:00)     # clients never seen: new leases
    sleep 0.5
    kill -INT "$st" 2>/dev/null; wait "$st" 2>/dev/null
    acks=$(echo "$l" | awk '{print $4}')
    if [ -e "$T/strace.$s" ] && [ "${acks:-0}" -gt 0 ]; then
      syncs=$(grep -cE '(fsync|fdatasync|sync_file_range|msync|sync|syncfs)\(' "$T/strace.$s")
      res "DORA" "fsync calls per new lease @ $FIXED/s" "$s" "$(calc "$syncs / $acks")" "" info
    fi
  fi
  server_stop "$s"
done
exit 0
