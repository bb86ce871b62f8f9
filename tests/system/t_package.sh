#!/usr/bin/env bash
# t_package.sh: `make deb` on the build under test makes firmfleet-controller
# and firmfleet-agent; their metadata, contents and maintainer scripts are
# checked, the systemd units are verified (systemd-analyze, skipped when
# absent), and the programs are run out of the packages: the extracted
# controller loads every shipped profile from the extracted profiles
# directory, and the extracted agent enrolls and comes online.
# Nothing is installed: the packages are only read and unpacked (dpkg-deb -x)
# under $T, and the maintainer scripts run with PATH holding nothing but
# shims that log what they were asked to do.
source "$(dirname "$0")/lib.sh"
deb_vars
DEB=$T/deb
CTL_DEB=$DEB/firmfleet-controller_${VERSION}-1_${ARCH}.deb
AGT_DEB=$DEB/firmfleet-agent_${VERSION}-1_${ARCH}.deb

t0=$SECONDS
make_deb() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL DEB_COMPRESS=gzip make -C "$TOP" --no-print-directory B="$B" SAN=$SAN DEB_DIR="$DEB" deb >"$T/make-deb.log" 2>&1; }
check "make deb B=$B SAN=$SAN builds" make_deb
[ -s "$CTL_DEB" ] && [ -s "$AGT_DEB" ] || tail -20 "$T/make-deb.log" | sed 's/^/# /'
note "make deb: $((SECONDS - t0)) s; $(cd "$DEB" 2>/dev/null && du -k ./*.deb | tr '\n\t' '  ')"
check "controller package exists" test -s "$CTL_DEB"
check "agent package exists" test -s "$AGT_DEB"

# ---- metadata ----
field() { dpkg-deb -f "$1" "$2" 2>/dev/null; }
for d in "$CTL_DEB" "$AGT_DEB"; do
  p=$(basename "$d" | cut -d_ -f1)
  check_eq "$p: Package" "$p" "$(field "$d" Package)"
  check_eq "$p: Version from VERSION" "$VERSION-1" "$(field "$d" Version)"
  check_eq "$p: Architecture" "$ARCH" "$(field "$d" Architecture)"
  dep=$(field "$d" Depends)
  note "$p Depends: $dep"
  miss=""
  libs="libc6 libprotobuf-c1 libsqlite3-0 libsodium23 libjansson4 adduser"
  # the agent links its own static libzmq (deploy/zmq-slim.sh) unless built
  # with ZMQ_SLIM=0; then, and always for the controller, Debian's libzmq5
  zmq_shared=1
  [ "$p" = firmfleet-agent ] && ! readelf -d "$FF_BUILD/firmfleet-agent" | grep -q 'libzmq\.so' && zmq_shared=0
  [ "$zmq_shared" = 1 ] && libs="$libs libzmq5"
  for lib in $libs; do
    [[ ", $dep," == *", $lib "* || ", $dep," == *", $lib,"* ]] || miss="$miss $lib"
  done
  check_eq "$p: Depends names the runtime libraries and adduser" "" "$miss"
  if [ "$zmq_shared" = 0 ]; then
    [[ ", $dep," == *", libzmq5"* ]] && zdep=yes || zdep=no
    check_eq "$p: no libzmq5 in Depends (libzmq is linked in)" no "$zdep"
  fi
  check_fails "$p: Depends has no -dev package" grep -q -- '-dev\b' <<<"$dep"
  check "$p: Installed-Size set" test "$(field "$d" Installed-Size)" -gt 0
  check "$p: every file owned by root:root" \
    bash -c '! dpkg-deb --contents "$1" | awk "{print \$2}" | grep -v "^root/root$"' _ "$d"
done
agt_dep=$(field "$AGT_DEB" Depends)
check "firmfleet-agent: Depends on libuv1 and libhttp-parser" \
  bash -c '[[ "$1" == *libuv1* && "$1" == *libhttp-parser* ]]' _ "$agt_dep"

# the programs say the version the packages carry (VERSION is the one place;
# this catches the C constants drifting from it)
check_eq "firmfleetd --version matches VERSION" "firmfleetd $VERSION" "$("$BIN/firmfleetd" --version)"
check_eq "firmfleet-agent --version matches VERSION" "firmfleet-agent $VERSION" \
  "$("$BIN/firmfleet-agent" --version)"

# ---- contents ----
contents() { dpkg-deb --contents "$1" | awk '{print $NF}' | sed 's,^\./,/,; s,/$,,' | sort; }
contents "$CTL_DEB" >"$T/ctl.list"
contents "$AGT_DEB" >"$T/agt.list"
has_all() { local list=$1 f; shift; for f in "$@"; do grep -qxF "$f" "$list" || { echo "# missing $f"; return 1; }; done; }
check "controller package: programs, man pages, unit, default file" has_all "$T/ctl.list" \
  /usr/sbin/firmfleetd /usr/bin/firmfleet /usr/bin/firmfleet-sim \
  /usr/share/man/man8/firmfleetd.8.gz /usr/share/man/man1/firmfleet.1.gz \
  /usr/share/man/man1/firmfleet-sim.1.gz /lib/systemd/system/firmfleetd.service /etc/default/firmfleetd
