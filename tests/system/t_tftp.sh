#!/usr/bin/env bash
# t_tftp: the agent's TFTP server against real clients (tftp-hpa, atftp,
# curl) and tests/tools/tftpc, across a veth pair between two network
# namespaces: byte-exact files (small, empty, exactly one block, 40 MiB at
# 512-byte blocks through the block-number rollover, netascii, windowsize 16,
# tsize), Cisco/Windows name quirks (trailing space/CR, backslashes, case),
# every path-traversal form we could think of, a broadcast request with
# broadcast ACKs (Aironet recovery), a stranger's packets (error 5),
# duplicate ACKs (no Sorcerer's Apprentice), a lost block in a window, a
# file cut short while it is sent, a missing file in the log, events at the controller, and service to others
# while a hostile client sends junk.
source "$(dirname "$0")/lib.sh"

TFTPC=$BIN/tests/tools/tftpc
for p in tftp atftp curl; do
  command -v $p >/dev/null || { nok "client $p installed (make deps)"; finish; }
done

check "lab namespaces up" lab_up fftsrv fftcli 198.18.10
# lab_up leaves the client bare (DHCP tests want that); TFTP clients need an address
check "client address $CLI_IP" ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
export FF_NS="$SRV_NS"

# ---- files ----
ROOT=$T/root OUT=$T/out OUTSIDE=$T/outside
mkdir -p "$ROOT/sub/dir" "$ROOT/cisco" "$OUT" "$OUTSIDE"
echo "SECRET-OUTSIDE-THE-ROOT" >"$OUTSIDE/secret.txt"
printf 'image_version: P0S3-08-12-00\nproxy1_address: 198.18.10.1\n' >"$ROOT/SIPDefault.cnf"
printf 'P003-08-12-00' >"$ROOT/OS79XX.TXT"
printf 'line one\nline two\r\nbare cr\rend\n\n' >"$ROOT/text.txt"
for i in $(seq 1 300); do echo "dial-peer $i: pattern 9T, 100 characters of padding to make it span blocks ....."; done >>"$ROOT/text.txt"
echo "<device/>" >"$ROOT/sub/dir/file.cfg"
: >"$ROOT/empty.bin"
head -c 512 /dev/urandom >"$ROOT/exact512.bin"
head -c 3000 /dev/urandom >"$ROOT/small.bin"
head -c 4M /dev/urandom >"$ROOT/img4.bin"
cp "$ROOT/img4.bin" "$ROOT/slow.bin"
head -c 300K /dev/urandom >"$ROOT/c1240-k9w7-tar.default"
head -c 40M /dev/urandom >"$ROOT/big.bin"
ln -s /etc/passwd "$ROOT/link_passwd"
ln -s "$OUTSIDE" "$ROOT/linkdir"
ln -s ../outside/secret.txt "$ROOT/rel_link"
chmod -R a+rX "$ROOT"
same() { [ -f "$2" ] && [ "$(sha256sum <"$1")" == "$(sha256sum <"$2")" ]; }
ev() { ff event list --agent br --kind "$1" --limit 0 --json; }

# ---- controller, agent ----
check "controller starts" ctl_start
check "site added" ff site add branch --tz UTC
check "agent enrolled" ff agent enroll --site branch --name br --out "$T/br.cred"
agent_start br --tftp "$SRV_IP" --files-root "$ROOT" --files-nocase
check "agent starts TFTP on $SRV_IP:69" wait_until 20 grep -q 'msg=tftpd.start' "$T/br.log"
check "agent online" wait_until 30 agent_online br
# the unicast listener and 255.255.255.255:69 (lab_up sets no directed broadcast)
check "a broadcast socket is open as well" grep -q 'msg=tftpd.start .*sockets=2 ' "$T/br.log"

