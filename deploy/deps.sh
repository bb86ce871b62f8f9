#!/bin/sh
# deps.sh: install every Debian package that building, running the demo and
# testing firmfleet needs. Idempotent; called by `make deps`.
set -eu
PKGS="build-essential pkg-config clang-format
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3
libuv1-dev libsodium-dev libjansson-dev libcsv-dev libcmocka-dev
jq tzdata procps iproute2 psmisc util-linux
busybox isc-dhcp-client tftp-hpa atftp curl libhttp-parser-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then echo "deps: need root to install:$missing" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
