/* ctl_admin.c: the admin API (see ctl_admin.h for the contract).
 *
 * Invariants:
 *   - every request gets exactly one response (REP alternation), whatever it
 *     holds: unparsable frames, extra frames, unknown nouns, verbs, options,
 *     and results too large for one frame all become error responses;
 *   - arguments are checked against the verb's table (count, allowed and
 *     repeated options) before any handler runs; handlers validate values
 *     through store_inv's validators, so the store sees only checked input;
 *   - writes happen in store_inv (one transaction each, audit included);
 *     link notifications (site changed, revoke) go out only after the commit;
 *   - secret keys are never logged and are wiped from our buffers after use.
 */
#include "ctl_admin.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "ctl_link.h"
#include "ctl_rollout.h"
#include "imgstore.h"
#include "log.h"
#include "sign.h"
#include "store_backup.h"
#include "store_inv.h"
#include "store_link.h"
#include "store_rollout.h"
#include "util.h"
#include "wire.h"
#include "zmqx.h"

#define ERR_LEN 512
#define MAX_OPTS 20

typedef Firmfleet__AdminRequest req_t;

struct call {
    struct ctl *ctl;
    const req_t *req;
    const char *user;
    json_t *out;        /* result document on success */
    char err[ERR_LEN];  /* message on failure */
    int64_t notify[64]; /* sites to tell the link about after success */
    size_t n_notify;    /* past 64, sites are notified as they are found */
};

typedef int (*handler_fn)(struct call *c);

struct verb {
    const char *noun, *verb;
    int min_args, max_args;
    const char *opts[MAX_OPTS];   /* allowed option names, NULL-terminated */
    const char *repeat[MAX_OPTS]; /* those of them that may be given more than once */
    int write;                    /* logged at info */
    handler_fn fn;
};

static void s_errf(struct call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_oom(struct call *c);
static void s_errf(struct call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

/* Value of option name, or NULL. */
static const char *s_opt(const req_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_opts; i++)
        if (req->opts[i] && req->opts[i]->key && strcmp(req->opts[i]->key, name) == 0)
            return req->opts[i]->value ? req->opts[i]->value : "";
    return NULL;
}

/* Every value of option name, in request order, into a malloc'd array
 * (*out NULL when there are none). 0 or -ENOMEM. */
static int s_opt_all(struct call *c, const char *name, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t count = 0;
    for (size_t i = 0; i < c->req->n_opts; i++)
        count += c->req->opts[i] && c->req->opts[i]->key && strcmp(c->req->opts[i]->key, name) == 0;
    if (count == 0)
        return 0;
    const char **v = calloc(count, sizeof *v);
    if (v == NULL)
        return s_oom(c);
    for (size_t i = 0; i < c->req->n_opts; i++)
        if (c->req->opts[i] && c->req->opts[i]->key && strcmp(c->req->opts[i]->key, name) == 0)
            v[(*n)++] = c->req->opts[i]->value ? c->req->opts[i]->value : "";
    *out = v;
    return 0;
}

static const char *s_arg(const req_t *req, size_t i)
{
    return i < req->n_args && req->args[i] ? req->args[i] : "";
}

static int s_required(struct call *c, const char *name, const char **out)
{
    *out = s_opt(c->req, name);
    if (*out == NULL || **out == '\0') {
        s_errf(c, "%s %s: --%s is required", c->req->noun, c->req->verb, name);
        return -EINVAL;
    }
    return 0;
}

static int s_oom(struct call *c)
{
    s_errf(c, "out of memory");
    return -ENOMEM;
}

static int s_parse_u64(struct call *c, const char *name, const char *s, int64_t *out)
{
    if (util_parse_i64(s, 0, INT64_MAX, out) < 0) {
        s_errf(c, "--%s must be a non-negative integer", name);
        return -EINVAL;
    }
    return 0;
}

static void s_notify(struct call *c, int64_t site_id)
{
    for (size_t i = 0; i < c->n_notify; i++)
        if (c->notify[i] == site_id)
            return;
    if (c->n_notify < sizeof c->notify / sizeof c->notify[0])
        c->notify[c->n_notify++] = site_id;
    else if (c->ctl->link)
        ctl_link_site_changed(c->ctl->link, site_id); /* already committed */
}

static void s_notify_ids(struct call *c, json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) s_notify(c, json_integer_value(v));
}

/* ---- sites ---- */

static int h_site_add(struct call *c)
{
    const char *tz;
    int rc = s_required(c, "tz", &tz);
    if (rc < 0)
        return rc;
    store_t *st = c->ctl->st;
    rc = store_site_add(st, c->user, s_arg(c->req, 0), tz, s_opt(c->req, "description"), NULL,
                        c->err, sizeof c->err);
    if (rc == 0)
        rc = store_site_show(st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
    return rc;
}

static int h_site_list(struct call *c)
{
    return store_site_list(c->ctl->st, &c->out, c->err, sizeof c->err);
}

static int h_site_show(struct call *c)
{
    return store_site_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

/* ---- agents ---- */

static int s_agent_live(struct call *c, json_t *a)
{
    int64_t id = json_integer_value(json_object_get(a, "id"));
    int online = c->ctl->link ? ctl_link_agent_online(c->ctl->link, id) : 0;
    uint64_t sent = c->ctl->link ? ctl_link_agent_bytes_sent(c->ctl->link, id) : 0;
    if (json_object_set_new(a, "online", json_boolean(online)) < 0 ||
        json_object_set_new(a, "image_bytes_sent",
                            json_integer(sent > INT64_MAX ? INT64_MAX : (json_int_t)sent)) < 0)
        return s_oom(c);
    return 0;
}

static int h_agent_enroll(struct call *c)
{
    const char *site;
    int rc = s_required(c, "site", &site);
    if (rc < 0)
        return rc;
    const char *name = s_opt(c->req, "name");
    if (name == NULL || *name == '\0')
        name = site;
    /* the credential is admitted once, until it expires (the CLI sends
     * --ttl in seconds; without it, CTL_ENROLL_TTL_S) */
    int64_t ttl = CTL_ENROLL_TTL_S;
    const char *ttls = s_opt(c->req, "ttl");
    if (ttls != NULL && util_parse_i64(ttls, 1, CTL_ENROLL_TTL_MAX_S, &ttl) < 0) {
        s_errf(c, "invalid --ttl '%s' (1 second to 365 days)", ttls);
        return -EINVAL;
    }
    uint64_t expires_ms = util_now_ms() + (uint64_t)ttl * 1000;
    /* validate before generating anything */
    if ((rc = store_check_name("agent", name, c->err, sizeof c->err)) < 0 ||
        (rc = store_check_name("site", site, c->err, sizeof c->err)) < 0)
        return rc;
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) < 0) {
        s_errf(c, "cannot generate a CURVE keypair: %s", zmq_strerror(errno));
        return -EIO;
    }
    int64_t id = 0;
    rc = store_agent_enroll_until(c->ctl->st, c->user, name, site, pub, expires_ms, &id, c->err,
                                  sizeof c->err);
    if (rc == 0) {
        c->out = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "version", 1, "agent",
                           name, "site", site, "endpoint", c->ctl->public_endpoint,
                           "server_public_key", c->ctl->pub, "public_key", pub, "secret_key", sec,
                           "enrollment", 1, "expires_ms", (json_int_t)expires_ms);
        if (c->out == NULL)
            rc = s_oom(c);
    }
    explicit_bzero(sec, sizeof sec);
    return rc;
}

