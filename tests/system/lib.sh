# lib.sh: shared by the system tests (source it). Starts real daemons from
# $FF_BUILD in a temporary directory, on loopback ports, and kills them all on
# exit. Checks print TAP lines that tests/run.sh counts.
set -u
FF_BUILD=${FF_BUILD:-build}
FF_BUILD=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && cd "$FF_BUILD" && pwd)
BIN=$FF_BUILD
T=$(mktemp -d /tmp/ff-sys.XXXXXX)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=98}
_n=0
_fail=0
declare -A PIDS=()

ok()   { _n=$((_n + 1)); echo "ok $_n - $*"; }
nok()  { _n=$((_n + 1)); _fail=1; echo "not ok $_n - $*"; }
# check DESC CMD...: passes when CMD exits 0
check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }
# check_fails DESC CMD...: passes when CMD exits non-zero
check_fails() { local d=$1; shift; if "$@"; then nok "$d"; else ok "$d"; fi; }
# check_eq DESC EXPECTED ACTUAL
check_eq() { if [ "$2" == "$3" ]; then ok "$1"; else nok "$1 (expected '$2', got '$3')"; fi; }
note() { echo "# $*"; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds or time runs out.
wait_until() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# free_port: a TCP port nobody listens on, in 20000-27999: below the kernel's
# ephemeral range (32768-60999), so no client socket can hold it when a
# daemon restarts on it; tests with their own ranges use 28000-32000.
free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 8000))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  echo $((20000 + RANDOM % 8000))
}

PORT=$(free_port)
CTL_DIR=$T/ctl
ENDPOINT=tcp://127.0.0.1:$PORT

ff() { "$BIN/firmfleet" -d "$CTL_DIR" "$@"; }

ctl_start() {
  ${FF_NS:+ip netns exec "$FF_NS"} "$BIN/firmfleetd" -d "$CTL_DIR" --listen "$ENDPOINT" "$@" >>"$T/ctl.log" 2>&1 &
  PIDS[ctl]=$!
  wait_until 20 ff site list || { note "controller did not come up"; tail -20 "$T/ctl.log"; return 1; }
}

ctl_kill9() { kill -9 "${PIDS[ctl]}" 2>/dev/null; wait "${PIDS[ctl]}" 2>/dev/null; unset 'PIDS[ctl]'; }

# agent_start NAME [agent options...]: credential $T/NAME.cred, state $T/NAME.state
agent_start() {
  local name=$1; shift
  ${FF_NS:+ip netns exec "$FF_NS"} "$BIN/firmfleet-agent" -c "$T/$name.cred" -s "$T/$name.state" "$@" >>"$T/$name.log" 2>&1 &
  PIDS[$name]=$!
}

agent_kill9() { kill -9 "${PIDS[$1]}" 2>/dev/null; wait "${PIDS[$1]}" 2>/dev/null; unset "PIDS[$1]"; }

# agent_online NAME: true when `agent list --json` shows it online
agent_online() {
  ff agent list --json | jq -e --arg n "$1" '.[] | select(.name == $n and .online == true)' >/dev/null
}

# stop_all: SIGTERM everything, then check no sanitizer report appeared in any log
stop_all() {
  local p
  for p in "${!PIDS[@]}"; do kill "${PIDS[$p]}" 2>/dev/null; done
  for p in "${!PIDS[@]}"; do
    local end=$((SECONDS + 10))
    while kill -0 "${PIDS[$p]}" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    kill -9 "${PIDS[$p]}" 2>/dev/null
    wait "${PIDS[$p]}" 2>/dev/null
  done
  PIDS=()
}

# dump: the controller database as text; a test may define its own (e.g.
# leaving out tables that change by themselves) after sourcing this file.
dump() { sqlite3 -readonly "$CTL_DIR/controller.db" .dump; }

