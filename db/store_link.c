/* store_link.c: see store_link.h. Statements come from the store's cache
 * (sql_cached): preparing them on every call was a third of the CPU of an
 * assignment at 1,000 sites. Every one is given back with sql_release on
 * every path, which also forgets the SQLITE_STATIC bindings.
 */
#include "store_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dhcpopt.h"
#include "store_int.h"
#include "util.h"

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
    "SELECT a.id, a.site_id, a.revoked_ms, a.last_in_seq, a.last_out_seq, a.peer_acked_seq,"       \
    " a.name, s.name FROM agent a JOIN site s ON s.id = a.site_id "

static int s_agent_query(store_t *st, const char *sql, const char *text, int64_t id,
                         struct store_agent_link *out)
{
    sqlite3_stmt *q = sql_cached(st->cache, sql);
    if (q == NULL)
        return -EIO;
    if (text)
        sqlite3_bind_text(q, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    int ret = rc == SQLITE_ROW ? s_fill(q, out) : rc == SQLITE_DONE ? 0 : -EIO;
    sql_release(st->cache, q);
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

static int s_step_done(store_t *st, sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sql_release(st->cache, q);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_agent_hello(store_t *st, int64_t id, uint64_t now_ms, const char *version,
                      const char *cached_hex_list)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "UPDATE agent SET last_seen_ms = ?2, version = ?3, cached = ?4 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    sqlite3_bind_text(q, 3, version, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, cached_hex_list, -1, SQLITE_STATIC);
    return s_step_done(st, q);
}

int store_agent_seen(store_t *st, int64_t id, uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(st->cache, "UPDATE agent SET last_seen_ms = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    return s_step_done(st, q);
}

int store_agent_add_cached(store_t *st, int64_t id, const char *sha_hex)
{
    sqlite3_stmt *q = sql_cached(
        st->cache,
        "UPDATE agent SET cached = CASE WHEN cached = '' THEN ?2 ELSE cached || ' ' || ?2 END"
        " WHERE id = ?1 AND instr(' ' || cached || ' ', ' ' || ?2 || ' ') = 0");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, sha_hex, -1, SQLITE_STATIC);
    return s_step_done(st, q);
}

int store_event_insert(store_t *st, int64_t agent_id, uint64_t seq, uint64_t now_ms,
                       const Firmfleet__DeviceEvent *ev)
{
    sqlite3_stmt *q =
        sql_cached(st->cache, "INSERT INTO event(agent_id, seq, time_ms, received_ms,"
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
    return s_step_done(st, q);
}

int store_agent_in_seq(store_t *st, int64_t agent_id, uint64_t seq)
{
    sqlite3_stmt *q = sql_cached(st->cache, "UPDATE agent SET last_in_seq = ?2 WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)seq);
    return s_step_done(st, q);
}

int store_event_prune(store_t *st, uint64_t before_ms, int max)
{
    sqlite3_stmt *q = sql_cached(st->cache, "DELETE FROM event WHERE id IN"
                                            " (SELECT id FROM event ORDER BY id LIMIT ?2)"
                                            " AND received_ms < ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, (int64_t)before_ms);
    sqlite3_bind_int(q, 2, max);
    int rc = s_step_done(st, q);
    return rc < 0 ? rc : sqlite3_changes(st->db);
}

int store_event_append(store_t *st, int64_t agent_id, uint64_t seq, uint64_t now_ms,
                       const Firmfleet__DeviceEvent *ev)
{
    int rc = store_event_insert(st, agent_id, seq, now_ms, ev);
    return rc < 0 ? rc : store_agent_in_seq(st, agent_id, seq);
}

int store_device_seen(store_t *st, int64_t site_id, const char *mac, const char *vendor_class,
                      uint64_t now_ms)
{
    sqlite3_stmt *q = sql_cached(
        st->cache,
        "UPDATE device SET last_seen_ms = ?2,"
        " vendor_class = CASE WHEN ?3 = '' THEN vendor_class ELSE ?3 END WHERE mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (int64_t)now_ms);
    sqlite3_bind_text(q, 3, vendor_class, -1, SQLITE_STATIC);
    int rc = s_step_done(st, q);
    if (rc < 0 || sqlite3_changes(st->db) > 0)
        return rc;
    q = sql_cached(st->cache, "INSERT INTO device(mac, site_id, vendor_class, origin, created_ms,"
                              " last_seen_ms) VALUES(?1, ?2, ?3, 'discovered', ?4, ?4)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, site_id);
    sqlite3_bind_text(q, 3, vendor_class, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, (int64_t)now_ms);
    rc = s_step_done(st, q);
    return rc < 0 ? rc : 1;
}

/* The seq is taken by one UPDATE ... RETURNING (SQLite 3.35): a rollout
 * journals 100,000 of these in a row, and reading the agent row (joined to
 * its site) first cost a third of the time. */
int store_outbox_append(store_t *st, int64_t agent_id, const uint8_t *payload, size_t len,
                        uint64_t *seq)
{
    sqlite3_stmt *q = sql_cached(st->cache, "UPDATE agent SET last_out_seq = last_out_seq + 1"
                                            " WHERE id = ?1 RETURNING last_out_seq");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    int step = sqlite3_step(q);
    uint64_t next = step == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 0) : 0;
    if (step == SQLITE_ROW)
        step = sqlite3_step(q); /* DONE: the UPDATE is complete only then */
    sql_release(st->cache, q);
    if (step != SQLITE_DONE)
        return -EIO;
    if (next == 0)
        return -ENOENT;
    q = sql_cached(st->cache, "INSERT INTO outbox(agent_id, seq, payload, created_ms)"
                              " VALUES(?1, ?2, ?3, strftime('%s','now') * 1000)");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)next);
    sqlite3_bind_blob(q, 3, payload, (int)len, SQLITE_STATIC);
    int rc = s_step_done(st, q);
    if (rc < 0)
        return rc;
    *seq = next;
    return 0;
}

int store_link_tune(store_t *st)
{
    return sql_exec(st->db, "PRAGMA cache_size = -" STORE_LINK_CACHE_KIB_S ";"
                            " PRAGMA wal_autocheckpoint = " STORE_LINK_WAL_PAGES_S ";");
}

int store_outbox_ack(store_t *st, int64_t agent_id, uint64_t upto)
{
    sqlite3_stmt *q = sql_cached(st->cache, "DELETE FROM outbox WHERE agent_id = ?1 AND seq <= ?2");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)upto);
    int rc = s_step_done(st, q);
    if (rc < 0)
        return rc;
    q = sql_cached(st->cache, "UPDATE agent SET peer_acked_seq = max(peer_acked_seq, ?2)"
                              " WHERE id = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, agent_id);
    sqlite3_bind_int64(q, 2, (int64_t)upto);
    return s_step_done(st, q);
}

int store_outbox_each(store_t *st, int64_t agent_id, uint64_t after, int max,
                      void (*fn)(void *arg, uint64_t seq, const uint8_t *payload, size_t len),
                      void *arg)
{
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT seq, payload FROM outbox WHERE agent_id = ?1"
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
    sql_release(st->cache, q);
    return rc == SQLITE_DONE ? n : -EIO;
}

static char *s_dup(const unsigned char *s);

/* A TEXT column as a C string ("" for NULL). */
static const char *s_text(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return t ? (const char *)t : "";
}

/* A hex TEXT column of n bytes into b (malloc'd); '' leaves b empty. 0,
 * -EIO (bad text) or -ENOMEM. */
static int s_hex_col(sqlite3_stmt *q, int col, size_t n, ProtobufCBinaryData *b)
{
    const char *t = s_text(q, col);
    b->data = NULL;
    b->len = 0;
    if (t[0] == '\0')
        return 0;
    if (strlen(t) != 2 * n)
        return -EIO;
    b->data = malloc(n);
    if (b->data == NULL)
        return -ENOMEM;
    if (util_unhex(t, b->data, n) < 0) {
        free(b->data);
        b->data = NULL;
        return -EIO;
    }
    b->len = n;
    return 0;
}

/* Appends firmware fw_id's files (name order) to as->files. 0, -EIO or
 * -ENOMEM (as keeps what it got: the caller frees it). */
static int s_fw_files(store_t *st, int64_t fw_id, Firmfleet__Assignment *as)
{
    int ret = -ENOMEM;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT f.name, f.sha256, b.size, f.signature, f.signer"
                                            " FROM firmware_file f"
                                            " JOIN blob b ON b.sha256 = f.sha256"
                                            " WHERE f.firmware_id = ?1 ORDER BY f.name");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, fw_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        Firmfleet__ImageRef **grown = realloc(as->files, (as->n_files + 1) * sizeof *grown);
        Firmfleet__ImageRef *ir = calloc(1, sizeof *ir);
        if (grown == NULL || ir == NULL) {
            if (grown)
                as->files = grown;
            free(ir);
            goto fail;
        }
        as->files = grown;
        firmfleet__image_ref__init(ir);
        as->files[as->n_files++] = ir;
        ir->name = s_dup(sqlite3_column_text(q, 0));
        ir->sha256.data = malloc(32);
        if (ir->name == NULL || ir->sha256.data == NULL ||
            util_unhex(s_text(q, 1), ir->sha256.data, 32) < 0) {
            ret = -EIO;
            goto fail;
        }
        ir->sha256.len = 32;
        ir->size = (uint64_t)sqlite3_column_int64(q, 2);
        if (s_hex_col(q, 3, 64, &ir->signature) < 0 || s_hex_col(q, 4, 32, &ir->signer) < 0) {
            ret = -EIO;
            goto fail;
        }
    }
    ret = 0;
fail:
    sql_release(st->cache, q);
    return ret;
}

/* The firmware row named by fw (VENDOR/VERSION or numeric id). 1 found
 * (*id, *name malloc'd or NULL when out of memory), 0 not found, -EIO. */
static int s_fw_find(store_t *st, const char *fw, int64_t *id, char **name)
{
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT id, vendor || '/' || version FROM firmware"
                                            " WHERE vendor || '/' || version = ?1"
                                            " OR CAST(id AS TEXT) = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, fw, -1, SQLITE_STATIC);
    int step = sqlite3_step(q), ret = 0;
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(q, 0);
        *name = s_dup(sqlite3_column_text(q, 1));
        ret = 1;
    } else if (step != SQLITE_DONE) {
        ret = -EIO;
    }
    sql_release(st->cache, q);
    return ret;
}

