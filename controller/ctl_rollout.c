/* ctl_rollout.c: the rollout engine (see ctl_rollout.h).
 *
 * Invariants:
 *   - a device moves only forward through its states, except that an agent
 *     may send it back to waiting_window (its window closed again); a
 *     terminal device never moves again, and events naming an unknown
 *     rollout or device, or a device the controller has not assigned yet,
 *     are ignored;
 *   - an Assignment or Cancel is journaled in the outbox of every unrevoked
 *     agent of the device's site in the same transaction as the state change
 *     that caused it: after a crash both or neither are there;
 *   - a rollout assigns only while running, only devices of waves up to its
 *     current wave, and never once its failures exceed its maximum (halted;
 *     devices in flight are still followed and still time out);
 *   - the controller's own steps are written as events in the same
 *     transaction (rollout.state, rollout.wave, rollout.device, device.drift).
 * Costs: a tick reads each active rollout's counts and its pending devices of
 * the current waves; a rollout with 10^5 devices costs a few ms per tick. An
 * index on (rollout_id, state) would make it cheaper; not needed so far.
 */
#include "ctl_rollout.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_link.h"
#include "log.h"
#include "profile.h"
#include "store_inv.h"
#include "store_link.h"
#include "util.h"
#include "window.h"
#include "wire.h"

#define MAX_ACTIVE 256
#define MAX_SITE_AGENTS 16
#define DURATION_MAX_S (400LL * 86400)
/* Assignments journaled per rollout per tick: a 100% wave of a big fleet is
 * spread over several ticks so the loop keeps serving agents meanwhile.
 * Each tick is one commit and re-reads the rollout: 250 made 400 ticks of
 * 100,000 devices; 1,000 take ~60 ms of CPU (tests/bench/fleet.sh). */
#define ASSIGN_PER_TICK 1000

/* ---- pure helpers ---- */

struct wave_item {
    int kind; /* 0 count, 1 canary, 2 percent */
    int64_t value;
};

