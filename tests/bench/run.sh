#!/usr/bin/env bash
# run.sh BUILDDIR [dhcp|tftp|http|mem|fleet|site|all]...: the side-by-side benchmark
# (`make bench`); FF_BENCH_ONLY=AREA (e.g. fleet) runs that area alone.
# Installs the peers (deploy/deps.sh bench; not for fleet alone), runs each area's
# script, prints one table per area and writes tests/bench/results.md: the
# machine, the peers' versions, the method, every figure and, for each, our
# agent's figure as a ratio to each peer's, measured in the same run.
# Our side is skipped, with a "firmfleet: not available (reason)" line, when
# the agent cannot serve yet; the peers are measured regardless.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build}
shift || true
AREAS=("$@"); [ ${#AREAS[@]} -eq 0 ] && AREAS=(all)
[ -n "${FF_BENCH_ONLY:-}" ] && AREAS=($FF_BENCH_ONLY)
[ "${AREAS[0]}" = all ] && AREAS=(dhcp tftp http mem fleet site)
for a in "${AREAS[@]}"; do
  case $a in dhcp|tftp|http|mem|fleet|site) ;; *) echo "usage: run.sh BUILDDIR [dhcp|tftp|http|mem|fleet|site|all]..." >&2; exit 2 ;; esac
done
# the fleet area (controller at 1,000 sites) has no peers to install
PEERS=0
# nor has the site area (one site at full load: firmfleet-sim against one agent)
for a in "${AREAS[@]}"; do [ "$a" = fleet ] || [ "$a" = site ] || PEERS=1; done
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, cgroups, package installs)" >&2; exit 1; }
cd "$REPO" || exit 1
[ -d "$BUILD" ] || { echo "bench: no build directory $BUILD (run 'make bench')" >&2; exit 1; }
BUILD=$(cd "$BUILD" && pwd)
RESULTS=${BENCH_RESULTS:-$HERE/results.md}

if [ $PEERS = 1 ]; then
  echo "bench: peers (deploy/deps.sh bench)"
  sh deploy/deps.sh bench || { echo "bench: could not install the peers" >&2; exit 1; }
fi

