/* ctl_metrics.c: firmfleetd's /metrics (see ctl_metrics.h).
 *
 * A connection is a small state machine: READ (until the head is complete,
 * METRICS_REQ_MAX at most) -> WRITE (the whole answer, built at once into
 * one malloc'd buffer) -> DRAIN (our side shut down; what the client still
 * sends is read and dropped until it closes, so that closing does not reset
 * the connection before the client has read the answer) -> closed. Any
 * error, EOF or the deadline closes it; nothing a client sends can make the
 * loop wait or allocate more than one answer.
 *
 * Rejected: keep-alive (Prometheus scrapes every 15 s or so, a new
 * connection each time costs nothing) and a libmicrohttpd dependency (a
 * thread of its own next to a single-threaded controller).
 */
#define _GNU_SOURCE /* accept4 */
#include "ctl_metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl_link.h"
#include "log.h"
#include "store_metrics.h"
#include "store_rollout.h"
#include "util.h"

#define DRAIN_MS 1000
#define MAX_STATES 24

enum cstate { C_FREE = 0, C_READ, C_WRITE, C_DRAIN };

struct mconn {
    int fd;
    enum cstate st;
    uint64_t deadline; /* monotonic ms */
    size_t len;
    char req[METRICS_REQ_MAX];
    char *out;
    size_t out_len, out_off;
};

struct ctl_metrics {
    struct ctl *ctl;
    int lfd;
    struct mconn c[METRICS_MAX_CONNS];
    struct metrics_hist hist[CTL_MH__N];
    uint64_t admin_requests;
    uint64_t responses[6]; /* by status class, [2] 2xx ... */
    uint64_t timeouts;
};

static const char *const s_handler_names[CTL_MH__N] = {"router", "admin", "zap", "rollout"};
static const char *const s_rollout_states[] = {"created", "scheduled", "running", "paused",
                                               "halted",  "aborted",   "done"};

int ctl_metrics_new(struct ctl *ctl, const char *listen_addr, ctl_metrics_t **out)
{
    *out = NULL;
    struct sockaddr_storage sa;
    socklen_t salen;
    if (metrics_parse_listen(listen_addr, &sa, &salen) < 0) {
        log_error("ctl.metrics_listen", "addr=%s reason=\"not ADDR:PORT\"", listen_addr);
        return -EINVAL;
    }
    ctl_metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    m->ctl = ctl;
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
        m->c[i].fd = -1;
    /* 100 us .. 10 s: a commit is ~1 ms on an SSD, a slow disk shows at once */
    static const double b[] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                               0.05,   0.1,    0.25,  0.5,    1,     2.5,  10};
    for (int h = 0; h < CTL_MH__N; h++)
        metrics_hist_init(&m->hist[h], b, sizeof b / sizeof b[0]);
    int one = 1;
    m->lfd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(m->lfd, (struct sockaddr *)&sa, salen) < 0 || listen(m->lfd, 16) < 0) {
        int e = errno;
        log_error("ctl.metrics_listen", "addr=%s error=\"%s\"", listen_addr, strerror(e));
        if (m->lfd >= 0)
            close(m->lfd);
        free(m);
        return -e;
    }
    log_info("ctl.metrics_listen", "addr=%s", listen_addr);
    *out = m;
    return 0;
}

static void s_conn_close(struct mconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->st = C_FREE;
    c->len = c->out_len = c->out_off = 0;
}

void ctl_metrics_destroy(ctl_metrics_t **m_p)
{
    if (m_p == NULL || *m_p == NULL)
        return;
    ctl_metrics_t *m = *m_p;
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
        s_conn_close(&m->c[i]);
    if (m->lfd >= 0)
        close(m->lfd);
    free(m);
    *m_p = NULL;
}

int ctl_metrics_poll_items(ctl_metrics_t *m, zmq_pollitem_t *items)
{
    int n = 0, free_slot = 0;
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
        struct mconn *c = &m->c[i];
        if (c->st == C_FREE) {
            free_slot = 1;
            continue;
        }
        items[n++] = (zmq_pollitem_t){NULL, c->fd, c->st == C_WRITE ? ZMQ_POLLOUT : ZMQ_POLLIN, 0};
    }
    /* the listener last, and only with a free slot: a busy responder leaves
     * new connections in the backlog instead of accepting and dropping them */
    items[n++] = (zmq_pollitem_t){NULL, m->lfd, free_slot ? ZMQ_POLLIN : 0, 0};
    return n;
}

int ctl_metrics_wait_ms(const ctl_metrics_t *m, int wait_ms)
{
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
        const struct mconn *c = &m->c[i];
        if (c->st == C_FREE)
            continue;
        int left = c->deadline > now ? (int)(c->deadline - now) : 0;
        if (wait_ms < 0 || left < wait_ms)
            wait_ms = left;
    }
    return wait_ms;
}