check "agent package: program, man page, unit template, default file" has_all "$T/agt.list" \
  /usr/sbin/firmfleet-agent /usr/share/man/man8/firmfleet-agent.8.gz \
  /lib/systemd/system/firmfleet-agent@.service /etc/default/firmfleet-agent
nprof=$(ls "$TOP"/profiles/*.json | wc -l)
check_eq "controller package holds every shipped profile" "$nprof" \
  "$(grep -c '^/usr/share/firmfleet/profiles/.*\.json$' "$T/ctl.list")"
check_fails "no agent or controller file in the other package" \
  grep -qE 'firmfleet-agent|agent@' "$T/ctl.list"
check_eq "no path in both packages (but directories)" "" \
  "$(comm -12 <(dpkg-deb -c "$CTL_DEB" | grep -v '^d' | awk '{print $NF}' | sort) \
               <(dpkg-deb -c "$AGT_DEB" | grep -v '^d' | awk '{print $NF}' | sort))"

# ---- control area: conffiles and maintainer scripts ----
for d in "$CTL_DEB" "$AGT_DEB"; do
  p=$(basename "$d" | cut -d_ -f1)
  c=$T/control-$p
  dpkg-deb -e "$d" "$c"
  short=${p#firmfleet-}; [ "$short" = controller ] && def=firmfleetd || def=firmfleet-agent
  check_eq "$p: conffiles" "/etc/default/$def" "$(cat "$c/conffiles" 2>/dev/null)"
  for s in postinst prerm postrm; do
    check "$p: $s present, executable and sh -n clean" bash -c '[ -x "$1" ] && sh -n "$1"' _ "$c/$s"
  done
  check_fails "$p: postinst has the user snippet inlined" grep -q '^#USER#' "$c/postinst"
  check "$p: md5sums match the files" bash -c \
    'mkdir -p "$2" && dpkg-deb -x "$1" "$2" && cd "$2" && md5sum --quiet -c "$3"' _ "$d" "$T/root-$p" "$c/md5sums"
done

# The maintainer scripts against shims: env -i and a PATH of nothing but
# shims, so that a command the shims lack fails instead of reaching the
# system. Each shim logs "NAME ARGS"; getent answers $EXISTS (0: the user and
# group exist, 2: they do not); deb-systemd-helper was-enabled says yes.
SHIMS=$T/shims
mkdir -p "$SHIMS"
for c in addgroup adduser install deb-systemd-helper deb-systemd-invoke systemctl rm rmdir; do
  printf '#!/bin/sh\necho "%s $*" >>"$SHIM_LOG"\n' "$c" >"$SHIMS/$c"
done
printf '#!/bin/sh\necho "getent $*" >>"$SHIM_LOG"\nexit "$EXISTS"\n' >"$SHIMS/getent"
chmod 0755 "$SHIMS"/*
# mscript PKG SCRIPT EXISTS ARGS...: runs it, the shims' log in $T/shim.log
mscript() {
  local p=$1 s=$2 e=$3; shift 3
  : >"$T/shim.log"
  env -i PATH="$SHIMS" SHIM_LOG="$T/shim.log" EXISTS="$e" /bin/sh "$T/control-$p/$s" "$@" \
    >"$T/mscript.out" 2>&1
}
logged() { grep -qE "$1" "$T/shim.log"; }
for p in firmfleet-controller firmfleet-agent; do
  check "$p postinst configure (fresh) exits 0" mscript "$p" postinst 2 configure ""
  check "$p postinst creates group and system user" \
    bash -c 'grep -q "^addgroup --system.* firmfleet$" "$1" && grep -q "^adduser --system.*--ingroup firmfleet.* firmfleet$" "$1"' _ "$T/shim.log"
  [ "$p" = firmfleet-controller ] && dir=/var/lib/firmfleet || dir=/var/lib/firmfleet-agent
  if [ -e "$dir" ]; then
    ok "$p postinst creates $dir # SKIP $dir exists on this machine"
  else
    check "$p postinst creates $dir owned by firmfleet" logged "^install -d -o firmfleet -g firmfleet -m 0750 $dir$"
  fi
  check "$p postinst configure (user exists) exits 0" mscript "$p" postinst 0 configure "0.0.9-1"
  check_fails "$p postinst is idempotent: no second adduser/addgroup" logged '^add(user|group) '
  check "$p prerm remove exits 0" mscript "$p" prerm 0 remove
  check "$p postrm remove exits 0" mscript "$p" postrm 0 remove
  check_fails "$p postrm remove deletes nothing" logged '^(rm|rmdir) '
  check "$p postrm purge exits 0" mscript "$p" postrm 0 purge
  check_fails "$p postrm never deletes the user or group" grep -qE 'deluser|delgroup' "$T/control-$p/postrm"
done
mscript firmfleet-controller postinst 2 configure ""
check "controller postinst enables firmfleetd.service" logged '^deb-systemd-helper enable firmfleetd.service$'
mscript firmfleet-controller postrm 0 remove
check "controller postrm remove masks (disables) firmfleetd.service" logged '^deb-systemd-helper mask firmfleetd.service$'
mscript firmfleet-controller postrm 0 purge
check "controller postrm purge deletes /var/lib/firmfleet" logged '^rm -rf /var/lib/firmfleet$'
check "controller postrm purge forgets the unit's state" logged '^deb-systemd-helper purge firmfleetd.service$'

# ---- systemd units ----
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart exists: point it at the extracted programs
  U=$T/units
  mkdir -p "$U"
  for f in firmfleetd.service firmfleet-agent@.service; do
    r=$T/root-firmfleet-controller
    [ "$f" = firmfleetd.service ] || r=$T/root-firmfleet-agent
    sed "s#/usr/sbin/#$r/usr/sbin/#" "$r/lib/systemd/system/$f" >"$U/$f"
  done
  cp "$U/firmfleet-agent@.service" "$U/firmfleet-agent@berlin.service"
  check "systemd-analyze verify: both units clean" bash -c \
    'out=$(systemd-analyze verify --man=no "$@" 2>&1); rc=$?; [ -n "$out" ] && echo "$out" | sed "s/^/# /"; [ $rc -eq 0 ] && [ -z "$out" ]' \
    _ "$U/firmfleetd.service" "$U/firmfleet-agent@.service" "$U/firmfleet-agent@berlin.service"
  # exposure scores as a floor for the hardening (lower is better, 10 worst)
  for u in firmfleetd.service firmfleet-agent@berlin.service; do
    [ "$u" = firmfleetd.service ] && max=2.0 || max=2.5
    score=$(systemd-analyze security --offline=true "$U/$u" 2>/dev/null |
      sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -z "$score" ]; then
      ok "systemd-analyze security $u # SKIP no offline security analysis here"
    else
      check "systemd-analyze security $u: exposure $score <= $max" awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'
    fi
  done
else
  ok "systemd-analyze verify # SKIP systemd-analyze not installed"
  ok "systemd-analyze security # SKIP systemd-analyze not installed"
fi
check "agent unit: only CAP_NET_BIND_SERVICE and CAP_NET_RAW" grep -qx \
  'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW' "$T/root-firmfleet-agent/lib/systemd/system/firmfleet-agent@.service"
check "controller unit: no capabilities" grep -qx 'CapabilityBoundingSet=' \
  "$T/root-firmfleet-controller/lib/systemd/system/firmfleetd.service"
# libzmq's I/O threads call sched_setscheduler() and abort on EPERM
check_fails "units do not deny @resources syscalls (libzmq would abort)" grep -qE \
  '^SystemCallFilter=~.*@resources' "$T"/root-firmfleet-*/lib/systemd/system/*.service

# ---- the packaged programs run ----
X=$T/root-firmfleet-controller
XA=$T/root-firmfleet-agent
mkdir -p "$T/bin"
ln -s "$X/usr/sbin/firmfleetd" "$X/usr/bin/firmfleet" "$X/usr/bin/firmfleet-sim" \
  "$XA/usr/sbin/firmfleet-agent" "$T/bin/"
BIN=$T/bin
for p in firmfleet firmfleetd firmfleet-agent firmfleet-sim; do
  check "extracted $p --help" bash -c '"$1" --help >/dev/null' _ "$BIN/$p"
done
check "extracted firmfleetd starts on the extracted profiles" ctl_start --profiles "$X/usr/share/firmfleet/profiles"
check_eq "every shipped profile loaded (profile list)" "$nprof" \
  "$(ff profile list --json 2>/dev/null | jq '[.profiles[] | select(.source == "builtin")] | length')"
check "controller log: loaded=$nprof skipped=0" grep -qE "msg=ctl.profiles .*loaded=$nprof skipped=0" "$T/ctl.log"
ff site add berlin --tz Europe/Berlin >/dev/null
ff agent enroll --site berlin --out "$T/berlin.cred" >/dev/null
agent_start berlin
check "extracted firmfleet-agent comes online" wait_until 20 agent_online berlin

installed() { dpkg-query -W firmfleet-controller firmfleet-agent >/dev/null 2>&1; }
check_fails "nothing was installed on this machine" installed
note "t_package: $((SECONDS - t0)) s"
finish
