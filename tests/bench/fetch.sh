#!/bin/sh
# fetch.sh KIND HOST NAME SIZE SAMPLEDIR EVERY [REPEAT] IDX: one benchmark
# client (run many at a time through xargs -P, inside the client namespace).
# KIND: tftp (curl, blksize 512 = no option), tftp1468 (curl --tftp-blksize
# 1468), atftp16 (atftp, blksize 1468 + windowsize 16), http (curl), or
# http-slow (curl, at most 256 KB/s: keeps a transfer open for the memory
# benchmark). Downloads NAME REPEAT times (default 1); exits non-zero unless
# every copy has exactly SIZE bytes. Every EVERY-th client (IDX % EVERY == 1,
# or EVERY = 1) keeps its copy as SAMPLEDIR/IDX for a byte-exact comparison.
kind=$1 host=$2 name=$3 size=$4 sdir=$5 every=$6
if [ $# -ge 8 ]; then rep=$7 idx=$8; else rep=1 idx=$7; fi
out=/dev/null
if [ "$every" -eq 1 ] || [ $((idx % every)) -eq 1 ]; then out=$sdir/$idx; fi
i=0
while [ "$i" -lt "$rep" ]; do
  i=$((i + 1))
  case $kind in
    tftp)      got=$(curl -sS --max-time 120 -o "$out" -w '%{size_download}' "tftp://$host/$name") || exit 1 ;;
    tftp1468)  got=$(curl -sS --max-time 120 --tftp-blksize 1468 -o "$out" -w '%{size_download}' "tftp://$host/$name") || exit 1 ;;
    http)      got=$(curl -sS --max-time 120 -o "$out" -w '%{size_download}' -f "http://$host/$name") || exit 1 ;;
    http-slow) got=$(curl -sS --max-time 120 --limit-rate 256K -o "$out" -w '%{size_download}' -f "http://$host/$name") || exit 1 ;;
    atftp16)
      f=$out; [ "$f" = /dev/null ] && f=$(mktemp "$sdir/.a.XXXXXX")
      timeout 120 atftp --option "blksize 1468" --option "windowsize 16" -g -r "$name" -l "$f" "$host" >/dev/null 2>&1 || { [ "$f" != "$out" ] && rm -f "$f"; exit 1; }
      got=$(stat -c %s "$f"); [ "$f" != "$out" ] && rm -f "$f" ;;
    *) echo "fetch.sh: unknown kind $kind" >&2; exit 2 ;;
  esac
  [ "$got" = "$size" ] || exit 1
done
exit 0