static int h_agent_list(struct call *c)
{
    int rc = store_agent_list(c->ctl->st, &c->out, c->err, sizeof c->err);
    size_t i;
    json_t *a;
    if (rc == 0)
        json_array_foreach(c->out, i, a) if ((rc = s_agent_live(c, a)) < 0) break;
    return rc;
}

static int h_agent_show(struct call *c)
{
    int rc = store_agent_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
    return rc == 0 ? s_agent_live(c, c->out) : rc;
}

static int h_agent_revoke(struct call *c)
{
    int64_t id = 0;
    int rc = store_agent_revoke(c->ctl->st, c->user, s_arg(c->req, 0), &id, c->err, sizeof c->err);
    if (rc < 0)
        return rc;
    if (c->ctl->link)
        ctl_link_revoke(c->ctl->link, id);
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);
    rc = store_agent_show(c->ctl->st, idbuf, &c->out, c->err, sizeof c->err);
    return rc == 0 ? s_agent_live(c, c->out) : rc;
}

/* ---- devices ---- */

static int h_device_add(struct call *c)
{
    const char *site;
    int rc = s_required(c, "site", &site);
    if (rc < 0)
        return rc;
    struct store_device_in d = {
        .mac = s_arg(c->req, 0),
        .site = site,
        .model = s_opt(c->req, "model"),
        .serial = s_opt(c->req, "serial"),
        .tags = s_opt(c->req, "tags"),
        .ip = s_opt(c->req, "ip"),
        .class_name = s_opt(c->req, "class"),
    };
    int64_t site_id = 0;
    rc = store_device_add(c->ctl->st, c->user, &d, &site_id, c->err, sizeof c->err);
    if (rc < 0)
        return rc;
    s_notify(c, site_id);
    return store_device_show(c->ctl->st, d.mac, &c->out, c->err, sizeof c->err);
}

/* Field of an import row: absent or a string; anything else is an error. */
static int s_row_str(struct call *c, json_t *row, size_t idx, const char *key, const char **out)
{
    json_t *v = json_object_get(row, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        s_errf(c, "import row %zu: %s must be a string", idx + 1, key);
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

static int h_device_import(struct call *c)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)c->req->blob.data, c->req->blob.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_array(doc)) {
        json_decref(doc);
        s_errf(c, "device import: the request must carry a JSON array of rows");
        return -EINVAL;
    }
    size_t n = json_array_size(doc);
    if (n == 0 || n > STORE_IMPORT_MAX) {
        json_decref(doc);
        s_errf(c, "device import: %s", n == 0 ? "no devices to import" : "too many rows");
        return -EINVAL;
    }
    struct store_device_in *rows = calloc(n, sizeof *rows);
    if (rows == NULL) {
        json_decref(doc);
        return s_oom(c);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *row = json_array_get(doc, i);
        if (!json_is_object(row)) {
            s_errf(c, "import row %zu is not an object", i + 1);
            rc = -EINVAL;
            break;
        }
        json_t *line = json_object_get(row, "line");
        if (line != NULL && (!json_is_integer(line) || json_integer_value(line) < 1 ||
                             json_integer_value(line) > INT32_MAX)) {
            s_errf(c, "import row %zu: line must be a positive integer", i + 1);
            rc = -EINVAL;
            break;
        }
        rows[i].line = line ? (int)json_integer_value(line) : (int)(i + 1);
        if ((rc = s_row_str(c, row, i, "mac", &rows[i].mac)) < 0 ||
            (rc = s_row_str(c, row, i, "site", &rows[i].site)) < 0 ||
            (rc = s_row_str(c, row, i, "model", &rows[i].model)) < 0 ||
            (rc = s_row_str(c, row, i, "serial", &rows[i].serial)) < 0 ||
            (rc = s_row_str(c, row, i, "tags", &rows[i].tags)) < 0 ||
            (rc = s_row_str(c, row, i, "ip", &rows[i].ip)) < 0 ||
            (rc = s_row_str(c, row, i, "class", &rows[i].class_name)) < 0 ||
            (rc = s_row_str(c, row, i, "version", &rows[i].version)) < 0 ||
            (rc = s_row_str(c, row, i, "serial_config", &rows[i].serial_config)) < 0 ||
            (rc = s_row_str(c, row, i, "serial_firmware", &rows[i].serial_firmware)) < 0 ||
            (rc = s_row_str(c, row, i, "serial_boot", &rows[i].serial_boot)) < 0 ||
            (rc = s_row_str(c, row, i, "profile", &rows[i].profile)) < 0)
            break;
    }
    json_t *ids = NULL;
    if (rc == 0)
        rc = store_device_import(c->ctl->st, c->user, rows, n, &ids, c->err, sizeof c->err);
    if (rc == 0) {
        s_notify_ids(c, ids);
        c->out = json_pack("{s:I, s:I}", "imported", (json_int_t)n, "sites",
                           (json_int_t)json_array_size(ids));
        if (c->out == NULL)
            rc = s_oom(c);
    }
    json_decref(ids);
    free(rows);
    json_decref(doc);
    return rc;
}

static int h_device_list(struct call *c)
{
    struct store_device_filter f = {
        .site = s_opt(c->req, "site"),
        .model = s_opt(c->req, "model"),
    };
    const char *after = s_opt(c->req, "after"), *v;
    char cursor[128];
    int rc = 0;
    if ((v = s_opt(c->req, "limit")) != NULL && (rc = s_parse_u64(c, "limit", v, &f.limit)) < 0)
        return rc;
    if (after != NULL) {
        /* SITE/MAC of the last device of the previous page */
        const char *slash = strchr(after, '/');
        if (slash == NULL || (size_t)(slash - after) >= 64 || strlen(slash + 1) >= 32) {
            s_errf(c, "--after must be SITE/MAC");
            return -EINVAL;
        }
        snprintf(cursor, sizeof cursor, "%s", after);
        cursor[slash - after] = '\0';
        f.after_site = cursor;
        f.after_mac = cursor + (slash - after) + 1;
    }
    return store_device_list(c->ctl->st, &f, &c->out, c->err, sizeof c->err);
}

