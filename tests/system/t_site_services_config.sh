#!/usr/bin/env bash
# t_site_services_config.sh: site services are configured on the controller
# and pushed to agents. Subnets, device classes (global and per site, a
# site's own replacing the global one of that name), file templates and
# device reservations are added with the CLI, show up in --json output, bump
# the site's generation (global changes: every site's), and reach a running
# agent: its journal's stored SiteConfig is decoded with tests/tools/scdump
# and compared field by field, bytes included. A restarted agent stores
# nothing new (the generation only moves when the content does). Every bad
# input of every new verb exits non-zero with one line on stderr and leaves
# the database byte-for-byte unchanged.
source "$(dirname "$0")/lib.sh"

# The database as text, without what the running agent changes by itself
# (last_seen_ms on heartbeats, its events and the outbox of the link).
dump() {
  sqlite3 "$CTL_DIR/controller.db" .dump | grep -vE '^INSERT INTO "?(agent|event|outbox)"? '
  sqlite3 "$CTL_DIR/controller.db" "SELECT id, name, site_id, pubkey, revoked_ms FROM agent ORDER BY id"
}

# bad_msg EXPECTED_RC DESC TEXT CMD...: bad, and the message contains TEXT
bad_msg() {
  local want=$1 d=$2 text=$3; shift 3
  bad "$want" "$d" "$@"
  grep -qF -- "$text" "$T/bad.err" && ok "$d: message names '$text'" ||
    nok "$d: message lacks '$text': $(cat "$T/bad.err")"
}

gen() { ff site show "$1" --json | jq .generation; }
JOURNAL=$T/berlin.state/journal.db
agent_gen() { sqlite3 -readonly "$JOURNAL" "SELECT value FROM meta WHERE key = 'config_generation'" 2>/dev/null; }
agent_has_gen() { [ "$(agent_gen)" = "$1" ]; }
# the SiteConfig the agent stored last, as JSON
agent_config() {
  rm -f "$T/sc.bin"
  sqlite3 -readonly "$JOURNAL" "SELECT writefile('$T/sc.bin', value) FROM meta WHERE key = 'config'" >/dev/null &&
    "$BIN/tests/tools/scdump" "$T/sc.bin"
}
# wait_config: until the agent stored berlin's current generation; then $SC holds it
wait_config() {
  local g
  g=$(gen berlin)
  if wait_until 30 agent_has_gen "$g"; then SC=$(agent_config); return 0; fi
  note "agent has generation '$(agent_gen)', controller $g"
  return 1
}
sc() { jq -r "$1" <<<"$SC"; }
hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

ctl_start || { nok "controller came up"; finish; }
ok "controller came up"
check "site add berlin" ff site add berlin --tz Europe/Berlin
check "site add paris" ff site add paris --tz Europe/Paris
check "agent enroll berlin" ff agent enroll --site berlin --out "$T/berlin.cred"
agent_start berlin
check "agent online" wait_until 30 agent_online berlin
check "agent stored the first configuration" wait_config
check_eq "no subnets, classes or files yet" "0 0 0" "$(sc '"\(.subnets | length) \(.classes | length) \(.files | length)"')"
check_eq "SiteConfig.generation is the site's generation" "$(gen berlin)" "$(sc .generation)"

# ---- subnets ----
g0=$(gen berlin)
p0=$(gen paris)
check "subnet add with every option" ff subnet add berlin 198.18.0.0/24 --pool 198.18.0.100-198.18.0.199 \
  --router 198.18.0.1 --dns 198.18.0.2,198.18.0.3 --lease 3600 --relay 198.18.0.254 \
  --option 66=@server --option 150=@server --option '43=sub:1=text:abc;2=ip:198.18.0.1' \
  --option 42=ip:198.18.0.9 --option '125=sub:enterprise=3561;1=text:ab'
check_eq "subnet add bumps the site's generation once" "$((g0 + 1))" "$(gen berlin)"
check_eq "subnet add leaves other sites alone" "$p0" "$(gen paris)"
check "subnet add (a second, relayed subnet)" ff subnet add berlin 10.20.0.0/16 --pool 10.20.1.0-10.20.1.255
sub=$(ff subnet list --site berlin --json)
check_eq "subnet list --json cidrs in address order" "10.20.0.0/16 198.18.0.0/24" "$(jq -r '[.[].cidr] | join(" ")' <<<"$sub")"
check_eq "subnet list --json fields" "198.18.0.100 198.18.0.199 198.18.0.1 198.18.0.2,198.18.0.3 3600 198.18.0.254" \
  "$(jq -r '.[1] | "\(.pool_start) \(.pool_end) \(.router) \(.dns | join(",")) \(.lease_seconds) \(.relays | join(","))"' <<<"$sub")"
