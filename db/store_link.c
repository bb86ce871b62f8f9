/* store_link.c: see store_link.h. Statements are prepared on each call: a
 * few microseconds each, small beside the group commit's fsync; cache them
 * when event ingest needs it (issue: controller benchmarks).
 */
#include "store_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

static int s_fill(sqlite3_stmt *q, struct store_agent_link *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(q, 0);
    out->site_id = sqlite3_column_int64(q, 1);
    out->revoked = sqlite3_column_type(q, 2) != SQLITE_NULL;
    out->last_in_seq = (uint64_t)sqlite3_column_int64(q, 3);
    out->last_out_seq = (uint64_t)sqlite3_column_int64(q, 4);
    out->peer_acked_seq = (uint64_t)sqlite3_column_int64(q, 5);
    snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(q, 6));
    snprintf(out->site, sizeof out->site, "%s", (const char *)sqlite3_column_text(q, 7));
    return 1;
}

#define AGENT_COLS                                                                                 \
    "SELECT a.id, a.site_id, a.revoked_ms, a.last_in_seq, a.last_out_seq, a.peer_acked_seq,"      \
    " a.name, s.name FROM agent a JOIN site s ON s.id = a.site_id "

static int s_agent_query(store_t *st, const char *sql, const char *text, int64_t id,
                         struct store_agent_link *out)
{
    sqlite3_stmt *q = sql_prepare(st->db, sql);
    if (q == NULL)
        return -EIO;
    if (text)
        sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    int ret = rc == SQLITE_ROW ? s_fill(q, out) : rc == SQLITE_DONE ? 0 : -EIO;
    sqlite3_finalize(q);
    return ret;
}

int store_agent_by_pubkey(store_t *st, const char *z85, struct store_agent_link *out)
{
    return s_agent_query(st, AGENT_COLS "WHERE a.pubkey = ?1", z85, 0, out);
}

int store_agent_link_get(store_t *st, int64_t id, struct store_agent_link *out)
{
    return s_agent_query(st, AGENT_COLS "WHERE a.id = ?1", NULL, id, out);
}