void ctl_metrics_observe(ctl_metrics_t *m, enum ctl_metrics_handler h, double seconds)
{
    if (m != NULL && (unsigned)h < CTL_MH__N)
        metrics_hist_observe(&m->hist[h], seconds);
}

void ctl_metrics_admin_request(ctl_metrics_t *m)
{
    if (m != NULL)
        m->admin_requests++;
}

/* ---- collection ---- */

struct states {
    const char *name[MAX_STATES];
    char own[MAX_STATES][32]; /* names the store returned that we did not know */
    int64_t n[MAX_STATES];
    size_t count;
};

static void s_state_add(void *arg, const char *state, int64_t n)
{
    struct states *s = arg;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->name[i], state) == 0) {
            s->n[i] += n;
            return;
        }
    if (s->count < MAX_STATES && strlen(state) < sizeof s->own[0]) {
        snprintf(s->own[s->count], sizeof s->own[0], "%s", state);
        s->name[s->count] = s->own[s->count];
        s->n[s->count++] = n;
    }
}

static void s_states_write(metrics_t *out, const char *name, const char *help,
                           const struct states *s)
{
    metrics_family(out, name, METRICS_GAUGE, help);
    for (size_t i = 0; i < s->count; i++) {
        struct metrics_label l = {"state", s->name[i]};
        metrics_sample(out, name, &l, 1, (double)s->n[i]);
    }
}

struct online_ctx {
    ctl_link_t *link;
    int64_t online;
};

static int s_count_online(void *arg, int64_t id)
{
    struct online_ctx *o = arg;
    o->online += ctl_link_agent_online(o->link, id) ? 1 : 0;
    return 0;
}

int ctl_metrics_collect(ctl_metrics_t *m, metrics_t *out)
{
    struct metrics_label vl = {"version", FF_VERSION};
    metrics_family(out, "firmfleet_build_info", METRICS_GAUGE,
                   "The controller's version; always 1.");
    metrics_sample(out, "firmfleet_build_info", &vl, 1, 1);

    struct store_metrics sm;
    struct online_ctx oc = {m->ctl->link, 0};
    struct states ro = {.count = 0}, rd = {.count = 0};
    for (size_t i = 0; i < sizeof s_rollout_states / sizeof s_rollout_states[0]; i++)
        ro.name[ro.count++] = s_rollout_states[i];
    for (int i = 0; i < STORE_RDEV_N; i++)
        rd.name[rd.count++] = store_rdev_name(i);
    int ok = store_metrics_counts(m->ctl->st, &sm) == 0 &&
             store_metrics_agents(m->ctl->st, s_count_online, &oc) >= 0 &&
             store_metrics_rollouts(m->ctl->st, s_state_add, &ro) == 0 &&
             store_metrics_rollout_devices(m->ctl->st, s_state_add, &rd) == 0;
    metrics_gauge(out, "firmfleet_store_read_ok",
                  "1 when this scrape read every count from the store, 0 when one failed "
                  "(the store families are then left out).",
                  ok);
    if (ok) {
        metrics_gauge(out, "firmfleet_agents", "Agents enrolled and not revoked.",
                      (double)sm.agents);
        metrics_gauge(out, "firmfleet_agents_online",
                      "Agents with a live link (a message within three heartbeats).",
                      (double)oc.online);
        metrics_gauge(out, "firmfleet_agents_revoked", "Agents revoked.",
                      (double)sm.agents_revoked);
        metrics_gauge(out, "firmfleet_sites", "Sites.", (double)sm.sites);
        metrics_gauge(out, "firmfleet_devices", "Devices in the inventory.", (double)sm.devices);
        s_states_write(out, "firmfleet_rollouts", "Rollouts by state.", &ro);
        s_states_write(out, "firmfleet_rollout_devices",
                       "Devices of rollouts by their state, summed over all rollouts.", &rd);
        metrics_counter(out, "firmfleet_events_ingested_total",
                        "Agent events committed to the store (sum of the agents' sequence "
                        "numbers).",
                        (uint64_t)(sm.events_ingested > 0 ? sm.events_ingested : 0));
        metrics_gauge(out, "firmfleet_outbox_depth",
                      "Journaled messages toward agents not yet acknowledged by them.",
                      (double)sm.outbox_depth);
    }
    struct ctl_link_frames fr;
    ctl_link_frames(m->ctl->link, &fr);
    metrics_family(out, "firmfleet_event_frames_total", METRICS_COUNTER,
                   "Event frames received from agents since start, by body: one DeviceEvent "
                   "(single) or an EventBatch (batch).");
    struct metrics_label fl = {"body", "single"};
    metrics_sample_u64(out, "firmfleet_event_frames_total", &fl, 1, fr.single);
    fl.value = "batch";
    metrics_sample_u64(out, "firmfleet_event_frames_total", &fl, 1, fr.batches);
    metrics_counter(out, "firmfleet_batched_events_total",
                    "Events that arrived inside EventBatch frames (duplicates included).",
                    fr.batched_events);
    metrics_counter(out, "firmfleet_admin_requests_total",
                    "Admin socket dispatches (each serves every CLI request waiting).",
                    m->admin_requests);
    metrics_family(out, "firmfleet_handler_duration_seconds", METRICS_HISTOGRAM,
                   "Time per loop dispatch of a handler, its store commit included.");
    for (int h = 0; h < CTL_MH__N; h++) {
        struct metrics_label l = {"handler", s_handler_names[h]};
        metrics_hist_write(out, "firmfleet_handler_duration_seconds", &l, 1, &m->hist[h]);
    }
    metrics_family(out, "firmfleet_metrics_responses_total", METRICS_COUNTER,
                   "Answers of this /metrics responder by status class.");
    static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 2; i < 6; i += 2) {
        struct metrics_label l = {"code", cls[i]};
        metrics_sample_u64(out, "firmfleet_metrics_responses_total", &l, 1, m->responses[i]);
    }
    metrics_counter(out, "firmfleet_metrics_timeouts_total",
                    "Connections to this responder closed by its deadline.", m->timeouts);
    return metrics_process(out);
}

