#!/usr/bin/env bash
# bench_tftp.sh BUILDDIR OUTFILE: TFTP read throughput, firmfleet-agent beside
# tftpd-hpa (unpacked binary), atftpd and dnsmasq's TFTP. Same files, same
# clients, one server at a time in the server namespace:
#   big     100 concurrent 4 MiB transfers, blksize 1468 (curl)
#   small   50 concurrent clients x 10 transfers of a 32 KiB file, default
#           blksize 512, lock-step (curl)
#   window  20 concurrent 4 MiB transfers, blksize 1468 + windowsize 16
#           (atftp; RFC 7440: only atftpd and ours)
# Figures: aggregate MB/s (wall clock, clients share the 2 cores) and server
# CPU seconds per GB. Every transfer's size is checked; one client in ten
# keeps its copy, compared byte for byte with the original.
# For working on a server (not used by run.sh): BENCH_TFTP_SERVERS="atftpd
# firmfleet" and BENCH_TFTP_CASES="small" pick servers and cases;
# BENCH_TFTP_PROFILE=perf|strace records the server during each case's
# rounds (perf record -g, or strace -c -f) into $T/SERVER-CASE.{perf,strace}
# (use with KEEP_BENCH_TMP=1; strace slows the server, so its figures then
# mean nothing).
AREA=tftp
source "$(dirname "$0")/bench_lib.sh"

BIG_N=${BENCH_TFTP_BIG_N:-100}
SMALL_N=${BENCH_TFTP_SMALL_N:-50} SMALL_REP=${BENCH_TFTP_SMALL_REP:-10}
WIN_N=${BENCH_TFTP_WIN_N:-20}
SERVERS=${BENCH_TFTP_SERVERS:-tftpd-hpa atftpd dnsmasq firmfleet}
CASES=${BENCH_TFTP_CASES:-big small window}
PROFILE=${BENCH_TFTP_PROFILE:-}
FETCH=$BENCH_HOME/fetch.sh

