/* journal.c: see journal.h.
 *
 * Schema (PRAGMA user_version):
 *   1: outbox(seq PK, payload, created_ms), meta(key PK, value),
 *      assignments(mac PK, rollout_id, payload, updated_ms)
 *   2: images(sha256 PK, size, name, state, verified_offset, bytes_received)
 *   3: dhcp_lease(ip PK, mac, state, expires, granted, class, updated_ms, addr),
 *      dhcp_seen(mac PK, first_ms): the DHCP server's leases and the MACs it
 *      reported as discovered (queries in db/lease.c)
 *   4: prov_device(mac PK, profile, stage, version, model, installed, boot_at,
 *      rollout_id, state, reason, state_at, done_firmware, updated): what the
 *      agent's provisioning (siteagent/provision.c) knows of each device and
 *      where its upgrade stands; written in the turn's transaction together
 *      with the upgrade.* event of the same transition
 *   5: outbox.body: which Envelope body a row's payload is (its field number:
 *      16 DeviceEvent, 19 BackupUpload); rows written before it are events.
 *      Rejected: packing whole Envelopes into the outbox, which would make
 *      rows journaled by an older agent unreadable after an upgrade
 * Sequence invariants (checked by the unit tests): acked <= last_seq; the
 * outbox holds exactly the rows acked < seq <= last_seq; seq values are never
 * reused because INSERT names the seq explicitly from meta.last_seq rather
 * than relying on rowid allocation (which would reuse max(rowid)+1 after the
 * tail was acked and deleted).
 *
 * Statements are prepared once and cached; every one is reset after use so
 * no read cursor stays open across a commit.
 */
#include "journal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sql.h"

static const char *const s_migrations[] = {
    /* 1 */
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
    "CREATE TABLE assignments (mac TEXT PRIMARY KEY, rollout_id INTEGER NOT NULL,"
    "  payload BLOB NOT NULL, updated_ms INTEGER NOT NULL);",
    /* 2 */
    "CREATE TABLE images (sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),"
    "  size INTEGER NOT NULL, name TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('partial','cached','corrupt')),"
    "  verified_offset INTEGER NOT NULL DEFAULT 0,"
    "  bytes_received INTEGER NOT NULL DEFAULT 0);",
    /* 3 */
    "CREATE TABLE dhcp_lease (ip INTEGER PRIMARY KEY CHECK (ip BETWEEN 1 AND 4294967295),"
    "  mac TEXT NOT NULL CHECK (length(mac) = 17),"
    "  state TEXT NOT NULL CHECK (state IN ('bound','released','declined')),"
    "  expires INTEGER NOT NULL, granted INTEGER NOT NULL,"
    "  class TEXT NOT NULL DEFAULT '', updated_ms INTEGER NOT NULL,"
    "  addr TEXT GENERATED ALWAYS AS ((ip >> 24) || '.' || ((ip >> 16) & 255) || '.' ||"
    "    ((ip >> 8) & 255) || '.' || (ip & 255)) VIRTUAL);"
    "CREATE INDEX dhcp_lease_mac ON dhcp_lease(mac);"
    "CREATE TABLE dhcp_seen (mac TEXT PRIMARY KEY CHECK (length(mac) = 17),"
    "  first_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 4 */
    "CREATE TABLE prov_device (mac TEXT PRIMARY KEY CHECK (length(mac) = 17),"
    "  profile TEXT NOT NULL DEFAULT '', stage TEXT NOT NULL DEFAULT '',"
    "  version TEXT NOT NULL DEFAULT '', model TEXT NOT NULL DEFAULT '',"
    "  installed TEXT NOT NULL DEFAULT '', boot_at INTEGER NOT NULL DEFAULT 0,"
    "  rollout_id INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT '',"
    "  reason TEXT NOT NULL DEFAULT '', state_at INTEGER NOT NULL DEFAULT 0,"
    "  done_firmware TEXT NOT NULL DEFAULT '', updated INTEGER NOT NULL DEFAULT 0)"
    "  WITHOUT ROWID;",
    /* 5 */
    "ALTER TABLE outbox ADD COLUMN body INTEGER NOT NULL DEFAULT 16;",
};
#define N_MIGRATIONS ((int)(sizeof s_migrations / sizeof s_migrations[0]))

