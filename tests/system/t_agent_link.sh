#!/usr/bin/env bash
# t_agent_link: an enrolled agent comes online over CURVE; a revoked key, an
# unenrolled key and a plaintext client are refused; garbage frames from an
# admitted client do not hurt the controller.
source "$(dirname "$0")/lib.sh"

check "controller starts" ctl_start
check "site berlin added" ff site add berlin --tz Europe/Berlin
check "agent enrolled" ff agent enroll --site berlin --out "$T/berlin.cred"
check "credential file is mode 0600" test "$(stat -c %a "$T/berlin.cred")" = 600
check "credential names site berlin" test "$(jq -r .site "$T/berlin.cred")" = berlin

agent_start berlin
check "agent berlin online in 'agent list --json'" wait_until 30 agent_online berlin
check "agent list shows site berlin" \
  test "$(ff agent list --json | jq -r '.[] | select(.name=="berlin") | .site')" = berlin
# the credential was single-use: the agent now connects with the key pair it
# made for itself (STATEDIR/agent.key); zprobe speaks as the agent with it
jq --slurpfile k "$T/berlin.state/agent.key" \
  '.public_key = $k[0].public_key | .secret_key = $k[0].secret_key' \
  "$T/berlin.cred" >"$T/berlin.own.cred"
chmod 600 "$T/berlin.own.cred"
check "the enrollment credential is used up" \
  test "$(ff agent show berlin --json | jq -r .enrollment)" = used

# a second controller's enrollment gives a well-formed key this controller never saw
mkdir -p "$T/other"
"$BIN/firmfleetd" -d "$T/other" --listen "tcp://127.0.0.1:$(free_port)" >>"$T/other.log" 2>&1 &
PIDS[other]=$!
wait_until 20 "$BIN/firmfleet" -d "$T/other" site list
"$BIN/firmfleet" -d "$T/other" site add x --tz UTC >/dev/null
"$BIN/firmfleet" -d "$T/other" agent enroll --site x --out "$T/x.cred" >/dev/null
jq --slurpfile o "$T/x.cred" '.public_key = $o[0].public_key | .secret_key = $o[0].secret_key' \
  "$T/berlin.cred" >"$T/stranger.cred"
chmod 600 "$T/stranger.cred"
check "zprobe admits the agent's registered key (Welcome)" "$BIN/tests/tools/zprobe" curve "$ENDPOINT" "$T/berlin.own.cred"
check_fails "the used enrollment key is refused" "$BIN/tests/tools/zprobe" curve "$ENDPOINT" "$T/berlin.cred"
check_fails "an unenrolled key is refused" "$BIN/tests/tools/zprobe" curve "$ENDPOINT" "$T/stranger.cred"
check "controller logged the unknown key" grep -q 'reason="unknown agent key"' "$T/ctl.log"
check "a plaintext (NULL mechanism) client is refused" "$BIN/tests/tools/zprobe" plain "$ENDPOINT"
check "garbage frames are sent by an admitted client" "$BIN/tests/tools/zprobe" garbage "$ENDPOINT" "$T/berlin.own.cred"
check "controller still answers after garbage" ff agent list --json
check "controller logged the bad frames" grep -q 'msg=link.bad_frame' "$T/ctl.log"

check "agent revoked" ff agent revoke berlin
offline() { ! agent_online berlin; }
check "revoked agent goes offline" wait_until 30 offline
check "agent list marks it revoked" \
  test "$(ff agent list --json | jq -r '.[] | select(.name=="berlin") | (.revoked_ms != null)')" = true
check_fails "the revoked key is refused at the handshake" "$BIN/tests/tools/zprobe" curve "$ENDPOINT" "$T/berlin.own.cred"
check "controller logged the revoked key" grep -q 'reason="agent key revoked"' "$T/ctl.log"
check "agent logged that it was revoked or refused" wait_until 20 grep -qE 'msg=uplink\.(revoked|refused)' "$T/berlin.log"
check "agent is still running (it waits, it does not crash)" kill -0 "${PIDS[berlin]}"
finish
