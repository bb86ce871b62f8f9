/* sql.c: see sql.h. */
#include "sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

int sql_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        char q[512];
        log_error("sql.error", "error=%s", log_quote(err ? err : sqlite3_errmsg(db), q, sizeof q));
        sqlite3_free(err);
        return -EIO;
    }
    return 0;
}

int sql_begin(sqlite3 *db) { return sql_exec(db, "BEGIN IMMEDIATE"); }
int sql_commit(sqlite3 *db) { return sql_exec(db, "COMMIT"); }
int sql_rollback(sqlite3 *db)
{
    if (sqlite3_get_autocommit(db))
        return 0;
    return sql_exec(db, "ROLLBACK");
}

sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        char q[512];
        log_error("sql.prepare", "error=%s", log_quote(sqlite3_errmsg(db), q, sizeof q));
        return NULL;
    }
    return st;
}

/* Slots are searched linearly: the store has a few dozen hot statements,
 * and comparing that many pointers costs nanoseconds beside a step. */
#define SQL_CACHE_SLOTS 96

struct sql_cache {
    sqlite3 *db;
    size_t n;
    struct {
        const char *sql;
        sqlite3_stmt *q;
        int out; /* handed out, not yet released */
    } slot[SQL_CACHE_SLOTS];
};

int sql_cache_new(sqlite3 *db, sql_cache_t **out)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return -ENOMEM;
    (*out)->db = db;
    return 0;
}

void sql_cache_destroy(sql_cache_t **c_p)
{
    if (c_p == NULL || *c_p == NULL)
        return;
    for (size_t i = 0; i < (*c_p)->n; i++) {
        if ((*c_p)->slot[i].out) /* a missed sql_release: that path ran unreset */
            log_warn("sql.unreleased", "slot=%zu", i);
        sqlite3_finalize((*c_p)->slot[i].q);
    }
    free(*c_p);
    *c_p = NULL;
}

sqlite3_stmt *sql_cached(sql_cache_t *c, const char *sql)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->slot[i].sql != sql)
            continue;
        if (c->slot[i].out)
            return sql_prepare(c->db, sql); /* nested use: a private one */
        c->slot[i].out = 1;
        return c->slot[i].q;
    }
    sqlite3_stmt *q = sql_prepare(c->db, sql);
    if (q != NULL && c->n < SQL_CACHE_SLOTS) {
        c->slot[c->n].sql = sql;
        c->slot[c->n].q = q;
        c->slot[c->n].out = 1;
        c->n++;
    }
    return q;
}

void sql_release(sql_cache_t *c, sqlite3_stmt *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        if (c->slot[i].q == q) {
            sqlite3_reset(q);
            sqlite3_clear_bindings(q);
            c->slot[i].out = 0;
            return;
        }
    }
    sqlite3_finalize(q);
}

int sql_user_version(sqlite3 *db)
{
    sqlite3_stmt *st = sql_prepare(db, "PRAGMA user_version");
    if (st == NULL)
        return -1;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

int sql_open(const char *path, const char *const *migrations, int n_migrations, sqlite3 **out)
{
    *out = NULL;
    sqlite3 *db = NULL;
    char q[512];
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("sql.open", "path=%s error=%s", path,
                  log_quote(db ? sqlite3_errmsg(db) : "out of memory", q, sizeof q));
        sqlite3_close(db);
        return -EIO;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sql_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;") <
        0) {
        sqlite3_close(db);
        return -EIO;
    }
    int v = sql_user_version(db);
    if (v < 0 || v > n_migrations) {
        log_error("sql.version", "path=%s version=%d known=%d reason=%s", path, v, n_migrations,
                  "\"database is newer than this program\"");
        sqlite3_close(db);
        return -EPROTO;
    }
    for (int i = v; i < n_migrations; i++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version=%d;", i + 1);
        if (sql_begin(db) < 0 || sql_exec(db, migrations[i]) < 0 || sql_exec(db, bump) < 0 ||
            sql_commit(db) < 0) {
            sql_rollback(db);
            log_error("sql.migrate", "path=%s to=%d", path, i + 1);
            sqlite3_close(db);
            return -EIO;
        }
        log_info("sql.migrated", "path=%s version=%d", path, i + 1);
    }
    *out = db;
    return 0;
}

void sql_close(sqlite3 **db_p)
{
    if (db_p && *db_p) {
        sqlite3_close(*db_p);
        *db_p = NULL;
    }
}
