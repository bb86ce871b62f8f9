#!/usr/bin/env bash
# t_http: the agent's HTTP server against curl (and raw bytes over bash's
# /dev/tcp) on loopback: byte-exact GET of small and 50 MiB files, HEAD,
# Range (206/416), keep-alive and pipelining, PUT backups into the
# per-device area (cap, unknown device), path traversal in every spelling,
# limits (431, 414, 400, 405), a slowloris client, 503 when full, events to
# the controller; and that the server keeps serving others throughout.
source "$(dirname "$0")/lib.sh"

ROOT=$T/root
mkdir -p "$ROOT/sub"
head -c 4096 /dev/urandom >"$ROOT/small.bin"
head -c $((50 << 20)) /dev/urandom >"$ROOT/big.bin"
printf 'device config for 0004f2aabb01\n' >"$ROOT/0004f2aabb01.cfg"
printf '<x/>\n' >"$ROOT/sub/SEP0004F2AABB02.cnf.xml"
: >"$ROOT/empty.txt"
echo TOPSECRET >"$T/secret.txt"
ln -s ../secret.txt "$ROOT/escape"
ln -s /etc/passwd "$ROOT/abs"
http_port() { # a free TCP port in 30000-32000 (this test's range)
  local p i
  for i in $(seq 1 100); do
    p=$((30000 + RANDOM % 2001))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
HP=$(http_port)
URL=http://127.0.0.1:$HP
YEALINK='Yealink SIP-T46S 66.86.0.15 80:5e:c0:aa:bb:cc'
POLYCOM='FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373'

sha() { sha256sum "$1" | cut -d' ' -f1; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# raw REQUEST: sends the bytes (printf %b escapes) and prints what comes back
# until the server closes (at most 5 s)
raw() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$HP" || return 1
  printf '%b' "$1" >&"$fd"
  timeout 5 cat <&"$fd"
  local rc=$?
  exec {fd}>&-
  return $rc
}

check "controller starts" ctl_start
ff site add lab --tz UTC >/dev/null
ff device add 00:04:f2:aa:bb:01 --site lab --model VVX400 >/dev/null
printf '<cfg mac="{{mac}}" MAC="{{MAC}}" site="{{site}}"/>\n' >"$T/tpl.xml"
ff template add 'tpl-{mac}.xml' --from "$T/tpl.xml" --site lab >/dev/null
ff agent enroll --site lab --out "$T/lab.cred" >/dev/null
V6=()
ip -6 addr show dev lo 2>/dev/null | grep -q '::1/128' && V6=(--http "[::1]:$HP")
agent_start lab --http "127.0.0.1:$HP" "${V6[@]}" --files-root "$ROOT" --upload-max 64K
check "agent answers HTTP" wait_until 20 curl -sf -o /dev/null "$URL/small.bin"
check "agent online" wait_until 30 agent_online lab
if [ ${#V6[@]} -gt 0 ]; then
  check_eq "a second listener on [::1]" "200" "$(code -g "http://[::1]:$HP/small.bin")"
fi

# ---- GET, HEAD, Range ----
curl -sf -o "$T/small.out" "$URL/small.bin"
check_eq "GET 4 KiB byte-exact" "$(sha "$ROOT/small.bin")" "$(sha "$T/small.out")"
curl -sf -o "$T/big.out" "$URL/big.bin"
check_eq "GET 50 MiB byte-exact" "$(sha "$ROOT/big.bin")" "$(sha "$T/big.out")"
check_eq "GET of a file in a subdirectory" "200" "$(code "$URL/sub/SEP0004F2AABB02.cnf.xml")"
check_eq "Content-Type by extension (xml)" "text/xml" \
  "$(curl -s -o /dev/null -w '%{content_type}' "$URL/sub/SEP0004F2AABB02.cnf.xml")"
check_eq "Content-Type by extension (cfg)" "text/plain" \
  "$(curl -s -o /dev/null -w '%{content_type}' "$URL/0004f2aabb01.cfg")"
check_eq "GET of an empty file: 200, 0 bytes" "200 0" \
  "$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$URL/empty.txt")"
check_eq "GET of a missing file: 404" "404" "$(code "$URL/nope.cfg")"
RENDERED='<cfg mac="0004f2aabb77" MAC="0004F2AABB77" site="lab"/>'
tpl_ok() { [ "$(curl -s "$URL/tpl-0004f2aabb77.xml")" = "$RENDERED" ]; }
check "a template rendered for the MAC in the name" wait_until 10 tpl_ok
check_eq "Range on a rendered template: 206 with its bytes" "206 ${RENDERED:5:3}" \
  "$(curl -s -r 5-7 -w '%{http_code} ' -o "$T/tr.out" "$URL/tpl-0004f2aabb77.xml"; cat "$T/tr.out")"
check "HEAD of a rendered template: its Content-Length" grep -q "^Content-Length: $((${#RENDERED} + 1))"$'\r$' \
  <(raw 'HEAD /tpl-0004f2aabb77.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
check_eq "GET / (no index): 404" "404" "$(code "$URL/")"
check_eq "query string ignored" "200" "$(code "$URL/small.bin?mac=0004f2aabb01&type=IP800")"

raw 'HEAD /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/head.out"
check "HEAD: 200 with the full Content-Length" \
  grep -q $'^Content-Length: 52428800\r$' "$T/head.out"
check_eq "HEAD: headers only (ends at the blank line)" " 0d 0a 0d 0a" \
  "$(tail -c 4 "$T/head.out" | od -An -tx1)"
check "HEAD: under 512 bytes in all" test "$(stat -c %s "$T/head.out")" -lt 512

curl -s -r 0-99 -D "$T/r1.h" -o "$T/r1.out" "$URL/big.bin"
check_eq "Range 0-99: 206 and the first 100 bytes" "$(head -c 100 "$ROOT/big.bin" | sha256sum | cut -d' ' -f1)" "$(sha "$T/r1.out")"
check "Range 0-99: status 206" grep -q '^HTTP/1.1 206' "$T/r1.h"
check "Range 0-99: Content-Range" grep -q $'^Content-Range: bytes 0-99/52428800\r$' "$T/r1.h"
curl -s -r 1000- -o "$T/r2.out" "$URL/small.bin"
check_eq "Range 1000-: the rest from byte 1000" "$(tail -c +1001 "$ROOT/small.bin" | sha256sum | cut -d' ' -f1)" "$(sha "$T/r2.out")"
curl -s -r -100 -o "$T/r3.out" "$URL/small.bin"
check_eq "Range -100: the last 100 bytes" "$(tail -c 100 "$ROOT/small.bin" | sha256sum | cut -d' ' -f1)" "$(sha "$T/r3.out")"
curl -s -r 99999- -D "$T/r4.h" -o /dev/null "$URL/small.bin"
check "unsatisfiable Range: 416" grep -q '^HTTP/1.1 416' "$T/r4.h"
check "unsatisfiable Range: Content-Range bytes */size" grep -q $'^Content-Range: bytes \\*/4096\r$' "$T/r4.h"
check_eq "several ranges: 200 with the whole file" "200 4096" \
  "$(curl -s -r 0-1,5-6 -o /dev/null -w '%{http_code} %{size_download}' "$URL/small.bin")"
check_eq "malformed Range ignored: 200" "200" "$(code -H 'Range: bytes=9-2' "$URL/small.bin")"
check_eq "Range with If-Range ignored: 200" "200" \
  "$(code -r 0-9 -H 'If-Range: "x"' "$URL/small.bin")"

# ---- keep-alive and pipelining ----
curl -sv -o /dev/null -o /dev/null -o /dev/null "$URL/small.bin" "$URL/0004f2aabb01.cfg" \
  "$URL/nope.cfg" 2>"$T/ka.err"
check_eq "keep-alive: 3 URLs in one curl reuse one connection (twice)" 2 \
  "$(grep -c 'Re-using existing connection' "$T/ka.err")"
check_eq "keep-alive: one connection opened" 1 "$(grep -c 'Connected to' "$T/ka.err")"
raw 'GET /0004f2aabb01.cfg HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/SEP0004F2AABB02.cnf.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$T/pipe.out"
check_eq "pipelining: three answers in order" "200 404 200" \
  "$(grep -a '^HTTP/1.1' "$T/pipe.out" | cut -d' ' -f2 | xargs)"
check "HTTP/1.0 without keep-alive: answered and closed" \
  grep -q '^HTTP/1.1 200' <(raw 'GET /small.bin HTTP/1.0\r\n\r\n')

# ---- PUT ----
head -c 40000 /dev/urandom >"$T/up40k"
head -c 100000 /dev/urandom >"$T/up100k"
head -c $((2 << 20)) /dev/urandom >"$T/up2m"
UPY=$T/lab.state/uploads/805ec0aabbcc
UPP=$T/lab.state/uploads/0004f2aabb01
check_eq "PUT /upload/name with a Yealink UA: 201" "201" \
  "$(code -T "$ROOT/small.bin" -A "$YEALINK" "$URL/upload/backup.cfg")"
check_eq "PUT landed in uploads/<mac>/ byte-exact" "$(sha "$ROOT/small.bin")" "$(sha "$UPY/backup.cfg")"
check_eq "PUT again (replace): 204" "204" \
  "$(code -T "$T/up40k" -A "$YEALINK" "$URL/upload/backup.cfg")"
check_eq "replaced file byte-exact" "$(sha "$T/up40k")" "$(sha "$UPY/backup.cfg")"
check_eq "Polycom-style PUT /<mac>-phone.cfg (MAC from the path): 201" "201" \
  "$(code -T "$ROOT/small.bin" -A "$POLYCOM" "$URL/0004f2aabb01-phone.cfg")"
check "Polycom upload stored under its MAC" cmp -s "$ROOT/small.bin" "$UPP/0004f2aabb01-phone.cfg"
check_eq "innovaphone-style PUT /<dir>/<mac>-<name>: 201" "201" \
  "$(code -T "$ROOT/small.bin" "$URL/backup/00-90-33-aa-bb-cc-config.txt")"
check "innovaphone upload stored under its MAC" \
  test -f "$T/lab.state/uploads/009033aabbcc/00-90-33-aa-bb-cc-config.txt"
check_eq "chunked PUT: 201" "201" \
  "$(head -c 3000 "$ROOT/small.bin" | code -T - -A "$YEALINK" "$URL/upload/chunked.cfg")"
check_eq "chunked PUT byte-exact" "$(head -c 3000 "$ROOT/small.bin" | sha256sum | cut -d' ' -f1)" \
  "$(sha "$UPY/chunked.cfg")"
check_eq "PUT over the cap (100 KB > 64 KiB): 413" "413" \
  "$(code -T "$T/up100k" -A "$YEALINK" "$URL/upload/big.cfg")"
check_eq "PUT over the cap with Expect: 100-continue (2 MiB): 413" "413" \
  "$(code -T "$T/up2m" -A "$YEALINK" "$URL/upload/big.cfg")"
check_eq "chunked PUT over the cap: 413" "413" \
  "$(code -T - -A "$YEALINK" "$URL/upload/big.cfg" <"$T/up100k")"
check_eq "PUT that fills the area past the cap (40K + 40K > 64K): 413" "413" \
  "$(code -T "$T/up40k" -A "$YEALINK" "$URL/upload/second.cfg")"
check "nothing stored by refused PUTs" test ! -e "$UPY/big.cfg" -a ! -e "$UPY/second.cfg"
check_eq "no temporary files left behind" "" "$(ls -A "$UPY" | grep '^\.' || true)"
check_eq "PUT from an unknown device: 403" "403" \
  "$(code -T "$ROOT/small.bin" "$URL/upload/anon.cfg")"
check_eq "PUT with a dot-name: 400" "400" \
  "$(code -T "$ROOT/small.bin" -A "$YEALINK" "$URL/upload/.hidden")"
check_eq "POST: 405" "405" "$(code -X POST -d x "$URL/small.bin")"
check "405 says Allow: GET, HEAD, PUT" grep -q $'^Allow: GET, HEAD, PUT\r$' \
  <(raw 'DELETE /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')

# ---- traversal: never a byte from outside the root ----
for p in '/../etc/passwd' '/%2e%2e/%2e%2e/etc/passwd' '/..%2f..%2fetc/passwd' '//etc/passwd' \
  '/foo/../../etc/passwd' '/..\..\etc\passwd' '/%5c..%5c..%5cetc%5cpasswd' '/../secret.txt' \
  '/%2E%2E/secret.txt' '/sub/../../secret.txt' '/escape' '/abs' '/small.bin%00.txt' \
  '/%00' '/.%2e/secret.txt'; do
  out=$(curl -s --path-as-is -w '\n%{http_code}' "$URL$p")
  st=${out##*$'\n'}
  if grep -q -e 'root:' -e TOPSECRET <<<"$out"; then
    nok "traversal $p leaked a file"
  elif [[ $st =~ ^(400|403|404)$ ]]; then ok "traversal $p refused ($st)"
  else nok "traversal $p: status $st"; fi
done
check_eq "a symlink leaving the root: 403" "403" "$(code "$URL/escape")"
check_eq "%00 in the path: 400" "400" "$(code "$URL/small.bin%00")"
check_eq "raw request for ../ (no client normalisation): 400" "400" \
  "$(raw 'GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | head -1 | cut -d' ' -f2)"
check_eq "absolute-form target with ../: 400" "400" \
  "$(raw 'GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | head -1 | cut -d' ' -f2)"
check_eq "absolute-form target inside the root: 200" "200" \
  "$(raw 'GET http://x/0004f2aabb01.cfg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | head -1 | cut -d' ' -f2)"

# ---- limits and malformed input ----
check_eq "9000-byte header: 431" "431" "$(code -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "$URL/small.bin")"
hdrs=()
for i in $(seq 1 70); do hdrs+=(-H "X-H$i: v"); done
check_eq "70 header lines: 431" "431" "$(code "${hdrs[@]}" "$URL/small.bin")"
check_eq "3000-byte URL: 414" "414" "$(code "$URL/$(head -c 3000 /dev/zero | tr '\0' a)")"
check_eq "garbage request line: 400" "400" \
  "$(raw 'GARBAGE\r\n\r\n' | head -1 | cut -d' ' -f2)"
check_eq "bad header line: 400" "400" \
  "$(raw 'GET / HTTP/1.1\r\nNoColonHere\r\n\r\n' | head -1 | cut -d' ' -f2)"
check_eq "binary junk: 400" "400" "$(raw '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' | head -1 | cut -d' ' -f2)"
check_eq "GET with a body: 400" "400" \
  "$(raw 'GET /small.bin HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc' | head -1 | cut -d' ' -f2)"
check_eq "still serving after all that" "$(sha "$ROOT/small.bin")" \
  "$(curl -sf "$URL/small.bin" | sha256sum | cut -d' ' -f1)"

# ---- a slow image download does not hold up others ----
curl -s --limit-rate 20M -o /dev/null "$URL/big.bin" &
slow=$!
sleep 0.3
t0=$(date +%s%N)
check_eq "a small GET during a slow 50 MiB download" "200" "$(code "$URL/small.bin")"
check "... answered within 500 ms" test $((($(date +%s%N) - t0) / 1000000)) -lt 500
kill "$slow" 2>/dev/null
wait "$slow" 2>/dev/null

# ---- slowloris: a head that trickles in is cut off after 10 s ----
slowloris() {
  local fd t0=$SECONDS
  exec {fd}<>"/dev/tcp/127.0.0.1/$HP" || return 1
  (
    trap '' PIPE
    printf 'GET /small.bin HTTP/1.1\r\nHost: x\r\n'
    for i in $(seq 1 30); do sleep 1; printf 'X-Slow-%d: y\r\n' "$i" || exit 0; done
  ) >&"$fd" 2>/dev/null &
  local w=$!
  timeout 25 cat <&"$fd" >/dev/null 2>&1
  local rc=$? el=$((SECONDS - t0))
  kill "$w" 2>/dev/null
  wait "$w" 2>/dev/null
  exec {fd}>&-
  note "slowloris: closed after ${el}s (cat rc $rc)"
  [ "$rc" -ne 124 ] && [ "$el" -ge 8 ] && [ "$el" -le 15 ]
}
slowloris >"$T/slow.res" 2>&1 &
sl=$!
sleep 2
check_eq "others are served while a slowloris client trickles" "200" "$(code "$URL/small.bin")"
if wait "$sl"; then ok "slowloris connection closed by the header timeout"; else nok "slowloris connection not closed in time"; fi
cat "$T/slow.res"
idle() { # a connection that never sends anything is closed too
  local fd t0=$SECONDS
  exec {fd}<>"/dev/tcp/127.0.0.1/$HP" || return 1
  timeout 25 cat <&"$fd" >/dev/null 2>&1
  local rc=$? el=$((SECONDS - t0))
  exec {fd}>&-
  [ "$rc" -ne 124 ] && [ "$el" -le 15 ]
}
check "a silent connection is closed by the header timeout" idle

# ---- events reach the controller ----
has_event() { # KIND TEXT [--mac MAC]
  local kind=$1 text=$2; shift 2
  ff event list --kind "$kind" --limit 0 --json "$@" | jq -r '.[].detail' | grep -qF -- "$text"
}
check "http.upload event with the stored sha256" wait_until 20 \
  has_event http.upload "name=backup.cfg size=40000 sha256=$(sha "$T/up40k")"
check "http.get event for the 50 MiB image" wait_until 20 \
  has_event http.get 'path=big.bin status=200 bytes=52428800 '
check "http.get event for an inventory device (MAC from the path)" wait_until 20 \
  has_event http.get 'path=0004f2aabb01.cfg status=200' --mac 00:04:f2:aa:bb:01
check_fails "no http.get event for a small file of an unknown device" \
  has_event http.get 'path=small.bin'

# ---- full: 503, then service again ----
stop_all
check "no sanitizer reports so far" sanitizer_clean
prlimit --nofile=256:256 "$BIN/firmfleet-agent" -c "$T/lab.cred" -s "$T/lab.state" \
  --http "127.0.0.1:$HP" --files-root "$ROOT" >>"$T/lab.log" 2>&1 &
PIDS[lab]=$!
check "agent restarted with 256 descriptors" wait_until 20 curl -sf -o /dev/null "$URL/small.bin"
check "max_conns derived from RLIMIT_NOFILE (32)" grep -q 'msg=http.start.*max_conns=32 ' "$T/lab.log"
fds=()
for i in $(seq 1 32); do exec {fd}<>"/dev/tcp/127.0.0.1/$HP" && fds+=("$fd"); done
sleep 0.5
check_eq "the 33rd connection gets 503" "503" "$(code "$URL/small.bin")"
for fd in "${fds[@]}"; do exec {fd}>&-; done
check "served again once connections close" wait_until 5 curl -sf -o /dev/null "$URL/small.bin"
stop_all
check "the agent stopped with every handle closed (no agent.leak)" \
  sh -c "grep -q 'msg=http.stop' '$T/lab.log' && ! grep -q 'msg=agent.leak' '$T/lab.log'"
finish
