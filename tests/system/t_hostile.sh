#!/usr/bin/env bash
# t_hostile: known-bad inputs from the CVE history of dnsmasq, tftp-hpa,
# atftpd and classic HTTP servers, replayed at one agent serving DHCP, TFTP
# and HTTP across a veth pair (namespaces ffhos-*, 198.18.82.0/24). The
# cases are data: tests/system/hostile/{tftp,http,dhcp}.tsv, one row per
# case with its expected outcome and the CVE or class it reflects; the
# sender is tests/tools/hostile. One TAP line per case; after each group:
# the agent is alive and still serves a real client (tftp-hpa, curl, busybox
# udhcpc), and no byte of the secret outside the root ever came back. The
# tables are then replayed three more times without waiting on silence, and
# the agent's RSS must stay within 2 MiB of what it was after the first pass.
source "$(dirname "$0")/lib.sh"
rm -f /tmp/hos-pwn
# freed memory goes back to the allocator, not into a 256 MiB quarantine,
# so that RSS can be compared (ASan build only; harmless otherwise)
export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=1:thread_local_quarantine_size_kb=64"

HOSTILE=$BIN/tests/tools/hostile
TABLES=$(cd "$(dirname "$0")/hostile" && pwd)
for p in tftp curl busybox; do
  command -v $p >/dev/null || { nok "client $p installed (make deps)"; finish; }
done

check "lab namespaces up" lab_up ffhos ffhoc 198.18.82
check "client address $CLI_IP" ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
export FF_NS="$SRV_NS"

# ---- files: a root, a secret outside it, symlinks pointing out ----
ROOT=$T/root OUTSIDE=$T/outside OUT=$T/out
SECRET="FFHOS-SECRET-$$-$RANDOM"
mkdir -p "$ROOT/sub/dir" "$OUTSIDE" "$OUT"
echo "$SECRET" >"$OUTSIDE/secret.txt"
printf 'hello\n' >"$ROOT/hello.txt"
: >"$ROOT/empty.txt"
head -c 3000 /dev/urandom >"$ROOT/small.bin"
echo "<device/>" >"$ROOT/sub/dir/file.cfg"
ln -s /etc/passwd "$ROOT/link_passwd"
ln -s /etc/passwd "$ROOT/abs"
ln -s "$OUTSIDE" "$ROOT/linkdir"
ln -s ../outside/secret.txt "$ROOT/rel_link"
ln -s ../outside/secret.txt "$ROOT/escape"
chmod -R a+rX "$ROOT"
HP=8082
SECRETS=(-s "$SECRET" -s 'root:x:0:0')

# ---- controller, agent ----
check "controller starts" ctl_start
check "site added" ff site add hos --tz UTC
check "subnet added" ff subnet add hos 198.18.82.0/24 --pool 198.18.82.100-198.18.82.199 \
  --router 198.18.82.1 --dns 198.18.82.1 --lease 600
check "agent enrolled" ff agent enroll --site hos --name hos --out "$T/hos.cred"
agent_start hos --dhcp "$SRV_IF" --tftp "$SRV_IP" --http "$SRV_IP:$HP" \
  --files-root "$ROOT" --upload-max 4K
AG=${PIDS[hos]}
check "agent starts TFTP" wait_until 20 grep -q 'msg=tftpd.start' "$T/hos.log"
check "agent online" wait_until 30 agent_online hos
config_in() { grep -q 'msg=dhcp.config .*subnets=1' "$T/hos.log"; }
check "agent has the DHCP configuration" wait_until 20 config_in

# ---- the good requests, run after every group ----
cat >"$T/env.sh" <<'EOF'
#!/bin/sh
[ "$1" = bound ] && echo "bound ip=$ip"
exit 0
EOF
chmod +x "$T/env.sh"
good_tftp() {
  rm -f "$OUT/g.tftp"
  (cd "$OUT" && in_cli timeout 10 tftp -m binary "$SRV_IP" -c get small.bin g.tftp) >/dev/null 2>&1
  cmp -s "$ROOT/small.bin" "$OUT/g.tftp"
}
good_http() {
  rm -f "$OUT/g.http"
  in_cli curl -sf -m 5 -o "$OUT/g.http" "http://$SRV_IP:$HP/small.bin" && cmp -s "$ROOT/small.bin" "$OUT/g.http"
}
good_dhcp() {
  ip -n "$CLI_NS" link set dev "$CLI_IF" address 02:00:00:82:00:aa
  in_cli timeout 15 busybox udhcpc -i "$CLI_IF" -n -q -f -s "$T/env.sh" -t 4 -T 1 >"$OUT/g.dhcp" 2>&1
  grep -qE '^bound ip=198\.18\.82\.1[0-9][0-9]$' "$OUT/g.dhcp"
}
no_secret_in_out() { ! grep -rqs -e "$SECRET" -e 'root:x:0:0' "$OUT"; }
# after_group PROTO GROUP: the agent lives, serves, leaked nothing
after_group() {
  check "after $1/$2: agent still running" kill -0 "$AG"
  check "after $1/$2: a real client is still served ($1)" "good_$1"
  check "after $1/$2: no secret bytes in anything received" \
    bash -c "! grep -q 'got=SECRET' '$T/h.out' && ! grep -rqs -e '$SECRET' -e 'root:x:0:0' '$OUT'"
}