/* Splits spec into items; the number of items or -EINVAL. */
static int s_waves_parse(const char *spec, struct wave_item *items, char *err, size_t errlen)
{
    char q[80];
    if (spec == NULL || *spec == '\0') {
        util_errf(err, errlen, "waves: empty (e.g. \"canary,10%%,100%%\")");
        return -EINVAL;
    }
    int n = 0, seen_pct = 0;
    int64_t last_pct = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        char tok[32];
        if (len == 0 || len >= sizeof tok) {
            util_errf(err, errlen, "waves '%s': empty or overlong item",
                      log_quote(spec, q, sizeof q));
            return -EINVAL;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (n == ROLLOUT_WAVES_MAX) {
            util_errf(err, errlen, "waves: at most %d waves", ROLLOUT_WAVES_MAX);
            return -EINVAL;
        }
        struct wave_item *it = &items[n++];
        int64_t v;
        if (strcmp(tok, "canary") == 0) {
            it->kind = 1;
            it->value = 0;
        } else if (tok[len - 1] == '%') {
            tok[len - 1] = '\0';
            if (util_parse_i64(tok, 1, 100, &v) < 0) {
                util_errf(err, errlen, "waves: '%s%%' is not a percentage of 1..100%%", tok);
                return -EINVAL;
            }
            if (seen_pct && v <= last_pct) {
                util_errf(err, errlen,
                          "waves: percentages are cumulative and must grow"
                          " (%lld%% after %lld%%)",
                          (long long)v, (long long)last_pct);
                return -EINVAL;
            }
            it->kind = 2;
            it->value = v;
            seen_pct = 1;
            last_pct = v;
        } else {
            if (util_parse_i64(tok, 0, 1000000, &v) < 0) {
                util_errf(err, errlen, "waves: '%s' is not a count, a percentage or canary",
                          log_quote(tok, q, sizeof q));
                return -EINVAL;
            }
            if (v == 0) {
                util_errf(err, errlen, "waves: 0 is not a wave size (a count is 1 or more)");
                return -EINVAL;
            }
            it->kind = 0;
            it->value = v;
        }
        if (it->kind != 2 && seen_pct) {
            util_errf(err, errlen, "waves: '%s' after a percentage; counts and canary come first",
                      tok);
            return -EINVAL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (items[n - 1].kind != 2 || items[n - 1].value != 100) {
        util_errf(err, errlen, "waves: the last wave must be 100%% (e.g. \"%s,100%%\")",
                  log_quote(spec, q, sizeof q));
        return -EINVAL;
    }
    return n;
}

int rollout_waves_check(const char *spec, char *err, size_t errlen)
{
    struct wave_item items[ROLLOUT_WAVES_MAX];
    return s_waves_parse(spec, items, err, errlen);
}

int rollout_plan(const char *spec, const struct store_rollout_target *t, size_t n, int64_t *wave,
                 int64_t *n_waves, char *err, size_t errlen)
{
    struct wave_item items[ROLLOUT_WAVES_MAX];
    int k = s_waves_parse(spec, items, err, errlen);
    if (k < 0)
        return k;
    *n_waves = k;
    for (size_t i = 0; i < n; i++)
        wave[i] = 0;
    size_t done = 0;
    const char **models = NULL; /* canary: models taken at the current site */
    size_t n_models = 0;
    if (n > 0 && (models = calloc(n, sizeof *models)) == NULL) {
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int w = 0; w < k; w++) {
        const struct wave_item *it = &items[w];
        if (it->kind == 1) {
            int64_t site = -1;
            for (size_t i = 0; i < n; i++) {
                if (t[i].site_id != site) {
                    site = t[i].site_id;
                    n_models = 0;
                }
                if (wave[i] != 0) {
                    continue; /* in an earlier wave: its model is not taken here */
                }
                size_t m = 0;
                while (m < n_models && strcmp(models[m], t[i].model) != 0)
                    m++;
                if (m < n_models)
                    continue;
                models[n_models++] = t[i].model;
                wave[i] = w + 1;
                done++;
            }
            continue;
        }
        int64_t target;
        if (it->kind == 0)
            target = (int64_t)done + it->value;
        else
            target = (it->value * (int64_t)n + 99) / 100;
        for (size_t i = 0; i < n && (int64_t)done < target; i++)
            if (wave[i] == 0) {
                wave[i] = w + 1;
                done++;
            }
    }
    free(models);
    return 0;
}

int rollout_max_failures_check(const char *spec, char *err, size_t errlen)
{
    char tok[32], q[64];
    int64_t v;
    size_t len = spec ? strlen(spec) : 0;
    if (len == 0 || len >= sizeof tok)
        goto bad;
    memcpy(tok, spec, len + 1);
    if (tok[len - 1] == '%') {
        tok[len - 1] = '\0';
        if (util_parse_i64(tok, 0, 100, &v) == 0)
            return 0;
    } else if (util_parse_i64(tok, 0, 1000000, &v) == 0) {
        return 0;
    }
bad:
    util_errf(err, errlen, "invalid max-failures '%s' (N or N%%, e.g. 2 or 5%%)",
              log_quote(spec ? spec : "", q, sizeof q));
    return -EINVAL;
}

int64_t rollout_max_failures(const char *spec, int64_t total)
{
    char tok[32];
    int64_t v = 0;
    size_t len = strlen(spec);
    if (len == 0 || len >= sizeof tok)
        return 0;
    memcpy(tok, spec, len + 1);
    if (tok[len - 1] == '%') {
        tok[len - 1] = '\0';
        if (util_parse_i64(tok, 0, 100, &v) < 0)
            return 0;
        return v * total / 100;
    }
    return util_parse_i64(tok, 0, 1000000, &v) < 0 ? 0 : v;
}

int rollout_duration_parse(const char *s, int64_t *secs)
{
    return util_parse_duration(s, 0, DURATION_MAX_S, secs);
}

void rollout_duration_format(int64_t secs, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    static const struct {
        int64_t mul;
        char c;
    } u[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (size_t i = 0; i < 4 && o < n; i++)
        if (secs >= u[i].mul || (secs == 0 && u[i].mul == 1)) {
            o += (size_t)snprintf(out + o, n - o, "%lld%c", (long long)(secs / u[i].mul), u[i].c);
            secs %= u[i].mul;
            if (secs == 0)
                break;
        }
}

int rollout_time_parse(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, sec = 0, used = 0;
    char sep;
    if (s == NULL)
        return -EINVAL;
    int got = sscanf(s, "%4d-%2d-%2d%c%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &used);
    if (got < 6 || (sep != 'T' && sep != ' '))
        return -EINVAL;
    const char *rest = s + used;
    if (*rest == ':') {
        int u2 = 0;
        if (sscanf(rest, ":%2d%n", &sec, &u2) != 1)
            return -EINVAL;
        rest += u2;
    }
    int utc = 0;
    if (*rest == 'Z') {
        utc = 1;
        rest++;
    }
    if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        y < 1970 || y > 9999 || h < 0 || mi < 0 || sec < 0)
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    time_t t = utc ? timegm(&tm) : mktime(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) /* 31 February normalised away */
        return -EINVAL;
    *ms = (int64_t)t * 1000;
    return 0;
}

static const struct {
    int state;
    int64_t secs;
} s_timeout_defaults[] = {
    {STORE_RDEV_ASSIGNED, 3600},    {STORE_RDEV_WAITING_WINDOW, 30 * 86400},
    {STORE_RDEV_OFFERED, 4 * 3600}, {STORE_RDEV_DOWNLOADING, 2 * 3600},
    {STORE_RDEV_INSTALLED, 3600},   {STORE_RDEV_VERIFYING, 3600},
};
#define N_TIMED (sizeof s_timeout_defaults / sizeof s_timeout_defaults[0])

int rollout_timeouts_build(const char *spec, char *json, size_t n, char *err, size_t errlen)
{
    int64_t secs[N_TIMED];
    char q[80];
    for (size_t i = 0; i < N_TIMED; i++)
        secs[i] = s_timeout_defaults[i].secs;
    const char *p = spec ? spec : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[96];
        if (len == 0 || len >= sizeof item)
            goto bad;
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        if (eq == NULL)
            goto bad;
        *eq = '\0';
        int st = store_rdev_index(item);
        size_t k = 0;
        while (k < N_TIMED && s_timeout_defaults[k].state != st)
            k++;
        if (k == N_TIMED) {
            util_errf(err, errlen,
                      "timeouts: '%s' is not a state with a timeout (assigned,"
                      " waiting_window, offered, downloading, installed, verifying)",
                      log_quote(item, q, sizeof q));
            return -EINVAL;
        }
        int64_t v;
        if (rollout_duration_parse(eq + 1, &v) < 0 || v == 0) {
            util_errf(err, errlen, "timeouts: invalid duration '%s' for %s (e.g. 90s, 6m, 2h, 1d)",
                      log_quote(eq + 1, q, sizeof q), item);
            return -EINVAL;
        }
        secs[k] = v;
        p += len + (comma ? 1 : 0);
        if (comma && *p == '\0')
            goto bad;
    }
    size_t o = 0;
    o += (size_t)snprintf(json + o, n - o, "{");
    for (size_t i = 0; i < N_TIMED && o < n; i++)
        o += (size_t)snprintf(json + o, n - o, "%s\"%s\":%lld", i ? "," : "",
                              store_rdev_name(s_timeout_defaults[i].state), (long long)secs[i]);
    if (o < n)
        o += (size_t)snprintf(json + o, n - o, "}");
    return o < n ? 0 : -EINVAL;
bad:
    util_errf(err, errlen, "timeouts: expected STATE=DURATION[,...], got '%s'",
              log_quote(spec, q, sizeof q));
    return -EINVAL;
}

int64_t rollout_timeout_s(const char *timeouts, int state)
{
    const char *name = store_rdev_name(state);
    if (name == NULL)
        return -1;
    json_t *doc = json_loads(timeouts ? timeouts : "{}", 0, NULL);
    json_t *v = doc ? json_object_get(doc, name) : NULL;
    int64_t secs = -1;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        secs = json_integer_value(v);
    json_decref(doc);
    if (secs < 0)
        for (size_t i = 0; i < N_TIMED; i++)
            if (s_timeout_defaults[i].state == state)
                secs = s_timeout_defaults[i].secs;
    return secs;
}

/* ---- notes ---- */

static void s_note(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
    for (size_t i = 0; i < *n; i++)
        if ((*arr)[i] == v)
            return;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        int64_t *g = realloc(*arr, c * sizeof *g);
        if (g == NULL)
            return; /* the link resends on its timer; a SiteConfig goes at the next Hello */
        *arr = g;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
}

static void s_note_sites(struct rollout_notes *n, json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
        s_note(&n->sites, &n->n_sites, &n->cap_sites, json_integer_value(v));
}

void rollout_notes_free(struct rollout_notes *n)
{
    free(n->agents);
    free(n->sites);
    memset(n, 0, sizeof *n);
}

void rollout_notes_flush(struct ctl *ctl, struct rollout_notes *n)
{
    if (ctl->link) {
        for (size_t i = 0; i < n->n_sites; i++)
            ctl_link_site_changed(ctl->link, n->sites[i]);
        for (size_t i = 0; i < n->n_agents; i++)
            ctl_link_flush_outbox(ctl->link, n->agents[i]);
    }
    rollout_notes_free(n);
}

/* ---- journaling and events ---- */

/* Journals env to agents ids[0..n). n, or <0. */
static int s_journal_to(struct ctl *ctl, const int64_t *ids, int n, const Firmfleet__Envelope *env,
                        struct rollout_notes *notes)
{
    size_t len = 0;
    uint8_t *buf = wire_pack(env, &len);
    if (buf == NULL)
        return -ENOMEM;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t seq;
        rc = store_outbox_append(ctl->st, ids[i], buf, len, &seq);
        if (rc == 0)
            s_note(&notes->agents, &notes->n_agents, &notes->cap_agents, ids[i]);
    }
    free(buf);
    return rc < 0 ? rc : n;
}

/* Journals env to every unrevoked agent of site_id. The number of agents,
 * or <0. */
static int s_journal(struct ctl *ctl, int64_t site_id, const Firmfleet__Envelope *env,
                     struct rollout_notes *notes)
{
    int64_t ids[MAX_SITE_AGENTS];
    int n = store_site_agents(ctl->st, site_id, ids, MAX_SITE_AGENTS);
    if (n <= 0)
        return n;
    return s_journal_to(ctl, ids, n, env, notes);
}

static int s_cancel(struct ctl *ctl, int64_t rollout_id, const struct store_rdev *d,
                    struct rollout_notes *notes)
{
    Firmfleet__Cancel c = FIRMFLEET__CANCEL__INIT;
    char mac[18];
    snprintf(mac, sizeof mac, "%s", d->mac);
    c.mac = mac;
    c.rollout_id = (uint64_t)rollout_id;
    Firmfleet__Envelope env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_CANCEL;
    env.cancel = &c;
    int rc = s_journal(ctl, d->site_id, &env, notes);
    return rc < 0 ? rc : 0;
}

/* Moves device d of rollout r to state (reason), with its rollout.device
 * event. */
static int s_move(struct ctl *ctl, const struct store_rollout *r, struct store_rdev *d, int state,
                  const char *reason, uint64_t now_ms)
{
    int rc = store_rollout_device_set(ctl->st, r->id, d->device_id, state, reason, now_ms);
    if (rc < 0)
        return rc;
    char detail[512], qr[300];
    snprintf(detail, sizeof detail, "rollout=%" PRId64 " state=%s reason=%s", r->id,
             store_rdev_name(state), log_quote(reason ? reason : "", qr, sizeof qr));
    d->state = state;
    return store_ctl_event(ctl->st, d->site_id, "rollout.device", d->mac, detail, now_ms);
}

static int s_state(struct ctl *ctl, struct store_rollout *r, const char *state, const char *reason,
                   uint64_t now_ms)
{
    int rc = store_rollout_set_state(ctl->st, r->id, state, reason, now_ms);
    if (rc < 0)
        return rc;
    char detail[512], qr[300];
    snprintf(detail, sizeof detail, "rollout=%" PRId64 " name=%s state=%s reason=%s", r->id,
             r->name, state, log_quote(reason ? reason : "", qr, sizeof qr));
    snprintf(r->state, sizeof r->state, "%s", state);
    snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    log_info("rollout.state", "%s", detail);
    return store_ctl_event(ctl->st, 0, "rollout.state", "", detail, now_ms);
}

/* ---- the engine ---- */

/* What the assignments of one engine turn of one rollout share: the
 * firmware's files, built at the first device that needs them, and the
 * agents of the last site looked up (devices come ordered by wave, site,
 * mac: about one lookup per site per turn). Nothing outlives the turn, so
 * a revoked agent or a changed firmware is seen at the next one. */
struct assign_turn {
    int fw_tried;
    int fw_rc;                 /* of store_assignment_firmware */
    Firmfleet__Assignment *fw; /* firmware and files; NULL: fw_rc, fw_err say why */
    int64_t fw_id;
    char fw_err[256];
    int64_t site_id; /* whose agents[] these are; 0 none yet */
    int n_agents;
    int64_t agents[MAX_SITE_AGENTS];
};

/* Assigns one pending device: skipped when its markers already show the
 * target, stays pending (reason "no agent") without an agent, else an
 * Assignment to its site's agents -> assigned. */
static int s_assign(struct ctl *ctl, struct store_rollout *r, struct store_rdev *d, uint64_t now_ms,
                    struct rollout_notes *notes, struct assign_turn *t)
{
    if (strcmp(d->serial_firmware, r->version) == 0 || strcmp(d->version, r->version) == 0)
        return s_move(ctl, r, d, STORE_RDEV_SKIPPED, "serial", now_ms);
    if (t->site_id != d->site_id || t->site_id == 0) {
        int na = store_site_agents(ctl->st, d->site_id, t->agents, MAX_SITE_AGENTS);
        if (na < 0)
            return na;
        t->site_id = d->site_id;
        t->n_agents = na;
    }
    if (t->n_agents == 0) {
        if (strcmp(d->reason, "no agent") == 0)
            return 0;
        snprintf(d->reason, sizeof d->reason, "no agent");
        return store_rollout_device_set(ctl->st, r->id, d->device_id, STORE_RDEV_PENDING,
                                        "no agent", now_ms);
    }
    if (!t->fw_tried) {
        t->fw_tried = 1;
        t->fw_rc = store_assignment_firmware(ctl->st, r->firmware, &t->fw, &t->fw_id, t->fw_err,
                                             sizeof t->fw_err);
    }
    /* the checks in store_assignment_build's order: device, firmware, model */
    int64_t site_id = 0;
    char err[256] = "", window[WINDOW_SPEC_MAX];
    int rc = store_assignment_device(ctl->st, d->mac, t->fw_id, t->fw ? t->fw->firmware : "",
                                     &site_id, window, sizeof window, err, sizeof err);
    if (rc == -ENOENT)
        return s_move(ctl, r, d, STORE_RDEV_FAILED, err, now_ms);
    if (rc < 0 && rc != -EINVAL)
        return rc;
    if (t->fw == NULL)
        return t->fw_rc == -ENOENT ? s_move(ctl, r, d, STORE_RDEV_FAILED, t->fw_err, now_ms)
                                   : (t->fw_rc < 0 ? t->fw_rc : -EIO);
    if (rc == -EINVAL)
        return s_move(ctl, r, d, STORE_RDEV_FAILED, err, now_ms);
    if (window[0] == '\0')
        snprintf(window, sizeof window, "%s", r->window);
    Firmfleet__Serials target = FIRMFLEET__SERIALS__INIT;
    target.firmware = r->version;
    /* all borrowed: the turn's firmware and files, d's and r's strings */
    Firmfleet__Assignment as = FIRMFLEET__ASSIGNMENT__INIT;
    as.mac = d->mac;
    as.firmware = t->fw->firmware;
    as.n_files = t->fw->n_files;
    as.files = t->fw->files;
    as.rollout_id = (uint64_t)r->id;
    as.version = r->version;
    as.profile = r->profile;
    as.window = window;
    as.boot_grace_s = (uint32_t)r->boot_grace_s;
    as.stage_fresh = r->stage_fresh != 0;
    as.site_concurrency = (uint32_t)r->site_concurrency;
    as.target = &target;
    as.spread_s = (uint32_t)r->spread_s;
    as.verify_s = (uint32_t)r->verify_s;
    Firmfleet__Envelope env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT;
    env.assignment = &as;
    rc = s_journal_to(ctl, t->agents, t->n_agents, &env, notes);
    if (rc < 0)
        return rc;
    return s_move(ctl, r, d, STORE_RDEV_ASSIGNED, "", now_ms);
}

/* Fails every in-flight device whose state outlived its timeout. */
static int s_timeouts(struct ctl *ctl, struct store_rollout *r, uint64_t now_ms,
                      struct rollout_notes *notes)
{
    struct store_rdev *d = NULL;
    size_t n = 0;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < N_TIMED; k++) {
        int state = s_timeout_defaults[k].state;
        int64_t secs = rollout_timeout_s(r->timeouts, state);
        if (secs <= 0)
            continue;
        struct store_rdev_filter f = {.state = state,
                                      .entered_before = (int64_t)now_ms - secs * 1000 + 1};
        if ((rc = store_rollout_devices(ctl->st, r->id, &f, &d, &n)) < 0)
            break;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            char why[128], dur[32];
            rollout_duration_format(secs, dur, sizeof dur);
            snprintf(why, sizeof why, "timeout in %s after %s", store_rdev_name(state), dur);
            rc = s_cancel(ctl, r->id, &d[i], notes);
            if (rc == 0)
                rc = s_move(ctl, r, &d[i], STORE_RDEV_FAILED, why, now_ms);
        }
        free(d);
        d = NULL;
    }
    return rc;
}

