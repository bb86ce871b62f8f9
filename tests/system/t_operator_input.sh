#!/usr/bin/env bash
# t_operator_input.sh: the operator CLI against a real controller. Every bad
# input (unknown site, malformed MAC, missing or non-regular firmware file,
# duplicate device, bad time zone or site name, a CSV with one bad row, an
# unknown option, noun or verb, ...) must exit non-zero with exactly one line
# "firmfleet: ..." on stderr and leave the database byte-for-byte unchanged
# (sqlite3 .dump before and after, audit table included). The good paths
# (site, device, CSV import, firmware upload with sha256 checked against
# sha256sum, agent enrollment) must work and show up in --json output.
source "$(dirname "$0")/lib.sh"

audit_rows() { sqlite3 "$CTL_DIR/controller.db" "SELECT count(*) FROM audit"; }

ctl_start || { nok "controller came up"; finish; }
ok "controller came up"

# ---- good paths ----
check "site add berlin" ff site add berlin --tz Europe/Berlin --description "HQ branch"
check "site add paris" ff --user alice site add paris --tz Europe/Paris
check_eq "site list --json names" "berlin paris" "$(ff site list --json | jq -r '[.[].name] | join(" ")')"
check_eq "site show --json tz" "Europe/Berlin" "$(ff site show berlin --json | jq -r .tz)"
check_eq "site show --json description" "HQ branch" "$(ff site show berlin --json | jq -r .description)"
check "site list (human) has a header" bash -c "'$BIN/firmfleet' -d '$CTL_DIR' site list | head -1 | grep -q '^NAME  *TZ'"
check_eq "audit records the --user" "alice" \
  "$(sqlite3 "$CTL_DIR/controller.db" "SELECT user FROM audit WHERE detail LIKE 'site=paris%'")"
check_eq "audit list --by alice: who, what" "alice site.add site=paris" \
  "$(ff audit list --by alice --json | jq -r '.[] | "\(.user) \(.action) \(.detail | split(" ")[0])"')"
check_eq "audit list --action site: both site adds, oldest first" "berlin paris" \
  "$(ff audit list --action site --json | jq -r '[.[].detail | capture("site=(?<s>[a-z]+)").s] | join(" ")')"
check "audit list: when, as a time" bash -c "'$BIN/firmfleet' -d '$CTL_DIR' audit list --limit 1 | tail -1 | grep -qE '^[0-9]+ +20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} +alice +site.add'"
check_eq "audit list --action sit matches no family" "0" "$(ff audit list --action sit --json | jq length)"

check "device add (dash form MAC)" ff device add 00-1B-54-AA-BB-01 --site berlin --model CP-7961G --serial FCH001 --tags lobby,floor1
check_eq "device show canonical MAC" "00:1b:54:aa:bb:01" "$(ff device show 001b.54aa.bb01 --json | jq -r .mac)"
check_eq "device show tags" "lobby,floor1" "$(ff device show 00:1b:54:aa:bb:01 --json | jq -r '.tags | join(",")')"
check_eq "device list --site" "1" "$(ff device list --site berlin --json | jq length)"

cat >"$T/good.csv" <<'EOF'
site,mac,model,tags
berlin,00:1b:54:aa:bb:02,CP-7961G,"a,b"
paris,00:1b:54:aa:bb:03,CP-7941G,
berlin,001b54aabb04,,
EOF
check "device import good CSV" ff device import "$T/good.csv"
check_eq "devices after import" "4" "$(ff device list --json | jq length)"
check_eq "device list --model" "2" "$(ff device list --model CP-7961G --json | jq length)"
check_eq "imported device origin" "import" "$(ff device show 00:1b:54:aa:bb:03 --json | jq -r .origin)"
check_eq "site counts devices" "3" "$(ff site show berlin --json | jq .devices)"

head -c 70000 /dev/urandom >"$T/loader.bin"
printf 'image-config v1\n' >"$T/term.cfg"
check "firmware add two files" ff firmware add cisco/9.4.2SR3 --models CP-7961G,CP-7941G \
  --description "SCCP load" "$T/loader.bin" "SEP.cnf=$T/term.cfg"
fw=$(ff firmware show cisco/9.4.2SR3 --json)
check_eq "firmware file names" "SEP.cnf loader.bin" "$(jq -r '[.files[].name] | sort | join(" ")' <<<"$fw")"
check_eq "firmware sha256 of loader.bin" "$(sha256sum "$T/loader.bin" | cut -d' ' -f1)" \
  "$(jq -r '.files[] | select(.name == "loader.bin") | .sha256' <<<"$fw")"
check_eq "firmware sha256 of SEP.cnf" "$(sha256sum "$T/term.cfg" | cut -d' ' -f1)" \
  "$(jq -r '.files[] | select(.name == "SEP.cnf") | .sha256' <<<"$fw")"
