/* sim_fleet.c: the simulated site (see sim_fleet.h).
 *
 * One struct per device in one array, each with its own timer (DHCP
 * retransmission, reboot, poll, retry) and, while it holds a lease, its own
 * SIP socket bound to that address. One UDP socket on port 68 (bound to the
 * interface) carries every device's DHCP; replies are broadcast (we set the
 * B flag) and demultiplexed by xid, whose low 20 bits are the device's index,
 * and checked against its chaddr. At most one TFTP or HTTP transfer per
 * device runs at a time.
 *
 * A device's life: WAIT (ramp) -> DHCP -> FETCH (the family's config
 * sequence, `step` says which file) -> IMAGE -> REBOOT -> DHCP ... or, when
 * the config names nothing new, IDLE (poll timer) or DONE (settled). DEAD is
 * an injected never-return. Settled devices still answer SIP; a NOTIFY makes
 * any idle or settled device poll at once.
 *
 * Counting settled devices is O(1) per change; the progress line walks the
 * array once a second, O(N), fine for thousands.
 */
#define _GNU_SOURCE
#include "sim_fleet.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <net/if.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "sim_dhcp.h"
#include "sim_http.h"
#include "sim_netif.h"
#include "sim_sip.h"
#include "sim_tftp.h"
#include "sim_xfer.h"

#define CFG_MAX (64u << 10) /* a config bigger than this is an error */
#define FETCH_RETRIES 3     /* transient errors before the sequence gives up */
#define DHCP_RTO_MS 2000    /* first DHCP retransmission, doubled up to 16 s */
#define DHCP_RTO_MAX_MS 16000
#define NAME_LEN 256

enum st { ST_WAIT, ST_DHCP, ST_FETCH, ST_IMAGE, ST_REBOOT, ST_IDLE, ST_DONE, ST_DEAD, ST_N };
static const char *const s_st_name[ST_N] = {"wait",   "dhcp", "config", "image",
                                            "reboot", "idle", "done",   "dead"};

enum fail { F_NONE, F_NEVER_RETURN, F_OLD_VERSION, F_ABORT, F_MALFORMED };
static const char *const s_fail_name[] = {"", "never-return", "old-version", "abort", "malformed"};

enum cstage { C_OLD, C_LOADER, C_SIP };

enum step {
    S_NONE,
    /* cisco-79xx (TFTP) */
    S_C_OS79,
    S_C_OLD_SEP,
    S_C_LOADER_IMG,
    S_C_SEP,
    S_C_SIPDEF,
    S_C_LOADS,
    S_C_SB2,
    S_C_SIPMAC,
    /* polycom (HTTP) */
    S_P_MAC,
    S_P_MASTER,
    S_P_APP,
    S_P_CFGFILE,
    /* yealink (HTTP) */
    S_Y_COMMON,
    S_Y_MAC,
    S_Y_ROM,
    /* digium (HTTP) */
    S_D_CFG,
    S_D_EFF,
};

struct sipsock {
    uv_udp_t u;
    struct dev *d; /* NULL once the device let go of it */
    char rbuf[4096];
};

struct dev {
    struct sim_fleet *f;
    unsigned idx;
    const struct sim_group *g;
    uint8_t mac[6];
    char mac_lc[13], mac_uc[13], mac_str[18];
    enum fail fail;
    enum st st;
    enum cstage cstage;
    char version[SIM_VERSION_MAX];
    char installed[NAME_LEN]; /* last image fetched whole */
    uv_timer_t timer;
    struct sipsock *sip;
    /* DHCP */
    uint32_t xid;
    int requesting;
    unsigned dhcp_tries, dhcp_rto;
    uint32_t offer_be, server_id_be;
    uint32_t ip_be, srv_be;
    unsigned prefix;
    /* the current fetch */
    enum step step;
    int is_image; /* 0 a config (kept, parsed), 1 an image, 2 a file only counted */
    int overflow; /* the config outgrew CFG_MAX */
    sim_tftp_t *tftp;
    sim_http_t *http;
    struct sim_buf body;
    uint64_t image_bytes, abort_at;
    unsigned fetch_tries;
    char fetch_name[NAME_LEN + 32]; /* TFTP name or HTTP path, for retries */
    char fetch_raw[NAME_LEN + 32];  /* the name as the config said it */
    uint32_t fetch_addr_be;
    uint16_t fetch_port;
    char next[NAME_LEN]; /* what the sequence fetches next (loads name, URL) */
    char next_version[SIM_VERSION_MAX];
    enum cstage next_cstage;
    /* outcome */
    int settled, ok_settled, came_back_old, aborted_once, configured, leased_once;
    unsigned leases, configs, files, images, retries, errors;
    uint64_t bytes;
    char last_error[128];
};

struct sim_fleet {
    struct sim_config cfg;
    uv_loop_t loop;
    int loop_init;
    uv_udp_t dhcp;
    int dhcp_open;
    uv_timer_t tick, deadline;
    uv_signal_t sigint, sigterm; /* stop cleanly: the addresses must come off */
    sim_netif_t *netif;
    unsigned n;
    struct dev *devs;
    unsigned settled;
    int stopping, timed_out, interrupted;
    uint64_t t0, t_end;
    uint64_t rng;
    uint8_t dbuf[SIM_DHCP_MAX + 64];
};

static void s_poll_now(struct dev *d);
static void s_deadline(uv_timer_t *t);
static void s_begin_config(struct dev *d);
static void s_fetch_done(void *arg, const struct sim_xfer_result *r);
static void s_dhcp_begin(struct dev *d);
static void s_boot_cb(uv_timer_t *t);
static void s_no_image(struct dev *d);

/* ---- small helpers ---- */

/* An injected never-return or old-version failure that happened: the
 * device fetched an image. Until then such a device is judged like any. */
static int s_injected(const struct dev *d)
{
    return (d->fail == F_NEVER_RETURN || d->fail == F_OLD_VERSION) && d->images > 0;
}

static uint64_t s_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ms with +-10% seeded jitter, so a thousand devices do not poll in step */
static uint64_t s_jitter(struct sim_fleet *f, uint64_t ms)
{
    if (ms < 10)
        return ms;
    return ms - ms / 10 + s_rand(&f->rng) % (ms / 5 + 1);
}