/* Devices that came to match the selector since: into the last wave. */
static int s_append(struct ctl *ctl, struct store_rollout *r, uint64_t now_ms)
{
    struct store_rollout_target *t = NULL;
    size_t n = 0;
    int rc = store_rollout_select(ctl->st, NULL, r->firmware_id, r->id, &t, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (t[i].busy[0])
            continue;
        int64_t wave = r->n_waves > 0 ? r->n_waves : 1;
        if ((rc = store_rollout_device_add(ctl->st, r->id, &t[i], wave, now_ms)) < 0)
            break;
        char detail[160];
        snprintf(detail, sizeof detail,
                 "rollout=%" PRId64 " state=pending reason=added wave=%" PRId64, r->id, wave);
        rc = store_ctl_event(ctl->st, t[i].site_id, "rollout.device", t[i].mac, detail, now_ms);
    }
    free(t);
    if (rc == 0)
        rc = store_rollout_watermark(ctl->st, r->id);
    return rc;
}

static int64_t s_sum(const int64_t c[STORE_RDEV_N])
{
    int64_t s = 0;
    for (int i = 0; i < STORE_RDEV_N; i++)
        s += c[i];
    return s;
}

static int64_t s_in_flight(const int64_t c[STORE_RDEV_N])
{
    int64_t s = 0;
    for (int i = 0; i < STORE_RDEV_N; i++)
        if (!store_rdev_terminal(i))
            s += c[i];
    return s;
}

