/* agent.c: the site agent's context: credential, state directory, the loop's
 * fixed handles (signals, the per-turn commit, the synthetic event generator)
 * and what the controller tells the agent to hold (SiteConfig, assignments).
 *
 * Invariants: see agent.h. The state directory is locked (flock on
 * STATEDIR/agent.lock) so two agents never share one journal; the lock dies
 * with the process, also on kill -9. With an enrollment credential the
 * agent's own CURVE key pair lives in STATEDIR/agent.key (mode 0600), made
 * here and never sent; the credential's key is used only until the
 * controller confirmed the registration (agent_key_*).
 */
#include "agent.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "imgcache.h"
#include "log.h"
#include "provision.h"
#include "uplink.h"
#include "util.h"
#include "window.h"
#include "zmqx.h"

#define CRED_MAX_BYTES (64u << 10)
#define SYNTH_BATCH 200
#define SYNTH_TICK_MS 20
#define COMMIT_FAILURES_FATAL 5
#define SC_MAX_DEVICES 100000

/* ---- credential ---- */

/* Printable, no quotes/backslash (they end up in logs and SQL parameters
 * only, but a name with control bytes is a broken file, not a name). */
static int s_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            return 0;
    return 1;
}

static int s_endpoint_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > AGENT_ENDPOINT_MAX || (strncmp(s, "tcp://", 6) != 0 && strncmp(s, "ipc://", 6) != 0))
        return 0;
    if (n <= 6)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

