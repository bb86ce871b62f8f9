#!/usr/bin/env bash
# t_rollout_watch.sh: the operator side of rollouts against a real controller
# (no agent needed): profile add/list/show, rollout create/start/list/status
# with --json and human output, local refusals (bad --devices file, missing
# or non-JSON profile) that change nothing, and `rollout watch`:
#   - on a terminal (a detached tmux pane 120x40): the name and state, one bar
#     per wave and per site; `rollout abort` makes it show "aborted" and exit 1;
#   - Ctrl-C ends it with 130; a controller that goes away shows
#     "controller unreachable, retrying" and the watch carries on once the
#     controller is back;
#   - not on a terminal: plain lines without a single escape byte.
# Every wait is bounded; the tmux server (own socket) is killed at the end.
source "$(dirname "$0")/lib.sh"

TMUX_SOCK="cliw$$"
tm() { tmux -L "$TMUX_SOCK" "$@"; }
cleanup_tmux() { tm kill-server 2>/dev/null; }
trap 'cleanup_tmux; stop_all; lab_down; rm -rf "$T"; exit 1' INT TERM

# screen NAME: the pane's text now
screen() { tm capture-pane -p -t "$1" 2>/dev/null; }
# screen_has NAME REGEX
screen_has() { screen "$1" | grep -qE "$2"; }
# watch_in NAME ARGS...: runs `firmfleet ARGS` in a new 120x40 pane; its exit
# status goes to $T/NAME.rc, its stderr to $T/NAME-watch.log
watch_in() {
  local name=$1; shift
  rm -f "$T/$name.rc"
  tm new-session -d -s "$name" -x 120 -y 40 \
    "$(printf '%q ' "$BIN/firmfleet" "$@") 2>$(printf '%q' "$T/$name-watch.log"); echo \$? >$(printf '%q' "$T/$name.rc"); sleep 600"
}
rc_is() { [ -s "$T/$1.rc" ] && [ "$(cat "$T/$1.rc")" == "$2" ]; }
has_no_escape() { ! LC_ALL=C grep -q $'\x1b' "$1"; }

command -v tmux >/dev/null || { nok "tmux is installed"; finish; }
ctl_start || { nok "controller came up"; finish; }
ok "controller came up"

# ---- inventory: two sites, six CP-7940G, a firmware, a profile ----
ff site add berlin --tz Europe/Berlin >/dev/null
ff site add paris --tz Europe/Paris >/dev/null
ff site add rome --tz Europe/Rome >/dev/null
for s in berlin paris rome; do ff agent enroll --site $s --out "$T/$s.cred" >/dev/null; done
{ echo "mac,site,model"
  for i in 1 2 3 4; do echo "00:04:f2:00:00:0$i,berlin,CP-7940G"; done
  for i in 5 6; do echo "00:04:f2:00:00:0$i,paris,CP-7940G"; done
  for i in 7 8; do echo "00:04:f2:00:00:0$i,rome,CP-7940G"; done
} >"$T/devices.csv"
check "devices imported" ff device import "$T/devices.csv"
printf 'P0S3-08-12-00' >"$T/OS79XX.TXT"
head -c 4096 /dev/urandom >"$T/P0S3-08-12-00.sb2"
check "firmware added" ff firmware add cisco/8.12.0 --models CP-7940G "$T/OS79XX.TXT" "$T/P0S3-08-12-00.sb2"

cat >"$T/test-79xx.json" <<'EOF'
{
  "name": "test-79xx",
  "description": "Cisco 7940 for the watch test",
  "priority": 50,
  "recognise": ["vendor-prefix:Cisco Systems, Inc. IP Phone"],
  "final_image": "P0S3-*.sb2"
}
EOF
check "profile add" ff profile add "$T/test-79xx.json"
check_eq "profile list --json has it" "test-79xx" \
  "$(ff profile list --json | jq -r '.profiles[] | select(.name == "test-79xx") | .name')"
check_eq "profile show prints the JSON as written" "Cisco 7940 for the watch test" \
  "$(ff profile show test-79xx | jq -r .description)"
