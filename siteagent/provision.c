/* provision.c: rollouts at the agent (see provision.h for the rules and the
 * state machine).
 *
 * Memory: one struct pdev per device that a profile recognised, that holds
 * an Assignment or that has a journaled row, in a chained hash by MAC
 * (PROV_BUCKETS buckets, at most PROV_MAX_DEVICES devices); each keeps its
 * journal row (struct journal_device) as the source of truth for what is on
 * disk and the unpacked Assignment with its parsed window. The site's
 * profiles are parsed once per configuration into a sorted array; devices
 * refer to their profile by name, so a configuration change never leaves a
 * dangling pointer. DeviceRefs are indexed by MAC per configuration.
 *
 * Invariants: a pdev's row changes only through s_save (journal first,
 * memory after); an upgrade.* event is emitted only by s_transition, in the
 * same transaction as the row; a terminal state (succeeded, failed, skipped)
 * is left only by a new rollout_id or a Cancel.
 * Cost: the 1 s tick visits every device with an Assignment and counts the
 * rollout's active devices per candidate: O(A * A) worst case for A
 * assigned devices per agent (hundreds); a per-rollout counter would make it
 * O(A), not needed so far.
 */
#define _GNU_SOURCE
#include "provision.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "imgcache.h"
#include "log.h"
#include "sign.h"
#include "sipnotify.h"
#include "util.h"
#include "window.h"

#define PROV_BUCKETS 4096
#define PROV_PROFILES_MAX 256

enum ustate {
    U_NONE = 0,
    U_WAITING,
    U_OFFERED,
    U_DOWNLOADING,
    U_INSTALLED,
    U_VERIFYING,
    U_SUCCEEDED,
    U_FAILED,
    U_SKIPPED,
    U__N
};
static const char *const s_state_names[U__N] = {
    "",          "waiting",   "offered", "downloading", "installed",
    "verifying", "succeeded", "failed",  "skipped",
};

struct pdev {
    struct pdev *next;
    uint64_t key;
    uint8_t mac[6];
    struct journal_device j;
    enum ustate st;
    Firmfleet__Assignment *as; /* unpacked, or NULL */
    window_t *win;             /* as->window parsed; NULL = any time (or bad) */
    int win_bad;
    uint32_t ip_be; /* last address seen in a request */
    int restart_due; /* offered, but the NOTIFY table was full: send on a later tick */
};

struct pprof {
    profile_t *p;
    char name[PROFILE_NAME_MAX + 1];
};

struct refent {
    uint64_t key;
    const Firmfleet__DeviceRef *ref;
};

struct prov {
    struct agent *a;
    uv_timer_t timer;
    sipn_t *sip;
    int stopping;
    struct pdev *b[PROV_BUCKETS];
    size_t n_dev;
    int full_logged;
    struct pprof *prof;
    size_t n_prof;
    struct refent *refs; /* open addressing, n_refs_cap slots */
    size_t n_refs_cap;
    const char *tz; /* SiteConfig.tz (borrowed from the configuration) */
    int tz_bad_logged;
    uint64_t restarts;
    uint64_t restarts_deferred; /* offers whose NOTIFY waited for a free slot */
    /* sha256 of the profile texts refused at the last configuration, so
     * that each refusal is reported once, not at every push */
    uint8_t (*refused)[HASH_LEN];
    size_t n_refused;
};

static uint64_t s_key(const uint8_t mac[6])
{
    uint64_t k = 0;
    for (int i = 0; i < 6; i++)
        k = k << 8 | mac[i];
    return k;
}

static size_t s_bucket(uint64_t k)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 52) & (PROV_BUCKETS - 1);
}

static struct pdev *s_find(struct prov *p, const uint8_t mac[6])
{
    uint64_t k = s_key(mac);
    for (struct pdev *d = p->b[s_bucket(k)]; d; d = d->next)
        if (d->key == k)
            return d;
    return NULL;
}

static enum ustate s_state_parse(const char *s)
{
    for (int i = 0; i < U__N; i++)
        if (strcmp(s, s_state_names[i]) == 0)
            return (enum ustate)i;
    return U_NONE;
}

/* Finds or adds the device. NULL when the table is full (logged once). */
static struct pdev *s_get(struct prov *p, const uint8_t mac[6])
{
    struct pdev *d = s_find(p, mac);
    if (d != NULL)
        return d;
    if (p->n_dev >= PROV_MAX_DEVICES) {
        if (!p->full_logged)
            log_warn("prov.full", "max=%d reason=\"not tracking more devices\"", PROV_MAX_DEVICES);
        p->full_logged = 1;
        return NULL;
    }
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    memcpy(d->mac, mac, 6);
    d->key = s_key(mac);
    util_mac_format(mac, d->j.mac);
    size_t b = s_bucket(d->key);
    d->next = p->b[b];
    p->b[b] = d;
    p->n_dev++;
    return d;
}

static void s_drop_assignment(struct pdev *d)
{
    if (d->as != NULL)
        firmfleet__assignment__free_unpacked(d->as, NULL);
    d->as = NULL;
    window_free(d->win);
    d->win = NULL;
    d->win_bad = 0;
}

/* ---- configuration: profiles, device refs ---- */

static const Firmfleet__DeviceRef *s_ref(const struct prov *p, const uint8_t mac[6])
{
    if (p->n_refs_cap == 0)
        return NULL;
    uint64_t k = s_key(mac);
    for (size_t i = s_bucket(k) % p->n_refs_cap, n = 0; n < p->n_refs_cap;
         n++, i = (i + 1) % p->n_refs_cap) {
        if (p->refs[i].ref == NULL)
            return NULL;
        if (p->refs[i].key == k)
            return p->refs[i].ref;
    }
    return NULL;
}

static const profile_t *s_profile(const struct prov *p, const char *name)
{
    if (name == NULL || name[0] == '\0')
        return NULL;
    for (size_t i = 0; i < p->n_prof; i++)
        if (strcmp(p->prof[i].name, name) == 0)
            return p->prof[i].p;
    return NULL;
}

/* The profile that serves d: the one that recognised it, else the one its
 * DeviceRef pins, else the one its Assignment names (a device assigned
 * before it was ever seen still gets its family's restart and files). */
