#!/usr/bin/env bash
# t_dpkg.sh: the packages of `make deb` installed, started, upgraded, removed
# and purged with dpkg for real, in a throw-away root:
#   - an overlayfs over / (upper and work dirs under $T), mounted in a
#     private mount namespace, plus a private network namespace with only
#     loopback, both held by one "holder" process; every step runs there
#     chrooted into the overlay (nsenter + chroot), so dpkg, adduser and
#     the maintainer scripts write only into the upper dir and this
#     machine's root is never touched (checked at the end);
#   - PID 1 is not systemd here, so "start" is: the maintainer scripts ran
#     (user, directories, units enabled by deb-systemd-helper), then each
#     daemon is started from the installed unit file the way systemd would:
#     its ExecStart= with EnvironmentFile=, %i and %d expanded, as its User=
#     and Group= with its AmbientCapabilities= and NoNewPrivileges=, UMask=,
#     StateDirectory= created and LoadCredential= copied (unit_start below);
#   - install 0.1.0-1 (VERSION-1): controller answers `firmfleet site list`,
#     the agent enrolls and comes online, serves HTTP on port 80 as user
#     firmfleet; upgrade to VERSION-2 (DEB_REVISION=2) over it with the
#     daemons running: edited conffiles kept, the controller's rows and the
#     agent's state kept, both start again and the agent reconnects;
#     remove: programs gone, conffiles, data and user kept, units disabled;
#     purge: conffiles, data, credentials and unit state gone, user kept.
# Every mount lives only in the holder's namespace: killing the holder (done
# on exit, also on failure and signals) undoes them all.
source "$(dirname "$0")/lib.sh"
deb_vars
PKGS="firmfleet-controller firmfleet-agent"
R=$T/root U=$T/upper W=$T/work
HOLD=""
declare -A UPIDS=()

