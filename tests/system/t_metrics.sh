#!/usr/bin/env bash
# t_metrics: firmfleetd --metrics and firmfleet-agent --metrics on loopback,
# scraped with curl: every line of both scrapes follows the Prometheus text
# grammar (0.0.4) and every sample's metric has # HELP and # TYPE before it;
# the numbers move as they should (agents_online 1 once the agent is up,
# HTTP requests by class grow with GETs and 404s, an agent event reaches the
# controller's ingested count and leaves the agent's backlog at 0); other
# paths get 404, other methods 405; and garbage, an oversized head, a
# half-sent request and idle connections that fill every slot do not hurt
# either daemon (both still answer, the idle ones are closed by timeout).
source "$(dirname "$0")/lib.sh"

CM=$(free_port)
AM=$(free_port)
HP=$(free_port)
CURL_C=http://127.0.0.1:$CM/metrics
CURL_A=http://127.0.0.1:$AM/metrics
ROOT=$T/root
mkdir -p "$ROOT"
printf 'cfg for 0004f2aabb01\n' >"$ROOT/0004f2aabb01.cfg"
head -c 1000 /dev/urandom >"$ROOT/small.bin"

scrape() { curl -sf --max-time 5 "$1"; }
# value FILE SERIES: the value of the sample whose name{labels} is SERIES
value() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "absent" }' "$1"; }
cval() { scrape "$CURL_C" >"$T/c.prom" && value "$T/c.prom" "$1"; }
aval() { scrape "$CURL_A" >"$T/a.prom" && value "$T/a.prom" "$1"; }
# valid FILE: prints the first offending line and fails, or succeeds
valid() {
  awk '
    function base(n) { sub(/_(bucket|sum|count)$/, "", n); return n }
    /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* / { help[$3] = 1; next }
    /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|summary|histogram|untyped)$/ {
      if (!($3 in help)) { print "TYPE before HELP: " $0; bad = 1; exit }
      type[$3] = $4; next }
    /^#/ { print "bad comment: " $0; bad = 1; exit }
    {
      if ($0 !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*")*\})? (NaN|[+-]Inf|-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$/) {
        print "bad sample: " $0; bad = 1; exit }
      n = $0; sub(/[{ ].*/, "", n)
      if (!(n in type) && !((base(n) in type) && (type[base(n)] == "histogram" || type[base(n)] == "summary"))) {
        print "no HELP/TYPE for: " n; bad = 1; exit }
      samples++
    }
    END { if (!bad && samples < 10) { print "only " samples " samples"; bad = 1 } exit bad }
  ' "$1"
}
# raw PORT BYTES: sends BYTES (printf %b) and prints what comes back within 6 s
raw() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf '%b' "$2" >&"$fd" 2>/dev/null
  timeout 6 cat <&"$fd"
  exec {fd}>&-
}
ge() { [ "$1" != absent ] && [ "$1" -ge "$2" ] 2>/dev/null; }

check "controller starts with --metrics" ctl_start --metrics "127.0.0.1:$CM"
check "controller scrape answers 200" curl -sf --max-time 5 -o "$T/c0.prom" "$CURL_C"
check "controller scrape is valid exposition text" valid "$T/c0.prom"
check_eq "Content-Type text/plain; version=0.0.4" "text/plain; version=0.0.4; charset=utf-8" \
  "$(curl -s -o /dev/null -w '%{content_type}' "$CURL_C")"
check_eq "no agents yet" "0" "$(cval firmfleet_agents_online)"
check "root without --user: a warning" grep -q 'level=warn .*msg=ctl.root ' "$T/ctl.log"
check "process_resident_memory_bytes is there" ge "$(cval process_resident_memory_bytes)" 1
check "a histogram of handler durations" grep -q '^firmfleet_handler_duration_seconds_bucket{handler="admin",le="+Inf"} ' "$T/c.prom"

ff site add lab --tz UTC >/dev/null
ff device add 00:04:f2:aa:bb:01 --site lab --model VVX400 >/dev/null
ff agent enroll --site lab --out "$T/lab.cred" >/dev/null
agent_start lab --http "127.0.0.1:$HP" --files-root "$ROOT" --metrics "127.0.0.1:$AM"
check "agent online" wait_until 30 agent_online lab
agent_up() { [ "$(aval firmfleet_agent_uplink_online)" = 1 ]; }
check "agent scrape: uplink_online 1" wait_until 20 agent_up
ctl_online() { [ "$(cval firmfleet_agents_online)" = 1 ]; }
check "controller scrape: agents_online 1" wait_until 20 ctl_online
check_eq "controller scrape: agents 1" "1" "$(cval firmfleet_agents)"
check_eq "controller scrape: devices 1" "1" "$(cval firmfleet_devices)"
check_eq "controller scrape: sites 1" "1" "$(cval firmfleet_sites)"
check "controller: admin requests counted" ge "$(cval firmfleet_admin_requests_total)" 3
scrape "$CURL_A" >"$T/a0.prom"
check "agent scrape is valid exposition text" valid "$T/a0.prom"
check_eq "agent scrape: http service up" "1" "$(value "$T/a0.prom" 'firmfleet_agent_service_up{service="http"}')"
check_eq "agent scrape: dhcp service not running" "0" "$(value "$T/a0.prom" 'firmfleet_agent_service_up{service="dhcp"}')"
check "agent scrape: agent and site labels" grep -q '^firmfleet_agent_build_info{version="[^"]*",agent="[^"]*",site="lab"} 1$' "$T/a0.prom"
check "agent scrape: upgrade states" grep -q '^firmfleet_agent_devices{state="none"} ' "$T/a0.prom"
check "agent scrape: process_cpu_seconds_total" grep -q '^process_cpu_seconds_total ' "$T/a0.prom"