static void s_err(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && n)
        vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static void s_settle(struct dev *d, int ok)
{
    if (!d->settled) {
        d->settled = 1;
        d->f->settled++;
    }
    d->ok_settled = ok;
    if (d->f->settled == d->f->n && !d->f->stopping) /* stop from a clean stack */
        uv_timer_start(&d->f->deadline, s_deadline, 0, 0);
}

static void s_unsettle(struct dev *d)
{
    if (d->settled) {
        d->settled = 0;
        d->ok_settled = 0;
        d->f->settled--;
    }
}

/* --verbose: one logfmt line per device event on stderr */
static void s_log(const struct dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_log(const struct dev *d, const char *fmt, ...)
{
    if (!d->f->cfg.verbose)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "t=%.3f mac=%s family=%s version=%s %s\n",
            (double)(uv_now(&d->f->loop) - d->f->t0) / 1000.0, d->mac_str, d->g->fam->name,
            d->version, line);
}

static void s_set_error(struct dev *d, const char *what, const struct sim_xfer_result *r)
{
    d->errors++;
    if (r)
        snprintf(d->last_error, sizeof d->last_error, "%.48s: %.24s%s%.40s", what,
                 strerror(-r->status), r->detail ? ", " : "", r->detail ? r->detail : "");
    else
        snprintf(d->last_error, sizeof d->last_error, "%s", what);
}

/* ---- SIP: one socket per leased device ---- */

static void s_sip_closed(uv_handle_t *h)
{
    free(h->data);
}

static void s_sip_close(struct dev *d)
{
    if (d->sip == NULL)
        return;
    d->sip->d = NULL;
    uv_close((uv_handle_t *)&d->sip->u, s_sip_closed);
    d->sip = NULL;
}

static void s_sip_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    (void)sugg;
    struct sipsock *s = h->data;
    *b = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void s_sip_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                       unsigned flags)
{
    struct sipsock *s = u->data;
    if (s->d == NULL || n <= 0 || from == NULL || (flags & UV_UDP_PARTIAL))
        return;
    struct dev *d = s->d;
    char out[2048], tag[24];
    struct sim_sip_req info;
    snprintf(tag, sizeof tag, "%s%u", d->mac_lc, d->leases);
    size_t len = sim_sip_answer(b->base, (size_t)n, tag, out, sizeof out, &info);
    if (len == 0)
        return;
    uv_buf_t ob = uv_buf_init(out, (unsigned)len);
    (void)uv_udp_try_send(u, &ob, 1, from); /* a lost 200 is resent by the NOTIFY's sender */
    if (info.is_notify && strncasecmp(info.event, "check-sync", 10) == 0)
        s_poll_now(d);
}

static void s_sip_open(struct dev *d)
{
    struct sipsock *s = calloc(1, sizeof *s);
    if (s == NULL)
        return;
    if (uv_udp_init(&d->f->loop, &s->u) < 0) {
        free(s);
        return;
    }
    s->u.data = s;
    s->d = d;
    d->sip = s;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = d->ip_be, .sin_port = htons(d->f->cfg.sip_port)};
    int rc = uv_udp_bind(&s->u, (const struct sockaddr *)&a, UV_UDP_REUSEADDR);
    if (rc == 0)
        rc = uv_udp_recv_start(&s->u, s_sip_alloc, s_sip_recv);
    if (rc < 0) {
        snprintf(d->last_error, sizeof d->last_error, "sip bind: %s", uv_strerror(rc));
        s_sip_close(d);
    }
}

/* ---- fetches ---- */

static int s_on_data(void *arg, const uint8_t *p, size_t n, uint64_t total)
{
    struct dev *d = arg;
    d->bytes += n;
    if (d->is_image) {
        d->image_bytes += n;
        if (d->abort_at && total && d->image_bytes == n)
            d->abort_at = total / 5 + d->abort_at % (total / 2 + 1); /* 20-70% of it */
        if (d->abort_at && d->image_bytes >= d->abort_at) {
            d->abort_at = 0;
            d->aborted_once = 1;
            return 1;
        }
        return 0;
    }
    if (sim_buf_append(&d->body, p, n) < 0) {
        d->overflow = 1;
        return 1;
    }
    return 0;
}

static void s_retry_cb(uv_timer_t *t);

/* Starts the fetch described by d->fetch_*: TFTP when fetch_port is 0. */
static void s_fetch_go(struct dev *d)
{
    struct sim_fleet *f = d->f;
    sim_buf_reset(&d->body);
    d->body.cap = CFG_MAX;
    d->image_bytes = 0;
    d->abort_at = 0;
    d->overflow = 0;
    if (d->is_image == 1 && d->fail == F_ABORT && !d->aborted_once)
        d->abort_at = 4096 + s_rand(&f->rng) % (1u << 20); /* or 20-70% when the size is known */
    d->st = d->is_image ? ST_IMAGE : ST_FETCH;
    int rc;
    if (d->fetch_port == 0) {
        if (d->fail == F_MALFORMED)
            sim_tftp_garbage(d->ip_be, d->fetch_addr_be, f->cfg.tftp_port,
                             (unsigned)s_rand(&f->rng), 2);
        struct sim_tftp_opts o = {.local_be = d->ip_be,
                                  .server_be = d->fetch_addr_be,
                                  .port = f->cfg.tftp_port,
                                  .name = d->fetch_name,
                                  .blksize = f->cfg.blksize,
                                  .rto_ms = 1000,
                                  .retries = 5};
        rc = sim_tftp_start(&f->loop, &o, s_on_data, s_fetch_done, d, &d->tftp);
    } else {
        char ua[256];
        sim_family_user_agent(d->g->fam->id, d->g->model, d->version, d->mac, ua, sizeof ua);
        struct sim_http_opts o = {.local_be = d->ip_be,
                                  .server_be = d->fetch_addr_be,
                                  .port = d->fetch_port,
                                  .path = d->fetch_name,
                                  .user_agent = ua[0] ? ua : NULL,
                                  .timeout_ms = 10000};
        rc = sim_http_start(&f->loop, &o, s_on_data, s_fetch_done, d, &d->http);
    }
    if (rc < 0) {
        struct sim_xfer_result r = {.status = rc, .detail = "could not start"};
        s_fetch_done(d, &r); /* handled like any failed transfer: retried */
    }
}

/* "/" + name, percent-encoded but for A-Z a-z 0-9 - . _ ~ and '/' (a file
 * name from a config may hold spaces); cut at a byte boundary when it does
 * not fit, which the server then answers with 404. */