static int s_step_done(sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_agent_hello(store_t *st, int64_t id, uint64_t now_ms, const char *version,
                      const char *cached_hex_list)
{
    sqlite3_stmt *q = sql_prepare(
        st->db, "UPDATE agent SET last_seen_ms = ?2, version = ?3, cached = ?4 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    sqlite3_bind_text(q, 3, version, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, cached_hex_list, -1, SQLITE_STATIC);
    return s_step_done(q);
}

int store_agent_seen(store_t *st, int64_t id, uint64_t now_ms)
{
    sqlite3_stmt *q = sql_prepare(st->db, "UPDATE agent SET last_seen_ms = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    return s_step_done(q);
}

int store_agent_add_cached(store_t *st, int64_t id, const char *sha_hex)
{
    sqlite3_stmt *q = sql_prepare(
        st->db, "UPDATE agent SET cached = CASE WHEN cached = '' THEN ?2 ELSE cached || ' ' || ?2 END"
                " WHERE id = ?1 AND instr(' ' || cached || ' ', ' ' || ?2 || ' ') = 0");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, sha_hex, -1, SQLITE_STATIC);
    return s_step_done(q);
}

int store_event_append(store_t *st, int64_t agent_id, uint64_t seq, uint64_t now_ms,
                       const Firmfleet__DeviceEvent *ev)
{
    sqlite3_stmt *q = sql_prepare(st->db, "INSERT INTO event(agent_id, seq, time_ms, received_ms,"
                                          " kind, mac, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)seq);
    sqlite3_bind_int64(q, 3, (int64_t)ev->time_ms);
    sqlite3_bind_int64(q, 4, (int64_t)now_ms);
    sqlite3_bind_text(q, 5, ev->kind ? ev->kind : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, ev->mac ? ev->mac : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, ev->detail ? ev->detail : "", -1, SQLITE_STATIC);
    int rc = s_step_done(q);
    if (rc < 0)
        return rc;
    q = sql_prepare(st->db, "UPDATE agent SET last_in_seq = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)seq);
    return s_step_done(q);
}

int store_device_seen(store_t *st, int64_t site_id, const char *mac, const char *vendor_class,
                      uint64_t now_ms)
{
    sqlite3_stmt *q = sql_prepare(
        st->db, "UPDATE device SET last_seen_ms = ?2,"
                " vendor_class = CASE WHEN ?3 = '' THEN vendor_class ELSE ?3 END WHERE mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    sqlite3_bind_text(q, 3, vendor_class, -1, SQLITE_STATIC);
    int rc = s_step_done(q);
    if (rc < 0 || sqlite3_changes(st->db) > 0)
        return rc;
    q = sql_prepare(st->db, "INSERT INTO device(mac, site_id, vendor_class, origin, created_ms,"
                            " last_seen_ms) VALUES(?1, ?2, ?3, 'discovered', ?4, ?4)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, site_id);
    sqlite3_bind_text(q, 3, vendor_class, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, (int64_t)now_ms);
    rc = s_step_done(q);
    return rc < 0 ? rc : 1;
}

int store_outbox_append(store_t *st, int64_t agent_id, const uint8_t *payload, size_t len,
                        uint64_t *seq)
{
    struct store_agent_link a;
    int rc = store_agent_link_get(st, agent_id, &a);
    if (rc <= 0)
        return rc == 0 ? -ENOENT : rc;
    uint64_t next = a.last_out_seq + 1;
    sqlite3_stmt *q = sql_prepare(st->db, "INSERT INTO outbox(agent_id, seq, payload, created_ms)"
                                          " VALUES(?1, ?2, ?3, strftime('%s','now') * 1000)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)next);
    sqlite3_bind_blob(q, 3, payload, (int)len, SQLITE_STATIC);
    if ((rc = s_step_done(q)) < 0)
        return rc;
    q = sql_prepare(st->db, "UPDATE agent SET last_out_seq = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)next);
    if ((rc = s_step_done(q)) < 0)
        return rc;
    *seq = next;
    return 0;
}

int store_outbox_ack(store_t *st, int64_t agent_id, uint64_t upto)
{
    sqlite3_stmt *q = sql_prepare(st->db, "DELETE FROM outbox WHERE agent_id = ?1 AND seq <= ?2");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)upto);
    int rc = s_step_done(q);
    if (rc < 0)
        return rc;
    q = sql_prepare(st->db, "UPDATE agent SET peer_acked_seq = max(peer_acked_seq, ?2)"
                            " WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)upto);
    return s_step_done(q);
}

int store_outbox_each(store_t *st, int64_t agent_id, uint64_t after, int max,
                      void (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len),
                      void *arg)
{
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT seq, payload FROM outbox WHERE agent_id = ?1"
                                          " AND seq > ?2 ORDER BY seq LIMIT ?3");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)after);
    sqlite3_bind_int(q, 3, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        fn(arg, (uint64_t)sqlite3_column_int64(q, 0), sqlite3_column_blob(q, 1),
           (size_t)sqlite3_column_bytes(q, 1));
        n++;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? n : -EIO;
}

static char *s_dup(const unsigned char *s) { return strdup(s ? (const char *)s : ""); }

void store_site_config_free(Firmfleet__SiteConfig *sc)
{
    if (sc == NULL)
        return;
    free(sc->site);
    free(sc->tz);
    for (size_t i = 0; i < sc->n_images; i++) {
        free(sc->images[i]->sha256.data);
        free(sc->images[i]->name);
        free(sc->images[i]);
    }
    free(sc->images);
    for (size_t i = 0; i < sc->n_devices; i++) {
        free(sc->devices[i]->mac);
        free(sc->devices[i]->model);
        free(sc->devices[i]->serial);
        free(sc->devices[i]);
    }
    free(sc->devices);
    free(sc);
}

static int s_unhex32(const unsigned char *hex, uint8_t *out)
{
    if (hex == NULL || strlen((const char *)hex) != 64)
        return -EINVAL;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf((const char *)hex + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int store_site_config(store_t *st, int64_t site_id, Firmfleet__SiteConfig **out)
{
    *out = NULL;
    Firmfleet__SiteConfig *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return -ENOMEM;
    firmfleet__site_config__init(sc);
    int ret = -EIO;
    sqlite3_stmt *q = sql_prepare(st->db, "SELECT name, tz, generation FROM site WHERE id = ?1");
    if (q == NULL)
        goto fail;
    sqlite3_bind_int64(q, 1, site_id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        ret = -ENOENT;
        goto fail;
    }
    sc->site = s_dup(sqlite3_column_text(q, 0));
    sc->tz = s_dup(sqlite3_column_text(q, 1));
    sqlite3_finalize(q);

    q = sql_prepare(st->db, "SELECT DISTINCT b.sha256, b.size, f.name FROM firmware_file f"
                            " JOIN blob b ON b.sha256 = f.sha256"
                            " JOIN firmware_model m ON m.firmware_id = f.firmware_id"
                            " WHERE m.model IN (SELECT model FROM device WHERE site_id = ?1)"
                            " GROUP BY b.sha256 ORDER BY b.sha256");
    if (q == NULL)
        goto fail;
    sqlite3_bind_int64(q, 1, site_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        Firmfleet__ImageRef **grown =
            realloc(sc->images, (sc->n_images + 1) * sizeof *sc->images);
        Firmfleet__ImageRef *ir = calloc(1, sizeof *ir);
        if (grown == NULL || ir == NULL) {
            if (grown)
                sc->images = grown;
            free(ir);
            sqlite3_finalize(q);
            ret = -ENOMEM;
            goto fail;
        }
        sc->images = grown;
        firmfleet__image_ref__init(ir);
        sc->images[sc->n_images++] = ir;
        ir->sha256.data = malloc(32);
        ir->name = s_dup(sqlite3_column_text(q, 2));
        if (ir->sha256.data == NULL || s_unhex32(sqlite3_column_text(q, 0), ir->sha256.data) < 0) {
            sqlite3_finalize(q);
            goto fail;
        }
        ir->sha256.len = 32;
        ir->size = (uint64_t)sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);

    q = sql_prepare(st->db,
                    "SELECT mac, model, serial FROM device WHERE site_id = ?1 ORDER BY mac");
    if (q == NULL)
        goto fail;
    sqlite3_bind_int64(q, 1, site_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        Firmfleet__DeviceRef **grown =
            realloc(sc->devices, (sc->n_devices + 1) * sizeof *sc->devices);
        Firmfleet__DeviceRef *d = calloc(1, sizeof *d);
        if (grown == NULL || d == NULL) {
            if (grown)
                sc->devices = grown;
            free(d);
            sqlite3_finalize(q);
            ret = -ENOMEM;
            goto fail;
        }
        sc->devices = grown;
        firmfleet__device_ref__init(d);
        sc->devices[sc->n_devices++] = d;
        d->mac = s_dup(sqlite3_column_text(q, 0));
        d->model = s_dup(sqlite3_column_text(q, 1));
        d->serial = s_dup(sqlite3_column_text(q, 2));
    }
    sqlite3_finalize(q);
    *out = sc;
    return 0;
fail:
    store_site_config_free(sc);
    return ret;
}
