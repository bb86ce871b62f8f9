/* lease.c: DHCP lease rows in the agent journal; see lease.h. The tables are
 * created by the journal's migration 3 (db/journal.c).
 *
 * Per ACK the server runs one prepared upsert keyed by the INTEGER PRIMARY
 * KEY (the rowid), i.e. one B-tree write, inside the per-turn transaction;
 * the fsync is paid once per loop turn by the group commit, not per lease.
 */
#include "lease.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sql.h"
#include "util.h"

enum { ST_PUT, ST_DEL, ST_EACH, ST_SEEN_PUT, ST_SEEN_EACH, ST__N };

static const char *const s_sql[ST__N] = {
    [ST_PUT] = "INSERT INTO dhcp_lease(ip, mac, state, expires, granted, class, updated_ms)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
               " ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac, state = excluded.state,"
               " expires = excluded.expires, granted = excluded.granted,"
               " class = excluded.class, updated_ms = excluded.updated_ms",
    [ST_DEL] = "DELETE FROM dhcp_lease WHERE ip = ?1",
    [ST_EACH] = "SELECT ip, mac, state, expires, granted, class FROM dhcp_lease ORDER BY ip",
    [ST_SEEN_PUT] = "INSERT INTO dhcp_seen(mac, first_ms) VALUES (?1, ?2)"
                    " ON CONFLICT(mac) DO NOTHING",
    [ST_SEEN_EACH] = "SELECT mac FROM dhcp_seen",
};

static const char *const s_states[] = {"bound", "released", "declined"};

struct lease_db {
    sqlite3 *db;
    sqlite3_stmt *st[ST__N];
};

int lease_db_open(journal_t *j, lease_db_t **out)
{
    *out = NULL;
    lease_db_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->db = journal_db(j);
    for (int i = 0; i < ST__N; i++) {
        l->st[i] = sql_prepare(l->db, s_sql[i]);
        if (l->st[i] == NULL) {
            lease_db_close(&l);
            return -EIO;
        }
    }
    *out = l;
    return 0;
}

void lease_db_close(lease_db_t **l_p)
{
    if (l_p == NULL || *l_p == NULL)
        return;
    lease_db_t *l = *l_p;
    *l_p = NULL;
    for (int i = 0; i < ST__N; i++)
        sqlite3_finalize(l->st[i]);
    free(l);
}

static int s_done(lease_db_t *l, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        char q[256];
        log_error("lease.db_error", "error=%s", log_quote(sqlite3_errmsg(l->db), q, sizeof q));
        return -EIO;
    }
    return 0;
}

int lease_db_put(lease_db_t *l, const struct lease_row *r, uint64_t now_ms)
{
    assert(!sqlite3_get_autocommit(l->db)); /* inside the per-turn transaction */
    if (r->ip == 0 || r->state < LEASE_BOUND || r->state > LEASE_DECLINED)
        return -EINVAL;
    char mac[18];
    util_mac_format(r->mac, mac);
    sqlite3_stmt *st = l->st[ST_PUT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->ip);
    sqlite3_bind_text(st, 2, mac, 17, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s_states[r->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)r->expires);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)r->granted);
    sqlite3_bind_text(st, 6, r->cls, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)now_ms);
    return s_done(l, st);
}

int lease_db_delete(lease_db_t *l, uint32_t ip)
{
    assert(!sqlite3_get_autocommit(l->db));
    sqlite3_stmt *st = l->st[ST_DEL];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ip);
    return s_done(l, st);
}

int lease_db_each(lease_db_t *l, int (*fn)(void *arg, const struct lease_row *r), void *arg)
{
    sqlite3_stmt *st = l->st[ST_EACH];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct lease_row r;
        memset(&r, 0, sizeof r);
        sqlite3_int64 ip = sqlite3_column_int64(st, 0);
        const char *mac = (const char *)sqlite3_column_text(st, 1);
        const char *state = (const char *)sqlite3_column_text(st, 2);
        const char *cls = (const char *)sqlite3_column_text(st, 5);
        if (ip <= 0 || ip > UINT32_MAX || mac == NULL || state == NULL ||
            util_mac_parse(mac, r.mac) < 0)
            continue; /* the CHECKs make this unreachable; skip, do not trust */
        r.ip = (uint32_t)ip;
        r.state = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(state, s_states[i]) == 0)
                r.state = i;
        if (r.state < 0)
            continue;
        r.expires = sqlite3_column_int64(st, 3);
        r.granted = sqlite3_column_int64(st, 4);
        snprintf(r.cls, sizeof r.cls, "%s", cls ? cls : "");
        n++;
        if (fn(arg, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int lease_db_seen_put(lease_db_t *l, const uint8_t mac[6], uint64_t now_ms)
{
    assert(!sqlite3_get_autocommit(l->db));
    char m[18];
    util_mac_format(mac, m);
    sqlite3_stmt *st = l->st[ST_SEEN_PUT];
    sqlite3_bind_text(st, 1, m, 17, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now_ms);
    return s_done(l, st);
}

int lease_db_seen_each(lease_db_t *l, int (*fn)(void *arg, const uint8_t mac[6]), void *arg)
{
    sqlite3_stmt *st = l->st[ST_SEEN_EACH];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint8_t mac[6];
        const char *s = (const char *)sqlite3_column_text(st, 0);
        if (s == NULL || util_mac_parse(s, mac) < 0)
            continue;
        n++;
        if (fn(arg, mac) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}