check_eq "subnet list --json keeps the specs as written" "66=@server|150=@server|43=sub:1=text:abc;2=ip:198.18.0.1|42=ip:198.18.0.9|125=sub:enterprise=3561;1=text:ab" \
  "$(jq -r '.[1].options | map(.spec) | join("|")' <<<"$sub")"
check_eq "default lease" "86400" "$(jq '.[0].lease_seconds' <<<"$sub")"
check "subnet list (human) has a header" bash -c "'$BIN/firmfleet' -d '$CTL_DIR' subnet list | head -1 | grep -q '^SITE  *CIDR  *POOL START'"
check_eq "subnet list without --site lists every site" "2" "$(ff subnet list --json | jq length)"
check "agent got the subnets" wait_config
check_eq "agent: subnets in address order" "10.20.0.0/16 198.18.0.0/24" "$(sc '[.subnets[].cidr] | join(" ")')"
check_eq "agent: subnet fields" "198.18.0.100 198.18.0.199 198.18.0.1 198.18.0.2,198.18.0.3 3600 198.18.0.254" \
  "$(sc '.subnets[1] | "\(.pool_start) \(.pool_end) \(.router) \(.dns | join(",")) \(.lease_seconds) \(.relays | join(","))"')"
check_eq "agent: @server fills and the encoded 43, 42 and 125" \
  "66:SERVER_IP_TEXT: 150:SERVER_IP: 43:RAW:01036162630204c6120001 42:RAW:c6120009 125:RAW:00000de90401026162" \
  "$(sc '[.subnets[1].options[] | "\(.code):\(.fill):\(.value)"] | join(" ")')"
check_eq "agent: second subnet defaults" "86400 0" "$(sc '.subnets[0] | "\(.lease_seconds) \(.options | length)"')"

# ---- classes ----
g1=$(gen berlin)
p1=$(gen paris)
check "class add (global, two rules, options, tftp root)" ff class add cisco79 \
  --match 'vendor-prefix:Cisco Systems, Inc. IP Phone' --match oui:00:04:f2 \
  --option 150=@server --option 67=SEP.cnf --tftp-root cisco/79xx
check_eq "a global class bumps berlin" "$((g1 + 1))" "$(gen berlin)"
check_eq "a global class bumps paris too" "$((p1 + 1))" "$(gen paris)"
check "class add (global, priority 5, enterprise)" ff class add polycom --priority 5 \
  --match enterprise:13885 --option 160=text:http://prov.example/polycom
check "class add (berlin's own cisco79: exact match with its NUL)" ff class add cisco79 --site berlin \
  --priority 10 --match 'vendor:Cisco Systems, Inc. IP Phone CP-7940G\0' --option 66=text:tftp.berlin
p2=$(gen paris)
check_eq "a site class leaves other sites alone" "$p2" "$(gen paris)"
check_eq "class list (all): global first, then per site" "cisco79:null polycom:null cisco79:berlin" \
  "$(ff class list --json | jq -r '[.[] | "\(.name):\(.site)"] | join(" ")')"
check_eq "class list --site berlin: what berlin gets, in order" "polycom:null:5 cisco79:berlin:10" \
  "$(ff class list --site berlin --json | jq -r '[.[] | "\(.name):\(.site):\(.priority)"] | join(" ")')"
check_eq "class list --site paris: the globals" "polycom cisco79" \
  "$(ff class list --site paris --json | jq -r '[.[].name] | join(" ")')"
check_eq "class show (global)" "cisco/79xx 100 vendor-prefix,oui" \
  "$(ff class show cisco79 --json | jq -r '"\(.tftp_root) \(.priority) \([.rules[].kind] | join(","))"')"
check_eq "class show --site berlin: the site's own" "berlin true false" \
  "$(ff class show cisco79 --site berlin --json | jq -r '"\(.site) \(.rules[0].value | endswith("4700")) \(.rules[0].ignore_trailing_nul)"')"