static int s_tick_one(struct ctl *ctl, int64_t id, uint64_t now_ms, struct rollout_notes *notes)
{
    struct store_rollout r;
    int rc = store_rollout_by_id(ctl->st, id, &r);
    if (rc <= 0)
        return rc;
    if (strcmp(r.state, "scheduled") == 0) {
        if (r.start_at > (int64_t)now_ms)
            return 0;
        if ((rc = s_state(ctl, &r, "running", "", now_ms)) < 0)
            return rc;
    }
    if ((rc = s_timeouts(ctl, &r, now_ms, notes)) < 0)
        return rc;
    if (strcmp(r.state, "running") != 0)
        return 0;
    if ((rc = s_append(ctl, &r, now_ms)) < 0)
        return rc;
    if (r.current_wave < 1) {
        r.current_wave = 1;
        if ((rc = store_rollout_set_wave(ctl->st, r.id, 1)) < 0)
            return rc;
    }
    for (int guard = 0; guard <= ROLLOUT_WAVES_MAX + 1; guard++) {
        int64_t all[STORE_RDEV_N];
        /* no failure, no halt (the max is never below 0): the full counts
         * read every row of the rollout, and this runs every turn */
        int64_t failed = store_rollout_count_state(ctl->st, r.id, STORE_RDEV_FAILED);
        if (failed < 0)
            return (int)failed;
        if (failed > 0 && (rc = store_rollout_counts(ctl->st, r.id, 0, all)) < 0)
            return rc;
        int64_t max = failed > 0 ? rollout_max_failures(r.max_failures, s_sum(all)) : 0;
        if (failed > 0 && all[STORE_RDEV_FAILED] > max) {
            char why[200];
            snprintf(why, sizeof why,
                     "halted: %" PRId64 " failures > max %" PRId64 " (wave %" PRId64 ")",
                     all[STORE_RDEV_FAILED], max, r.current_wave);
            return s_state(ctl, &r, "halted", why, now_ms);
        }
        struct store_rdev *d = NULL;
        size_t n = 0;
        struct store_rdev_filter f = {.state = STORE_RDEV_PENDING,
                                      .max_wave = r.current_wave,
                                      .assignable = 1,
                                      .limit = ASSIGN_PER_TICK};
        if ((rc = store_rollout_devices(ctl->st, r.id, &f, &d, &n)) < 0)
            return rc;
        struct assign_turn turn = {.fw = NULL};
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = s_assign(ctl, &r, &d[i], now_ms, notes, &turn);
        store_assignment_free(turn.fw);
        free(d);
        if (rc < 0 || n == ASSIGN_PER_TICK)
            return rc < 0 ? rc : 1; /* more: the loop ticks again at once */
        /* while devices are in flight (most turns of a running rollout)
         * an index probe, not the counts of every row (~300 ms at 1,000,000) */
        int busy = store_rollout_in_flight(ctl->st, r.id, r.current_wave);
        if (busy != 0)
            return busy < 0 ? busy : 0;
        if ((rc = store_rollout_counts(ctl->st, r.id, 0, all)) < 0)
            return rc;
        if (all[STORE_RDEV_FAILED] > rollout_max_failures(r.max_failures, s_sum(all)))
            continue; /* halts above */
        if (r.current_wave < r.n_waves) {
            r.current_wave++;
            if ((rc = store_rollout_set_wave(ctl->st, r.id, r.current_wave)) < 0)
                return rc;
            char detail[160];
            snprintf(detail, sizeof detail, "rollout=%" PRId64 " wave=%" PRId64 " of=%" PRId64,
                     r.id, r.current_wave, r.n_waves);
            if ((rc = store_ctl_event(ctl->st, 0, "rollout.wave", "", detail, now_ms)) < 0)
                return rc;
            log_info("rollout.wave", "%s", detail);
            continue;
        }
        if (s_in_flight(all) > 0)
            return 0;
        json_t *ids = json_array();
        rc = store_rollout_bump_sites(ctl->st, r.id, ids);
        if (rc == 0)
            s_note_sites(notes, ids);
        json_decref(ids);
        char why[128];
        snprintf(why, sizeof why, "%" PRId64 " succeeded, %" PRId64 " skipped, %" PRId64 " failed",
                 all[STORE_RDEV_SUCCEEDED], all[STORE_RDEV_SKIPPED], all[STORE_RDEV_FAILED]);
        return rc < 0 ? rc : s_state(ctl, &r, "done", why, now_ms);
    }
    return 0;
}

