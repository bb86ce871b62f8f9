/* store.h: the controller's SQLite store (one file, WAL). Opening it creates or
 * migrates the schema (db/store.c holds the migrations). The inventory queries
 * are in store_inv.h, the agent-link queries (events, sequence state, outbox)
 * in store_link.h. One store per controller process, used from its one thread.
 */
#ifndef FF_STORE_H
#define FF_STORE_H

typedef struct store store_t;

/* Opens path, creating and migrating it. 0 or a negative code (logged). */
int store_open(const char *path, store_t **out);
void store_destroy(store_t **st_p);

int store_begin(store_t *st);
int store_commit(store_t *st);
int store_rollback(store_t *st);
/* Current schema version. */
int store_schema_version(store_t *st);

#endif