static int h_device_show(struct call *c)
{
    return store_device_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

/* device assign MAC... --firmware VENDOR/VERSION: the desired state of each
 * device, journaled in the outbox of every agent of its site in one
 * transaction with the audit row, then sent; agents apply it once (a resent
 * or repeated assignment is a no-op) and acknowledge after their commit. */
#define ASSIGN_MAX_AGENTS 64

static int h_device_assign(struct call *c)
{
    const char *fw;
    int rc = s_required(c, "firmware", &fw);
    if (rc < 0)
        return rc;
    int64_t agents[ASSIGN_MAX_AGENTS];
    size_t n_agents = 0;
    if (store_begin(c->ctl->st) < 0) {
        s_errf(c, "database busy");
        return -EIO;
    }
    for (size_t i = 0; i < c->req->n_args && rc == 0; i++) {
        char mac[18];
        if (util_mac_canon(c->req->args[i], mac) < 0) {
            s_errf(c, "malformed MAC '%s'", c->req->args[i]);
            rc = -EINVAL;
            break;
        }
        Firmfleet__Assignment *as = NULL;
        int64_t site_id = 0;
        rc = store_assignment_build(c->ctl->st, mac, fw, &as, &site_id, c->err, sizeof c->err);
        if (rc < 0)
            break;
        int64_t ids[ASSIGN_MAX_AGENTS];
        int n = store_site_agents(c->ctl->st, site_id, ids, ASSIGN_MAX_AGENTS);
        if (n <= 0) {
            s_errf(c, "device %s: its site has no enrolled agent to send the assignment to", mac);
            rc = n < 0 ? n : -ENOENT;
        }
        Firmfleet__Envelope env = FIRMFLEET__ENVELOPE__INIT;
        env.body_case = FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT;
        env.assignment = as;
        for (int k = 0; k < n && rc == 0; k++) {
            rc = ctl_link_enqueue(c->ctl->link, ids[k], &env);
            if (rc < 0)
                s_errf(c, "cannot journal the assignment for %s", mac);
            size_t j = 0;
            while (j < n_agents && agents[j] != ids[k])
                j++;
            if (j == n_agents && n_agents < ASSIGN_MAX_AGENTS)
                agents[n_agents++] = ids[k];
        }
        store_assignment_free(as);
    }
    if (rc == 0) {
        char detail[300];
        snprintf(detail, sizeof detail, "firmware=%s devices=%zu", fw, c->req->n_args);
        rc = store_audit(c->ctl->st, c->user, "device.assign", detail);
        if (rc < 0)
            s_errf(c, "cannot write the audit log");
    }
    if (rc == 0 && store_commit(c->ctl->st) < 0) {
        s_errf(c, "cannot commit");
        rc = -EIO;
    }
    if (rc < 0) {
        store_rollback(c->ctl->st);
        return rc;
    }
    for (size_t j = 0; j < n_agents; j++)
        ctl_link_flush_outbox(c->ctl->link, agents[j]);
    c->out = json_pack("{s:i, s:s, s:i}", "assigned", (json_int_t)c->req->n_args, "firmware", fw,
                       "agents", (json_int_t)n_agents);
    return c->out ? 0 : s_oom(c);
}

/* ---- firmware ---- */

static int s_token(struct call *c, uint64_t *token)
{
    const char *t;
    int64_t v;
    int rc = s_required(c, "token", &t);
    if (rc == 0)
        rc = s_parse_u64(c, "token", t, &v);
    if (rc == 0)
        *token = (uint64_t)v;
    return rc;
}

static int h_fw_upload_begin(struct call *c)
{
    const char *s;
    int64_t size;
    int rc = s_required(c, "size", &s);
    if (rc == 0)
        rc = s_parse_u64(c, "size", s, &size);
    if (rc < 0)
        return rc;
    uint64_t token = 0;
    rc = imgstore_upload_begin(c->ctl->img, (uint64_t)size, &token);
    if (rc == -EBUSY) {
        s_errf(c, "too many uploads in progress; try again later");
        return rc;
    } else if (rc < 0) {
        s_errf(c, "cannot start upload: %s", strerror(-rc));
        return rc;
    }
    c->out = json_pack("{s:I}", "token", (json_int_t)token);
    return c->out ? 0 : s_oom(c);
}

static int h_fw_upload_chunk(struct call *c)
{
    uint64_t token;
    const char *o;
    int64_t offset;
    int rc = s_token(c, &token);
    if (rc == 0)
        rc = s_required(c, "offset", &o);
    if (rc == 0)
        rc = s_parse_u64(c, "offset", o, &offset);
    if (rc < 0)
        return rc;
    rc = imgstore_upload_write(c->ctl->img, token, (uint64_t)offset, c->req->blob.data,
                               c->req->blob.len);
    switch (rc) {
    case 0:
        break;
    case -ENOENT:
        s_errf(c, "unknown upload token %llu", (unsigned long long)token);
        return rc;
    case -EINVAL:
        s_errf(c, "upload offset %lld is out of sequence", (long long)offset);
        return rc;
    case -EFBIG:
        s_errf(c, "upload goes past its declared size");
        return rc;
    default:
        s_errf(c, "upload write failed: %s", strerror(-rc));
        return rc;
    }
    c->out = json_pack("{s:I}", "received", (json_int_t)(offset + (int64_t)c->req->blob.len));
    return c->out ? 0 : s_oom(c);
}

static int h_fw_upload_abort(struct call *c)
{
    uint64_t token;
    int rc = s_token(c, &token);
    if (rc < 0)
        return rc;
    imgstore_upload_abort(c->ctl->img, token);
    c->out = json_object();
    return c->out ? 0 : s_oom(c);
}

/* Splits "a,b,c" into a malloc'd array of malloc'd strings. */
static int s_split(struct call *c, const char *s, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    if (cap > 256) {
        s_errf(c, "too many models (at most 256)");
        return -EINVAL;
    }
    char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return s_oom(c);
    const char *p = s;
    for (size_t i = 0; i < cap; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        v[i] = strndup(p, len);
        if (v[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return s_oom(c);
        }
        p += len + (comma ? 1 : 0);
    }
    *out = v;
    *n = cap;
    return 0;
}

struct fw_up {
    const char *name, *sha256;
    const char *signature, *signer; /* hex as the operator's CLI made them, or NULL */
    int has_token;
    uint64_t token;
    int committed;
};

static int h_fw_add(struct call *c)
{
    const char *ref = s_arg(c->req, 0), *models_s;
    const char *slash = strchr(ref, '/');
    char vendor[80] = "", version[80] = "";
    int rc = s_required(c, "models", &models_s);
    if (rc < 0)
        return rc;
    if (slash == NULL || (size_t)(slash - ref) >= sizeof vendor ||
        strlen(slash + 1) >= sizeof version) {
        s_errf(c, "firmware add: the first argument must be VENDOR/VERSION");
        return -EINVAL;
    }
    memcpy(vendor, ref, (size_t)(slash - ref));
    snprintf(version, sizeof version, "%s", slash + 1);
    const char *desc = s_opt(c->req, "description");

    /* the file list */
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)c->req->blob.data, c->req->blob.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    json_t *files = json_object_get(doc, "files");
    size_t n = json_array_size(files);
    if (doc == NULL || !json_is_array(files) || n == 0 || n > 256) {
        json_decref(doc);
        s_errf(c, "firmware add: the request must carry {\"files\":[...]} with 1-256 files");
        return -EINVAL;
    }
    char **models = NULL;
    size_t n_models = 0;
    struct fw_up *up = calloc(n, sizeof *up);
    struct store_fw_file *ff = calloc(n, sizeof *ff);
    if (up == NULL || ff == NULL)
        rc = s_oom(c);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *f = json_array_get(files, i), *tok = json_object_get(f, "token");
        up[i].name = json_string_value(json_object_get(f, "name"));
        up[i].sha256 = json_string_value(json_object_get(f, "sha256"));
        if (!json_is_object(f) || up[i].name == NULL || up[i].sha256 == NULL ||
            (tok != NULL && (!json_is_integer(tok) || json_integer_value(tok) < 0))) {
            s_errf(c, "firmware add: file %zu needs a name, a sha256 and an optional token", i + 1);
            rc = -EINVAL;
            break;
        }
        /* signatures are made on the operator's machine (firmfleet firmware add
         * --sign-key); here they are only checked for form and stored */
        json_t *sg = json_object_get(f, "signature"), *sr = json_object_get(f, "signer");
        if ((sg != NULL && !json_is_string(sg)) || (sr != NULL && !json_is_string(sr))) {
            s_errf(c, "firmware add: file %zu: signature and signer must be hex strings", i + 1);
            rc = -EINVAL;
            break;
        }
        up[i].signature = json_string_value(sg);
        up[i].signer = json_string_value(sr);
        up[i].has_token = tok != NULL;
        up[i].token = tok ? (uint64_t)json_integer_value(tok) : 0;
        ff[i].name = up[i].name;
        ff[i].sha256 = up[i].sha256;
        ff[i].signature = up[i].signature;
        ff[i].signer = up[i].signer;
    }
    if (rc == 0)
        rc = s_split(c, models_s, &models, &n_models);
    struct store_fw_in fw = {
        .vendor = vendor,
        .version = version,
        .description = desc,
        .models = (const char *const *)models,
        .n_models = n_models,
        .files = ff,
        .n_files = n,
    };
    store_t *st = c->ctl->st;
    /* everything the store will check, checked before any upload is consumed */
    if (rc == 0) {
        rc = store_check_fw_part("vendor", vendor, c->err, sizeof c->err);
        if (rc == 0)
            rc = store_check_fw_part("version", version, c->err, sizeof c->err);
        if (rc == 0)
            rc = store_check_text("description", desc, 1024, c->err, sizeof c->err);
        for (size_t i = 0; rc == 0 && i < n_models; i++)
            rc = store_check_model(models[i], c->err, sizeof c->err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = store_check_file_name(up[i].name, c->err, sizeof c->err);
            if (rc == 0)
                rc = store_check_sha256(up[i].sha256, c->err, sizeof c->err);
            if (rc == 0 && up[i].signature && up[i].signature[0])
                rc = store_check_hex("signature", up[i].signature, 128, c->err, sizeof c->err);
            if (rc == 0 && up[i].signer && up[i].signer[0])
                rc = store_check_hex("signer", up[i].signer, 64, c->err, sizeof c->err);
            for (size_t j = 0; rc == 0 && j < i; j++)
                if (strcmp(up[i].name, up[j].name) == 0) {
                    s_errf(c, "file name %s given twice", up[i].name);
                    rc = -EINVAL;
                }
        }
        if (rc == 0)
            rc = store_firmware_free(st, vendor, version, c->err, sizeof c->err);
    }
    /* uploads become blobs (content-addressed, so harmless if the add fails) */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char sha[65];
        uint64_t size = 0;
        if (!up[i].has_token) {
            if (!imgstore_has(c->ctl->img, up[i].sha256, &size)) {
                s_errf(c, "file %s: blob %s is not in the image store", up[i].name, up[i].sha256);
                rc = -ENOENT;
                break;
            }
        } else {
            rc = imgstore_upload_commit(c->ctl->img, up[i].token, up[i].sha256, sha, &size);
            up[i].committed = 1; /* commit frees the upload whatever it returns */
            if (rc == -ENOENT)
                s_errf(c, "file %s: unknown upload token", up[i].name);
            else if (rc == -EPIPE)
                s_errf(c, "file %s: upload incomplete", up[i].name);
            else if (rc == -EBADMSG)
                s_errf(c,
                       "file %s: uploaded content does not match its sha256 (file changed "
                       "during upload?)",
                       up[i].name);
            else if (rc < 0)
                s_errf(c, "file %s: cannot store upload: %s", up[i].name, strerror(-rc));
            if (rc < 0)
                break;
        }
        ff[i].has_size = 1;
        ff[i].size = size;
    }
    /* on failure, drop the uploads we did not get to */
    for (size_t i = 0; rc < 0 && up != NULL && i < n; i++)
        if (up[i].has_token && !up[i].committed)
            imgstore_upload_abort(c->ctl->img, up[i].token);
    /* a signature must at least verify under the key it names: a damaged
     * one fails here rather than at every agent (which key is trusted is
     * the agents' business, see firmfleet-agent(8)) */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (up[i].signature == NULL || up[i].signature[0] == '\0' || up[i].signer == NULL ||
            up[i].signer[0] == '\0')
            continue;
        uint8_t sig[SIGN_SIG_LEN], pk[SIGN_PK_LEN], sha[32];
        if (util_unhex(up[i].signature, sig, sizeof sig) < 0 ||
            util_unhex(up[i].signer, pk, sizeof pk) < 0 ||
            util_unhex(up[i].sha256, sha, sizeof sha) < 0 ||
            sign_image_verify(pk, sig, sha, ff[i].size, up[i].name) < 0) {
            s_errf(c, "file %s: its signature does not verify under the key it names", up[i].name);
            rc = -EINVAL;
        }
    }
    json_t *ids = NULL;
    if (rc == 0)
        rc = store_firmware_add(st, c->user, &fw, NULL, &ids, c->err, sizeof c->err);
    if (rc == 0) {
        s_notify_ids(c, ids);
        rc = store_firmware_show(st, ref, &c->out, c->err, sizeof c->err);
    }
    json_decref(ids);
    for (size_t i = 0; i < n_models; i++)
        free(models[i]);
    free(models);
    free(up);
    free(ff);
    json_decref(doc);
    return rc;
}

