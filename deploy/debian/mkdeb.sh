#!/bin/sh
# mkdeb.sh STAGE OUTDIR: splits a `make install DESTDIR=STAGE` tree into the
# two Debian packages and builds them with dpkg-deb into OUTDIR (called by
# `make deb`; no debhelper, no fakeroot: --root-owner-group).
#
#   firmfleet-controller  firmfleetd, the CLI (it talks to the admin socket
#                         in the controller's data directory), the simulator,
#                         the vendor profiles, firmfleetd.service
#   firmfleet-agent       firmfleet-agent and firmfleet-agent@.service: what a
#                         branch box runs, without the controller or profiles
#
# Two packages because they go on different machines: a branch box needs
# neither the controller nor its profiles, and the controller host needs no
# binary that holds CAP_NET_RAW. Both postinsts create the same user.
#
# Version: the VERSION file at the top of the tree, plus the revision
# DEB_REVISION (default 1). Depends: dpkg-shlibdeps on the binaries (it is in
# dpkg-dev, which build-essential pulls in), else the list below, kept equal
# to the runtime libraries of the -dev packages in deploy/deps.sh.
# Every file of STAGE must belong to a package, or the build fails.
# DEB_NOSTRIP=1 keeps the symbols; DEB_COMPRESS=gzip builds faster (default xz).
set -eu

[ $# -eq 2 ] || { echo "usage: mkdeb.sh STAGE OUTDIR" >&2; exit 2; }
mkdir -p "$2"
STAGE=$(cd "$1" && pwd)
OUT=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
[ -d "$STAGE/usr" ] || { echo "mkdeb: $STAGE is not an install tree" >&2; exit 1; }

UPSTREAM=$(tr -d ' \n' <"$TOP/VERSION")
case "$UPSTREAM" in
  [0-9]*) ;;
  *) echo "mkdeb: VERSION must start with a digit, got '$UPSTREAM'" >&2; exit 1 ;;