# ---- traffic: HTTP GETs (one of a known device: an http.get event) ----
ok0=$(value "$T/a0.prom" 'firmfleet_http_requests_total{code="2xx"}')
nf0=$(value "$T/a0.prom" 'firmfleet_http_requests_total{code="4xx"}')
by0=$(value "$T/a0.prom" 'firmfleet_http_bytes_total')
ev0=$(cval firmfleet_events_ingested_total)
curl -sf -o /dev/null "http://127.0.0.1:$HP/small.bin"
curl -sf -o /dev/null "http://127.0.0.1:$HP/small.bin"
curl -sf -o /dev/null "http://127.0.0.1:$HP/0004f2aabb01.cfg"
curl -s -o /dev/null "http://127.0.0.1:$HP/missing.bin"
scrape "$CURL_A" >"$T/a1.prom"
check_eq "http 2xx grew by 3" "$((ok0 + 3))" "$(value "$T/a1.prom" 'firmfleet_http_requests_total{code="2xx"}')"
check_eq "http 4xx grew by 1" "$((nf0 + 1))" "$(value "$T/a1.prom" 'firmfleet_http_requests_total{code="4xx"}')"
check "http bytes grew by at least 2000" ge "$(value "$T/a1.prom" firmfleet_http_bytes_total)" $((by0 + 2000))
ev_grew() { ge "$(cval firmfleet_events_ingested_total)" $((ev0 + 1)); }
check "controller: events_ingested_total grew (the http.get event)" wait_until 20 ev_grew
backlog0() { [ "$(aval firmfleet_agent_event_backlog)" = 0 ] && ge "$(aval firmfleet_agent_events_journaled_total)" 1; }
check "agent: event backlog back to 0, events journaled >= 1" wait_until 20 backlog0
check_eq "controller: outbox depth 0 once the agent acked" "0" "$(cval firmfleet_outbox_depth)"

# ---- other paths and methods ----
for u in "$CURL_C" "$CURL_A"; do
  p=${u%/metrics}
  check_eq "404 for another path ($p)" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$p/")"
  check_eq "405 for POST ($p)" "405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$u")"
  check_eq "HEAD /metrics: 200 without a body ($p)" "200 0" \
    "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$u")"
  check_eq "GET /metrics?x=1: 200 ($p)" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$u?x=1")"
done

# ---- hostile clients ----
BIG=$(head -c 12000 /dev/zero | tr '\0' 'A')
for port in "$CM" "$AM"; do
  check "garbage: 400 ($port)" bash -c "$(declare -f raw); raw $port 'BLAH\x01\x02\r\n\r\n' | head -1 | grep -q ' 400 '"
  check "oversized head: 431 ($port)" bash -c "$(declare -f raw); raw $port 'GET /metrics HTTP/1.1\r\nX: $BIG\r\n\r\n' | head -1 | grep -q ' 431 '"
  check "NUL in the head: 400 ($port)" bash -c "$(declare -f raw); raw $port 'GET /metrics\x00 HTTP/1.1\r\n\r\n' | head -1 | grep -q ' 400 '"
  # every slot taken by idle clients: a scrape still gets through once
  # their deadline (5 s) closes them
  fds=()
  for i in 1 2 3 4 5 6; do exec {fd}<>"/dev/tcp/127.0.0.1/$port" && fds+=("$fd"); done
  printf 'GET /met' >&"${fds[0]}" # half a request
  t0=$SECONDS
  check "slots full of idle clients: a scrape still answers within 12 s ($port)" \
    curl -sf --max-time 12 -o /dev/null "http://127.0.0.1:$port/metrics"
  note "scrape behind idle clients took $((SECONDS - t0)) s"
  for fd in "${fds[@]}"; do exec {fd}>&-; done
done
check "controller timeouts counted" ge "$(cval firmfleet_metrics_timeouts_total)" 1
check "agent timeouts counted" ge "$(aval firmfleet_metrics_timeouts_total)" 1
check "controller alive and valid after hostile clients" bash -c "curl -sf '$CURL_C' >'$T/c2.prom' && $(declare -f valid); valid '$T/c2.prom'"
check "agent alive and valid after hostile clients" bash -c "curl -sf '$CURL_A' >'$T/a2.prom' && $(declare -f valid); valid '$T/a2.prom'"
check "agent still online" agent_online lab
check "agent HTTP still serves" curl -sf -o /dev/null "http://127.0.0.1:$HP/small.bin"

# ---- bad options ----
check_eq "firmfleetd --metrics garbage: exit 2" "2" \
  "$("$BIN/firmfleetd" -d "$T/x" --metrics nonsense >/dev/null 2>&1; echo $?)"
check_eq "firmfleet-agent --metrics :0: exit 2" "2" \
  "$("$BIN/firmfleet-agent" -c "$T/lab.cred" -s "$T/y" --metrics 127.0.0.1:0 >/dev/null 2>&1; echo $?)"
check_eq "firmfleetd with a taken metrics port: exit 1" "1" \
  "$(timeout 20 "$BIN/firmfleetd" -d "$T/z" --listen "tcp://127.0.0.1:$(free_port)" --metrics "127.0.0.1:$AM" >/dev/null 2>&1; echo $?)"

finish