static const profile_t *s_dev_profile(const struct prov *p, const struct pdev *d);

static int s_prof_cmp(const void *x, const void *y)
{
    const struct pprof *a = x, *b = y;
    int pa = profile_priority(a->p), pb = profile_priority(b->p);
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void s_profiles_free(struct prov *p)
{
    for (size_t i = 0; i < p->n_prof; i++)
        profile_free(p->prof[i].p);
    free(p->prof);
    p->prof = NULL;
    p->n_prof = 0;
}

/* With trusted keys (the agent's pinned --trust-key, else the controller's
 * SiteConfig.trusted_keys, as for images) a profile counts only when one of
 * them signed its JSON text (lib/sign.h). 0 ok (or no keys: signing off),
 * -EPERM refused with *why. */
static int s_profile_trusted(const struct prov *p, const Firmfleet__SiteConfig *sc,
                             const Firmfleet__Profile *pr, const char *json, const char **why)
{
    uint8_t keys[SIGN_MAX_KEYS][SIGN_PK_LEN];
    size_t n = 0;
    const struct agent *a = p->a;
    if (a->n_trust_keys > 0) {
        memcpy(keys, a->trust_keys, a->n_trust_keys * SIGN_PK_LEN);
        n = a->n_trust_keys;
    } else {
        for (size_t i = 0; i < sc->n_trusted_keys && n < SIGN_MAX_KEYS; i++)
            if (sc->trusted_keys[i].len == SIGN_PK_LEN)
                memcpy(keys[n++], sc->trusted_keys[i].data, SIGN_PK_LEN);
    }
    if (n == 0)
        return 0;
    return sign_trust_verify_profile((const uint8_t(*)[SIGN_PK_LEN])keys, n, pr->signer.data,
                                     pr->signer.len, pr->signature.data, pr->signature.len, json,
                                     strlen(json), why);
}

/* Reports a refused profile (event profile.refused) unless it was refused
 * at the previous configuration already; records it in *next. */
static void s_profile_refused(struct prov *p, const Firmfleet__Profile *pr, const char *json,
                              const char *why, int kept, uint8_t (*next)[HASH_LEN], size_t *n_next)
{
    uint8_t sha[HASH_LEN];
    hash_ctx_t *h = hash_new();
    if (h == NULL)
        return;
    hash_update(h, json, strlen(json));
    hash_final(h, sha);
    hash_destroy(&h);
    int seen = 0;
    for (size_t i = 0; i < p->n_refused && !seen; i++)
        seen = memcmp(p->refused[i], sha, HASH_LEN) == 0;
    if (next != NULL)
        memcpy(next[(*n_next)++], sha, HASH_LEN);
    char qn[160], id[SIGN_ID_HEX + 1] = "-", detail[400];
    if (pr->signer.len == SIGN_PK_LEN)
        sign_key_id(pr->signer.data, id);
    log_quote(pr->name ? pr->name : "", qn, sizeof qn);
    snprintf(detail, sizeof detail, "profile=%s reason=%s signer=%s kept_previous=%d", qn, why, id,
             kept);
    if (seen) {
        log_debug("profile.refused", "%s", detail);
        return;
    }
    log_warn("profile.refused", "%s", detail);
    agent_emit_event(p->a, "profile.refused", "", detail);
}

static void s_on_config(void *self, const Firmfleet__SiteConfig *sc)
{
    struct prov *p = self;
    /* the previous profiles: a refused one keeps serving as it was */
    struct pprof *old = p->prof;
    size_t n_old = p->n_prof;
    p->prof = NULL;
    p->n_prof = 0;
    uint8_t(*refused)[HASH_LEN] = NULL;
    size_t n_refused = 0;
    size_t n = sc->n_profiles < PROV_PROFILES_MAX ? sc->n_profiles : PROV_PROFILES_MAX;
    if (sc->n_profiles > n)
        log_warn("prov.profiles", "n=%zu max=%d reason=\"too many profiles; ignoring the rest\"",
                 sc->n_profiles, PROV_PROFILES_MAX);
    p->prof = n ? calloc(n, sizeof *p->prof) : NULL;
    for (size_t i = 0; p->prof && i < n; i++) {
        const Firmfleet__Profile *pr = sc->profiles[i];
        char err[256], q[300], qn[160];
        const char *json = pr && pr->json ? pr->json : "";
        profile_t *pp = NULL;
        if (pr == NULL || profile_parse(json, strlen(json), &pp, err, sizeof err) < 0) {
            if (pr == NULL)
                snprintf(err, sizeof err, "empty");
            log_warn("prov.profile_bad", "profile=%s reason=%s",
                     log_quote(pr && pr->name ? pr->name : "", qn, sizeof qn),
                     log_quote(err, q, sizeof q));
            continue;
        }
        const char *why = NULL;
        if (s_profile_trusted(p, sc, pr, json, &why) < 0) {
            /* unsigned or tampered: the one we had of that name stays */
            int kept = 0;
            for (size_t k = 0; k < n_old; k++) {
                if (old[k].p == NULL || strcmp(old[k].name, profile_name(pp)) != 0)
                    continue;
                p->prof[p->n_prof++] = old[k];
                old[k].p = NULL;
                kept = 1;
                break;
            }
            if (refused == NULL)
                refused = calloc(n, sizeof *refused);
            s_profile_refused(p, pr, json, why ? why : "bad_signature", kept, refused, &n_refused);
            profile_free(pp);
            continue;
        }
        snprintf(p->prof[p->n_prof].name, sizeof p->prof[p->n_prof].name, "%s", profile_name(pp));
        p->prof[p->n_prof++].p = pp;
    }
    for (size_t k = 0; k < n_old; k++)
        profile_free(old[k].p);
    free(old);
    free(p->refused);
    p->refused = refused;
    p->n_refused = refused ? n_refused : 0;
    if (p->n_prof > 1)
        qsort(p->prof, p->n_prof, sizeof *p->prof, s_prof_cmp);
    free(p->refs);
    p->refs = NULL;
    p->n_refs_cap = 0;
    if (sc->n_devices > 0) {
        size_t cap = 16;
        while (cap < sc->n_devices * 2)
            cap *= 2;
        p->refs = calloc(cap, sizeof *p->refs);
        if (p->refs != NULL) {
            p->n_refs_cap = cap;
            for (size_t i = 0; i < sc->n_devices; i++) {
                uint8_t mac[6];
                const Firmfleet__DeviceRef *r = sc->devices[i];
                if (r == NULL || r->mac == NULL || util_mac_parse(r->mac, mac) < 0)
                    continue;
                uint64_t k = s_key(mac);
                size_t j = s_bucket(k) % cap;
                while (p->refs[j].ref != NULL && p->refs[j].key != k)
                    j = (j + 1) % cap;
                p->refs[j].key = k;
                p->refs[j].ref = r;
            }
        }
    }
    p->tz = sc->tz ? sc->tz : "";
    p->tz_bad_logged = 0;
    if (!window_tz_valid(p->tz)) {
        char q[160];
        log_warn("prov.tz_unknown",
                 "tz=%s reason=\"unknown time zone: no device will be "
                 "offered an upgrade outside factory-fresh staging\"",
                 log_quote(p->tz, q, sizeof q));
        p->tz_bad_logged = 1;
    }
    log_info("prov.config", "profiles=%zu of=%zu devices=%zu tz=%s", p->n_prof, sc->n_profiles,
             sc->n_devices, p->tz[0] ? p->tz : "UTC");
}

static const profile_t *s_dev_profile(const struct prov *p, const struct pdev *d)
{
    const profile_t *pf = s_profile(p, d->j.profile);
    if (pf == NULL) {
        const Firmfleet__DeviceRef *r = s_ref(p, d->mac);
        if (r && r->profile && r->profile[0])
            pf = s_profile(p, r->profile);
    }
    if (pf == NULL && d->as && d->as->profile && d->as->profile[0])
        pf = s_profile(p, d->as->profile);
    return pf;
}

/* ---- journal and events ---- */

int64_t prov_now_ms(const struct agent *a)
{
    return (int64_t)util_now_ms() + a->clock_offset_s * 1000;
}

/* Writes d's row (as modified in *nj) and then adopts it. 0 or <0 (memory
 * unchanged). */
static int s_save(struct prov *p, struct pdev *d, struct journal_device *nj)
{
    journal_t *j = agent_tx(p->a);
    if (j == NULL)
        return -EIO;
    nj->updated = prov_now_ms(p->a);
    int rc = journal_device_put(j, nj);
    if (rc < 0) {
        log_error("prov.journal", "mac=%s error=%d", d->j.mac, rc);
        return rc;
    }
    d->j = *nj;
    d->st = s_state_parse(d->j.state);
    return 0;
}

/* Moves d to state st (reason may be ""), journals it and emits
 * upgrade.<st> with `rollout=ID reason=... extra`. 0 or <0 (nothing changed). */
static int s_transition(struct prov *p, struct pdev *d, enum ustate st, const char *reason,
                        const char *extra)
{
    struct journal_device nj = d->j;
    snprintf(nj.state, sizeof nj.state, "%s", s_state_names[st]);
    snprintf(nj.reason, sizeof nj.reason, "%s", reason ? reason : "");
    nj.state_at = prov_now_ms(p->a);
    if (d->as != NULL)
        nj.rollout_id = d->as->rollout_id;
    if (st == U_SUCCEEDED && d->as && d->as->target && d->as->target->firmware &&
        d->as->target->firmware[0])
        snprintf(nj.done_firmware, sizeof nj.done_firmware, "%s", d->as->target->firmware);
    int rc = s_save(p, d, &nj);
    if (rc < 0)
        return rc;
    char kind[32], detail[900], q[300];
    snprintf(kind, sizeof kind, "upgrade.%s", s_state_names[st]);
    int k = snprintf(detail, sizeof detail, "rollout=%" PRIu64, nj.rollout_id);
    if (reason && reason[0])
        k += snprintf(detail + k, sizeof detail - (size_t)k, " reason=%s",
                      log_quote(reason, q, sizeof q));
    if (extra && extra[0])
        snprintf(detail + k, sizeof detail - (size_t)k, " %s", extra);
    agent_emit_event(p->a, kind, d->j.mac, detail);
    log_info("prov.upgrade", "mac=%s state=%s %s", d->j.mac, s_state_names[st], detail);
    return 0;
}

/* ---- decisions ---- */

static const char *s_str(const char *s)
{
    return s ? s : "";
}

static int s_is_fresh(const struct prov *p, const struct pdev *d)
{
    const Firmfleet__DeviceRef *r = s_ref(p, d->mac);
    if (r == NULL)
        return 1;
    const Firmfleet__Serials *s = r->serials;
    return s_str(r->version)[0] == '\0' &&
           (s == NULL || (s_str(s->config)[0] == '\0' && s_str(s->firmware)[0] == '\0' &&
                          s_str(s->boot)[0] == '\0'));
}

static int s_active(enum ustate st)
{
    return st >= U_OFFERED && st <= U_VERIFYING;
}

/* Devices of rollout `rid` in offered..verifying other than `self`. */
static uint32_t s_count_active(const struct prov *p, uint64_t rid, const struct pdev *self)
{
    uint32_t n = 0;
    for (size_t b = 0; b < PROV_BUCKETS; b++)
        for (const struct pdev *d = p->b[b]; d; d = d->next)
            if (d != self && d->as && d->as->rollout_id == rid && s_active(d->st))
                n++;
    return n;
}

/* Why d may not start its upgrade now ("window", "grace", "concurrency"), or
 * NULL when it may. */
static const char *s_blocker(struct prov *p, struct pdev *d, int64_t now_ms)
{
    const Firmfleet__Assignment *as = d->as;
    int fresh = as->stage_fresh && s_is_fresh(p, d);
    if (!fresh) {
        if (d->win_bad)
            return "window";
        time_t now = (time_t)(now_ms / 1000);
        uint32_t spread = window_spread(d->mac, as->spread_s);
        int a = window_allows(d->win, now, p->tz ? p->tz : "");
        int b = spread ? window_allows(d->win, now - (time_t)spread, p->tz ? p->tz : "") : a;
        if (a < 0 || b < 0) {
            if (!p->tz_bad_logged)
                log_warn("prov.tz_unknown", "tz=%s mac=%s reason=\"window cannot be evaluated\"",
                         s_str(p->tz), d->j.mac);
            p->tz_bad_logged = 1;
            return "window";
        }
        if (a != 1 || b != 1)
            return "window";
        if (as->boot_grace_s > 0 && d->j.boot_at > 0 &&
            now_ms - d->j.boot_at < (int64_t)as->boot_grace_s * 1000)
            return "grace";
    }
    if (as->site_concurrency > 0 && s_count_active(p, as->rollout_id, d) >= as->site_concurrency)
        return "concurrency";
    return NULL;
}

static void s_ip_str(uint32_t ip_be, char out[16])
{
    if (ip_be == 0 || inet_ntop(AF_INET, &ip_be, out, 16) == NULL)
        out[0] = '\0';
}

/* The device's address for a NOTIFY: its DHCP lease, its reservation, the
 * last address it asked for a file from. 0 unknown. */
static uint32_t s_device_ip(struct prov *p, const struct pdev *d)
{
    uint32_t ip_be = 0;
    if (agent_ip_for_mac(p->a, d->mac, &ip_be) == 1 && ip_be != 0)
        return ip_be;
    const Firmfleet__DeviceRef *r = s_ref(p, d->mac);
    struct in_addr in;
    if (r && r->ip && r->ip[0] && inet_pton(AF_INET, r->ip, &in) == 1)
        return in.s_addr;
    return d->ip_be;
}

/* The device's restart, when its profile has one and its address is known:
 * fills rq and returns 1; else 0. */
static int s_restart_prep(struct prov *p, struct pdev *d, struct sipn_req *rq)
{
    const profile_t *pf = s_dev_profile(p, d);
    const struct profile_restart *r = pf ? profile_restart(pf) : NULL;
    if (r == NULL || r->event == NULL || r->event[0] == '\0' || p->sip == NULL)
        return 0;
    uint32_t ip = s_device_ip(p, d);
    if (ip == 0) {
        log_info("prov.restart_skipped", "mac=%s reason=\"address unknown\"", d->j.mac);
        return 0;
    }
    memset(rq, 0, sizeof *rq);
    rq->ip_be = ip;
    rq->port = p->a->sip_port ? p->a->sip_port : 5060;
    rq->mac = d->mac;
    rq->event = r->event;
    rq->content_type = r->content_type;
    rq->body = r->body;
    return 1;
}

static void s_restart_send(struct prov *p, struct pdev *d, const struct sipn_req *rq)
{
    int rc = sipn_send(p->sip, rq);
    char ips[16];
    s_ip_str(rq->ip_be, ips);
    if (rc == -ENOSPC) {
        /* SIPN_MAX_PENDING NOTIFYs in flight (a rollout reaching hundreds
         * of phones at once): not a failure, the next ticks send it */
        if (!d->restart_due)
            p->restarts_deferred++;
        d->restart_due = 1;
        log_debug("prov.restart_deferred", "mac=%s ip=%s pending=%zu", d->j.mac, ips,
                  sipn_pending(p->sip));
        return;
    }
    d->restart_due = 0;
    if (rc < 0) {
        /* reported like a failed NOTIFY, so the controller sees it */
        char reason[96];
        snprintf(reason, sizeof reason, "not sent: %s", strerror(-rc));
        log_warn("prov.restart_failed", "mac=%s ip=%s error=\"%s\"", d->j.mac, ips, strerror(-rc));
        char detail[200];
        snprintf(detail, sizeof detail, "ok=0 status=0 reason=\"%s\" rollout=%" PRIu64, reason,
                 d->j.rollout_id);
        agent_emit_event(p->a, "device.restart", d->j.mac, detail);
        return;
    }
    p->restarts++;
    log_info("prov.restart", "mac=%s ip=%s port=%u event=\"%s\"", d->j.mac, ips, (unsigned)rq->port,
             rq->event);
}

static void s_on_sip_done(void *arg, const uint8_t mac[6], int ok, int status, const char *reason)
{
    struct prov *p = arg;
    if (p->stopping)
        return;
    struct pdev *d = s_find(p, mac);
    char macs[18], detail[300], q[200];
    util_mac_format(mac, macs);
    uint64_t rid = d ? d->j.rollout_id : 0;
    if (ok)
        snprintf(detail, sizeof detail, "ok=1 status=%d rollout=%" PRIu64, status, rid);
    else
        snprintf(detail, sizeof detail, "ok=0 status=%d reason=%s rollout=%" PRIu64, status,
                 log_quote(reason, q, sizeof q), rid);
    agent_emit_event(p->a, "device.restart", macs, detail);
    log_info("prov.restart_done", "mac=%s %s", macs, detail);
}

/* Re-evaluates one device that holds an Assignment. */
static void s_evaluate(struct prov *p, struct pdev *d, int64_t now_ms)
{
    const Firmfleet__Assignment *as = d->as;
    if (as == NULL || p->stopping)
        return;
    enum ustate st = d->st;
    if (st == U_SUCCEEDED || st == U_FAILED || st == U_SKIPPED || st == U_DOWNLOADING)
        return;
    if (st == U_INSTALLED || st == U_VERIFYING) {
        if (as->verify_s > 0 && now_ms - d->j.state_at > (int64_t)as->verify_s * 1000) {
            char why[64];
            snprintf(why, sizeof why, "did not come back within %us", as->verify_s);
            s_transition(p, d, U_FAILED, why, "");
        }
        return;
    }
    /* none, waiting, offered: nothing fetched yet */
    const char *target = as->target ? s_str(as->target->firmware) : "";
    const Firmfleet__DeviceRef *r = s_ref(p, d->mac);
    const char *have = r && r->serials ? s_str(r->serials->firmware) : "";
    if (target[0] && (strcmp(have, target) == 0 || strcmp(d->j.done_firmware, target) == 0)) {
        char extra[300], q[280];
        snprintf(extra, sizeof extra, "serial=%s", log_quote(target, q, sizeof q));
        s_transition(p, d, U_SKIPPED, "serial", extra);
        return;
    }
    if (s_str(as->version)[0] && d->j.version[0] && strcmp(d->j.version, as->version) == 0) {
        char extra[300], q[280];
        snprintf(extra, sizeof extra, "version=%s", log_quote(d->j.version, q, sizeof q));
        s_transition(p, d, U_SKIPPED, "version", extra);
        return;
    }
    const char *why = s_blocker(p, d, now_ms);
    if (why == NULL) {
        if (st != U_OFFERED) {
            /* the state is journaled before the NOTIFY leaves */
            struct sipn_req rq;
            int can = s_restart_prep(p, d, &rq);
            if (s_transition(p, d, U_OFFERED, "", can ? "restart=sent" : "restart=none") == 0 &&
                can)
                s_restart_send(p, d, &rq);
        } else if (d->restart_due) {
            struct sipn_req rq;
            if (s_restart_prep(p, d, &rq))
                s_restart_send(p, d, &rq);
            else
                d->restart_due = 0;
        }
        return;
    }
    if (st == U_NONE || st == U_OFFERED || (st == U_WAITING && strcmp(d->j.reason, why) != 0))
        s_transition(p, d, U_WAITING, why, "");
}

static void s_tick_all(struct prov *p)
{
    int64_t now = prov_now_ms(p->a);
    for (size_t b = 0; b < PROV_BUCKETS; b++)
        for (struct pdev *d = p->b[b]; d; d = d->next)
            if (d->as)
                s_evaluate(p, d, now);
}

static void s_on_tick(uv_timer_t *t)
{
    s_tick_all(t->data);
}

void prov_tick(struct agent *a)
{
    if (a->prov)
        s_tick_all(a->prov);
}

/* ---- observations ---- */

/* The profile that owns the device for this evidence: the pinned one, else
 * the first (priority order) that recognises it, else the one it had. */
static const profile_t *s_owner(struct prov *p, const struct pdev *d,
                                const struct profile_evidence *e)
{
    const Firmfleet__DeviceRef *r = s_ref(p, e->mac);
    if (r && r->profile && r->profile[0]) {
        const profile_t *pf = s_profile(p, r->profile);
        if (pf == NULL)
            log_debug("prov.pinned_unknown", "profile=%s", r->profile);
        return pf;
    }
    for (size_t i = 0; i < p->n_prof; i++)
        if (profile_recognises(p->prof[i].p, e) == 1)
            return p->prof[i].p;
    return d ? s_profile(p, d->j.profile) : NULL;
}

void prov_observe(struct agent *a, const struct profile_evidence *e, int boot, uint32_t ip_be)
{
    struct prov *p = a->prov;
    if (p == NULL || p->stopping || e == NULL || e->mac == NULL)
        return;
    struct pdev *d = s_find(p, e->mac);
    const profile_t *pf = s_owner(p, d, e);
    if (d == NULL && pf == NULL)
        return; /* neither recognised nor assigned: not ours to follow */
    if (d == NULL && (d = s_get(p, e->mac)) == NULL)
        return;
    if (ip_be != 0)
        d->ip_be = ip_be;
    int64_t now = prov_now_ms(a);
    struct journal_device nj = d->j;
    int changed = 0, version_changed = 0;
    if (pf != NULL) {
        if (strcmp(nj.profile, profile_name(pf)) != 0) {
            snprintf(nj.profile, sizeof nj.profile, "%s", profile_name(pf));
            changed = 1;
        }
        int si = profile_stage(pf, e);
        const char *sn = si >= 0 ? profile_stage_name(pf, si) : NULL;
        if (sn && strcmp(sn, nj.stage) != 0) {
            snprintf(nj.stage, sizeof nj.stage, "%s", sn);
            changed = 1;
        }
        char v[PROFILE_VERSION_MAX + 1];
        if (profile_version(pf, e, nj.installed, v, sizeof v) == 1 && strcmp(v, nj.version) != 0) {
            snprintf(nj.version, sizeof nj.version, "%s", v);
            changed = version_changed = 1;
        }
        char mo[sizeof nj.model];
        if (profile_model(pf, e, mo, sizeof mo) == 1 && strcmp(mo, nj.model) != 0) {
            memcpy(nj.model, mo, sizeof mo);
            changed = 1;
        }
    }
    if (boot) {
        nj.boot_at = now;
        changed = 1;
    }
    if (changed && s_save(p, d, &nj) < 0)
        return;
    if (version_changed) {
        char detail[400], qv[200], qp[100], qs[100];
        snprintf(detail, sizeof detail, "version=%s profile=%s stage=%s",
                 log_quote(d->j.version, qv, sizeof qv), log_quote(d->j.profile, qp, sizeof qp),
                 log_quote(d->j.stage, qs, sizeof qs));
        agent_emit_event(a, "device.version", d->j.mac, detail);
        log_info("prov.version", "mac=%s %s", d->j.mac, detail);
    }
    if (d->as == NULL)
        return;
    int rebooted_now = 0;
    if (boot && d->st == U_INSTALLED) {
        /* it rebooted after fetching its image: the version it shows next decides */
        if (s_transition(p, d, U_VERIFYING, "", "") < 0)
            return;
        rebooted_now = 1; /* state_at is a later clock read than now */
    }
    /* a version seen after the reboot (in this observation or a later one) */
    if (d->st == U_VERIFYING && (rebooted_now || d->j.state_at <= now)) {
        char v[PROFILE_VERSION_MAX + 1] = "";
        int shows = pf != NULL && profile_version(pf, e, d->j.installed, v, sizeof v) == 1;
        if (shows) {
            char extra[300], q[280];
            snprintf(extra, sizeof extra, "version=%s", log_quote(v, q, sizeof q));
            /* an Assignment without a version is verified against the stem
             * of the image it installed (what {{installed}} extractors show) */
            const char *want = s_str(d->as->version)[0] ? d->as->version : d->j.installed;
            if (strcmp(v, want) == 0) {
                s_transition(p, d, U_SUCCEEDED, "", extra);
            } else {
                char why[200];
                snprintf(why, sizeof why, "came back on version %s", v);
                s_transition(p, d, U_FAILED, why, extra);
            }
            return;
        }
    }
    s_evaluate(p, d, now);
}

size_t prov_dhcp_options(struct agent *a, const uint8_t mac[6], const struct dhcpopt **out,
                         size_t max)
{
    struct prov *p = a->prov;
    if (p == NULL || mac == NULL)
        return 0;
    struct pdev *d = s_find(p, mac);
    const profile_t *pf = d ? s_dev_profile(p, d) : NULL;
    if (pf == NULL)
        return 0;
    return profile_dhcp_options(pf, profile_stage_index(pf, d->j.stage), out, max);
}

/* ---- files ---- */

static int s_upgrading(const struct pdev *d)
{
    return d != NULL && d->as != NULL && s_active(d->st);
}

/* The Assignment's file served under `name`: by its own name, or through a
 * profile FILE with `image` (glob). NULL when name is not a target file.
 * *pf_out: the profile FILE when it matched (may be NULL). */
static const Firmfleet__ImageRef *s_target_for(struct prov *p, struct pdev *d, const char *name,
                                               int nocase, const struct profile_file **pf_out)
{
    *pf_out = NULL;
    if (d == NULL)
        return NULL;
    const Firmfleet__Assignment *as = d->as;
    for (size_t i = 0; as && i < as->n_files; i++) {
        const char *fn = as->files[i]->name;
        if (fn && (nocase ? strcasecmp(fn, name) : strcmp(fn, name)) == 0)
            return as->files[i];
    }
    const profile_t *pf = s_dev_profile(p, d);
    if (pf == NULL)
        return NULL;
    uint8_t got[6];
    const struct profile_file *f =
        profile_file_find(pf, name, d->mac, profile_stage_index(pf, d->j.stage), nocase, got);
    if (f == NULL)
        return NULL;
    *pf_out = f;
    const char *glob = profile_file_image(f);
    for (size_t i = 0; glob && as && i < as->n_files; i++)
        if (as->files[i]->name && profile_glob(glob, as->files[i]->name) == 1)
            return as->files[i];
    return NULL;
}

static int s_open_cached(struct agent *a, const Firmfleet__ImageRef *r, struct files_src *out)
{
    /* signature and on-disk checks when signing is on (imgcache.h) */
    int fd = -1, rc = imgcache_open(a, r, &fd);
    if (rc == -EPERM || rc == -EBADMSG)
        return -EACCES;
    if (rc < 0)
        return rc;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EACCES;
    }
    out->fd = fd;
    out->data = NULL;
    out->size = (uint64_t)st.st_size;
    out->origin = "image";
    return 0;
}