static void s_url_path(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    out[o++] = '/';
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p) != NULL) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

static void s_fetch(struct dev *d, enum step step, int is_image, const char *name)
{
    if (is_image == 1 && d->came_back_old) {
        /* its flash refuses the image: it stays on the old version and stops
         * trying, or an agent that offers it again would loop forever */
        s_no_image(d);
        return;
    }
    d->step = step;
    d->is_image = is_image;
    d->fetch_tries = 0;
    d->fetch_addr_be = d->srv_be;
    d->fetch_port = d->g->fam->http ? d->f->cfg.http_port : 0;
    snprintf(d->fetch_raw, sizeof d->fetch_raw, "%s", name);
    if (d->g->fam->http)
        s_url_path(name, d->fetch_name, sizeof d->fetch_name);
    else
        snprintf(d->fetch_name, sizeof d->fetch_name, "%s", name);
    s_fetch_go(d);
}

/* An HTTP fetch of a URL the config named. 0, or -EINVAL for a URL we will
 * not follow (not http://IPv4). */
static int s_fetch_url(struct dev *d, enum step step, const char *url)
{
    uint32_t a;
    uint16_t p;
    const char *path;
    if (sim_http_parse_url(url, &a, &p, &path) < 0)
        return -EINVAL;
    if (d->came_back_old) {
        s_no_image(d); /* as in s_fetch() */
        return 0;
    }
    d->step = step;
    d->is_image = 1;
    d->fetch_tries = 0;
    d->fetch_addr_be = a;
    d->fetch_port = p;
    snprintf(d->fetch_name, sizeof d->fetch_name, "%s", path);
    snprintf(d->fetch_raw, sizeof d->fetch_raw, "%s", path);
    s_fetch_go(d);
    return 0;
}

static void s_retry_cb(uv_timer_t *t)
{
    s_fetch_go(t->data);
}

/* ---- the end of a sequence ---- */

static void s_timer_cb_poll(uv_timer_t *t)
{
    struct dev *d = t->data;
    if (d->st == ST_IDLE)
        s_begin_config(d);
}

/* The served config named nothing new: settle, or wait and poll again. */
static void s_no_image(struct dev *d)
{
    d->configs++;
    d->configured = 1;
    d->step = S_NONE;
    if (d->fail == F_OLD_VERSION && d->came_back_old) {
        d->st = ST_DONE;
        s_settle(d, 0);
        return;
    }
    if (strcmp(d->version, d->g->expect) == 0) {
        d->st = ST_DONE;
        s_settle(d, 1);
        return;
    }
    d->st = ST_IDLE;
    uv_timer_start(&d->timer, s_timer_cb_poll, s_jitter(d->f, d->f->cfg.poll_ms), 0);
}

static void s_reboot_cb(uv_timer_t *t)
{
    struct dev *d = t->data;
    if (d->fail == F_OLD_VERSION) {
        d->came_back_old = 1; /* the new image did not take: same version as before */
    } else {
        snprintf(d->version, sizeof d->version, "%s", d->next_version);
        d->cstage = d->next_cstage;
    }
    s_dhcp_begin(d);
}

/* A whole image arrived: the device installs it and reboots. */
static void s_image_done(struct dev *d, const char *new_version, enum cstage cs)
{
    d->images++;
    sim_basename(d->fetch_raw, d->installed, sizeof d->installed);
    snprintf(d->next_version, sizeof d->next_version, "%s", new_version);
    d->next_cstage = cs;
    d->step = S_NONE;
    s_sip_close(d);
    s_unsettle(d);
    if (d->fail == F_NEVER_RETURN) {
        d->st = ST_DEAD;
        s_settle(d, 0);
        return;
    }
    d->st = ST_REBOOT;
    uv_timer_start(&d->timer, s_reboot_cb, d->f->cfg.reboot_ms, 0);
}

/* The version an image (not Cisco, not Digium: they say it) brings: one in
 * its name, else the family's expected version, else its stem. */
static void s_version_of_image(struct dev *d, const char *name, char *out, size_t cap)
{
    if (sim_version_in_name(name, out, cap))
        return;
    if (strcmp(d->g->expect, d->g->start) != 0) {
        snprintf(out, cap, "%s", d->g->expect);
        return;
    }
    snprintf(out, cap, "%s", name);
    char *dot = strchr(out, '.');
    if (dot)
        *dot = '\0';
}

/* ---- the families' sequences ---- */

static void s_begin_config(struct dev *d)
{
    char name[NAME_LEN];
    d->st = ST_FETCH;
    switch (d->g->fam->id) {
    case SIM_CISCO:
        if (d->cstage == C_OLD)
            s_fetch(d, S_C_OS79, 0, "OS79XX.TXT");
        else if (d->cstage == C_LOADER) {
            snprintf(name, sizeof name, "SEP%s.cnf.xml", d->mac_uc);
            s_fetch(d, S_C_SEP, 0, name);
        } else
            s_fetch(d, S_C_SIPDEF, 0, "SIPDefault.cnf");
        break;
    case SIM_POLYCOM:
        snprintf(name, sizeof name, "%s.cfg", d->mac_lc);
        s_fetch(d, S_P_MAC, 0, name);
        break;
    case SIM_YEALINK: {
        /* the common file is named after the hardware id, the first field of
         * the firmware version (28.72.0.1 -> y000000000028.cfg) */
        unsigned hw = (unsigned)strtoul(d->version, NULL, 10) % 100;
        snprintf(name, sizeof name, "y0000000000%02u.cfg", hw);
        s_fetch(d, S_Y_COMMON, 0, name);
        break;
    }
    case SIM_DIGIUM:
        snprintf(name, sizeof name, "%s.cfg", d->mac_lc);
        s_fetch(d, S_D_CFG, 0, name);
        break;
    default:
        break;
    }
}