check_eq "profile show --json is the whole document" "test-79xx" "$(ff profile show test-79xx --json | jq -r .name)"
bad 1 "profile add of a missing file" ff profile add "$T/nope.json"
printf '{"name": "x",\n  "recognise": [}\n' >"$T/broken.json"
bad 1 "profile add of a file that is not JSON" ff profile add "$T/broken.json"
grep -q "broken.json:2:" "$T/bad.err" && ok "non-JSON profile names file:line" || nok "non-JSON profile message: $(cat "$T/bad.err")"
bad 1 "profile add of a second one with that name" ff profile add "$T/test-79xx.json"
check "profile add --replace" ff profile add "$T/test-79xx.json" --replace

# ---- windows and device facts ----
check "site set --window" ff site set paris --window 'daily 00:00-24:00'
bad 1 "site set with a bad window" ff site set paris --window 'Someday 25:00-26:00'
check "device set --version" ff device set 00:04:f2:00:00:06 --version 8.5.2

# ---- rollouts: local refusals first ----
printf '# canary\n00:04:f2:00:00:01\n\n00:04:f2:00:00\n' >"$T/bad-macs.txt"
bad 1 "rollout create with a bad MAC in --devices" ff rollout create rx --firmware cisco/8.12.0 \
  --profile test-79xx --devices "$T/bad-macs.txt"
grep -q "bad-macs.txt:4:" "$T/bad.err" && ok "bad --devices names file:line" || nok "bad --devices message: $(cat "$T/bad.err")"
bad 1 "rollout create with a missing --devices file" ff rollout create rx --firmware cisco/8.12.0 \
  --profile test-79xx --devices "$T/none.txt"
bad 2 "rollout create without --profile" ff rollout create rx --firmware cisco/8.12.0
bad 1 "rollout watch with a bad --interval" ff rollout watch rx --interval 0
bad 1 "rollout status of an unknown rollout" ff rollout status nosuch

# ---- create, start, list, status ----
check "rollout create r1" ff rollout create r1 --firmware cisco/8.12.0 --profile test-79xx \
  --sites berlin,paris --models CP-7940G --waves 1,50%,100% --max-failures 2 --window 'daily 00:00-24:00'
printf '00:04:f2:00:00:07\n00-04-F2-00-00-08  # rome\n' >"$T/two.txt"
check "rollout create r2 from a --devices file" ff rollout create r2 --firmware cisco/8.12.0 \
  --profile test-79xx --devices "$T/two.txt"
check_eq "r2 has the two devices of the file" "2" "$(ff rollout status r2 --json | jq .rollout.total)"
check "rollout start r1" ff rollout start r1
check_eq "rollout list --json" "r1 r2" "$(ff rollout list --json | jq -r '[.rollouts[].name] | join(" ")')"
check "rollout list (human) has a header" bash -c "'$BIN/firmfleet' -d '$CTL_DIR' rollout list | head -1 | grep -q '^ID  *NAME  *STATE'"
st=$(ff rollout status r1 --json)
check_eq "status --json state" "running" "$(jq -r .rollout.state <<<"$st")"
nwaves=$(jq '.waves | length' <<<"$st")
nsites=$(jq '.sites | length' <<<"$st")
check_eq "status --json: 3 waves" "3" "$nwaves"
check_eq "status --json: 2 sites" "2" "$nsites"
check_eq "status --json: 6 devices" "6" "$(jq .rollout.total <<<"$st")"
ff rollout status r1 >"$T/status.txt" 2>&1
check "human status has header, counts and tables" bash -c \
  "grep -q '^rollout: *r1' '$T/status.txt' && grep -q '^state: *running' '$T/status.txt' &&
   grep -q 'pending [0-9]*  assigned' '$T/status.txt' && grep -q '^WAVE ' '$T/status.txt' &&
   grep -q '^SITE ' '$T/status.txt' && grep -q '^failures: 0' '$T/status.txt'"
check "status --devices adds the device table" bash -c \
  "'$BIN/firmfleet' -d '$CTL_DIR' rollout status r1 --devices | grep -q '^00:04:f2:00:00:01 '"
check_fails "status without --devices has no device table" bash -c \
  "'$BIN/firmfleet' -d '$CTL_DIR' rollout status r1 | grep -q '^00:04:f2:00:00:01 '"
check_eq "status --json --devices lists the 6 devices" "6" "$(ff rollout status r1 --json --devices | jq '.devices | length')"
check_eq "status --json without --devices has none" "null" "$(ff rollout status r1 --json | jq '.devices')"