check_eq "class show --site paris: falls back to the global one" "null" "$(ff class show cisco79 --site paris --json | jq .site)"
check "class show (human) lists the rules" bash -c "'$BIN/firmfleet' -d '$CTL_DIR' class show cisco79 | grep -qx '  oui:00:04:f2'"
check "agent got the classes" wait_config
check_eq "agent: classes by priority, berlin's cisco79 replacing the global one" "polycom:5: cisco79:10:" \
  "$(sc '[.classes[] | "\(.name):\(.priority):\(.tftp_root)"] | join(" ")')"
check_eq "agent: vendor rule keeps its NUL and is byte-exact" \
  "VENDOR_EXACT $(hex 'Cisco Systems, Inc. IP Phone CP-7940G')00 false" \
  "$(sc '.classes[1].rules[0] | "\(.kind) \(.value) \(.ignore_trailing_nul)"')"
check_eq "agent: enterprise rule" "ENTERPRISE 13885" "$(sc '.classes[0].rules[0] | "\(.kind) \(.enterprise)"')"
check_eq "agent: class options" "66:RAW:$(hex tftp.berlin)" "$(sc '.classes[1].options[] | "\(.code):\(.fill):\(.value)"')"
check "class add --replace (global cisco79, new tftp root)" ff class add cisco79 --replace \
  --match 'vendor-prefix:Cisco Systems, Inc. IP Phone' --match oui:00:04:f2 --tftp-root cisco
check_eq "replaced class" "cisco" "$(ff class show cisco79 --json | jq -r .tftp_root)"
check_eq "global rule without NUL ignores the device's NUL" "true" "$(ff class show cisco79 --json | jq .rules[0].ignore_trailing_nul)"

# ---- templates ----
printf 'device {{mac}} at {{site}}\n' >"$T/global.tmpl"
printf 'berlin {{MAC}}\n' >"$T/berlin.tmpl"
printf '<xml/>\n' >"$T/x.tmpl"
head -c 3000 /dev/urandom >"$T/bin.tmpl"
g2=$(gen berlin)
check "template add (global)" ff template add 'SEP{mac}.cnf.xml' --from "$T/global.tmpl"
check "template add (berlin's own, same name)" ff template add 'SEP{mac}.cnf.xml' --site berlin --from "$T/berlin.tmpl"
check "template add (global, subdirectory name)" ff template add 'cfg/{MAC}.xml' --from "$T/x.tmpl"
check "template add (binary body)" ff template add bin.dat --from "$T/bin.tmpl"
check_eq "four template adds reaching berlin, four bumps" "$((g2 + 4))" "$(gen berlin)"
check_eq "template list --site berlin" "SEP{mac}.cnf.xml:berlin:15 bin.dat:null:3000 cfg/{MAC}.xml:null:7" \
  "$(ff template list --site berlin --json | jq -r '[.[] | "\(.name):\(.site):\(.size)"] | sort | join(" ")')"
check_eq "template list (all)" "4" "$(ff template list --json | jq length)"
check "template show prints the body as it is" cmp <(ff template show 'SEP{mac}.cnf.xml') "$T/global.tmpl"
check "template show --site berlin prints berlin's" cmp <(ff template show 'SEP{mac}.cnf.xml' --site berlin) "$T/berlin.tmpl"
check "template show of a binary body" cmp <(ff template show bin.dat) "$T/bin.tmpl"
check_eq "template show --json: body as a string" "berlin {{MAC}}" \
  "$(ff template show 'SEP{mac}.cnf.xml' --site berlin --json | jq -r .body)"
check_eq "template show --json of a binary body: body_hex" "$(od -An -tx1 -v "$T/bin.tmpl" | tr -d ' \n')" \
  "$(ff template show bin.dat --json | jq -r .body_hex)"
check "agent got the templates" wait_config
check_eq "agent: files by name, berlin's own replacing the global one" \
  "SEP{mac}.cnf.xml:$(hex "$(cat "$T/berlin.tmpl")")0a bin.dat:3000 cfg/{MAC}.xml:$(hex '<xml/>')0a" \
  "$(sc '[.files[] | if .name == "bin.dat" then "\(.name):\(.body | length / 2)" else "\(.name):\(.body)" end] | join(" ")')"