int store_assignment_firmware(store_t *st, const char *fw, Firmfleet__Assignment **out,
                              int64_t *fw_id, char *err, size_t errlen)
{
    *out = NULL;
    Firmfleet__Assignment *as = calloc(1, sizeof *as);
    if (as == NULL)
        return -ENOMEM;
    firmfleet__assignment__init(as);
    as->mac = as->firmware = NULL; /* init points them at a shared "": never free that */
    int ret = s_fw_find(st, fw, fw_id, &as->firmware);
    if (ret == 0) {
        snprintf(err, errlen, "unknown firmware '%s'", fw);
        ret = -ENOENT;
    } else if (ret > 0) {
        ret = as->firmware == NULL ? -ENOMEM : s_fw_files(st, *fw_id, as);
    }
    if (ret < 0) {
        store_assignment_free(as);
        return ret;
    }
    *out = as;
    return 0;
}

int store_assignment_device(store_t *st, const char *mac, int64_t fw_id, const char *fw_name,
                            int64_t *site_id, char *window, size_t wn, char *err, size_t errlen)
{
    window[0] = '\0';
    /* the window rule is store_rollout_device_window's */
    sqlite3_stmt *q = sql_cached(
        st->cache,
        "SELECT d.site_id, d.model,"
        " EXISTS (SELECT 1 FROM firmware_model m WHERE m.firmware_id = ?2 AND m.model = d.model),"
        " coalesce((SELECT c.window FROM device_class c WHERE c.name = d.class"
        "   AND d.class <> '' AND (c.site_id = d.site_id OR c.site_id IS NULL)"
        "   ORDER BY c.site_id IS NULL LIMIT 1), ''), s.window"
        " FROM device d JOIN site s ON s.id = d.site_id WHERE d.mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, fw_id);
    int step = sqlite3_step(q), ret = 0;
    if (step == SQLITE_DONE) {
        snprintf(err, errlen, "unknown device %s", mac);
        ret = -ENOENT;
    } else if (step != SQLITE_ROW) {
        ret = -EIO;
    } else if (sqlite3_column_int(q, 2) == 0) {
        snprintf(err, errlen, "firmware %s does not list model '%s' of device %s", fw_name,
                 s_text(q, 1), mac);
        ret = -EINVAL;
    } else {
        *site_id = sqlite3_column_int64(q, 0);
        snprintf(window, wn, "%s", *s_text(q, 3) ? s_text(q, 3) : s_text(q, 4));
    }
    sql_release(st->cache, q);
    return ret;
}

void store_assignment_free(Firmfleet__Assignment *as)
{
    if (as == NULL)
        return;
    free(as->mac);
    free(as->firmware);
    for (size_t i = 0; i < as->n_files; i++) {
        free(as->files[i]->sha256.data);
        free(as->files[i]->signature.data);
        free(as->files[i]->signer.data);
        free(as->files[i]->name);
        free(as->files[i]);
    }
    free(as->files);
    free(as);
}

int store_assignment_build(store_t *st, const char *mac, const char *fw,
                           Firmfleet__Assignment **out, int64_t *site_id, char *err, size_t errlen)
{
    *out = NULL;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT site_id, model FROM device WHERE mac = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, mac, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sql_release(st->cache, q);
        snprintf(err, errlen, "unknown device %s", mac);
        return -ENOENT;
    }
    *site_id = sqlite3_column_int64(q, 0);
    char model[128];
    snprintf(model, sizeof model, "%s", (const char *)sqlite3_column_text(q, 1));
    sql_release(st->cache, q);

    q = sql_cached(st->cache, "SELECT id, vendor || '/' || version FROM firmware"
                              " WHERE vendor || '/' || version = ?1 OR CAST(id AS TEXT) = ?1");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_text(q, 1, fw, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sql_release(st->cache, q);
        snprintf(err, errlen, "unknown firmware '%s'", fw);
        return -ENOENT;
    }
    int64_t fw_id = sqlite3_column_int64(q, 0);
    Firmfleet__Assignment *as = calloc(1, sizeof *as);
    if (as == NULL) {
        sql_release(st->cache, q);
        return -ENOMEM;
    }
    firmfleet__assignment__init(as);
    as->firmware = s_dup(sqlite3_column_text(q, 1));
    as->mac = strdup(mac);
    sql_release(st->cache, q);
    int ret = -ENOMEM;
    if (as->firmware == NULL || as->mac == NULL)
        goto fail;

    q = sql_cached(st->cache, "SELECT 1 FROM firmware_model WHERE firmware_id = ?1 AND model = ?2");
    if (q == NULL) {
        ret = -EIO;
        goto fail;
    }
    sqlite3_bind_int64(q, 1, fw_id);
    sqlite3_bind_text(q, 2, model, -1, SQLITE_STATIC);
    int applies = sqlite3_step(q) == SQLITE_ROW;
    sql_release(st->cache, q);
    if (!applies) {
        snprintf(err, errlen, "firmware %s does not list model '%s' of device %s", as->firmware,
                 model, mac);
        ret = -EINVAL;
        goto fail;
    }
    if ((ret = s_fw_files(st, fw_id, as)) < 0)
        goto fail;
    *out = as;
    return 0;
fail:
    store_assignment_free(as);
    return ret;
}