esac
VERSION=$UPSTREAM-${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
MAINT="firmfleet maintainers <firmfleet@localhost>"
FALLBACK_DEPENDS="libc6, libcsv3, libhttp-parser2.9, libjansson4, libprotobuf-c1, libsodium23, libsqlite3-0, libuv1, libzmq5"

CONTROLLER_FILES="usr/sbin/firmfleetd usr/bin/firmfleet usr/bin/firmfleet-sim
usr/share/man/man8/firmfleetd.8 usr/share/man/man1/firmfleet.1 usr/share/man/man1/firmfleet-sim.1
usr/share/man/man5/firmfleet-files.5
usr/share/firmfleet lib/systemd/system/firmfleetd.service etc/default/firmfleetd"
AGENT_FILES="usr/sbin/firmfleet-agent usr/share/man/man8/firmfleet-agent.8
lib/systemd/system/firmfleet-agent@.service etc/default/firmfleet-agent"

WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK/debian"
# dpkg-shlibdeps wants a debian/control naming the packages it is run for
printf 'Source: firmfleet\n\nPackage: firmfleet-controller\nArchitecture: any\n\nPackage: firmfleet-agent\nArchitecture: any\n' \
  >"$WORK/debian/control"

# s_fill PKG FILES: copies FILES (relative to STAGE) into the package root
s_fill() {
  root=$WORK/debian/$1
  for f in $2; do
    [ -e "$STAGE/$f" ] || { echo "mkdeb: $f is not in $STAGE (make install)" >&2; exit 1; }
    mkdir -p "$root/$(dirname "$f")"
    cp -a "$STAGE/$f" "$root/$f"
  done
  # policy: man pages compressed, binaries stripped, no group/other write
  find "$root/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
  if [ "${DEB_NOSTRIP:-0}" != 1 ]; then
    for b in "$root"/usr/bin/* "$root"/usr/sbin/*; do
      [ -f "$b" ] || continue
      strip --strip-unneeded --remove-section=.comment --remove-section=.note "$b"
    done
  fi
  chmod -R go-w "$root"
}

# s_depends PKG: the Depends of PKG's binaries
s_depends() {
  bins=$(cd "$WORK" && find debian/"$1"/usr/bin debian/"$1"/usr/sbin -type f 2>/dev/null || true)
  if command -v dpkg-shlibdeps >/dev/null; then
    (cd "$WORK" && dpkg-shlibdeps -O $bins 2>"$WORK/shlibdeps-$1.log") |
      sed -n 's/^shlibs:Depends=//p'
  else
    echo "$FALLBACK_DEPENDS"
  fi
}

# s_build PKG SHORT_DESCRIPTION EXTRA_DEPENDS SUGGESTS < LONG_DESCRIPTION
s_build() {
  pkg=$1
  root=$WORK/debian/$pkg
  mkdir -p "$root/DEBIAN"
  deps=$(s_depends "$pkg")
  [ -n "$deps" ] || { echo "mkdeb: no Depends for $pkg" >&2; cat "$WORK/shlibdeps-$pkg.log" >&2; exit 1; }
  for s in postinst prerm postrm; do
    [ -f "$HERE/$pkg.$s" ] || continue
    sed -e "/^#USER#\$/{r $HERE/user.sh" -e 'd}' "$HERE/$pkg.$s" >"$root/DEBIAN/$s"
    chmod 0755 "$root/DEBIAN/$s"
    sh -n "$root/DEBIAN/$s"
  done
  (cd "$root" && find etc -type f 2>/dev/null | sed 's,^,/,' | sort) >"$root/DEBIAN/conffiles"
  [ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's,^\./,,' | sort |
    xargs md5sum) >"$root/DEBIAN/md5sums"
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  {
    echo "Package: $pkg"
    echo "Version: $VERSION"
    echo "Architecture: $ARCH"
    echo "Maintainer: $MAINT"
    echo "Installed-Size: $size"
    echo "Depends: $deps, $3"
    echo "Suggests: $4"
    echo "Section: net"
    echo "Priority: optional"
    echo "Description: $2"
    sed 's/^$/./; s/^/ /'
  } >"$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$root" "$OUT/${pkg}_${VERSION}_${ARCH}.deb" >/dev/null
  echo "mkdeb: $OUT/${pkg}_${VERSION}_${ARCH}.deb"
}

s_fill firmfleet-controller "$CONTROLLER_FILES"
s_fill firmfleet-agent "$AGENT_FILES"

# nothing make install put in STAGE may be left out
left=$(cd "$STAGE" && find . ! -type d | sed 's,^\./,,' | while read -r f; do
  [ -e "$WORK/debian/firmfleet-controller/$f" ] || [ -e "$WORK/debian/firmfleet-agent/$f" ] ||
    [ -e "$WORK/debian/firmfleet-controller/$f.gz" ] || [ -e "$WORK/debian/firmfleet-agent/$f.gz" ] ||
    echo "$f"
done)
[ -z "$left" ] || { echo "mkdeb: in no package:" $left >&2; exit 1; }

s_build firmfleet-controller "firmfleet controller: fleet inventory, firmware catalog, rollouts" \
  adduser firmfleet-agent <<'EOF'
firmfleetd keeps the sites, site agents, devices and firmware catalog of a
firmfleet installation in SQLite, stores firmware images by SHA-256, runs
the rollout engine (waves, windows, serials) and talks to the site agents
over CURVE-encrypted ZeroMQ.

This package also holds the operator CLI firmfleet, the device simulator
firmfleet-sim, the shipped vendor profiles and firmfleetd.service.
EOF
s_build firmfleet-agent "firmfleet site agent: DHCP, TFTP and HTTP provisioning at a branch" \
  adduser firmfleet-controller <<'EOF'
firmfleet-agent runs at a branch site: it holds what the firmfleet controller
says the site's devices should run, pulls and caches their firmware images,
and serves the devices by DHCP, TFTP and HTTP on the branch LAN, within
the rollout's windows.

One instance per site: firmfleet-agent@SITE.service, with its credential in
/etc/firmfleet/agent-SITE.cred.
EOF