static int s_cred_str(json_t *root, const char *key, char *out, size_t n, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_string(v)) {
        snprintf(err, errlen, "field \"%s\" missing or not a string", key);
        return -EINVAL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || strlen(s) >= n) {
        snprintf(err, errlen, "field \"%s\" too long or holds NUL", key);
        return -EINVAL;
    }
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int agent_cred_load(const char *path, struct agent_cred *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    int rc = util_read_file(path, CRED_MAX_BYTES, &buf, &len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read: %s", rc == -EFBIG ? "file too large" : strerror(-rc));
        return rc;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        log_warn("cred.mode", "path=%s mode=%04o reason=\"readable by group or others\"", path,
                 (unsigned)(st.st_mode & 07777));
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    /* the secret key was in buf: do not leave it in freed heap */
    memset(buf, 0, len);
    free(buf);
    if (root == NULL) {
        snprintf(err, errlen, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
        return -EINVAL;
    }
    rc = -EINVAL;
    json_t *ver = json_object_get(root, "version");
    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object");
    } else if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        snprintf(err, errlen, "field \"version\" must be 1");
    } else if (s_cred_str(root, "agent", out->agent, sizeof out->agent, err, errlen) == 0 &&
               s_cred_str(root, "site", out->site, sizeof out->site, err, errlen) == 0 &&
               s_cred_str(root, "endpoint", out->endpoint, sizeof out->endpoint, err, errlen) ==
                   0 &&
               s_cred_str(root, "server_public_key", out->server_key, sizeof out->server_key, err,
                          errlen) == 0 &&
               s_cred_str(root, "public_key", out->public_key, sizeof out->public_key, err,
                          errlen) == 0 &&
               s_cred_str(root, "secret_key", out->secret_key, sizeof out->secret_key, err,
                          errlen) == 0) {
        if (!s_name_ok(out->agent, AGENT_NAME_MAX))
            snprintf(err, errlen, "field \"agent\" is not a valid name");
        else if (!s_name_ok(out->site, AGENT_NAME_MAX))
            snprintf(err, errlen, "field \"site\" is not a valid name");
        else if (!s_endpoint_ok(out->endpoint))
            snprintf(err, errlen, "field \"endpoint\" is not a tcp:// or ipc:// endpoint");
        else if (zmqx_key_check(out->server_key) < 0)
            snprintf(err, errlen, "field \"server_public_key\" is not a Z85 CURVE key");
        else if (zmqx_key_check(out->public_key) < 0)
            snprintf(err, errlen, "field \"public_key\" is not a Z85 CURVE key");
        else if (zmqx_key_check(out->secret_key) < 0)
            snprintf(err, errlen, "field \"secret_key\" is not a Z85 CURVE key");
        else
            rc = 0;
        json_t *en = json_object_get(root, "enrollment"), *ex = json_object_get(root, "expires_ms");
        if (rc == 0 && en != NULL && !json_is_boolean(en)) {
            snprintf(err, errlen, "field \"enrollment\" must be true or false");
            rc = -EINVAL;
        } else if (rc == 0 && json_is_true(en) &&
                   (!json_is_integer(ex) || json_integer_value(ex) <= 0)) {
            snprintf(err, errlen, "field \"expires_ms\" missing or not a positive integer");
            rc = -EINVAL;
        } else if (rc == 0 && json_is_true(en)) {
            out->enrollment = 1;
            out->expires_ms = json_integer_value(ex);
        }
    }
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- the agent's own key (enrollment credentials) ---- */

/* STATEDIR/agent.key: {"public_key", "secret_key", "registered"}, mode 0600.
 * The secret half is made here and never leaves the box. */
static int s_key_path(const char *state_dir, char *path, size_t n)
{
    return snprintf(path, n, "%s/agent.key", state_dir) >= (int)n ? -ENAMETOOLONG : 0;
}

/* 1 read (pub, sec, *registered filled), 0 no file, <0 unreadable/bad. */
static int s_key_read(const char *state_dir, char pub[41], char sec[41], int *registered)
{
    char path[PATH_MAX];
    if (s_key_path(state_dir, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    char *buf = NULL;
    size_t len = 0;
    int rc = util_read_file(path, 4096, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    json_t *root = json_loadb(buf, len, 0, NULL);
    memset(buf, 0, len);
    free(buf);
    json_t *p = json_object_get(root, "public_key"), *k = json_object_get(root, "secret_key");
    rc = -EINVAL;
    if (json_is_string(p) && json_is_string(k) && zmqx_key_check(json_string_value(p)) == 0 &&
        zmqx_key_check(json_string_value(k)) == 0) {
        memcpy(pub, json_string_value(p), 41);
        memcpy(sec, json_string_value(k), 41);
        *registered = json_is_true(json_object_get(root, "registered"));
        rc = 1;
    }
    if (k != NULL && json_is_string(k))
        explicit_bzero((char *)(uintptr_t)json_string_value(k), 40);
    json_decref(root);
    return rc;
}

static int s_key_write(const char *state_dir, const char *pub, const char *sec, int registered)
{
    char path[PATH_MAX], text[256];
    if (s_key_path(state_dir, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    int n = snprintf(text, sizeof text,
                     "{\"public_key\": \"%s\", \"secret_key\": \"%s\", \"registered\": %s}\n", pub,
                     sec, registered ? "true" : "false");
    int rc = util_write_file_atomic(path, text, (size_t)n, 0600);
    explicit_bzero(text, sizeof text);
    return rc;
}

int agent_key_registered(const char *state_dir)
{
    char pub[41], sec[41];
    int reg = 0;
    int rc = s_key_read(state_dir, pub, sec, &reg);
    explicit_bzero(sec, sizeof sec);
    return rc == 1 && reg;
}

/* At start (state directory locked): which key the uplink uses. */
static int s_key_setup(struct agent *a)
{
    if (!a->cred.enrollment)
        return 0;
    int reg = 0;
    int rc = s_key_read(a->state_dir, a->own_pub, a->own_sec, &reg);
    if (rc < 0) {
        log_error("agent.key", "statedir=%s error=\"%s\"", a->state_dir,
                  rc == -EINVAL ? "agent.key is not a key file" : strerror(-rc));
        return rc;
    }
    if (rc == 0) {
        if (zmq_curve_keypair(a->own_pub, a->own_sec) < 0)
            return -EIO;
        if ((rc = s_key_write(a->state_dir, a->own_pub, a->own_sec, 0)) < 0) {
            log_error("agent.key", "statedir=%s error=\"cannot write agent.key: %s\"", a->state_dir,
                      strerror(-rc));
            return rc;
        }
        log_info("agent.key_created", "public_key=%s", a->own_pub);
    }
    if (reg) {
        memcpy(a->cred.public_key, a->own_pub, 41);
        memcpy(a->cred.secret_key, a->own_sec, 41);
        a->key_state = 0;
        log_info("agent.key", "public_key=%s source=statedir", a->own_pub);
    } else {
        a->key_state = 1;
        log_info("agent.enrolling", "enrollment_key=%s public_key=%s expires_ms=%lld",
                 a->cred.public_key, a->own_pub, (long long)a->cred.expires_ms);
    }
    return 0;
}

const char *agent_key_to_register(const struct agent *a)
{
    return a->key_state == 1 ? a->own_pub : NULL;
}

int agent_key_welcome(struct agent *a)
{
    if (a->key_state == 0)
        return 0;
    int was = a->key_state;
    /* state 1: the enrollment key is in cred, the own one in own_*; state 2
     * (agent_key_refused swapped them): the own key is in cred */
    if (was == 1) {
        memcpy(a->cred.public_key, a->own_pub, 41);
        memcpy(a->cred.secret_key, a->own_sec, 41);
    }
    int rc = s_key_write(a->state_dir, a->cred.public_key, a->cred.secret_key, 1);
    if (rc < 0)
        log_error("agent.key", "statedir=%s error=\"cannot mark agent.key registered: %s\"",
                  a->state_dir, strerror(-rc));
    memcpy(a->own_pub, a->cred.public_key, 41);
    memcpy(a->own_sec, a->cred.secret_key, 41);
    a->key_state = 0;
    log_info("agent.enrolled", "public_key=%s reason=\"%s\"", a->own_pub,
             was == 1 ? "registered; the enrollment credential is used up" : "own key admitted");
    return was == 1;
}

/* Exchanges the key pair in cred with the one in own_pub/own_sec. */
static void s_key_swap(struct agent *a)
{
    char pub[41], sec[41];
    memcpy(pub, a->cred.public_key, 41);
    memcpy(sec, a->cred.secret_key, 41);
    memcpy(a->cred.public_key, a->own_pub, 41);
    memcpy(a->cred.secret_key, a->own_sec, 41);
    memcpy(a->own_pub, pub, 41);
    memcpy(a->own_sec, sec, 41);
    explicit_bzero(sec, sizeof sec);
}

void agent_key_refused(struct agent *a)
{
    if (a->key_state == 1) {
        log_error("agent.enroll_refused",
                  "reason=\"the controller refused the enrollment credential: it expired, was "
                  "already used (by another agent?) or the agent was revoked; trying this "
                  "agent's own key\" expires_ms=%lld",
                  (long long)a->cred.expires_ms);
        a->key_state = 2;
        s_key_swap(a); /* own key in cred; the enrollment key kept for the way back */
    } else if (a->key_state == 2) {
        s_key_swap(a);
        a->key_state = 1;
    }
}

/* ---- loop turn, signals, synthetic events ---- */

journal_t *agent_tx(struct agent *a)
{
    a->tx_urgent = 1;
    return agent_tx_paced(a);
}

journal_t *agent_tx_paced(struct agent *a)
{
    if (a->jr == NULL)
        return NULL;
    if (journal_begin(a->jr) < 0) {
        log_error("journal.begin_failed", "statedir=%s", a->state_dir);
        return NULL;
    }
    return a->jr;
}

/* The loop wakes for it; the uv_prepare that follows commits. */
static void s_on_commit_timer(uv_timer_t *t) { (void)t; }

static void s_on_turn(uv_prepare_t *h)
{
    struct agent *a = h->data;
    a->turn_commit_failed = 0;
    if (a->jr != NULL && journal_in_tx(a->jr) && !a->tx_urgent && !a->stopping) {
        uint64_t since = util_mono_ms() - a->last_commit_ms;
        if (since < AGENT_COMMIT_PACE_MS) {
            /* only reported events wait: commit them with a later turn's */
            if (!uv_is_active((uv_handle_t *)&a->commit_timer))
                uv_timer_start(&a->commit_timer, s_on_commit_timer,
                               AGENT_COMMIT_PACE_MS - since, 0);
            goto hooks;
        }
    }
    if (a->jr != NULL && journal_in_tx(a->jr)) {
        a->tx_urgent = 0;
        a->last_commit_ms = util_mono_ms();
        if (journal_commit(a->jr) < 0) {
            a->turn_commit_failed = 1;
            a->commit_failures++;
            log_error("journal.commit_failed", "consecutive=%d", a->commit_failures);
            if (a->commit_failures >= COMMIT_FAILURES_FATAL) {
                agent_stop(a, 1);
                return;
            }
        } else {
            a->commit_failures = 0;
        }
    }
hooks:
    if (a->up != NULL)
        uplink_after_commit(a->up);
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].after_commit)
            a->svc[i].after_commit(a->svc[i].self);
}

int agent_add_service(struct agent *a, const struct agent_service *svc)
{
    if (a->n_svc >= AGENT_MAX_SERVICES)
        return -ENOSPC;
    a->svc[a->n_svc++] = *svc;
    if (a->config != NULL && svc->on_config)
        svc->on_config(svc->self, a->config);
    return 0;
}

int agent_mac_for_ip(struct agent *a, uint32_t ip_be, uint8_t mac[6])
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].mac_for_ip && a->svc[i].mac_for_ip(a->svc[i].self, ip_be, mac) == 1)
            return 1;
    return 0;
}

int agent_ip_for_mac(struct agent *a, const uint8_t mac[6], uint32_t *ip_be)
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].ip_for_mac && a->svc[i].ip_for_mac(a->svc[i].self, mac, ip_be) == 1)
            return 1;
    return 0;
}