# ---- reservations ----
g3=$(gen berlin)
check "device add --ip --class" ff device add 00:04:f2:aa:00:01 --site berlin --model CP-7940G --ip 198.18.0.50 --class cisco79
check "device add --class only" ff device add 00:04:f2:aa:00:02 --site berlin --class polycom
check "device add --ip in the second subnet" ff device add 00:04:f2:aa:00:03 --site berlin --ip 10.20.3.4
check "device add --ip at a site without subnets (not checked)" ff device add 00:04:f2:aa:00:04 --site paris --ip 192.0.2.7
check_eq "device show --json ip and class" "198.18.0.50 cisco79" "$(ff device show 00:04:f2:aa:00:01 --json | jq -r '"\(.ip) \(.class)"')"
cat >"$T/res.csv" <<'EOF'
mac,site,model,ip,class
00:04:f2:aa:00:10,berlin,CP-7960G,198.18.0.60,cisco79
00:04:f2:aa:00:11,berlin,VVX,,polycom
00:04:f2:aa:00:12,berlin,VVX,198.18.0.150,
EOF
check "device import with ip and class columns" ff device import "$T/res.csv"
check_eq "imported reservation" "198.18.0.60 cisco79" "$(ff device show 00:04:f2:aa:00:10 --json | jq -r '"\(.ip) \(.class)"')"
check "agent got the reservations" wait_config
check_eq "agent: DeviceRef ip and class" \
  "00:04:f2:aa:00:01=198.18.0.50/cisco79 00:04:f2:aa:00:02=/polycom 00:04:f2:aa:00:03=10.20.3.4/ 00:04:f2:aa:00:10=198.18.0.60/cisco79 00:04:f2:aa:00:11=/polycom 00:04:f2:aa:00:12=198.18.0.150/" \
  "$(sc '[.devices[] | "\(.mac)=\(.ip)/\(.class)"] | join(" ")')"
check "agent logged config.stored with the generation" grep -q "msg=config.stored generation=$(gen berlin) " "$T/berlin.log"
check "controller logged the pushes" grep -q 'msg=link.site_config agent=berlin site=berlin' "$T/ctl.log"

# ---- the generation moves only with the content ----
g4=$(gen berlin)
stored=$(grep -c 'msg=config.stored' "$T/berlin.log")
pushes=$(grep -c 'msg=link.site_config agent=berlin' "$T/ctl.log")
agent_kill9 berlin
agent_start berlin
check "restarted agent online" wait_until 30 agent_online berlin
pushed_again() { [ "$(grep -c 'msg=link.site_config agent=berlin' "$T/ctl.log")" -gt "$pushes" ]; }
check "controller pushed the configuration again on Hello" wait_until 20 pushed_again
sleep 1
check_eq "restarted agent stored nothing new (same generation)" "$stored" "$(grep -c 'msg=config.stored' "$T/berlin.log")"
check_eq "reads do not move the generation" "$g4" "$(ff subnet list >/dev/null; ff class list --site berlin >/dev/null; ff template show bin.dat >/dev/null; gen berlin)"

