#!/bin/sh
# zmq-slim.sh [PREFIX]: builds the static libzmq the site agent links, from
# Debian's own zeromq3 source package (the version of the installed
# libzmq3-dev, Debian's patches applied), with only what the agent uses:
# TCP, CURVE through the system libsodium. No OpenPGM, NORM, GSSAPI/Kerberos,
# libbsd, drafts or WebSocket. Called by deploy/deps.sh; idempotent.
#
# Why: Debian's libzmq5 is linked against libpgm, libnorm, libgssapi_krb5
# (and through it libkrb5, libk5crypto, libkrb5support, libkeyutils,
# libcom_err, libresolv) and libbsd. The agent uses none of them, yet every
# one is loaded, relocated and partly paged in at start: 1.1 MiB of the idle
# agent's 8.6 MiB RSS, with libstdc++ (linked statically here, only the
# parts libzmq calls) another 1.4 MiB. A branch box runs the agent next to
# little else; the controller keeps Debian's shared libzmq.
#
# The sources come through apt from the archive the machine already uses
# (the deb-src entry lives in a private apt directory under the build
# directory, not in /etc/apt), so the tarball is checked against the signed
# Sources index like any package. Result: PREFIX/lib/libzmq.a and
# PREFIX/include; PREFIX/BUILT names the version it was built from.
set -eu

PREFIX=${1:-${FF_ZMQ_SLIM_DIR:-/opt/firmfleet-deps/libzmq-slim}}
# one build at a time (two build directories' `make` may both get here): the
# second waits for the first, then finds it built
mkdir -p "$(dirname "$PREFIX")"
if [ -z "${FF_ZMQ_SLIM_LOCKED:-}" ] && command -v flock >/dev/null; then
  FF_ZMQ_SLIM_LOCKED=1 exec flock "$(dirname "$PREFIX")/.zmq-slim.lock" sh "$0" "$PREFIX"
fi
VER=$(dpkg-query -W -f='${Version}' libzmq3-dev 2>/dev/null || true)
[ -n "$VER" ] || { echo "zmq-slim: libzmq3-dev is not installed (make deps installs it)" >&2; exit 1; }
if [ -s "$PREFIX/BUILT" ] && [ "$(cat "$PREFIX/BUILT")" = "zeromq3 $VER" ] && [ -f "$PREFIX/lib/libzmq.a" ]; then
  exit 0
fi
for t in cmake dpkg-source g++; do
  command -v "$t" >/dev/null || { echo "zmq-slim: $t is missing (make deps installs it)" >&2; exit 1; }
done
echo "deps: building the agent's static libzmq from Debian source zeromq3 $VER into $PREFIX (about a minute)"

W=$(mktemp -d /tmp/zmq-slim.XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 1' INT TERM
chmod 0755 "$W"
mkdir -p "$W/apt/parts" "$W/apt/lists/partial" "$W/src"
# the same archive as the machine's own deb entries, as deb-src
uris=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$uris" ] || uris=$(sed -n 's/^deb \(http[^ ]*\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
[ -n "$uris" ] || { echo "zmq-slim: no Debian archive found in /etc/apt to fetch zeromq3 source from" >&2; exit 1; }
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
printf 'Types: deb-src\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "$uris" "$suite" "$suite" >"$W/apt/parts/src.sources"
APT="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$W/apt/parts -o Dir::State::Lists=$W/apt/lists -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get $APT -qq update || { echo "zmq-slim: cannot read the deb-src index of $uris" >&2; exit 1; }
# shellcheck disable=SC2086
(cd "$W/src" && apt-get $APT -qq source --download-only "zeromq3=$VER") >/dev/null ||
  { echo "zmq-slim: cannot fetch the zeromq3 $VER source from $uris" >&2; exit 1; }
# apt checked the files against the signed Sources index; dpkg-source's own
# check of the uploader's signature needs a keyring this machine lacks
(cd "$W/src" && dpkg-source -q -x zeromq3_*.dsc zmq) >"$W/dsrc.log" 2>&1 ||
  { cat "$W/dsrc.log" >&2; echo "zmq-slim: cannot unpack the zeromq3 source" >&2; exit 1; }
mkdir -p "$W/build"
(cd "$W/build" && cmake "$W/src/zmq" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DBUILD_SHARED=OFF -DBUILD_STATIC=ON -DBUILD_TESTS=OFF -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF \
  -DENABLE_DRAFTS=OFF -DENABLE_WS=OFF -DWITH_LIBBSD=OFF -DWITH_OPENPGM=OFF -DWITH_NORM=OFF -DWITH_VMCI=OFF \
  -DWITH_LIBSODIUM=ON -DENABLE_CURVE=ON -DENABLE_PRECOMPILED=OFF -DENABLE_CPACK=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DCMAKE_C_FLAGS="-ffunction-sections -fdata-sections" \
  -DCMAKE_CXX_FLAGS="-ffunction-sections -fdata-sections" >"$W/cmake.log" 2>&1) ||
  { tail -20 "$W/cmake.log" >&2; echo "zmq-slim: cmake failed" >&2; exit 1; }
(cd "$W/build" && make -j"$(nproc)" >"$W/make.log" 2>&1) ||
  { tail -20 "$W/make.log" >&2; echo "zmq-slim: build failed" >&2; exit 1; }
rm -rf "$PREFIX"
(cd "$W/build" && make install >/dev/null)
grep -q '^#define ZMQ_HAVE_CURVE' "$W/build/platform.hpp" ||
  { echo "zmq-slim: the build has no CURVE" >&2; rm -rf "$PREFIX"; exit 1; }
echo "zeromq3 $VER" >"$PREFIX/BUILT"