const Firmfleet__SiteConfig *agent_config(const struct agent *a) { return a->config; }

int agent_commit_failed(const struct agent *a) { return a->turn_commit_failed; }

/* Replaces the in-memory configuration with an unpacked copy of buf and tells
 * every service. Takes nothing from buf. */
static void s_set_config(struct agent *a, const uint8_t *buf, size_t len)
{
    Firmfleet__SiteConfig *sc = firmfleet__site_config__unpack(NULL, len, buf);
    if (sc == NULL)
        return;
    if (a->config != NULL)
        firmfleet__site_config__free_unpacked(a->config, NULL);
    a->config = sc;
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].on_config)
            a->svc[i].on_config(a->svc[i].self, sc);
}

int agent_emit_event(struct agent *a, const char *kind, const char *mac, const char *detail)
{
    journal_t *j = agent_tx_paced(a); /* not urgent: see agent.h */
    if (j == NULL)
        return -EIO;
    /* protobuf-c wants char *; copies keep const strings const */
    char k[64], m[32], d[1024];
    snprintf(k, sizeof k, "%s", kind);
    snprintf(m, sizeof m, "%s", mac ? mac : "");
    snprintf(d, sizeof d, "%s", detail ? detail : "");
    Firmfleet__DeviceEvent ev = FIRMFLEET__DEVICE_EVENT__INIT;
    ev.time_ms = util_now_ms();
    ev.kind = k;
    ev.mac = m;
    ev.detail = d;
    size_t len = firmfleet__device_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__device_event__pack(&ev, buf);
    int rc = journal_append_event(j, buf, len, ev.time_ms, NULL);
    free(buf);
    return rc;
}