int store_site_agents(store_t *st, int64_t site_id, int64_t *ids, int max)
{
    sqlite3_stmt *q = sql_cached(
        st->cache, "SELECT id FROM agent WHERE site_id = ?1 AND revoked_ms IS NULL ORDER BY id");
    if (q == NULL)
        return -EIO;
    sqlite3_bind_int64(q, 1, site_id);
    int n = 0;
    while (n < max && sqlite3_step(q) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(q, 0);
    sql_release(st->cache, q);
    return n;
}

static char *s_dup(const unsigned char *s)
{
    return strdup(s ? (const char *)s : "");
}

static void s_options_free(Firmfleet__DhcpOption **o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(o[i]->value.data);
        free(o[i]);
    }
    free(o);
}

static void s_strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void store_site_config_free(Firmfleet__SiteConfig *sc)
{
    if (sc == NULL)
        return;
    free(sc->site);
    free(sc->tz);
    for (size_t i = 0; i < sc->n_images; i++) {
        free(sc->images[i]->sha256.data);
        free(sc->images[i]->signature.data);
        free(sc->images[i]->signer.data);
        free(sc->images[i]->name);
        free(sc->images[i]);
    }
    free(sc->images);
    for (size_t i = 0; i < sc->n_trusted_keys; i++)
        free(sc->trusted_keys[i].data);
    free(sc->trusted_keys);
    for (size_t i = 0; i < sc->n_devices; i++) {
        free(sc->devices[i]->mac);
        free(sc->devices[i]->model);
        free(sc->devices[i]->serial);
        free(sc->devices[i]->ip);
        free(sc->devices[i]->class_);
        free(sc->devices[i]->version);
        free(sc->devices[i]->profile);
        Firmfleet__Serials *sr = sc->devices[i]->serials;
        if (sr != NULL) {
            free(sr->config);
            free(sr->firmware);
            free(sr->boot);
            free(sr);
        }
        free(sc->devices[i]);
    }
    free(sc->devices);
    for (size_t i = 0; i < sc->n_subnets; i++) {
        Firmfleet__DhcpSubnet *n = sc->subnets[i];
        free(n->cidr);
        free(n->pool_start);
        free(n->pool_end);
        free(n->router);
        s_strings_free(n->dns, n->n_dns);
        s_strings_free(n->relays, n->n_relays);
        s_options_free(n->options, n->n_options);
        free(n);
    }
    free(sc->subnets);
    for (size_t i = 0; i < sc->n_classes; i++) {
        Firmfleet__DeviceClass *c = sc->classes[i];
        free(c->name);
        free(c->tftp_root);
        for (size_t k = 0; k < c->n_rules; k++) {
            free(c->rules[k]->value.data);
            free(c->rules[k]);
        }
        free(c->rules);
        s_options_free(c->options, c->n_options);
        free(c);
    }
    free(sc->classes);
    for (size_t i = 0; i < sc->n_files; i++) {
        free(sc->files[i]->name);
        free(sc->files[i]->body.data);
        free(sc->files[i]);
    }
    free(sc->files);
    for (size_t i = 0; i < sc->n_profiles; i++) {
        free(sc->profiles[i]->name);
        free(sc->profiles[i]->json);
        free(sc->profiles[i]->signature.data);
        free(sc->profiles[i]->signer.data);
        free(sc->profiles[i]);
    }
    free(sc->profiles);
    free(sc);
}