# ---- watch on a terminal ----
watch_in w1 -d "$CTL_DIR" rollout watch r1 --interval 0.2
check "watch shows the rollout and its state" wait_until 20 screen_has w1 '^rollout r1  running'
check "watch shows one bar per wave" wait_until 10 \
  bash -c "[ \$(tmux -L $TMUX_SOCK capture-pane -p -t w1 | grep -cE '^wave [0-9]+ +\[[-#x>]+\] ') -eq $nwaves ]"
check "watch shows one bar per site" wait_until 10 \
  bash -c "[ \$(tmux -L $TMUX_SOCK capture-pane -p -t w1 | grep -cE '^site [a-z]+ +\[[-#x>]+\] ') -eq $nsites ]"
# the widest line of the frame: wider than 90 columns, narrower than 120
bar_width_ok() {
  screen w1 | awk 'BEGIN { r = 1 } /^wave 1 / { r = !(length($0) > 90 && length($0) < 120) } END { exit r }'
}
check "a bar line fits 120 columns and uses most of them" bar_width_ok
screen w1 >"$T/w1-running.txt"
check "watch is still running" test ! -e "$T/w1.rc"
check "rollout abort r1" ff rollout abort r1
check "watch shows aborted" wait_until 20 screen_has w1 '^rollout r1  aborted'
check "watch exits after the abort" wait_until 20 test -s "$T/w1.rc"
check_eq "watch exit status after abort" "1" "$(cat "$T/w1.rc" 2>/dev/null)"
check "watch says why on stderr" grep -q '^firmfleet: rollout r1 aborted' "$T/w1-watch.log"

# ---- not a terminal: plain lines, no escape bytes ----
ff rollout watch r1 --once >"$T/plain.txt" 2>"$T/plain-watch.log"
check_eq "watch --once of an aborted rollout exits 1" "1" "$?"
check "watch --once | cat has no escape bytes" has_no_escape "$T/plain.txt"
check "watch --once prints one plain line" bash -c \
  "[ \$(wc -l <'$T/plain.txt') -eq 1 ] && grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z r1 aborted wave [-0-9]+/3 succeeded [0-9]+/6 failed [0-9]+' '$T/plain.txt'"
ff rollout watch r2 --once | cat >"$T/plain2.txt"
check_eq "watch --once of a created rollout exits 0" "0" "${PIPESTATUS[0]}"
check "watch --once | cat (created) has no escape bytes" has_no_escape "$T/plain2.txt"
check "watch --once names r2 created" grep -qE 'Z r2 created ' "$T/plain2.txt"
check_eq "watch --once --json is the status document" "r2" \
  "$(ff rollout watch r2 --once --json | jq -r .rollout.name)"

# ---- Ctrl-C, and a controller that goes away and comes back ----
watch_in w2 -d "$CTL_DIR" rollout watch r2 --interval 0.2
check "watch of r2 shows it" wait_until 20 screen_has w2 '^rollout r2  created'
ctl_kill9
check "controller gone: unreachable, retrying" wait_until 20 screen_has w2 'controller unreachable, retrying'
check "the watch keeps going while the controller is away" test ! -e "$T/w2.rc"
ctl_start >/dev/null
check "controller back: the frame again, without the note" wait_until 30 \
  bash -c "tmux -L $TMUX_SOCK capture-pane -p -t w2 | grep -q '^rollout r2  created' &&
           ! tmux -L $TMUX_SOCK capture-pane -p -t w2 | grep -q 'unreachable'"
tm send-keys -t w2 C-c
check "Ctrl-C ends the watch" wait_until 10 test -s "$T/w2.rc"
check_eq "watch exit status after Ctrl-C" "130" "$(cat "$T/w2.rc" 2>/dev/null)"

# a controller that is not there from the start: retried until interrupted
watch_in w3 -d "$T/nowhere" rollout watch r2 --interval 0.2
check "no controller: unreachable, retrying" wait_until 20 screen_has w3 'controller unreachable, retrying'
tm send-keys -t w3 C-c
check "Ctrl-C ends that watch too" wait_until 10 rc_is w3 130
bad 1 "watch --once with no controller fails" "$BIN/firmfleet" -d "$T/nowhere" rollout watch r2 --once

cleanup_tmux
finish
