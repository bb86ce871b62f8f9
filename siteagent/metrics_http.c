/* metrics_http.c: the agent's /metrics (see metrics_http.h).
 *
 * A connection: READ (head, at most METRICS_REQ_MAX) -> WRITE (one buffer,
 * built at once) -> DRAIN (shut down our side, read and drop until the client
 * closes, so that it gets the whole answer rather than a reset) -> closed.
 * Its timer closes it at the deadline in any state. Handles: the conn's
 * uv_tcp_t and uv_timer_t, freed when both close callbacks ran; the
 * service struct is freed when the listener and every connection are gone.
 */
#include "metrics_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dhcpd.h"
#include "httpd.h"
#include "journal.h"
#include "log.h"
#include "provision.h"
#include "sipnotify.h"
#include "tftpd.h"
#include "uplink.h"

#define DRAIN_MS 1000

struct mhttp;

enum cstate { C_READ, C_WRITE, C_DRAIN };

struct mconn {
    struct mhttp *h;
    struct mconn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles; /* open: tcp, timer */
    int closing;
    enum cstate st;
    size_t len;
    char req[METRICS_REQ_MAX];
    char junk[512]; /* what arrives after the head: read and dropped */
    uv_write_t wr;
    uv_shutdown_t sh;
    char *out;
};

struct mhttp {
    struct agent *a;
    uv_tcp_t lis;
    int lis_open;
    int pending; /* a connection waits in the backlog (all slots busy) */
    int stopping;
    struct mconn *conns;
    size_t n_conns;
    uint64_t responses[6]; /* by status class */
    uint64_t timeouts;
};

static void s_accept(struct mhttp *h);

static void s_maybe_free(struct mhttp *h)
{
    if (h->stopping && !h->lis_open && h->conns == NULL)
        free(h);
}

static void s_conn_closed(uv_handle_t *hd)
{
    struct mconn *c = hd->data;
    if (--c->handles > 0)
        return;
    struct mhttp *h = c->h;
    for (struct mconn **pp = &h->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    h->n_conns--;
    free(c->out);
    free(c);
    if (h->pending && !h->stopping) {
        h->pending = 0;
        s_accept(h);
    }
    s_maybe_free(h);
}

static void s_conn_close(struct mconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, s_conn_closed);
    uv_close((uv_handle_t *)&c->timer, s_conn_closed);
}

static void s_on_timer(uv_timer_t *t)
{
    struct mconn *c = t->data;
    if (c->st != C_DRAIN)
        c->h->timeouts++;
    s_conn_close(c);
}

static void s_on_shutdown(uv_shutdown_t *req, int status)
{
    struct mconn *c = req->data;
    if (status < 0)
        s_conn_close(c);
}

static void s_on_write(uv_write_t *req, int status)
{
    struct mconn *c = req->data;
    free(c->out);
    c->out = NULL;
    if (status < 0 || c->closing) {
        s_conn_close(c);
        return;
    }
    c->st = C_DRAIN;
    uv_timer_start(&c->timer, s_on_timer, DRAIN_MS, 0);
    c->sh.data = c;
    if (uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, s_on_shutdown) < 0)
        s_conn_close(c);
}

static int s_collect(void *arg, metrics_t *t)
{
    return mhttp_collect(arg, t);
}

static void s_answer(struct mconn *c, int status, int head_only)
{
    size_t len = 0;
    status = metrics_response(status, head_only, s_collect, c->h->a, &c->out, &len);
    if (status < 0) {
        s_conn_close(c);
        return;
    }
    c->h->responses[status / 100 < 6 ? status / 100 : 0]++;
    c->st = C_WRITE;
    uv_buf_t b = uv_buf_init(c->out, (unsigned)len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, s_on_write) < 0) {
        free(c->out);
        c->out = NULL;
        s_conn_close(c);
    }
}

static void s_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mconn *c = hd->data;
    if (c->st == C_READ && c->len < sizeof c->req)
        *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - c->len));
    else
        *buf = uv_buf_init(c->junk, sizeof c->junk);
}

static void s_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct mconn *c = s->data;
    if (n < 0) {
        if (c->st == C_WRITE && n == UV_EOF)
            uv_read_stop(s); /* half-closed: let the answer go out */
        else
            s_conn_close(c);
        return;
    }
    if (n == 0 || c->st != C_READ)
        return;
    c->len += (size_t)n;
    int head_only = 0;
    int status = metrics_req_check(c->req, c->len, &head_only);
    if (status != 0)
        s_answer(c, status, head_only);
}