/* Grows the array of pointers at arrp (a pointer to the array pointer,
 * holding n elements of elem bytes) by one slot. 0 or -ENOMEM (unchanged).
 * memcpy moves the pointer value so any element type works without
 * aliasing it through void **. */
static int s_grow(void *arrp, size_t n, size_t elem)
{
    void *cur, *grown;
    memcpy(&cur, arrp, sizeof cur);
    grown = realloc(cur, (n + 1) * elem);
    if (grown == NULL)
        return -ENOMEM;
    memcpy(arrp, &grown, sizeof grown);
    return 0;
}

/* Appends item to the pointer array *arr of *n elements; 0 or -ENOMEM (item
 * is then not in the array: the caller frees it). */
#define S_PUSH(arr, n, item)                                                                       \
    (s_grow((arr), *(n), sizeof **(arr)) < 0 ? -ENOMEM : ((*(arr))[(*(n))++] = (item), 0))

/* A malloc'd copy of n bytes (never NULL for n == 0 unless out of memory). */
static uint8_t *s_memdup(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c != NULL && n > 0)
        memcpy(c, p, n);
    return c;
}

/* DhcpOptions from a packed list (dhcpopt_pack records) in column col. */
static int s_options(sqlite3_stmt *q, int col, Firmfleet__DhcpOption ***out, size_t *n)
{
    const uint8_t *blob = sqlite3_column_blob(q, col);
    size_t len = (size_t)sqlite3_column_bytes(q, col), off = 0;
    struct dhcpopt o;
    int rc;
    while (blob != NULL && (rc = dhcpopt_unpack(blob, len, &off, &o)) != 0) {
        if (rc < 0)
            return -EIO; /* the store wrote it; a bad list is corruption */
        Firmfleet__DhcpOption *d = calloc(1, sizeof *d);
        if (d == NULL)
            return -ENOMEM;
        firmfleet__dhcp_option__init(d);
        d->code = o.code;
        d->fill = (Firmfleet__DhcpOption__Fill)o.fill;
        d->value.data = s_memdup(o.value, o.len);
        d->value.len = o.len;
        if (d->value.data == NULL || S_PUSH(out, n, d) < 0) {
            free(d->value.data);
            free(d);
            return -ENOMEM;
        }
    }
    return 0;
}