enum {
    ST_META_GET,
    ST_META_SET,
    ST_OUT_INSERT,
    ST_OUT_DELETE,
    ST_OUT_ITER,
    ST_OUT_REBASE,
    ST_ASG_GET,
    ST_ASG_PUT,
    ST_ASG_DEL,
    ST_ASG_DEL_ANY,
    ST_ASG_COUNT,
    ST_IMG_GET,
    ST_IMG_PUT,
    ST_IMG_DEL,
    ST_IMG_EACH,
    ST_ASG_EACH,
    ST_DEV_PUT,
    ST_DEV_EACH,
    ST_DEV_DEL,
    ST__N
};

static const char *const s_sql[ST__N] = {
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_OUT_INSERT] = "INSERT INTO outbox(seq, payload, created_ms, body) VALUES (?1, ?2, ?3, ?4)",
    [ST_OUT_DELETE] = "DELETE FROM outbox WHERE seq <= ?1",
    [ST_OUT_ITER] = "SELECT seq, payload, body FROM outbox WHERE seq >= ?1 AND seq <= ?2"
                    " ORDER BY seq LIMIT ?3",
    [ST_OUT_REBASE] = "UPDATE outbox SET seq = seq - ?1 + ?2",
    [ST_ASG_GET] = "SELECT payload FROM assignments WHERE mac = ?1",
    [ST_ASG_PUT] = "INSERT INTO assignments(mac, rollout_id, payload, updated_ms)"
                   " VALUES (?1, ?2, ?3, strftime('%s','now') * 1000)"
                   " ON CONFLICT(mac) DO UPDATE SET rollout_id = excluded.rollout_id,"
                   " payload = excluded.payload, updated_ms = excluded.updated_ms",
    [ST_ASG_DEL] = "DELETE FROM assignments WHERE mac = ?1 AND rollout_id = ?2",
    [ST_ASG_DEL_ANY] = "DELETE FROM assignments WHERE mac = ?1",
    [ST_ASG_COUNT] = "SELECT count(*) FROM assignments",
    [ST_IMG_GET] = "SELECT sha256, size, name, state, verified_offset, bytes_received"
                   " FROM images WHERE sha256 = ?1",
    [ST_IMG_PUT] = "INSERT INTO images(sha256, size, name, state, verified_offset,"
                   " bytes_received) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                   " ON CONFLICT(sha256) DO UPDATE SET size = excluded.size,"
                   " name = excluded.name, state = excluded.state,"
                   " verified_offset = excluded.verified_offset,"
                   " bytes_received = excluded.bytes_received",
    [ST_IMG_DEL] = "DELETE FROM images WHERE sha256 = ?1",
    [ST_IMG_EACH] = "SELECT sha256, size, name, state, verified_offset, bytes_received"
                    " FROM images ORDER BY sha256",
    [ST_ASG_EACH] = "SELECT mac, payload FROM assignments ORDER BY mac",
    [ST_DEV_PUT] = "INSERT INTO prov_device(mac, profile, stage, version, model, installed,"
                   " boot_at, rollout_id, state, reason, state_at, done_firmware, updated)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                   " ON CONFLICT(mac) DO UPDATE SET profile = excluded.profile,"
                   " stage = excluded.stage, version = excluded.version,"
                   " model = excluded.model, installed = excluded.installed,"
                   " boot_at = excluded.boot_at, rollout_id = excluded.rollout_id,"
                   " state = excluded.state, reason = excluded.reason,"
                   " state_at = excluded.state_at, done_firmware = excluded.done_firmware,"
                   " updated = excluded.updated",
    [ST_DEV_EACH] = "SELECT mac, profile, stage, version, model, installed, boot_at,"
                    " rollout_id, state, reason, state_at, done_firmware, updated"
                    " FROM prov_device ORDER BY mac",
    [ST_DEV_DEL] = "DELETE FROM prov_device WHERE mac = ?1",
};

struct seqstate {
    uint64_t last_seq;
    uint64_t acked;
    uint64_t last_applied;
};

struct journal {
    sqlite3 *db;
    sqlite3_stmt *st[ST__N];
    int in_tx;
    struct seqstate work;      /* including this transaction's writes */
    struct seqstate committed; /* as on disk */
};

static const char *const s_state_names[] = {"partial", "cached", "corrupt"};

