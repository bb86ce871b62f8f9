#!/usr/bin/env bash
# t_diskfull: the site agent's state directory on a 12 MiB tmpfs, and a
# rollout whose image (20 MiB) cannot fit: the image cache fills the disk.
#   - a clear alarm: an error line naming the full disk in the agent's log,
#     and an event at the controller (cache.full, journal.full,
#     image.write_failed, or any event whose detail says "No space");
#   - the agent stays up and keeps serving the devices that need no new
#     image: a known device renews, a new device gets a lease (the journal
#     must still take it: a lease is durable before its ACK), a file from the
#     files root goes out over TFTP;
#   - no corruption: PRAGMA integrity_check ok while full, and again after
#     the space is freed (the tmpfs grown to 64 MiB) and the agent restarted
#     with kill -9; every lease ACKed is still in the journal, and the
#     image is then cached.
# Namespaces ffcr*, addresses in 198.18.87.0/24 only; the tmpfs is mounted
# under /tmp/crash-* and unmounted on exit.
source "$(dirname "$0")/lib.sh"
rmdir "$T" 2>/dev/null
T=$(mktemp -d /tmp/crash-full.XXXXXX)
CTL_DIR=$T/ctl
MNT=$T/small
ST=$MNT/state
JR=$ST/journal.db
mkdir -p "$MNT"
umount_small() { mountpoint -q "$MNT" && { umount "$MNT" || umount -l "$MNT"; }; }
trap 'stop_all; lab_down; umount_small; rm -rf "$T"; exit 1' INT TERM

check "a 12 MiB tmpfs for the agent's state" mount -t tmpfs -o size=12m,mode=0755 ffcrfull "$MNT"
check "lab namespaces" lab_up ffcrfs ffcrfc 198.18.87
FF_NS="$SRV_NS"
check "controller starts with the shipped profiles" ctl_start --profiles "$(cd "$(dirname "$0")/../.." && pwd)/profiles"
unset FF_NS
ff site add full --tz Europe/Berlin >/dev/null
ff subnet add full 198.18.87.0/24 --pool 198.18.87.100-198.18.87.150 --lease 600 >/dev/null
ff agent enroll --site full --out "$T/full.cred" >/dev/null
mkdir -p "$T/root"
head -c 70000 /dev/urandom >"$T/root/plain.bin"
agent_up() { # agent_start with the state directory on the tmpfs
  in_srv "$BIN/firmfleet-agent" -c "$T/full.cred" -s "$ST" --dhcp "$SRV_IF" --tftp 198.18.87.1 \
    --files-root "$T/root" >>"$T/full.log" 2>&1 &
  PIDS[full]=$!
}
agent_up
check "agent online" wait_until 30 agent_online full
check "the journal is on the tmpfs" wait_until 10 test -f "$JR"

udhcpc_script "$T/udhcpc.sh"
boot() { # MAC
  in_cli ip addr flush dev "$CLI_IF"
  in_cli ip link set dev "$CLI_IF" address "$1"
  rm -f "$T/lease.$1"
  UDHCP_OUT="$T/lease.$1" in_cli busybox udhcpc -i "$CLI_IF" -n -q -f -s "$T/udhcpc.sh" \
    -t 5 -T 1 >/dev/null 2>&1 && [ -s "$T/lease.$1" ]
}
tget() { rm -f "$T/got"; in_cli tftp -m binary 198.18.87.1 -c get plain.bin "$T/got" >/dev/null 2>&1 && cmp -s "$T/root/plain.bin" "$T/got"; }
jq1() { sqlite3 -readonly "$JR" "$1" 2>&1; }
in_journal() { [ "$(jq1 "SELECT mac FROM dhcp_lease WHERE addr = '$(cat "$T/lease.$1")'")" == "$1" ]; }
alive() { kill -0 "${PIDS[full]}" 2>/dev/null; }

A=02:5f:87:00:00:01 B=02:5f:87:00:00:02 C=02:5f:87:00:00:03
check "device A: a lease before the disk fills" boot $A
check "device A: TFTP before the disk fills" tget