/* A target file is being served: offered -> downloading. A device that
 * asks for its final image again after the reboot did not take the new load
 * (a Cisco 79xx shows no version of its own: this is how its failure shows). */
static void s_downloading(struct prov *p, struct pdev *d, const char *target)
{
    if (d->st == U_VERIFYING) {
        const profile_t *pf = s_dev_profile(p, d);
        const char *final = pf ? profile_final_image(pf) : "*";
        if (profile_glob(final ? final : "*", target) == 1) {
            char extra[300], q[280];
            snprintf(extra, sizeof extra, "file=%s", log_quote(target, q, sizeof q));
            s_transition(p, d, U_FAILED,
                         "asked for its image again after the reboot: the new load did not take",
                         extra);
        }
        return;
    }
    if (d->st != U_OFFERED)
        return;
    char extra[300], q[280];
    snprintf(extra, sizeof extra, "file=%s", log_quote(target, q, sizeof q));
    s_transition(p, d, U_DOWNLOADING, "", extra);
}

static int s_render_file(struct prov *p, struct pdev *d, const struct profile_file *f,
                         const struct prov_fctx *fc, const uint8_t mac[6], int upgrading,
                         struct files_src *out)
{
    struct agent *a = p->a;
    const Firmfleet__SiteConfig *sc = agent_config(a);
    const Firmfleet__DeviceRef *r = s_ref(p, mac);
    const Firmfleet__Assignment *as = d ? d->as : NULL;
    char ip[16], sip[16], hours[128] = "";
    s_ip_str(fc->client_ip_be, ip);
    s_ip_str(fc->local_ip_be, sip);
    const char *images[64];
    size_t n_images = 0;
    if (upgrading && as)
        for (size_t i = 0; i < as->n_files && n_images < 64; i++)
            if (as->files[i]->name)
                images[n_images++] = as->files[i]->name;
    if (as && d->win)
        window_hours_list(d->win, hours, sizeof hours);
    const Firmfleet__Serials *ser = upgrading && as ? as->target : r ? r->serials : NULL;
    struct profile_vars v = {
        .mac = mac,
        .ip = ip,
        .model = d && d->j.model[0] ? d->j.model
                 : r                ? s_str(r->model)
                                    : "",
        .serial = r ? s_str(r->serial) : "",
        .site = sc ? s_str(sc->site) : "",
        .server_ip = sip,
        .http_port = a->http_port,
        .upgrade = upgrading,
        .version = upgrading && as ? s_str(as->version)
                   : d             ? d->j.version
                                   : "",
        .firmware = upgrading && as ? s_str(as->firmware) : "",
        .images = images,
        .n_images = n_images,
        .stage = d ? d->j.stage : "",
        .serial_config = ser ? s_str(ser->config) : "",
        .serial_firmware = ser ? s_str(ser->firmware) : "",
        .serial_boot = ser ? s_str(ser->boot) : "",
        .window_hours = hours,
        .grace_min = as ? as->boot_grace_s / 60 : 0,
    };
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = profile_render(f, &v, &buf, &len);
    if (rc < 0)
        return rc;
    out->fd = -1;
    out->data = buf ? buf : malloc(1);
    if (out->data == NULL)
        return -ENOMEM;
    out->size = len;
    out->origin = "profile";
    return 0;
}

