/* store_rollout.c: profiles, rollouts and their devices in the controller
 * store (see store_rollout.h).
 *
 * Invariants:
 *   - a rollout's devices are fixed at create time (plus devices that later
 *     match its selector at a targeted site, appended by the engine); each is
 *     in exactly one state, entered_at is when it entered that state;
 *   - a device is in at most one unfinished rollout in a non-terminal state
 *     (the selector marks such devices busy; the engine never takes them);
 *   - every profile change and every rollout create/finish bumps the
 *     generation of the sites whose SiteConfig it changes, in the same
 *     transaction;
 *   - events written here have agent_id NULL and seq 0 and carry their site.
 * Statements come from the store's cache (sql_cached) and go back with
 * sql_release on every path: the engine runs several per assignment, and
 * preparing them was a third of an assignment's CPU at 1,000 sites. A
 * query whose plan depends on which filters are set is written once per
 * shape (store_rollout_devices): SQLite plans before the values are bound.
 */
#include "store_rollout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sign.h"
#include "store_int.h"
#include "store_inv.h"
#include "util.h"

static const char *const s_rdev_names[STORE_RDEV_N] = {
    "pending",   "assigned",  "waiting_window", "offered", "downloading", "installed",
    "verifying", "succeeded", "failed",         "skipped", "cancelled",
};

const char *store_rdev_name(int i)
{
    return i >= 0 && i < STORE_RDEV_N ? s_rdev_names[i] : NULL;
}

int store_rdev_index(const char *name)
{
    for (int i = 0; name && i < STORE_RDEV_N; i++)
        if (strcmp(s_rdev_names[i], name) == 0)
            return i;
    return -1;
}

int store_rdev_terminal(int i)
{
    return i >= STORE_RDEV_SUCCEEDED && i < STORE_RDEV_N;
}

#define UNFINISHED "('created', 'scheduled', 'running', 'paused', 'halted')"
#define TERMINAL "('succeeded', 'failed', 'skipped', 'cancelled')"

/* ---- helpers ---- */

static const char *s_text(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return t ? (const char *)t : "";
}

static void s_copy(char *dst, size_t n, sqlite3_stmt *q, int col)
{
    snprintf(dst, n, "%s", s_text(q, col));
}

static int s_done(store_t *st, sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sql_release(st->cache, q);
    return rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? -EEXIST : -EIO;
}

static int s_dberr(store_t *st, char *err, size_t errlen)
{
    util_errf(err, errlen, "database error: %s", sqlite3_errmsg(st->db));
    return -EIO;
}

