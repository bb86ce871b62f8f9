#!/usr/bin/env bash
# t_privdrop: firmfleetd and firmfleet-agent with --user, in a network
# namespace (so that the privileged ports are ours): a system user made for
# the test (useradd --system, deleted at the end); the agent binds DHCP on
# port 67 with its packet socket, TFTP on 69, HTTP on 80 and a metrics port,
# then drops. Checked: /proc/PID/status shows the user's uid and gid in all
# four slots, no capabilities and NoNewPrivs; the data and state trees
# belong to the user, and so do files created after the drop (an image
# added on the controller, a backup PUT on the agent); the agent is online,
# DHCP (busybox udhcpc), TFTP (tftp-hpa), HTTP and metrics answer; a
# restart as the same user works; a directory owned by a third user is
# refused with a clear error, an unknown user and uid 0 are usage errors.
source "$(dirname "$0")/lib.sh"
for p in busybox tftp curl useradd userdel; do
  command -v "$p" >/dev/null || { echo "ok 1 - # SKIP $p missing"; exit 0; }
done

U=ffpd$$
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$U" ||
  { echo "not ok 1 - useradd $U"; exit 1; }
trap 'userdel "$U" 2>/dev/null' EXIT
UID_U=$(id -u "$U")
GID_U=$(id -g "$U")
chmod 711 "$T" # the user must reach its directories by path after the drop

ROOT=$T/root
mkdir -p "$ROOT"
printf 'cfg\n' >"$ROOT/0004f2aabb01.cfg"
head -c 3000 /dev/urandom >"$ROOT/small.bin"
chmod -R a+rX "$ROOT"

# status PID: Uid, Gid, CapEff and NoNewPrivs as one line
status() {
  awk '/^Uid:|^Gid:/ { printf "%s %s %s %s %s ", $1, $2, $3, $4, $5 }
       /^CapEff:|^NoNewPrivs:/ { printf "%s %s ", $1, $2 }' "/proc/$1/status"
}
WANT="Uid: $UID_U $UID_U $UID_U $UID_U Gid: $GID_U $GID_U $GID_U $GID_U CapEff: 0000000000000000 NoNewPrivs: 1 "
# owned_by DIR: every file under DIR belongs to the user and its group
owned_by() {
  local other
  other=$(find "$1" \( ! -user "$U" -o ! -group "$GID_U" \) -print 2>/dev/null | head -3)
  [ -z "$other" ] || { note "not the user's: $other"; return 1; }
}

check "lab namespaces" lab_up ffpsrv ffpcli 198.18.21
export FF_NS="$SRV_NS"
CM=$(free_port)
AM=$(free_port)

# ---- the controller ----
check "controller starts with --user $U" ctl_start --user "$U" --metrics "127.0.0.1:$CM"
check_eq "controller: uid, gid, no caps, no_new_privs" "$WANT" "$(status "${PIDS[ctl]}")"
check "controller logged the drop" grep -q "msg=ctl.user user=$U uid=$UID_U" "$T/ctl.log"
check "controller data tree belongs to $U" owned_by "$CTL_DIR"
ff site add lab --tz UTC >/dev/null
ff device add 00:04:f2:aa:bb:01 --site lab --model VVX400 >/dev/null
ff subnet add lab 198.18.21.0/24 --pool 198.18.21.100-198.18.21.110 --router 198.18.21.1 \
  --lease 600 >/dev/null
ff agent enroll --site lab --out "$T/lab.cred" >/dev/null
printf 'firmware\n' >"$T/fw.bin"
fw_add() { ff firmware add polycom/1.0 --models VVX400 "$T/fw.bin" >/dev/null; }
check "controller (as $U) stores an image" fw_add
check "files created after the drop belong to $U" owned_by "$CTL_DIR"
check "images/ holds a file" test -n "$(find "$CTL_DIR/images" -type f | head -1)"
check "controller metrics answer" in_srv curl -sf -o /dev/null "http://127.0.0.1:$CM/metrics"