int prov_file_open(struct agent *a, const struct prov_fctx *fc, struct files_src *out)
{
    struct prov *p = a->prov;
    if (p == NULL || p->stopping || fc->name == NULL)
        return 0;
    uint8_t macb[6];
    const uint8_t *mac = fc->mac;
    if (mac == NULL && fc->client_ip_be != 0 && agent_mac_for_ip(a, fc->client_ip_be, macb) == 1)
        mac = macb;
    struct pdev *d = mac ? s_find(p, mac) : NULL;
    const profile_t *pf = d ? s_dev_profile(p, d) : NULL;
    const struct profile_file *f = NULL;
    uint8_t got[6] = {0};
    if (mac != NULL && pf != NULL) {
        f = profile_file_find(pf, fc->name, mac, profile_stage_index(pf, d->j.stage), fc->nocase,
                              got);
    } else if (mac == NULL) {
        /* unknown asker: a name that spells a MAC ({mac}) tells who it is */
        for (size_t i = 0; i < p->n_prof && f == NULL; i++) {
            const struct profile_file *g =
                profile_file_find(p->prof[i].p, fc->name, NULL, -1, fc->nocase, got);
            static const uint8_t zero[6];
            if (g == NULL || memcmp(got, zero, 6) == 0)
                continue;
            struct pdev *o = s_find(p, got);
            if (o == NULL || strcmp(o->j.profile, p->prof[i].name) != 0)
                continue;
            d = o;
            pf = p->prof[i].p;
            mac = d->mac;
            f = profile_file_find(pf, fc->name, mac, profile_stage_index(pf, d->j.stage),
                                  fc->nocase, got);
        }
    }
    int upgrading = s_upgrading(d);
    /* the Assignment's own files by their names: only while it may upgrade */
    for (size_t i = 0; d && d->as && i < d->as->n_files; i++) {
        const Firmfleet__ImageRef *r = d->as->files[i];
        if (r->name == NULL ||
            (fc->nocase ? strcasecmp(r->name, fc->name) : strcmp(r->name, fc->name)) != 0)
            continue;
        if (!upgrading) {
            log_info("prov.refused", "mac=%s file=%s state=%s reason=\"may not upgrade now\"",
                     d->j.mac, r->name, d->j.state[0] ? d->j.state : "none");
            return -ENOENT;
        }
        int rc = s_open_cached(a, r, out);
        if (rc < 0)
            return rc;
        s_downloading(p, d, r->name);
        return 1;
    }
    if (f == NULL)
        return 0;
    enum profile_when when = profile_file_when(f);
    if ((when == PROFILE_WHEN_UPGRADE && !upgrading) || (when == PROFILE_WHEN_HOLD && upgrading))
        return -ENOENT;
    const char *glob = profile_file_image(f);
    if (glob != NULL) {
        const Firmfleet__ImageRef *r = NULL;
        for (size_t i = 0; upgrading && i < d->as->n_files && r == NULL; i++)
            if (d->as->files[i]->name && profile_glob(glob, d->as->files[i]->name) == 1)
                r = d->as->files[i];
        if (r == NULL)
            return -ENOENT;
        int rc = s_open_cached(a, r, out);
        if (rc < 0)
            return rc;
        s_downloading(p, d, r->name);
        return 1;
    }
    int rc = s_render_file(p, d, f, fc, mac, upgrading, out);
    if (rc == -ENOENT)
        return -ENOENT; /* no body for this mode */
    return rc < 0 ? rc : 1;
}