int rollout_tick(struct ctl *ctl, uint64_t now_ms)
{
    int64_t ids[MAX_ACTIVE];
    int n = store_rollout_active(ctl->st, ids, MAX_ACTIVE);
    if (n <= 0)
        return n;
    int sp, rc = store_rollout_tx_begin(ctl->st, &sp);
    if (rc < 0)
        return rc;
    struct rollout_notes notes = {0};
    int more = 0;
    for (int i = 0; i < n && rc >= 0; i++) {
        rc = s_tick_one(ctl, ids[i], now_ms, &notes);
        if (rc > 0)
            more = 1;
    }
    rc = store_rollout_tx_end(ctl->st, sp, rc < 0 ? rc : 0);
    if (rc < 0) {
        log_error("rollout.tick_failed", "error=%d", rc);
        rollout_notes_free(&notes);
        return rc;
    }
    rollout_notes_flush(ctl, &notes);
    return more;
}

/* Agent event kinds and the device state each one means. */
static const struct {
    const char *kind;
    int state;
} s_event_map[] = {
    {"assignment.applied", STORE_RDEV_WAITING_WINDOW},
    {"upgrade.waiting", STORE_RDEV_WAITING_WINDOW},
    {"upgrade.offered", STORE_RDEV_OFFERED},
    {"upgrade.downloading", STORE_RDEV_DOWNLOADING},
    {"upgrade.installed", STORE_RDEV_INSTALLED},
    {"upgrade.verifying", STORE_RDEV_VERIFYING},
    {"upgrade.succeeded", STORE_RDEV_SUCCEEDED},
    {"upgrade.failed", STORE_RDEV_FAILED},
    {"upgrade.skipped", STORE_RDEV_SKIPPED},
};

static void s_on_version(struct ctl *ctl, int64_t site_id, const char *mac, const char *detail,
                         uint64_t now_ms)
{
    char seen[128], recorded[128];
    int64_t dev_site = 0;
    if (log_field(detail, "version", seen, sizeof seen) <= 0)
        return;
    if (store_device_version(ctl->st, mac, recorded, sizeof recorded, &dev_site) != 1 ||
        strcmp(seen, recorded) == 0)
        return;
    if (recorded[0] != '\0' && store_device_version_expected(ctl->st, mac, seen) == 0) {
        char d[400], qs[140], qe[140];
        snprintf(d, sizeof d, "seen=%s expected=%s", log_quote(seen, qs, sizeof qs),
                 log_quote(recorded, qe, sizeof qe));
        store_ctl_event(ctl->st, dev_site ? dev_site : site_id, "device.drift", mac, d, now_ms);
        log_warn("rollout.drift", "mac=%s %s", mac, d);
    }
    store_device_version_set(ctl->st, mac, seen, 0);
}

void rollout_on_event(struct ctl *ctl, int64_t site_id, const Firmfleet__DeviceEvent *ev,
                      uint64_t now_ms)
{
    char mac[18], idtext[32];
    if (ev->kind == NULL || ev->mac == NULL || util_mac_canon(ev->mac, mac) < 0)
        return;
    const char *detail = ev->detail ? ev->detail : "";
    if (strcmp(ev->kind, "device.version") == 0) {
        s_on_version(ctl, site_id, mac, detail, now_ms);
        return;
    }
    size_t k = 0;
    while (k < sizeof s_event_map / sizeof s_event_map[0] && strcmp(s_event_map[k].kind, ev->kind))
        k++;
    if (k == sizeof s_event_map / sizeof s_event_map[0])
        return;
    int64_t id = 0;
    if (log_field(detail, "rollout", idtext, sizeof idtext) <= 0 ||
        util_parse_i64(idtext, 1, INT64_MAX, &id) < 0)
        return;
    struct store_rollout r;
    struct store_rdev d;
    if (store_rollout_by_id(ctl->st, id, &r) != 1 ||
        store_rollout_device_get(ctl->st, id, mac, &d) != 1)
        return; /* unknown rollout or device: nothing to follow */
    if (d.site_id != site_id) {
        log_warn("rollout.event_wrong_site", "mac=%s rollout=%" PRId64, mac, id);
        return;
    }
    int to = s_event_map[k].state;
    if (store_rdev_terminal(d.state) || d.state == STORE_RDEV_PENDING)
        return; /* stale, or not ours yet */
    if (strcmp(ev->kind, "assignment.applied") == 0 && d.state != STORE_RDEV_ASSIGNED)
        return; /* already further */
    char reason[200] = "";
    log_field(detail, "reason", reason, sizeof reason);
    if (to == STORE_RDEV_FAILED && reason[0] == '\0')
        snprintf(reason, sizeof reason, "failed");
    if (store_rollout_device_set(ctl->st, id, d.device_id, to, reason, now_ms) < 0) {
        log_error("rollout.event_store_failed", "mac=%s rollout=%" PRId64, mac, id);
        return;
    }
    if (to == STORE_RDEV_SUCCEEDED)
        store_device_version_set(ctl->st, mac, r.version, 1); /* what it was told to end at */
}