static int s_rules(sqlite3_stmt *q, int col, Firmfleet__MatchRule ***out, size_t *n)
{
    const uint8_t *blob = sqlite3_column_blob(q, col);
    size_t len = (size_t)sqlite3_column_bytes(q, col), off = 0;
    struct dhcpopt_rule r;
    int rc;
    while (blob != NULL && (rc = dhcpopt_rule_unpack(blob, len, &off, &r)) != 0) {
        if (rc < 0)
            return -EIO;
        Firmfleet__MatchRule *m = calloc(1, sizeof *m);
        if (m == NULL)
            return -ENOMEM;
        firmfleet__match_rule__init(m);
        m->kind = (Firmfleet__MatchRule__Kind)r.kind;
        m->ignore_trailing_nul = r.ignore_trailing_nul != 0;
        m->enterprise = r.enterprise;
        m->value.data = s_memdup(r.value, r.len);
        m->value.len = r.len;
        if (m->value.data == NULL || S_PUSH(out, n, m) < 0) {
            free(m->value.data);
            free(m);
            return -ENOMEM;
        }
    }
    return 0;
}

/* A comma list column into repeated strings. */
static int s_list(sqlite3_stmt *q, int col, char ***out, size_t *n)
{
    const char *s = (const char *)sqlite3_column_text(q, col);
    while (s != NULL && *s) {
        const char *comma = strchr(s, ',');
        size_t k = comma ? (size_t)(comma - s) : strlen(s);
        char *item = strndup(s, k);
        if (item == NULL || S_PUSH(out, n, item) < 0) {
            free(item);
            return -ENOMEM;
        }
        s += k + (comma ? 1 : 0);
    }
    return 0;
}