static void s_cisco(struct dev *d, int found)
{
    char v[NAME_LEN], name[NAME_LEN + 16];
    const char *body = d->body.p ? d->body.p : "";
    switch (d->step) {
    case S_C_OS79: {
        /* exactly the loader's name; a trailing CR or space is kept, as the
         * phone keeps it (CSCdv19260): the agent must not serve one */
        size_t l = strcspn(body, "\n");
        if (found && l > 0 && l < sizeof d->next - 8) {
            memcpy(d->next, body, l);
            d->next[l] = '\0';
            snprintf(name, sizeof name, "%s.sbn", d->next);
            s_fetch(d, S_C_LOADER_IMG, 1, name);
        } else {
            snprintf(name, sizeof name, "SEP%s.cnf.xml", d->mac_uc);
            s_fetch(d, S_C_OLD_SEP, 0, name);
        }
        return;
    }
    case S_C_OLD_SEP: /* an old image asks, but does not act on it */
        s_no_image(d);
        return;
    case S_C_LOADER_IMG:
        if (found)
            s_image_done(d, d->next, C_LOADER);
        else
            s_no_image(d);
        return;
    case S_C_SEP:
        if (found && sim_cfg_text(body, "loadInformation", v, sizeof v) && v[0] &&
            strcmp(v, d->version) != 0) {
            snprintf(d->next, sizeof d->next, "%s", v);
            snprintf(name, sizeof name, "%s.loads", v);
            s_fetch(d, S_C_LOADS, 2, name); /* a manifest; not parsed here */
        } else {
            s_no_image(d);
        }
        return;
    case S_C_SIPDEF:
        /* (a phone whose flash refused the load reads its own SIP config,
         * as the real one does: whether the agent notices is the point) */
        if (found && !d->came_back_old && sim_cfg_kv(body, "image_version", ':', v, sizeof v) &&
            v[0] && strcmp(v, d->version) != 0) {
            snprintf(d->next, sizeof d->next, "%s", v);
            snprintf(name, sizeof name, "%s.loads", v);
            s_fetch(d, S_C_LOADS, 2, name); /* a manifest; not parsed here */
        } else {
            snprintf(name, sizeof name, "SIP%s.cnf", d->mac_uc);
            s_fetch(d, S_C_SIPMAC, 0, name);
        }
        return;
    case S_C_LOADS:
        if (found) {
            snprintf(name, sizeof name, "%s.sb2", d->next);
            s_fetch(d, S_C_SB2, 1, name);
        } else {
            s_no_image(d);
        }
        return;
    case S_C_SB2:
        if (found)
            s_image_done(d, d->next, C_SIP);
        else
            s_no_image(d);
        return;
    case S_C_SIPMAC:
    default:
        s_no_image(d);
        return;
    }
}

static void s_polycom(struct dev *d, int found)
{
    char app[NAME_LEN], files[NAME_LEN], base[NAME_LEN], v[SIM_VERSION_MAX];
    const char *body = d->body.p ? d->body.p : "";
    switch (d->step) {
    case S_P_MAC:
    case S_P_MASTER:
        if (!found) {
            if (d->step == S_P_MAC)
                s_fetch(d, S_P_MASTER, 0, "000000000000.cfg");
            else
                s_no_image(d);
            return;
        }
        if (!sim_cfg_attr(body, "APPLICATION", "APP_FILE_PATH", app, sizeof app))
            app[0] = '\0';
        if (!sim_cfg_attr(body, "APPLICATION", "CONFIG_FILES", files, sizeof files))
            files[0] = '\0';
        sim_basename(app, base, sizeof base);
        if (app[0] && strcmp(base, d->installed) != 0) {
            if (strncmp(app, "http://", 7) == 0) {
                if (s_fetch_url(d, S_P_APP, app) < 0) {
                    s_set_error(d, "APP_FILE_PATH is not an http://IPv4 URL", NULL);
                    s_no_image(d);
                }
            } else {
                s_fetch(d, S_P_APP, 1, app);
            }
            return;
        }
        if (files[0]) {
            /* the first of the list, with the phone's own MAC filled in */
            files[strcspn(files, ",")] = '\0';
            char *m = strstr(files, "[PHONE_MAC_ADDRESS]");
            if (m) {
                char tmp[NAME_LEN];
                snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(m - files), files, d->mac_lc,
                         m + strlen("[PHONE_MAC_ADDRESS]"));
                snprintf(files, sizeof files, "%s", tmp);
            }
            s_fetch(d, S_P_CFGFILE, 0, files);
            return;
        }
        s_no_image(d);
        return;
    case S_P_APP:
        if (!found) {
            s_no_image(d);
            return;
        }
        sim_basename(d->fetch_raw, base, sizeof base);
        s_version_of_image(d, base, v, sizeof v);
        s_image_done(d, v, C_SIP);
        return;
    case S_P_CFGFILE:
    default:
        s_no_image(d);
        return;
    }
}

static void s_yealink(struct dev *d, int found)
{
    char name[NAME_LEN], base[NAME_LEN], v[SIM_VERSION_MAX];
    const char *body = d->body.p ? d->body.p : "";
    switch (d->step) {
    case S_Y_COMMON:
        if (!found || !sim_cfg_kv(body, "firmware.url", '=', d->next, sizeof d->next))
            d->next[0] = '\0';
        snprintf(name, sizeof name, "%s.cfg", d->mac_lc);
        s_fetch(d, S_Y_MAC, 0, name);
        return;
    case S_Y_MAC:
        sim_basename(d->next, base, sizeof base);
        if (d->next[0] && strcmp(base, d->installed) != 0) {
            if (s_fetch_url(d, S_Y_ROM, d->next) < 0) {
                s_set_error(d, "firmware.url is not an http://IPv4 URL", NULL);
                s_no_image(d);
            }
            return;
        }
        s_no_image(d);
        return;
    case S_Y_ROM:
        if (!found) {
            s_no_image(d);
            return;
        }
        sim_basename(d->fetch_raw, base, sizeof base);
        s_version_of_image(d, base, v, sizeof v);
        s_image_done(d, v, C_SIP);
        return;
    default:
        s_no_image(d);
        return;
    }
}

static void s_digium(struct dev *d, int found)
{
    char url[NAME_LEN];
    const char *body = d->body.p ? d->body.p : "";
    switch (d->step) {
    case S_D_CFG:
        /* the phone loads the firmware when the version string differs */
        if (found &&
            sim_cfg_attr(body, "firmware", "version", d->next_version, sizeof d->next_version) &&
            d->next_version[0] && strcmp(d->next_version, d->version) != 0 &&
            sim_cfg_attr(body, "firmware", "url", url, sizeof url) && url[0]) {
            if (s_fetch_url(d, S_D_EFF, url) < 0) {
                s_set_error(d, "firmware url is not an http://IPv4 URL", NULL);
                s_no_image(d);
            }
            return;
        }
        s_no_image(d);
        return;
    case S_D_EFF:
        if (found) {
            char v[SIM_VERSION_MAX];
            snprintf(v, sizeof v, "%s", d->next_version);
            s_image_done(d, v, C_SIP);
        } else {
            s_no_image(d);
        }
        return;
    default:
        s_no_image(d);
        return;
    }
}

