/* store_backup.c: see store_backup.h.
 *
 * Tables (migration 4 in store.c): backup_blob(sha256 PK, size, data) and
 * backup(id, mac, site_id, agent_id, name, sha256, size, time_ms,
 * received_ms, last_ms, uploads). Dedupe compares with the newest version of
 * the same (mac, name) only: A, B, A keeps three versions (the history of
 * what the device held), the two A rows sharing one blob. Pruning looks at
 * one (mac, name) per put, so its cost does not grow with the store.
 */
#include "store_backup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

static int s_done(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int s_dberr(store_t *st, char *err, size_t errlen)
{
    util_errf(err, errlen, "database error: %.200s", sqlite3_errmsg(st->db));
    return -EIO;
}

static int s_hex64(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int store_backup_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > STORE_BACKUP_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '"')
            return 0;
    }
    return 1;
}

/* Deletes versions of (mac, name) past STORE_BACKUP_KEEP, and the blobs only
 * they named. The number deleted, or -EIO. */
static int s_prune(store_t *st, const char *mac, const char *name)
{
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT id, sha256 FROM backup WHERE mac = ?1 AND"
                                          " name = ?2 ORDER BY id DESC LIMIT -1 OFFSET ?3");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, STORE_BACKUP_KEEP);
    int n = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        char sha[65];
        snprintf(sha, sizeof sha, "%s", (const char *)sqlite3_column_text(q, 1));
        sqlite3_stmt *d = sql_prepare(st->db, "DELETE FROM backup WHERE id = ?1");
        if (d == NULL)
            break;
        sqlite3_bind_int64(d, 1, id);
        if (s_done(d) < 0)
            break;
        d = sql_prepare(st->db, "DELETE FROM backup_blob WHERE sha256 = ?1 AND NOT EXISTS"
                                " (SELECT 1 FROM backup WHERE sha256 = ?1)");
        if (d == NULL)
            break;
        sqlite3_bind_text(d, 1, sha, -1, SQLITE_TRANSIENT);
        if (s_done(d) < 0)
            break;
        n++;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? n : -EIO;
}

static int s_put(store_t *st, const struct store_backup_in *in, struct store_backup_out *out)
{
    char canon[18];
    if (in->mac == NULL || util_mac_canon(in->mac, canon) < 0 || strcmp(canon, in->mac) != 0 ||
        !store_backup_name_ok(in->name) || !s_hex64(in->sha256) || in->len > STORE_BACKUP_MAX ||
        (in->len > 0 && in->data == NULL) || in->agent_id <= 0 || in->site_id <= 0)
        return -EINVAL;
    /* the newest version: identical content adds none */
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT id, sha256 FROM backup WHERE mac = ?1 AND"
                                          " name = ?2 ORDER BY id DESC LIMIT 1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, in->mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, in->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int64_t newest = 0;
    int same = 0;
    if (rc == SQLITE_ROW) {
        newest = sqlite3_column_int64(q, 0);
        same = strcmp((const char *)sqlite3_column_text(q, 1), in->sha256) == 0;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return -EIO;
    if (same) {
        q = sql_prepare(st->db, "UPDATE backup SET last_ms = ?2, uploads = uploads + 1,"
                                " agent_id = ?3, site_id = ?4 WHERE id = ?1");
        if (q == NULL)
            return -EIO;
        sqlite3_bind_int64(q, 1, newest);
        sqlite3_bind_int64(q, 2, (int64_t)in->now_ms);
        sqlite3_bind_int64(q, 3, in->agent_id);
        sqlite3_bind_int64(q, 4, in->site_id);
        if (s_done(q) < 0)
            return -EIO;
        out->id = newest;
        out->unchanged = 1;
        return 0;
    }
    q = sql_prepare(st->db, "INSERT INTO backup_blob(sha256, size, data) VALUES(?1, ?2, ?3)"
                            " ON CONFLICT(sha256) DO NOTHING");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, in->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (int64_t)in->len);
    sqlite3_bind_blob(q, 3, in->len ? (const void *)in->data : "", (int)in->len, SQLITE_STATIC);
    if (s_done(q) < 0)
        return -EIO;
    q = sql_prepare(st->db, "INSERT INTO backup(mac, site_id, agent_id, name, sha256, size,"
                            " time_ms, received_ms, last_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                            " ?8, ?8)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, in->mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, in->site_id);
    sqlite3_bind_int64(q, 3, in->agent_id);
    sqlite3_bind_text(q, 4, in->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, in->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, (int64_t)in->len);
    sqlite3_bind_int64(q, 7, (int64_t)in->time_ms);
    sqlite3_bind_int64(q, 8, (int64_t)in->now_ms);
    if (s_done(q) < 0)
        return -EIO;
    out->id = sqlite3_last_insert_rowid(st->db);
    int pruned = s_prune(st, in->mac, in->name);
    if (pruned < 0)
        return -EIO;
    out->pruned = pruned;
    return 0;
}