static void s_accept(struct mhttp *h)
{
    struct mconn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->h = h;
    uv_tcp_init(&h->a->loop, &c->tcp);
    uv_timer_init(&h->a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = h->conns;
    h->conns = c;
    h->n_conns++;
    if (uv_accept((uv_stream_t *)&h->lis, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, s_alloc, s_on_read) < 0) {
        s_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, s_on_timer, METRICS_CONN_TIMEOUT_MS, 0);
}

static void s_on_connection(uv_stream_t *lis, int status)
{
    struct mhttp *h = lis->data;
    if (status < 0) {
        log_warn("metrics.accept", "error=\"%s\"", uv_strerror(status));
        return;
    }
    if (h->stopping)
        return;
    /* not accepting leaves it in the backlog; libuv stops reading the
     * listener until uv_accept, which s_conn_closed calls */
    if (h->n_conns >= METRICS_MAX_CONNS)
        h->pending = 1;
    else
        s_accept(h);
}

static void s_lis_closed(uv_handle_t *hd)
{
    struct mhttp *h = hd->data;
    h->lis_open = 0;
    s_maybe_free(h);
}

static void s_stop(void *self)
{
    struct mhttp *h = self;
    if (h->stopping)
        return;
    h->stopping = 1;
    if (h->lis_open)
        uv_close((uv_handle_t *)&h->lis, s_lis_closed);
    for (struct mconn *c = h->conns; c; c = c->next)
        s_conn_close(c);
    s_maybe_free(h);
}

int mhttp_start(struct agent *a, const char *listen_addr)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    if (metrics_parse_listen(listen_addr, &sa, &salen) < 0) {
        log_error("metrics.listen", "addr=%s reason=\"not ADDR:PORT\"", listen_addr);
        return -EINVAL;
    }
    struct mhttp *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    h->a = a;
    uv_tcp_init(&a->loop, &h->lis);
    h->lis.data = h;
    h->lis_open = 1;
    int rc = uv_tcp_bind(&h->lis, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->lis, 16, s_on_connection);
    struct agent_service svc = {.name = "metrics", .self = h, .stop = s_stop};
    if (rc == 0)
        rc = agent_add_service(a, &svc);
    if (rc < 0) {
        log_error("metrics.listen", "addr=%s error=\"%s\"", listen_addr,
                  rc == -ENOSPC ? "too many services" : uv_strerror(rc));
        s_stop(h);
        return rc;
    }
    log_info("metrics.listen", "addr=%s", listen_addr);
    return 0;
}

/* ---- collection ---- */

static struct mhttp *s_self(struct agent *a)
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].stop == s_stop)
            return a->svc[i].self;
    return NULL;
}

static void s_labelled(metrics_t *m, const char *name, enum metrics_type type, const char *help,
                       const char *label, const char *const *values, const uint64_t *v, size_t n)
{
    metrics_family(m, name, type, help);
    for (size_t i = 0; i < n; i++) {
        struct metrics_label l = {label, values[i]};
        metrics_sample_u64(m, name, &l, 1, v[i]);
    }
}

struct img_sum {
    uint64_t n[3], bytes[3];
};

static int s_img_add(void *arg, const struct journal_image *img)
{
    struct img_sum *s = arg;
    unsigned k = (unsigned)img->state < 3 ? (unsigned)img->state : 2;
    s->n[k]++;
    s->bytes[k] += img->state == JOURNAL_IMG_CACHED ? img->size : img->verified_offset;
    return 0;
}

static void s_dhcp(metrics_t *m, const struct dhcpd_stats *d)
{
    static const char *const rq[] = {"discover", "request", "decline", "release", "inform"};
    uint64_t rv[] = {d->discover, d->request, d->decline, d->release, d->inform};
    s_labelled(m, "firmfleet_dhcp_requests_total", METRICS_COUNTER,
               "Valid DHCP client messages received, by type.", "type", rq, rv, 5);
    static const char *const rp[] = {"offer", "ack", "nak"};
    uint64_t pv[] = {d->offers, d->acks, d->naks};
    s_labelled(m, "firmfleet_dhcp_replies_total", METRICS_COUNTER, "DHCP replies built, by type.",
               "type", rp, pv, 3);
    metrics_counter(m, "firmfleet_dhcp_received_total", "DHCP datagrams received.", d->rx);
    metrics_counter(m, "firmfleet_dhcp_bad_total", "DHCP datagrams that did not parse.", d->bad);
    metrics_counter(m, "firmfleet_dhcp_ignored_total",
                    "DHCP datagrams ignored (not a client request this server answers).",
                    d->ignored);
    metrics_counter(m, "firmfleet_dhcp_sent_total", "DHCP replies sent.", d->sent);
    metrics_counter(m, "firmfleet_dhcp_dropped_total",
                    "DHCP replies dropped (send failure, full queue, failed commit).", d->dropped);
}

static void s_tftp(metrics_t *m, const struct tftpd_stats *t)
{
    static const char *const res[] = {"started", "done", "failed"};
    uint64_t v[] = {t->started, t->done, t->failed};
    s_labelled(m, "firmfleet_tftp_transfers_total", METRICS_COUNTER,
               "TFTP transfers begun, sent whole, and given up.", "result", res, v, 3);
    metrics_gauge(m, "firmfleet_tftp_transfers_active", "TFTP transfers in progress.",
                  (double)t->active);
    metrics_counter(m, "firmfleet_tftp_bytes_total",
                    "Bytes acknowledged by TFTP clients (finished and failed transfers).",
                    t->bytes);
}