/* ---- admin verbs ---- */

/* Splits a comma/newline/space list into a json array of strings. */
static json_t *s_list(const char *s)
{
    json_t *arr = json_array();
    while (arr && s && *s) {
        size_t n = strcspn(s, ",\n\r \t");
        if (n > 0)
            json_array_append_new(arr, json_stringn(s, n));
        s += n;
        if (*s)
            s++;
    }
    return arr;
}

/* The tar check: every file of the firmware matching the profile's final
 * image glob must start with a valid tar header. */
static int s_tar_check(struct ctl *ctl, const char *profile_json, const struct store_fw_ref *fw,
                       const char *pname, char *err, size_t errlen)
{
    profile_t *p = NULL;
    char why[256] = "";
    if (profile_parse(profile_json, strlen(profile_json), &p, why, sizeof why) < 0) {
        util_errf(err, errlen, "profile %s no longer parses: %s", pname, why);
        return -EINVAL;
    }
    int rc = 0;
    if (strcmp(profile_image_check(p), "tar") == 0) {
        json_t *files = NULL;
        rc = store_rollout_fw_files(ctl->st, fw->id, &files);
        int matched = 0;
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            const char *sha = json_string_value(json_object_get(f, "sha256"));
            if (rc < 0 || !profile_glob(profile_final_image(p), name))
                continue;
            matched = 1;
            uint8_t bin[32], head[512];
            size_t got = 0;
            uint64_t total = 0;
            if (util_unhex(sha, bin, 32) < 0 || ctl->img == NULL ||
                imgstore_read(ctl->img, bin, 0, head, sizeof head, &got, &total) < 0) {
                util_errf(err, errlen, "firmware %s: cannot read image %s for the tar check",
                          fw->ref, name);
                rc = -EIO;
                break;
            }
            why[0] = '\0';
            if (profile_tar_check(head, got, why, sizeof why) < 0) {
                util_errf(err, errlen,
                          "firmware %s: final image %s is not a valid tar archive"
                          " (profile %s wants one): %s",
                          fw->ref, name, pname, why);
                rc = -EINVAL;
                break;
            }
        }
        if (rc == 0 && !matched) {
            util_errf(err, errlen,
                      "firmware %s has no file matching the final image '%s' of"
                      " profile %s",
                      fw->ref, profile_final_image(p), pname);
            rc = -EINVAL;
        }
        json_decref(files);
    }
    profile_free(p);
    return rc;
}

static int s_duration_opt(const char *name, const char *v, int64_t max, int64_t *out, char *err,
                          size_t errlen)
{
    char q[64];
    if (v == NULL)
        return 0;
    if (rollout_duration_parse(v, out) < 0 || *out > max) {
        util_errf(err, errlen, "invalid --%s '%s' (a duration like 90s, 6m, 2h, 1d)", name,
                  log_quote(v, q, sizeof q));
        return -EINVAL;
    }
    return 0;
}