int agent_emit_backup(struct agent *a, const char *mac, const char *name, const uint8_t *data,
                      size_t len, const uint8_t sha256[32])
{
    if (len > AGENT_BACKUP_MAX)
        return -EMSGSIZE;
    /* urgent: committed at the end of this turn, before the device's next
     * request is read (a backup is worth an fdatasync of its own) */
    journal_t *j = agent_tx(a);
    if (j == NULL)
        return -EIO;
    char m[32], n[256];
    snprintf(m, sizeof m, "%s", mac);
    snprintf(n, sizeof n, "%s", name);
    Firmfleet__BackupUpload bu = FIRMFLEET__BACKUP_UPLOAD__INIT;
    bu.mac = m;
    bu.name = n;
    bu.data.data = (uint8_t *)(uintptr_t)data; /* packing only reads it */
    bu.data.len = len;
    bu.time_ms = util_now_ms();
    bu.sha256.data = (uint8_t *)(uintptr_t)sha256;
    bu.sha256.len = 32;
    size_t plen = firmfleet__backup_upload__get_packed_size(&bu);
    uint8_t *buf = malloc(plen ? plen : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__backup_upload__pack(&bu, buf);
    int rc = journal_append(j, JOURNAL_BODY_BACKUP, buf, plen, bu.time_ms, NULL);
    free(buf);
    return rc;
}

static void s_synth_stop(struct agent *a)
{
    uv_idle_stop(&a->synth);
    uv_timer_stop(&a->synth_timer);
    a->synth_active = 0;
}

/* Journals up to max more synthetic events in this turn's transaction, the
 * counter in the same transaction so a restart neither repeats nor skips. */
static void s_synth_step(struct agent *a, uint64_t max)
{
    uint64_t done = 0;
    if (journal_counter_get(a->jr, "synth_count", &done) < 0)
        return; /* retried next turn */
    if (done >= a->synth_target) {
        s_synth_stop(a);
        if (!a->synth_done_logged)
            log_info("synth.done", "n=%llu", (unsigned long long)a->synth_target);
        a->synth_done_logged = 1;
        return;
    }
    journal_t *j = max > 0 ? agent_tx(a) : NULL;
    if (j == NULL)
        return;
    uint64_t left = a->synth_target - done;
    uint64_t end = done + (max < left ? max : left);
    uint64_t i = done;
    for (; i < end; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "n=%llu", (unsigned long long)(i + 1));
        if (agent_emit_event(a, "test.synthetic", "", detail) < 0)
            break;
    }
    if (i > done)
        journal_counter_set(j, "synth_count", i);
}