static void s_http(metrics_t *m, const struct httpd_stats *s)
{
    static const char *const cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    uint64_t v[] = {s->status[1], s->status[2], s->status[3], s->status[4], s->status[5]};
    s_labelled(m, "firmfleet_http_requests_total", METRICS_COUNTER,
               "HTTP requests answered, by status class (1xx: 1xx or other).", "code", cls, v, 5);
    metrics_counter(m, "firmfleet_http_connections_total", "HTTP connections accepted.", s->conns);
    metrics_counter(m, "firmfleet_http_rejected_total",
                    "HTTP connections refused (503 or closed at once): too many.", s->rejected);
    metrics_counter(m, "firmfleet_http_timeouts_total", "HTTP connections closed by a timeout.",
                    s->timeouts);
    metrics_counter(m, "firmfleet_http_bytes_total", "HTTP bytes sent, heads and bodies.",
                    s->bytes_out);
    metrics_counter(m, "firmfleet_http_uploads_total", "HTTP PUT backups stored.", s->uploads);
    metrics_counter(m, "firmfleet_http_upload_bytes_total", "HTTP PUT bytes stored.",
                    s->upload_bytes);
}

int mhttp_collect(struct agent *a, metrics_t *m)
{
    struct metrics_label bl[] = {
        {"version", AGENT_VERSION}, {"agent", a->cred.agent}, {"site", a->cred.site}};
    metrics_family(m, "firmfleet_agent_build_info", METRICS_GAUGE,
                   "The agent's version, name and site; always 1.");
    metrics_sample(m, "firmfleet_agent_build_info", bl, 3, 1);
    metrics_gauge(m, "firmfleet_agent_uplink_online",
                  "1 while the link to the controller is up (Welcome received).",
                  a->up != NULL && uplink_online(a->up) ? 1 : 0);
    if (a->jr != NULL) {
        uint64_t seq = journal_committed_seq(a->jr), acked = journal_acked(a->jr);
        metrics_counter(m, "firmfleet_agent_events_journaled_total",
                        "Events committed to the agent's journal.", seq);
        metrics_gauge(m, "firmfleet_agent_event_backlog",
                      "Events journaled and not yet acknowledged by the controller.",
                      (double)(seq > acked ? seq - acked : 0));
        struct img_sum is = {{0}, {0}};
        if (journal_image_each(a->jr, s_img_add, &is) >= 0) {
            static const char *const st[] = {"partial", "cached", "corrupt"};
            s_labelled(m, "firmfleet_image_cache_images", METRICS_GAUGE,
                       "Images in the agent's cache index, by state.", "state", st, is.n, 3);
            s_labelled(m, "firmfleet_image_cache_bytes", METRICS_GAUGE,
                       "Bytes of the agent's cached images (partial: verified prefix).", "state",
                       st, is.bytes, 3);
        }
    }
    struct dhcpd_stats ds;
    struct tftpd_stats ts;
    struct httpd_stats hs;
    int dhcp = dhcpd_get_stats(a, &ds) == 0, tftp = tftpd_get_stats(a, &ts) == 0,
        http = httpd_get_stats(a, &hs) == 0;
    static const char *const svcs[] = {"dhcp", "tftp", "http"};
    uint64_t up[] = {(uint64_t)dhcp, (uint64_t)tftp, (uint64_t)http};
    s_labelled(m, "firmfleet_agent_service_up", METRICS_GAUGE,
               "1 for each branch service this agent runs.", "service", svcs, up, 3);
    if (dhcp)
        s_dhcp(m, &ds);
    if (tftp)
        s_tftp(m, &ts);
    if (http)
        s_http(m, &hs);
    if (a->prov != NULL) {
        uint64_t cnt[PROV_STATES];
        prov_state_counts(a, cnt, PROV_STATES);
        const char *names[PROV_STATES];
        for (int i = 0; i < PROV_STATES; i++)
            names[i] = prov_state_name(i);
        s_labelled(m, "firmfleet_agent_devices", METRICS_GAUGE,
                   "Devices this agent tracks, by upgrade state of their rollout.", "state", names,
                   cnt, PROV_STATES);
        struct sipn_stats ss;
        if (prov_sip_stats(a, &ss) == 0) {
            static const char *const res[] = {"sent", "ok", "failed", "timeout"};
            uint64_t v[] = {ss.sent, ss.ok, ss.failed, ss.timeouts};
            s_labelled(m, "firmfleet_sip_notify_total", METRICS_COUNTER,
                       "SIP NOTIFY requests sent, and their outcomes.", "result", res, v, 4);
            metrics_counter(m, "firmfleet_sip_notify_retransmits_total",
                            "SIP NOTIFY retransmissions.", ss.retransmits);
        }
    }
    struct mhttp *h = s_self(a);
    if (h != NULL) {
        static const char *const cls[] = {"2xx", "4xx", "5xx"};
        uint64_t v[] = {h->responses[2], h->responses[4], h->responses[5]};
        s_labelled(m, "firmfleet_metrics_responses_total", METRICS_COUNTER,
                   "Answers of this /metrics responder by status class.", "code", cls, v, 3);
        metrics_counter(m, "firmfleet_metrics_timeouts_total",
                        "Connections to this responder closed by its deadline.", h->timeouts);
    }
    return metrics_process(m);
}