int rollout_create(struct ctl *ctl, const char *user, const struct rollout_create_in *in,
                   uint64_t now_ms, struct rollout_notes *notes, char *err, size_t errlen)
{
    store_t *st = ctl->st;
    char q[80];
    int rc;
    if ((rc = store_check_name("rollout", in->name, err, errlen)) < 0)
        return rc;
    if (in->firmware == NULL || *in->firmware == '\0') {
        util_errf(err, errlen, "rollout create: --firmware VENDOR/VERSION is required");
        return -EINVAL;
    }
    const char *waves = in->waves && *in->waves ? in->waves : ROLLOUT_DEFAULT_WAVES;
    const char *maxf =
        in->max_failures && *in->max_failures ? in->max_failures : ROLLOUT_DEFAULT_MAX_FAILURES;
    int64_t conc = 0, grace = 0, spread = 0, verify = ROLLOUT_DEFAULT_VERIFY_S, start_at = 0;
    char timeouts[512];
    if ((rc = rollout_waves_check(waves, err, errlen)) < 0 ||
        (rc = rollout_max_failures_check(maxf, err, errlen)) < 0 ||
        (rc = store_check_window(in->window, err, errlen)) < 0 ||
        (rc = s_duration_opt("boot-grace", in->boot_grace, UINT32_MAX, &grace, err, errlen)) < 0 ||
        (rc = s_duration_opt("spread", in->spread, UINT32_MAX, &spread, err, errlen)) < 0 ||
        (rc = s_duration_opt("verify-timeout", in->verify_timeout, UINT32_MAX, &verify, err,
                             errlen)) < 0 ||
        (rc = rollout_timeouts_build(in->timeouts, timeouts, sizeof timeouts, err, errlen)) < 0)
        return rc;
    if (in->site_concurrency && util_parse_i64(in->site_concurrency, 0, 100000, &conc) < 0) {
        util_errf(err, errlen, "invalid --site-concurrency '%s' (0..100000, 0 = no cap)",
                  log_quote(in->site_concurrency, q, sizeof q));
        return -EINVAL;
    }
    if (in->start_at && *in->start_at && rollout_time_parse(in->start_at, &start_at) < 0) {
        util_errf(err, errlen,
                  "invalid --start-at '%s' (YYYY-MM-DDTHH:MM[:SS], local, or"
                  " ending in Z for UTC)",
                  log_quote(in->start_at, q, sizeof q));
        return -EINVAL;
    }
    /* the selector */
    json_t *sel = json_object();
    json_t *sites = s_list(in->sites), *models = s_list(in->models), *tags = s_list(in->tags),
           *devices = s_list(in->devices);
    if (sel == NULL || sites == NULL || models == NULL || tags == NULL || devices == NULL) {
        json_decref(sel);
        json_decref(sites);
        json_decref(models);
        json_decref(tags);
        json_decref(devices);
        util_errf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    json_object_set_new(sel, "sites", sites);
    json_object_set_new(sel, "models", models);
    json_object_set_new(sel, "tags", tags);
    json_object_set_new(sel, "devices", devices);
    size_t i;
    json_t *v;
    char *selector = NULL;
    struct store_rollout_target *t = NULL;
    int64_t *wave = NULL, n_waves = 0;
    size_t n = 0;
    char *pjson = NULL;
    struct store_fw_ref fw;
    char profile[64];
    json_t *site_ids = json_array();
    if (json_array_size(sites) + json_array_size(models) + json_array_size(tags) +
            json_array_size(devices) ==
        0) {
        util_errf(err, errlen,
                  "rollout create: give at least one of --sites, --models, --tags,"
                  " --devices");
        rc = -EINVAL;
        goto out;
    }
    json_array_foreach(sites, i, v)
    {
        if ((rc = store_site_id(st, json_string_value(v), NULL, err, errlen)) < 0)
            goto out;
    }
    char tagbuf[256];
    json_array_foreach(tags, i, v)
    {
        if ((rc = store_check_tags(json_string_value(v), tagbuf, sizeof tagbuf, err, errlen)) < 0)
            goto out;
    }
    json_array_foreach(devices, i, v)
    {
        char canon[18];
        json_t *dev = NULL;
        if (util_mac_canon(json_string_value(v), canon) < 0) {
            util_errf(err, errlen, "--devices: invalid MAC address '%s'",
                      log_quote(json_string_value(v), q, sizeof q));
            rc = -EINVAL;
            goto out;
        }
        if ((rc = store_device_show(st, canon, &dev, err, errlen)) < 0)
            goto out;
        json_decref(dev);
        json_array_set_new(devices, i, json_string(canon));
    }
    if ((rc = store_rollout_firmware(st, in->firmware, &fw, err, errlen)) < 0)
        goto out;
    if (in->profile && *in->profile) {
        snprintf(profile, sizeof profile, "%s", in->profile);
    } else {
        json_t *cands = NULL;
        if ((rc = store_profile_for_vendor(st, fw.vendor, &cands)) < 0) {
            util_errf(err, errlen, "database error");
            goto out;
        }
        if (json_array_size(cands) != 1) {
            util_errf(err, errlen,
                      "rollout create: --profile is required (%zu profiles named"
                      " for vendor %s)",
                      json_array_size(cands), fw.vendor);
            json_decref(cands);
            rc = -EINVAL;
            goto out;
        }
        snprintf(profile, sizeof profile, "%s", json_string_value(json_array_get(cands, 0)));
        json_decref(cands);
    }
    if (store_profile_json(st, profile, &pjson) < 0) {
        util_errf(err, errlen, "unknown profile '%s'", log_quote(profile, q, sizeof q));
        rc = -ENOENT;
        goto out;
    }
    if ((rc = s_tar_check(ctl, pjson, &fw, profile, err, errlen)) < 0)
        goto out;
    if ((rc = store_rollout_name_taken(st, in->name)) != 0) {
        if (rc > 0)
            util_errf(err, errlen, "rollout %s already exists", in->name);
        rc = rc > 0 ? -EEXIST : rc;
        goto out;
    }
    selector = json_dumps(sel, JSON_COMPACT);
    if (selector == NULL || store_rollout_select(st, selector, fw.id, 0, &t, &n) < 0) {
        util_errf(err, errlen, "cannot resolve the selector");
        rc = -EIO;
        goto out;
    }
    if (n == 0) {
        util_errf(err, errlen, "no device matches the selector with a model firmware %s lists",
                  fw.ref);
        rc = -ENOENT;
        goto out;
    }
    for (size_t k = 0; k < n; k++)
        if (t[k].busy[0]) {
            util_errf(err, errlen, "device %s is already in unfinished rollout %s", t[k].mac,
                      t[k].busy);
            rc = -EBUSY;
            goto out;
        }
    if ((wave = calloc(n, sizeof *wave)) == NULL) {
        util_errf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = rollout_plan(waves, t, n, wave, &n_waves, err, errlen)) < 0)
        goto out;
    struct store_rollout_in ri = {
        .name = in->name,
        .profile = profile,
        .selector = selector,
        .waves = waves,
        .max_failures = maxf,
        .window = in->window,
        .timeouts = timeouts,
        .firmware_id = fw.id,
        .site_concurrency = conc,
        .boot_grace_s = grace,
        .stage_fresh = in->stage_fresh,
        .spread_s = spread,
        .verify_s = verify,
        .start_at = start_at,
        .n_waves = n_waves,
    };
    rc = store_rollout_insert(st, user, &ri, t, wave, n, now_ms, NULL, site_ids, err, errlen);
    if (rc == 0)
        s_note_sites(notes, site_ids);
out:
    json_decref(site_ids);
    free(selector);
    free(pjson);
    free(t);
    free(wave);
    json_decref(sel);
    return rc;
}

/* Loads rollout name for a verb; -ENOENT with the message. */
static int s_get(struct ctl *ctl, const char *name, struct store_rollout *r, char *err,
                 size_t errlen)
{
    return store_rollout_get(ctl->st, name, r, err, errlen);
}

static int s_audit(struct ctl *ctl, const char *user, const char *action,
                   const struct store_rollout *r)
{
    char detail[200];
    snprintf(detail, sizeof detail, "rollout=%s id=%" PRId64, r->name, r->id);
    return store_audit(ctl->st, user, action, detail);
}

/* The shared shape of start/pause/resume: check from-state, set to-state. */
static int s_transition(struct ctl *ctl, const char *user, const char *name, const char *verb,
                        uint64_t now_ms, char *err, size_t errlen)
{
    struct store_rollout r;
    int rc = s_get(ctl, name, &r, err, errlen);
    if (rc < 0)
        return rc;
    const char *to = NULL;
    char why[128] = "";
    if (strcmp(verb, "start") == 0) {
        if (strcmp(r.state, "created") == 0)
            to = r.start_at > (int64_t)now_ms ? "scheduled" : "running";
    } else if (strcmp(verb, "pause") == 0) {
        if (strcmp(r.state, "running") == 0 || strcmp(r.state, "scheduled") == 0) {
            to = "paused";
            snprintf(why, sizeof why, "paused by %s", user);
        }
    } else if (strcmp(r.state, "paused") == 0) { /* resume */
        to = r.start_at > (int64_t)now_ms ? "scheduled" : "running";
    }
    if (to == NULL) {
        util_errf(err, errlen, "rollout %s is %s; %s applies to a %s rollout", r.name, r.state,
                  verb,
                  strcmp(verb, "start") == 0   ? "created"
                  : strcmp(verb, "pause") == 0 ? "running or scheduled"
                                               : "paused");
        return -EINVAL;
    }
    int sp;
    if ((rc = store_rollout_tx_begin(ctl->st, &sp)) < 0) {
        util_errf(err, errlen, "database busy");
        return rc;
    }
    rc = s_state(ctl, &r, to, why, now_ms);
    if (rc == 0 && strcmp(verb, "start") == 0)
        rc = store_rollout_set_wave(ctl->st, r.id, 1);
    char action[32];
    snprintf(action, sizeof action, "rollout.%s", verb);
    if (rc == 0)
        rc = s_audit(ctl, user, action, &r);
    rc = store_rollout_tx_end(ctl->st, sp, rc);
    if (rc < 0)
        util_errf(err, errlen, "database error");
    return rc;
}