/* Runs q (bound) and calls row for each result; 0 or the first error. */
static int s_rows(store_t *st, sqlite3_stmt *q, Firmfleet__SiteConfig *sc,
                  int (*row)(sqlite3_stmt *q, Firmfleet__SiteConfig *sc))
{
    int step, rc = 0;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW)
        rc = row(q, sc);
    if (rc == 0 && step != SQLITE_DONE)
        rc = -EIO;
    sql_release(st->cache, q);
    return rc;
}

static int s_image_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__ImageRef *ir = calloc(1, sizeof *ir);
    if (ir == NULL)
        return -ENOMEM;
    firmfleet__image_ref__init(ir);
    ir->name = NULL; /* init points strings at a shared "": never free that */
    if (S_PUSH(&sc->images, &sc->n_images, ir) < 0) {
        free(ir);
        return -ENOMEM;
    }
    ir->sha256.data = malloc(32);
    ir->name = s_dup(sqlite3_column_text(q, 2));
    if (ir->sha256.data == NULL || ir->name == NULL)
        return -ENOMEM;
    if (util_unhex(s_text(q, 0), ir->sha256.data, 32) < 0)
        return -EIO;
    ir->sha256.len = 32;
    ir->size = (uint64_t)sqlite3_column_int64(q, 1);
    int rc = s_hex_col(q, 3, 64, &ir->signature);
    return rc < 0 ? rc : s_hex_col(q, 4, 32, &ir->signer);
}

static int s_trusted_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    ProtobufCBinaryData *grown =
        realloc(sc->trusted_keys, (sc->n_trusted_keys + 1) * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    sc->trusted_keys = grown;
    ProtobufCBinaryData *b = &grown[sc->n_trusted_keys];
    int rc = s_hex_col(q, 0, 32, b);
    if (rc == 0 && b->len == 32)
        sc->n_trusted_keys++;
    else
        free(b->data);
    return rc;
}

static int s_device_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__DeviceRef *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    firmfleet__device_ref__init(d);
    d->mac = d->model = d->serial = d->ip = d->class_ = d->version = d->profile = NULL;
    if (S_PUSH(&sc->devices, &sc->n_devices, d) < 0) {
        free(d);
        return -ENOMEM;
    }
    d->mac = s_dup(sqlite3_column_text(q, 0));
    d->model = s_dup(sqlite3_column_text(q, 1));
    d->serial = s_dup(sqlite3_column_text(q, 2));
    d->ip = s_dup(sqlite3_column_text(q, 3));
    d->class_ = s_dup(sqlite3_column_text(q, 4));
    d->version = s_dup(sqlite3_column_text(q, 5));
    d->profile = s_dup(sqlite3_column_text(q, 9));
    Firmfleet__Serials *sr = calloc(1, sizeof *sr);
    if (sr == NULL)
        return -ENOMEM;
    firmfleet__serials__init(sr);
    d->serials = sr;
    sr->config = s_dup(sqlite3_column_text(q, 6));
    sr->firmware = s_dup(sqlite3_column_text(q, 7));
    sr->boot = s_dup(sqlite3_column_text(q, 8));
    return d->mac && d->model && d->serial && d->ip && d->class_ && d->version && d->profile &&
                   sr->config && sr->firmware && sr->boot
               ? 0
               : -ENOMEM;
}

static int s_subnet_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__DhcpSubnet *n = calloc(1, sizeof *n);
    if (n == NULL)
        return -ENOMEM;
    firmfleet__dhcp_subnet__init(n);
    n->cidr = n->pool_start = n->pool_end = n->router = NULL;
    if (S_PUSH(&sc->subnets, &sc->n_subnets, n) < 0) {
        free(n);
        return -ENOMEM;
    }
    n->cidr = s_dup(sqlite3_column_text(q, 0));
    n->pool_start = s_dup(sqlite3_column_text(q, 1));
    n->pool_end = s_dup(sqlite3_column_text(q, 2));
    n->router = s_dup(sqlite3_column_text(q, 3));
    n->lease_seconds = (uint32_t)sqlite3_column_int64(q, 5);
    if (n->cidr == NULL || n->pool_start == NULL || n->pool_end == NULL || n->router == NULL)
        return -ENOMEM;
    int rc = s_list(q, 4, &n->dns, &n->n_dns);
    if (rc == 0)
        rc = s_list(q, 6, &n->relays, &n->n_relays);
    if (rc == 0)
        rc = s_options(q, 7, &n->options, &n->n_options);
    return rc;
}