# s_cleanup: the daemons, every process in the holder's network namespace,
# then the holder (its mount namespace, and so every mount, goes with it)
s_cleanup() {
  local p netns
  for p in "${UPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  if [ -n "$HOLD" ]; then
    netns=$(readlink "/proc/$HOLD/ns/net" 2>/dev/null)
    if [ -n "$netns" ]; then
      for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$netns" ] && kill -9 "${p#/proc/}" 2>/dev/null
      done
    fi
    wait "$HOLD" 2>/dev/null
    HOLD=""
  fi
  UPIDS=()
}
trap 's_cleanup; stop_all; rm -rf "$T"; exit 1' INT TERM

t0=$SECONDS
host_sum() { cat /etc/passwd /etc/group /var/lib/dpkg/status | md5sum; }
HOST0=$(host_sum)

# ---- two versions of the packages ----
make_deb() { # OUTDIR REVISION
  env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL DEB_COMPRESS=gzip DEB_REVISION="$2" \
    make -C "$TOP" --no-print-directory B="$B" SAN=$SAN DEB_DIR="$1" deb >"$T/make-deb-$2.log" 2>&1
}
# revision 2: the same staged tree packed again (mkdeb.sh alone, no rebuild)
mkdeb2() { DEB_COMPRESS=gzip DEB_REVISION=2 sh "$TOP/deploy/debian/mkdeb.sh" "$T/deb1/stage" "$T/deb2" >"$T/make-deb-2.log" 2>&1; }
check "make deb (revision 1)" make_deb "$T/deb1" 1
check "mkdeb.sh on the same tree (revision 2)" mkdeb2
V1=$VERSION-1 V2=$VERSION-2
for v in 1 2; do
  for p in $PKGS; do
    [ -s "$T/deb$v/${p}_$VERSION-${v}_$ARCH.deb" ] || { tail -20 "$T/make-deb-$v.log" | sed 's/^/# /'; break 2; }
  done
done
note "make deb: $((SECONDS - t0)) s"

# ---- the throw-away root ----
mkdir -p "$R" "$U" "$W"
unshare -m -n --propagation private sleep 900 &
HOLD=$!
nsr() { nsenter -t "$HOLD" -m -n -- "$@"; }     # in the holder's namespaces
inr() { nsenter -t "$HOLD" -m -n -- chroot "$R" "$@"; }  # and chrooted
unshared() { [ "$(readlink "/proc/$HOLD/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]; }
setup_root() {
  wait_until 10 unshared || { echo "# the holder did not unshare"; return 1; }
  nsr mount -t overlay overlay -o "lowerdir=/,upperdir=$U,workdir=$W" "$R" || return 1
  nsr mount -t proc proc "$R/proc" && nsr mount --rbind /dev "$R/dev" &&
    nsr mount -t tmpfs -o mode=0755 tmpfs "$R/run" && nsr mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" &&
    nsr ip link set lo up || return 1
  mkdir -p "$T/pkgs" && cp "$T"/deb1/*.deb "$T"/deb2/*.deb "$T/pkgs/" && nsr cp -r "$T/pkgs" "$R/tmp/" || return 1
  inr test -f "/tmp/pkgs/firmfleet-agent_${V2}_$ARCH.deb"
}
check "overlay root and loopback-only network namespace set up" setup_root

# unit_start UNIT [INSTANCE]: starts the daemon of the installed unit file the
# way systemd would (see the top); its PID in UPIDS[UNIT@INSTANCE], its
# output in $T/unit-NAME.log. Only the directives our units use are read.
unit_start() {
  local unit=$1 inst=${2:-} file name script
  file=$R/lib/systemd/system/$unit
  nsr test -f "$file" || { echo "# no $file"; return 1; }
  name=${unit%.service}; [ -n "$inst" ] && name=${name}$inst
  script=$T/start-$name.sh
  awk -v inst="$inst" -v name="$name.service" '
    function val(l) { sub(/^[A-Za-z]+=/, "", l); gsub(/%i/, inst, l); gsub(/%d/, "/run/credentials/" name, l); return l }
    /^\[/ { sec = $0; next }
    sec != "[Service]" { next }
    /^User=/ { user = val($0) } /^Group=/ { group = val($0) }
    /^EnvironmentFile=/ { v = val($0); sub(/^-/, "", v); env = env "[ -r " v " ] && . " v "\n" }
    /^ExecStart=/ { exec_ = val($0) }
    /^UMask=/ { umask_ = val($0) }
    /^NoNewPrivileges=yes/ { nnp = "--no-new-privs" }
    /^AmbientCapabilities=/ { n = split(tolower(val($0)), c, " "); for (i = 1; i <= n; i++) { sub(/^cap_/, "", c[i]); caps = caps (caps ? "," : "") "+" c[i] } }
    /^StateDirectory=/ { sd = val($0) } /^StateDirectoryMode=/ { sdm = val($0) }
    /^LoadCredential=/ { lc = val($0) }
    END {
      print "set -e"
      if (sd != "") printf "install -d -o %s -g %s -m %s /var/lib/%s\n", user, group, sdm ? sdm : "0755", sd
      if (lc != "") {
        split(lc, a, ":"); d = "/run/credentials/" name
        printf "install -d -o %s -g %s -m 0500 %s\ninstall -o %s -g %s -m 0400 %s %s/%s\n", user, group, d, user, group, a[2], d, a[1]
        printf "export CREDENTIALS_DIRECTORY=%s\n", d
      }
      printf "set -a\n%sset +a\n", env
      if (umask_ != "") print "umask " umask_
      capopt = caps ? "--inh-caps=" caps " --ambient-caps=" caps : ""
      printf "eval \"exec setpriv --reuid=%s --regid=%s --init-groups %s %s %s\"\n", user, group, nnp, capopt, exec_
    }' <(nsr cat "$file") >"$script" || return 1
  nsr cp "$script" "$R/tmp/start-$name.sh" || return 1
  # not through inr: $! must be the daemon (nsenter, chroot, sh and setpriv
  # each exec the next), not a subshell running a function
  nsenter -t "$HOLD" -m -n -- chroot "$R" sh "/tmp/start-$name.sh" >>"$T/unit-$name.log" 2>&1 &
  UPIDS[$name]=$!
}
unit_stop() { # NAME (as in UPIDS): SIGTERM, as systemd stops it
  local p=${UPIDS[$1]:-}
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null
  wait_until 20 bash -c "! kill -0 $p" || kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  unset "UPIDS[$1]"
}
runs_as() { # NAME USER: the daemon is alive and its real and effective uid are USER's
  local p=${UPIDS[$1]:-} uid
  uid=$(inr id -u "$2") || return 1
  [ -n "$p" ] && kill -0 "$p" && awk -v u="$uid" '/^Uid:/ { exit !($2 == u && $3 == u) }' "/proc/$p/status"
}
rff() { inr firmfleet "$@"; }
ragent_online() {
  local l
  l=$(rff agent list --json) && jq -e '.[] | select(.name == "berlin" and .online == true)' <<<"$l" >/dev/null
}
# logged LOG CMD...: CMD with its output in $T/LOG (a check's own line stays on stdout)
logged() { local l=$1; shift; "$@" >"$T/$l" 2>&1; }
pkg_status() { inr dpkg-query -W -f '${db:Status-Abbrev}${Version}' "$1" 2>/dev/null | tr -d ' '; }
DSH=/var/lib/systemd/deb-systemd-helper-enabled
EN=/etc/systemd/system/multi-user.target.wants

# ---- install ----
check "dpkg -i $V1 (both packages)" logged dpkg-install.out inr dpkg -i \
  "/tmp/pkgs/firmfleet-controller_${V1}_$ARCH.deb" "/tmp/pkgs/firmfleet-agent_${V1}_$ARCH.deb"
grep -iE 'error|warning' "$T/dpkg-install.out" | sed 's/^/# /'
for p in $PKGS; do check_eq "$p: installed $V1" "ii$V1" "$(pkg_status $p)"; done
check "dpkg --verify: every packaged file as shipped" inr dpkg --verify $PKGS
sysuser() { # the user has no login shell and its group exists
  local u
  u=$(inr getent passwd firmfleet) && [ "$(echo "$u" | cut -d: -f7)" = /usr/sbin/nologin ] &&
    inr getent group firmfleet >/dev/null
}
check "postinst: system user and group firmfleet (no shell)" sysuser
for d in /var/lib/firmfleet /var/lib/firmfleet-agent; do
  check_eq "postinst: $d firmfleet:firmfleet 750" "firmfleet:firmfleet 750" "$(inr stat -c '%U:%G %a' $d 2>&1)"
done
check_eq "postinst: /etc/firmfleet root:firmfleet 750" "root:firmfleet 750" "$(inr stat -c '%U:%G %a' /etc/firmfleet 2>&1)"
check "deb-systemd-helper enabled firmfleetd.service" inr test -L "$EN/firmfleetd.service"
check "deb-systemd-helper recorded the enablement" inr test -e "$DSH/firmfleetd.service.dsh-also"

# ---- start, as the units say ----
# the operator's edits of both conffiles (must survive the upgrade)
inr sed -i 's|^FIRMFLEETD_OPTS=.*|FIRMFLEETD_OPTS="--listen tcp://127.0.0.1:7600 --public-endpoint tcp://127.0.0.1:7600"|' /etc/default/firmfleetd
inr sed -i 's|^FIRMFLEET_AGENT_OPTS=.*|FIRMFLEET_AGENT_OPTS="--log-level debug"|' /etc/default/firmfleet-agent
check "firmfleetd.service starts" unit_start firmfleetd.service
check "controller answers firmfleet site list (admin socket)" wait_until 30 rff site list
check "firmfleetd runs as user firmfleet" runs_as firmfleetd firmfleet
check "controller's database owned by firmfleet, not readable by others" bash -c \
  '[[ "$1" =~ ^firmfleet\ [67][04]0$ ]]' _ "$(inr stat -c '%U %a' /var/lib/firmfleet/controller.db 2>&1)"
rff site add berlin --tz Europe/Berlin >/dev/null
printf 'mac,site,model\n00:04:f2:00:00:01,berlin,VVX400\n00:04:f2:00:00:02,berlin,VVX400\n' | nsr tee "$R/tmp/dev.csv" >/dev/null
rff device import /tmp/dev.csv >/dev/null
check "agent enrolled (firmfleet agent enroll, credential installed 0600)" inr sh -c \
  'firmfleet agent enroll --site berlin --out /tmp/berlin.cred >/dev/null && install -m 0600 /tmp/berlin.cred /etc/firmfleet/agent-berlin.cred && rm /tmp/berlin.cred'
echo 'FIRMFLEET_AGENT_SITE_OPTS="--http 127.0.0.1:80"' | nsr tee "$R/etc/default/firmfleet-agent-berlin" >/dev/null
check "systemctl enable firmfleet-agent@berlin (offline)" logged systemctl.out inr systemctl enable \
  firmfleet-agent@berlin.service
check "firmfleet-agent@berlin.service starts" unit_start firmfleet-agent@.service berlin
check "agent online at the controller" wait_until 40 ragent_online
check "firmfleet-agent runs as user firmfleet" runs_as firmfleet-agent@berlin firmfleet
http_up() { local c; c=$(nsr curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:80/none); [ -n "$c" ] && [ "$c" != 000 ]; }
check "agent serves HTTP on port 80 (the unit's CAP_NET_BIND_SERVICE)" wait_until 20 http_up
check_eq "agent state directory firmfleet:firmfleet 750" "firmfleet:firmfleet 750" \
  "$(inr stat -c '%U:%G %a' /var/lib/firmfleet-agent/berlin 2>&1)"
rows() { inr sqlite3 -readonly /var/lib/firmfleet/controller.db \
  "SELECT (SELECT group_concat(name) FROM site), (SELECT count(*) FROM device), (SELECT count(*) FROM agent)"; }
ROWS1=$(rows)
note "controller rows (sites, devices, agents) before the upgrade: $ROWS1"
check_eq "controller rows before the upgrade" "berlin|2|1" "$ROWS1"

# ---- upgrade over the running daemons ----
check "dpkg -i $V2 over $V1" logged dpkg-upgrade.out inr dpkg -i \
  "/tmp/pkgs/firmfleet-controller_${V2}_$ARCH.deb" "/tmp/pkgs/firmfleet-agent_${V2}_$ARCH.deb"
grep -iE 'error|warning' "$T/dpkg-upgrade.out" | sed 's/^/# /'
for p in $PKGS; do check_eq "$p: upgraded to $V2" "ii$V2" "$(pkg_status $p)"; done
check "dpkg --verify after the upgrade" logged verify.out inr dpkg --verify $PKGS
check_eq "dpkg --verify: only the two edited conffiles differ" "/etc/default/firmfleet-agent /etc/default/firmfleetd" \
  "$(awk '{ print $NF }' "$T/verify.out" | sort | xargs)"
check "conffile /etc/default/firmfleetd: the operator's edit kept" inr grep -q 127.0.0.1:7600 /etc/default/firmfleetd
check "conffile /etc/default/firmfleet-agent: the operator's edit kept" inr grep -q -- '--log-level debug' /etc/default/firmfleet-agent
check "no .dpkg-new or .dpkg-old left" bash -c "! find '$U/etc' -name '*.dpkg-*' | grep -q ."
check "firmfleetd.service still enabled" inr test -L "$EN/firmfleetd.service"
check "firmfleet-agent@berlin still enabled" inr test -L "$EN/firmfleet-agent@berlin.service"
# the restart postinst asks of systemd (try-restart)
unit_stop firmfleetd
unit_stop firmfleet-agent@berlin
check "firmfleetd.service starts on $V2" unit_start firmfleetd.service
check "controller answers again" wait_until 30 rff site list
check_eq "controller rows survived the upgrade" "$ROWS1" "$(rows)"
check "firmfleet-agent@berlin starts on $V2" unit_start firmfleet-agent@.service berlin
check "agent back online (its state and key kept)" wait_until 40 ragent_online
check "agent serves HTTP again" wait_until 20 http_up

# ---- remove (what systemd's stop in prerm would do: the daemons go first) ----
unit_stop firmfleetd
unit_stop firmfleet-agent@berlin
check "dpkg --remove both" logged dpkg-remove.out inr dpkg --remove $PKGS
for p in $PKGS; do check_eq "$p: removed, config files left (rc)" "rc$V2" "$(pkg_status $p)"; done
check_fails "remove: programs gone" inr sh -c 'test -e /usr/sbin/firmfleetd || test -e /usr/sbin/firmfleet-agent || test -e /usr/bin/firmfleet'
check_fails "remove: unit files gone" inr sh -c 'test -e /lib/systemd/system/firmfleetd.service || test -e /lib/systemd/system/firmfleet-agent@.service'
check "remove: conffiles kept" inr test -f /etc/default/firmfleetd -a -f /etc/default/firmfleet-agent
check "remove: controller database kept" inr test -s /var/lib/firmfleet/controller.db
check "remove: agent state and credential kept" inr test -d /var/lib/firmfleet-agent/berlin -a -f /etc/firmfleet/agent-berlin.cred
check_fails "remove: firmfleet-agent@berlin disabled" inr test -e "$EN/firmfleet-agent@berlin.service"
check_eq "remove: firmfleetd.service masked" /dev/null "$(inr readlink /etc/systemd/system/firmfleetd.service)"
check "remove: user firmfleet kept" logged getent.out inr getent passwd firmfleet

# ---- purge ----
check "dpkg --purge both" logged dpkg-purge.out inr dpkg --purge $PKGS
for p in $PKGS; do
  st=$(inr dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)
  check "$p: purged (dpkg status '${st:-none}')" test "$st" = "" -o "$st" = not-installed
done
for f in /etc/default/firmfleetd /etc/default/firmfleet-agent /etc/default/firmfleet-agent-berlin \
  /etc/firmfleet /var/lib/firmfleet /var/lib/firmfleet-agent /etc/systemd/system/firmfleetd.service \
  "$EN/firmfleetd.service" "$DSH/firmfleetd.service.dsh-also"; do
  check_fails "purge: $f gone" inr test -e "$f" -o -L "$f"
done
left=$(cd "$U" && find . -name '*firmfleet*' ! -path './tmp/*' ! -path './run/*' | sort | head -20)
check_eq "purge: no file named *firmfleet* left in the root" "" "$left"
check "purge: user firmfleet kept (Debian keeps system users)" logged getent.out inr getent passwd firmfleet

s_cleanup
check_eq "this machine's users, groups and dpkg database untouched" "$HOST0" "$(host_sum)"
check "nothing installed on this machine" bash -c '! dpkg-query -W firmfleet-controller firmfleet-agent 2>/dev/null | grep -q .'
check "no mount left on $R" bash -c "! grep -q '$R' /proc/mounts"
note "t_dpkg: $((SECONDS - t0)) s"
# finish checks the daemons' logs ($T/unit-*.log) for sanitizer reports
finish