int rollout_start(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen)
{
    (void)notes;
    return s_transition(ctl, user, name, "start", now_ms, err, errlen);
}

int rollout_pause(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen)
{
    (void)notes;
    return s_transition(ctl, user, name, "pause", now_ms, err, errlen);
}

int rollout_resume(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                   struct rollout_notes *notes, char *err, size_t errlen)
{
    (void)notes;
    return s_transition(ctl, user, name, "resume", now_ms, err, errlen);
}

int rollout_abort(struct ctl *ctl, const char *user, const char *name, uint64_t now_ms,
                  struct rollout_notes *notes, char *err, size_t errlen)
{
    struct store_rollout r;
    int rc = s_get(ctl, name, &r, err, errlen);
    if (rc < 0)
        return rc;
    if (strcmp(r.state, "aborted") == 0 || strcmp(r.state, "done") == 0) {
        util_errf(err, errlen, "rollout %s is already %s", r.name, r.state);
        return -EALREADY;
    }
    int sp;
    if ((rc = store_rollout_tx_begin(ctl->st, &sp)) < 0) {
        util_errf(err, errlen, "database busy");
        return rc;
    }
    struct store_rdev *d = NULL;
    size_t n = 0;
    char why[128];
    snprintf(why, sizeof why, "aborted by %s", user);
    struct store_rdev_filter all = {.state = -1};
    rc = store_rollout_devices(ctl->st, r.id, &all, &d, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (store_rdev_terminal(d[i].state))
            continue;
        if (d[i].state != STORE_RDEV_PENDING)
            rc = s_cancel(ctl, r.id, &d[i], notes);
        if (rc == 0)
            rc = s_move(ctl, &r, &d[i], STORE_RDEV_CANCELLED, why, now_ms);
    }
    free(d);
    json_t *ids = json_array();
    if (rc == 0)
        rc = store_rollout_bump_sites(ctl->st, r.id, ids);
    if (rc == 0)
        rc = s_state(ctl, &r, "aborted", why, now_ms);
    if (rc == 0)
        rc = s_audit(ctl, user, "rollout.abort", &r);
    rc = store_rollout_tx_end(ctl->st, sp, rc);
    if (rc == 0)
        s_note_sites(notes, ids);
    else
        util_errf(err, errlen, "database error");
    json_decref(ids);
    return rc;
}

/* ---- profiles ---- */

static int s_profile_in(const char *json, size_t len, const char *source, int replace,
                        struct store_profile_in *in, profile_t **p, char *err, size_t errlen)
{
    char why[256] = "";
    if (len > PROFILE_JSON_MAX) {
        util_errf(err, errlen, "profile too large (%zu bytes, at most %d)", len, PROFILE_JSON_MAX);
        return -EINVAL;
    }
    if (memchr(json, '\0', len) != NULL) {
        util_errf(err, errlen, "profile: not JSON text (NUL byte)");
        return -EINVAL;
    }
    if (profile_parse(json, len, p, why, sizeof why) < 0) {
        util_errf(err, errlen, "profile refused: %s", why);
        return -EINVAL;
    }
    in->name = profile_name(*p);
    in->description = profile_description(*p);
    in->priority = profile_priority(*p);
    in->source = source;
    in->replace = replace;
    return 0;
}

int rollout_profile_add(struct ctl *ctl, const char *user, const char *json, size_t len,
                        int replace, char name_out[64], struct rollout_notes *notes, char *err,
                        size_t errlen)
{
    struct store_profile_in in;
    profile_t *p = NULL;
    int rc =
        s_profile_in(json ? json : "", json ? len : 0, "operator", replace, &in, &p, err, errlen);
    if (rc < 0)
        return rc;
    char *text = strndup(json, len);
    json_t *ids = json_array();
    int changed = 0;
    if (text == NULL || ids == NULL) {
        util_errf(err, errlen, "out of memory");
        rc = -ENOMEM;
    } else {
        in.json = text;
        rc = store_profile_put(ctl->st, user, &in, &changed, ids, err, errlen);
    }
    if (rc == 0) {
        s_note_sites(notes, ids);
        snprintf(name_out, 64, "%s", in.name);
    }
    json_decref(ids);
    free(text);
    profile_free(p);
    return rc;
}

static int s_json_name(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

int rollout_profiles_load(store_t *st, const char *dir, int must_exist)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, s_json_name, alphasort);
    if (n < 0) {
        int e = errno;
        if (!must_exist && e == ENOENT) {
            log_info("ctl.profiles", "dir=%s loaded=0 reason=\"no such directory\"", dir);
            return 0;
        }
        log_error("ctl.profiles", "dir=%s error=\"%s\"", dir, strerror(e));
        return -e;
    }
    int loaded = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        char path[4096], err[512] = "", qe[600];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        char *text = NULL;
        size_t len = 0;
        int rc = util_read_file(path, PROFILE_JSON_MAX, &text, &len);
        if (rc < 0) {
            log_warn("ctl.profile_skipped", "file=%s reason=\"cannot read: %s\"", path,
                     strerror(-rc));
            bad++;
            free(list[i]);
            continue;
        }
        struct store_profile_in in;
        profile_t *p = NULL;
        int changed = 0;
        rc = s_profile_in(text, len, "builtin", 0, &in, &p, err, sizeof err);
        if (rc == 0) {
            char *z = strndup(text, len);
            in.json = z;
            rc = z ? store_profile_put(st, NULL, &in, &changed, NULL, err, sizeof err) : -ENOMEM;
            free(z);
        }
        if (rc == 0) {
            loaded++;
            log_debug("ctl.profile", "file=%s name=%s changed=%d", path, in.name, changed);
        } else {
            bad++;
            log_warn("ctl.profile_skipped",
                     "file=%s reason=%s effect=\"not loaded; starting without it\"", path,
                     log_quote(err, qe, sizeof qe));
        }
        profile_free(p);
        free(text);
        free(list[i]);
    }
    free(list);
    log_info("ctl.profiles", "dir=%s loaded=%d skipped=%d", dir, loaded, bad);
    return loaded;
}