# deb_vars: for the package tests. TOP the tree; B the build under test as
# make knows it (relative to the tree when inside it) and SAN=1 for a
# sanitizer build, so that `make deb` finds it up to date; the VERSION and
# ARCH the package names carry.
deb_vars() {
  TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  B=$FF_BUILD
  case "$B" in "$TOP"/*) B=${B#"$TOP"/} ;; esac
  SAN=0
  ldd "$FF_BUILD/firmfleetd" 2>/dev/null | grep -q libasan && SAN=1
  VERSION=$(tr -d ' \n' <"$TOP/VERSION")
  ARCH=$(dpkg --print-architecture)
}

# bad EXPECTED_RC DESC CMD...: CMD exits EXPECTED_RC, prints one line
# "firmfleet: ..." on stderr, nothing on stdout, and changes nothing.
bad() {
  local want=$1 d=$2; shift 2
  local before after rc lines
  before=$(dump)
  "$@" >"$T/bad.out" 2>"$T/bad.err"
  rc=$?
  after=$(dump)
  lines=$(wc -l <"$T/bad.err")
  if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ] && grep -q '^firmfleet: ' "$T/bad.err" &&
    [ ! -s "$T/bad.out" ] && [ "$before" == "$after" ]; then
    ok "$d: $(cat "$T/bad.err")"
  else
    local same=yes
    [ "$before" == "$after" ] || same=no
    nok "$d (rc=$rc want=$want stderr_lines=$lines db_unchanged=$same): $(head -c 300 "$T/bad.err")"
  fi
}

sanitizer_clean() {
  ! grep -lE 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$T"/*.log 2>/dev/null
}

finish() {
  stop_all
  lab_down
  check "no sanitizer reports in daemon logs" sanitizer_clean
  if [ "$_fail" -ne 0 ]; then
    for f in "$T"/*.log; do echo "# ---- $f"; tail -30 "$f" | sed 's/^/# /'; done
  fi
  rm -rf "$T"
  exit "$_fail"
}
trap 'stop_all; lab_down; rm -rf "$T"; exit 1' INT TERM

# ---- network namespaces (for DHCP/TFTP/HTTP tests) ----
# lab_up SRV CLI NET: creates namespaces "<SRV>-$$" and "<CLI>-$$" joined by a
# veth pair, server at NET.1/24 and client at NET.2/24 (NET like 198.18.1),
# with loopback up in both. Sets SRV_NS, CLI_NS, SRV_IF, CLI_IF, SRV_IP, CLI_IP.
# lab_down (called by finish and on signals) deletes what lab_up made.
LAB_NS=()
lab_up() {
  SRV_NS="$1-$$"; CLI_NS="$2-$$"; local net=$3
  SRV_IF="vs$$"; CLI_IF="vc$$"; SRV_IP="$net.1"; CLI_IP="$net.2"
  ip netns add "$SRV_NS" && LAB_NS+=("$SRV_NS") || return 1
  ip netns add "$CLI_NS" && LAB_NS+=("$CLI_NS") || return 1
  ip link add "$SRV_IF" type veth peer name "$CLI_IF" || return 1
  ip link set "$SRV_IF" netns "$SRV_NS" && ip link set "$CLI_IF" netns "$CLI_NS" || return 1
  ip -n "$SRV_NS" addr add "$SRV_IP/24" dev "$SRV_IF"
  ip -n "$SRV_NS" link set "$SRV_IF" up; ip -n "$SRV_NS" link set lo up
  ip -n "$CLI_NS" link set "$CLI_IF" up; ip -n "$CLI_NS" link set lo up
}
# veth NS1 IF1 IP1 NS2 IF2 IP2: a veth pair between two namespaces, each end
# with IP/24 (an empty IP: none) and up.
veth() { # NS1 IF1 IP1 NS2 IF2 IP2 (an empty IP: none)
  ip link add "$2" type veth peer name "$5" || return 1
  ip link set "$2" netns "$1" && ip link set "$5" netns "$4" || return 1
  [ -z "$3" ] || ip -n "$1" addr add "$3/24" dev "$2"
  [ -z "$6" ] || ip -n "$4" addr add "$6/24" dev "$5"
  ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}

# udhcpc_script FILE: a busybox udhcpc script that configures the lease's
# address on the interface and writes it to $UDHCP_OUT.
udhcpc_script() {
  cat >"$1" <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"
    echo "$ip" >"$UDHCP_OUT" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
EOF
  chmod +x "$1"
}

lab_down() {
  local ns
  for ns in "${LAB_NS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  LAB_NS=()
}
# in_srv CMD... / in_cli CMD...: run a command inside the lab's namespaces.
in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_cli() { ip netns exec "$CLI_NS" "$@"; }
# With FF_NS set, ctl_start and agent_start run their daemon inside that
# namespace (the controller and the agent then share its loopback; the CLI
# still reaches the controller through the admin socket's file path).
