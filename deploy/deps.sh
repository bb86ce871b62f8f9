#!/bin/sh
# deps.sh: install every Debian package that building, running the demo and
# testing firmfleet needs. Idempotent; called by `make deps`.
set -eu

# `deps.sh fuzz`: the base packages, then clang and its libFuzzer runtime.
if [ "${1:-}" = fuzz ]; then
  sh "$0"
  for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
    [ "$(id -u)" = 0 ] || { echo "deps: need root to install $p" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev
    break
  done
  exit 0
fi

# `deps.sh bench`: the base packages, then the peers `make bench` measures our
# agent against (tests/bench/). tftpd-hpa conflicts with atftpd as a package,
# so it is unpacked (not installed) under $FF_BENCH_DIR/tftpd-hpa. Package
# scripts must not start system services: a policy-rc.d that answers 101 is in
# place during the install (any existing one is put back afterwards), and any
# peer daemon that started anyway is stopped by its PID.
if [ "${1:-}" = bench ]; then
  sh "$0"
  BENCH_PKGS="kea-dhcp4-server kea-admin dnsmasq-base atftpd nginx wrk strace"
  BENCH_DIR=${FF_BENCH_DIR:-/opt/firmfleet-bench}
  HPA=$BENCH_DIR/tftpd-hpa/usr/sbin/in.tftpd
  missing=""
  for p in $BENCH_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && [ -x "$HPA" ] && [ -s "$BENCH_DIR/tftpd-hpa/VERSION" ] && exit 0
  echo "deps: bench peers:${missing:- all installed}; tftpd-hpa unpacked into $BENCH_DIR/tftpd-hpa"
  if [ "$(id -u)" != 0 ]; then echo "deps: need root to install the bench peers" >&2; exit 1; fi
  DAEMONS="kea-dhcp4 dnsmasq nginx atftpd in.tftpd"
  before=$(for d in $DAEMONS; do pgrep -x "$d" || true; done)
  POLICY=/usr/sbin/policy-rc.d SAVED=/usr/sbin/policy-rc.d.ff-bench-saved
  tmp=$(mktemp -d /tmp/bench-deps.XXXXXX)
  chown _apt "$tmp" 2>/dev/null || true
  restore_policy() {
    rm -f "$POLICY"
    [ -e "$SAVED" ] && mv -f "$SAVED" "$POLICY"
    rm -rf "$tmp"
  }
  [ -e "$POLICY" ] && [ ! -e "$SAVED" ] && mv -f "$POLICY" "$SAVED"
  printf '#!/bin/sh\n# firmfleet deps.sh bench: no service starts during this install\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  trap restore_policy EXIT
  trap 'exit 1' INT TERM
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "$missing" ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
  fi
  if [ ! -x "$HPA" ] || [ ! -s "$BENCH_DIR/tftpd-hpa/VERSION" ]; then
    (cd "$tmp" && apt-get download -qq tftpd-hpa)
    mkdir -p "$BENCH_DIR/tftpd-hpa"
    dpkg -x "$tmp"/tftpd-hpa_*.deb "$BENCH_DIR/tftpd-hpa"
    dpkg-deb -f "$tmp"/tftpd-hpa_*.deb Version >"$BENCH_DIR/tftpd-hpa/VERSION"
  fi
  for d in $DAEMONS; do
    for pid in $(pgrep -x "$d" || true); do
      case " $(echo $before) " in *" $pid "*) continue ;; esac
      echo "deps: stopping $d (pid $pid) started by its package"
      kill "$pid" 2>/dev/null || true
    done
  done
  exit 0
fi
PKGS="build-essential pkg-config clang-format
libzmq3-dev cmake dpkg-dev libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3
libuv1-dev libsodium-dev libjansson-dev libcsv-dev libcmocka-dev
jq tzdata procps iproute2 psmisc util-linux
busybox isc-dhcp-client tftp-hpa atftp curl libhttp-parser-dev
isc-dhcp-relay tcpdump sip-tester tmux xxd"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  if [ "$(id -u)" != 0 ]; then echo "deps: need root to install:$missing" >&2; exit 1; fi
  # isc-dhcp-relay and tcpdump are tools for the tests: their packages must not
  # start a service on this machine (policy-rc.d answers 101 during the install).
  POLICY=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# firmfleet deps.sh: no service starts during this install\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    own_policy=1
  fi
  trap '[ "$own_policy" = 1 ] && rm -f "$POLICY"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi
# the agent's libzmq without OpenPGM, NORM and Kerberos (see zmq-slim.sh);
# FF_ZMQ_SLIM=0 links Debian's shared libzmq instead (make ZMQ_SLIM=0)
if [ "${FF_ZMQ_SLIM:-1}" != 0 ]; then
  sh "$(dirname "$0")/zmq-slim.sh"
fi