static int h_fw_list(struct call *c)
{
    return store_firmware_list(c->ctl->st, &c->out, c->err, sizeof c->err);
}

static int h_fw_show(struct call *c)
{
    return store_firmware_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

/* ---- events ---- */

static int h_event_list(struct call *c)
{
    struct store_event_filter f = {
        .agent = s_opt(c->req, "agent"),
        .site = s_opt(c->req, "site"),
        .kind = s_opt(c->req, "kind"),
        .mac = s_opt(c->req, "mac"),
        .limit = 100,
    };
    const char *v;
    int rc = 0;
    if ((v = s_opt(c->req, "limit")) != NULL)
        rc = s_parse_u64(c, "limit", v, &f.limit);
    if (rc == 0 && (v = s_opt(c->req, "since")) != NULL) {
        rc = s_parse_u64(c, "since", v, &f.since);
        f.has_since = 1;
    }
    if (rc < 0)
        return rc;
    return store_event_list(c->ctl->st, &f, &c->out, c->err, sizeof c->err);
}

/* ---- audit ---- */

/* --limit N into *limit, which holds the default. 0, or -EINVAL (c->err). */
static int s_opt_limit(struct call *c, int64_t *limit)
{
    const char *v = s_opt(c->req, "limit");
    return v != NULL && s_parse_u64(c, "limit", v, limit) < 0 ? -EINVAL : 0;
}

static int h_audit_list(struct call *c)
{
    int64_t limit = 100;
    if (s_opt_limit(c, &limit) < 0)
        return -EINVAL;
    return store_audit_find(c->ctl->st, s_opt(c->req, "by"), s_opt(c->req, "action"), limit,
                            &c->out, c->err, sizeof c->err);
}

/* ---- backups ---- */

static int h_backup_list(struct call *c)
{
    int64_t limit = 0;
    if (s_opt_limit(c, &limit) < 0)
        return -EINVAL;
    return store_backup_list(c->ctl->st, s_opt(c->req, "mac"), s_opt(c->req, "site"), limit,
                             &c->out, c->err, sizeof c->err);
}

static int s_backup_id(struct call *c, int64_t *id)
{
    if (util_parse_i64(s_arg(c->req, 0), 1, INT64_MAX, id) < 0) {
        char q[64];
        s_errf(c, "invalid backup id '%s' (a positive integer, as in backup list)",
               log_quote(s_arg(c->req, 0), q, sizeof q));
        return -EINVAL;
    }
    return 0;
}

static int h_backup_show(struct call *c)
{
    int64_t id;
    if (s_backup_id(c, &id) < 0)
        return -EINVAL;
    return store_backup_get(c->ctl->st, id, &c->out, NULL, NULL, c->err, sizeof c->err);
}

/* The metadata with the bytes as "data" in base64 (RFC 4648, padded): the
 * admin channel carries JSON only, and a backup (at most 2 MiB) stays under
 * the frame limit after the 4/3 growth. */
static int h_backup_get(struct call *c)
{
    int64_t id;
    uint8_t *data = NULL;
    size_t len = 0;
    if (s_backup_id(c, &id) < 0)
        return -EINVAL;
    int rc = store_backup_get(c->ctl->st, id, &c->out, &data, &len, c->err, sizeof c->err);
    if (rc < 0)
        return rc;
    size_t blen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(blen);
    if (b64 == NULL || sodium_init() < 0) {
        free(b64);
        free(data);
        return s_oom(c);
    }
    sodium_bin2base64(b64, blen, data, len, sodium_base64_VARIANT_ORIGINAL);
    free(data);
    rc = json_object_set_new(c->out, "data", json_string(b64)) < 0 ? s_oom(c) : 0;
    free(b64);
    return rc;
}

/* ---- site services: subnets, classes, templates ---- */

/* After a write: tells the link about every site in ids (after the commit),
 * and sets the result to doc (taking it). */
static int s_done(struct call *c, json_t *ids, json_t *doc)
{
    s_notify_ids(c, ids);
    json_decref(ids);
    c->out = doc;
    return 0;
}

/* Subnets, classes and templates share their store functions' shapes: a
 * thing is keyed by two strings (site and CIDR; name and site), listed per
 * site, and a write returns the ids of the sites it touched. */
typedef int (*scoped_list_fn)(store_t *st, const char *site, json_t **out, char *err,
                              size_t errlen);
typedef int (*scoped_show_fn)(store_t *st, const char *k1, const char *k2, json_t **out, char *err,
                              size_t errlen);
typedef int (*scoped_remove_fn)(store_t *st, const char *user, const char *k1, const char *k2,
                                json_t **out, json_t **site_ids, char *err, size_t errlen);

/* After an add committed: tells the link about ids (taking them) and sets
 * the result to the thing as show finds it now. */
static int s_added(struct call *c, json_t *ids, scoped_show_fn show, const char *k1, const char *k2)
{
    json_t *doc = NULL;
    s_notify_ids(c, ids);
    json_decref(ids);
    int rc = show(c->ctl->st, k1, k2, &doc, c->err, sizeof c->err);
    c->out = doc;
    return rc;
}

/* list [--site S] */
static int s_scoped_list(struct call *c, scoped_list_fn list)
{
    return list(c->ctl->st, s_opt(c->req, "site"), &c->out, c->err, sizeof c->err);
}

/* show NAME [--site S] */
static int s_scoped_show(struct call *c, scoped_show_fn show)
{
    return show(c->ctl->st, s_arg(c->req, 0), s_opt(c->req, "site"), &c->out, c->err,
                sizeof c->err);
}

/* remove: the result is the thing as it was. */
static int s_scoped_remove(struct call *c, scoped_remove_fn del, const char *k1, const char *k2)
{
    json_t *ids = NULL, *old = NULL;
    int rc = del(c->ctl->st, c->user, k1, k2, &old, &ids, c->err, sizeof c->err);
    return rc < 0 ? rc : s_done(c, ids, old);
}

static int h_subnet_add(struct call *c)
{
    const char *pool;
    int rc = s_required(c, "pool", &pool);
    if (rc < 0)
        return rc;
    const char **opts = NULL;
    size_t n_opts = 0;
    if ((rc = s_opt_all(c, "option", &opts, &n_opts)) < 0)
        return rc;
    struct store_subnet_in in = {
        .site = s_arg(c->req, 0),
        .cidr = s_arg(c->req, 1),
        .pool = pool,
        .router = s_opt(c->req, "router"),
        .dns = s_opt(c->req, "dns"),
        .lease = s_opt(c->req, "lease"),
        .relays = s_opt(c->req, "relay"),
        .options = opts,
        .n_options = n_opts,
    };
    json_t *ids = NULL;
    rc = store_subnet_add(c->ctl->st, c->user, &in, &ids, c->err, sizeof c->err);
    free(opts);
    return rc < 0 ? rc : s_added(c, ids, store_subnet_show, in.site, in.cidr);
}

static int h_subnet_list(struct call *c)
{
    return s_scoped_list(c, store_subnet_list);
}

static int h_subnet_remove(struct call *c)
{
    return s_scoped_remove(c, store_subnet_remove, s_arg(c->req, 0), s_arg(c->req, 1));
}

static int h_class_add(struct call *c)
{
    const char **rules = NULL, **opts = NULL;
    size_t n_rules = 0, n_opts = 0;
    int rc = s_opt_all(c, "match", &rules, &n_rules);
    if (rc == 0)
        rc = s_opt_all(c, "option", &opts, &n_opts);
    if (rc == 0 && n_rules == 0) {
        s_errf(c, "class add: at least one --match is required");
        rc = -EINVAL;
    }
    const char *name = s_arg(c->req, 0), *site = s_opt(c->req, "site");
    struct store_class_in in = {
        .name = name,
        .site = site,
        .priority = s_opt(c->req, "priority"),
        .rules = rules,
        .n_rules = n_rules,
        .options = opts,
        .n_options = n_opts,
        .tftp_root = s_opt(c->req, "tftp-root"),
        .window = s_opt(c->req, "window"),
        .replace = s_opt(c->req, "replace") != NULL,
    };
    json_t *ids = NULL;
    if (rc == 0)
        rc = store_class_add(c->ctl->st, c->user, &in, &ids, c->err, sizeof c->err);
    free(rules);
    free(opts);
    return rc < 0 ? rc : s_added(c, ids, store_class_show, name, site);
}

static int h_class_list(struct call *c)
{
    return s_scoped_list(c, store_class_list);
}

static int h_class_show(struct call *c)
{
    return s_scoped_show(c, store_class_show);
}

static int h_class_remove(struct call *c)
{
    return s_scoped_remove(c, store_class_remove, s_arg(c->req, 0), s_opt(c->req, "site"));
}

static int h_template_add(struct call *c)
{
    const char *name = s_arg(c->req, 0), *site = s_opt(c->req, "site");
    json_t *ids = NULL;
    int rc =
        store_template_add(c->ctl->st, c->user, name, site, c->req->blob.data, c->req->blob.len,
                           s_opt(c->req, "replace") != NULL, &ids, c->err, sizeof c->err);
    if (rc < 0)
        return rc;
    rc = s_added(c, ids, store_template_show, name, site);
    if (rc == 0)
        json_object_del(c->out, "body_hex"); /* the caller has the body */
    return rc;
}

static int h_template_list(struct call *c)
{
    return s_scoped_list(c, store_template_list);
}

static int h_template_show(struct call *c)
{
    return s_scoped_show(c, store_template_show);
}

static int h_template_remove(struct call *c)
{
    return s_scoped_remove(c, store_template_remove, s_arg(c->req, 0), s_opt(c->req, "site"));
}

/* ---- site calendars, device fields ---- */

static int h_site_set(struct call *c)
{
    const char *window = s_opt(c->req, "window");
    if (window == NULL) {
        s_errf(c, "site set: nothing to set (--window SPEC; \"\" clears it)");
        return -EINVAL;
    }
    int64_t id = 0;
    int rc = store_site_set_window(c->ctl->st, c->user, s_arg(c->req, 0), window, &id, c->err,
                                   sizeof c->err);
    if (rc < 0)
        return rc;
    s_notify(c, id);
    return store_site_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

static int h_device_set(struct call *c)
{
    struct store_device_set_in in = {
        .version = s_opt(c->req, "version"),
        .serial_config = s_opt(c->req, "serial-config"),
        .serial_firmware = s_opt(c->req, "serial-firmware"),
        .serial_boot = s_opt(c->req, "serial-boot"),
        .profile = s_opt(c->req, "profile"),
    };
    int64_t site_id = 0;
    int rc = store_device_set(c->ctl->st, c->user, s_arg(c->req, 0), &in, &site_id, c->err,
                              sizeof c->err);
    if (rc < 0)
        return rc;
    s_notify(c, site_id);
    return store_device_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

/* ---- profiles ---- */

/* After a rollout/profile write committed: hands its notes to the link. */
static void s_notes(struct call *c, struct rollout_notes *n)
{
    for (size_t i = 0; i < n->n_sites; i++)
        s_notify(c, n->sites[i]);
    n->n_sites = 0;
    rollout_notes_flush(c->ctl, n); /* outboxes; the sites go after the response is built */
}

static int h_profile_add(struct call *c)
{
    struct rollout_notes notes = {0};
    char name[64] = "";
    /* a signature (made by `profile add --sign-key` on the operator's
     * machine) must verify under the key it names; which keys are trusted is
     * the agents' business */
    const char *sig = s_opt(c->req, "signature"), *signer = s_opt(c->req, "signer");
    sig = sig ? sig : "";
    signer = signer ? signer : "";
    if ((sig[0] == '\0') != (signer[0] == '\0')) {
        s_errf(c, "profile add: signature and signer go together");
        return -EINVAL;
    }
    if (sig[0]) {
        uint8_t sb[SIGN_SIG_LEN], pk[SIGN_PK_LEN];
        const char *why = NULL;
        if (strlen(sig) != SIGN_SIG_HEX || strlen(signer) != SIGN_PK_HEX ||
            util_unhex(sig, sb, sizeof sb) < 0 || util_unhex(signer, pk, sizeof pk) < 0 ||
            sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])pk, 1, pk, sizeof pk, sb,
                                      sizeof sb, (const char *)c->req->blob.data, c->req->blob.len,
                                      &why) < 0) {
            s_errf(c, "profile add: its signature does not verify under the key it names");
            return -EINVAL;
        }
    }
    int sp = store_begin(c->ctl->st) == 0;
    if (!sp) {
        s_errf(c, "cannot open a transaction");
        return -EIO;
    }
    int rc =
        rollout_profile_add(c->ctl, c->user, (const char *)c->req->blob.data, c->req->blob.len,
                            s_opt(c->req, "replace") != NULL, name, &notes, c->err, sizeof c->err);
    int changed = 0;
    if (rc == 0)
        rc = store_profile_set_signature(c->ctl->st, c->user, name, sig, signer, &changed, c->err,
                                         sizeof c->err);
    if (rc == 0 && store_commit(c->ctl->st) < 0) {
        s_errf(c, "cannot commit");
        rc = -EIO;
    }
    if (rc < 0) {
        store_rollback(c->ctl->st);
        rollout_notes_free(&notes);
        return rc;
    }
    if (changed && notes.n_sites == 0 && c->ctl->link) {
        /* only the signature changed: every site still gets it */
        json_t *sites = NULL;
        char e2[128];
        if (store_site_list(c->ctl->st, &sites, e2, sizeof e2) == 0) {
            size_t i;
            json_t *o;
            json_array_foreach(sites, i, o)
                s_notify(c, json_integer_value(json_object_get(o, "id")));
        }
        json_decref(sites);
    }
    s_notes(c, &notes);
    rc = store_profile_show(c->ctl->st, name, &c->out, c->err, sizeof c->err);
    if (rc == 0)
        json_object_del(c->out, "json"); /* the caller has the text */
    return rc;
}