# ---- fill the disk: an image larger than the space ----
mkdir -p "$T/fw"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T/fw/2345-46200-010.sip.ld"
ff firmware add polycom/9.9.9.1 --models VVX400 "$T"/fw/* >/dev/null
ff device add 00:04:f2:00:87:01 --site full --model VVX400 >/dev/null
check "a rollout that needs the 20 MiB image" ff rollout create big --firmware polycom/9.9.9.1 \
  --profile polycom --sites full --models VVX400 --waves 100%
alarm_log() { grep -E 'level=(error|warn)' "$T/full.log" | grep -qE 'No space left|ENOSPC|cache\.full|journal\.full|disk\.full'; }
full_disk() { [ "$(df --output=avail -k "$MNT" | tail -1 | tr -d ' ')" -lt 512 ]; }
# today the pull fills the disk; an agent that keeps headroom may refuse
# earlier: either way it must say so
full_or_alarm() { full_disk || alarm_log; }
check "the image pull meets the small disk" wait_until 40 full_or_alarm
note "df: $(df -k "$MNT" | tail -1)"
note "state dir: $(cd "$ST" && du -a -k . | sort -rn | head -6 | tr '\n' ' ')"
sleep 2 # the agent meets ENOSPC and reports it
check "alarm: the agent logs the full disk ($(grep -E 'level=(error|warn)' "$T/full.log" | grep -oE 'msg=[a-z_.]+' | sort | uniq -c | tr '\n' ' '))" alarm_log
alarm_event() {
  [ "$(sqlite3 -readonly "$CTL_DIR/controller.db" "SELECT count(*) FROM event
     WHERE kind IN ('cache.full', 'journal.full', 'disk.full', 'image.write_failed')
        OR detail LIKE '%No space%' OR detail LIKE '%ENOSPC%'")" -ge 1 ]
}
check "alarm: an event at the controller says the disk is full" wait_until 15 alarm_event
check "the agent is still running" alive
check "integrity_check ok while the disk is full" test "$(jq1 'PRAGMA integrity_check')" = ok

# ---- service goes on for devices that need no new image ----
check "device A renews its lease (disk full)" boot $A
check "device B: a new lease (disk full)" boot $B
check "device B's lease is in the journal" in_journal $B
check "TFTP of a file from the files root (disk full)" tget
sleep 3
check "device C, 3 s later: a new lease (disk full)" boot $C
check "the agent is still running after serving" alive
note "agent errors: $(grep -E 'level=error' "$T/full.log" | grep -oE 'msg=[a-z_.]+' | sort | uniq -c | tr '\n' ' ')"

# FF_KEEP_LOG=PATH keeps a copy of the agent log of the full-disk phase (debugging)
[ -n "${FF_KEEP_LOG:-}" ] && cp "$T/full.log" "$FF_KEEP_LOG"
# ---- free the space, restart, check ----
agent_kill9 full
check "integrity_check ok after kill -9 on a full disk" test "$(jq1 'PRAGMA integrity_check')" = ok
check "space freed: the tmpfs grown to 64 MiB" mount -o remount,size=64m "$MNT"
check "integrity_check ok after freeing space" test "$(jq1 'PRAGMA integrity_check')" = ok
agent_up
check "agent online again" wait_until 30 agent_online full
for m in $A $B $C; do
  [ -s "$T/lease.$m" ] && check "the lease ACKed to $m is in the journal" in_journal $m
done
cached() { [ "$(jq1 "SELECT count(*) FROM images WHERE state = 'cached'")" -ge 1 ]; }
check "with room again, the image is pulled and cached" wait_until 60 cached
check "device A renews after the restart" boot $A
check "TFTP after the restart" tget
check "integrity_check ok at the end" test "$(jq1 'PRAGMA integrity_check')" = ok
stop_all
umount_small
check "tmpfs unmounted" sh -c "! mountpoint -q '$MNT'"
finish