static void s_on_synth(uv_idle_t *h)
{
    s_synth_step(h->data, SYNTH_BATCH);
}

static void s_on_synth_timer(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t now = util_mono_ms();
    a->synth_tokens += (double)(now - a->synth_last_ms) * (double)a->synth_rate / 1000.0;
    a->synth_last_ms = now;
    if (a->synth_tokens > (double)SYNTH_BATCH * 5)
        a->synth_tokens = (double)SYNTH_BATCH * 5; /* at most ~1000 per turn */
    uint64_t n = (uint64_t)a->synth_tokens;
    a->synth_tokens -= (double)n;
    s_synth_step(a, n); /* also with n == 0: notices completion */
}

int agent_generating(const struct agent *a)
{
    return a->synth_active;
}

void agent_on_online(struct agent *a)
{
    if (a->synth_target > 0 && !a->synth_active && !a->synth_done_logged && !a->stopping) {
        a->synth_active = 1;
        if (a->synth_rate > 0) {
            a->synth_last_ms = util_mono_ms();
            a->synth_tokens = 0;
            uv_timer_start(&a->synth_timer, s_on_synth_timer, SYNTH_TICK_MS, SYNTH_TICK_MS);
        } else {
            uv_idle_start(&a->synth, s_on_synth);
        }
    }
}

static void s_on_signal(uv_signal_t *h, int signum)
{
    struct agent *a = h->data;
    log_info("agent.signal", "signal=%s", signum == SIGINT ? "INT" : "TERM");
    agent_stop(a, 0);
}

void agent_stop(struct agent *a, int exit_code)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    a->exit_code = exit_code;
    for (size_t i = a->n_svc; i-- > 0;)
        if (a->svc[i].stop)
            a->svc[i].stop(a->svc[i].self);
    imgcache_destroy(&a->img); /* checkpoints a transfer into the open transaction */
    if (a->jr != NULL && journal_in_tx(a->jr) && journal_commit(a->jr) < 0) {
        log_error("journal.commit_failed", "at=stop");
        if (a->exit_code == 0)
            a->exit_code = 1;
    }
    uplink_destroy(&a->up);
    uv_close((uv_handle_t *)&a->sig_int, NULL);
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    uv_close((uv_handle_t *)&a->turn, NULL);
    uv_close((uv_handle_t *)&a->synth, NULL);
    uv_close((uv_handle_t *)&a->synth_timer, NULL);
    uv_close((uv_handle_t *)&a->commit_timer, NULL);
    a->synth_active = 0;
}

/* ---- what the controller sends ---- */

static int s_image_ref_check(const Firmfleet__ImageRef *r, char *why, size_t n)
{
    if (r == NULL || r->sha256.len != 32 || r->sha256.data == NULL) {
        snprintf(why, n, "image sha256 is not 32 bytes");
        return -EINVAL;
    }
    if (r->size > IMGCACHE_MAX_IMAGE) {
        snprintf(why, n, "image size %llu too large", (unsigned long long)r->size);
        return -EINVAL;
    }
    if (r->name != NULL && strlen(r->name) > 255) {
        snprintf(why, n, "image name too long");
        return -EINVAL;
    }
    return 0;
}