const char *const *journal_migrations(int *n_out)
{
    *n_out = N_MIGRATIONS;
    return s_migrations;
}

static sqlite3_stmt *s_stmt(journal_t *j, int which)
{
    if (j->st[which] == NULL)
        j->st[which] = sql_prepare(j->db, s_sql[which]);
    return j->st[which];
}

static int s_step_done(journal_t *j, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        char q[256];
        log_error("journal.error", "error=%s", log_quote(sqlite3_errmsg(j->db), q, sizeof q));
        return -EIO;
    }
    return 0;
}

static int s_meta_get(journal_t *j, const char *key, uint64_t *out)
{
    sqlite3_stmt *st = s_stmt(j, ST_META_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *out = 0;
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

static int s_meta_set(journal_t *j, const char *key, uint64_t v)
{
    assert(j->in_tx);
    sqlite3_stmt *st = s_stmt(j, ST_META_SET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
    return s_step_done(j, st);
}

static int s_load(journal_t *j)
{
    struct seqstate s;
    if (s_meta_get(j, "last_seq", &s.last_seq) < 0 || s_meta_get(j, "acked", &s.acked) < 0 ||
        s_meta_get(j, "last_applied", &s.last_applied) < 0)
        return -EIO;
    if (s.acked > s.last_seq) {
        log_error("journal.inconsistent", "acked=%llu last_seq=%llu", (unsigned long long)s.acked,
                  (unsigned long long)s.last_seq);
        return -EPROTO;
    }
    j->work = j->committed = s;
    return 0;
}

int journal_open(const char *path, journal_t **out)
{
    *out = NULL;
    journal_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -ENOMEM;
    int rc = sql_open(path, s_migrations, N_MIGRATIONS, &j->db);
    if (rc < 0) {
        free(j);
        return rc;
    }
    rc = s_load(j);
    if (rc < 0) {
        journal_close(&j);
        return rc;
    }
    *out = j;
    return 0;
}

void journal_close(journal_t **j_p)
{
    if (j_p == NULL || *j_p == NULL)
        return;
    journal_t *j = *j_p;
    *j_p = NULL;
    if (j->in_tx)
        sql_rollback(j->db);
    for (int i = 0; i < ST__N; i++)
        sqlite3_finalize(j->st[i]);
    sql_close(&j->db);
    free(j);
}

int journal_begin(journal_t *j)
{
    if (j->in_tx)
        return 0;
    if (sql_begin(j->db) < 0)
        return -EIO;
    j->in_tx = 1;
    return 0;
}

void journal_rollback(journal_t *j)
{
    if (!j->in_tx)
        return;
    sql_rollback(j->db);
    j->in_tx = 0;
    j->work = j->committed;
}

int journal_commit(journal_t *j)
{
    if (!j->in_tx)
        return 0;
    if (sql_commit(j->db) < 0) {
        journal_rollback(j);
        return -EIO;
    }
    j->in_tx = 0;
    j->committed = j->work;
    return 0;
}

int journal_in_tx(const journal_t *j)
{
    return j->in_tx;
}

sqlite3 *journal_db(journal_t *j)
{
    return j->db;
}

uint64_t journal_last_seq(const journal_t *j)
{
    return j->work.last_seq;
}
uint64_t journal_committed_seq(const journal_t *j)
{
    return j->committed.last_seq;
}
uint64_t journal_acked(const journal_t *j)
{
    return j->work.acked;
}
uint64_t journal_last_applied(const journal_t *j)
{
    return j->work.last_applied;
}
uint64_t journal_committed_applied(const journal_t *j)
{
    return j->committed.last_applied;
}

int journal_append_event(journal_t *j, const uint8_t *payload, size_t len, uint64_t now_ms,
                         uint64_t *seq_out)
{
    return journal_append(j, JOURNAL_BODY_EVENT, payload, len, now_ms, seq_out);
}

int journal_append(journal_t *j, int body, const uint8_t *payload, size_t len, uint64_t now_ms,
                   uint64_t *seq_out)
{
    assert(j->in_tx);
    assert(body == JOURNAL_BODY_EVENT || body == JOURNAL_BODY_BACKUP);
    if (len > INT32_MAX)
        return -EMSGSIZE;
    sqlite3_stmt *st = s_stmt(j, ST_OUT_INSERT);
    if (st == NULL)
        return -EIO;
    uint64_t seq = j->work.last_seq + 1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    sqlite3_bind_blob(st, 2, len ? (const void *)payload : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
    sqlite3_bind_int(st, 4, body);
    int rc = s_step_done(j, st);
    if (rc == 0)
        rc = s_meta_set(j, "last_seq", seq);
    if (rc < 0)
        return rc;
    j->work.last_seq = seq;
    if (seq_out)
        *seq_out = seq;
    return 0;
}

int journal_ack(journal_t *j, uint64_t upto)
{
    assert(j->in_tx);
    if (upto <= j->work.acked)
        return 0;
    if (upto > j->work.last_seq)
        return -ERANGE;
    sqlite3_stmt *st = s_stmt(j, ST_OUT_DELETE);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)upto);
    int rc = s_step_done(j, st);
    if (rc == 0)
        rc = s_meta_set(j, "acked", upto);
    if (rc == 0)
        j->work.acked = upto;
    return rc;
}

int journal_rebase(journal_t *j, uint64_t base)
{
    assert(j->in_tx);
    if (base <= j->work.last_seq)
        return -EINVAL;
    /* New seqs are all > base >= last_seq >= every old seq: the UPDATE cannot
     * collide with a row it has not moved yet. */
    uint64_t n = j->work.last_seq - j->work.acked;
    sqlite3_stmt *st = s_stmt(j, ST_OUT_REBASE);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)j->work.acked);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)base);
    int rc = s_step_done(j, st);
    if (rc == 0)
        rc = s_meta_set(j, "acked", base);
    if (rc == 0)
        rc = s_meta_set(j, "last_seq", base + n);
    if (rc == 0) {
        j->work.acked = base;
        j->work.last_seq = base + n;
    }
    return rc;
}

