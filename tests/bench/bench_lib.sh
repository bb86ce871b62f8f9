# shellcheck shell=bash
# bench_lib.sh: shared by tests/bench/bench_*.sh (source it after setting
# AREA). Gives: a scratch directory $T (/tmp/bench-AREA.*), a two-namespace
# lab (ffbs-PID server side, ffbc-PID client side, one veth pair, addresses
# from 198.18.100.0-198.18.120.255 only), starting and stopping servers by
# PID, CPU accounting from /proc/PID/stat, and the result lines run.sh reads.
#
# CPU accounting: a server's CPU is utime+stime+cutime+cstime (fields 14-17
# of /proc/PID/stat, in clock ticks) summed over the server process and all
# its live descendants, read before and after a run. Threads are included
# (the process line covers them all); children that exited during the run
# and were reaped by the server (tftpd-hpa forks one per transfer) are in
# cutime/cstime; live workers (nginx) are summed as descendants.
#
# Result lines (tab-separated) appended to $OUT:
#   R  TEST  FIGURE  SERVER  VALUE  UNIT  BETTER(lower|higher)
#   V  SERVER  VERSION           (peer versions)
#   S  SERVER  REASON            (server skipped: not available)
#   N  TEXT                      (a method note for results.md)
set -u
BENCH_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_HOME/../.." && pwd)
FF_BUILD=${1:?usage: bench_$AREA.sh BUILDDIR OUTFILE}
OUT=${2:?usage: bench_$AREA.sh BUILDDIR OUTFILE}
[ -d "$FF_BUILD" ] || FF_BUILD=$REPO/$FF_BUILD
FF_BUILD=$(cd "$FF_BUILD" && pwd)
# The system-test library gives ff, ctl_start, agent_start and wait_until;
# its scratch directory is replaced by ours.
# shellcheck source=../system/lib.sh
source "$REPO/tests/system/lib.sh"
rm -rf "$T"
T=$(mktemp -d "/tmp/bench-$AREA.XXXXXX")
chmod 0755 "$T"           # peers drop privileges or insist on world-readable roots
CTL_DIR=$T/ctl
export KEEP_BENCH_TMP=${KEEP_BENCH_TMP:-0}
HZ=$(getconf CLK_TCK)
HPA_DIR=${FF_BENCH_DIR:-/opt/firmfleet-bench}/tftpd-hpa

