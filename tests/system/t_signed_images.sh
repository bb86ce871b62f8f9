#!/usr/bin/env bash
# t_signed_images: firmware signed on the operator's side (firmfleet key
# generate, firmware add --sign-key) is cached by agents and served byte-exact
# over TFTP and HTTP; unsigned firmware, or firmware signed by a key nobody
# trusts, is refused at the agent (image.refused), never cached or served; a
# cache file changed on disk is not served, is reported and is pulled again;
# an agent that pins its own --trust-key ignores a key only the controller
# knows; the secret key's bytes appear nowhere in the controller's data.
source "$(dirname "$0")/lib.sh"

for p in curl jq xxd; do
  command -v $p >/dev/null || { nok "$p installed (make deps)"; finish; }
done
sha() { sha256sum "$1" | cut -d' ' -f1; }
same() { [ -f "$2" ] && [ "$(sha "$1")" == "$(sha "$2")" ]; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
udp_port() {
  local p i
  for i in $(seq 1 50); do
    p=$((28000 + RANDOM % 2000)) # below the ephemeral ports (32768+)
    ss -Huln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
HP=$(free_port)
TP=$(udp_port)
URL=http://127.0.0.1:$HP

# ---- keys, made here: nothing goes to the controller ----
check "key generate writes NAME.key and NAME.pub" ff key generate --out "$T/op"
check_eq "the secret key file is mode 0600" "600" "$(stat -c %a "$T/op.key")"
check "the public key file is 64 hex digits" grep -qE '^[0-9a-f]{64}$' "$T/op.pub"
bad 1 "key generate refuses to overwrite" ff key generate --out "$T/op"
ff key generate --out "$T/other" >/dev/null  # trusted by nobody
ff key generate --out "$T/ctlonly" >/dev/null # trusted by the controller only
SEED=$(grep -vE '^#' "$T/op.key" | cut -c1-64)
check "the seed was read back from the key file" test ${#SEED} -eq 64

# ---- controller with two trusted keys; two sites ----
check "controller starts with --trust-key" ctl_start --trust-key "$T/op.pub" --trust-key "$T/ctlonly.pub"
for s in lab pin; do
  ff site add $s --tz UTC >/dev/null
  ff agent enroll --site $s --out "$T/$s.cred" >/dev/null
done
ff device add 00:04:f2:00:00:01 --site lab --model M1 >/dev/null
ff device add 00:04:f2:00:00:02 --site pin --model M1 >/dev/null

head -c 300K /dev/urandom >"$T/good.bin"
head -c 200K /dev/urandom >"$T/plain.bin"
head -c 100K /dev/urandom >"$T/evil.bin"
head -c 50K /dev/urandom >"$T/co.bin"
check "signed firmware added" ff firmware add acme/1.0 --models M1 --sign-key "$T/op.key" "$T/good.bin"
check_eq "firmware show: the file is signed, by op" "true $(cat "$T/op.pub" | grep -v '^#')" \
  "$(ff firmware show acme/1.0 --json | jq -r '.files[0] | "\(.signed) \(.signer)"')"
check "unsigned firmware added (the controller stores, agents decide)" \
  ff firmware add acme/2.0 --models M1 "$T/plain.bin"
check "firmware signed by an untrusted key added" \
  ff firmware add acme/3.0 --models M1 --sign-key "$T/other.key" "$T/evil.bin"
check "firmware signed by the controller-only key added" \
  ff firmware add acme/4.0 --models M1 --sign-key "$T/ctlonly.key" "$T/co.bin"
bad 1 "a missing --sign-key file fails before anything is sent" \
  ff firmware add acme/5.0 --models M1 --sign-key "$T/none.key" "$T/good.bin"
bad 1 "a public key is not a signing key" \
  ff firmware add acme/5.0 --models M1 --sign-key "$T/op.pub" "$T/good.bin"

# ---- agents: lab takes the controller's keys, pin pins op only ----
agent_start lab --http "127.0.0.1:$HP" --tftp "127.0.0.1:$TP" --files-root "$T/root"
agent_start pin --trust-key "$T/op.pub"
mkdir -p "$T/root"
check "lab online" wait_until 30 agent_online lab
check "pin online" wait_until 30 agent_online pin
cached() { [ -f "$T/$1.state/cache/$(sha "$2")" ]; }
check "lab caches the signed image" wait_until 30 cached lab "$T/good.bin"
check "lab caches the image signed by a key the controller trusts" wait_until 30 cached lab "$T/co.bin"
check "pin caches the signed image" wait_until 30 cached pin "$T/good.bin"
check "lab logged signing on, keys from the controller" \
  grep -q 'msg=image.signing_on .*source=controller' "$T/lab.log"
check "pin logged signing on, pinned keys" grep -q 'msg=image.signing_on .*source=pinned' "$T/pin.log"

refused() { # AGENT FILE REASON: an image.refused event for that image
  ff event list --agent "$1" --kind image.refused --limit 0 --json |
    jq -e --arg s "$(sha "$2")" --arg r "reason=$3" \
      '[.[] | select((.detail | contains($s)) and (.detail | contains($r)))] | length > 0' >/dev/null
}
check "lab: unsigned image refused (reason=unsigned)" wait_until 30 refused lab "$T/plain.bin" unsigned
check "lab: image signed by another key refused (untrusted_key)" wait_until 30 refused lab "$T/evil.bin" untrusted_key
check "pin: unsigned image refused" wait_until 30 refused pin "$T/plain.bin" unsigned
check "pin: a key only the controller trusts is ignored (untrusted_key)" \
  wait_until 30 refused pin "$T/co.bin" untrusted_key
check_fails "lab never cached the unsigned image" cached lab "$T/plain.bin"
check_fails "lab never cached the untrusted image" cached lab "$T/evil.bin"
check_fails "pin never cached the controller-only image" cached pin "$T/co.bin"
check "the refusal is in the agent's log" grep -q 'msg=image.refused .*reason=unsigned' "$T/lab.log"

# ---- serving ----
curl -s -o "$T/got.http" "$URL/good.bin"
check "HTTP: the signed image byte-exact" same "$T/good.bin" "$T/got.http"
curl -s -o "$T/got.tftp" "tftp://127.0.0.1:$TP/good.bin"
check "TFTP: the signed image byte-exact" same "$T/good.bin" "$T/got.tftp"
check_eq "HTTP: the unsigned image is refused" "403" "$(code "$URL/plain.bin")"
check_fails "TFTP: the unsigned image is refused" curl -sf -o "$T/no.tftp" "tftp://127.0.0.1:$TP/plain.bin"
check_eq "HTTP: the untrusted image is refused" "403" "$(code "$URL/evil.bin")"

# ---- tampering with the cache on disk ----
# flip OFFSET FILE: inverts one byte in place (writing a fixed byte would
# change nothing where the random image already holds it, 1 run in 256)
flip() {
  local b
  b=$(od -An -tu1 -j "$1" -N1 "$2" | tr -d ' ')
  printf "\\x$(printf '%02x' $((b ^ 0xff)))" | dd of="$2" bs=1 seek="$1" conv=notrunc status=none
}
C="$T/lab.state/cache/$(sha "$T/good.bin")"
cp "$C" "$T/orig.cache"
flip 1000 "$C"
check_fails "the cache file now differs from the image" same "$T/good.bin" "$C"
check_eq "HTTP: a cache file changed on disk is not served" "403" "$(code "$URL/good.bin")"
check "tampering reported (reason=tampered)" wait_until 20 refused lab "$T/good.bin" tampered
check "the tampered image is pulled again" wait_until 30 cached lab "$T/good.bin"
check "and it is the right bytes again" wait_until 10 same "$T/good.bin" "$C"
curl -s -o "$T/got2.http" "$URL/good.bin"
check "HTTP: served byte-exact after the re-pull" same "$T/good.bin" "$T/got2.http"

# ---- after a restart nothing is taken on trust: the first serve re-hashes ----
kill "${PIDS[lab]}"; wait "${PIDS[lab]}" 2>/dev/null; unset 'PIDS[lab]'
flip 2000 "$C"
check_fails "the cache file differs again" same "$T/good.bin" "$C"
touch -r "$T/orig.cache" "$C" # even with its old mtime back
agent_start lab --http "127.0.0.1:$HP" --tftp "127.0.0.1:$TP" --files-root "$T/root"
check "lab answers HTTP again" wait_until 30 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$URL/plain.bin')\" = 403 ]"
check_eq "HTTP: tampered while the agent was down: not served" "403" "$(code "$URL/good.bin")"
check "the re-hash on first serve found it" grep -q 'msg=image.rehashed .*ok=0 reason=first_serve' "$T/lab.log"
check "pulled again after the restart" wait_until 30 same "$T/good.bin" "$C"
curl -s -o "$T/got3.http" "$URL/good.bin"
check "HTTP: byte-exact after the restart" same "$T/good.bin" "$T/got3.http"

# ---- the secret key never left this machine ----
leaks() { # true when SEED (hex or raw bytes) is in any file under $1
  local f
  while IFS= read -r -d '' f; do
    grep -qaiF "$SEED" "$f" && return 0
    xxd -p "$f" | tr -d '\n' | grep -qi "$SEED" && return 0
  done < <(find "$1" -type f -print0)
  return 1
}
check_fails "the secret key is not in the controller's data directory" leaks "$CTL_DIR"
check_fails "nor in the agents' state" leaks "$T/lab.state"
check "the public key is in the controller's store" \
  bash -c "sqlite3 -readonly '$CTL_DIR/controller.db' 'SELECT key FROM trusted_key' | grep -qf <(grep -v '^#' '$T/op.pub')"
finish