static void s_stem(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s", name);
    char *dot = strrchr(out, '.');
    if (dot != NULL && dot != out)
        *dot = '\0';
}

void prov_transfer_done(struct agent *a, const uint8_t mac[6], const char *name, uint64_t bytes)
{
    struct prov *p = a->prov;
    if (p == NULL || p->stopping || mac == NULL || name == NULL)
        return;
    struct pdev *d = s_find(p, mac);
    if (d == NULL || d->as == NULL || (d->st != U_DOWNLOADING && d->st != U_OFFERED))
        return;
    const struct profile_file *f;
    const Firmfleet__ImageRef *r = s_target_for(p, d, name, 0, &f);
    if (r == NULL)
        r = s_target_for(p, d, name, 1, &f);
    if (r == NULL || r->name == NULL)
        return;
    const profile_t *pf = s_dev_profile(p, d);
    const char *final = pf ? profile_final_image(pf) : "*";
    if (profile_glob(final ? final : "*", r->name) != 1)
        return;
    char stem[256];
    s_stem(r->name, stem, sizeof stem);
    struct journal_device nj = d->j;
    snprintf(nj.installed, sizeof nj.installed, "%s", stem);
    if (s_save(p, d, &nj) < 0)
        return;
    char extra[400], q[280];
    snprintf(extra, sizeof extra, "file=%s bytes=%" PRIu64, log_quote(r->name, q, sizeof q), bytes);
    s_transition(p, d, U_INSTALLED, "", extra);
}