# ---- byte-exact transfers with real clients ----
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get small.bin small.bin)
check "tftp-hpa: small file byte-exact" same "$ROOT/small.bin" "$OUT/small.bin"
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get empty.bin empty.bin)
check "tftp-hpa: empty file" test -f "$OUT/empty.bin" -a ! -s "$OUT/empty.bin"
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get exact512.bin exact512.bin)
check "tftp-hpa: exactly one block (empty final block)" same "$ROOT/exact512.bin" "$OUT/exact512.bin"
t0=$SECONDS
(cd "$OUT" && in_cli timeout 300 tftp -m binary "$SRV_IP" -c get big.bin big.bin)
check "tftp-hpa: 40 MiB at 512-byte blocks, block number rolls over (byte-exact)" \
  same "$ROOT/big.bin" "$OUT/big.bin"
note "40 MiB lock-step at 512 bytes took $((SECONDS - t0)) s"
(cd "$OUT" && in_cli tftp -m netascii "$SRV_IP" -c get text.txt text.txt)
check "tftp-hpa: netascii round trip equals the file" same "$ROOT/text.txt" "$OUT/text.txt"
in_cli "$TFTPC" get -m netascii "$SRV_IP" text.txt "$OUT/text.wire" >/dev/null
perl -pe 's/\r/\r\0/g; s/\n/\r\n/g' "$ROOT/text.txt" >"$OUT/text.expect"
check "netascii on the wire: LF -> CR LF, CR -> CR NUL" same "$OUT/text.expect" "$OUT/text.wire"
r=$(in_cli "$TFTPC" get -m netascii -o tsize=0 -o blksize=1024 "$SRV_IP" text.txt -)
check "netascii: no tsize offered, blksize still negotiated" \
  bash -c "[[ '$r' == *'tsize=0 '* && '$r' == *'blksize=1024 '* ]]"

in_cli atftp --option "windowsize 16" --option "blksize 1468" -g -r img4.bin -l "$OUT/img4.atftp" "$SRV_IP" >/dev/null 2>&1
check "atftp: windowsize 16, blksize 1468 byte-exact" same "$ROOT/img4.bin" "$OUT/img4.atftp"
in_cli curl -s "tftp://$SRV_IP/img4.bin" --tftp-blksize 1468 -o "$OUT/img4.curl"
check "curl: blksize 1468 byte-exact" same "$ROOT/img4.bin" "$OUT/img4.curl"
r=$(in_cli "$TFTPC" get -o tsize=0 -o blksize=1468 "$SRV_IP" img4.bin "$OUT/img4.tsize")
check_eq "tsize reported in the OACK" "tsize=$(stat -c %s "$ROOT/img4.bin")" \
  "$(grep -o 'tsize=[0-9]*' <<<"$r")"
check "tsize transfer byte-exact" same "$ROOT/img4.bin" "$OUT/img4.tsize"
r=$(in_cli "$TFTPC" get -o blksize=65464 "$SRV_IP" img4.bin -)
check_eq "blksize clamped to the veth MTU - 32" "blksize=1468" "$(grep -o 'blksize=[0-9]*' <<<"$r")"
r=$(in_cli "$TFTPC" get -o windowsize=1000 -o blksize=1468 "$SRV_IP" img4.bin -)
check_eq "windowsize clamped to 64" "windowsize=64" "$(grep -o 'windowsize=[0-9]*' <<<"$r")"
r=$(in_cli "$TFTPC" get -o grandstream_MODEL=GXP2130 -o grandstream_ID=x "$SRV_IP" small.bin "$OUT/small.gs")
check "unknown (Grandstream) options ignored: plain transfer, no OACK" \
  bash -c "same() { [ \"\$(sha256sum <\$1)\" == \"\$(sha256sum <\$2)\" ]; }; same '$ROOT/small.bin' '$OUT/small.gs' && [[ '$r' == *'blksize=512 '* ]]"
in_cli "$TFTPC" get -o windowsize=16 -o blksize=1468 -d 40 "$SRV_IP" img4.bin "$OUT/img4.lost" >"$T/lost.txt"
check "windowsize 16 with a lost block: restart from the gap, byte-exact" \
  same "$ROOT/img4.bin" "$OUT/img4.lost"
