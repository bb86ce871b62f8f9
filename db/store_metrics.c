/* store_metrics.c: read-only counts for the controller's /metrics (see
 * store_metrics.h). Statements are prepared per scrape: a scrape every 15 s
 * does not need cached statements, and nothing stays open between scrapes.
 */
#include <errno.h>
#include <string.h>

#include "store_int.h"
#include "store_metrics.h"

static int s_one(store_t *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return -EIO;
    int rc = sqlite3_step(q) == SQLITE_ROW ? 0 : -EIO;
    *out = rc == 0 ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return rc;
}

int store_metrics_counts(store_t *st, struct store_metrics *out)
{
    memset(out, 0, sizeof *out);
    int rc = s_one(st, "SELECT count(*) FROM agent WHERE revoked_ms IS NULL", &out->agents);
    if (rc == 0)
        rc = s_one(st, "SELECT count(*) FROM agent WHERE revoked_ms IS NOT NULL",
                   &out->agents_revoked);
    if (rc == 0)
        rc = s_one(st, "SELECT count(*) FROM site", &out->sites);
    if (rc == 0)
        rc = s_one(st, "SELECT count(*) FROM device", &out->devices);
    /* the sum over agents, not count(*) over event: O(agents), not O(events) */
    if (rc == 0)
        rc = s_one(st, "SELECT coalesce(sum(last_in_seq), 0) FROM agent", &out->events_ingested);
    if (rc == 0)
        rc = s_one(st,
                   "SELECT coalesce(sum(max(last_out_seq - peer_acked_seq, 0)), 0) FROM agent"
                   " WHERE revoked_ms IS NULL",
                   &out->outbox_depth);
    return rc;
}

int store_metrics_agents(store_t *st, int (*fn)(void *arg, int64_t id), void *arg)
{
    sqlite3_stmt *q =
        sql_prepare(st->db, "SELECT id FROM agent WHERE revoked_ms IS NULL ORDER BY id");
    if (q == NULL)
        return -EIO;
    int n = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        n++;
        if (fn(arg, sqlite3_column_int64(q, 0)) != 0)
            break;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : -EIO;
}

static int s_grouped(store_t *st, const char *sql,
                     void (*fn)(void *arg, const char *state, int64_t n), void *arg)
{
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *s = sqlite3_column_text(q, 0);
        fn(arg, s ? (const char *)s : "", sqlite3_column_int64(q, 1));
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_metrics_rollouts(store_t *st, void (*fn)(void *arg, const char *state, int64_t n),
                           void *arg)
{
    return s_grouped(st, "SELECT state, count(*) FROM rollouts GROUP BY state", fn, arg);
}

int store_metrics_rollout_devices(store_t *st, void (*fn)(void *arg, const char *state, int64_t n),
                                  void *arg)
{
    return s_grouped(st, "SELECT state, count(*) FROM rollout_devices GROUP BY state", fn, arg);
}