static void s_fetch_done(void *arg, const struct sim_xfer_result *r)
{
    struct dev *d = arg;
    d->tftp = NULL;
    d->http = NULL;
    d->retries += r->retries;
    s_log(d, "fetch=%s status=%d code=%d bytes=%llu retransmits=%u%s%s", d->fetch_name, r->status,
          r->code, (unsigned long long)r->bytes, r->retries, r->detail ? " detail=" : "",
          r->detail ? r->detail : "");
    if (d->f->stopping)
        return;
    int st = r->status;
    if (st == 0 && d->is_image != 1)
        d->files++;
    if (st == -ECANCELED && d->overflow) {
        s_set_error(d, "a config over 64 KiB", NULL);
        s_no_image(d); /* a device would not take it either */
        return;
    }
    /* an injected abort is retried like a broken transfer (once aborted, a
     * device does not abort again) */
    if (st < 0 && st != -ENOENT && st != -EACCES) {
        s_set_error(d, d->fetch_name, r);
        if (d->fetch_tries < FETCH_RETRIES) {
            d->fetch_tries++;
            d->retries++;
            uv_timer_start(&d->timer, s_retry_cb, s_jitter(d->f, 1000u << d->fetch_tries), 0);
            return;
        }
        d->st = ST_IDLE; /* the whole sequence again at the next poll */
        uv_timer_start(&d->timer, s_timer_cb_poll, s_jitter(d->f, d->f->cfg.poll_ms), 0);
        return;
    }
    int found = st == 0;
    switch (d->g->fam->id) {
    case SIM_CISCO:
        s_cisco(d, found);
        break;
    case SIM_POLYCOM:
        s_polycom(d, found);
        break;
    case SIM_YEALINK:
        s_yealink(d, found);
        break;
    case SIM_DIGIUM:
        s_digium(d, found);
        break;
    default:
        break;
    }
}

/* NOTIFY check-sync: an idle or settled device fetches its config now. */
static void s_poll_now(struct dev *d)
{
    if (d->st != ST_IDLE && d->st != ST_DONE)
        return;
    uv_timer_stop(&d->timer);
    s_begin_config(d);
}

/* ---- DHCP ---- */

static void s_dhcp_send(struct dev *d)
{
    struct sim_fleet *f = d->f;
    uint8_t vendor[256];
    size_t vl = sim_family_vendor(d->g->fam->id, d->g->model, d->version, vendor, sizeof vendor);
    struct sim_dhcp_req rq = {
        .type = d->requesting ? SIM_DHCP_REQUEST : SIM_DHCP_DISCOVER,
        .xid = d->xid,
        .secs = (uint16_t)(d->dhcp_tries * 2),
        .vendor = vendor,
        .vendor_len = vl,
        .requested_be = d->requesting ? d->offer_be : 0,
        .server_id_be = d->requesting ? d->server_id_be : 0,
    };
    memcpy(rq.mac, d->mac, 6);
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(67), .sin_addr.s_addr = htonl(INADDR_BROADCAST)};
    if (d->fail == F_MALFORMED && !d->requesting) {
        for (unsigned k = 0; k < 2; k++) {
            size_t gl = sim_dhcp_garbage(f->dbuf, sizeof f->dbuf, (unsigned)s_rand(&f->rng), d->mac,
                                         d->xid ^ 0x5a5a5a5au);
            uv_buf_t gb = uv_buf_init((char *)f->dbuf, (unsigned)gl);
            (void)uv_udp_try_send(&f->dhcp, &gb, 1, (const struct sockaddr *)&to);
        }
    }
    size_t n = sim_dhcp_build(&rq, f->dbuf, sizeof f->dbuf);
    if (n == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)f->dbuf, (unsigned)n);
    (void)uv_udp_try_send(&f->dhcp, &b, 1, (const struct sockaddr *)&to); /* a loss is a timeout */
}

static void s_dhcp_timer(uv_timer_t *t)
{
    struct dev *d = t->data;
    d->dhcp_tries++;
    d->retries++;
    if (d->requesting && d->dhcp_tries >= 4) {
        d->requesting = 0; /* no ACK to our REQUEST: start over */
        d->dhcp_tries = 0;
    }
    d->dhcp_rto = d->dhcp_rto * 2 > DHCP_RTO_MAX_MS ? DHCP_RTO_MAX_MS : d->dhcp_rto * 2;
    s_dhcp_send(d);
    uv_timer_start(&d->timer, s_dhcp_timer, s_jitter(d->f, d->dhcp_rto), 0);
}

static void s_dhcp_begin(struct dev *d)
{
    struct sim_fleet *f = d->f;
    d->st = ST_DHCP;
    d->requesting = 0;
    d->dhcp_tries = 0;
    d->dhcp_rto = DHCP_RTO_MS;
    d->xid = (uint32_t)(s_rand(&f->rng) & 0xfff00000u) | d->idx;
    s_dhcp_send(d);
    uv_timer_start(&d->timer, s_dhcp_timer, s_jitter(f, d->dhcp_rto), 0);
}

static unsigned s_prefix(uint32_t mask_be)
{
    uint32_t m = ntohl(mask_be);
    unsigned p = 0;
    while (p < 32 && (m & (0x80000000u >> p)))
        p++;
    return p;
}

