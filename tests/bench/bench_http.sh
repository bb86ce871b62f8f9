#!/usr/bin/env bash
# bench_http.sh BUILDDIR OUTFILE: HTTP GET throughput, firmfleet-agent beside
# nginx (1 worker, sendfile on, access_log off, keepalive). wrk in the client
# namespace, the same threads/connections/duration for every server, on a
# 4 KiB and a 4 MiB file. Before wrk, curl must get each file back byte-exact
# with status 200; after, wrk must report no socket errors and no status
# > 399, and the bytes per response must be at least the file size (a 3xx or
# an empty 200 cannot pass for the file).
# Figures: requests/s, MB/s, server CPU per 1,000 requests and per GB.
AREA=http
source "$(dirname "$0")/bench_lib.sh"

THREADS=${BENCH_HTTP_THREADS:-2} CONNS=${BENCH_HTTP_CONNS:-50} DUR=${BENCH_HTTP_SECS:-8}
WRK_TIMEOUT=${BENCH_HTTP_TIMEOUT:-10}   # s; wrk's default (2 s) is short for 4 MiB over 50 connections
PORT_HTTP=8080

bench_lab_up 198.18.113 24 || { bnote "could not make the lab"; exit 1; }
ROOT=$T/files
mkdir -p "$ROOT" "$T/dl"
head -c 4096 /dev/urandom >"$ROOT/f4k.bin"
head -c $((4 << 20)) /dev/urandom >"$ROOT/f4m.bin"
chmod 0755 "$ROOT"; chmod 0644 "$ROOT"/*

nginx_conf() {
  local d=$T/nginx; mkdir -p "$d/tmp"
  cat >"$d/nginx.conf" <<EOC
daemon off;
master_process on;
worker_processes 1;
user root;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  sendfile on; tcp_nopush on; tcp_nodelay on;
  access_log off;
  keepalive_timeout 65; keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server { listen $SRV_IP:$PORT_HTTP; root $ROOT; }
}
EOC
}
server_start() {
  FF_REASON=""
  case $1 in
    nginx)
      nginx_conf
      srv_start nginx nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" ;;
    firmfleet)
      ff_up || return 1
      ff_agent_start --http "$SRV_IP:$PORT_HTTP" --files-root "$ROOT" || return 1
      SRV[firmfleet]=${SRV[agent]} ;;
  esac
  local i f code
  for i in $(seq 1 50); do port_up tcp "$PORT_HTTP" && break; srv_alive "$1" || break; sleep 0.1; done
  srv_alive "$1" || { FF_REASON="${FF_REASON:-server exited: $(tail -1 "$T/$1.log" 2>/dev/null)}"; return 1; }
  for f in f4k.bin f4m.bin; do
    rm -f "$T/dl/$f"
    code=$(in_cli curl -sS --max-time 10 -o "$T/dl/$f" -w '%{http_code}' "http://$SRV_IP:$PORT_HTTP/$f" 2>>"$T/curl.log")
    [ "$code" = 200 ] || { FF_REASON="GET /$f answered '$code', not 200"; return 1; }
    cmp -s "$T/dl/$f" "$ROOT/$f" || { FF_REASON="GET /$f did not come back byte-exact"; return 1; }
  done
  return 0
}
server_stop() {
  if [ "$1" = firmfleet ]; then ff_down; unset 'SRV[firmfleet]'; else srv_stop "$1"; fi
}

# wrk_once SERVER FILE: prints the FFB line plus " cpu=SECONDS"
wrk_once() {
  local s=$1 f=$2 line cpu
  sleep 0.3
  cpu_begin "$s"
  line=$(in_cli timeout $((DUR + 30)) wrk -t "$THREADS" -c "$CONNS" -d "${DUR}s" --timeout "${WRK_TIMEOUT}s" -s "$BENCH_HOME/wrk_report.lua" \
           "http://$SRV_IP:$PORT_HTTP/$f" 2>&1 | tee -a "$T/wrk.log" | grep '^FFB ')
  sleep 0.3
  cpu=$(cpu_end "$s")
  echo "$line cpu=$cpu"
}
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

run_case() { # SERVER TEST FILE
  local s=$1 test=$2 f=$3 size i line req bytes us errs cpu
  size=$(stat -c %s "$ROOT/$f")
  local rps=() mbs=() ck=() cg=() p99=() bad=0 short=0 dropped=0
  # warm-up (not counted): page cache, connections, lazy set-up
  in_cli timeout 20 wrk -t "$THREADS" -c "$CONNS" -d 2s --timeout "${WRK_TIMEOUT}s" "http://$SRV_IP:$PORT_HTTP/$f" >/dev/null 2>&1
  for i in $(seq 1 "$REPS"); do
    srv_alive "$s" || break
    line=$(wrk_once "$s" "$f")
    req=$(kv "$line" requests); bytes=$(kv "$line" bytes); us=$(kv "$line" duration_us); cpu=$(kv "$line" cpu)
    if [ -z "$req" ] || [ "$req" -eq 0 ]; then
      bnote "$s $test round $i: no result from wrk"; bad=$((bad + 1)); continue
    fi
    errs=$(( $(kv "$line" connect) + $(kv "$line" read) + $(kv "$line" write) + $(kv "$line" status) + $(kv "$line" timeout) ))
    bnote "$s $test round $i: $req requests, $bytes bytes, errors $errs (status $(kv "$line" status)), cpu ${cpu}s"
    bad=$((bad + errs))
    if [ "$errs" -gt 0 ]; then dropped=$((dropped + 1)); continue; fi   # only clean rounds count
    [ "$(calc "$bytes / $req >= $size")" = 1 ] || short=$((short + 1))
    rps+=("$(calc "$req / ($us / 1e6)")")
    mbs+=("$(calc "$bytes / 1e6 / ($us / 1e6)")")
    ck+=("$(calc "$cpu * 1000 / $req")")
    cg+=("$(calc "$cpu / ($bytes / 1e9)")")
    p99+=("$(calc "$(kv "$line" p99_us) / 1000")")
  done
  res "$test" "errors + non-2xx" "$s" "$bad" "" check
  [ "$dropped" -gt 0 ] && mnote "HTTP $test $s: $dropped of $REPS rounds had socket errors or status > 399 and are left out of the figures (wrk: $(grep -E 'Socket errors|Non-2xx' "$T/wrk.log" | tail -1 | sed 's/^ *//'))"
  if [ "$short" -gt 0 ] || [ ${#rps[@]} -eq 0 ]; then
    mnote "HTTP $test $s: figures withheld (responses shorter than the file in $short rounds, $bad errors)"
    return
  fi
  res "$test" "requests/s" "$s" "$(median "${rps[@]}")" "req/s" higher
  res "$test" "MB/s" "$s" "$(median "${mbs[@]}")" "MB/s" higher
  res "$test" "CPU s per 1,000 requests" "$s" "$(median "${ck[@]}")" "s" lower
  res "$test" "CPU s per GB" "$s" "$(median "${cg[@]}")" "s" lower
  res "$test" "p99 latency" "$s" "$(median "${p99[@]}")" "ms" lower
}

ver nginx "nginx $(pkgver nginx)"
ver wrk "wrk $(pkgver wrk)"
mnote "HTTP: wrk -t $THREADS -c $CONNS -d ${DUR}s --timeout ${WRK_TIMEOUT}s (keep-alive) on a 4 KiB and a 4 MiB file, 2 s warm-up, then $REPS rounds, medians; nginx: 1 worker, sendfile on, tcp_nopush, access_log off. Each file fetched byte-exact with curl first; a round counts only with no socket error and no status > 399."

for s in nginx firmfleet; do
  bnote "$s: starting"
  if ! server_start "$s"; then skip "$s" "$FF_REASON"; server_stop "$s"; continue; fi
  run_case "$s" "4KiB" f4k.bin
  run_case "$s" "4MiB" f4m.bin
  server_stop "$s"
done
exit 0