int store_backup_put(store_t *st, const struct store_backup_in *in, struct store_backup_out *out)
{
    memset(out, 0, sizeof *out);
    /* a savepoint: a failure half-way leaves nothing behind in the caller's
     * transaction (no orphan blob, no version without its seq) */
    if (sql_exec(st->db, "SAVEPOINT backup_put;") < 0)
        return -EIO;
    int rc = s_put(st, in, out);
    if (rc < 0) {
        sql_exec(st->db, "ROLLBACK TO backup_put; RELEASE backup_put;");
        memset(out, 0, sizeof *out);
        return rc;
    }
    return sql_exec(st->db, "RELEASE backup_put;") < 0 ? -EIO : 0;
}

#define BACKUP_COLS                                                                                \
    "SELECT b.id, b.mac, s.name, a.name, b.name, b.sha256, b.size, b.time_ms, b.received_ms,"      \
    " b.last_ms, b.uploads"
#define BACKUP_FROM                                                                                \
    " FROM backup b LEFT JOIN site s ON s.id = b.site_id LEFT JOIN agent a ON a.id = b.agent_id"

static json_t *s_str(const unsigned char *s)
{
    return s ? json_string((const char *)s) : json_null();
}

static json_t *s_row(sqlite3_stmt *q)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int bad = json_object_set_new(o, "id", json_integer(sqlite3_column_int64(q, 0))) ||
              json_object_set_new(o, "mac", s_str(sqlite3_column_text(q, 1))) ||
              json_object_set_new(o, "site", s_str(sqlite3_column_text(q, 2))) ||
              json_object_set_new(o, "agent", s_str(sqlite3_column_text(q, 3))) ||
              json_object_set_new(o, "name", s_str(sqlite3_column_text(q, 4))) ||
              json_object_set_new(o, "sha256", s_str(sqlite3_column_text(q, 5))) ||
              json_object_set_new(o, "size", json_integer(sqlite3_column_int64(q, 6))) ||
              json_object_set_new(o, "time_ms", json_integer(sqlite3_column_int64(q, 7))) ||
              json_object_set_new(o, "received_ms", json_integer(sqlite3_column_int64(q, 8))) ||
              json_object_set_new(o, "last_ms", json_integer(sqlite3_column_int64(q, 9))) ||
              json_object_set_new(o, "uploads", json_integer(sqlite3_column_int64(q, 10)));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int store_backup_list(store_t *st, const char *mac, const char *site, int64_t limit, json_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    char canon[18] = "";
    if (mac && *mac && util_mac_canon(mac, canon) < 0) {
        util_errf(err, errlen, "invalid MAC address '%.64s'", mac);
        return -EINVAL;
    }
    if (limit < 0) {
        util_errf(err, errlen, "limit must not be negative");
        return -EINVAL;
    }
    int64_t site_id = 0;
    if (site && *site) {
        sqlite3_stmt *s = sql_prepare(st->db, "SELECT id FROM site WHERE name = ?1");
        if (s == NULL)
            return s_dberr(st, err, errlen);
        sqlite3_bind_text(s, 1, site, -1, SQLITE_STATIC);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            site_id = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        if (step == SQLITE_DONE) {
            util_errf(err, errlen, "unknown site '%.64s'", site);
            return -ENOENT;
        }
        if (step != SQLITE_ROW)
            return s_dberr(st, err, errlen);
    }
    sqlite3_stmt *q =
        sql_prepare(st->db, BACKUP_COLS BACKUP_FROM " WHERE (?1 = '' OR b.mac = ?1) AND"
                                                    " (?2 = 0 OR b.site_id = ?2)"
                                                    " ORDER BY b.id DESC LIMIT ?3");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_text(q, 1, canon, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, site_id);
    sqlite3_bind_int64(q, 3, limit > 0 ? limit : -1);
    json_t *arr = json_array();
    int rc;
    while (arr && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = s_row(q);
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    sqlite3_finalize(q);
    if (arr == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return s_dberr(st, err, errlen);
    }
    *out = arr;
    return 0;
}

int store_backup_get(store_t *st, int64_t id, json_t **meta, uint8_t **data, size_t *len, char *err,
                     size_t errlen)
{
    *meta = NULL;
    if (data) {
        *data = NULL;
        *len = 0;
    }
    sqlite3_stmt *q =
        sql_prepare(st->db, BACKUP_COLS ", (SELECT count(*) FROM backup v WHERE"
                                        " v.mac = b.mac AND v.name = b.name),"
                                        " (SELECT data FROM backup_blob x WHERE"
                                        " x.sha256 = b.sha256)" BACKUP_FROM " WHERE b.id = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(q);
        util_errf(err, errlen, "no backup %lld", (long long)id);
        return -ENOENT;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(q);
        return s_dberr(st, err, errlen);
    }
    json_t *o = s_row(q);
    if (o && json_object_set_new(o, "versions", json_integer(sqlite3_column_int64(q, 11))) < 0) {
        json_decref(o);
        o = NULL;
    }
    int ret = o ? 0 : -ENOMEM;
    if (ret == 0 && data) {
        size_t n = (size_t)sqlite3_column_bytes(q, 12);
        const void *p = sqlite3_column_blob(q, 12);
        if ((*data = malloc(n ? n : 1)) == NULL)
            ret = -ENOMEM;
        else if (n)
            memcpy(*data, p, n);
        *len = n;
    }
    sqlite3_finalize(q);
    if (ret < 0) {
        json_decref(o);
        util_errf(err, errlen, "out of memory");
        return ret;
    }
    *meta = o;
    return 0;
}