int agent_site_config_check(const Firmfleet__SiteConfig *sc, char *why, size_t n)
{
    if (sc->n_trusted_keys > SIGN_MAX_KEYS) {
        snprintf(why, n, "too many trusted keys");
        return -EINVAL;
    }
    for (size_t i = 0; i < sc->n_trusted_keys; i++)
        if (sc->trusted_keys[i].len != SIGN_PK_LEN || sc->trusted_keys[i].data == NULL) {
            /* not ignored: dropping it could turn signature checks off */
            snprintf(why, n, "trusted key %zu is not %d bytes", i, SIGN_PK_LEN);
            return -EINVAL;
        }
    if (sc->n_images > IMGCACHE_MAX_IMAGES || sc->n_devices > SC_MAX_DEVICES) {
        snprintf(why, n, "too many images or devices");
        return -EINVAL;
    }
    for (size_t i = 0; i < sc->n_images; i++)
        if (s_image_ref_check(sc->images[i], why, n) < 0)
            return -EINVAL;
    for (size_t i = 0; i < sc->n_devices; i++) {
        char mac[18];
        const Firmfleet__DeviceRef *d = sc->devices[i];
        if (d == NULL || d->mac == NULL || util_mac_canon(d->mac, mac) < 0) {
            snprintf(why, n, "device %zu has no valid mac", i);
            return -EINVAL;
        }
    }
    return 0;
}

void agent_on_site_config(struct agent *a, const Firmfleet__SiteConfig *sc)
{
    char why[128], q[160], q2[160];
    if (sc->site != NULL && sc->site[0] != '\0' && strcmp(sc->site, a->cred.site) != 0) {
        log_warn("config.rejected", "reason=site_mismatch site=%s ours=%s",
                 log_quote(sc->site, q, sizeof q), log_quote(a->cred.site, q2, sizeof q2));
        return;
    }
    if (agent_site_config_check(sc, why, sizeof why) < 0) {
        log_warn("config.rejected", "generation=%llu reason=%s", (unsigned long long)sc->generation,
                 log_quote(why, q, sizeof q));
        return;
    }
    uint64_t gen = 0;
    uint8_t *old = NULL;
    size_t old_len = 0;
    int have = journal_config_get(a->jr, &gen, &old, &old_len);
    free(old);
    if (have < 0)
        return;
    if (have == 1 && sc->generation <= gen) {
        log_debug("config.same", "generation=%llu stored=%llu", (unsigned long long)sc->generation,
                  (unsigned long long)gen);
        return;
    }
    journal_t *j = agent_tx(a);
    if (j == NULL)
        return;
    size_t len = firmfleet__site_config__get_packed_size(sc);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return;
    firmfleet__site_config__pack(sc, buf);
    int rc = journal_config_put(j, sc->generation, buf, len);
    if (rc == 0)
        s_set_config(a, buf, len);
    free(buf);
    if (rc < 0)
        return;
    log_info("config.stored", "generation=%llu images=%zu devices=%zu",
             (unsigned long long)sc->generation, sc->n_images, sc->n_devices);
    if (a->img != NULL)
        imgcache_set_wanted(a->img, sc);
}