bench_lab_up 198.18.112 24 || { bnote "could not make the lab"; exit 1; }
ROOT=$T/files
mkdir -p "$ROOT" "$T/dl"
head -c $((4 << 20)) /dev/urandom >"$ROOT/big.bin"
head -c $((32 << 10)) /dev/urandom >"$ROOT/small.cfg"
chmod 0755 "$ROOT"; chmod 0644 "$ROOT"/*
BIG_SIZE=$(stat -c %s "$ROOT/big.bin") SMALL_SIZE=$(stat -c %s "$ROOT/small.cfg")

HPA=$HPA_DIR/usr/sbin/in.tftpd
server_start() {
  FF_REASON=""
  case $1 in
    tftpd-hpa)
      [ -x "$HPA" ] || { FF_REASON="$HPA missing (deploy/deps.sh bench)"; return 1; }
      srv_start "$1" "$HPA" --listen --foreground --user root --address "$SRV_IP:69" --secure "$ROOT" ;;
    atftpd)
      srv_start "$1" atftpd --daemon --no-fork --user root.root --bind-address "$SRV_IP" --port 69 \
        --maxthread 1000 --logfile "$T/atftpd.daemon.log" --verbose=3 "$ROOT" ;;
    dnsmasq)
      srv_start "$1" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root --group=root \
        --pid-file="$T/dnsmasq.pid" --log-facility="$T/dnsmasq.daemon.log" --quiet-tftp \
        --interface="$SRV_IF" --bind-interfaces --enable-tftp --tftp-root="$ROOT" --tftp-max=1000 ;;
    firmfleet)
      ff_up || return 1
      ff_agent_start --tftp "$SRV_IP:69" --files-root "$ROOT" || return 1
      SRV[firmfleet]=${SRV[agent]} ;;
  esac
  local i
  for i in $(seq 1 50); do port_up udp 69 && break; srv_alive "$1" || break; sleep 0.1; done
  srv_alive "$1" || { FF_REASON="${FF_REASON:-server exited: $(tail -1 "$T/$1.log" 2>/dev/null)}"; return 1; }
  # a real transfer must come back byte-exact
  rm -f "$T/dl/probe"
  if ! in_cli curl -sS --max-time 10 --tftp-blksize 1468 -o "$T/dl/probe" "tftp://$SRV_IP/big.bin" 2>>"$T/curl.log" \
     || ! cmp -s "$T/dl/probe" "$ROOT/big.bin"; then
    FF_REASON="a 4 MiB TFTP download did not come back intact"; return 1
  fi
  return 0
}
server_stop() {
  if [ "$1" = firmfleet ]; then ff_down; unset 'SRV[firmfleet]'; else srv_stop "$1"; fi
}

# run_once SERVER KIND FILE SIZE N P REP: one round of N clients, P at a
# time, REP downloads each; prints "failed bad checked bytes wall cpu"
run_once() {
  local s=$1 kind=$2 file=$3 size=$4 n=$5 p=$6 rep=$7
  rm -rf "$T/dl"; mkdir -p "$T/dl"
  sleep 0.3
  cpu_begin "$s"
  local t0 t1 failed cpu bad=0 f checked=0
  t0=$(now)
  failed=$(seq 1 "$n" | in_cli timeout 300 xargs -P "$p" -I{} sh -c '"$@" >/dev/null 2>&1 || echo x' _ \
             "$FETCH" "$kind" "$SRV_IP" "$file" "$size" "$T/dl" 10 "$rep" {} | wc -l)
  t1=$(now)
  sleep 0.5                       # let forked children finish and be reaped
  cpu=$(cpu_end "$s")
  for f in "$T"/dl/[0-9]*; do
    [ -e "$f" ] || continue
    checked=$((checked + 1))
    cmp -s "$f" "$ROOT/$file" || bad=$((bad + 1))
  done
  echo "$failed $bad $checked $(((n - failed) * rep * size)) $(calc "$t1 - $t0") $cpu"
}

# run_case SERVER TEST KIND FILE SIZE N P REP: $REPS rounds; records failures
# and corrupt copies over all rounds, and the median MB/s and CPU per GB
# (and per 1,000 transfers for the small file)
run_case() {
  local s=$1 test=$2 kind=$3 file=$4 size=$5 n=$6 p=$7 rep=$8
  local i line failed bad checked bytes wall cpu tf=0 tb=0 tc=0
  local mbs=() cgb=() ck=() prof=""
  case " $CASES " in *" $test "*) ;; *) return ;; esac
  case $PROFILE in
    perf) perf record -q -g -o "$T/$s-$test.perf" -p "${SRV[$s]}" >/dev/null 2>&1 & prof=$! ;;
    strace) strace -c -f -o "$T/$s-$test.strace" -p "${SRV[$s]}" >/dev/null 2>&1 & prof=$! ;;
  esac
  [ -n "$prof" ] && sleep 1
  for i in $(seq 1 "$REPS"); do
    srv_alive "$s" || break
    line=$(run_once "$s" "$kind" "$file" "$size" "$n" "$p" "$rep")
    read -r failed bad checked bytes wall cpu <<<"$line"
    bnote "$s $test round $i: $((n - failed))/$n clients ok, $bad of $checked sampled copies differ, ${wall}s, cpu ${cpu}s"
    tf=$((tf + failed)); tb=$((tb + bad)); tc=$((tc + checked))
    if [ "$bytes" -gt 0 ]; then
      mbs+=("$(calc "$bytes / 1e6 / $wall")")
      cgb+=("$(calc "$cpu / ($bytes / 1e9)")")
      ck+=("$(calc "$cpu * 1000 / ($bytes / $size)")")
    fi
  done
  if [ -n "$prof" ]; then kill -INT "$prof" 2>/dev/null; wait "$prof" 2>/dev/null; fi
  res "$test" "failed transfers" "$s" "$((tf * rep))" "of $((REPS * n * rep))" check
  res "$test" "sampled copies not byte-exact" "$s" "$tb" "of $tc" check
  if [ "$tb" -gt 0 ] || [ ${#mbs[@]} -eq 0 ]; then
    mnote "TFTP $test $s: figures withheld ($tf failed clients, $tb corrupt copies)"
    return
  fi
  res "$test" "aggregate MB/s" "$s" "$(median "${mbs[@]}")" "MB/s" higher
  res "$test" "CPU s per GB" "$s" "$(median "${cgb[@]}")" "s" lower
  [ "$test" = small ] && res "$test" "CPU s per 1,000 transfers" "$s" "$(median "${ck[@]}")" "s" lower
}

ver tftpd-hpa "tftpd-hpa $(cat "$HPA_DIR/VERSION" 2>/dev/null || echo '?') (unpacked in $HPA_DIR)"
ver atftpd "atftpd $(pkgver atftpd)"
ver dnsmasq "dnsmasq $(pkgver dnsmasq-base)"
ver curl "curl $(pkgver curl)"
ver atftp "atftp $(pkgver atftp)"
mnote "TFTP: big = $BIG_N concurrent x 4 MiB, curl --tftp-blksize 1468; small = $SMALL_N concurrent clients x $SMALL_REP sequential 32 KiB transfers, blksize 512, lock-step; window = $WIN_N concurrent x 4 MiB with atftp --option 'blksize 1468' --option 'windowsize 16' (RFC 7440: atftpd and ours only). $REPS rounds per case, medians; MB/s = bytes delivered / wall clock; every size checked, one copy in ten compared byte for byte."

for s in $SERVERS; do
  bnote "$s: starting"
  if ! server_start "$s"; then skip "$s" "$FF_REASON"; server_stop "$s"; continue; fi
  run_case "$s" big tftp1468 big.bin "$BIG_SIZE" "$BIG_N" "$BIG_N" 1
  run_case "$s" small tftp small.cfg "$SMALL_SIZE" "$SMALL_N" "$SMALL_N" "$SMALL_REP"
  case $s in
    atftpd|firmfleet) run_case "$s" window atftp16 big.bin "$BIG_SIZE" "$WIN_N" "$WIN_N" 1 ;;
  esac
  server_stop "$s"
done
exit 0
