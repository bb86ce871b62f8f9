/* sql.h: the one place that opens SQLite databases. Both the controller store
 * and the agent journal go through here so that every database is opened the
 * same way: WAL, synchronous=FULL (a commit is on disk when it returns, which
 * is what "acknowledged only after commit" relies on), foreign keys on, a busy
 * timeout, and schema migrations keyed on PRAGMA user_version.
 *
 * Migrations: migrations[i] moves the schema from version i to i+1. They run
 * in one transaction each; a database newer than the code is refused.
 */
#ifndef FF_SQL_H
#define FF_SQL_H

#include <sqlite3.h>
#include <stdint.h>

/* Opens (creating) path and migrates it. 0 or a negative code; on error *out
 * is NULL and a one-line reason is logged. */
int sql_open(const char *path, const char *const *migrations, int n_migrations, sqlite3 **out);
void sql_close(sqlite3 **db_p);

/* Runs one or more statements without results. 0 or -EIO (logged). */
int sql_exec(sqlite3 *db, const char *sql);
int sql_begin(sqlite3 *db);     /* BEGIN IMMEDIATE */
int sql_commit(sqlite3 *db);
int sql_rollback(sqlite3 *db);

/* Prepares sql; NULL on error (logged). */
sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql);
/* A per-connection cache of prepared statements, keyed by the address of
 * the SQL text (so the text must have static storage: a literal or a static
 * table), for the hot paths: preparing costs about as much as running a
 * short statement (the 1,000-site benchmark spent 36% of an assignment's CPU
 * there). A cached statement is handed out at most once at a time: a nested
 * use of the same text gets a fresh statement, finalized at release. When
 * all slots are taken, statements are prepared and finalized per use, as
 * before. Used from one thread, like its connection. */
typedef struct sql_cache sql_cache_t;

/* 0 or -ENOMEM. */
int sql_cache_new(sqlite3 *db, sql_cache_t **out);
/* Finalizes every cached statement (none may be out); idempotent, nulls *c_p. */
void sql_cache_destroy(sql_cache_t **c_p);
/* A statement for sql, unbound and reset; NULL on error (logged). Give it
 * back with sql_release (never sqlite3_finalize). */
sqlite3_stmt *sql_cached(sql_cache_t *c, const char *sql);
/* Resets q and clears its bindings (pointers bound SQLITE_STATIC are
 * forgotten), or finalizes it when it is not a cached one. NULL is a no-op. */
void sql_release(sql_cache_t *c, sqlite3_stmt *q);

/* Returns the schema version (PRAGMA user_version), or -1. */
int sql_user_version(sqlite3 *db);

#endif