# leftovers of an interrupted run: our namespaces and cgroups whose owner is gone
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^ffb[sc]-[0-9]+$'); do
  pid=${ns#*-}
  kill -0 "$pid" 2>/dev/null && continue
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$ns" 2>/dev/null && echo "bench: removed stale namespace $ns"
done
for d in /sys/fs/cgroup/cpuacct/ffb-*; do
  [ -d "$d" ] || continue
  pid=$(basename "$d" | cut -d- -f2)
  kill -0 "$pid" 2>/dev/null || rmdir "$d" 2>/dev/null
done

W=$(mktemp -d /tmp/bench-run.XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM

# ---- the machine, before the load ----
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
NPROC=$(nproc)
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
MEMG=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
KERNEL=$(uname -r)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
DIRTY=""; [ -n "$(git -C "$REPO" status --porcelain -- siteagent controller lib db proto 2>/dev/null)" ] \
  && DIRTY=" + uncommitted changes in the working tree"
FFVER=$("$BUILD/firmfleet-agent" --version 2>/dev/null | head -1)

# hard limits per area: together under 27 minutes (typical total: 15-18)
declare -A LIMIT=([dhcp]=360 [tftp]=240 [http]=170 [mem]=120 [fleet]=420 [site]=360)
declare -A SCRIPT=([dhcp]=bench_dhcp.sh [tftp]=bench_tftp.sh [http]=bench_http.sh [mem]=bench_mem.sh
                   [fleet]=fleet.sh [site]=site.sh)
T0=$SECONDS
for a in "${AREAS[@]}"; do
  echo "bench: $a (at most ${LIMIT[$a]} s)"
  t=$SECONDS
  : >"$W/$a.tsv"
  timeout -k 15 "${LIMIT[$a]}" "$HERE/${SCRIPT[$a]}" "$BUILD" "$W/$a.tsv"
  rc=$?
  [ $rc -eq 0 ] || printf 'N\t%s\n' "the $a script ended with status $rc$([ $rc -eq 124 ] && echo ' (time limit)')" >>"$W/$a.tsv"
  printf 'N\t%s\n' "$a took $((SECONDS - t)) s" >>"$W/$a.tsv"
done
TOTAL=$((SECONDS - T0))
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- tables ----
# table FILE: one markdown table; columns firmfleet, each peer, then
# firmfleet / peer for every peer. Ratios: for rates > 1 is better, for CPU,
# memory and latency < 1 is better.
table() {
  awk -F'\t' '
    function num(v) {
      if (v == "" ) return "—"
      if (v !~ /^-?[0-9.e+-]+$/) return v
      a = (v < 0) ? -v : v
      if (a == 0) return "0"
      if (v == int(v) && a < 1e9) return sprintf("%d", v)
      if (a >= 100) return sprintf("%.0f", v)
      if (a >= 10) return sprintf("%.1f", v)
      if (a >= 1) return sprintf("%.2f", v)
      return sprintf("%.3g", v)
    }
    $1 == "R" {
      key = $2 SUBSEP $3
      if (!(key in seen)) { seen[key] = 1; order[++nk] = key; tst[key] = $2; fig[key] = $3; unit[key] = $6; bet[key] = $7 }
      if (!($4 in sv)) { sv[$4] = 1; srv[++ns] = $4 }
      val[key, $4] = $5
    }
    $1 == "S" { if (!($2 in sv)) { sv[$2] = 1; srv[++ns] = $2 }; skipped[$2] = 1 }
    END {
      if (nk == 0) { print "(no figures)"; exit }
      np = 0; for (i = 1; i <= ns; i++) if (srv[i] != "firmfleet") peer[++np] = srv[i]
      h = "| test | figure | unit | firmfleet"; d = "|---|---|---|---:"
      for (i = 1; i <= np; i++) { h = h " | " peer[i]; d = d "|---:" }
      for (i = 1; i <= np; i++) { h = h " | firmfleet ÷ " peer[i]; d = d "|---" }
      print h " |"; print d "|"
      for (k = 1; k <= nk; k++) {
        key = order[k]
        ours = ((key, "firmfleet") in val) ? val[key, "firmfleet"] : ""
        line = "| " tst[key] " | " fig[key] " | " unit[key] " | " (ours == "" ? (("firmfleet" in skipped) ? "n/a" : "—") : num(ours))
        for (i = 1; i <= np; i++) line = line " | " (((key, peer[i]) in val) ? num(val[key, peer[i]]) : "—")
        for (i = 1; i <= np; i++) {
          p = ((key, peer[i]) in val) ? val[key, peer[i]] : ""
          if (bet[key] == "check" || bet[key] == "info") r = "—"
          else if (ours == "" || p == "" || p + 0 == 0 || ours !~ /^[0-9.e+-]+$/) r = (ours == "" ? "n/a" : "—")
          else {
            q = ours / p
            if (bet[key] == "higher") w = (q > 1.03) ? "better" : (q < 0.97 ? "worse" : "same")
            else w = (q < 0.97) ? "better" : (q > 1.03 ? "worse" : "same")
            r = sprintf("%.2f (%s)", q, w)
          }
          line = line " | " r
        }
        print line " |"
      }
    }' "$1"
}
skips() { awk -F'\t' '$1 == "S" { print "- **" $2 ": not available (" $3 ")**" }' "$1"; }
notes() { awk -F'\t' '$1 == "N" { print "- " $2 }' "$1"; }
versions() { cat "$W"/*.tsv | awk -F'\t' '$1 == "V" && !seen[$2]++ { print "- " $3 }'; }

declare -A TITLE=([dhcp]="DHCP (DORA)" [tftp]="TFTP" [http]="HTTP" [mem]="Memory"
                  [fleet]="Controller at 1,000 sites (fleet.sh)"
                  [site]="One site at full load (site.sh)")
{
  echo "# firmfleet side-by-side benchmark"
  echo
  echo "Written by \`make bench\` (\`tests/bench/run.sh\`); see \`tests/bench/README.md\` for how each figure is made."
  echo
  echo "## Run"
  echo "- date: $DATE; areas: ${AREAS[*]}; wall clock: $TOTAL s"
  echo "- machine: nproc $NPROC, $MODEL, $MEMG RAM, Linux $KERNEL"
  echo "- load average before: $LOAD0; after: $LOAD1 (other work on the machine shares the same 2 cores and shows here)"
  echo "- firmfleet: commit $COMMIT$DIRTY; agent ${FFVER:-version unknown}"
  if awk -v a="${LOAD0%% *}" -v b="${LOAD1%% *}" -v n="$NPROC" 'BEGIN { exit !(a > n || b > 1.5 * n) }'; then
    echo "- **warning: the machine was busy (load average above the $NPROC cores); wall-clock figures are noisy,"
    echo "  CPU-per-work figures less so. Rerun on a quiet machine before quoting a ratio.**"
  fi
  echo
  echo "## Peers"
  versions
  echo
  echo "## How to read"
  echo "- Every server runs alone in the server namespace; the load generator runs in the client namespace on the same 2 cores."
  echo "- **Server CPU** (the main figure): CPU seconds the server used during the timed run, per unit of work. Read from a"
  echo "  cpuacct cgroup the server runs in (all threads and children), cross-checked against utime+stime+cutime+cstime of"
  echo "  its process tree in /proc/PID/stat; without cgroups, /proc alone. Wall-clock rates are secondary: the clients compete for the same cores."
  echo "- **firmfleet ÷ peer**: our figure divided by the peer's, same run. Rates: above 1 is better. CPU, memory, latency: below 1 is better."
  echo "  \"same\" = within 3%. Rows of kind check (failures, corrupt copies, losses) must be 0 for the figures beside them to count."
  echo "- firmfleet's figures are the agent process alone; the controller (another host in production) is listed in the notes."
  for a in "${AREAS[@]}"; do
    echo
    echo "## ${TITLE[$a]}"
    echo
    if [ "$a" = fleet ]; then
      # no peers: fleet.sh writes its own table, each figure beside its goal
      echo "The controller alone (firmfleetd, loopback), 1,000 simulated agents in one process"
      echo "(tests/tools/ffbench_agents.c). CPU is the controller's utime+stime; RSS its VmHWM."
      echo
      awk -F'\t' '$1 == "T" { print $2 }' "$W/$a.tsv"
    elif [ "$a" = site ]; then
      # no peers: site.sh writes its own table
      echo "One firmfleetd and one firmfleet-agent (DHCP, TFTP, HTTP) in one namespace, firmfleet-sim"
      echo "playing every phone of the site in another, all powered on at once. CPU: utime+stime; RSS: VmHWM."
      echo
      awk -F'\t' '$1 == "T" { print $2 }' "$W/$a.tsv"
    else
      table "$W/$a.tsv"
    fi
    echo
    skips "$W/$a.tsv"
    notes "$W/$a.tsv"
  done
} >"$W/results.md"

cp "$W/results.md" "$RESULTS"
echo
# the console gets the tables and the skips
awk '/^## How to read/ { skip = 1; next } /^## / { skip = 0 } /^## Run/ { on = 1 } on && !skip' "$W/results.md"
echo
echo "bench: results in ${RESULTS#"$REPO"/} ($TOTAL s)"