int agent_apply_assignment(struct agent *a, const Firmfleet__Assignment *as)
{
    char mac[18], why[128], q[300];
    if (as->mac == NULL || util_mac_canon(as->mac, mac) < 0)
        return -EINVAL;
    if (as->firmware == NULL || strlen(as->firmware) > 255)
        return -EINVAL;
    for (size_t i = 0; i < as->n_files; i++)
        if (s_image_ref_check(as->files[i], why, sizeof why) < 0) {
            log_warn("assignment.rejected", "mac=%s rollout=%llu reason=%s", mac,
                     (unsigned long long)as->rollout_id, log_quote(why, q, sizeof q));
            return -EINVAL;
        }
    if (as->window != NULL && as->window[0] != '\0') {
        /* a window the agent cannot read would block (or worse, misjudge) the
         * device: refuse the message, keep what the device had */
        window_t *w = NULL;
        if (strlen(as->window) > WINDOW_SPEC_MAX ||
            window_parse(as->window, &w, why, sizeof why) < 0) {
            if (strlen(as->window) > WINDOW_SPEC_MAX)
                snprintf(why, sizeof why, "window longer than %d bytes", WINDOW_SPEC_MAX);
            log_warn("assignment.rejected", "mac=%s rollout=%llu reason=%s", mac,
                     (unsigned long long)as->rollout_id, log_quote(why, q, sizeof q));
            return -EINVAL;
        }
        window_free(w);
    }
    journal_t *j = agent_tx(a);
    if (j == NULL)
        return -EIO;
    /* store with the canonical mac so a re-sent assignment compares equal */
    Firmfleet__Assignment copy = *as;
    copy.mac = mac;
    size_t len = firmfleet__assignment__get_packed_size(&copy);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__assignment__pack(&copy, buf);
    int rc = journal_assignment_put(j, mac, as->rollout_id, buf, len);
    free(buf);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        log_info("assignment.stored", "mac=%s firmware=%s rollout=%llu files=%zu", mac,
                 log_quote(as->firmware, q, sizeof q), (unsigned long long)as->rollout_id,
                 as->n_files);
        /* in the same transaction as the assignment: reported once, never twice */
        char detail[400];
        snprintf(detail, sizeof detail, "firmware=%s rollout=%llu files=%zu", q,
                 (unsigned long long)as->rollout_id, as->n_files);
        if ((rc = agent_emit_event(a, "assignment.applied", mac, detail)) < 0)
            return rc;
        prov_on_assignment(a, mac, &copy);
    } else
        log_debug("assignment.same", "mac=%s rollout=%llu", mac,
                  (unsigned long long)as->rollout_id);
    return 0;
}

int agent_apply_cancel(struct agent *a, const Firmfleet__Cancel *c)
{
    char mac[18];
    if (c->mac == NULL || util_mac_canon(c->mac, mac) < 0)
        return -EINVAL;
    journal_t *j = agent_tx(a);
    if (j == NULL)
        return -EIO;
    int rc = journal_assignment_delete(j, mac, c->rollout_id);
    if (rc < 0)
        return rc;
    log_info("assignment.cancelled", "mac=%s rollout=%llu found=%d", mac,
             (unsigned long long)c->rollout_id, rc);
    prov_on_cancel(a, mac, c->rollout_id);
    return 0;
}

/* ---- lifetime ---- */

static int s_lock_state(struct agent *a)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/agent.lock", a->state_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("agent.lock", "path=%s error=\"%s\"", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        log_error("agent.lock", "path=%s error=\"%s\"", path,
                  e == EWOULDBLOCK ? "another agent uses this state directory" : strerror(e));
        close(fd);
        return -e;
    }
    a->lock_fd = fd;
    return 0;
}

static void s_load_config(struct agent *a)
{
    uint64_t gen = 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    if (journal_config_get(a->jr, &gen, &blob, &len) != 1)
        return;
    s_set_config(a, blob, len);
    free(blob);
    if (a->config == NULL) {
        log_warn("config.unreadable", "generation=%llu", (unsigned long long)gen);
        return;
    }
    imgcache_set_wanted(a->img, a->config);
}