static int s_class_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__DeviceClass *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    firmfleet__device_class__init(c);
    c->name = c->tftp_root = NULL;
    if (S_PUSH(&sc->classes, &sc->n_classes, c) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->name = s_dup(sqlite3_column_text(q, 0));
    c->priority = (int32_t)sqlite3_column_int64(q, 1);
    c->tftp_root = s_dup(sqlite3_column_text(q, 2));
    if (c->name == NULL || c->tftp_root == NULL)
        return -ENOMEM;
    int rc = s_rules(q, 3, &c->rules, &c->n_rules);
    if (rc == 0)
        rc = s_options(q, 4, &c->options, &c->n_options);
    return rc;
}

static int s_file_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__FileTemplate *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    firmfleet__file_template__init(f);
    f->name = NULL;
    if (S_PUSH(&sc->files, &sc->n_files, f) < 0) {
        free(f);
        return -ENOMEM;
    }
    f->name = s_dup(sqlite3_column_text(q, 0));
    f->body.len = (size_t)sqlite3_column_bytes(q, 1);
    f->body.data = s_memdup(sqlite3_column_blob(q, 1), f->body.len);
    return f->name && f->body.data ? 0 : -ENOMEM;
}

static int s_profile_row(sqlite3_stmt *q, Firmfleet__SiteConfig *sc)
{
    Firmfleet__Profile *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    firmfleet__profile__init(p);
    p->name = p->json = NULL;
    if (S_PUSH(&sc->profiles, &sc->n_profiles, p) < 0) {
        free(p);
        return -ENOMEM;
    }
    p->name = s_dup(sqlite3_column_text(q, 0));
    p->json = s_dup(sqlite3_column_text(q, 1));
    /* the operator's signature (migration 8), hex in the store */
    const char *sig = (const char *)sqlite3_column_text(q, 2);
    const char *signer = (const char *)sqlite3_column_text(q, 3);
    if (sig && signer && strlen(sig) == 128 && strlen(signer) == 64) {
        p->signature.data = malloc(64);
        p->signer.data = malloc(32);
        if (p->signature.data == NULL || p->signer.data == NULL ||
            util_unhex(sig, p->signature.data, 64) < 0 ||
            util_unhex(signer, p->signer.data, 32) < 0)
            return -ENOMEM;
        p->signature.len = 64;
        p->signer.len = 32;
    }
    return p->name && p->json ? 0 : -ENOMEM;
}

/* The parts of a SiteConfig, each one query bound to ?1 = site id. Classes
 * and templates: the site's own, and the global ones it does not replace
 * (by name); classes in the order agents try them. */
static const struct {
    const char *sql;
    int (*row)(sqlite3_stmt *q, Firmfleet__SiteConfig *sc);
} s_parts[] = {
    /* images: what the site's device models need, and the firmware of every
     * unfinished rollout that targets a device here (pre-fetch: agents pull
     * it before the window opens) */
    /* one row per blob; a blob in several firmware (or under several names)
     * goes by one of them: a signed one when there is one, since max() makes
     * SQLite take the bare columns (name, signature, signer) from that row */
    {"SELECT b.sha256, b.size, f.name, f.signature, f.signer, max(f.signature <> '')"
     " FROM firmware_file f JOIN blob b ON b.sha256 = f.sha256"
     " WHERE f.firmware_id IN (SELECT m.firmware_id FROM firmware_model m"
     "   WHERE m.model IN (SELECT model FROM device WHERE site_id = ?1))"
     " OR f.firmware_id IN (SELECT r.firmware_id FROM rollouts r"
     "   WHERE r.state NOT IN ('aborted', 'done') AND EXISTS (SELECT 1 FROM rollout_devices rd"
     "   WHERE rd.rollout_id = r.id AND rd.site_id = ?1))"
     " GROUP BY b.sha256 ORDER BY b.sha256",
     s_image_row},
    {"SELECT mac, model, serial, ip, class, current_version, serial_config, serial_firmware,"
     " serial_boot, profile FROM device WHERE site_id = ?1 ORDER BY mac",
     s_device_row},
    {"SELECT cidr, pool_start, pool_end, router, dns, lease_seconds, relays, options"
     " FROM subnet WHERE site_id = ?1 ORDER BY net",
     s_subnet_row},
    {"SELECT c.name, c.priority, c.tftp_root, c.rules, c.options FROM device_class c"
     " WHERE c.site_id = ?1 OR (c.site_id IS NULL AND NOT EXISTS (SELECT 1 FROM device_class o"
     " WHERE o.site_id = ?1 AND o.name = c.name)) ORDER BY c.priority, c.name",
     s_class_row},
    {"SELECT t.name, t.body FROM file_template t"
     " WHERE t.site_id = ?1 OR (t.site_id IS NULL AND NOT EXISTS (SELECT 1 FROM file_template o"
     " WHERE o.site_id = ?1 AND o.name = t.name)) ORDER BY t.name",
     s_file_row},
    {"SELECT name, json, signature, signer FROM profiles WHERE ?1 = ?1 ORDER BY name",
     s_profile_row},
    {"SELECT key FROM trusted_key WHERE ?1 = ?1 ORDER BY key", s_trusted_row},
};

