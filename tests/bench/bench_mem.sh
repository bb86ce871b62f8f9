#!/usr/bin/env bash
# bench_mem.sh BUILDDIR OUTFILE: memory of the agent with every service on
# (DHCP, TFTP, HTTP; controller connected), idle and while 500 transfers run
# at once (250 TFTP 4 MiB blksize 1468 + 250 HTTP 4 MiB read at 256 KB/s, so
# both kinds overlap), beside the stack operators run today for the same
# job: dnsmasq (DHCP + TFTP) plus nginx (1 worker). RSS is VmRSS summed over
# the server processes (nginx: master + worker), sampled every 0.25 s during
# the load; VmHWM is each process's own peak, summed. PSS (smaps_rollup)
# counts a page shared with other processes (libc, other libraries) in
# proportion, so it is the memory the stack really adds to the machine;
# RSS counts every shared-library page in full. PSS is read at idle only
# (under load the clients share libc with the server and its PSS drops).
# The issue's goal is read
# on RSS: idle <= 8 MiB, <= 64 MiB with the 500 transfers.
AREA=mem
source "$(dirname "$0")/bench_lib.sh"

N_TFTP=${BENCH_MEM_TFTP:-250} N_HTTP=${BENCH_MEM_HTTP:-250}
STACKS=${BENCH_MEM_STACKS:-peers firmfleet} # "firmfleet" alone while working on the agent
FETCH=$BENCH_HOME/fetch.sh
bench_lab_up 198.18.114 24 || { bnote "could not make the lab"; exit 1; }
ROOT=$T/files
mkdir -p "$ROOT" "$T/dl"
head -c $((4 << 20)) /dev/urandom >"$ROOT/big.bin"
chmod 0755 "$ROOT"; chmod 0644 "$ROOT"/*
SIZE=$(stat -c %s "$ROOT/big.bin")
DHCP_NOTE=""

nginx_conf() {
  local d=$T/nginx; mkdir -p "$d/tmp"
  cat >"$d/nginx.conf" <<EOC
daemon off; master_process on; worker_processes 1; user root;
pid $d/nginx.pid; error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on; tcp_nopush on; access_log off; keepalive_timeout 65;
  default_type application/octet-stream;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server { listen $SRV_IP:8080; root $ROOT; }
}
EOC
}

# stack_start NAME: sets MEMBERS (server names whose trees are summed)
stack_start() {
  FF_REASON=""
  case $1 in
    peers)
      srv_start dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root --group=root \
        --pid-file="$T/dnsmasq.pid" --log-facility="$T/dnsmasq.daemon.log" --quiet-dhcp --quiet-tftp \
        --interface="$SRV_IF" --bind-interfaces --no-ping --dhcp-leasefile="$T/dnsmasq.leases" \
        --dhcp-range=198.18.114.100,198.18.114.200,255.255.255.0,1h \
        --enable-tftp --tftp-root="$ROOT" --tftp-max=1000
      nginx_conf
      srv_start nginx nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log"
      MEMBERS=(dnsmasq nginx) ;;
    firmfleet)
      ff_up || return 1
      local dh=(--dhcp "$SRV_IF")
      if ! ff subnet add bench "$SRV_NET" --pool 198.18.114.100-198.18.114.200 --router "$SRV_IP" \
           >/dev/null 2>>"$T/cli.log"; then
        dh=(); DHCP_NOTE="DHCP off (subnet could not be configured: $(tail -1 "$T/cli.log"))"
      fi
      if ! ff_agent_start "${dh[@]}" --tftp "$SRV_IP:69" --http "$SRV_IP:8080" --files-root "$ROOT"; then
        [ ${#dh[@]} -gt 0 ] || return 1
        # DHCP itself may be what is missing: TFTP + HTTP alone still say something
        local first=$FF_REASON
        srv_stop agent
        dh=(); DHCP_NOTE="DHCP off ($first)"
        ff_agent_start --tftp "$SRV_IP:69" --http "$SRV_IP:8080" --files-root "$ROOT" || return 1
      fi
      SRV[firmfleet]=${SRV[agent]}
      MEMBERS=(firmfleet) ;;
  esac
  local i
  for i in $(seq 1 50); do port_up tcp 8080 && port_up udp 69 && break; sleep 0.1; done
  for i in "${MEMBERS[@]}"; do srv_alive "$i" || { FF_REASON="$i exited: $(tail -1 "$T/$i.log")"; return 1; }; done
  port_up tcp 8080 && port_up udp 69 || { FF_REASON="TFTP or HTTP port not listening"; return 1; }
  in_cli curl -sS --max-time 10 -o "$T/dl/probe" "http://$SRV_IP:8080/big.bin" 2>>"$T/curl.log" \
    && cmp -s "$T/dl/probe" "$ROOT/big.bin" || { FF_REASON="HTTP probe failed"; return 1; }
  rm -f "$T/dl/probe"
  in_cli curl -sS --max-time 10 --tftp-blksize 1468 -o "$T/dl/probe" "tftp://$SRV_IP/big.bin" 2>>"$T/curl.log" \
    && cmp -s "$T/dl/probe" "$ROOT/big.bin" || { FF_REASON="TFTP probe failed"; return 1; }
  return 0
}
stack_stop() {
  if [ "$1" = firmfleet ]; then ff_down; unset 'SRV[firmfleet]'; else srv_stop dnsmasq; srv_stop nginx; fi
}
# mem_now: "RSS_KB HWM_KB PSS_KB PSS_ANON_KB PSS_FILE_KB" summed over MEMBERS
mem_now() {
  local m r=0 h=0 p=0 pa=0 pf=0 a b c d e
  for m in "${MEMBERS[@]}"; do
    read -r _ a b _ <<<"$(tree_stat "${SRV[$m]}")"
    read -r c d e <<<"$(tree_pss "${SRV[$m]}")"
    r=$((r + a)); h=$((h + b)); p=$((p + c)); pa=$((pa + d)); pf=$((pf + e))
  done
  echo "$r $h $p $pa $pf"
}
mib() { calc "$1 / 1024"; }

ver dnsmasq "dnsmasq $(pkgver dnsmasq-base)"
ver nginx "nginx $(pkgver nginx)"
mnote "Memory: idle = 3 s after start (ours: after the agent is online); load = $N_TFTP TFTP (curl, blksize 1468) + $N_HTTP HTTP (curl --limit-rate 256K) downloads of one 4 MiB file, all started at once; peer stack = dnsmasq (DHCP+TFTP) + nginx (master + 1 worker)."

for s in $STACKS; do
  bnote "$s: starting"
  if ! stack_start "$s"; then
    skip "$([ "$s" = peers ] && echo dnsmasq+nginx || echo firmfleet)" "$FF_REASON"; stack_stop "$s"; continue
  fi
  name=$s; [ "$s" = peers ] && name=dnsmasq+nginx
  sleep 3
  read -r rss0 _ pss0 pssa0 pssf0 <<<"$(mem_now)"
  res "idle" "RSS" "$name" "$(mib "$rss0")" "MiB" lower
  res "idle" "PSS" "$name" "$(mib "$pss0")" "MiB" lower
  res "idle" "PSS anonymous (heap, stacks)" "$name" "$(mib "$pssa0")" "MiB" lower
  res "idle" "PSS file-backed (code, libraries)" "$name" "$(mib "$pssf0")" "MiB" lower
  for m in "${MEMBERS[@]}"; do
    for p in $(tree_pids "${SRV[$m]}"); do cat "/proc/$p/smaps" >"$T/smaps.idle.$m.$p" 2>/dev/null; done
  done
  # the load: both kinds at once, bounded by timeout; sample while it runs
  rm -rf "$T/dl"; mkdir -p "$T/dl"
  {
    for i in $(seq 1 "$N_TFTP"); do echo "tftp1468 $SRV_IP big.bin $SIZE $T/dl 25 1 $i"; done
    for i in $(seq 1001 $((1000 + N_HTTP))); do echo "http-slow $SRV_IP:8080 big.bin $SIZE $T/dl 25 1 $i"; done
  } | sort -R >"$T/load.list"
  ( in_cli timeout 90 xargs -P $((N_TFTP + N_HTTP)) -L1 sh -c '"$0" "$@" >/dev/null 2>&1 || echo x' "$FETCH" \
      <"$T/load.list" | wc -l >"$T/load.failed" ) &
  loadpid=$!
  peak=0 conns=0 udps=0 t0=$SECONDS
  while kill -0 "$loadpid" 2>/dev/null && [ $((SECONDS - t0)) -lt 100 ]; do
    read -r r _ <<<"$(mem_now)"; [ "$r" -gt "$peak" ] && peak=$r
    c=$(in_srv ss -Htn state established "( sport = :8080 )" 2>/dev/null | wc -l); [ "$c" -gt "$conns" ] && conns=$c
    u=$(in_srv ss -Huan 2>/dev/null | wc -l); [ "$u" -gt "$udps" ] && udps=$u
    echo "$((SECONDS - t0)) rss=$r http=$c udp=$u" >>"$T/samples.$s"
    sleep 0.25
  done
  wait "$loadpid"
  loadsecs=$((SECONDS - t0))
  read -r rss1 hwm _ <<<"$(mem_now)"
  failed=$(cat "$T/load.failed" 2>/dev/null || echo "?")
  bad=0; for f in "$T"/dl/*; do [ -e "$f" ] || continue; cmp -s "$f" "$ROOT/big.bin" || bad=$((bad + 1)); done
  bnote "$name: idle $(mib "$rss0") MiB (PSS $(mib "$pss0")), peak $(mib "$peak") MiB, HWM $(mib "$hwm") MiB, after $(mib "$rss1") MiB; failed $failed; $bad corrupt; max $conns HTTP conns, $udps UDP sockets; load ${loadsecs}s"
  res "500 mixed" "peak RSS (sampled)" "$name" "$(mib "$peak")" "MiB" lower
  res "500 mixed" "VmHWM" "$name" "$(mib "$hwm")" "MiB" lower
  res "500 mixed" "RSS after" "$name" "$(mib "$rss1")" "MiB" lower
  res "500 mixed" "failed transfers" "$name" "$failed" "of $((N_TFTP + N_HTTP))" check
  res "500 mixed" "sampled copies not byte-exact" "$name" "$bad" "" check
  mnote "Memory $name: the load took ${loadsecs}s; at most $conns HTTP connections and $udps UDP sockets were open at one time in the server namespace (sampled)."
  if [ "$s" = firmfleet ]; then
    mnote "Memory firmfleet against the goal (issue 3, RSS): idle $(fmt "$(mib "$rss0")") MiB ($(awk -v v="$rss0" 'BEGIN { print (v <= 8 * 1024) ? "met, <= 8 MiB" : "NOT met, > 8 MiB" }')); with the $((N_TFTP + N_HTTP)) transfers peak $(fmt "$(mib "$peak")") MiB ($(awk -v v="$peak" 'BEGIN { print (v <= 64 * 1024) ? "met, <= 64 MiB" : "NOT met, > 64 MiB" }'))."
    if [ -n "$DHCP_NOTE" ]; then mnote "Memory firmfleet: $DHCP_NOTE"
    else mnote "Memory firmfleet: DHCP (subnet configured), TFTP and HTTP on, controller connected."; fi
  fi
  if [ "$s" = firmfleet ]; then
    read -r _ cr _ _ <<<"$(tree_stat "${SRV[ctl]}")"
    mnote "Memory firmfleet: controller RSS $(mib "$cr") MiB (a separate host in production; not counted)"
  fi
  stack_stop "$s"
done
exit 0