static int h_profile_list(struct call *c)
{
    return store_profile_list(c->ctl->st, &c->out, c->err, sizeof c->err);
}

static int h_profile_show(struct call *c)
{
    return store_profile_show(c->ctl->st, s_arg(c->req, 0), &c->out, c->err, sizeof c->err);
}

static int h_profile_remove(struct call *c)
{
    json_t *old = NULL, *ids = json_array();
    if (ids == NULL)
        return s_oom(c);
    int rc = store_profile_show(c->ctl->st, s_arg(c->req, 0), &old, c->err, sizeof c->err);
    if (rc == 0)
        rc =
            store_profile_remove(c->ctl->st, c->user, s_arg(c->req, 0), ids, c->err, sizeof c->err);
    if (rc < 0) {
        json_decref(old);
        json_decref(ids);
        return rc;
    }
    json_object_del(old, "json");
    return s_done(c, ids, old);
}

/* ---- rollouts ---- */

/* After a rollout write that returned rc: its notes go to the link when it
 * committed (and are dropped when not), and the result is the rollout's
 * status. */
static int s_rollout_done(struct call *c, int rc, struct rollout_notes *notes, const char *name)
{
    if (rc < 0) {
        rollout_notes_free(notes);
        return rc;
    }
    s_notes(c, notes);
    return store_rollout_status(c->ctl->st, name, 0, &c->out, c->err, sizeof c->err);
}

