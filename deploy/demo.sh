#!/usr/bin/env bash
# demo.sh: what `make run` does. Starts a controller and one site agent on
# loopback with the embedded defaults, enrolls site berlin, shows the agent
# online, catalogs a small firmware for a device there and shows the agent
# pulling it into its cache over the CURVE link, lists the events the agent
# reported, then stops everything and removes its files (Ctrl-C too).
#   deploy/demo.sh [BUILDDIR]      KEEP=1 leaves the daemons running until Ctrl-C
set -euo pipefail
B=${1:-build}
B=$(cd "$B" && pwd)
W=$(mktemp -d /tmp/firmfleet-demo.XXXXXX)
PORT=${FF_DEMO_PORT:-$((27600 + RANDOM % 1000))}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ff() { echo "\$ firmfleet $*" >&2; "$B/firmfleet" -d "$W/ctl" "$@"; }
wait_for() { # seconds, description, command...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "demo: timed out waiting for $what" >&2; exit 1; fi
    sleep 0.2
  done
}

say "starting the controller (data in $W/ctl, agents on tcp://127.0.0.1:$PORT)"
"$B/firmfleetd" -d "$W/ctl" --listen "tcp://127.0.0.1:$PORT" 2>"$W/firmfleetd.log" &
pids+=($!)
wait_for 20 "the controller" "$B/firmfleet" -d "$W/ctl" site list

say "a site, an agent credential, a device"
ff site add berlin --tz Europe/Berlin --description "Berlin branch"
ff agent enroll --site berlin --out "$W/berlin.cred"
ff device add 00:04:f2:aa:bb:01 --site berlin --model CP-7940G --serial FCH1234A001

say "starting the site agent for berlin"
"$B/firmfleet-agent" -c "$W/berlin.cred" -s "$W/berlin.state" 2>"$W/agent.log" &
pids+=($!)
online() { "$B/firmfleet" -d "$W/ctl" agent list --json | jq -e '.[] | select(.name=="berlin" and .online)'; }
wait_for 30 "the agent to come online" online
ff agent list

say "cataloging firmware for the CP-7940G; the agent pulls it into its cache"
head -c $((8 << 20)) /dev/urandom >"$W/P0S3-08-12-00.loads"
printf 'P0S3-08-12-00' >"$W/OS79XX.TXT"
ff firmware add cisco/8.12.0 --models CP-7940G "$W/P0S3-08-12-00.loads" "$W/OS79XX.TXT"
ff firmware list
want=$(sha256sum "$W/P0S3-08-12-00.loads" | cut -d' ' -f1)
wait_for 60 "the image in the agent's cache" test -f "$W/berlin.state/cache/$want"
echo "agent cache: $(ls "$W/berlin.state/cache" | grep -vc partial) images, sha256 verified"
ff agent show berlin

say "events the agent reported (journaled at the agent, acked after commit)"
ff event list --agent berlin

if [ "${KEEP:-0}" = 1 ]; then
  say "running; firmfleet -d $W/ctl ... works in another shell. Ctrl-C stops and cleans up."
  wait
fi
say "demo done: stopping the daemons and removing $W"