struct iter_compat {
    int (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len);
    void *arg;
};

static int s_iter_compat(void *arg, uint64_t seq, int body, const uint8_t *payload, size_t len)
{
    struct iter_compat *ic = arg;
    (void)body;
    return ic->fn(ic->arg, seq, payload, len);
}

int journal_iter_from(journal_t *j, uint64_t from, uint64_t upto, int max,
                      int (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len),
                      void *arg)
{
    struct iter_compat ic = {fn, arg};
    return journal_iter_rows(j, from, upto, max, s_iter_compat, &ic);
}

int journal_iter_rows(journal_t *j, uint64_t from, uint64_t upto, int max,
                      int (*fn)(void *arg, uint64_t seq, int body, const uint8_t *payload,
                                size_t len),
                      void *arg)
{
    if (max <= 0 || from > upto)
        return 0;
    sqlite3_stmt *st = s_stmt(j, ST_OUT_ITER);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(upto > INT64_MAX ? INT64_MAX : upto));
    sqlite3_bind_int(st, 3, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
        const uint8_t *p = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        int body = sqlite3_column_int(st, 2);
        n++;
        if (fn(arg, seq, body, p, len) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int journal_set_last_applied(journal_t *j, uint64_t seq)
{
    int rc = s_meta_set(j, "last_applied", seq);
    if (rc == 0)
        j->work.last_applied = seq;
    return rc;
}

static int s_counter_key_ok(const char *key)
{
    /* The sequence keys have their own setters that keep the cache coherent. */
    return strcmp(key, "last_seq") != 0 && strcmp(key, "acked") != 0 &&
           strcmp(key, "last_applied") != 0 && strcmp(key, "config") != 0 &&
           strcmp(key, "config_generation") != 0;
}

int journal_counter_get(journal_t *j, const char *key, uint64_t *out)
{
    return s_meta_get(j, key, out);
}

int journal_counter_set(journal_t *j, const char *key, uint64_t value)
{
    if (!s_counter_key_ok(key))
        return -EINVAL;
    return s_meta_set(j, key, value);
}

/* Reads a blob column of the current row into a malloc'd copy. */
static int s_copy_blob(sqlite3_stmt *st, int col, uint8_t **blob, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    uint8_t *c = malloc(n ? n : 1);
    if (c == NULL)
        return -ENOMEM;
    if (n)
        memcpy(c, p, n);
    *blob = c;
    *len = n;
    return 0;
}

/* Steps a bound one-row query whose column 0 is a blob: 1 with a copy in
 * *blob (caller frees), 0 no row, <0 error. Resets the statement. */
static int s_step_blob(sqlite3_stmt *st, uint8_t **blob, size_t *len)
{
    int r = sqlite3_step(st), rc = 0;
    if (r == SQLITE_ROW)
        rc = s_copy_blob(st, 0, blob, len) == 0 ? 1 : -ENOMEM;
    else if (r != SQLITE_DONE)
        rc = -EIO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int journal_config_get(journal_t *j, uint64_t *generation, uint8_t **blob, size_t *len)
{
    *blob = NULL;
    *len = 0;
    int rc = s_meta_get(j, "config_generation", generation);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s_stmt(j, ST_META_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, "config", -1, SQLITE_STATIC);
    return s_step_blob(st, blob, len);
}

int journal_config_put(journal_t *j, uint64_t generation, const uint8_t *blob, size_t len)
{
    assert(j->in_tx);
    if (len > INT32_MAX)
        return -EMSGSIZE;
    sqlite3_stmt *st = s_stmt(j, ST_META_SET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, "config", -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, len ? (const void *)blob : "", (int)len, SQLITE_STATIC);
    int rc = s_step_done(j, st);
    if (rc == 0)
        rc = s_meta_set(j, "config_generation", generation);
    return rc;
}

int journal_assignment_get(journal_t *j, const char *mac, uint8_t **blob, size_t *len)
{
    *blob = NULL;
    *len = 0;
    sqlite3_stmt *st = s_stmt(j, ST_ASG_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
    return s_step_blob(st, blob, len);
}

int journal_assignment_put(journal_t *j, const char *mac, uint64_t rollout_id, const uint8_t *blob,
                           size_t len)
{
    assert(j->in_tx);
    if (len > INT32_MAX)
        return -EMSGSIZE;
    uint8_t *old = NULL;
    size_t old_len = 0;
    int rc = journal_assignment_get(j, mac, &old, &old_len);
    if (rc < 0)
        return rc;
    int same = rc == 1 && old_len == len && (len == 0 || memcmp(old, blob, len) == 0);
    free(old);
    if (same)
        return 0;
    sqlite3_stmt *st = s_stmt(j, ST_ASG_PUT);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)rollout_id);
    sqlite3_bind_blob(st, 3, len ? (const void *)blob : "", (int)len, SQLITE_STATIC);
    rc = s_step_done(j, st);
    return rc < 0 ? rc : 1;
}

int journal_assignment_delete(journal_t *j, const char *mac, uint64_t rollout_id)
{
    assert(j->in_tx);
    sqlite3_stmt *st = s_stmt(j, rollout_id ? ST_ASG_DEL : ST_ASG_DEL_ANY);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
    if (rollout_id)
        sqlite3_bind_int64(st, 2, (sqlite3_int64)rollout_id);
    int rc = s_step_done(j, st);
    if (rc < 0)
        return rc;
    return sqlite3_changes(j->db) > 0;
}

int journal_assignment_count(journal_t *j)
{
    sqlite3_stmt *st = s_stmt(j, ST_ASG_COUNT);
    if (st == NULL)
        return -EIO;
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_reset(st);
    return n;
}

static int s_image_row(sqlite3_stmt *st, struct journal_image *out)
{
    memset(out, 0, sizeof *out);
    const char *hex = (const char *)sqlite3_column_text(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 2);
    const char *state = (const char *)sqlite3_column_text(st, 3);
    if (hex == NULL || strlen(hex) != 64 || state == NULL)
        return -EPROTO;
    memcpy(out->sha_hex, hex, 65);
    snprintf(out->name, sizeof out->name, "%s", name ? name : "");
    out->size = (uint64_t)sqlite3_column_int64(st, 1);
    out->state = JOURNAL_IMG_CORRUPT;
    for (int i = 0; i < 3; i++)
        if (strcmp(state, s_state_names[i]) == 0)
            out->state = (enum journal_img_state)i;
    out->verified_offset = (uint64_t)sqlite3_column_int64(st, 4);
    out->bytes_received = (uint64_t)sqlite3_column_int64(st, 5);
    return 0;
}

int journal_image_get(journal_t *j, const char *sha_hex, struct journal_image *out)
{
    sqlite3_stmt *st = s_stmt(j, ST_IMG_GET);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, sha_hex, -1, SQLITE_STATIC);
    int r = sqlite3_step(st), rc = 0;
    if (r == SQLITE_ROW)
        rc = s_image_row(st, out) == 0 ? 1 : -EPROTO;
    else if (r != SQLITE_DONE)
        rc = -EIO;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int journal_image_put(journal_t *j, const struct journal_image *img)
{
    assert(j->in_tx);
    if ((unsigned)img->state > JOURNAL_IMG_CORRUPT || strlen(img->sha_hex) != 64)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(j, ST_IMG_PUT);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, img->sha_hex, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)img->size);
    sqlite3_bind_text(st, 3, img->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, s_state_names[img->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)img->verified_offset);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)img->bytes_received);
    return s_step_done(j, st);
}

