#!/usr/bin/env bash
# t_backup: device configuration backups end to end. Devices PUT their
# configuration to the agent's HTTP server (curl -T, innovaphone and Polycom
# names); each completed upload is journaled at the agent and stored by the
# controller exactly once: `backup list/show/get` show it byte-identical, an
# identical upload adds no version, an over-cap PUT (413) stores nothing, and
# kill -9 of the agent right after uploads or of the controller while uploads
# flow neither loses nor duplicates one. Also `event list --follow`: started
# in the background, it prints the events that arrive afterwards, in order,
# each once, and stops by itself after --count N.
source "$(dirname "$0")/lib.sh"

http_port() { # a free TCP port in 28000-29999 (this test's range, below the ephemeral ports)
  local p i
  for i in $(seq 1 100); do
    p=$((28000 + RANDOM % 2000))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
HP=$(http_port)
URL=http://127.0.0.1:$HP
POLYCOM='FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373'
IPVA=00-90-33-aa-bb-cc          # innovaphone names the file with #m (dashed MAC)
MACA=00:90:33:aa:bb:cc
MACP=00:04:f2:aa:bb:01
sha() { sha256sum "$1" | cut -d' ' -f1; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
put_ipva() { code -T "$1" "$URL/backup/$IPVA-$2"; } # FILE NAME
nbackups() { ff backup list --json "$@" | jq length; }
# stored_once MAC NAME SHA: exactly one version of (MAC, NAME) has SHA
stored_once() {
  [ "$(ff backup list --mac "$1" --json |
    jq --arg n "$2" --arg s "$3" '[.[] | select(.name == $n and .sha256 == $s)] | length')" = 1 ]
}
stored_events() { ff event list --kind backup.stored --limit 0 --json | jq length; }

check "controller starts" ctl_start
ff site add lab --tz UTC >/dev/null
ff device add "$MACP" --site lab --model VVX400 >/dev/null
ff agent enroll --site lab --out "$T/lab.cred" >/dev/null
start_agent() {
  agent_start lab --http "127.0.0.1:$HP" --files-root "$T/root" --upload-max 256K
}
mkdir -p "$T/root"
start_agent
check "agent answers HTTP" wait_until 20 sh -c "curl -s -o /dev/null '$URL/x'"
check "agent online" wait_until 30 agent_online lab

# ---- event list --follow, started before anything happens ----
ff event list --follow --count 3 --kind backup.stored --json --timeout 60 \
  >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW=$!
sleep 1 # its first poll sets the cursor

# ---- a backup reaches the controller ----
printf 'config for %s\nline two\n' "$IPVA" >"$T/cfg1"
check_eq "innovaphone-style PUT: 201" 201 "$(put_ipva "$T/cfg1" config.txt)"
check "backup list shows it" wait_until 20 stored_once "$MACA" "$IPVA-config.txt" "$(sha "$T/cfg1")"
ID1=$(ff backup list --mac "$MACA" --json | jq '.[0].id')
ff backup get "$ID1" >"$T/get1"
check "backup get to stdout: byte-identical" cmp -s "$T/cfg1" "$T/get1"
ff backup get "$ID1" --out "$T/get1.file"
check "backup get --out FILE: byte-identical" cmp -s "$T/cfg1" "$T/get1.file"
check_eq "backup get --out FILE: mode 0600" 600 "$(stat -c %a "$T/get1.file")"
ff backup show "$ID1" --json >"$T/show1"
check_eq "backup show: metadata" "$MACA $IPVA-config.txt lab lab $(stat -c %s "$T/cfg1") 1" \
  "$(jq -r '"\(.mac) \(.name) \(.site) \(.agent) \(.size) \(.versions)"' "$T/show1")"
check "backup show (human) names the sha256" grep -q "$(sha "$T/cfg1")" <(ff backup show "$ID1")
check "backup list (human) has a header and the row" \
  grep -q "$IPVA-config.txt" <(ff backup list --site lab)

# binary content, Polycom style (MAC from the path)
head -c 200000 /dev/urandom >"$T/bin200k"
check_eq "Polycom-style PUT of 200 KB of binary: 201" 201 \
  "$(code -T "$T/bin200k" -A "$POLYCOM" "$URL/0004f2aabb01-phone.cfg")"
check "binary backup stored" wait_until 20 stored_once "$MACP" 0004f2aabb01-phone.cfg "$(sha "$T/bin200k")"
IDP=$(ff backup list --mac "$MACP" --json | jq '.[0].id')
ff backup get "$IDP" >"$T/getp"
check "binary backup get: byte-identical" cmp -s "$T/bin200k" "$T/getp"

# ---- dedupe ----
check_eq "identical second PUT: 204" 204 "$(put_ipva "$T/cfg1" config.txt)"
uploads2() { [ "$(ff backup show "$ID1" --json | jq .uploads)" = 2 ]; }
check "identical upload counted on the same version" wait_until 20 uploads2
check_eq "identical upload adds no version" 1 "$(nbackups --mac "$MACA")"
printf 'changed\n' >"$T/cfg2"
put_ipva "$T/cfg2" config.txt >/dev/null
check "changed content: a second version" wait_until 20 stored_once "$MACA" "$IPVA-config.txt" "$(sha "$T/cfg2")"
check_eq "two versions of the name" 2 "$(nbackups --mac "$MACA")"

# ---- event list --follow saw the three backup.stored events ----
wait_follow() { ! kill -0 "$FOLLOW" 2>/dev/null; }
check "event list --follow --count 3 ends by itself" wait_until 30 wait_follow
wait "$FOLLOW"
check_eq "follow: exit status 0" 0 "$?"
check_eq "follow: three lines, one JSON object each" "3" "$(jq -c . "$T/follow.out" | wc -l)"
check_eq "follow: the new events in id order, each once" \
  "$(ff event list --kind backup.stored --limit 0 --json | jq -c '[.[].id][:3]')" \
  "$(jq -s -c '[.[].id]' "$T/follow.out")"
check_eq "follow: unchanged=0,0,1" "0 0 1" \
  "$(jq -r '.detail | capture("unchanged=(?<u>[01])").u' "$T/follow.out" | xargs)"

# ---- follow ends on SIGINT with 130 ----
"$BIN/firmfleet" -d "$CTL_DIR" event list --follow >/dev/null 2>&1 & # not ff: a function's
F2=$!                                                                  # subshell would get the signal
sleep 1
kill -INT "$F2"
wait "$F2"
check_eq "follow: SIGINT ends it with status 130" 130 "$?"
t0=$SECONDS
ff event list --follow --timeout 2 >/dev/null 2>&1
rc=$?
check_eq "follow --timeout 2: ends by itself, status 0" "0 yes" \
  "$rc $([ $((SECONDS - t0)) -le 5 ] && echo yes || echo no)"

# ---- over the cap: 413, nothing stored ----
head -c 300000 /dev/urandom >"$T/big300k"
before=$(nbackups)
check_eq "PUT over the cap (300 KB > 256 KiB): 413" 413 "$(put_ipva "$T/big300k" big.txt)"
check_eq "chunked PUT over the cap: 413" 413 \
  "$(code -T - "$URL/backup/$IPVA-big2.txt" <"$T/big300k")"
sleep 1
check_eq "nothing stored by refused PUTs" "$before" "$(nbackups)"

# ---- kill -9 the agent right after uploads ----
for i in 1 2 3; do printf 'crash %s\n' "$i" >"$T/crash$i"; done
for i in 1 2 3; do put_ipva "$T/crash$i" "crash$i.txt" >/dev/null; done
agent_kill9 lab
start_agent
check "agent back online" wait_until 30 agent_online lab
all_crash() {
  local i
  for i in 1 2 3; do stored_once "$MACA" "$IPVA-crash$i.txt" "$(sha "$T/crash$i")" || return 1; done
}
check "every upload before the agent's kill -9 arrives exactly once" wait_until 30 all_crash
# a second delivery of the same seq would show as a second upload of the version
once_each() { # NAME-PREFIX: every version whose name starts with it was uploaded once
  [ "$(ff backup list --mac "$MACA" --json |
    jq --arg p "$IPVA-$1" '[.[] | select(.name | startswith($p)) | .uploads] | unique')" = "[
  1
]" ]
}
check "each crash upload delivered once (uploads = 1)" once_each crash

# ---- kill -9 the controller while uploads flow ----
N=30
(
  for i in $(seq 1 $N); do
    printf 'flow %s %s\n' "$i" "$RANDOM" >"$T/flow$i"
    while [ "$(put_ipva "$T/flow$i" "flow$i.txt")" != 201 ]; do sleep 0.2; done
    sleep 0.05
  done
) &
UP=$!
sleep 0.5
ctl_kill9
sleep 0.5
ctl_start
sleep 0.5
ctl_kill9
ctl_start
wait "$UP"
check "controller back, agent online" wait_until 30 agent_online lab
all_flow() {
  local i list
  list=$(ff backup list --mac "$MACA" --json) || return 1
  for i in $(seq 1 $N); do
    [ "$(jq --arg n "$IPVA-flow$i.txt" '[.[] | select(.name == $n)] | length' <<<"$list")" = 1 ] ||
      return 1
  done
}
check "$N uploads across two controller kill -9s: each stored exactly once" wait_until 60 all_flow
flow_ok() {
  local i id
  for i in 1 $((N / 2)) $N; do
    id=$(ff backup list --mac "$MACA" --json | jq --arg n "$IPVA-flow$i.txt" '.[] | select(.name == $n) | .id')
    ff backup get "$id" | cmp -s - "$T/flow$i" || return 1
  done
}
check "their content byte-identical" flow_ok
check "each flow upload delivered once (uploads = 1)" once_each flow
check_eq "backup.stored events: one per stored version or upload" \
  "$(ff backup list --limit 0 --json | jq '[.[].uploads] | add')" "$(stored_events)"

# ---- errors ----
# (only the backup tables: heartbeats move agent.last_seen_ms meanwhile)
dump() { sqlite3 -readonly "$CTL_DIR/controller.db" 'SELECT * FROM backup; SELECT sha256 FROM backup_blob;'; }
bad 1 "backup get of an unknown id" ff backup get 999999
bad 1 "backup show of a non-number" ff backup show abc
bad 1 "backup list with a bad MAC" ff backup list --mac nope
bad 1 "backup list of an unknown site" ff backup list --site nosuch
bad 1 "--count without --follow" ff event list --count 2

finish