check "the client saw the gap (out-of-order blocks)" grep -qv 'ooo=0 ' "$T/lost.txt"
in_cli "$TFTPC" get -o windowsize=8 "$SRV_IP" big.bin "$OUT/big.win" >/dev/null
check "40 MiB at 512-byte blocks with windowsize 8 across the rollover" \
  same "$ROOT/big.bin" "$OUT/big.win"
r=$(in_cli "$TFTPC" get -D -o blksize=1468 "$SRV_IP" img4.bin "$OUT/img4.dup")
check "duplicate ACKs: byte-exact" same "$ROOT/img4.bin" "$OUT/img4.dup"
check_eq "duplicate ACKs are never answered (no Sorcerer's Apprentice)" "dupdata=0" \
  "$(grep -o 'dupdata=[0-9]*' <<<"$r")"
t0=$SECONDS
in_cli "$TFTPC" get -p 1000 -o blksize=1468 "$SRV_IP" slow.bin "$OUT/slow.bin" >/dev/null
check "a slow client (1 ms per ACK, $((SECONDS - t0)) s): byte-exact" same "$ROOT/slow.bin" "$OUT/slow.bin"
# a file cut short while it is sent (an operator's cp over it truncates it
# in place): that transfer fails with a read error, the agent lives on (the
# bytes go out of a shared mapping: no SIGBUS), the next transfer gets the
# new file
cp "$ROOT/img4.bin" "$ROOT/shrink.bin"
in_cli "$TFTPC" get -p 1000 -o blksize=1468 "$SRV_IP" shrink.bin "$OUT/shrink.bin" >"$T/shrink.txt" 2>&1 &
SHRINK=$!
sleep 1
head -c 100K /dev/urandom >"$ROOT/shrink.bin"
wait $SHRINK
check_fails "a file cut short under a transfer: that copy is not the old file" same "$ROOT/img4.bin" "$OUT/shrink.bin"
check "agent still running after a file shrank under a transfer" kill -0 "${PIDS[br]}"
check "the transfer ended as a read error" \
  wait_until 5 grep -q 'msg=tftp.failed .*file=shrink.bin .*read error' "$T/br.log"
in_cli curl -s "tftp://$SRV_IP/shrink.bin" --tftp-blksize 1468 -o "$OUT/shrink2.bin"
check "the next transfer gets the new, shorter file" same "$ROOT/shrink.bin" "$OUT/shrink2.bin"
r=$(in_cli "$TFTPC" get -T "$SRV_IP" small.bin "$OUT/small.tid")
check_eq "a stranger's packet gets error 5" "tid_error=5" "$(grep -o 'tid_error=[0-9]*' <<<"$r")"
check "and the transfer goes on, byte-exact" same "$ROOT/small.bin" "$OUT/small.tid"
r=$(in_cli "$TFTPC" get -x "$SRV_IP" "$SRV_IP" small.bin -)
check "replies come from the address the request was sent to" test "${r%% *}" == ok

# ---- names the way devices send them ----
in_cli "$TFTPC" get "$SRV_IP" 'SIPDefault.cnf ' "$OUT/sip1" >/dev/null
check "trailing space stripped (CSCdv19260)" same "$ROOT/SIPDefault.cnf" "$OUT/sip1"
in_cli "$TFTPC" get "$SRV_IP" 'SIPDefault.cnf\r' "$OUT/sip2" >/dev/null
check "trailing CR stripped" same "$ROOT/SIPDefault.cnf" "$OUT/sip2"
in_cli "$TFTPC" get "$SRV_IP" 'SIPDefault.cnf \r\n' "$OUT/sip3" >/dev/null
check "trailing space, CR and LF stripped" same "$ROOT/SIPDefault.cnf" "$OUT/sip3"
in_cli "$TFTPC" get "$SRV_IP" 'sub\\dir\\file.cfg' "$OUT/bs" >/dev/null
check "backslash path works" same "$ROOT/sub/dir/file.cfg" "$OUT/bs"
in_cli "$TFTPC" get "$SRV_IP" '\\sub\\dir\\file.cfg' "$OUT/bs2" >/dev/null
check "leading backslash path works" same "$ROOT/sub/dir/file.cfg" "$OUT/bs2"
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get os79xx.txt os79xx.txt)
check "case-insensitive match with --files-nocase" same "$ROOT/OS79XX.TXT" "$OUT/os79xx.txt"
in_cli "$TFTPC" get "$SRV_IP" 'SUB/Dir/FILE.CFG' "$OUT/case2" >/dev/null
check "case-insensitive directories too" same "$ROOT/sub/dir/file.cfg" "$OUT/case2"