# ---- bad input: one stderr line, non-zero exit, nothing changed ----
audit_before=$(sqlite3 "$CTL_DIR/controller.db" "SELECT count(*) FROM audit")
P="--pool 198.18.9.10-198.18.9.20"
bad_msg 1 "subnet add: unknown site" "unknown site 'nowhere'" ff subnet add nowhere 198.18.9.0/24 $P
bad_msg 1 "subnet add: CIDR with host bits" "the network is 198.18.9.0/24" ff subnet add berlin 198.18.9.5/24 $P
bad 1 "subnet add: prefix /31" ff subnet add berlin 198.18.9.0/31 --pool 198.18.9.0-198.18.9.1
bad 1 "subnet add: prefix /7" ff subnet add berlin 10.0.0.0/7 $P
bad 1 "subnet add: CIDR not an address" ff subnet add berlin berlin/24 $P
bad 1 "subnet add: CIDR without prefix" ff subnet add berlin 198.18.9.0 $P
bad_msg 1 "subnet add: pool outside the CIDR" "not a host address of 198.18.9.0/24" ff subnet add berlin 198.18.9.0/24 --pool 198.18.8.10-198.18.8.20
bad 1 "subnet add: pool with the network address" ff subnet add berlin 198.18.9.0/24 --pool 198.18.9.0-198.18.9.20
bad 1 "subnet add: pool with the broadcast address" ff subnet add berlin 198.18.9.0/24 --pool 198.18.9.10-198.18.9.255
bad_msg 1 "subnet add: pool reversed" "is after pool end" ff subnet add berlin 198.18.9.0/24 --pool 198.18.9.20-198.18.9.10
bad 1 "subnet add: pool not START-END" ff subnet add berlin 198.18.9.0/24 --pool 198.18.9.10
bad 1 "subnet add: pool with a bad address" ff subnet add berlin 198.18.9.0/24 --pool 198.18.9.10-198.18.9.300
bad 1 "subnet add: router outside the CIDR" ff subnet add berlin 198.18.9.0/24 $P --router 198.18.8.1
bad_msg 1 "subnet add: router inside the pool" "inside the pool" ff subnet add berlin 198.18.9.0/24 $P --router 198.18.9.15
bad 1 "subnet add: bad dns" ff subnet add berlin 198.18.9.0/24 $P --dns 198.18.9.2,nope
bad 1 "subnet add: too many dns" ff subnet add berlin 198.18.9.0/24 $P --dns 1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9
bad 1 "subnet add: lease too short" ff subnet add berlin 198.18.9.0/24 $P --lease 10
bad 1 "subnet add: lease not a number" ff subnet add berlin 198.18.9.0/24 $P --lease 1h
bad 1 "subnet add: bad relay" ff subnet add berlin 198.18.9.0/24 $P --relay 198.18.9
bad_msg 1 "subnet add: overlapping subnet" "overlaps subnet 198.18.0.0/24" ff subnet add berlin 198.18.0.128/25 --pool 198.18.0.130-198.18.0.140
bad_msg 1 "subnet add: same subnet again" "already exists" ff subnet add berlin 198.18.0.0/24 --pool 198.18.0.100-198.18.0.199
bad_msg 1 "subnet add: relay already in use" "relay 198.18.0.254 already selects subnet 198.18.0.0/24" \
  ff subnet add berlin 198.18.9.0/24 $P --relay 198.18.0.254
bad_msg 1 "subnet add: option the server sets" "option 53" ff subnet add berlin 198.18.9.0/24 $P --option 53=u8:1
bad_msg 1 "subnet add: option 3 instead of --router" "--router" ff subnet add berlin 198.18.9.0/24 $P --option 3=198.18.9.1
bad_msg 1 "subnet add: option without a type" "needs a TYPE" ff subnet add berlin 198.18.9.0/24 $P --option 200=abc
bad_msg 1 "subnet add: an option twice" "given twice" ff subnet add berlin 198.18.9.0/24 $P --option 66=a --option 66=b
bad 1 "subnet add: bad hex" ff subnet add berlin 198.18.9.0/24 $P --option 43=hex:0g
bad_msg 1 "subnet add: value over 255 bytes" "longer than 255" ff subnet add berlin 198.18.9.0/24 $P --option "66=$(printf 'a%.0s' $(seq 256))"
bad 2 "subnet add: missing --pool" ff subnet add berlin 198.18.9.0/24
bad 2 "subnet add: missing CIDR" ff subnet add berlin $P
bad 2 "subnet add: --router twice" ff subnet add berlin 198.18.9.0/24 $P --router 198.18.9.1 --router 198.18.9.2
bad 2 "subnet add: unknown option" ff subnet add berlin 198.18.9.0/24 $P --gateway 198.18.9.1
bad 1 "subnet list: unknown site" ff subnet list --site nowhere
bad_msg 1 "subnet remove: unknown subnet" "unknown subnet 198.18.9.0/24" ff subnet remove berlin 198.18.9.0/24
bad 1 "subnet remove: unknown site" ff subnet remove nowhere 198.18.0.0/24
bad 1 "subnet remove: bad CIDR" ff subnet remove berlin 198.18.0.1/24
bad_msg 1 "subnet remove: it holds a reservation" "of device 00:04:f2:aa:00:01" ff subnet remove berlin 198.18.0.0/24

