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
/* Returns the schema version (PRAGMA user_version), or -1. */
int sql_user_version(sqlite3 *db);

#endif