# ---- traversal: refused, nothing leaks ----
long=$(printf 'a%.0s' $(seq 1 600))
long300=$(printf 'b%.0s' $(seq 1 300))
i=0
for name in '../etc/passwd' '/etc/passwd' '..\\..\\etc\\passwd' 'foo/../../x' \
  '../../../../../../etc/passwd' './../etc/passwd' 'sub/../../outside/secret.txt' \
  'sub/dir/../../../outside/secret.txt' '..' '.' '/' '\\..\\outside\\secret.txt' \
  '....//....//etc/passwd' '%2e%2e%2fetc%2fpasswd' '..%2f..%2fetc%2fpasswd' \
  '%2e%2e/outside/secret.txt' 'link_passwd' 'linkdir/secret.txt' 'rel_link' 'LINKDIR/SECRET.TXT' \
  "$long" "$long300" 'small.bin\0../../etc/passwd' '../outside/secret.txt\0' 'sub\x01dir' \
  'sub/' '' ' ' '\r' '/proc/self/environ' 'C:\\Windows\\win.ini'; do
  i=$((i + 1))
  rm -f "$OUT/trav"
  r=$(in_cli "$TFTPC" get -w 300 "$SRV_IP" "$name" "$OUT/trav"; echo " rc=$?")
  if [[ "$r" == error* && "$r" == *"rc=3" ]] && ! grep -qs -e SECRET -e 'root:' "$OUT/trav"; then
    ok "traversal $i refused: $(printf '%q' "${name:0:40}") -> ${r%% msg=*}"
  else
    nok "traversal $i refused: $(printf '%q' "${name:0:40}") -> $r"
  fi
done
check "nothing outside the root was ever written out" \
  bash -c "! grep -rqs -e SECRET-OUTSIDE -e 'root:x:' '$OUT'"

# ---- broadcast request and broadcast ACKs (Aironet recovery) ----
r=$(in_cli "$TFTPC" get -b -x "$SRV_IP" -B "$CLI_IP" 255.255.255.255 c1240-k9w7-tar.default "$OUT/recovery")
check "broadcast RRQ with ACKs to 255.255.255.255: byte-exact" \
  same "$ROOT/c1240-k9w7-tar.default" "$OUT/recovery"
check "answered from the unicast address $SRV_IP" bash -c "[[ '$r' == *'src=$SRV_IP:'* ]]"

# ---- rendered files, served from memory ----
printf '<device><mac>{{MAC}}</mac>\n<ip>{{ip}}</ip>\r\n<site>{{site}}</site></device>\n' >"$T/sep.tmpl"
check "template added" ff template add 'SEP{MAC}.cnf.xml' --from "$T/sep.tmpl" --site branch
rendered() {
  in_cli "$TFTPC" get "$SRV_IP" SEP0004F2AABB01.cnf.xml "$OUT/sep.xml" >/dev/null &&
    grep -q '<mac>0004F2AABB01</mac>' "$OUT/sep.xml"
}
check "a rendered template is served (octet, from memory)" wait_until 20 rendered
check "with the asking device's values" grep -q "<ip>$CLI_IP</ip>" "$OUT/sep.xml"
r=$(in_cli "$TFTPC" get -o tsize=0 "$SRV_IP" SEP0004F2AABB01.cnf.xml -)
check_eq "tsize of a rendered file" "tsize=$(stat -c %s "$OUT/sep.xml")" "$(grep -o 'tsize=[0-9]*' <<<"$r")"
(cd "$OUT" && in_cli tftp -m netascii "$SRV_IP" -c get SEP0004F2AABB01.cnf.xml sep.nvt)
check "a rendered template in netascii round-trips" same "$OUT/sep.xml" "$OUT/sep.nvt"
has_origin() { ev tftp.start | jq -e '.[] | select(.detail | test("file=SEP0004F2AABB01.cnf.xml .*origin=template"))' >/dev/null; }