/* ---- assignments ---- */

/* Attaches a copy of as to d (replacing any); parses its window. */
static int s_attach(struct prov *p, struct pdev *d, const Firmfleet__Assignment *as)
{
    (void)p;
    size_t len = firmfleet__assignment__get_packed_size(as);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    firmfleet__assignment__pack(as, buf);
    Firmfleet__Assignment *copy = firmfleet__assignment__unpack(NULL, len, buf);
    free(buf);
    if (copy == NULL)
        return -ENOMEM;
    s_drop_assignment(d);
    d->as = copy;
    const char *spec = s_str(copy->window);
    if (spec[0]) {
        char err[200], q[300], qs[600];
        if (window_parse(spec, &d->win, err, sizeof err) < 0) {
            d->win = NULL;
            d->win_bad = 1;
            log_warn("prov.window_bad",
                     "mac=%s rollout=%" PRIu64 " window=%s reason=%s "
                     "consequence=\"never offered\"",
                     d->j.mac, copy->rollout_id, log_quote(spec, qs, sizeof qs),
                     log_quote(err, q, sizeof q));
        }
    }
    return 0;
}

void prov_on_assignment(struct agent *a, const char *mac, const Firmfleet__Assignment *as)
{
    struct prov *p = a->prov;
    uint8_t m[6];
    if (p == NULL || mac == NULL || util_mac_parse(mac, m) < 0)
        return;
    struct pdev *d = s_get(p, m);
    if (d == NULL)
        return;
    if (s_attach(p, d, as) < 0)
        return;
    if (d->j.rollout_id != as->rollout_id) {
        /* another rollout: its state starts over */
        struct journal_device nj = d->j;
        nj.rollout_id = as->rollout_id;
        nj.state[0] = nj.reason[0] = '\0';
        nj.state_at = prov_now_ms(a);
        s_save(p, d, &nj);
    }
    s_evaluate(p, d, prov_now_ms(a));
}