static int h_rollout_create(struct call *c)
{
    struct rollout_create_in in = {
        .name = s_arg(c->req, 0),
        .firmware = s_opt(c->req, "firmware"),
        .profile = s_opt(c->req, "profile"),
        .sites = s_opt(c->req, "sites"),
        .models = s_opt(c->req, "models"),
        .tags = s_opt(c->req, "tags"),
        .devices = s_opt(c->req, "devices"),
        .waves = s_opt(c->req, "waves"),
        .max_failures = s_opt(c->req, "max-failures"),
        .site_concurrency = s_opt(c->req, "site-concurrency"),
        .window = s_opt(c->req, "window"),
        .start_at = s_opt(c->req, "start-at"),
        .boot_grace = s_opt(c->req, "boot-grace"),
        .spread = s_opt(c->req, "spread"),
        .verify_timeout = s_opt(c->req, "verify-timeout"),
        .timeouts = s_opt(c->req, "timeouts"),
        .stage_fresh = s_opt(c->req, "stage-fresh") != NULL,
    };
    struct rollout_notes notes = {0};
    int rc = rollout_create(c->ctl, c->user, &in, util_now_ms(), &notes, c->err, sizeof c->err);
    return s_rollout_done(c, rc, &notes, in.name);
}

typedef int (*rollout_verb_fn)(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                               struct rollout_notes *notes, char *err, size_t errlen);