# ---- the agent: DHCP 67, TFTP 69, HTTP 80, metrics; then the drop ----
agent_start lab --user "$U" --dhcp "$SRV_IF" --tftp "$SRV_IP" --http "$SRV_IP:80" \
  --files-root "$ROOT" --metrics "127.0.0.1:$AM"
check "agent logged the drop" wait_until 20 grep -q "msg=agent.user user=$U uid=$UID_U" "$T/lab.log"
check_eq "agent: uid, gid, no caps, no_new_privs" "$WANT" "$(status "${PIDS[lab]}")"
check "agent online" wait_until 30 agent_online lab
check "agent state tree belongs to $U" owned_by "$T/lab.state"

printf '#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip"\nexit 0\n' >"$T/env.sh"
chmod +x "$T/env.sh"
dhcp_ok() {
  ip -n "$CLI_NS" link set dev "$CLI_IF" address 00:04:f2:aa:bb:01
  in_cli busybox udhcpc -i "$CLI_IF" -n -q -f -s "$T/env.sh" -t 4 -T 1 >"$T/dhcp.out" 2>&1
  grep -Eq '^ip=198\.18\.21\.(10[0-9]|110)$' "$T/dhcp.out"
}
check "DHCP (port 67, bound before the drop) leases an address" wait_until 30 dhcp_ok
ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
(cd "$T" && in_cli tftp -m binary "$SRV_IP" -c get small.bin tftp.out)
check "TFTP (port 69) serves after the drop" cmp -s "$ROOT/small.bin" "$T/tftp.out"
check "HTTP (port 80) serves after the drop" in_cli curl -sf -o /dev/null "http://$SRV_IP/small.bin"
code=$(in_cli curl -s -o /dev/null -w '%{http_code}' -T "$ROOT/0004f2aabb01.cfg" \
  "http://$SRV_IP/0004f2aabb01-backup.cfg")
check_eq "HTTP PUT of a backup (a new file and directory under uploads/)" "201" "$code"
check "the backup is under uploads/" test -n "$(find "$T/lab.state/uploads" -type f 2>/dev/null | head -1)"
check "files the agent created after the drop belong to $U" owned_by "$T/lab.state"
check "agent metrics answer" in_srv curl -sf -o "$T/a.prom" "http://127.0.0.1:$AM/metrics"
check "agent metrics: a DHCP ack counted" grep -Eq '^firmfleet_dhcp_replies_total\{type="ack"\} [1-9]' "$T/a.prom"
check "agent metrics: a TFTP transfer done" grep -Eq '^firmfleet_tftp_transfers_total\{result="done"\} [1-9]' "$T/a.prom"

# ---- restart as the same user (the tree is already its own) ----
kill "${PIDS[ctl]}"; wait "${PIDS[ctl]}" 2>/dev/null; unset 'PIDS[ctl]'
check "controller restarts as $U" ctl_start --user "$U"
check "agent back online" wait_until 30 agent_online lab

# ---- refusals ----
mkdir -p "$T/theirs"
chown 65534 "$T/theirs"
"$BIN/firmfleetd" -d "$T/theirs" --listen "tcp://127.0.0.1:$(free_port)" --user "$U" \
  >"$T/theirs.out" 2>&1
check_eq "a data dir owned by a third user: exit 1" "1" "$?"
check "... with a clear error" grep -q "owned by uid 65534, neither root nor $U" "$T/theirs.out"
"$BIN/firmfleet-agent" -c "$T/lab.cred" -s "$T/theirs" --user "$U" >"$T/theirs2.out" 2>&1
check_eq "a state dir owned by a third user: agent exit 1" "1" "$?"
"$BIN/firmfleetd" -d "$T/x" --user nosuchuser$$ >/dev/null 2>&1
check_eq "an unknown user: exit 2" "2" "$?"
"$BIN/firmfleet-agent" -c "$T/lab.cred" -s "$T/x" --user root >/dev/null 2>&1
check_eq "--user root: exit 2" "2" "$?"

stop_all
userdel "$U" 2>/dev/null
finish