void prov_on_cancel(struct agent *a, const char *mac, uint64_t rollout_id)
{
    struct prov *p = a->prov;
    uint8_t m[6];
    if (p == NULL || mac == NULL || util_mac_parse(mac, m) < 0)
        return;
    struct pdev *d = s_find(p, m);
    if (d == NULL)
        return;
    if (rollout_id != 0 && d->j.rollout_id != rollout_id &&
        !(d->as && d->as->rollout_id == rollout_id))
        return;
    s_drop_assignment(d);
    struct journal_device nj = d->j;
    nj.rollout_id = 0;
    nj.state[0] = nj.reason[0] = '\0';
    nj.state_at = prov_now_ms(a);
    s_save(p, d, &nj);
    log_info("prov.cancelled", "mac=%s rollout=%" PRIu64, d->j.mac, rollout_id);
}

/* ---- lifetime ---- */

static int s_load_dev(void *arg, const struct journal_device *jd)
{
    struct prov *p = arg;
    uint8_t m[6];
    if (util_mac_parse(jd->mac, m) < 0)
        return 0;
    struct pdev *d = s_get(p, m);
    if (d == NULL)
        return 1;
    d->j = *jd;
    d->st = s_state_parse(jd->state);
    return 0;
}

static int s_load_asg(void *arg, const char *mac, const uint8_t *blob, size_t len)
{
    struct prov *p = arg;
    uint8_t m[6];
    if (util_mac_parse(mac, m) < 0)
        return 0;
    Firmfleet__Assignment *as = firmfleet__assignment__unpack(NULL, len, blob);
    if (as == NULL) {
        log_warn("prov.assignment_unreadable", "mac=%s", mac);
        return 0;
    }
    struct pdev *d = s_get(p, m);
    if (d != NULL) {
        s_attach(p, d, as);
        if (d->j.rollout_id != as->rollout_id) {
            /* stored before this table existed, or torn: starts over */
            d->j.rollout_id = as->rollout_id;
            d->j.state[0] = d->j.reason[0] = '\0';
            d->st = U_NONE;
        }
    }
    firmfleet__assignment__free_unpacked(as, NULL);
    return 0;
}