bnote() { echo "  [$AREA] $*" >&2; }
res()   { printf 'R\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT"; }
ver()   { printf 'V\t%s\t%s\n' "$1" "$2" >>"$OUT"; }
skip()  { printf 'S\t%s\t%s\n' "$1" "$2" >>"$OUT"; echo "  [$AREA] $1: not available ($2)" >&2; }
mnote() { printf 'N\t%s\n' "$*" >>"$OUT"; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

# calc EXPR: floating point through awk (printf-style rounding by the caller)
calc() { awk "BEGIN { v = $1; print v }"; }
fmt()  { awk -v v="$1" -v f="${2:-%.3g}" 'BEGIN { if (v == "" || v == "nan") print "n/a"; else printf f "\n", v }'; }

# ---- CPU and memory of a process tree ----
# tree_pids ROOTPID: ROOTPID and its live descendants (through
# /proc/PID/task/TID/children; cheap even with hundreds of client processes)
tree_pids() {
  local todo=("$1") p c n=0
  while [ ${#todo[@]} -gt 0 ] && [ $n -lt 10000 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}"); n=$((n + 1))
    [ -d "/proc/$p" ] || continue
    echo "$p"
    c=$(cat /proc/"$p"/task/*/children 2>/dev/null)
    # shellcheck disable=SC2206
    [ -n "$c" ] && todo+=($c)
  done
}
# tree_stat ROOTPID: "TICKS RSS_KB HWM_KB NPROC" summed over ROOTPID and its
# descendants; TICKS = utime+stime+cutime+cstime (fields 14-17 of stat)
tree_stat() {
  local p files=()
  for p in $(tree_pids "$1"); do files+=("/proc/$p/stat" "/proc/$p/status"); done
  [ ${#files[@]} -gt 0 ] || { echo "0 0 0 0"; return; }
  cat "${files[@]}" 2>/dev/null | awk '
    /^[0-9]+ \(/ {                      # a stat line; comm may hold spaces and parentheses
      line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      s += f[12] + f[13] + f[14] + f[15]; c++; next
    }
    /^VmRSS:/ { r += $2 } /^VmHWM:/ { h += $2 }
    END { printf "%d %d %d %d\n", s, r, h, c }'
}
# tree_pss ROOTPID: "PSS_KB PSS_ANON_KB PSS_FILE_KB" summed over ROOTPID and its
# descendants (smaps_rollup: a page shared by N processes counts 1/N in PSS;
# RssFile is mostly shared-library pages)
tree_pss() {
  local p files=()
  for p in $(tree_pids "$1"); do files+=("/proc/$p/smaps_rollup"); done
  [ ${#files[@]} -gt 0 ] || { echo "0 0 0"; return; }
  cat "${files[@]}" 2>/dev/null | awk '/^Pss:/ { p += $2 } /^Pss_Anon:/ { a += $2 } /^Pss_File:/ { f += $2 }
    END { printf "%d %d %d\n", p, a, f }'
}
cpu_ticks() { tree_stat "$1" | awk '{print $1}'; }
rss_kb()    { tree_stat "$1" | awk '{print $2}'; }
hwm_kb()    { tree_stat "$1" | awk '{print $3}'; }

# Servers that fork a child per transfer and let it be reaped automatically
# (tftpd-hpa ignores SIGCHLD) lose the children's time: it never reaches the
# parent's cutime. So every server also runs in a cpuacct cgroup of its own
# (cgroup v1, /sys/fs/cgroup/cpuacct/ffb-PID-NAME) when one can be made; its
# cpuacct.usage counts every thread and child, and is the figure then. Both
# readings are kept: a server whose two readings differ by more than 10% is
# named in the notes.
CG_ROOT=/sys/fs/cgroup/cpuacct
cg_dir() { echo "$CG_ROOT/ffb-$$-$1"; }
cg_make() { local d; d=$(cg_dir "$1"); [ -d "$d" ] || mkdir "$d" 2>/dev/null; [ -w "$d/cgroup.procs" ]; }
cg_join() { cg_make "$1" && echo "$2" >"$(cg_dir "$1")/cgroup.procs" 2>/dev/null; }
cg_usage() { local d; d=$(cg_dir "$1"); [ -r "$d/cpuacct.usage" ] && cat "$d/cpuacct.usage"; }
cg_remove() { local d; d=$(cg_dir "$1"); [ -d "$d" ] && rmdir "$d" 2>/dev/null; return 0; }

# cpu_begin NAME...: remembers each server's CPU; cpu_end NAME: seconds used
# since (cgroup when the server has one, else /proc)
declare -A CPU0=() CG0=()
cpu_begin() {
  local n
  for n in "$@"; do
    CPU0[$n]=$(cpu_ticks "${SRV[$n]}")
    CG0[$n]=$(cg_usage "$(srv_cg "$n")" || echo "")
  done
}
cpu_end() {
  local n=$1 now cg proc
  now=$(cpu_ticks "${SRV[$n]}")
  proc=$(calc "($now - ${CPU0[$n]}) / $HZ")
  cg=$(cg_usage "$(srv_cg "$n")" || echo "")
  if [ -n "$cg" ] && [ -n "${CG0[$n]}" ]; then
    cg=$(calc "($cg - ${CG0[$n]}) / 1e9")
    # (a command substitution runs this: the log file carries the verdict out)
    awk -v a="$cg" -v b="$proc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d > 0.05 && d > 0.1 * a) }' \
      && printf '%s\tcgroup %ss vs /proc %ss\n' "$n" "$cg" "$proc" >>"$T/cpu.disagree"
    echo "$cg"
  else
    echo "$proc"
  fi
}
declare -A SRV_CGNAME=()
# the cgroup a server's CPU is read from (the agent's for "firmfleet")
srv_cg() { echo "${SRV_CGNAME[$1]:-$1}"; }

# ---- the lab: two namespaces and one veth pair ----
# lab NET PREFIXLEN: server NET.1, client NET.2 (NET like 198.18.112)
SRV_NS="" CLI_NS="" SRV_IF="" CLI_IF="" SRV_IP="" CLI_IP=""
bench_lab_up() {
  local net=$1 plen=$2
  case "$net" in
    198.18.1[01][0-9]|198.18.120) ;;
    *) echo "bench_lib: $net is outside 198.18.100-120" >&2; return 1 ;;
  esac
  SRV_NS="ffbs-$$"; CLI_NS="ffbc-$$"; SRV_IF="ffbs$$"; CLI_IF="ffbc$$"
  SRV_IP="$net.1"; CLI_IP="$net.2"; SRV_NET="$net.0/$plen"
  ip netns add "$SRV_NS" || return 1
  ip netns add "$CLI_NS" || return 1
  ip link add "$SRV_IF" type veth peer name "$CLI_IF" || return 1
  ip link set "$SRV_IF" netns "$SRV_NS" && ip link set "$CLI_IF" netns "$CLI_NS" || return 1
  ip -n "$SRV_NS" addr add "$SRV_IP/$plen" dev "$SRV_IF"
  ip -n "$CLI_NS" addr add "$CLI_IP/$plen" dev "$CLI_IF"
  ip -n "$SRV_NS" link set "$SRV_IF" up; ip -n "$SRV_NS" link set lo up
  ip -n "$CLI_NS" link set "$CLI_IF" up; ip -n "$CLI_NS" link set lo up
  # many parallel TFTP/HTTP clients: room for their sockets
  ip netns exec "$CLI_NS" sysctl -qw net.ipv4.ip_local_port_range="10000 60999" 2>/dev/null
}
bench_lab_down() {
  local ns
  for ns in "$SRV_NS" "$CLI_NS"; do
    [ -n "$ns" ] || continue
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  SRV_NS="" CLI_NS=""
}
in_srv() { ip netns exec "$SRV_NS" "$@"; }
in_cli() { ip netns exec "$CLI_NS" "$@"; }

# ---- servers ----
declare -A SRV=()
# srv_start NAME CMD...: starts CMD inside the server namespace, log $T/NAME.log
# (in its own cpuacct cgroup from its first instruction, when there is one).
srv_start() {
  local name=$1; shift
  if cg_make "$name"; then
    # join outside the namespace: `ip netns exec` mounts a fresh /sys without the cgroups
    sh -c 'echo $$ >"$0"/cgroup.procs && exec ip netns exec "$@"' "$(cg_dir "$name")" "$SRV_NS" "$@" \
      >>"$T/$name.log" 2>&1 &
  else
    ip netns exec "$SRV_NS" "$@" >>"$T/$name.log" 2>&1 &
  fi
  SRV[$name]=$!
}
srv_alive() { [ -n "${SRV[$1]:-}" ] && kill -0 "${SRV[$1]}" 2>/dev/null; }
# srv_stop NAME: SIGTERM, up to 5 s, then SIGKILL; waits for the process
srv_stop() {
  local name=$1 pid=${SRV[$1]:-} i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "SRV[$name]"
  cg_remove "$name"
}
srv_stop_all() { local n; for n in "${!SRV[@]}"; do srv_stop "$n"; done; }
# port_up PROTO PORT: something listens on PORT inside the server namespace
port_up() {
  if [ "$1" = udp ]; then in_srv ss -Hlun "sport = :$2" | grep -q .
  else in_srv ss -Hltn "sport = :$2" | grep -q .; fi
}

# ---- firmfleet: controller and agent inside the server namespace ----
FF_REASON=""
# ff_up AGENT_OPTIONS...: controller + enrolled agent "bench" in $SRV_NS.
# Returns non-zero with FF_REASON set when our side cannot run.
ff_up() {
  FF_REASON=""
  local b
  for b in firmfleetd firmfleet firmfleet-agent; do
    [ -x "$BIN/$b" ] || { FF_REASON="$BIN/$b is not built"; return 1; }
  done
  export FF_NS=$SRV_NS
  # a fresh controller, credential and agent state (journal, leases) each time
  rm -rf "$CTL_DIR" "$T/bench.cred" "$T/bench.state"
  ctl_start >/dev/null || { FF_REASON="controller did not start (see $T/ctl.log)"; return 1; }
  SRV[ctl]=${PIDS[ctl]}
  cg_join ctl "${SRV[ctl]}"
  ff site add bench --tz UTC >/dev/null 2>>"$T/cli.log" || { FF_REASON="'firmfleet site add' failed"; return 1; }
  ff agent enroll --site bench --out "$T/bench.cred" >/dev/null 2>>"$T/cli.log" \
    || { FF_REASON="'firmfleet agent enroll' failed"; return 1; }
  return 0
}
# ff_agent_start AGENT_OPTIONS...: starts the agent, waits until it is online
ff_agent_start() {
  mkdir -p "$T/bench.state"
  agent_start bench --log-level warn "$@"
  SRV[agent]=${PIDS[bench]}
  cg_join agent "${SRV[agent]}"        # the agent does not fork: joining now is exact
  SRV_CGNAME[firmfleet]=agent
  local i
  for i in $(seq 1 100); do
    srv_alive agent || break
    agent_online bench 2>/dev/null && return 0
    sleep 0.2
  done
  if ! srv_alive agent; then
    wait "${SRV[agent]}" 2>/dev/null
    local why
    why=$(grep -m1 -oE 'reason="[^"]*"' "$T/bench.log" | sed 's/reason=//; s/"//g')
    FF_REASON="agent exited: ${why:-$(tail -1 "$T/bench.log")}"
  else
    FF_REASON="agent did not come online in 20 s"
  fi
  return 1
}
ff_down() {
  srv_stop agent; srv_stop ctl
  unset 'PIDS[bench]' 'PIDS[ctl]'
  unset FF_NS
}
ff_version() { "$BIN/firmfleet-agent" --version 2>/dev/null | head -1; }

# ---- parallel clients ----
# para N P CMD...: runs CMD N times, P at a time, each with its index (1..N)
# as the last argument; prints the number of runs that failed.
para() {
  local n=$1 p=$2; shift 2
  seq 1 "$n" | xargs -P "$p" -I{} sh -c '"$@" {} >/dev/null 2>&1 || echo x' _ "$@" | wc -l
}
now() { date +%s.%N; }
# median V...: the middle value (the lower middle of an even count)
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
REPS=${BENCH_REPS:-3}    # repetitions of each timed case; figures are medians


bench_cleanup() {
  srv_stop_all
  stop_all 2>/dev/null
  bench_lab_down
  local d
  for d in "$CG_ROOT"/ffb-$$-*; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  [ -s "$T/cpu.disagree" ] && awk -F'\t' '{ last[$1] = $2 } END { for (n in last) print n "\t" last[n] }' \
    "$T/cpu.disagree" | while IFS=$'\t' read -r d why; do
      mnote "${AREA^^} CPU of $d: $why in one run (time /proc/PID/stat cannot see, e.g. auto-reaped children; the cgroup figure is used)"
    done
  if [ "$KEEP_BENCH_TMP" = 1 ]; then echo "  [$AREA] kept $T" >&2; else rm -rf "$T"; fi
}
trap bench_cleanup EXIT
trap 'exit 1' INT TERM