# ---- errors and logs ----
r=$(in_cli "$TFTPC" get "$SRV_IP" nosuch-CTLSEP001122334455.tlv -)
check_eq "missing file: error 1" "error code=1" "${r%% msg=*}"
check "missing file logged with client and name" \
  wait_until 5 grep -qE "level=warn .*msg=tftp.missing client=$CLI_IP:[0-9]+ file=nosuch-CTLSEP001122334455.tlv" "$T/br.log"
printf 'x' >"$T/up.bin"
r=$(cd "$T" && in_cli tftp -m binary "$SRV_IP" -c put up.bin up.bin 2>&1)
check "WRQ refused: read-only server (error 2)" bash -c "[[ '$r' == *'read-only server'* ]]"
check "no file was created by the WRQ" test ! -e "$ROOT/up.bin"

# ---- many at once ----
r=$(in_cli "$TFTPC" load -o blksize=1468 -o windowsize=16 -o tsize=0 -s 4194304 "$SRV_IP" img4.bin 30)
check "30 concurrent windowed 4 MiB transfers all complete" bash -c "[[ '$r' == *'failed=0'* ]]"
note "$r"
r=$(in_cli "$TFTPC" load -s 3000 "$SRV_IP" small.bin 50)
check "50 concurrent lock-step transfers all complete" bash -c "[[ '$r' == *'failed=0'* ]]"

# ---- a hostile client does not stop service to others ----
in_cli "$TFTPC" junk "$SRV_IP" 8 small.bin >"$T/junk.txt" 2>&1 &
JUNK=$!
sleep 1
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get small.bin small.j1)
check "during junk: tftp-hpa small file byte-exact" same "$ROOT/small.bin" "$OUT/small.j1"
in_cli curl -s "tftp://$SRV_IP/img4.bin" --tftp-blksize 1468 -o "$OUT/img4.j"
check "during junk: curl 4 MiB byte-exact" same "$ROOT/img4.bin" "$OUT/img4.j"
in_cli atftp --option "windowsize 16" --option "blksize 1468" -g -r img4.bin -l "$OUT/img4.ja" "$SRV_IP" >/dev/null 2>&1
check "during junk: atftp windowed byte-exact" same "$ROOT/img4.bin" "$OUT/img4.ja"
wait $JUNK
note "junk: $(cat "$T/junk.txt")"
check "junk was sent" grep -q '^ok sent=' "$T/junk.txt"
check "agent still running after the junk" kill -0 "${PIDS[br]}"
(cd "$OUT" && in_cli tftp -m binary "$SRV_IP" -c get small.bin small.j2)
check "after junk: still serving" same "$ROOT/small.bin" "$OUT/small.j2"
check "bad requests were logged, rate-limited" grep -q 'msg=tftp.bad_request' "$T/br.log"