static void s_dhcp_reply(struct sim_fleet *f, const struct sim_dhcp_reply *r)
{
    unsigned idx = r->xid & 0xfffffu;
    if (idx >= f->n)
        return;
    struct dev *d = &f->devs[idx];
    if (d->st != ST_DHCP || d->xid != r->xid || memcmp(d->mac, r->chaddr, 6) != 0)
        return;
    if (!d->requesting && r->type == SIM_DHCP_OFFER && r->yiaddr_be != 0) {
        d->offer_be = r->yiaddr_be;
        d->server_id_be = r->server_id_be;
        d->requesting = 1;
        d->dhcp_tries = 0;
        d->dhcp_rto = DHCP_RTO_MS;
        s_dhcp_send(d);
        uv_timer_start(&d->timer, s_dhcp_timer, s_jitter(f, d->dhcp_rto), 0);
        return;
    }
    if (d->requesting && r->type == SIM_DHCP_NAK) {
        d->requesting = 0;
        d->retries++;
        uv_timer_start(&d->timer, s_dhcp_timer, 1000, 0);
        return;
    }
    if (!d->requesting || r->type != SIM_DHCP_ACK || r->yiaddr_be == 0)
        return;
    uv_timer_stop(&d->timer);
    d->ip_be = r->yiaddr_be;
    s_log(d, "lease=%s tries=%u", inet_ntoa((struct in_addr){r->yiaddr_be}), d->dhcp_tries);
    d->prefix = r->mask_be ? s_prefix(r->mask_be) : 24;
    if (f->cfg.server_be)
        d->srv_be = f->cfg.server_be;
    else if (d->g->fam->id == SIM_CISCO && r->tftp150_be)
        d->srv_be = r->tftp150_be;
    else {
        struct in_addr a;
        d->srv_be = inet_pton(AF_INET, r->opt66, &a) == 1 ? a.s_addr : r->server_id_be;
    }
    d->leases++;
    d->leased_once = 1;
    int rc = sim_netif_add(f->netif, d->ip_be, d->prefix ? d->prefix : 32);
    if (rc < 0) {
        s_set_error(d, "could not add the leased address to the interface", NULL);
        d->st = ST_IDLE; /* nothing can be fetched from an address we do not have */
        uv_timer_start(&d->timer, s_boot_cb, f->cfg.poll_ms, 0);
        return;
    }
    s_sip_open(d);
    s_begin_config(d);
}

static void s_dhcp_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    (void)sugg;
    struct sim_fleet *f = h->data;
    static_assert(sizeof f->dbuf >= SIM_DHCP_MAX, "dhcp buffer");
    *b = uv_buf_init((char *)f->dbuf, sizeof f->dbuf);
}

static void s_dhcp_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                        unsigned flags)
{
    (void)from;
    struct sim_fleet *f = u->data;
    if (n <= 0 || (flags & UV_UDP_PARTIAL) || f->stopping)
        return;
    struct sim_dhcp_reply r;
    if (sim_dhcp_parse((const uint8_t *)b->base, (size_t)n, &r) == 0)
        s_dhcp_reply(f, &r);
}

static int s_dhcp_open(struct sim_fleet *f, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) {
        int e = -errno;
        s_err(err, errlen, "socket: %s", strerror(errno));
        return e;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    /* This one socket stands for every device's own NIC: the default
     * 208 KiB holds ~90 broadcast replies, so a power-on burst of hundreds
     * of OFFERs and ACKs would be dropped here, in the simulator, and show
     * as retransmissions no real phone would need. 8 MiB (FORCE as root,
     * else up to rmem_max/wmem_max). */
    int buf = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, f->cfg.iface, (socklen_t)strlen(f->cfg.iface)) <
        0) {
        int e = -errno;
        s_err(err, errlen, "--iface %s: SO_BINDTODEVICE: %s", f->cfg.iface, strerror(errno));
        close(fd);
        return e;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(68)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        s_err(err, errlen, "bind to port 68: %s", strerror(errno));
        close(fd);
        return e;
    }
    int rc = uv_udp_init(&f->loop, &f->dhcp);
    if (rc < 0) {
        close(fd);
        s_err(err, errlen, "uv_udp_init: %s", uv_strerror(rc));
        return rc;
    }
    f->dhcp.data = f;
    f->dhcp_open = 1;
    rc = uv_udp_open(&f->dhcp, fd);
    if (rc < 0) {
        close(fd);
        s_err(err, errlen, "uv_udp_open: %s", uv_strerror(rc));
        return rc;
    }
    rc = uv_udp_recv_start(&f->dhcp, s_dhcp_alloc, s_dhcp_recv);
    if (rc < 0)
        s_err(err, errlen, "uv_udp_recv_start: %s", uv_strerror(rc));
    return rc;
}

/* ---- run, stop, progress ---- */