M="--match vendor:x"
bad_msg 1 "class add: bad name" "invalid class name" ff class add Cisco $M
bad 1 "class add: bad name (slash)" ff class add a/b $M
bad_msg 1 "class add: unknown rule kind" "invalid match rule 'model:x'" ff class add c1 --match model:x
bad_msg 1 "class add: bad escape" "bad escape" ff class add c1 --match 'vendor:a\q'
bad 1 "class add: empty vendor" ff class add c1 --match vendor:
bad 1 "class add: bad OUI" ff class add c1 --match oui:00:04
bad 1 "class add: bad enterprise" ff class add c1 --match enterprise:0
bad 1 "class add: bad priority" ff class add c1 $M --priority -1
bad 1 "class add: priority too large" ff class add c1 $M --priority 2000000
bad 1 "class add: priority not a number" ff class add c1 $M --priority high
bad_msg 1 "class add: tftp root with .." "invalid TFTP root" ff class add c1 $M --tftp-root ../etc
bad 1 "class add: absolute tftp root" ff class add c1 $M --tftp-root /srv/tftp
bad 1 "class add: tftp root with //" ff class add c1 $M --tftp-root a//b
bad 1 "class add: bad option" ff class add c1 $M --option 82=hex:01
bad 1 "class add: option 0" ff class add c1 $M --option 0=hex:01
bad_msg 1 "class add: duplicate global class" "class polycom already exists (global)" ff class add polycom $M
bad_msg 1 "class add: duplicate site class" "already exists (at site berlin)" ff class add cisco79 --site berlin $M
bad 1 "class add: unknown site" ff class add c1 --site nowhere $M
many=(); for i in $(seq 33); do many+=(--match "vendor:v$i"); done
bad 1 "class add: 33 rules" ff class add c1 "${many[@]}"
bad 2 "class add: no --match" ff class add c1 --option 66=x
bad 2 "class add: --priority twice" ff class add c1 $M --priority 1 --priority 2
bad 2 "class add: --replace with a value" ff class add c1 $M --replace=yes
bad_msg 1 "class show: unknown" "unknown class 'nope' (global)" ff class show nope
bad 1 "class show: unknown site" ff class show cisco79 --site nowhere
bad 1 "class list: unknown site" ff class list --site nowhere
bad_msg 1 "class remove: unknown" "unknown class 'polycom' (at site berlin)" ff class remove polycom --site berlin
bad_msg 1 "class remove: pinned by a device" "pinned by device 00:04:f2:aa:00:02" ff class remove polycom

printf 'x' >"$T/small.tmpl"
head -c $((1024 * 1024 + 1)) /dev/zero >"$T/big.tmpl"
bad 1 "template add: missing file" ff template add a.cfg --from "$T/nope"
bad_msg 1 "template add: directory" "not a regular file" ff template add a.cfg --from "$T"
bad_msg 1 "template add: body over 1 MiB" "too large" ff template add a.cfg --from "$T/big.tmpl"
for name in ../etc/passwd /abs.cfg 'a\b.cfg' '{mac' 'SEP{Mac}.cnf' 'a//b' ' lead' 'trail ' "$(printf 'tab\there')" \
  "$(printf 'x%.0s' $(seq 256))"; do
  bad 1 "template add: bad name '${name:0:40}'" ff template add "$name" --from "$T/small.tmpl"
done
bad_msg 1 "template add: duplicate" "template bin.dat already exists (global)" ff template add bin.dat --from "$T/small.tmpl"
bad 1 "template add: unknown site" ff template add a.cfg --site nowhere --from "$T/small.tmpl"
bad 2 "template add: no --from" ff template add a.cfg
bad 2 "template add: unknown option" ff template add a.cfg --from "$T/small.tmpl" --option 66=x
bad_msg 1 "template show: unknown" "unknown template 'nope.cfg' (global)" ff template show nope.cfg
bad 1 "template remove: unknown in that scope" ff template remove bin.dat --site berlin