/* JSON string from database text (invalid UTF-8 becomes '?'). */
static json_t *s_jstr(const char *t)
{
    json_t *j = json_string(t ? t : "");
    if (j != NULL)
        return j;
    char *c = strdup(t);
    if (c == NULL)
        return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

static int s_set(json_t *o, const char *k, json_t *v)
{
    return v != NULL && json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

int store_rollout_tx_begin(store_t *st, int *savepoint)
{
    *savepoint = !sqlite3_get_autocommit(st->db);
    return *savepoint ? sql_exec(st->db, "SAVEPOINT store_rollout") : sql_begin(st->db);
}

int store_rollout_tx_end(store_t *st, int savepoint, int rc)
{
    if (rc == 0) {
        if ((savepoint ? sql_exec(st->db, "RELEASE store_rollout") : sql_commit(st->db)) == 0)
            return 0;
        rc = -EIO;
    }
    if (savepoint) {
        sql_exec(st->db, "ROLLBACK TO store_rollout");
        sql_exec(st->db, "RELEASE store_rollout");
    } else {
        sql_rollback(st->db);
    }
    return rc;
}

/* Bumps every site, ids appended to ids (may be NULL). */
static int s_bump_all(store_t *st, json_t *ids)
{
    if (sql_exec(st->db, "UPDATE site SET generation = generation + 1") < 0)
        return -EIO;
    if (ids == NULL)
        return 0;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT id FROM site ORDER BY id");
    if (q == NULL)
        return -EIO;
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(ids, json_integer(sqlite3_column_int64(q, 0)));
    sql_release(st->cache, q);
    return 0;
}

/* ---- profiles ---- */

int store_profile_put(store_t *st, const char *user, const struct store_profile_in *p, int *changed,
                      json_t *site_ids, char *err, size_t errlen)
{
    *changed = 0;
    int builtin = strcmp(p->source, "builtin") == 0;
    int sp, rc = store_rollout_tx_begin(st, &sp);
    if (rc < 0)
        return s_dberr(st, err, errlen);
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT source, json FROM profiles WHERE name = ?1");
    int exists = 0, same = 0;
    char old_source[16] = "";
    if (q == NULL) {
        rc = -EIO;
    } else {
        sqlite3_bind_text(q, 1, p->name, -1, SQLITE_STATIC);
        int step = sqlite3_step(q);
        if (step == SQLITE_ROW) {
            exists = 1;
            s_copy(old_source, sizeof old_source, q, 0);
            same = strcmp(s_text(q, 1), p->json) == 0;
        } else if (step != SQLITE_DONE) {
            rc = -EIO;
        }
        sql_release(st->cache, q);
    }
    if (rc < 0) {
        s_dberr(st, err, errlen);
    } else if (exists && builtin && strcmp(old_source, "operator") == 0) {
        /* the operator's own profile of that name stays */
        return store_rollout_tx_end(st, sp, 0);
    } else if (exists && !builtin && !p->replace) {
        util_errf(err, errlen, "profile %s already exists (%s); use --replace to replace it",
                  p->name, old_source);
        rc = -EEXIST;
    } else if (exists && same && strcmp(old_source, p->source) == 0) {
        return store_rollout_tx_end(st, sp, 0); /* nothing changes */
    }
    if (rc == 0) {
        q = sql_cached(st->cache,
                       "INSERT INTO profiles(name, json, source, description, priority, added_at)"
                       " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET"
                       " json = ?2, source = ?3, description = ?4, priority = ?5, added_at = ?6");
        if (q != NULL) {
            sqlite3_bind_text(q, 1, p->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, p->json, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, p->source, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, p->description ? p->description : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 5, p->priority);
            sqlite3_bind_int64(q, 6, (int64_t)util_now_ms());
        }
        if ((rc = s_done(st, q)) < 0 || (rc = s_bump_all(st, site_ids)) < 0)
            s_dberr(st, err, errlen);
    }
    if (rc == 0 && user != NULL) {
        char detail[256];
        snprintf(detail, sizeof detail, "profile=%s source=%s", p->name, p->source);
        if (store_audit(st, user, exists ? "profile.replace" : "profile.add", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = store_rollout_tx_end(st, sp, rc);
    if (rc == 0)
        *changed = 1;
    return rc;
}

/* Adds what o's profile carries of a signature (migration 8): "signed"
 * always, and when signed "signer" (the public key, hex) and "key_id" (its
 * first SIGN_ID_HEX digits, as logs and events show keys). Only signed
 * profiles get the key fields, as firmware files do. 0 or -ENOMEM. */
static int s_profile_sig(json_t *o, const char *sig, const char *signer)
{
    int is = sig[0] != '\0';
    if (o == NULL || json_object_set_new(o, "signed", json_boolean(is)) < 0)
        return -ENOMEM;
    if (!is || signer[0] == '\0')
        return 0;
    char id[SIGN_ID_HEX + 1];
    snprintf(id, sizeof id, "%s", signer);
    if (json_object_set_new(o, "signer", s_jstr(signer)) < 0 ||
        json_object_set_new(o, "key_id", s_jstr(id)) < 0)
        return -ENOMEM;
    return 0;
}

int store_profile_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT name, description, source, priority,"
                                            " signature, signer FROM profiles"
                                            " ORDER BY priority, name");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    json_t *arr = json_array();
    int rc = arr ? 0 : -ENOMEM;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        json_t *o = json_pack("{s:o, s:o, s:o, s:I}", "name", s_jstr(s_text(q, 0)), "description",
                              s_jstr(s_text(q, 1)), "source", s_jstr(s_text(q, 2)), "priority",
                              (json_int_t)sqlite3_column_int64(q, 3));
        if (s_profile_sig(o, s_text(q, 4), s_text(q, 5)) < 0) {
            json_decref(o);
            rc = -ENOMEM;
        } else if (json_array_append_new(arr, o) < 0) {
            rc = -ENOMEM;
        }
    }
    sql_release(st->cache, q);
    if (rc == 0 && (*out = json_pack("{s:o}", "profiles", arr)) != NULL)
        return 0;
    util_errf(err, errlen, "out of memory");
    return -ENOMEM;
}

int store_profile_show(store_t *st, const char *name, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q =
        sql_cached(st->cache, "SELECT name, description, source, priority, added_at,"
                              " json, signature, signer FROM profiles WHERE name = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        *out = json_pack("{s:o, s:o, s:o, s:I, s:I, s:o}", "name", s_jstr(s_text(q, 0)),
                         "description", s_jstr(s_text(q, 1)), "source", s_jstr(s_text(q, 2)),
                         "priority", (json_int_t)sqlite3_column_int64(q, 3), "added_at",
                         (json_int_t)sqlite3_column_int64(q, 4), "json", s_jstr(s_text(q, 5)));
        if (s_profile_sig(*out, s_text(q, 6), s_text(q, 7)) < 0) {
            json_decref(*out);
            *out = NULL;
        }
        if (*out == NULL) {
            util_errf(err, errlen, "out of memory");
            rc = -ENOMEM;
        }
    } else {
        char qn[80];
        util_errf(err, errlen, "unknown profile '%s'", log_quote(name, qn, sizeof qn));
        rc = -ENOENT;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_profile_remove(store_t *st, const char *user, const char *name, json_t *site_ids,
                         char *err, size_t errlen)
{
    char qn[80];
    int sp, rc = store_rollout_tx_begin(st, &sp);
    if (rc < 0)
        return s_dberr(st, err, errlen);
    sqlite3_stmt *q = sql_cached(
        st->cache, "SELECT (SELECT count(*) FROM profiles WHERE name = ?1),"
                   " (SELECT name FROM rollouts WHERE profile = ?1 AND state IN " UNFINISHED
                   " ORDER BY id LIMIT 1),"
                   " (SELECT mac FROM device WHERE profile = ?1 ORDER BY mac LIMIT 1)");
    if (q == NULL ||
        (sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC), sqlite3_step(q)) != SQLITE_ROW) {
        rc = s_dberr(st, err, errlen);
    } else if (sqlite3_column_int64(q, 0) == 0) {
        util_errf(err, errlen, "unknown profile '%s'", log_quote(name, qn, sizeof qn));
        rc = -ENOENT;
    } else if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
        util_errf(err, errlen,
                  "profile %s is used by rollout %s (%s); abort it or wait until it is done", name,
                  s_text(q, 1), "unfinished");
        rc = -EBUSY;
    } else if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
        util_errf(err, errlen, "profile %s is pinned on device %s", name, s_text(q, 2));
        rc = -EBUSY;
    }
    sql_release(st->cache, q);
    if (rc == 0) {
        q = sql_cached(st->cache, "DELETE FROM profiles WHERE name = ?1");
        if (q)
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        if ((rc = s_done(st, q)) < 0 || (rc = s_bump_all(st, site_ids)) < 0)
            s_dberr(st, err, errlen);
    }
    if (rc == 0) {
        char detail[128];
        snprintf(detail, sizeof detail, "profile=%s", name);
        if (store_audit(st, user, "profile.remove", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    return store_rollout_tx_end(st, sp, rc);
}

int store_profile_json(store_t *st, const char *name, char **out)
{
    *out = NULL;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT json FROM profiles WHERE name = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = -ENOENT;
    if (sqlite3_step(q) == SQLITE_ROW)
        rc = (*out = strdup(s_text(q, 0))) ? 0 : -ENOMEM;
    sql_release(st->cache, q);
    return rc;
}

int store_profile_for_vendor(store_t *st, const char *vendor, json_t **out)
{
    *out = json_array();
    sqlite3_stmt *q =
        sql_cached(st->cache, "SELECT name FROM profiles WHERE lower(name) = lower(?1)"
                              " OR substr(lower(name), 1, length(?1) + 1) ="
                              " lower(?1) || '-' ORDER BY name");
    if (q == NULL || *out == NULL) {
        sql_release(st->cache, q);
        return -EIO;
    }
    sqlite3_bind_text(q, 1, vendor, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(*out, s_jstr(s_text(q, 0)));
    sql_release(st->cache, q);
    return 0;
}

/* ---- firmware ---- */

int store_rollout_firmware(store_t *st, const char *ref, struct store_fw_ref *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT id, vendor, version FROM firmware"
                                            " WHERE vendor || '/' || version = ?1"
                                            " OR CAST(id AS TEXT) = ?1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_text(q, 1, ref, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        out->id = sqlite3_column_int64(q, 0);
        s_copy(out->vendor, sizeof out->vendor, q, 1);
        s_copy(out->version, sizeof out->version, q, 2);
        snprintf(out->ref, sizeof out->ref, "%s/%s", out->vendor, out->version);
    } else {
        char qr[80];
        util_errf(err, errlen, "unknown firmware '%s'", log_quote(ref, qr, sizeof qr));
        rc = -ENOENT;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_rollout_fw_files(store_t *st, int64_t fw_id, json_t **out)
{
    *out = json_array();
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT f.name, f.sha256, b.size FROM firmware_file f"
                                            " JOIN blob b ON b.sha256 = f.sha256"
                                            " WHERE f.firmware_id = ?1 ORDER BY f.name");
    if (q == NULL || *out == NULL) {
        sql_release(st->cache, q);
        return -EIO;
    }
    sqlite3_bind_int64(q, 1, fw_id);
    while (sqlite3_step(q) == SQLITE_ROW)
        json_array_append_new(*out, json_pack("{s:o, s:o, s:I}", "name", s_jstr(s_text(q, 0)),
                                              "sha256", s_jstr(s_text(q, 1)), "size",
                                              (json_int_t)sqlite3_column_int64(q, 2)));
    sql_release(st->cache, q);
    return 0;
}

/* ---- rollouts ---- */

#define ROLLOUT_COLS                                                                               \
    "SELECT r.id, r.firmware_id, r.name, f.vendor || '/' || f.version, f.version, r.profile,"      \
    " r.waves, r.max_failures, r.window, r.state, r.reason, r.timeouts, r.site_concurrency,"       \
    " r.boot_grace_s, r.stage_fresh, r.spread_s, r.verify_s, coalesce(r.start_at, 0),"             \
    " r.current_wave, r.n_waves, r.created_at, coalesce(r.started_at, 0),"                         \
    " coalesce(r.finished_at, 0) FROM rollouts r JOIN firmware f ON f.id = r.firmware_id "

static void s_rollout_fill(sqlite3_stmt *q, struct store_rollout *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(q, 0);
    r->firmware_id = sqlite3_column_int64(q, 1);
    s_copy(r->name, sizeof r->name, q, 2);
    s_copy(r->firmware, sizeof r->firmware, q, 3);
    s_copy(r->version, sizeof r->version, q, 4);
    s_copy(r->profile, sizeof r->profile, q, 5);
    s_copy(r->waves, sizeof r->waves, q, 6);
    s_copy(r->max_failures, sizeof r->max_failures, q, 7);
    s_copy(r->window, sizeof r->window, q, 8);
    s_copy(r->state, sizeof r->state, q, 9);
    s_copy(r->reason, sizeof r->reason, q, 10);
    s_copy(r->timeouts, sizeof r->timeouts, q, 11);
    r->site_concurrency = sqlite3_column_int64(q, 12);
    r->boot_grace_s = sqlite3_column_int64(q, 13);
    r->stage_fresh = sqlite3_column_int64(q, 14);
    r->spread_s = sqlite3_column_int64(q, 15);
    r->verify_s = sqlite3_column_int64(q, 16);
    r->start_at = sqlite3_column_int64(q, 17);
    r->current_wave = sqlite3_column_int64(q, 18);
    r->n_waves = sqlite3_column_int64(q, 19);
    r->created_at = sqlite3_column_int64(q, 20);
    r->started_at = sqlite3_column_int64(q, 21);
    r->finished_at = sqlite3_column_int64(q, 22);
}

int store_rollout_get(store_t *st, const char *name_or_id, struct store_rollout *out, char *err,
                      size_t errlen)
{
    sqlite3_stmt *q =
        sql_cached(st->cache, ROLLOUT_COLS "WHERE r.name = ?1 OR CAST(r.id AS TEXT) = ?1"
                                           " ORDER BY r.name = ?1 DESC LIMIT 1");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    sqlite3_bind_text(q, 1, name_or_id, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        s_rollout_fill(q, out);
    } else {
        char qn[80];
        util_errf(err, errlen, "unknown rollout '%s'", log_quote(name_or_id, qn, sizeof qn));
        rc = -ENOENT;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_rollout_by_id(store_t *st, int64_t id, struct store_rollout *out)
{
    sqlite3_stmt *q = sql_cached(st->cache, ROLLOUT_COLS "WHERE r.id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    int step = sqlite3_step(q), rc = 0;
    if (step == SQLITE_ROW) {
        s_rollout_fill(q, out);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = -EIO;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_rollout_active(store_t *st, int64_t *ids, int max)
{
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT id FROM rollouts WHERE state IN"
                                            " ('scheduled', 'running', 'paused', 'halted')"
                                            " ORDER BY id");
    if (q == NULL)
        return -EIO;
    int n = 0;
    while (n < max && sqlite3_step(q) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(q, 0);
    sql_release(st->cache, q);
    return n;
}

int store_rollout_name_taken(store_t *st, const char *name)
{
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT 1 FROM rollouts WHERE name = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(q);
    sql_release(st->cache, q);
    return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -EIO;
}

int store_rollout_select(store_t *st, const char *selector, int64_t fw_id, int64_t rollout_id,
                         struct store_rollout_target **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* for a rollout, only devices past its watermark count: when there is
     * none (nearly every engine turn), skip the query below, which reads
     * every device (its "d.id > watermark" sits behind "?3 = 0 OR" and can
     * use no index) */
    if (rollout_id > 0) {
        sqlite3_stmt *w = sql_cached(st->cache, "SELECT EXISTS (SELECT 1 FROM device WHERE id >"
                                                " (SELECT device_watermark FROM rollouts"
                                                " WHERE id = ?1))");
        if (w == NULL)
            return -EIO;
        sqlite3_bind_int64(w, 1, rollout_id);
        int step = sqlite3_step(w), any = step == SQLITE_ROW && sqlite3_column_int(w, 0) != 0;
        sql_release(st->cache, w);
        if (step != SQLITE_ROW)
            return -EIO;
        if (!any)
            return 0;
    }
    /* a rollout's own selector, read first: bound as ?1 below, the lists
     * in it are constants to SQLite, so each IN (json_each ...) is built
     * once per statement; taken from a joined row they were re-read for
     * every device (100 sites x 100,000 devices: 3 s of a 5 s create) */
    char *own = NULL;
    if (rollout_id > 0) {
        sqlite3_stmt *w = sql_cached(st->cache, "SELECT selector FROM rollouts WHERE id = ?1");
        if (w == NULL)
            return -EIO;
        sqlite3_bind_int64(w, 1, rollout_id);
        int step = sqlite3_step(w);
        if (step == SQLITE_ROW) {
            const char *j = (const char *)sqlite3_column_text(w, 0);
            own = strdup(j ? j : "{}");
        }
        sql_release(st->cache, w);
        if (step != SQLITE_ROW)
            return step == SQLITE_DONE ? 0 : -EIO;
        if (own == NULL)
            return -ENOMEM;
        selector = own;
    }
    /* ?1 the selector; each list filters only when it is non-empty; tags:
     * the device must carry every one */
    sqlite3_stmt *q = sql_cached(
        st->cache, "SELECT d.id, d.site_id, d.mac, s.name, d.model,"
                   " (SELECT r.name FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id"
                   "   WHERE rd.device_id = d.id AND r.id <> ?3 AND r.state IN " UNFINISHED
                   "   AND rd.state NOT IN " TERMINAL " LIMIT 1)"
                   " FROM device d JOIN site s ON s.id = d.site_id"
                   " WHERE d.model IN (SELECT model FROM firmware_model WHERE firmware_id = ?2)"
                   " AND (coalesce(json_array_length(?1, '$.sites'), 0) = 0"
                   "   OR s.name IN (SELECT value FROM json_each(?1, '$.sites')))"
                   " AND (coalesce(json_array_length(?1, '$.models'), 0) = 0"
                   "   OR d.model IN (SELECT value FROM json_each(?1, '$.models')))"
                   " AND (coalesce(json_array_length(?1, '$.devices'), 0) = 0"
                   "   OR d.mac IN (SELECT value FROM json_each(?1, '$.devices')))"
                   " AND NOT EXISTS (SELECT 1 FROM json_each(?1, '$.tags') t"
                   "   WHERE instr(',' || d.tags || ',', ',' || t.value || ',') = 0)"
                   " AND (?3 = 0 OR d.id > (SELECT device_watermark FROM rollouts WHERE id = ?3))"
                   " AND (?3 = 0 OR NOT EXISTS (SELECT 1 FROM rollout_devices x"
                   "   WHERE x.rollout_id = ?3 AND x.device_id = d.id))"
                   " ORDER BY s.name, d.mac");
    if (q == NULL) {
        free(own);
        return -EIO;
    }
    sqlite3_bind_text(q, 1, selector ? selector : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, fw_id);
    sqlite3_bind_int64(q, 3, rollout_id);
    size_t cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            struct store_rollout_target *g = realloc(*out, cap * sizeof *g);
            if (g == NULL) {
                rc = -ENOMEM;
                break;
            }
            *out = g;
        }
        struct store_rollout_target *t = &(*out)[(*n)++];
        memset(t, 0, sizeof *t);
        t->device_id = sqlite3_column_int64(q, 0);
        t->site_id = sqlite3_column_int64(q, 1);
        s_copy(t->mac, sizeof t->mac, q, 2);
        s_copy(t->site, sizeof t->site, q, 3);
        s_copy(t->model, sizeof t->model, q, 4);
        s_copy(t->busy, sizeof t->busy, q, 5);
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = -EIO;
    sql_release(st->cache, q);
    free(own);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int store_ctl_event(store_t *st, int64_t site_id, const char *kind, const char *mac,
                    const char *detail, uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(st->cache, "INSERT INTO event(agent_id, seq, time_ms, received_ms,"
                                            " kind, mac, detail, site_id)"
                                            " VALUES(NULL, 0, ?1, ?1, ?2, ?3, ?4, ?5)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, (int64_t)now_ms);
    sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, mac ? mac : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, detail ? detail : "", -1, SQLITE_STATIC);
    if (site_id > 0)
        sqlite3_bind_int64(q, 5, site_id);
    else
        sqlite3_bind_null(q, 5);
    return s_done(st, q);
}

int store_rollout_device_add(store_t *st, int64_t rollout_id, const struct store_rollout_target *t,
                             int64_t wave, uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "INSERT INTO rollout_devices(rollout_id, device_id, mac, site_id, model, wave,"
                   " state, reason, entered_at, updated_at)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'pending', '', ?7, ?7)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_int64(q, 2, t->device_id);
    sqlite3_bind_text(q, 3, t->mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, t->site_id);
    sqlite3_bind_text(q, 5, t->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, wave);
    sqlite3_bind_int64(q, 7, (int64_t)now_ms);
    return s_done(st, q);
}

int store_rollout_bump_sites(store_t *st, int64_t id, json_t *site_ids)
{
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT DISTINCT site_id FROM rollout_devices"
                                            " WHERE rollout_id = ?1 ORDER BY site_id");
    sqlite3_stmt *u = sql_cached(st->cache, "UPDATE site SET generation = generation + 1"
                                            " WHERE id = ?1");
    int rc = q && u ? 0 : -EIO;
    if (rc == 0) {
        sqlite3_bind_int64(q, 1, id);
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
            int64_t site = sqlite3_column_int64(q, 0);
            sqlite3_reset(u);
            sqlite3_bind_int64(u, 1, site);
            if (sqlite3_step(u) != SQLITE_DONE)
                rc = -EIO;
            else if (site_ids)
                json_array_append_new(site_ids, json_integer(site));
        }
    }
    sql_release(st->cache, q);
    sql_release(st->cache, u);
    return rc;
}

int store_rollout_insert(store_t *st, const char *user, const struct store_rollout_in *in,
                         const struct store_rollout_target *t, const int64_t *wave, size_t n,
                         uint64_t now_ms, int64_t *id_out, json_t *site_ids, char *err,
                         size_t errlen)
{
    int sp, rc = store_rollout_tx_begin(st, &sp);
    if (rc < 0)
        return s_dberr(st, err, errlen);
    if ((rc = store_rollout_name_taken(st, in->name)) != 0) {
        if (rc > 0)
            util_errf(err, errlen, "rollout %s already exists", in->name);
        else
            s_dberr(st, err, errlen);
        rc = rc > 0 ? -EEXIST : rc;
    }
    int64_t id = 0;
    if (rc == 0) {
        sqlite3_stmt *q = sql_cached(
            st->cache,
            "INSERT INTO rollouts(name, firmware_id, profile, selector, waves,"
            " max_failures, site_concurrency, window, boot_grace_s, stage_fresh, spread_s,"
            " verify_s, timeouts, start_at, state, current_wave, n_waves, created_by,"
            " created_at, device_watermark) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
            " ?10, ?11, ?12, ?13, ?14, 'created', 0, ?15, ?16, ?17,"
            " (SELECT coalesce(max(id), 0) FROM device))");
        if (q != NULL) {
            sqlite3_bind_text(q, 1, in->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, in->firmware_id);
            sqlite3_bind_text(q, 3, in->profile, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, in->selector, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 5, in->waves, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 6, in->max_failures, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 7, in->site_concurrency);
            sqlite3_bind_text(q, 8, in->window ? in->window : "", -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 9, in->boot_grace_s);
            sqlite3_bind_int64(q, 10, in->stage_fresh);
            sqlite3_bind_int64(q, 11, in->spread_s);
            sqlite3_bind_int64(q, 12, in->verify_s);
            sqlite3_bind_text(q, 13, in->timeouts ? in->timeouts : "{}", -1, SQLITE_STATIC);
            if (in->start_at > 0)
                sqlite3_bind_int64(q, 14, in->start_at);
            else
                sqlite3_bind_null(q, 14);
            sqlite3_bind_int64(q, 15, in->n_waves);
            sqlite3_bind_text(q, 16, user ? user : "", -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 17, (int64_t)now_ms);
        }
        if ((rc = s_done(st, q)) < 0)
            s_dberr(st, err, errlen);
        id = sqlite3_last_insert_rowid(st->db);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = store_rollout_device_add(st, id, &t[i], wave[i], now_ms)) < 0)
            s_dberr(st, err, errlen);
    if (rc == 0 && (rc = store_rollout_bump_sites(st, id, site_ids)) < 0)
        s_dberr(st, err, errlen);
    if (rc == 0) {
        char detail[512];
        snprintf(detail, sizeof detail,
                 "rollout=%lld name=%s state=created reason=\"\" devices=%zu", (long long)id,
                 in->name, n);
        if (store_ctl_event(st, 0, "rollout.state", "", detail, now_ms) < 0)
            rc = s_dberr(st, err, errlen);
        snprintf(detail, sizeof detail,
                 "rollout=%s id=%lld firmware_id=%lld profile=%s"
                 " waves=%s max_failures=%s devices=%zu",
                 in->name, (long long)id, (long long)in->firmware_id, in->profile, in->waves,
                 in->max_failures, n);
        if (rc == 0 && store_audit(st, user, "rollout.create", detail) < 0)
            rc = s_dberr(st, err, errlen);
    }
    rc = store_rollout_tx_end(st, sp, rc);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

int store_rollout_set_state(store_t *st, int64_t id, const char *state, const char *reason,
                            uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "UPDATE rollouts SET state = ?2, reason = ?3,"
                   " started_at = CASE WHEN started_at IS NULL AND ?2 IN ('running', 'scheduled')"
                   "   THEN ?4 ELSE started_at END,"
                   " finished_at = CASE WHEN ?2 IN ('aborted', 'done') THEN ?4 ELSE finished_at END"
                   " WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, (int64_t)now_ms);
    return s_done(st, q);
}

int store_rollout_watermark(store_t *st, int64_t id)
{
    sqlite3_stmt *q = sql_cached(st->cache, "UPDATE rollouts SET device_watermark ="
                                            " (SELECT coalesce(max(id), 0) FROM device)"
                                            " WHERE id = ?1 AND device_watermark <"
                                            " (SELECT coalesce(max(id), 0) FROM device)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    return s_done(st, q);
}

int store_rollout_set_wave(store_t *st, int64_t id, int64_t wave)
{
    sqlite3_stmt *q = sql_cached(st->cache, "UPDATE rollouts SET current_wave = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, wave);
    return s_done(st, q);
}

#define RDEV_COLS_FROM                                                                             \
    "SELECT rd.device_id, rd.site_id, rd.wave, rd.entered_at, rd.updated_at, rd.state, rd.mac,"    \
    " rd.model, rd.reason, coalesce(d.current_version, ''), coalesce(d.serial_firmware, '')"       \
    " FROM rollout_devices"
#define RDEV_JOIN_DEVICE " LEFT JOIN device d ON d.id = rd.device_id "
#define RDEV_COLS RDEV_COLS_FROM " rd" RDEV_JOIN_DEVICE

static void s_rdev_fill(sqlite3_stmt *q, struct store_rdev *r)
{
    memset(r, 0, sizeof *r);
    r->device_id = sqlite3_column_int64(q, 0);
    r->site_id = sqlite3_column_int64(q, 1);
    r->wave = sqlite3_column_int64(q, 2);
    r->entered_at = sqlite3_column_int64(q, 3);
    r->updated_at = sqlite3_column_int64(q, 4);
    r->state = store_rdev_index(s_text(q, 5));
    s_copy(r->mac, sizeof r->mac, q, 6);
    s_copy(r->model, sizeof r->model, q, 7);
    s_copy(r->reason, sizeof r->reason, q, 8);
    s_copy(r->version, sizeof r->version, q, 9);
    s_copy(r->serial_firmware, sizeof r->serial_firmware, q, 10);
}

int store_rollout_devices(store_t *st, int64_t rollout_id, const struct store_rdev_filter *f,
                          struct store_rdev **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* One text per filter shape: SQLite plans a statement once, before the
     * values are bound, so "(?2 IS NULL OR rd.state = ?2)" can use no index
     * and every engine turn read all the rollout's rows (100,000 at the
     * benchmark) and sorted them. With the state and the bound spelled out,
     * the engine's queue streams from rollout_devices_queue in ORDER BY
     * order and stops at the limit, and the timeout sweep reads only the
     * expired rows from rollout_devices_timed. */
#define RDEV_ASSIGNABLE                                                                            \
    " AND (?5 = 0 OR rd.state <> 'pending' OR rd.reason <> 'no agent'"                             \
    "   OR EXISTS (SELECT 1 FROM agent a WHERE a.site_id = rd.site_id"                             \
    "   AND a.revoked_ms IS NULL))"                                                                \
    " ORDER BY rd.wave, rd.site_id, rd.mac LIMIT ?6"
    static const char *const by_wave =
        RDEV_COLS "WHERE rd.rollout_id = ?1 AND rd.state = ?2 AND rd.wave <= ?3"
                  " AND (?4 = 0 OR rd.entered_at < ?4)" RDEV_ASSIGNABLE;
    static const char *const by_time =
        RDEV_COLS_FROM " rd INDEXED BY rollout_devices_timed" RDEV_JOIN_DEVICE
                       "WHERE rd.rollout_id = ?1 AND rd.state = ?2 AND rd.entered_at < ?4"
                       " AND (?3 = 0 OR rd.wave <= ?3)" RDEV_ASSIGNABLE;
    static const char *const any = RDEV_COLS
        "WHERE rd.rollout_id = ?1 AND (?2 IS NULL OR rd.state = ?2)"
        " AND (?3 = 0 OR rd.wave <= ?3) AND (?4 = 0 OR rd.entered_at < ?4)" RDEV_ASSIGNABLE;
#undef RDEV_ASSIGNABLE
    const char *sql = any;
    if (store_rdev_name(f->state) && f->max_wave > 0)
        sql = by_wave;
    else if (store_rdev_name(f->state) && f->entered_before > 0)
        sql = by_time;
    sqlite3_stmt *q = sql_cached(st->cache, sql);
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    if (store_rdev_name(f->state))
        sqlite3_bind_text(q, 2, store_rdev_name(f->state), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 2);
    sqlite3_bind_int64(q, 3, f->max_wave);
    sqlite3_bind_int64(q, 4, f->entered_before);
    sqlite3_bind_int(q, 5, f->assignable);
    sqlite3_bind_int64(q, 6, f->limit > 0 ? f->limit : -1);
    size_t cap = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            struct store_rdev *g = realloc(*out, cap * sizeof *g);
            if (g == NULL) {
                rc = -ENOMEM;
                break;
            }
            *out = g;
        }
        s_rdev_fill(q, &(*out)[(*n)++]);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = -EIO;
    sql_release(st->cache, q);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int store_rollout_device_get(store_t *st, int64_t rollout_id, const char *mac,
                             struct store_rdev *out)
{
    sqlite3_stmt *q = sql_cached(st->cache, RDEV_COLS "WHERE rd.rollout_id = ?1 AND rd.mac = ?2");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_text(q, 2, mac, -1, SQLITE_STATIC);
    int step = sqlite3_step(q), rc = 0;
    if (step == SQLITE_ROW) {
        s_rdev_fill(q, out);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = -EIO;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_rollout_device_set(store_t *st, int64_t rollout_id, int64_t device_id, int state,
                             const char *reason, uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "UPDATE rollout_devices SET entered_at = CASE WHEN state = ?3 THEN entered_at"
                   " ELSE ?5 END, state = ?3, reason = ?4, updated_at = ?5"
                   " WHERE rollout_id = ?1 AND device_id = ?2");
    if (q == NULL || store_rdev_name(state) == NULL) {
        sql_release(st->cache, q);
        return -EIO;
    }
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_int64(q, 2, device_id);
    sqlite3_bind_text(q, 3, store_rdev_name(state), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, reason ? reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (int64_t)now_ms);
    return s_done(st, q);
}

int64_t store_rollout_count_state(store_t *st, int64_t rollout_id, int state)
{
    if (store_rdev_name(state) == NULL)
        return -EINVAL;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT count(*) FROM rollout_devices"
                                            " WHERE rollout_id = ?1 AND state = ?2");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_text(q, 2, store_rdev_name(state), -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -EIO;
    sql_release(st->cache, q);
    return n;
}

int store_rollout_in_flight(store_t *st, int64_t rollout_id, int64_t max_wave)
{
    /* IN (each unfinished state), not NOT IN TERMINAL: one seek per state
     * into rollout_devices_queue (rollout_id, state, wave, ...) */
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT EXISTS (SELECT 1 FROM rollout_devices"
                                            " WHERE rollout_id = ?1 AND state IN ('pending',"
                                            " 'assigned', 'waiting_window', 'offered',"
                                            " 'downloading', 'installed', 'verifying')"
                                            " AND (?2 = 0 OR wave <= ?2))");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_int64(q, 2, max_wave);
    int rc = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) != 0 : -EIO;
    sql_release(st->cache, q);
    return rc;
}

int store_rollout_counts(store_t *st, int64_t rollout_id, int64_t max_wave,
                         int64_t counts[STORE_RDEV_N])
{
    memset(counts, 0, STORE_RDEV_N * sizeof counts[0]);
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT state, count(*) FROM rollout_devices"
                                            " WHERE rollout_id = ?1 AND (?2 = 0 OR wave <= ?2)"
                                            " GROUP BY state");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, rollout_id);
    sqlite3_bind_int64(q, 2, max_wave);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int i = store_rdev_index(s_text(q, 0));
        if (i >= 0)
            counts[i] = sqlite3_column_int64(q, 1);
    }
    sql_release(st->cache, q);
    return 0;
}

int store_rollout_device_window(store_t *st, int64_t device_id, char *out, size_t n)
{
    out[0] = '\0';
    sqlite3_stmt *q = sql_cached(
        st->cache, "SELECT coalesce((SELECT c.window FROM device_class c WHERE c.name = d.class"
                   "   AND d.class <> '' AND (c.site_id = d.site_id OR c.site_id IS NULL)"
                   "   ORDER BY c.site_id IS NULL LIMIT 1), ''), s.window"
                   " FROM device d JOIN site s ON s.id = d.site_id WHERE d.id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, device_id);
    if (sqlite3_step(q) == SQLITE_ROW)
        snprintf(out, n, "%s", *s_text(q, 0) ? s_text(q, 0) : s_text(q, 1));
    sql_release(st->cache, q);
    return 0;
}

/* ---- device versions ---- */

int store_device_version(store_t *st, const char *mac, char *version, size_t n, int64_t *site_id)
{
    sqlite3_stmt *q =
        sql_cached(st->cache, "SELECT current_version, site_id FROM device WHERE mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    int rc = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        snprintf(version, n, "%s", s_text(q, 0));
        *site_id = sqlite3_column_int64(q, 1);
        rc = 1;
    }
    sql_release(st->cache, q);
    return rc;
}

int store_device_version_set(store_t *st, const char *mac, const char *version, int with_serial)
{
    sqlite3_stmt *q = sql_cached(
        st->cache,
        "UPDATE device SET current_version = ?2,"
        " serial_firmware = CASE WHEN ?3 THEN ?2 ELSE serial_firmware END WHERE mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, version, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, with_serial);
    return s_done(st, q);
}

int store_device_version_expected(store_t *st, const char *mac, const char *version)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "SELECT 1 FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id"
                   " JOIN firmware f ON f.id = r.firmware_id WHERE rd.mac = ?1"
                   " AND ((f.version = ?2 AND rd.state <> 'pending')"
                   "   OR (r.state IN " UNFINISHED " AND rd.state IN ('assigned', 'waiting_window',"
                   "   'offered', 'downloading', 'installed', 'verifying'))) LIMIT 1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, version, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q) == SQLITE_ROW;
    sql_release(st->cache, q);
    return rc;
}

/* ---- documents ---- */

static json_t *s_counts_obj(const int64_t c[STORE_RDEV_N])
{
    json_t *o = json_object();
    for (int i = 0; o && i < STORE_RDEV_N; i++)
        if (s_set(o, s_rdev_names[i], json_integer(c[i])) < 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

int store_rollout_list(store_t *st, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_cached(
        st->cache,
        "SELECT r.id, r.name, r.state, r.reason, f.vendor || '/' || f.version, r.profile,"
        " (SELECT count(*) FROM rollout_devices WHERE rollout_id = r.id),"
        " (SELECT count(*) FROM rollout_devices WHERE rollout_id = r.id"
        "   AND state = 'succeeded'),"
        " (SELECT count(*) FROM rollout_devices WHERE rollout_id = r.id"
        "   AND state = 'failed'), r.created_at"
        " FROM rollouts r JOIN firmware f ON f.id = r.firmware_id ORDER BY r.id");
    if (q == NULL)
        return s_dberr(st, err, errlen);
    json_t *arr = json_array();
    int rc = arr ? 0 : -ENOMEM;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "id",
                              (json_int_t)sqlite3_column_int64(q, 0), "name", s_jstr(s_text(q, 1)),
                              "state", s_jstr(s_text(q, 2)), "reason", s_jstr(s_text(q, 3)),
                              "firmware", s_jstr(s_text(q, 4)), "profile", s_jstr(s_text(q, 5)),
                              "total", (json_int_t)sqlite3_column_int64(q, 6), "succeeded",
                              (json_int_t)sqlite3_column_int64(q, 7), "failed",
                              (json_int_t)sqlite3_column_int64(q, 8), "created_at",
                              (json_int_t)sqlite3_column_int64(q, 9));
        if (o == NULL || json_array_append_new(arr, o) < 0)
            rc = -ENOMEM;
    }
    sql_release(st->cache, q);
    if (rc == 0 && (*out = json_pack("{s:o}", "rollouts", arr)) != NULL)
        return 0;
    util_errf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* Counts of one wave or one site of a rollout. */
struct group {
    int64_t key, total;
    char name[64];
    int staged;
    int64_t c[STORE_RDEV_N];
};

/* The group of key in *g (n of them), added when missing; NULL out of
 * memory. *hint is the index of the last one found: rows come grouped by
 * site, so it is nearly always the one (a linear search over 1,000 sites
 * per row was most of the status time of a 100,000-device rollout). */
static struct group *s_group(struct group **g, size_t *n, size_t *hint, int64_t key)
{
    if (*hint < *n && (*g)[*hint].key == key)
        return &(*g)[*hint];
    for (size_t i = 0; i < *n; i++)
        if ((*g)[i].key == key) {
            *hint = i;
            return &(*g)[i];
        }
    struct group *grown = realloc(*g, (*n + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    *g = grown;
    memset(&grown[*n], 0, sizeof grown[*n]);
    grown[*n].key = key;
    *hint = *n;
    return &grown[(*n)++];
}

static int s_group_by_key(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int s_group_by_name(const void *a, const void *b)
{
    const struct group *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* Adds n devices of state in wave and site to the groups. 0 or -ENOMEM. */
static int s_count(struct group **wg, size_t *nw, size_t *hw, struct group **sg, size_t *ns,
                   size_t *hs, int64_t wave, int64_t site, int state, int64_t n)
{
    struct group *w = s_group(wg, nw, hw, wave), *s = w ? s_group(sg, ns, hs, site) : NULL;
    if (s == NULL)
        return -ENOMEM;
    w->total += n;
    s->total += n;
    if (state >= 0) {
        w->c[state] += n;
        s->c[state] += n;
    }
    return 0;
}

/* A failures entry from columns mac, site name, reason, updated_at. */
static int s_failure(json_t *failures, sqlite3_stmt *q, int mac, int site, int reason, int at)
{
    json_t *f = json_pack("{s:o, s:o, s:o, s:I}", "mac", s_jstr(s_text(q, mac)), "site",
                          s_jstr(s_text(q, site)), "reason", s_jstr(s_text(q, reason)), "at",
                          (json_int_t)sqlite3_column_int64(q, at));
    return f == NULL || json_array_append_new(failures, f) < 0 ? -ENOMEM : 0;
}

int store_rollout_status(store_t *st, const char *name_or_id, int with_devices, json_t **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    struct store_rollout r;
    int rc = store_rollout_get(st, name_or_id, &r, err, errlen);
    if (rc < 0)
        return rc;
    int64_t counts[STORE_RDEV_N];
    store_rollout_counts(st, r.id, 0, counts);
    int64_t total = 0;
    for (int i = 0; i < STORE_RDEV_N; i++)
        total += counts[i];
    json_t *doc = json_object(), *ro = json_object(), *devices = json_array(),
           *failures = json_array(), *waves = json_array(), *sites = json_array();
    struct group *wg = NULL, *sg = NULL;
    size_t nw = 0, ns = 0, hw = 0, hs = 0;
    rc = doc && ro && devices && failures && waves && sites ? 0 : -ENOMEM;
#define JT(v) ((v) > 0 ? json_integer(v) : json_null())
    if (rc == 0 &&
        (s_set(ro, "id", json_integer(r.id)) || s_set(ro, "name", s_jstr(r.name)) ||
         s_set(ro, "state", s_jstr(r.state)) || s_set(ro, "reason", s_jstr(r.reason)) ||
         s_set(ro, "firmware", s_jstr(r.firmware)) || s_set(ro, "version", s_jstr(r.version)) ||
         s_set(ro, "profile", s_jstr(r.profile)) || s_set(ro, "waves", s_jstr(r.waves)) ||
         s_set(ro, "max_failures", s_jstr(r.max_failures)) ||
         s_set(ro, "site_concurrency", json_integer(r.site_concurrency)) ||
         s_set(ro, "window", s_jstr(r.window)) ||
         s_set(ro, "current_wave", json_integer(r.current_wave)) ||
         s_set(ro, "total", json_integer(total)) ||
         s_set(ro, "created_at", json_integer(r.created_at)) ||
         s_set(ro, "started_at", JT(r.started_at)) || s_set(ro, "finished_at", JT(r.finished_at)) ||
         s_set(ro, "start_at", JT(r.start_at)) || s_set(ro, "n_waves", json_integer(r.n_waves))))
        rc = -ENOMEM;
#undef JT
    sqlite3_stmt *q = NULL;
    if (rc == 0 && with_devices) {
        /* every row: the device list, failures and the counts from one pass */
        q = sql_cached(st->cache, "SELECT rd.mac, s.name, rd.model, rd.wave, rd.state, rd.reason,"
                                  " rd.updated_at, rd.site_id FROM rollout_devices rd"
                                  " JOIN site s ON s.id = rd.site_id WHERE rd.rollout_id = ?1"
                                  " ORDER BY rd.wave, s.name, rd.mac");
        if (q == NULL)
            rc = -EIO;
        else
            sqlite3_bind_int64(q, 1, r.id);
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
            int state = store_rdev_index(s_text(q, 4));
            int64_t wave = sqlite3_column_int64(q, 3);
            rc = s_count(&wg, &nw, &hw, &sg, &ns, &hs, wave, sqlite3_column_int64(q, 7), state, 1);
            json_t *d = rc < 0
                            ? NULL
                            : json_pack("{s:o, s:o, s:o, s:I, s:o, s:o, s:I}", "mac",
                                        s_jstr(s_text(q, 0)), "site", s_jstr(s_text(q, 1)), "model",
                                        s_jstr(s_text(q, 2)), "wave", (json_int_t)wave, "state",
                                        s_jstr(s_text(q, 4)), "reason", s_jstr(s_text(q, 5)),
                                        "updated_at", (json_int_t)sqlite3_column_int64(q, 6));
            if (d == NULL || json_array_append_new(devices, d) < 0)
                rc = -ENOMEM;
            if (rc == 0 && state == STORE_RDEV_FAILED)
                rc = s_failure(failures, q, 0, 1, 5, 6);
        }
        sql_release(st->cache, q);
    } else if (rc == 0) {
        /* counts only: grouped in SQL (site-major, so the hint above hits),
         * then the failed devices alone, in the order of the device list */
        q = sql_cached(st->cache, "SELECT site_id, wave, state, count(*) FROM rollout_devices"
                                  " WHERE rollout_id = ?1 GROUP BY site_id, wave, state");
        if (q == NULL)
            rc = -EIO;
        else
            sqlite3_bind_int64(q, 1, r.id);
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW)
            rc = s_count(&wg, &nw, &hw, &sg, &ns, &hs, sqlite3_column_int64(q, 1),
                         sqlite3_column_int64(q, 0), store_rdev_index(s_text(q, 2)),
                         sqlite3_column_int64(q, 3));
        sql_release(st->cache, q);
        q = rc == 0
                ? sql_cached(st->cache, "SELECT rd.mac, s.name, rd.reason, rd.updated_at"
                                        " FROM rollout_devices rd JOIN site s ON s.id = rd.site_id"
                                        " WHERE rd.rollout_id = ?1 AND rd.state = 'failed'"
                                        " ORDER BY rd.wave, s.name, rd.mac")
                : NULL;
        if (rc == 0 && q == NULL)
            rc = -EIO;
        else if (rc == 0)
            sqlite3_bind_int64(q, 1, r.id);
        while (rc == 0 && sqlite3_step(q) == SQLITE_ROW)
            rc = s_failure(failures, q, 0, 1, 2, 3);
        sql_release(st->cache, q);
    }
    /* waves 1..n_waves, in order, empty ones included */
    for (int64_t w = 1; rc == 0 && w <= (r.n_waves > 0 ? r.n_waves : 1); w++) {
        struct group *g = s_group(&wg, &nw, &hw, w);
        if (g == NULL) {
            rc = -ENOMEM;
            break;
        }
        int64_t term = g->c[STORE_RDEV_SUCCEEDED] + g->c[STORE_RDEV_FAILED] +
                       g->c[STORE_RDEV_SKIPPED] + g->c[STORE_RDEV_CANCELLED];
        const char *ws = "waiting";
        if (strcmp(r.state, "done") == 0 || w < r.current_wave)
            ws = "done";
        else if (w == r.current_wave)
            ws = term == g->total && g->total > 0 ? "done" : "active";
        json_t *o = json_pack("{s:I, s:I, s:s, s:o}", "wave", (json_int_t)w, "size",
                              (json_int_t)g->total, "state", ws, "counts", s_counts_obj(g->c));
        if (o == NULL || json_array_append_new(waves, o) < 0)
            rc = -ENOMEM;
    }
    /* sites by name, named and judged by one query over the rollout's
     * sites; staged: every image of the rollout's firmware is in the cache
     * of each of the site's unrevoked agents (and it has one) */
    sqlite3_stmt *qs =
        rc == 0
            ? sql_cached(
                  st->cache,
                  "SELECT s.id, s.name,"
                  " EXISTS (SELECT 1 FROM agent WHERE site_id = s.id AND revoked_ms IS NULL)"
                  " AND NOT EXISTS (SELECT 1 FROM agent a, firmware_file f WHERE a.site_id = s.id"
                  "   AND a.revoked_ms IS NULL AND f.firmware_id = ?2"
                  "   AND instr(' ' || a.cached || ' ', ' ' || f.sha256 || ' ') = 0)"
                  " FROM site s WHERE EXISTS (SELECT 1 FROM rollout_devices rd"
                  "   WHERE rd.site_id = s.id AND rd.rollout_id = ?1)")
            : NULL;
    if (rc == 0 && qs == NULL)
        rc = -EIO;
    if (rc == 0) {
        if (ns > 1)
            qsort(sg, ns, sizeof *sg, s_group_by_key);
        sqlite3_bind_int64(qs, 1, r.id);
        sqlite3_bind_int64(qs, 2, r.firmware_id);
    }
    while (rc == 0 && sqlite3_step(qs) == SQLITE_ROW) {
        struct group key = {.key = sqlite3_column_int64(qs, 0)};
        struct group *g = ns ? bsearch(&key, sg, ns, sizeof *sg, s_group_by_key) : NULL;
        if (g != NULL) {
            snprintf(g->name, sizeof g->name, "%s", s_text(qs, 1));
            g->staged = sqlite3_column_int64(qs, 2) != 0;
        }
    }
    if (rc == 0 && ns > 1)
        qsort(sg, ns, sizeof *sg, s_group_by_name);
    for (size_t i = 0; rc == 0 && i < ns; i++) {
        json_t *o = json_pack("{s:o, s:I, s:b, s:o}", "site", s_jstr(sg[i].name), "total",
                              (json_int_t)sg[i].total, "staged", sg[i].staged, "counts",
                              s_counts_obj(sg[i].c));
        if (o == NULL || json_array_append_new(sites, o) < 0)
            rc = -ENOMEM;
    }
    sql_release(st->cache, qs);
    free(wg);
    free(sg);
    if (rc == 0 &&
        (s_set(doc, "rollout", json_incref(ro)) || s_set(doc, "counts", s_counts_obj(counts)) ||
         s_set(doc, "waves", json_incref(waves)) || s_set(doc, "sites", json_incref(sites)) ||
         s_set(doc, "failures", json_incref(failures)) ||
         (with_devices && s_set(doc, "devices", json_incref(devices)))))
        rc = -ENOMEM;
    json_decref(ro);
    json_decref(waves);
    json_decref(sites);
    json_decref(failures);
    json_decref(devices);
    if (rc < 0) {
        json_decref(doc);
        if (rc == -EIO)
            return s_dberr(st, err, errlen);
        util_errf(err, errlen, "out of memory");
        return rc;
    }
    *out = doc;
    return 0;
}