static void s_stop(struct sim_fleet *f)
{
    if (f->stopping)
        return;
    f->stopping = 1;
    f->t_end = uv_now(&f->loop);
    for (unsigned i = 0; i < f->n; i++) {
        struct dev *d = &f->devs[i];
        sim_tftp_cancel(&d->tftp);
        sim_http_cancel(&d->http);
        s_sip_close(d);
        uv_close((uv_handle_t *)&d->timer, NULL);
    }
    if (f->dhcp_open)
        uv_close((uv_handle_t *)&f->dhcp, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_close((uv_handle_t *)&f->sigint, NULL);
    uv_close((uv_handle_t *)&f->sigterm, NULL);
}

static void s_on_signal(uv_signal_t *s, int signum)
{
    struct sim_fleet *f = s->data;
    (void)signum;
    f->interrupted = 1;
    s_stop(f);
}

static void s_deadline(uv_timer_t *t)
{
    struct sim_fleet *f = t->data;
    if (f->settled < f->n)
        f->timed_out = 1;
    s_stop(f);
}

static void s_tick(uv_timer_t *t)
{
    struct sim_fleet *f = t->data;
    if (f->settled == f->n) {
        s_stop(f);
        return;
    }
    if (!f->cfg.progress)
        return;
    unsigned cnt[ST_N] = {0};
    uint64_t bytes = 0;
    for (unsigned i = 0; i < f->n; i++) {
        cnt[f->devs[i].st]++;
        bytes += f->devs[i].bytes;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "firmfleet-sim: %3us",
                     (unsigned)((uv_now(&f->loop) - f->t0) / 1000));
    for (int s = 0; s < ST_N && n > 0 && (size_t)n < sizeof line; s++)
        if (cnt[s])
            n += snprintf(line + n, sizeof line - (size_t)n, " %s=%u", s_st_name[s], cnt[s]);
    if (n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, " settled=%u/%u fetched=%.1fMB", f->settled,
                 f->n, (double)bytes / 1e6);
    fprintf(stderr, "%s\n", line);
}

static void s_boot_cb(uv_timer_t *t)
{
    s_dhcp_begin(t->data);
}

int sim_fleet_run(sim_fleet_t *f, char *err, size_t errlen)
{
    int rc = uv_loop_init(&f->loop);
    if (rc < 0) {
        s_err(err, errlen, "uv_loop_init: %s", uv_strerror(rc));
        return rc;
    }
    f->loop_init = 1;
    rc = sim_netif_new(f->cfg.iface, &f->netif);
    if (rc < 0) {
        s_err(err, errlen, "--iface %s: %s", f->cfg.iface, strerror(-rc));
        return rc;
    }
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_init(&f->loop, &f->deadline);
    uv_signal_init(&f->loop, &f->sigint);
    uv_signal_init(&f->loop, &f->sigterm);
    f->tick.data = f->deadline.data = f->sigint.data = f->sigterm.data = f;
    uv_signal_start(&f->sigint, s_on_signal, SIGINT);
    uv_signal_start(&f->sigterm, s_on_signal, SIGTERM);
    for (unsigned i = 0; i < f->n; i++) {
        uv_timer_init(&f->loop, &f->devs[i].timer);
        f->devs[i].timer.data = &f->devs[i];
    }
    rc = s_dhcp_open(f, err, errlen);
    if (rc < 0) {
        s_stop(f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        return rc;
    }
    f->t0 = uv_now(&f->loop);
    /* the devices power on spread over the ramp, in index order */
    for (unsigned i = 0; i < f->n; i++)
        uv_timer_start(&f->devs[i].timer, s_boot_cb,
                       f->n > 1 ? (uint64_t)f->cfg.ramp_ms * i / (f->n - 1) : 0, 0);
    uv_timer_start(&f->tick, s_tick, 1000, 1000);
    uv_timer_start(&f->deadline, s_deadline, (uint64_t)f->cfg.timeout_s * 1000, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (!f->t_end)
        f->t_end = uv_now(&f->loop);
    unsigned bad = 0;
    for (unsigned i = 0; i < f->n; i++) {
        struct dev *d = &f->devs[i];
        if (s_injected(d))
            continue; /* expected to fail; reported on their own */
        if (!d->settled || !d->ok_settled)
            bad++;
    }
    return bad || f->interrupted ? 1 : 0;
}

/* ---- construction ---- */

int sim_fleet_new(const struct sim_config *cfg, sim_fleet_t **out, char *err, size_t errlen)
{
    unsigned total = 0;
    for (unsigned g = 0; g < cfg->n_groups; g++)
        total += cfg->groups[g].count;
    if (total == 0) {
        s_err(err, errlen, "no devices: give --devices FAMILY:COUNT");
        return -EINVAL;
    }
    unsigned free_bits = 8 * (6 - cfg->prefix_len);
    if (total >= (1u << 20) || (free_bits < 32 && total >= (1ull << free_bits))) {
        s_err(err, errlen, "%u devices do not fit behind a %u-byte --mac-prefix", total,
              cfg->prefix_len);
        return -EINVAL;
    }
    struct sim_fleet *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    f->cfg = *cfg;
    f->n = total;
    f->rng = cfg->seed ^ 0x5eed5eed5eedull;
    f->devs = calloc(total, sizeof *f->devs);
    if (f->devs == NULL) {
        free(f);
        return -ENOMEM;
    }
    unsigned i = 0;
    for (unsigned g = 0; g < cfg->n_groups; g++) {
        const struct sim_group *gr = &f->cfg.groups[g];
        unsigned first = i;
        for (unsigned k = 0; k < gr->count; k++, i++) {
            struct dev *d = &f->devs[i];
            d->f = f;
            d->idx = i;
            d->g = gr;
            memcpy(d->mac, cfg->mac_prefix, cfg->prefix_len);
            uint64_t num = (uint64_t)i + 1;
            for (int b = 5; b >= (int)cfg->prefix_len; b--, num >>= 8)
                d->mac[b] = (uint8_t)num;
            snprintf(d->mac_lc, sizeof d->mac_lc, "%02x%02x%02x%02x%02x%02x", d->mac[0], d->mac[1],
                     d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
            snprintf(d->mac_uc, sizeof d->mac_uc, "%02X%02X%02X%02X%02X%02X", d->mac[0], d->mac[1],
                     d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
            snprintf(d->mac_str, sizeof d->mac_str, "%02x:%02x:%02x:%02x:%02x:%02x", d->mac[0],
                     d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
            snprintf(d->version, sizeof d->version, "%s", gr->start);
            d->cstage = strcmp(gr->start, "old-image") == 0  ? C_OLD
                        : strncmp(gr->start, "P003", 4) == 0 ? C_LOADER
                                                             : C_SIP;
        }
        /* injected failures: exactly round(count * P / 100) devices of the
         * family for each kind, drawn from the seed, one kind per device */
        const unsigned pct[5] = {0, cfg->fail_never_return, cfg->fail_old_version, cfg->fail_abort,
                                 cfg->fail_malformed};
        uint64_t rs = cfg->seed * 1000003u + g;
        for (int kind = F_NEVER_RETURN; kind <= F_MALFORMED; kind++) {
            unsigned want = (gr->count * pct[kind] + 50) / 100, got = 0, guard = 0;
            while (got < want && guard++ < gr->count * 64) {
                struct dev *d = &f->devs[first + s_rand(&rs) % gr->count];
                if (d->fail == F_NONE) {
                    d->fail = (enum fail)kind;
                    got++;
                }
            }
        }
    }
    *out = f;
    return 0;
}

void sim_fleet_list(const sim_fleet_t *f, FILE *out)
{
    for (unsigned i = 0; i < f->n; i++) {
        const struct dev *d = &f->devs[i];
        fprintf(out, "%s,%s,%s,%s,%s\n", d->mac_str, d->g->fam->name, d->g->model, d->g->start,
                s_fail_name[d->fail]);
    }
}

static void s_walk_closed(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void sim_fleet_destroy(sim_fleet_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    struct sim_fleet *f = *self_p;
    *self_p = NULL;
    if (f->loop_init) {
        uv_walk(&f->loop, s_walk_closed, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    sim_netif_destroy(&f->netif);
    for (unsigned i = 0; i < f->n; i++)
        sim_buf_reset(&f->devs[i].body);
    free(f->devs);
    free(f);
}

/* ---- summary ---- */

struct famsum {
    unsigned devices, ok, upgraded, held, failed, injected, leases, configs, files, images, retries,
        errors;
    uint64_t bytes;
};

static const char *s_reason(const struct dev *d, char *buf, size_t n)
{
    if (s_injected(d))
        snprintf(buf, n, "injected %s", s_fail_name[d->fail]);
    else if (!d->leased_once)
        snprintf(buf, n, "no lease");
    else if (!d->configured)
        snprintf(buf, n, "no config fetched%s%s", d->last_error[0] ? ": " : "", d->last_error);
    else if (strcmp(d->version, d->g->expect) != 0)
        snprintf(buf, n, "on %s, expected %s (state %s)", d->version, d->g->expect,
                 s_st_name[d->st]);
    else
        snprintf(buf, n, "not settled (state %s)", s_st_name[d->st]);
    return buf;
}

static void s_sum(const struct sim_fleet *f, unsigned g, struct famsum *s)
{
    memset(s, 0, sizeof *s);
    for (unsigned i = 0; i < f->n; i++) {
        const struct dev *d = &f->devs[i];
        if (d->g != &f->cfg.groups[g])
            continue;
        int injected = s_injected(d);
        s->devices++;
        s->leases += d->leases;
        s->configs += d->configs;
        s->files += d->files;
        s->errors += d->errors;
        s->images += d->images;
        s->retries += d->retries;
        s->bytes += d->bytes;
        if (injected)
            s->injected++;
        else if (d->settled && d->ok_settled)
            s->ok++;
        else if (!injected)
            s->failed++;
        if (strcmp(d->version, d->g->start) != 0 && d->st != ST_DEAD)
            s->upgraded++;
        else if (d->configured && strcmp(d->version, d->g->start) == 0 && !injected)
            s->held++;
    }
}

void sim_fleet_summary(const sim_fleet_t *f, FILE *out, int json)
{
    double secs = (double)(f->t_end - f->t0) / 1000.0;
    unsigned bad = 0;
    char why[160];
    struct famsum s[SIM_FAM_N];
    for (unsigned g = 0; g < f->cfg.n_groups; g++) {
        s_sum(f, g, &s[g]);
        bad += s[g].failed;
    }
    if (json) {
        json_t *root = json_object(), *fams = json_array(), *fails = json_array();
        for (unsigned g = 0; g < f->cfg.n_groups; g++) {
            const struct sim_group *gr = &f->cfg.groups[g];
            json_t *o = json_object();
            json_object_set_new(o, "family", json_string(gr->fam->name));
            json_object_set_new(o, "model", json_string(gr->model));
            json_object_set_new(o, "start_version", json_string(gr->start));
            json_object_set_new(o, "expect_version", json_string(gr->expect));
            const struct {
                const char *k;
                uint64_t v;
            } kv[] = {{"devices", s[g].devices},   {"ok", s[g].ok},
                      {"upgraded", s[g].upgraded}, {"held", s[g].held},
                      {"failed", s[g].failed},     {"injected_failed", s[g].injected},
                      {"leases", s[g].leases},     {"configs", s[g].configs},
                      {"files", s[g].files},       {"images", s[g].images},
                      {"errors", s[g].errors},     {"retries", s[g].retries},
                      {"bytes", s[g].bytes}};
            for (size_t k = 0; k < sizeof kv / sizeof kv[0]; k++)
                json_object_set_new(o, kv[k].k, json_integer((json_int_t)kv[k].v));
            json_array_append_new(fams, o);
        }
        for (unsigned i = 0; i < f->n; i++) {
            const struct dev *d = &f->devs[i];
            int injected = s_injected(d);
            if (!injected && d->settled && d->ok_settled)
                continue;
            json_t *o = json_object();
            json_object_set_new(o, "mac", json_string(d->mac_str));
            json_object_set_new(o, "family", json_string(d->g->fam->name));
            json_object_set_new(o, "version", json_string(d->version));
            json_object_set_new(o, "state", json_string(s_st_name[d->st]));
            json_object_set_new(o, "injected", json_string(s_fail_name[d->fail]));
            json_object_set_new(o, "expected", json_boolean(injected));
            json_object_set_new(o, "reason", json_string(s_reason(d, why, sizeof why)));
            json_array_append_new(fails, o);
        }
        json_object_set_new(root, "ok", json_boolean(bad == 0));
        json_object_set_new(root, "timed_out", json_boolean(f->timed_out));
        json_object_set_new(root, "interrupted", json_boolean(f->interrupted));
        json_object_set_new(root, "seconds", json_real(secs));
        json_object_set_new(root, "devices", json_integer(f->n));
        json_object_set_new(root, "seed", json_integer((json_int_t)f->cfg.seed));
        json_object_set_new(root, "families", fams);
        json_object_set_new(root, "not_ok", fails);
        char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt)
            fprintf(out, "%s\n", txt);
        free(txt);
        json_decref(root);
        return;
    }
    fprintf(out, "firmfleet-sim: %u devices in %.1f s%s\n", f->n, secs,
            f->interrupted ? " (interrupted)"
            : f->timed_out ? " (timed out)"
                           : "");
    fprintf(out, "%-12s %7s %5s %8s %5s %6s %8s %6s %7s %6s %7s %10s\n", "FAMILY", "DEVICES", "OK",
            "UPGRADED", "HELD", "FAILED", "INJECTED", "LEASES", "CONFIGS", "IMAGES", "RETRIES",
            "BYTES");
    for (unsigned g = 0; g < f->cfg.n_groups; g++)
        fprintf(out, "%-12s %7u %5u %8u %5u %6u %8u %6u %7u %6u %7u %10llu\n",
                f->cfg.groups[g].fam->name, s[g].devices, s[g].ok, s[g].upgraded, s[g].held,
                s[g].failed, s[g].injected, s[g].leases, s[g].configs, s[g].images, s[g].retries,
                (unsigned long long)s[g].bytes);
    unsigned shown = 0, more = 0;
    for (unsigned i = 0; i < f->n; i++) {
        const struct dev *d = &f->devs[i];
        int injected = s_injected(d);
        if (!injected && d->settled && d->ok_settled)
            continue;
        if (shown++ >= 20) {
            more++;
            continue;
        }
        fprintf(out, "  %s %-10s %s%s\n", d->mac_str, d->g->fam->name,
                injected ? "(expected) " : "", s_reason(d, why, sizeof why));
    }
    if (more)
        fprintf(out, "  ... and %u more\n", more);
    fprintf(out, "firmfleet-sim: %s\n",
            bad == 0 ? "every device ended where expected"
                     : "some devices did not end where expected");
}