bad 1 "device add: bad ip" ff device add 00:04:f2:aa:00:20 --site berlin --ip 198.18.0
bad_msg 1 "device add: ip outside every subnet" "not inside any subnet of site berlin" ff device add 00:04:f2:aa:00:20 --site berlin --ip 192.0.2.1
bad_msg 1 "device add: ip already reserved" "already reserved for device 00:04:f2:aa:00:01" ff device add 00:04:f2:aa:00:20 --site berlin --ip 198.18.0.50
bad_msg 1 "device add: network address" "network address" ff device add 00:04:f2:aa:00:20 --site berlin --ip 198.18.0.0
bad_msg 1 "device add: the router's address" "router" ff device add 00:04:f2:aa:00:20 --site berlin --ip 198.18.0.1
bad_msg 1 "device add: unknown class" "unknown class 'nope'" ff device add 00:04:f2:aa:00:20 --site berlin --class nope
bad 1 "device add: paris has no class 'x'" ff device add 00:04:f2:aa:00:20 --site paris --class x
printf 'mac,site,ip\n00:04:f2:aa:00:21,berlin,198.18.0.70\n00:04:f2:aa:00:22,berlin,198.18.0\n' >"$T/bad1.csv"
bad_msg 1 "CSV with a bad ip (found locally)" "bad1.csv: line 3: invalid IP address" ff device import "$T/bad1.csv"
printf 'mac,site,ip\n00:04:f2:aa:00:21,berlin,198.18.0.70\n00:04:f2:aa:00:22,berlin,198.18.0.70\n' >"$T/bad2.csv"
bad_msg 1 "CSV with one ip twice" "bad2.csv: line 3: ip 198.18.0.70 is already reserved" ff device import "$T/bad2.csv"
printf 'mac,site,class\n00:04:f2:aa:00:21,berlin,polycom\n00:04:f2:aa:00:22,berlin,nope\n' >"$T/bad3.csv"
bad_msg 1 "CSV with an unknown class" "bad3.csv: line 3: unknown class 'nope'" ff device import "$T/bad3.csv"
check_eq "failed commands wrote no audit rows" "$audit_before" "$(sqlite3 "$CTL_DIR/controller.db" "SELECT count(*) FROM audit")"
check_eq "failed commands did not move the generation" "$g4" "$(gen berlin)"

# ---- template size per site ----
head -c $((1024 * 1024)) /dev/urandom >"$T/m1.tmpl"
head -c $((1024 * 1024 - 3000 - 7 - 15)) /dev/urandom >"$T/m2.tmpl"
check "template add (1 MiB, global)" ff template add m1.bin --from "$T/m1.tmpl"
check "template add (berlin now at exactly 2 MiB)" ff template add m2.bin --site berlin --from "$T/m2.tmpl"
bad_msg 1 "template add past 2 MiB for berlin" "templates of site berlin would total" \
  ff template add one-more.cfg --from "$T/small.tmpl"
check "agent got a 2 MiB configuration" wait_config
check_eq "agent: the big templates arrived whole" "$((1024 * 1024)) $((1024 * 1024 - 3022))" \
  "$(sc '[.files[] | select(.name | endswith(".bin")) | .body | length / 2] | join(" ")')"
check "template remove (site)" ff template remove m2.bin --site berlin
check "template remove (global)" ff template remove m1.bin

# ---- removals ----
g5=$(gen berlin)
check "template remove berlin's own" ff template remove 'SEP{mac}.cnf.xml' --site berlin
check "class remove berlin's own (devices fall back to the global one)" ff class remove cisco79 --site berlin
check "subnet add 172.16.0.0/24" ff subnet add berlin 172.16.0.0/24 --pool 172.16.0.10-172.16.0.20
check_eq "subnet remove --json gives the subnet as it was" "172.16.0.10" \
  "$(ff subnet remove berlin 172.16.0.0/24 --json | jq -r .pool_start)"
check_eq "four changes, four bumps" "$((g5 + 4))" "$(gen berlin)"
check "agent got the removals" wait_config
check_eq "agent: the global template is back" "$(hex "$(cat "$T/global.tmpl")")0a" \
  "$(sc '.files[] | select(.name == "SEP{mac}.cnf.xml") | .body')"
check_eq "agent: the global cisco79 is back" "cisco79:100:cisco" \
  "$(sc '.classes[] | select(.name == "cisco79") | "\(.name):\(.priority):\(.tftp_root)"')"
check_eq "agent: the two subnets left" "10.20.0.0/16 198.18.0.0/24" "$(sc '[.subnets[].cidr] | join(" ")')"
check_eq "audit records the service changes" "class.add class.remove class.replace subnet.add subnet.remove template.add template.remove" \
  "$(sqlite3 "$CTL_DIR/controller.db" "SELECT DISTINCT action FROM audit WHERE action LIKE 'subnet.%' OR action LIKE 'class.%' OR action LIKE 'template.%' ORDER BY action" | tr '\n' ' ' | sed 's/ $//')"

finish