int store_trusted_keys_set(store_t *st, const char *const *hex, size_t n, int *changed)
{
    *changed = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(hex[i]);
        if (len != 64 || strspn(hex[i], "0123456789abcdef") != 64)
            return -EINVAL;
    }
    if (sql_begin(st->db) < 0)
        return -EIO;
    int rc = 0;
    /* the same set (in any order, duplicates aside) is no change */
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT key FROM trusted_key");
    size_t have = 0, found = 0;
    if (q == NULL)
        rc = -EIO;
    while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
        const char *k = s_text(q, 0);
        have++;
        for (size_t i = 0; i < n; i++)
            if (strcmp(k, hex[i]) == 0) {
                found++;
                break;
            }
    }
    sql_release(st->cache, q);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(hex[i], hex[j]) == 0;
        distinct += !dup;
    }
    if (rc == 0 && (have != found || found != distinct)) {
        *changed = 1;
        rc = sql_exec(st->db, "DELETE FROM trusted_key") < 0 ? -EIO : 0;
        q = rc == 0 ? sql_cached(st->cache, "INSERT OR IGNORE INTO trusted_key(key, added_ms)"
                                            " VALUES (?1, ?2)")
                    : NULL;
        if (rc == 0 && q == NULL)
            rc = -EIO;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            sqlite3_reset(q);
            sqlite3_bind_text(q, 1, hex[i], -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, (int64_t)util_now_ms());
            if (sqlite3_step(q) != SQLITE_DONE)
                rc = -EIO;
        }
        sql_release(st->cache, q);
        /* agents take a SiteConfig only with a newer generation */
        if (rc == 0 && sql_exec(st->db, "UPDATE site SET generation = generation + 1") < 0)
            rc = -EIO;
    }
    if (rc == 0)
        rc = sql_commit(st->db) < 0 ? -EIO : 0;
    else
        sql_rollback(st->db);
    return rc;
}

int store_site_config(store_t *st, int64_t site_id, Firmfleet__SiteConfig **out)
{
    *out = NULL;
    Firmfleet__SiteConfig *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return -ENOMEM;
    firmfleet__site_config__init(sc);
    sc->site = sc->tz = NULL; /* init points them at a shared "": never free that */
    int ret = -EIO;
    sqlite3_stmt *q = sql_cached(st->cache, "SELECT name, tz, generation FROM site WHERE id = ?1");
    if (q == NULL)
        goto fail;
    sqlite3_bind_int64(q, 1, site_id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sql_release(st->cache, q);
        ret = -ENOENT;
        goto fail;
    }
    sc->site = s_dup(sqlite3_column_text(q, 0));
    sc->tz = s_dup(sqlite3_column_text(q, 1));
    sc->generation = (uint64_t)sqlite3_column_int64(q, 2);
    sql_release(st->cache, q);
    if (sc->site == NULL || sc->tz == NULL) {
        ret = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < sizeof s_parts / sizeof s_parts[0]; i++) {
        q = sql_cached(st->cache, s_parts[i].sql);
        if (q == NULL)
            goto fail;
        sqlite3_bind_int64(q, 1, site_id);
        if ((ret = s_rows(st, q, sc, s_parts[i].row)) < 0)
            goto fail;
    }
    *out = sc;
    return 0;
fail:
    store_site_config_free(sc);
    return ret;
}