static void s_free(struct prov *p)
{
    for (size_t b = 0; b < PROV_BUCKETS; b++) {
        struct pdev *d = p->b[b];
        while (d) {
            struct pdev *n = d->next;
            s_drop_assignment(d);
            free(d);
            d = n;
        }
        p->b[b] = NULL;
    }
    s_profiles_free(p);
    free(p->refused);
    p->refused = NULL;
    free(p->refs);
    free(p);
}

static void s_on_timer_closed(uv_handle_t *h)
{
    s_free(h->data);
}

static void s_stop(void *self)
{
    struct prov *p = self;
    if (p->stopping)
        return;
    p->stopping = 1;
    if (p->a->prov == p)
        p->a->prov = NULL;
    sipn_destroy(&p->sip);
    uv_close((uv_handle_t *)&p->timer, s_on_timer_closed);
}

int prov_start(struct agent *a)
{
    struct prov *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    p->a = a;
    p->tz = "";
    int rc = journal_device_each(a->jr, s_load_dev, p);
    if (rc >= 0)
        rc = journal_assignment_each(a->jr, s_load_asg, p);
    if (rc < 0) {
        log_error("prov.load", "error=%d", rc);
        s_free(p);
        return rc;
    }
    uv_timer_init(&a->loop, &p->timer);
    p->timer.data = p;
    rc = sipn_new(&a->loop, s_on_sip_done, p, &p->sip);
    if (rc < 0) {
        log_warn("prov.sip", "error=\"%s\" consequence=\"no remote restarts\"", uv_strerror(rc));
        p->sip = NULL;
    }
    a->prov = p;
    struct agent_service svc = {
        .name = "provision", .self = p, .on_config = s_on_config, .stop = s_stop};
    if ((rc = agent_add_service(a, &svc)) < 0) {
        a->prov = NULL;
        sipn_destroy(&p->sip);
        uv_close((uv_handle_t *)&p->timer, s_on_timer_closed);
        return rc;
    }
    uv_timer_start(&p->timer, s_on_tick, PROV_TICK_MS, PROV_TICK_MS);
    log_info("prov.start", "devices=%zu clock_offset=%" PRId64 " sip_port=%u", p->n_dev,
             a->clock_offset_s, (unsigned)(a->sip_port ? a->sip_port : 5060));
    return 0;
}

int prov_device_get(struct agent *a, const uint8_t mac[6], struct journal_device *out)
{
    struct prov *p = a->prov;
    struct pdev *d = p ? s_find(p, mac) : NULL;
    if (d == NULL)
        return 0;
    *out = d->j;
    return 1;
}

uint64_t prov_restarts_sent(const struct agent *a)
{
    return a->prov ? a->prov->restarts : 0;
}

uint64_t prov_restarts_deferred(const struct agent *a)
{
    return a->prov ? a->prov->restarts_deferred : 0;
}

_Static_assert(PROV_STATES == U__N, "provision.h PROV_STATES out of step");

const char *prov_state_name(int i)
{
    if (i <= 0 || i >= U__N)
        return i == 0 ? "none" : NULL;
    return s_state_names[i];
}

size_t prov_state_counts(const struct agent *a, uint64_t *counts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        counts[i] = 0;
    const struct prov *p = a->prov;
    if (p == NULL)
        return 0;
    for (size_t b = 0; b < PROV_BUCKETS; b++)
        for (const struct pdev *d = p->b[b]; d; d = d->next)
            if ((size_t)d->st < n)
                counts[d->st]++;
    return p->n_dev;
}

int prov_sip_stats(const struct agent *a, struct sipn_stats *out)
{
    memset(out, 0, sizeof *out);
    if (a->prov == NULL || a->prov->sip == NULL)
        return -ENOENT;
    sipn_stats(a->prov->sip, out);
    return 0;
}
