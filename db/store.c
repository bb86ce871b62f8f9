/* store.c: opening the controller store, and its schema as numbered migrations.
 *
 * Invariants:
 *   - migrations only ever append; migration i moves user_version i -> i+1;
 *   - MACs are stored canonical (lowercase aa:bb:cc:dd:ee:ff), SHA-256 as
 *     64 lowercase hex characters, times as ms since the epoch;
 *   - event(agent_id, seq) is unique: the link dedupes on it, and an agent's
 *     last_in_seq is the highest seq committed contiguously from 1; events
 *     the controller writes itself (rollout steps) have agent_id NULL, seq 0;
 *   - outbox holds controller->agent journaled messages until the agent acks;
 *   - backup rows name their content in backup_blob by SHA-256; a blob
 *     exists exactly while some backup row names it (db/store_backup.c);
 *   - site.generation grows in the same transaction as every change to what
 *     the site's agents get (SiteConfig.generation is this number); a global
 *     class or template change bumps every site;
 *   - firmware_file.signature/signer are stored as the operator's CLI sent
 *     them (checked for form, never made here); trusted_key is exactly the
 *     set of --trust-key keys of the last firmfleetd start.
 */
#include "store.h"

#include <stdlib.h>

#include "store_int.h"

static const char *const s_migrations[] = {
    /* 1: the foundation */
    "CREATE TABLE site("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  tz TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL DEFAULT 1);"
    "CREATE TABLE agent("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  site_id INTEGER NOT NULL REFERENCES site(id),"
    "  pubkey TEXT NOT NULL UNIQUE," /* Z85, 40 chars */
    "  created_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER,"
    "  last_seen_ms INTEGER,"
    "  version TEXT NOT NULL DEFAULT '',"
    "  last_in_seq INTEGER NOT NULL DEFAULT 0,"    /* highest agent seq committed */
    "  last_out_seq INTEGER NOT NULL DEFAULT 0,"   /* highest seq written to outbox */
    "  peer_acked_seq INTEGER NOT NULL DEFAULT 0," /* highest outbox seq the agent acked */
    "  cached TEXT NOT NULL DEFAULT '');"          /* space-separated sha256 hex the agent holds */
    "CREATE TABLE device("
    "  id INTEGER PRIMARY KEY,"
    "  mac TEXT NOT NULL UNIQUE,"
    "  site_id INTEGER NOT NULL REFERENCES site(id),"
    "  model TEXT NOT NULL DEFAULT '',"
    "  serial TEXT NOT NULL DEFAULT '',"
    "  tags TEXT NOT NULL DEFAULT '',"
    "  vendor_class TEXT NOT NULL DEFAULT '',"
    "  current_version TEXT NOT NULL DEFAULT '',"
    "  origin TEXT NOT NULL DEFAULT 'operator'," /* operator | import | discovered */
    "  created_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER);"
    "CREATE INDEX device_site ON device(site_id);"
    "CREATE TABLE blob("
    "  sha256 TEXT PRIMARY KEY,"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE firmware("
    "  id INTEGER PRIMARY KEY,"
    "  vendor TEXT NOT NULL,"
    "  version TEXT NOT NULL,"
    "  description TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE(vendor, version));"
    "CREATE TABLE firmware_model("
    "  firmware_id INTEGER NOT NULL REFERENCES firmware(id) ON DELETE CASCADE,"
    "  model TEXT NOT NULL,"
    "  PRIMARY KEY(firmware_id, model));"
    "CREATE TABLE firmware_file("
    "  firmware_id INTEGER NOT NULL REFERENCES firmware(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL REFERENCES blob(sha256),"
    "  PRIMARY KEY(firmware_id, name));"
    "CREATE TABLE event("
    "  id INTEGER PRIMARY KEY,"
    "  agent_id INTEGER NOT NULL REFERENCES agent(id),"
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  received_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  mac TEXT NOT NULL DEFAULT '',"
    "  detail TEXT NOT NULL DEFAULT '',"
    "  UNIQUE(agent_id, seq));"
    "CREATE TABLE outbox("
    "  agent_id INTEGER NOT NULL REFERENCES agent(id),"
    "  seq INTEGER NOT NULL,"
    "  payload BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(agent_id, seq));"
    "CREATE TABLE audit("
    "  id INTEGER PRIMARY KEY,"
    "  time_ms INTEGER NOT NULL,"
    "  user TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');",
    /* 2: site services: DHCP subnets, device classes, file templates and
     * reservations. Option lists and match rules are kept twice on purpose:
     * encoded (dhcpopt_pack records, exactly what agents get, so a newer
     * encoder never changes a stored configuration behind the generation's
     * back) and as the operator wrote them (one spec per line, for display).
     * site_id NULL = global; coalesce(site_id, 0) makes names unique per
     * scope (site ids start at 1). */
    "CREATE TABLE subnet("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER NOT NULL REFERENCES site(id),"
    "  cidr TEXT NOT NULL,"   /* canonical a.b.c.d/p */
    "  net INTEGER NOT NULL," /* network address, host order */
    "  prefix INTEGER NOT NULL,"
    "  pool_start TEXT NOT NULL,"
    "  pool_end TEXT NOT NULL,"
    "  router TEXT NOT NULL DEFAULT '',"
    "  dns TEXT NOT NULL DEFAULT ''," /* comma list */
    "  lease_seconds INTEGER NOT NULL,"
    "  relays TEXT NOT NULL DEFAULT ''," /* comma list of giaddr values */
    "  options BLOB NOT NULL DEFAULT x'',"
    "  option_specs TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE(site_id, cidr));"
    "CREATE TABLE device_class("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER REFERENCES site(id),"
    "  name TEXT NOT NULL,"
    "  priority INTEGER NOT NULL,"
    "  tftp_root TEXT NOT NULL DEFAULT '',"
    "  rules BLOB NOT NULL," /* dhcpopt_rule_pack records */
    "  rule_specs TEXT NOT NULL,"
    "  options BLOB NOT NULL DEFAULT x'',"
    "  option_specs TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX device_class_scope_name ON device_class(coalesce(site_id, 0), name);"
    "CREATE TABLE file_template("
    "  id INTEGER PRIMARY KEY,"
    "  site_id INTEGER REFERENCES site(id),"
    "  name TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX file_template_scope_name ON file_template(coalesce(site_id, 0), name);"
    "ALTER TABLE device ADD COLUMN ip TEXT NOT NULL DEFAULT '';"    /* reservation */
    "ALTER TABLE device ADD COLUMN class TEXT NOT NULL DEFAULT '';" /* pinned class */
    "CREATE UNIQUE INDEX device_site_ip ON device(site_id, ip) WHERE ip <> '';"
    /* Until now SiteConfig.generation was the controller's clock (ms) at
     * send time, and agents keep a configuration only when its generation
     * is newer than the one they hold: move existing sites past any such
     * value, so agents of an upgraded controller take its next push. */
    "UPDATE site SET generation = max(generation,"
    " (CAST(strftime('%s', 'now') AS INTEGER) + 1) * 1000);",
    /* 3: rollouts. Vendor profiles (their JSON text, as loaded or added);
     * rollouts and the state of each of their devices; what the controller
     * knows a device runs and holds (device.current_version is the running
     * version, from migration 1); maintenance calendars on sites and classes.
     * The event table is rebuilt so that the controller can record its own
     * steps (agent_id NULL, seq 0, site_id set); agent events keep their
     * (agent_id, seq) uniqueness, NULLs being distinct. */
    "CREATE TABLE profiles("
    "  name TEXT PRIMARY KEY,"
    "  json TEXT NOT NULL,"
    "  source TEXT NOT NULL," /* builtin | operator */
    "  description TEXT NOT NULL DEFAULT '',"
    "  priority INTEGER NOT NULL DEFAULT 100,"
    "  added_at INTEGER NOT NULL);"
    "CREATE TABLE rollouts("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  firmware_id INTEGER NOT NULL REFERENCES firmware(id),"
    "  profile TEXT NOT NULL,"
    "  selector TEXT NOT NULL,"       /* {"sites":[],"models":[],"tags":[],"devices":[]} */
    "  waves TEXT NOT NULL,"          /* spec as written, e.g. "canary,10%,100%" */
    "  max_failures TEXT NOT NULL,"   /* N or N% */
    "  site_concurrency INTEGER NOT NULL DEFAULT 0,"
    "  window TEXT NOT NULL DEFAULT '',"
    "  boot_grace_s INTEGER NOT NULL DEFAULT 0,"
    "  stage_fresh INTEGER NOT NULL DEFAULT 0,"
    "  spread_s INTEGER NOT NULL DEFAULT 0,"
    "  verify_s INTEGER NOT NULL DEFAULT 1800,"
    "  timeouts TEXT NOT NULL DEFAULT '{}'," /* {"STATE": seconds} overrides */
    "  start_at INTEGER,"
    "  state TEXT NOT NULL DEFAULT 'created',"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  current_wave INTEGER NOT NULL DEFAULT 0,"
    "  n_waves INTEGER NOT NULL DEFAULT 1,"
    "  device_watermark INTEGER NOT NULL DEFAULT 0," /* devices up to this id were considered */
    "  created_by TEXT NOT NULL DEFAULT '',"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER,"
    "  finished_at INTEGER);"
    "CREATE TABLE rollout_devices("
    "  rollout_id INTEGER NOT NULL REFERENCES rollouts(id),"
    "  device_id INTEGER NOT NULL REFERENCES device(id),"
    "  mac TEXT NOT NULL,"
    "  site_id INTEGER NOT NULL REFERENCES site(id),"
    "  model TEXT NOT NULL DEFAULT '',"
    "  wave INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  entered_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY(rollout_id, device_id));"
    "CREATE INDEX rollout_devices_device ON rollout_devices(device_id);"
    "CREATE INDEX rollout_devices_state ON rollout_devices(rollout_id, state, wave);"
    "CREATE INDEX rollout_devices_mac ON rollout_devices(mac);"
    "ALTER TABLE device ADD COLUMN serial_config TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE device ADD COLUMN serial_firmware TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE device ADD COLUMN serial_boot TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE device ADD COLUMN profile TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE site ADD COLUMN window TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE device_class ADD COLUMN window TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE event_v3("
    "  id INTEGER PRIMARY KEY,"
    "  agent_id INTEGER REFERENCES agent(id)," /* NULL: written by the controller */
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  received_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  mac TEXT NOT NULL DEFAULT '',"
    "  detail TEXT NOT NULL DEFAULT '',"
    "  site_id INTEGER REFERENCES site(id),"   /* the controller's events */
    "  UNIQUE(agent_id, seq));"
    "INSERT INTO event_v3(id, agent_id, seq, time_ms, received_ms, kind, mac, detail)"
    " SELECT id, agent_id, seq, time_ms, received_ms, kind, mac, detail FROM event;"
    "DROP TABLE event;"
    "ALTER TABLE event_v3 RENAME TO event;"
    "CREATE INDEX event_kind ON event(kind);",
    /* 4: device configuration backups (db/store_backup.c). The bytes live in
     * the database, not in files under DATADIR: a backup, its agent seq
     * (event row, last_in_seq) and the pruning of old versions then commit
     * as one transaction, so kill -9 at any instant leaves it stored exactly
     * once with nothing to reconcile; files would need write, fsync, rename
     * before the commit and a sweep for orphans after a crash between them.
     * Backups are small (at most 2 MiB, typically a few KiB), where SQLite
     * blobs cost no more than files. Content is stored once per SHA-256. */
    "CREATE TABLE backup_blob("
    "  sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),"
    "  size INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE backup("
    "  id INTEGER PRIMARY KEY,"
    "  mac TEXT NOT NULL CHECK (length(mac) = 17),"
    "  site_id INTEGER NOT NULL REFERENCES site(id),"
    "  agent_id INTEGER NOT NULL REFERENCES agent(id),"
    "  name TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL REFERENCES backup_blob(sha256),"
    "  size INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"     /* agent clock of the upload */
    "  received_ms INTEGER NOT NULL," /* controller clock, first stored */
    "  last_ms INTEGER NOT NULL,"     /* the latest identical upload */
    "  uploads INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX backup_mac_name ON backup(mac, name, id);"
    "CREATE INDEX backup_site ON backup(site_id, id);"
    "CREATE INDEX backup_sha ON backup(sha256);",
    /* 5: operator signatures on firmware files (lib/sign.h), made on the
     * operator's machine and only stored here: the controller never holds
     * a secret signing key. Hex text like sha256; '' = unsigned. The public
     * keys firmfleetd was started with (--trust-key) are mirrored into
     * trusted_key so that SiteConfig can carry them and a change of the set
     * bumps every site's generation (store_trusted_keys_set). */
    "ALTER TABLE firmware_file ADD COLUMN signature TEXT NOT NULL DEFAULT ''"
    "  CHECK (signature = '' OR length(signature) = 128);"
    "ALTER TABLE firmware_file ADD COLUMN signer TEXT NOT NULL DEFAULT ''"
    "  CHECK (signer = '' OR length(signer) = 64);"
    "CREATE TABLE trusted_key("
    "  key TEXT PRIMARY KEY CHECK (length(key) = 64),"
    "  added_ms INTEGER NOT NULL);",
    /* 6: indexes the 1,000-site benchmark (tests/bench/fleet.sh) showed
     * missing: an agent event finds its device's row by (rollout, mac)
     * instead of scanning the rollout; the timeout sweep reads only the
     * rows of one state entered before a deadline; a site's SiteConfig
     * finds its rollouts without scanning every device row. */
    "CREATE INDEX rollout_devices_rmac ON rollout_devices(rollout_id, mac);"
    "CREATE INDEX rollout_devices_timed ON rollout_devices(rollout_id, state, entered_at);"
    "CREATE INDEX rollout_devices_site ON rollout_devices(site_id, rollout_id);",
    /* 7: a site's agents by site: the rollout engine looks them up once
     * per site per turn, `rollout status` once per site of the rollout, and
     * the assignable filter once per waiting device; without it each is a
     * scan of every agent (1,000 at the benchmark's scale). */
    "CREATE INDEX agent_site ON agent(site_id);"
    /* the engine's queue of one state, in its order (wave, site, mac):
     * a turn reads its 250 devices and stops, instead of sorting every
     * pending row of the rollout; also covers `rollout status` counts */
    "CREATE INDEX rollout_devices_queue ON rollout_devices(rollout_id, state, wave, site_id, mac);",
    /* 8: single-use, expiring enrollment and signed profiles. An agent row
     * whose enroll_expires_ms is set and enroll_used_ms NULL holds an
     * enrollment key in pubkey: ZAP admits it until it expires, once; the
     * agent then registers its own key (pubkey), the enrollment key moves
     * to enroll_key and is never admitted again (a reuse is refused and
     * audited, at most once a minute per agent: enroll_refused_ms). Rows
     * from before this migration keep their long-term key (both NULL).
     * Profiles carry the operator's Ed25519 signature over their JSON text
     * (lib/sign.h), hex like firmware_file.signature; '' = unsigned. */
    "ALTER TABLE agent ADD COLUMN enroll_expires_ms INTEGER;"
    "ALTER TABLE agent ADD COLUMN enroll_used_ms INTEGER;"
    "ALTER TABLE agent ADD COLUMN enroll_key TEXT;"
    "ALTER TABLE agent ADD COLUMN enroll_refused_ms INTEGER;"
    "CREATE UNIQUE INDEX agent_enroll_key ON agent(enroll_key);"
    "ALTER TABLE profiles ADD COLUMN signature TEXT NOT NULL DEFAULT ''"
    "  CHECK (signature = '' OR length(signature) = 128);"
    "ALTER TABLE profiles ADD COLUMN signer TEXT NOT NULL DEFAULT ''"
    "  CHECK (signer = '' OR length(signer) = 64);",
    /* 9: rollout_devices_state (rollout_id, state, wave) is a prefix of
     * rollout_devices_queue (7), which serves every query it served; each
     * device state change updated both (and the timed index). Depends on
     * nothing of 8. */
    "DROP INDEX IF EXISTS rollout_devices_state;",
};

int store_open(const char *path, store_t **out)
{
    *out = NULL;
    store_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -12;
    int rc = sql_open(path, s_migrations, (int)(sizeof s_migrations / sizeof s_migrations[0]),
                      &st->db);
    if (rc == 0 && (rc = sql_cache_new(st->db, &st->cache)) < 0)
        sql_close(&st->db);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void store_destroy(store_t **st_p)
{
    if (st_p == NULL || *st_p == NULL)
        return;
    sql_cache_destroy(&(*st_p)->cache);
    sql_close(&(*st_p)->db);
    free(*st_p);
    *st_p = NULL;
}

int store_begin(store_t *st) { return sql_begin(st->db); }
int store_commit(store_t *st) { return sql_commit(st->db); }
int store_rollback(store_t *st) { return sql_rollback(st->db); }
int store_schema_version(store_t *st) { return sql_user_version(st->db); }