/* ---- connections ---- */

static int s_collect(void *arg, metrics_t *t)
{
    return ctl_metrics_collect(arg, t);
}

static void s_answer(ctl_metrics_t *m, struct mconn *c, int status, int head_only)
{
    status = metrics_response(status, head_only, s_collect, m, &c->out, &c->out_len);
    if (status < 0) {
        s_conn_close(c);
        return;
    }
    c->out_off = 0;
    c->st = C_WRITE;
    m->responses[status / 100 < 6 ? status / 100 : 0]++;
    log_debug("ctl.metrics_request", "status=%d bytes=%zu", status, c->out_len);
}

static void s_on_read(ctl_metrics_t *m, struct mconn *c)
{
    if (c->st == C_DRAIN) {
        char junk[4096];
        ssize_t r = recv(c->fd, junk, sizeof junk, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            s_conn_close(c);
        return;
    }
    ssize_t r = recv(c->fd, c->req + c->len, sizeof c->req - c->len, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        s_conn_close(c);
        return;
    }
    if (r < 0)
        return;
    c->len += (size_t)r;
    int head_only = 0;
    int status = metrics_req_check(c->req, c->len, &head_only);
    if (status != 0)
        s_answer(m, c, status, head_only);
}

static void s_on_write(struct mconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR)
                s_conn_close(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    c->st = C_DRAIN;
    uint64_t d = util_mono_ms() + DRAIN_MS;
    if (d < c->deadline)
        c->deadline = d;
}

static void s_accept(ctl_metrics_t *m)
{
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
        struct mconn *c = &m->c[i];
        if (c->st != C_FREE)
            continue;
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("ctl.metrics_accept", "error=\"%s\"", strerror(errno));
            return;
        }
        c->fd = fd;
        c->st = C_READ;
        c->len = 0;
        c->deadline = util_mono_ms() + METRICS_CONN_TIMEOUT_MS;
    }
}

void ctl_metrics_on_poll(ctl_metrics_t *m, const zmq_pollitem_t *items, int n)
{
    for (int k = 0; k < n; k++) {
        if (items[k].revents == 0)
            continue;
        if (items[k].fd == m->lfd) {
            if (items[k].revents & ZMQ_POLLIN)
                s_accept(m);
            continue;
        }
        for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
            struct mconn *c = &m->c[i];
            if (c->st == C_FREE || c->fd != items[k].fd)
                continue;
            if (items[k].revents & ZMQ_POLLERR)
                s_conn_close(c);
            else if (c->st == C_WRITE && (items[k].revents & ZMQ_POLLOUT))
                s_on_write(c);
            else if (c->st != C_WRITE && (items[k].revents & ZMQ_POLLIN))
                s_on_read(m, c);
            if (c->st == C_WRITE) /* try at once: the answer usually fits the socket */
                s_on_write(c);
            break;
        }
    }
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++) {
        struct mconn *c = &m->c[i];
        if (c->st != C_FREE && now >= c->deadline) {
            if (c->st != C_DRAIN)
                m->timeouts++;
            s_conn_close(c);
        }
    }
}