static int s_rollout_verb(struct call *c, rollout_verb_fn fn)
{
    struct rollout_notes notes = {0};
    int rc = fn(c->ctl, c->user, s_arg(c->req, 0), util_now_ms(), &notes, c->err, sizeof c->err);
    return s_rollout_done(c, rc, &notes, s_arg(c->req, 0));
}

static int h_rollout_start(struct call *c)
{
    return s_rollout_verb(c, rollout_start);
}
static int h_rollout_pause(struct call *c)
{
    return s_rollout_verb(c, rollout_pause);
}
static int h_rollout_resume(struct call *c)
{
    return s_rollout_verb(c, rollout_resume);
}
static int h_rollout_abort(struct call *c)
{
    return s_rollout_verb(c, rollout_abort);
}

static int h_rollout_list(struct call *c)
{
    return store_rollout_list(c->ctl->st, &c->out, c->err, sizeof c->err);
}

static int h_rollout_status(struct call *c)
{
    return store_rollout_status(c->ctl->st, s_arg(c->req, 0), s_opt(c->req, "devices") != NULL,
                                &c->out, c->err, sizeof c->err);
}

static const struct verb s_verbs[] = {
    {"site", "add", 1, 1, {"tz", "description"}, {NULL}, 1, h_site_add},
    {"site", "list", 0, 0, {NULL}, {NULL}, 0, h_site_list},
    {"site", "show", 1, 1, {NULL}, {NULL}, 0, h_site_show},
    {"site", "set", 1, 1, {"window"}, {NULL}, 1, h_site_set},
    {"agent", "enroll", 0, 0, {"site", "name", "ttl"}, {NULL}, 1, h_agent_enroll},
    {"agent", "list", 0, 0, {NULL}, {NULL}, 0, h_agent_list},
    {"agent", "show", 1, 1, {NULL}, {NULL}, 0, h_agent_show},
    {"agent", "revoke", 1, 1, {NULL}, {NULL}, 1, h_agent_revoke},
    {"device",
     "add",
     1,
     1,
     {"site", "model", "serial", "tags", "ip", "class"},
     {NULL},
     1,
     h_device_add},
    {"device", "import", 0, 0, {NULL}, {NULL}, 1, h_device_import},
    {"device", "list", 0, 0, {"site", "model", "limit", "after"}, {NULL}, 0, h_device_list},
    {"device", "show", 1, 1, {NULL}, {NULL}, 0, h_device_show},
    {"device", "assign", 1, 10000, {"firmware"}, {NULL}, 1, h_device_assign},
    {"device",
     "set",
     1,
     1,
     {"version", "serial-config", "serial-firmware", "serial-boot", "profile"},
     {NULL},
     1,
     h_device_set},
    {"profile", "add", 0, 0, {"replace", "signature", "signer"}, {NULL}, 1, h_profile_add},
    {"profile", "list", 0, 0, {NULL}, {NULL}, 0, h_profile_list},
    {"profile", "show", 1, 1, {NULL}, {NULL}, 0, h_profile_show},
    {"profile", "remove", 1, 1, {NULL}, {NULL}, 1, h_profile_remove},
    {"rollout",
     "create",
     1,
     1,
     {"firmware", "profile", "sites", "models", "tags", "devices", "waves", "max-failures",
      "site-concurrency", "window", "start-at", "boot-grace", "stage-fresh", "spread",
      "verify-timeout", "timeouts"},
     {NULL},
     1,
     h_rollout_create},
    {"rollout", "start", 1, 1, {NULL}, {NULL}, 1, h_rollout_start},
    {"rollout", "pause", 1, 1, {NULL}, {NULL}, 1, h_rollout_pause},
    {"rollout", "resume", 1, 1, {NULL}, {NULL}, 1, h_rollout_resume},
    {"rollout", "abort", 1, 1, {NULL}, {NULL}, 1, h_rollout_abort},
    {"rollout", "list", 0, 0, {NULL}, {NULL}, 0, h_rollout_list},
    {"rollout", "status", 1, 1, {"devices"}, {NULL}, 0, h_rollout_status},
    {"firmware", "upload-begin", 0, 0, {"size"}, {NULL}, 0, h_fw_upload_begin},
    {"firmware", "upload-chunk", 0, 0, {"token", "offset"}, {NULL}, 0, h_fw_upload_chunk},
    {"firmware", "upload-abort", 0, 0, {"token"}, {NULL}, 0, h_fw_upload_abort},
    {"firmware", "add", 1, 1, {"models", "description"}, {NULL}, 1, h_fw_add},
    {"firmware", "list", 0, 0, {NULL}, {NULL}, 0, h_fw_list},
    {"firmware", "show", 1, 1, {NULL}, {NULL}, 0, h_fw_show},
    {"event",
     "list",
     0,
     0,
     {"agent", "site", "kind", "mac", "limit", "since"},
     {NULL},
     0,
     h_event_list},
    {"backup", "list", 0, 0, {"mac", "site", "limit"}, {NULL}, 0, h_backup_list},
    {"audit", "list", 0, 0, {"by", "action", "limit"}, {NULL}, 0, h_audit_list},
    {"backup", "show", 1, 1, {NULL}, {NULL}, 0, h_backup_show},
    {"backup", "get", 1, 1, {NULL}, {NULL}, 0, h_backup_get},
    {"subnet",
     "add",
     2,
     2,
     {"pool", "router", "dns", "lease", "relay", "option"},
     {"option"},
     1,
     h_subnet_add},
    {"subnet", "list", 0, 0, {"site"}, {NULL}, 0, h_subnet_list},
    {"subnet", "remove", 2, 2, {NULL}, {NULL}, 1, h_subnet_remove},
    {"class",
     "add",
     1,
     1,
     {"site", "priority", "match", "option", "tftp-root", "replace", "window"},
     {"match", "option"},
     1,
     h_class_add},
    {"class", "list", 0, 0, {"site"}, {NULL}, 0, h_class_list},
    {"class", "show", 1, 1, {"site"}, {NULL}, 0, h_class_show},
    {"class", "remove", 1, 1, {"site"}, {NULL}, 1, h_class_remove},
    {"template", "add", 1, 1, {"site", "replace"}, {NULL}, 1, h_template_add},
    {"template", "list", 0, 0, {"site"}, {NULL}, 0, h_template_list},
    {"template", "show", 1, 1, {"site"}, {NULL}, 0, h_template_show},
    {"template", "remove", 1, 1, {"site"}, {NULL}, 1, h_template_remove},
};