# ---- events reach the controller ----
has_done_big() { ev tftp.done | jq -e '.[] | select(.detail | test("file=big.bin bytes=41943040 "))' >/dev/null; }
check "tftp.done for big.bin at the controller" wait_until 30 has_done_big
has_start() { ev tftp.start | jq -e '.[] | select(.detail | test("file=img4.bin size=4194304 client=198.18.10.2:"))' >/dev/null; }
check "tftp.start with file, size, client" wait_until 10 has_start
check "tftp.start says a rendered file came from a template" wait_until 10 has_origin
# progress: for files over 1 MiB, at the quarters crossed once a transfer has
# run for a second (slow.bin takes about 3 s: 50 and 75 at least)
progress_ok() {
  local p
  p=$(ev tftp.progress | jq -r '.[] | select(.detail | test("file=slow.bin")) | .detail' | grep -o 'pct=[0-9]*' | sort -u | tr '\n' ' ')
  [[ "$p" == *"pct=50 pct=75 "* ]] && ! grep -qvE '^(pct=(25|50|75) )+$' <<<"$p"
}
check "tftp.progress for a 3 s transfer: 50 % and 75 %, only quarters" wait_until 10 progress_ok
fast_quiet() { [ "$(ev tftp.progress | jq '[.[] | select(.detail | test("file=small.bin|file=text.txt|file=exact512.bin"))] | length')" -eq 0 ]; }
check "no progress for files under 1 MiB" fast_quiet
has_failed() { ev tftp.failed | jq -e 'length > 0' >/dev/null; }
check "tftp.failed reported (junk made some transfers fail)" wait_until 30 has_failed

# ---- without --files-nocase the case must match ----
stop_all
check "agent stopped cleanly (exit 0)" grep -q 'msg=agent.stop exit=0' "$T/br.log"
check_fails "no leaked handles at stop" grep -q 'msg=agent.leak' "$T/br.log"
# a second subnet on the same link, with a directed broadcast this time
NET2=198.18.11
ip -n "$SRV_NS" addr add $NET2.1/24 brd + dev "$SRV_IF"
ip -n "$CLI_NS" addr add $NET2.2/24 brd + dev "$CLI_IF"
agent_start br --tftp "$SRV_IP:6969" --tftp "$NET2.1:6969" --files-root "$ROOT"
two_starts() { [ "$(grep -c 'msg=tftpd.start' "$T/br.log")" -eq 2 ]; }
check "agent restarted without --files-nocase, two addresses, port 6969" wait_until 20 two_starts
check "sockets: two unicast, 255.255.255.255 and $NET2.255" \
  grep -q 'msg=tftpd.start .*sockets=4 ' "$T/br.log"
r=$(in_cli "$TFTPC" get "$SRV_IP:6969" os79xx.txt -)
check_eq "case must match without --files-nocase" "error code=1" "${r%% msg=*}"
in_cli "$TFTPC" get "$SRV_IP:6969" OS79XX.TXT "$OUT/os2" >/dev/null
check "exact case found on another port" same "$ROOT/OS79XX.TXT" "$OUT/os2"
r=$(in_cli "$TFTPC" get -b -x $NET2.1 -B $NET2.2 255.255.255.255:6969 small.bin "$OUT/b2")
check "broadcast from $NET2.2 answered from $NET2.1 (the client's subnet)" \
  bash -c "[[ '$r' == ok* ]] && cmp -s '$ROOT/small.bin' '$OUT/b2'"
r=$(in_cli "$TFTPC" get -b -x "$SRV_IP" -B "$CLI_IP" 255.255.255.255:6969 small.bin "$OUT/b3")
check "broadcast from $CLI_IP answered from $SRV_IP" \
  bash -c "[[ '$r' == ok* ]] && cmp -s '$ROOT/small.bin' '$OUT/b3'"
r=$(in_cli "$TFTPC" get -b -x $NET2.1 -B $NET2.2 $NET2.255:6969 small.bin "$OUT/b4")
check "directed broadcast to $NET2.255 answered from $NET2.1" \
  bash -c "[[ '$r' == ok* ]] && cmp -s '$ROOT/small.bin' '$OUT/b4'"
r=$(in_cli "$TFTPC" get -w 300 -b -B "$CLI_IP" 255.255.255.255:7000 small.bin -)
check_eq "a broadcast to a port nobody serves stays unanswered" "timeout" "$r"
finish