int agent_new(const struct agent_opts *opts, const struct agent_cred *cred, struct agent **out)
{
    *out = NULL;
    struct agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -ENOMEM;
    a->lock_fd = -1;
    a->cred = *cred;
    a->image_rate = opts->image_rate;
    a->synth_target = opts->synth_events;
    a->synth_rate = opts->synth_rate;
    a->clock_offset_s = opts->clock_offset_s;
    a->n_trust_keys = opts->n_trust_keys > SIGN_MAX_KEYS ? SIGN_MAX_KEYS : opts->n_trust_keys;
    memcpy(a->trust_keys, opts->trust_keys, a->n_trust_keys * sizeof a->trust_keys[0]);
    a->sip_port = opts->sip_port ? opts->sip_port : 5060;
    if (snprintf(a->state_dir, sizeof a->state_dir, "%s", opts->state_dir) >=
        (int)sizeof a->state_dir) {
        log_error("agent.statedir", "reason=\"path too long\"");
        free(a);
        return -ENAMETOOLONG;
    }
    int rc = util_mkdir_p(a->state_dir, 0750);
    if (rc < 0) {
        log_error("agent.statedir", "path=%s error=\"%s\"", a->state_dir, strerror(-rc));
        free(a);
        return rc;
    }
    if ((rc = s_lock_state(a)) < 0) {
        free(a);
        return rc;
    }
    if ((rc = s_key_setup(a)) < 0) {
        close(a->lock_fd);
        free(a);
        return rc;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/journal.db", a->state_dir);
    if ((rc = journal_open(path, &a->jr)) < 0) {
        close(a->lock_fd);
        free(a);
        return rc;
    }
    if ((rc = uv_loop_init(&a->loop)) < 0) {
        journal_close(&a->jr);
        close(a->lock_fd);
        free(a);
        return rc;
    }
    /* From here on, failures unwind through agent_stop + agent_run so every
     * handle is closed the libuv way. */
    uv_signal_init(&a->loop, &a->sig_int);
    uv_signal_init(&a->loop, &a->sig_term);
    uv_prepare_init(&a->loop, &a->turn);
    uv_idle_init(&a->loop, &a->synth);
    uv_timer_init(&a->loop, &a->synth_timer);
    uv_timer_init(&a->loop, &a->commit_timer);
    uv_unref((uv_handle_t *)&a->commit_timer);
    a->sig_int.data = a->sig_term.data = a->turn.data = a->synth.data = a;
    a->synth_timer.data = a;
    uv_signal_start(&a->sig_int, s_on_signal, SIGINT);
    uv_signal_start(&a->sig_term, s_on_signal, SIGTERM);
    uv_prepare_start(&a->turn, s_on_turn);
    signal(SIGPIPE, SIG_IGN);

    a->zctx = zmq_ctx_new();
    if (a->zctx == NULL)
        rc = -errno;
    if (rc == 0)
        rc = imgcache_new(a, a->image_rate, &a->img);
    if (rc == 0)
        s_load_config(a);
    if (rc == 0)
        rc = prov_start(a);
    if (rc == 0)
        rc = uplink_new(a, &a->up);
    if (rc < 0) {
        agent_stop(a, 1);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        agent_destroy(&a);
        return rc;
    }
    char q[300];
    log_info("agent.start",
             "agent=%s site=%s endpoint=%s statedir=%s version=%s last_seq=%llu "
             "acked=%llu last_applied=%llu clock_offset=%lld sip_port=%u",
             a->cred.agent, a->cred.site, a->cred.endpoint, log_quote(a->state_dir, q, sizeof q),
             AGENT_VERSION, (unsigned long long)journal_last_seq(a->jr),
             (unsigned long long)journal_acked(a->jr),
             (unsigned long long)journal_last_applied(a->jr), (long long)a->clock_offset_s,
             (unsigned)a->sip_port);
    *out = a;
    return 0;
}

static void s_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        log_error("agent.leak", "handle_type=%s", uv_handle_type_name(uv_handle_get_type(h)));
        uv_close(h, NULL);
    }
}

int agent_run(struct agent *a)
{
    uv_run(&a->loop, UV_RUN_DEFAULT);
    log_info("agent.stop", "exit=%d last_seq=%llu acked=%llu last_applied=%llu", a->exit_code,
             (unsigned long long)journal_last_seq(a->jr), (unsigned long long)journal_acked(a->jr),
             (unsigned long long)journal_last_applied(a->jr));
    return a->exit_code;
}

void agent_destroy(struct agent **a_p)
{
    if (a_p == NULL || *a_p == NULL)
        return;
    struct agent *a = *a_p;
    *a_p = NULL;
    if (!a->stopping) {
        agent_stop(a, a->exit_code);
        uv_run(&a->loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&a->loop) == UV_EBUSY) {
        /* a handle someone forgot: close it, report it, do not hang */
        uv_walk(&a->loop, s_walk_close, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
    }
    if (a->zctx != NULL)
        zmq_ctx_term(a->zctx);
    journal_close(&a->jr);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    if (a->config != NULL)
        firmfleet__site_config__free_unpacked(a->config, NULL);
    free(a);
}