/* Checks the request against the verb table; fills c->err on failure. */
static const struct verb *s_lookup(struct call *c)
{
    const req_t *req = c->req;
    const char *noun = req->noun ? req->noun : "", *verb = req->verb ? req->verb : "";
    char qn[64], qv[64];
    const struct verb *v = NULL;
    int noun_known = 0;
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++) {
        if (strcmp(s_verbs[i].noun, noun) != 0)
            continue;
        noun_known = 1;
        if (strcmp(s_verbs[i].verb, verb) == 0)
            v = &s_verbs[i];
    }
    if (!noun_known) {
        s_errf(c, "unknown command '%s'", log_quote(noun, qn, sizeof qn));
        return NULL;
    }
    if (v == NULL) {
        s_errf(c, "unknown verb '%s' for %s", log_quote(verb, qv, sizeof qv), noun);
        return NULL;
    }
    if ((int)req->n_args < v->min_args || (int)req->n_args > v->max_args) {
        s_errf(c, "%s %s: expected %d argument%s, got %zu", noun, verb, v->max_args,
               v->max_args == 1 ? "" : "s", req->n_args);
        return NULL;
    }
    for (size_t i = 0; i < req->n_args; i++)
        if (req->args[i] == NULL) {
            s_errf(c, "%s %s: empty argument", noun, verb);
            return NULL;
        }
    for (size_t i = 0; i < req->n_opts; i++) {
        const char *key = req->opts[i] && req->opts[i]->key ? req->opts[i]->key : "";
        int allowed = 0;
        for (int k = 0; k < MAX_OPTS && v->opts[k]; k++)
            allowed |= strcmp(v->opts[k], key) == 0;
        if (!allowed) {
            s_errf(c, "%s %s: unknown option --%s", noun, verb, log_quote(key, qn, sizeof qn));
            return NULL;
        }
        int repeatable = 0;
        for (int k = 0; k < MAX_OPTS && v->repeat[k]; k++)
            repeatable |= strcmp(v->repeat[k], key) == 0;
        for (size_t j = 0; j < i && !repeatable; j++)
            if (strcmp(req->opts[j]->key, key) == 0) {
                s_errf(c, "%s %s: option --%s given twice", noun, verb, key);
                return NULL;
            }
    }
    return v;
}

static int s_user_ok_n(const char *u, size_t n)
{
    if (n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] <= 0x20 || u[i] >= 0x7f || u[i] == '"' || u[i] == '\\')
            return 0;
    return 1;
}

static int s_user_ok(const char *u)
{
    return s_user_ok_n(u, strlen(u));
}

/* Serves one request frame; sends exactly one response. */
static void s_serve(struct ctl *ctl, const void *data, size_t len, int multipart,
                    const char *key_user)
{
    struct call c;
    memset(&c, 0, sizeof c);
    c.ctl = ctl;
    int rc = -EINVAL;
    const struct verb *v = NULL;
    req_t *req = multipart ? NULL : wire_admin_req_unpack(data, len);
    if (multipart) {
        s_errf(&c, "malformed request (more than one frame)");
    } else if (req == NULL) {
        s_errf(&c, "malformed request (not an AdminRequest)");
    } else {
        c.req = req;
        /* over tcp the audit user is the name of the operator's key in
         * admin_keys (ZAP), whatever the request says */
        c.user = key_user ? key_user : req->user && *req->user ? req->user : "unknown";
        if (!s_user_ok(c.user))
            s_errf(&c, "invalid user name");
        else if ((v = s_lookup(&c)) != NULL)
            rc = v->fn(&c);
    }
    if (rc == 0 && c.out == NULL)
        c.out = json_object();
    if (rc == 0)
        for (size_t i = 0; i < c.n_notify && ctl->link; i++)
            ctl_link_site_changed(ctl->link, c.notify[i]);

    Firmfleet__AdminResponse resp = FIRMFLEET__ADMIN_RESPONSE__INIT;
    char *json = NULL;
    if (rc == 0) {
        json = json_dumps(c.out, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json == NULL) {
            rc = -ENOMEM;
            s_errf(&c, "out of memory");
        } else if (strlen(json) > WIRE_MAX_MSG - 1024) {
            rc = -EMSGSIZE;
            s_errf(&c, "result too large for one response (%zu bytes); narrow it with filters",
                   strlen(json));
        }
    }
    if (rc < 0 && c.err[0] == '\0')
        s_errf(&c, "%s", strerror(-rc));
    resp.status = rc;
    resp.error = rc < 0 ? c.err : (char *)"";
    resp.json = rc == 0 ? json : (char *)"";

    char qn[64], qv[64], qu[80], qe[ERR_LEN + 16];
    const char *noun = req && req->noun ? req->noun : "", *verb = req && req->verb ? req->verb : "";
    if (rc < 0)
        log_info("admin.failed", "user=%s noun=%s verb=%s status=%d error=%s",
                 log_quote(c.user ? c.user : "", qu, sizeof qu), log_quote(noun, qn, sizeof qn),
                 log_quote(verb, qv, sizeof qv), rc, log_quote(c.err, qe, sizeof qe));
    else if (v && v->write)
        log_info("admin.done", "user=%s noun=%s verb=%s", log_quote(c.user, qu, sizeof qu), noun,
                 verb);
    else
        log_debug("admin.done", "user=%s noun=%s verb=%s", log_quote(c.user, qu, sizeof qu), noun,
                  verb);

    int src = wire_send_admin_resp(ctl->admin, &resp);
    if (src < 0)
        log_warn("admin.send_failed", "error=%d", src);
    if (json) {
        /* may hold an agent's secret key */
        explicit_bzero(json, strlen(json));
        free(json);
    }
    json_decref(c.out);
    if (req)
        firmfleet__admin_request__free_unpacked(req, NULL);
}

void ctl_admin_on_request(struct ctl *ctl)
{
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, ctl->admin, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            if (e != EAGAIN && e != EINTR)
                log_warn("admin.recv_failed", "error=\"%s\"", zmq_strerror(e));
            return;
        }
        int multipart = 0;
        while (zmq_msg_more(&msg)) {
            /* a REP socket must read the whole message before it may answer */
            multipart = 1;
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, ctl->admin, 0) < 0)
                break;
        }
        const char *key_user = ctl->admin_curve ? zmq_msg_gets(&msg, "User-Id") : NULL;
        if (ctl->admin_curve && key_user == NULL)
            key_user = "unknown";
        s_serve(ctl, zmq_msg_data(&msg), zmq_msg_size(&msg), multipart, key_user);
        zmq_msg_close(&msg);
    }
}

/* ---- admin keys (the tcp admin endpoint) ---- */

int ctl_admin_key_lookup(struct ctl *ctl, const char *z85, char *name, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/admin_keys", ctl->datadir);
    struct stat sb;
    if (stat(path, &sb) < 0) {
        if (errno == ENOENT)
            return 0;
        log_warn("admin.keys", "path=%s error=\"%s\"", path, strerror(errno));
        return -EIO;
    }
    if ((sb.st_mode & 022) != 0) {
        log_warn("admin.keys", "path=%s mode=%04o reason=\"writable by group or others: ignored\"",
                 path, (unsigned)(sb.st_mode & 07777));
        return -EPERM;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = util_read_file(path, CTL_ADMIN_KEYS_MAX, &text, &len);
    if (rc < 0) {
        log_warn("admin.keys", "path=%s error=\"%s\"", path, strerror(-rc));
        return rc;
    }
    rc = 0;
    char *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0 && lines < 10000;
         line = strtok_r(NULL, "\n", &save), lines++) {
        line += strspn(line, " \t");
        if (*line == '#')
            continue;
        char key[41];
        const char *nm;
        if (zmqx_key_line(line, key, &nm) < 0 || strcmp(key, z85) != 0)
            continue; /* a blank line, or another key */
        while (*nm == ' ' || *nm == '\t')
            nm++;
        size_t nl = strcspn(nm, " \t\r");
        if (nl == 0 || nl >= n || !s_user_ok_n(nm, nl)) {
            snprintf(name, n, "key-%.8s", key);
        } else {
            memcpy(name, nm, nl);
            name[nl] = '\0';
        }
        rc = 1;
    }
    free(text);
    return rc;
}