int journal_image_delete(journal_t *j, const char *sha_hex)
{
    assert(j->in_tx);
    sqlite3_stmt *st = s_stmt(j, ST_IMG_DEL);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, sha_hex, -1, SQLITE_STATIC);
    return s_step_done(j, st);
}

int journal_image_each(journal_t *j, int (*fn)(void *arg, const struct journal_image *img),
                       void *arg)
{
    sqlite3_stmt *st = s_stmt(j, ST_IMG_EACH);
    if (st == NULL)
        return -EIO;
    int n = 0, rc;
    struct journal_image img;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (s_image_row(st, &img) < 0)
            continue; /* CHECK constraints make this unreachable; skip, do not trust */
        n++;
        if (fn(arg, &img) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int journal_assignment_each(journal_t *j,
                            int (*fn)(void *arg, const char *mac, const uint8_t *blob, size_t len),
                            void *arg)
{
    sqlite3_stmt *st = s_stmt(j, ST_ASG_EACH);
    if (st == NULL)
        return -EIO;
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mac = (const char *)sqlite3_column_text(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        if (mac == NULL || len < 0)
            continue;
        n++;
        if (fn(arg, mac, blob ? blob : (const void *)"", (size_t)len) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

static void s_copy_col(sqlite3_stmt *st, int col, char *out, size_t n)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    snprintf(out, n, "%s", v ? v : "");
}

int journal_device_put(journal_t *j, const struct journal_device *d)
{
    assert(j->in_tx);
    if (strlen(d->mac) != 17)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(j, ST_DEV_PUT);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, d->mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->profile, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->stage, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, d->installed, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, d->boot_at);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)d->rollout_id);
    sqlite3_bind_text(st, 9, d->state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, d->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, d->state_at);
    sqlite3_bind_text(st, 12, d->done_firmware, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, d->updated);
    return s_step_done(j, st);
}

int journal_device_delete(journal_t *j, const char *mac)
{
    assert(j->in_tx);
    sqlite3_stmt *st = s_stmt(j, ST_DEV_DEL);
    if (st == NULL)
        return -EIO;
    sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
    return s_step_done(j, st);
}

int journal_device_each(journal_t *j, int (*fn)(void *arg, const struct journal_device *d),
                        void *arg)
{
    sqlite3_stmt *st = s_stmt(j, ST_DEV_EACH);
    if (st == NULL)
        return -EIO;
    int n = 0, rc;
    struct journal_device d;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&d, 0, sizeof d);
        s_copy_col(st, 0, d.mac, sizeof d.mac);
        s_copy_col(st, 1, d.profile, sizeof d.profile);
        s_copy_col(st, 2, d.stage, sizeof d.stage);
        s_copy_col(st, 3, d.version, sizeof d.version);
        s_copy_col(st, 4, d.model, sizeof d.model);
        s_copy_col(st, 5, d.installed, sizeof d.installed);
        d.boot_at = sqlite3_column_int64(st, 6);
        d.rollout_id = (uint64_t)sqlite3_column_int64(st, 7);
        s_copy_col(st, 8, d.state, sizeof d.state);
        s_copy_col(st, 9, d.reason, sizeof d.reason);
        d.state_at = sqlite3_column_int64(st, 10);
        s_copy_col(st, 11, d.done_firmware, sizeof d.done_firmware);
        d.updated = sqlite3_column_int64(st, 12);
        if (strlen(d.mac) != 17)
            continue;
        n++;
        if (fn(arg, &d) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}