check_eq "firmware size of loader.bin" "70000" "$(jq -r '.files[] | select(.name == "loader.bin") | .size' <<<"$fw")"
check_eq "firmware models" "CP-7941G,CP-7961G" "$(jq -r '.models | join(",")' <<<"$fw")"
sha=$(sha256sum "$T/loader.bin" | cut -d' ' -f1)
check "blob stored under its hash" cmp "$T/loader.bin" "$CTL_DIR/images/blobs/${sha:0:2}/$sha"
check_eq "firmware list --json" "1" "$(ff firmware list --json | jq length)"
check_eq "firmware show by id" "9.4.2SR3" "$(ff firmware show "$(jq .id <<<"$fw")" --json | jq -r .version)"

check "agent enroll" ff agent enroll --site berlin --out "$T/berlin.cred"
check_eq "credential mode 0600" "600" "$(stat -c %a "$T/berlin.cred")"
check_eq "credential fields" "agent endpoint enrollment expires_ms public_key secret_key server_public_key site version" \
  "$(jq -r 'keys | join(" ")' "$T/berlin.cred")"
check_eq "controller key in credential" "$(cat "$CTL_DIR/curve.pub")" "$(jq -r .server_public_key "$T/berlin.cred")"
ff agent enroll --site paris --name paris-1 --out "$T/paris.cred" --json >"$T/enroll.json"
check_eq "enroll --json names the agent" "paris-1" "$(jq -r .agent "$T/enroll.json")"
check_fails "enroll --json never prints the secret key" grep -q "$(jq -r .secret_key "$T/paris.cred")" "$T/enroll.json"
check_eq "agent list --json" "berlin paris-1" "$(ff agent list --json | jq -r '[.[].name] | join(" ")')"
check_eq "agent list has online and image_bytes_sent" "false 0" \
  "$(ff agent list --json | jq -r '.[0] | "\(.online) \(.image_bytes_sent)"')"
check "agent enroll --force overwrites" ff agent enroll --site paris --name paris-2 --out "$T/paris.cred" --force
check_eq "overwritten credential" "paris-2" "$(jq -r .agent "$T/paris.cred")"
check "agent revoke" ff agent revoke paris-2
check_eq "agent show revoked" "true" "$(ff agent show paris-2 --json | jq .revoked)"
check_eq "event list --json is an array" "array" "$(ff event list --json | jq -r type)"

# ---- bad input: one stderr line, non-zero exit, nothing changed ----
audit_before=$(audit_rows)
bad 1 "device add to an unknown site" ff device add 00:1b:54:aa:bb:10 --site nowhere
bad 1 "agent enroll at an unknown site" ff agent enroll --site nowhere --out "$T/nowhere.cred"
check_fails "no credential file for the failed enroll" test -e "$T/nowhere.cred"
for mac in 00:1b:54:aa:bb 00:1b:54:aa:bb:10:11 gg:1b:54:aa:bb:10 00-1b:54-aa:bb-10 \
  001b.54aa.bb1 not-a-mac 00:1b:54:aa:bb:1 "" "00:1b:54:aa:bb:10 "; do
  bad 1 "malformed MAC '$mac'" ff device add "$mac" --site berlin