# say PROTO EXPECT: the table's expected outcome in words
say() {
  case "$1:$2" in
    tftp:none) echo "ignored (no reply)" ;;
    tftp:error:1) echo "refused with TFTP ERROR code 1 (file not found)" ;;
    tftp:error:2) echo "refused with TFTP ERROR code 2 (access violation)" ;;
    tftp:error:4) echo "refused with TFTP ERROR code 4 (illegal operation)" ;;
    tftp:error:*) echo "refused with TFTP ERROR code ${2#error:}" ;;
    tftp:data:*) echo "served without OACK (DATA block 1, ${2#data:} bytes)" ;;
    tftp:oack:*) echo "OACK with exactly ${2#oack:}" ;;
    http:status:*) echo "HTTP ${2#status:}, one response, connection closed" ;;
    dhcp:none) echo "DHCP no reply" ;;
    dhcp:*) echo "DHCP$(tr a-z A-Z <<<"$2")" ;;
    *) echo "$2" ;;
  esac
}

# run_table PROTO TARGET GROUP...: one TAP line per case of each group
run_table() {
  local proto=$1 target=$2 g verdict id exp rest; shift 2
  for g in "$@"; do
    in_cli "$HOSTILE" "$proto" -g "$g" "${SECRETS[@]}" "$target" "$TABLES/$proto.tsv" >"$T/h.out" 2>"$T/h.err"
    [ -s "$T/h.err" ] && note "hostile $proto $g: $(head -c 300 "$T/h.err")"
    grep -q '^summary ' "$T/h.out" || nok "$proto/$g: the sender ran to the end"
    while read -r verdict id exp rest; do
      case "$verdict" in
        pass) ok "$id: $(say "$proto" "$exp")" ;;
        fail) nok "$id: $(say "$proto" "$exp") ($rest)"; echo "$proto $id" >>"$T/first.fail" ;;
      esac
    done <"$T/h.out"
    after_group "$proto" "$g"
  done
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$AG/status"; }

check "warm-up: tftp-hpa get" good_tftp
check "warm-up: curl get" good_http
check "warm-up: busybox udhcpc exchange" good_dhcp

t0=$SECONDS
run_table tftp "$SRV_IP" short ops opts names
run_table http "$SRV_IP:$HP" head body range path
run_table dhcp "$CLI_IF" hdr opts size
note "first pass: $((SECONDS - t0)) s"
# a DISCOVER is evidence for the inventory: a real (unicast) MAC from the
# table arrives as discovered; a broadcast, multicast or all-zero chaddr
# must not (no device has it)
discovered() { ff device list --json | jq -e '.[] | select(.mac == "02:00:00:82:00:03")' >/dev/null; }
check "the table's unicast chaddr reached the inventory as discovered" wait_until 15 discovered
bogus=$(ff device list --json | jq -r '.[].mac | select(test("^.[13579bdf]:") or . == "00:00:00:00:00:00")' | xargs)
check_eq "no broadcast, multicast or all-zero MAC in the inventory" "" "$bogus"
check "nothing was uploaded by the hostile PUTs" test ! -e "$T/hos.state/uploads/805ec0aabbcc/a.cfg"
check "nothing was written by the hostile WRQs" test ! -e /tmp/hos-pwn -a ! -e "$ROOT/up.bin"

# ---- RSS stays flat: three more passes, silence not waited for ----
rss1=$(rss_kb)
t0=$SECONDS
for i in 1 2 3; do
  in_cli "$HOSTILE" tftp -q "${SECRETS[@]}" "$SRV_IP" "$TABLES/tftp.tsv" >>"$T/rep.out" 2>&1
  in_cli "$HOSTILE" http -q "${SECRETS[@]}" "$SRV_IP:$HP" "$TABLES/http.tsv" >>"$T/rep.out" 2>&1
  in_cli "$HOSTILE" dhcp -q "${SECRETS[@]}" "$CLI_IF" "$TABLES/dhcp.tsv" >>"$T/rep.out" 2>&1
done
good_tftp >/dev/null; good_http >/dev/null
sleep 1
rss2=$(rss_kb)
note "replays: $((SECONDS - t0)) s; $(grep -c '^summary' "$T/rep.out") runs: $(grep '^summary' "$T/rep.out" | sort | uniq -c | xargs)"
# (a case that failed the first pass fails again; any other failure is new.
# The replays send without waiting on silence, so on a loaded machine a
# datagram may be dropped by a full socket buffer: a UDP case that got no
# answer at all here is not a new failure (the first pass, with its waits,
# judged it; that the agent still serves is checked right above and below).)
first_fails=$(awk '{ print $2 }' "$T/first.fail" 2>/dev/null | sort -u | xargs)
rep_fails=$(awk '/^fail/ && !($2 ~ /^[td]-/ && / got=none/) { print $2 }' "$T/rep.out" | sort -u | xargs)
new_fails=$(comm -13 <(tr ' ' '\n' <<<"$first_fails" | sort) <(tr ' ' '\n' <<<"$rep_fails" | sort) | xargs)
check_eq "replays: no case fails that passed the first time" "" "$new_fails"
[ -z "$new_fails" ] || grep '^fail' "$T/rep.out" | sed 's/^/# replay: /' 
note "RSS after the first pass ${rss1} KiB, after three more ${rss2} KiB"
check "RSS stays flat (+$((rss2 - rss1)) KiB <= 2048 KiB)" test "$((rss2 - rss1))" -le 2048
check "agent still running at the end" kill -0 "$AG"
good_all() { good_tftp && good_http && good_dhcp; }
check "still serving at the end: tftp, http, dhcp" good_all
check "no secret bytes anywhere" no_secret_in_out

stop_all
check "agent stopped cleanly (exit 0)" grep -q 'msg=agent.stop exit=0' "$T/hos.log"
check_fails "no leaked handles at stop" grep -q 'msg=agent.leak' "$T/hos.log"
finish