done
bad 1 "device show malformed MAC" ff device show 00:1b:54
bad 1 "duplicate device" ff device add 00:1B:54:AA:BB:01 --site paris
bad 1 "duplicate device (other spelling)" ff device add 001b54aabb02 --site berlin
bad 1 "invalid time zone" ff site add rome --tz Mars/Olympus_Mons
bad 1 "time zone path traversal" ff site add rome --tz ../../../../etc/passwd
bad 1 "time zone absolute path" ff site add rome --tz /usr/share/zoneinfo/UTC
bad 1 "time zone that is not a zone file" ff site add rome --tz zone.tab
bad 1 "time zone that is a directory" ff site add rome --tz Europe
bad 1 "bad site name (upper case)" ff site add Rome --tz Europe/Rome
bad 1 "bad site name (space)" ff site add "ro me" --tz Europe/Rome
bad 1 "bad site name (slash)" ff site add ro/me --tz Europe/Rome
bad 1 "duplicate site" ff site add berlin --tz Europe/Berlin
bad 1 "missing firmware file" ff firmware add cisco/9.4.3 --models CP-7961G "$T/no-such-file.bin"
mkdir -p "$T/adir"
bad 1 "directory as firmware file" ff firmware add cisco/9.4.3 --models CP-7961G "$T/adir"
bad 1 "one good and one missing firmware file" ff firmware add cisco/9.4.3 --models CP-7961G "$T/term.cfg" "$T/missing.bin"
bad 1 "duplicate firmware" ff firmware add cisco/9.4.2SR3 --models CP-7961G "$T/term.cfg"
bad 1 "two firmware files with one name" ff firmware add cisco/9.4.3 --models CP-7961G "$T/term.cfg" "term.cfg=$T/loader.bin"
bad 1 "firmware reference without version" ff firmware add cisco --models CP-7961G "$T/term.cfg"
bad 1 "unknown firmware" ff firmware show cisco/0.0
cat >"$T/bad.csv" <<'EOF'
mac,site,model
00:1b:54:aa:bb:20,berlin,CP-7961G
00:1b:54:aa:bb:21,berlin,CP-7961G
00:1b:54:aa:bb:2,berlin,CP-7961G
00:1b:54:aa:bb:23,berlin,CP-7961G
EOF
bad 1 "CSV with one malformed MAC" ff device import "$T/bad.csv"
grep -q "bad.csv: line 4:" "$T/bad.err" && ok "CSV error names file and line" || nok "CSV error names file and line: $(cat "$T/bad.err")"
cat >"$T/bad2.csv" <<'EOF'
mac,site
00:1b:54:aa:bb:30,berlin
00:1b:54:aa:bb:31,atlantis
00:1b:54:aa:bb:32,paris
EOF
bad 1 "CSV with one unknown site" ff device import "$T/bad2.csv"
grep -q "bad2.csv: line 3: unknown site 'atlantis'" "$T/bad.err" && ok "CSV unknown site names line 3" || nok "CSV unknown site names line 3: $(cat "$T/bad.err")"
printf 'mac,site\n00:1b:54:aa:bb:40,berlin\n00:1b:54:aa:bb:01,paris\n' >"$T/bad3.csv"
bad 1 "CSV with a device already present" ff device import "$T/bad3.csv"
printf 'mac,site\n00:1b:54:aa:bb:41,berlin\n001B.54AA.BB41,paris\n' >"$T/bad4.csv"
bad 1 "CSV with a device twice" ff device import "$T/bad4.csv"
printf 'mac,site,colour\n00:1b:54:aa:bb:42,berlin,red\n' >"$T/bad5.csv"
bad 1 "CSV with an unknown column" ff device import "$T/bad5.csv"
printf 'mac,model\n00:1b:54:aa:bb:42,X\n' >"$T/bad6.csv"
bad 1 "CSV without a site column" ff device import "$T/bad6.csv"
bad 1 "CSV file missing" ff device import "$T/nope.csv"
bad 1 "agent enroll over an existing file" ff agent enroll --site berlin --name berlin-2 --out "$T/berlin.cred"
bad 1 "agent enroll with a bad --ttl" ff agent enroll --site berlin --name berlin-3 --out "$T/b3.cred" --ttl 1w
bad 1 "agent enroll with --ttl 0" ff agent enroll --site berlin --name berlin-3 --out "$T/b3.cred" --ttl 0
bad 1 "profile add with a missing --sign-key file" ff profile add "$(dirname "$0")/../../profiles/yealink.json" --sign-key "$T/none.key"
bad 1 "revoking twice" ff agent revoke paris-2
bad 1 "unknown agent" ff agent show nobody
bad 1 "event list with a malformed MAC" ff event list --mac zz
bad 1 "event list with a bad limit" ff event list --limit -5
bad 1 "audit list with a bad limit" ff audit list --limit many
bad 2 "audit list with an argument" ff audit list alice
bad 1 "bad --timeout" ff --timeout never site list
bad 2 "unknown option" ff site list --colour
bad 2 "unknown option for the verb" ff device add 00:1b:54:aa:bb:50 --site berlin --tz UTC
bad 2 "option missing its value" ff site add rome --tz
bad 2 "missing required option" ff device add 00:1b:54:aa:bb:50
bad 2 "unknown noun" ff rollercoaster list
bad 2 "unknown verb" ff site demolish berlin
bad 2 "missing verb" ff device
bad 2 "extra argument" ff site show berlin paris
bad 2 "no command" ff
check_eq "failed commands wrote no audit rows" "$audit_before" "$(audit_rows)"

# an absent controller: fast, one line
bad 1 "controller not reachable" "$BIN/firmfleet" -d "$T/nowhere" site list
grep -q "controller not reachable at ipc://$T/nowhere/admin.sock" "$T/bad.err" &&
  ok "unreachable message names the endpoint" || nok "unreachable message: $(cat "$T/bad.err")"

# help goes to stdout and succeeds
check "help" bash -c "'$BIN/firmfleet' help | grep -q 'firmfleet device import'"
check "noun --help" bash -c "'$BIN/firmfleet' firmware --help | grep -q 'firmware add'"

finish
