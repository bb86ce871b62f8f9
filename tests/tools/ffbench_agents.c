/* ffbench_agents.c: many simulated site agents in one process, for the
 * controller benchmark (tests/bench/fleet.sh).
 *
 *   ffbench_agents --creds LIST --status FILE --control FIFO
 *                  [--window N] [--rate R] [--io-threads N] [--kind K]
 *                  [--applied]
 *
 * LIST names one credential file per line (what `firmfleet agent enroll`
 * wrote); agent i (1-based, in LIST order) plays site i. Each agent is a
 * CURVE DEALER with its own enrolled keypair, set up as siteagent/uplink.c
 * sets up its socket (reconnect 100 ms backing off to 5 s, ZMQ_IMMEDIATE,
 * SNDHWM 2500, zmqx_apply_limits heartbeats) and speaks as it does:
 *   - HANDSHAKE_SUCCEEDED (socket monitor) => Hello{site, last_applied,
 *     last_sent}; Hello retried every 5 s while not online;
 *   - Welcome => online; last_received below our acked count is counted
 *     as "behind" (the controller lost events it had acked), above our top
 *     as "rebase"; sending resumes from acked+1;
 *   - a journaled controller message (seq > 0) is applied when seq is
 *     last_applied+1 (with --applied, an Assignment "applied" also emits
 *     the real agent's assignment.applied event, journaled; by default
 *     nothing is journaled, only acked), re-acked when older, dropped
 *     on a gap; the ack (Heartbeat with Envelope.ack = last_applied) leaves
 *     after the batch is handled, i.e. after our (instant) "commit";
 *   - events carry seq = 1.. contiguous per agent and are sent in order
 *     while fewer than the window are unacked; the window is the real
 *     agent's delay-based one (siteagent/uplink.c): it starts at 16 after
 *     each Welcome, one event at a time is timed from send to ack, under
 *     500 ms the window doubles up to --window (UPLINK_WINDOW, 2000), over
 *     1 s it halves; when acks stall for 3 s (UPLINK_RESEND_MS, doubling
 *     per stall up to 60 s; at least 4 smoothed round trips) we rewind to
 *     acked+1 and halve the window;
 *   - when the Welcome set event_batches, consecutive events leave as one
 *     EventBatch of up to 64 (64 KiB), as the real agent sends them; one
 *     event alone, or to a controller without the flag, as Envelope.event;
 *   - a Heartbeat every heartbeat_ms the Welcome gave.
 * Nothing is journaled on disk: the "journal" is a counter per agent (the
 * body of event seq is a pure function of seq, except assignment.applied
 * events, kept until acked), so a resend carries the same bytes.
 *
 * Events are made ("journaled") at --rate R per second over all agents
 * (round robin, online or not, like devices that keep booting while the
 * uplink is down), 0 = none, -1 = as fast as the window allows (each
 * agent's journal kept twice its current window, at most --window, ahead
 * of its ack).
 *
 * Control (lines written to FIFO): "rate R", "window N", "dump PATH" (one
 * line per agent: name top acked last_applied assignments), "quit".
 * Status: FILE is rewritten (tmp + rename) every 250 ms, key=value lines.
 *
 * One thread, one zmq_poll over every DEALER and monitor socket. Every loop
 * is bounded; a fatal setup error exits 1 with one line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "util.h"
#include "wire.h"
#include "zmqx.h"

#define RECV_BATCH 256
#define RESEND_MS 3000
#define HELLO_RETRY_MS 5000
#define STATUS_MS 250
#define SNDHWM 2500
#define RESEND_MAX_MS 60000     /* UPLINK_RESEND_MAX_MS */
#define WINDOW_MIN 16           /* siteagent/uplink.c UPLINK_WINDOW_MIN */
#define RTT_MS 1000             /* siteagent/uplink.c UPLINK_RTT_MS */
#define BATCH_EVENTS 64         /* siteagent/uplink.c UPLINK_BATCH_EVENTS */
#define BATCH_BYTES (64u << 10) /* siteagent/uplink.c UPLINK_BATCH_BYTES */

struct special {
    uint64_t seq;
    char mac[18];
    char *detail;
};

struct sim {
    int idx; /* 1-based: site number */
    char name[64];
    char site[64];
    char endpoint[128];
    char server_key[41], public_key[41], secret_key[41];
    void *sock, *mon;
    int connected, online, want_write, need_ack;
    int batches;           /* the Welcome said the controller takes EventBatch */
    uint64_t top;          /* highest event seq "journaled" */
    uint64_t acked;        /* highest seq the controller acked */
    uint64_t send_next;    /* next seq to put on the wire */
    uint64_t last_applied; /* highest controller seq applied */
    uint64_t progress_ms, hello_ms, hb_sent_ms, hb_ms;
    uint64_t resend_ms;           /* the stall that makes a rewind now (backs off) */
    uint64_t win;                 /* events in flight allowed now (delay-based) */
    uint64_t probe_seq, probe_ms; /* the event being timed, when it was sent */
    uint64_t srtt_ms;             /* smoothed send-to-ack time; 0 none yet */
    uint64_t assignments;
    struct special *sp; /* assignment.applied events not yet acked, by seq */
    size_t sp_head, sp_n, sp_cap;
};

struct stats {
    uint64_t hellos, welcomes, handshakes, disconnects, refused, auth_failed;
    uint64_t events_sent, frames_sent, rewinds, behind, rebase, bad_ack, gaps, dups;
    uint64_t assignments, site_configs, journaled_in, cancels;
    uint64_t rtt_sum, rtt_n;                 /* timed events, send to ack */
    uint64_t all_online_at, last_welcome_at; /* wall clock ms */
    int was_all_online;
};

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_die(const char *what)
{
    fprintf(stderr, "ffbench_agents: %s\n", what);
    exit(1);
}

static int s_cred_load(const char *path, struct sim *a)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (j == NULL)
        return -1;
    const char *ag = json_string_value(json_object_get(j, "agent"));
    const char *site = json_string_value(json_object_get(j, "site"));
    const char *ep = json_string_value(json_object_get(j, "endpoint"));
    const char *sk = json_string_value(json_object_get(j, "server_public_key"));
    const char *pk = json_string_value(json_object_get(j, "public_key"));
    const char *xk = json_string_value(json_object_get(j, "secret_key"));
    int rc = -1;
    if (ag && site && ep && sk && pk && xk && zmqx_key_check(sk) == 0 && zmqx_key_check(pk) == 0 &&
        zmqx_key_check(xk) == 0 && strlen(ep) < sizeof a->endpoint) {
        snprintf(a->name, sizeof a->name, "%s", ag);
        snprintf(a->site, sizeof a->site, "%s", site);
        snprintf(a->endpoint, sizeof a->endpoint, "%s", ep);
        memcpy(a->server_key, sk, 41);
        memcpy(a->public_key, pk, 41);
        memcpy(a->secret_key, xk, 41);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static int s_connect(void *ctx, struct sim *a)
{
    char ep[96];
    int one = 1, ivl = 100, ivl_max = 5000, hwm = SNDHWM, zero = 0;
    snprintf(ep, sizeof ep, "inproc://ffbench-mon-%d", a->idx);
    a->sock = zmq_socket(ctx, ZMQ_DEALER);
    a->mon = zmq_socket(ctx, ZMQ_PAIR);
    if (a->sock == NULL || a->mon == NULL ||
        zmq_setsockopt(a->sock, ZMQ_CURVE_SERVERKEY, a->server_key, 41) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_CURVE_PUBLICKEY, a->public_key, 41) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_CURVE_SECRETKEY, a->secret_key, 41) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one) < 0 ||
        zmq_setsockopt(a->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(a->mon, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmqx_apply_limits(a->sock, ZMQX_HEARTBEAT_MS) < 0)
        return -1;
    if (zmq_socket_monitor(a->sock, ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) < 0 ||
        zmq_connect(a->mon, ep) < 0 || zmq_connect(a->sock, a->endpoint) < 0)
        return -1;
    a->hello_ms = util_mono_ms();
    a->hb_ms = ZMQX_HEARTBEAT_MS;
    return 0;
}

/* ---- the "journal" ---- */

static void s_mac(const struct sim *a, uint64_t n, char out[18])
{
    snprintf(out, 18, "02:00:%02x:%02x:00:%02x", (a->idx >> 8) & 0xff, a->idx & 0xff,
             (unsigned)(n & 0xff));
}

static const struct special *s_special(const struct sim *a, uint64_t seq)
{
    size_t lo = a->sp_head, hi = a->sp_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->sp[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->sp_n && a->sp[lo].seq == seq ? &a->sp[lo] : NULL;
}

static int s_special_add(struct sim *a, const char *mac, const char *detail)
{
    if (a->sp_n == a->sp_cap) {
        if (a->sp_head > 0) {
            memmove(a->sp, a->sp + a->sp_head, (a->sp_n - a->sp_head) * sizeof *a->sp);
            a->sp_n -= a->sp_head;
            a->sp_head = 0;
        }
        if (a->sp_n == a->sp_cap) {
            size_t c = a->sp_cap ? a->sp_cap * 2 : 64;
            struct special *g = realloc(a->sp, c * sizeof *g);
            if (g == NULL)
                return -ENOMEM;
            a->sp = g;
            a->sp_cap = c;
        }
    }
    struct special *s = &a->sp[a->sp_n];
    s->detail = strdup(detail);
    if (s->detail == NULL)
        return -ENOMEM;
    s->seq = ++a->top;
    snprintf(s->mac, sizeof s->mac, "%s", mac);
    a->sp_n++;
    return 0;
}

static void s_special_trim(struct sim *a)
{
    while (a->sp_head < a->sp_n && a->sp[a->sp_head].seq <= a->acked) {
        free(a->sp[a->sp_head].detail);
        a->sp_head++;
    }
    if (a->sp_head == a->sp_n)
        a->sp_head = a->sp_n = 0;
}

/* ---- sending ---- */

static int s_send(struct sim *a, wire_env_t *env)
{
    env->ack = a->last_applied;
    int rc = wire_send(a->sock, NULL, 0, env, ZMQ_DONTWAIT);
    if (rc == -EAGAIN)
        a->want_write = 1;
    return rc;
}

static void s_send_hello(struct sim *a, struct stats *st)
{
    char version[] = "ffbench-0.1";
    a->hello_ms = util_mono_ms();
    Firmfleet__Hello h = FIRMFLEET__HELLO__INIT;
    h.site = a->site;
    h.version = version;
    h.last_applied = a->last_applied;
    h.last_sent = a->top;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    if (s_send(a, &env) == 0)
        st->hellos++;
}

static int s_send_hb(struct sim *a)
{
    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    hb.now_ms = util_now_ms();
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    int rc = s_send(a, &env);
    if (rc == 0)
        a->hb_sent_ms = util_mono_ms();
    return rc;
}

/* One event's storage while it is packed. */
struct ev_buf {
    Firmfleet__DeviceEvent ev;
    char mac[18];
    char detail[160];
};

/* Event seq as the "journal" holds it (a pure function of seq, or the
 * assignment.applied event kept for it). */
static void s_make_event(const struct sim *a, uint64_t seq, const char *kind, struct ev_buf *b)
{
    static const char k[] = "assignment.applied";
    Firmfleet__DeviceEvent init = FIRMFLEET__DEVICE_EVENT__INIT;
    b->ev = init;
    const struct special *sp = s_special(a, seq);
    if (sp != NULL) {
        b->ev.kind = (char *)(uintptr_t)k;
        snprintf(b->mac, sizeof b->mac, "%s", sp->mac);
        snprintf(b->detail, sizeof b->detail, "%s", sp->detail);
    } else {
        b->ev.kind = (char *)(uintptr_t)kind;
        s_mac(a, seq % 100 + 1, b->mac);
        snprintf(b->detail, sizeof b->detail,
                 "file=SEP0200%04x%04x.cnf.xml bytes=%" PRIu64 " ms=%" PRIu64 " blksize=1468",
                 a->idx & 0xffff, (unsigned)(seq & 0xffff), 2048 + seq % 4096, seq % 97);
    }
    b->ev.time_ms = util_now_ms();
    b->ev.mac = b->mac;
    b->ev.detail = b->detail;
}

/* Sends events seq .. seq+k-1 (at most BATCH_EVENTS, and fewer when their
 * packed size passes BATCH_BYTES) as the real agent does: one
 * Envelope.event for one, an EventBatch for more. Returns how many were
 * sent (0 when the pipe is full). */
static size_t s_send_events(struct sim *a, uint64_t seq, size_t k, const char *kind)
{
    struct ev_buf bufs[BATCH_EVENTS];
    Firmfleet__DeviceEvent *evs[BATCH_EVENTS];
    size_t n = 0, bytes = 0;
    if (k > BATCH_EVENTS)
        k = BATCH_EVENTS;
    while (n < k) {
        s_make_event(a, seq + n, kind, &bufs[n]);
        size_t len = firmfleet__device_event__get_packed_size(&bufs[n].ev);
        if (n > 0 && bytes + len > BATCH_BYTES)
            break;
        evs[n] = &bufs[n].ev;
        bytes += len;
        n++;
    }
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    Firmfleet__EventBatch b = FIRMFLEET__EVENT_BATCH__INIT;
    env.seq = seq;
    if (n == 1) {
        env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT;
        env.event = evs[0];
    } else {
        b.events = evs;
        b.n_events = n;
        env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH;
        env.event_batch = &b;
    }
    return s_send(a, &env) == 0 ? n : 0;
}

/* Sends journaled events from send_next while the window allows, in
 * batches when the Welcome said the controller takes them. */
static void s_pump(struct sim *a, uint64_t window, const char *kind, struct stats *st)
{
    if (!a->online)
        return;
    if (a->send_next <= a->acked)
        a->send_next = a->acked + 1;
    uint64_t w = a->win < WINDOW_MIN ? WINDOW_MIN : a->win > window ? window : a->win;
    for (int n = 0; n < 512 && a->send_next <= a->top && a->send_next - 1 - a->acked < w;) {
        uint64_t room = w - (a->send_next - 1 - a->acked);
        uint64_t avail = a->top - a->send_next + 1;
        uint64_t k = a->batches ? BATCH_EVENTS : 1;
        k = k < room ? k : room;
        k = k < avail ? k : avail;
        size_t sent = s_send_events(a, a->send_next, (size_t)k, kind);
        if (sent == 0)
            return;
        if (a->probe_seq == 0) {
            a->probe_seq = a->send_next;
            a->probe_ms = util_mono_ms();
        }
        a->send_next += sent;
        st->events_sent += sent;
        st->frames_sent++;
        n += (int)sent;
    }
}

/* ---- receiving ---- */

static void s_on_ack(struct sim *a, uint64_t ack, uint64_t window, struct stats *st)
{
    if (ack <= a->acked)
        return;
    if (ack > a->top) {
        st->bad_ack++;
        return;
    }
    a->acked = ack;
    a->progress_ms = util_mono_ms();
    a->resend_ms = RESEND_MS;
    if (a->probe_seq != 0 && ack >= a->probe_seq) {
        uint64_t rtt = a->progress_ms - a->probe_ms;
        uint64_t w = a->win < WINDOW_MIN ? WINDOW_MIN : a->win;
        if (rtt <= RTT_MS / 2)
            a->win = w * 2 > window ? window : w * 2;
        else if (rtt > RTT_MS)
            a->win = w / 2 < WINDOW_MIN ? WINDOW_MIN : w / 2;
        a->probe_seq = 0;
        a->srtt_ms = a->srtt_ms ? (a->srtt_ms * 7 + rtt) / 8 : rtt;
        st->rtt_sum += rtt;
        st->rtt_n++;
    }
    s_special_trim(a);
}

static void s_on_journaled(struct sim *a, const wire_env_t *env, int applied_events,
                           struct stats *st)
{
    a->need_ack = 1;
    st->journaled_in++;
    if (env->seq <= a->last_applied) {
        st->dups++;
        return;
    }
    if (env->seq != a->last_applied + 1) {
        st->gaps++;
        return;
    }
    if (env->body_case == FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT) {
        const Firmfleet__Assignment *as = env->assignment;
        char mac[18], detail[160];
        if (as->mac == NULL || util_mac_canon(as->mac, mac) < 0)
            snprintf(mac, sizeof mac, "00:00:00:00:00:00");
        snprintf(detail, sizeof detail, "firmware=%s rollout=%" PRIu64 " files=%zu",
                 as->firmware ? as->firmware : "", as->rollout_id, as->n_files);
        if (applied_events && s_special_add(a, mac, detail) < 0)
            return; /* not applied: the controller resends */
        a->assignments++;
        st->assignments++;
    } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG) {
        st->site_configs++;
    } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_CANCEL) {
        st->cancels++;
    }
    a->last_applied = env->seq;
}

static void s_on_welcome(struct sim *a, const Firmfleet__Welcome *w, struct stats *st)
{
    uint64_t lr = w->last_received;
    if (lr > a->top) {
        st->rebase++; /* the controller holds seqs we never sent: should not happen */
    } else if (lr > a->acked) {
        a->acked = lr;
        s_special_trim(a);
    } else if (lr < a->acked) {
        st->behind++; /* the controller lost events it had acked */
    }
    a->send_next = a->acked + 1;
    a->progress_ms = util_mono_ms();
    a->resend_ms = RESEND_MS;
    a->win = WINDOW_MIN;
    a->probe_seq = 0;
    a->batches = w->event_batches != 0;
    a->hb_ms = w->heartbeat_ms < 100 ? 100 : w->heartbeat_ms > 600000 ? 600000 : w->heartbeat_ms;
    a->online = 1;
    a->connected = 1;
    a->hb_sent_ms = util_mono_ms();
    st->welcomes++;
    st->last_welcome_at = util_now_ms();
}

static void s_on_readable(struct sim *a, int applied_events, uint64_t window, struct stats *st)
{
    for (int i = 0; i < RECV_BATCH; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        int more = zmq_msg_more(&m);
        wire_env_t *env = more ? NULL : wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
        for (int k = 0; more && k < 16; k++) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (env == NULL)
            continue;
        s_on_ack(a, env->ack, window, st);
        if (env->seq > 0) {
            s_on_journaled(a, env, applied_events, st);
        } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_WELCOME) {
            s_on_welcome(a, env->welcome, st);
        } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG) {
            st->site_configs++;
        } else if (env->body_case == FIRMFLEET__ENVELOPE__BODY_REFUSED) {
            st->refused++;
        }
        wire_free(env);
    }
}

static void s_on_monitor(struct sim *a, struct stats *st)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&m) == 6)
            memcpy(&ev, zmq_msg_data(&m), 2);
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        for (int k = 0; more && k < 4; k++) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, a->mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        switch (ev) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            a->connected = 1;
            st->handshakes++;
            s_send_hello(a, st);
            break;
        case ZMQ_EVENT_DISCONNECTED:
            if (a->connected || a->online)
                st->disconnects++;
            a->connected = a->online = 0;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            st->auth_failed++;
            break;
        default:
            break;
        }
    }
}

/* ---- control and status ---- */

static void s_dump(struct sim *agents, int n, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    for (int i = 0; i < n; i++)
        fprintf(f, "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", agents[i].name,
                agents[i].top, agents[i].acked, agents[i].last_applied, agents[i].assignments);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void s_status(struct sim *agents, int n, const struct stats *st, const char *path,
                     int64_t rate, uint64_t window)
{
    uint64_t top = 0, acked = 0, online = 0, connected = 0, applied = 0, win = 0;
    for (int i = 0; i < n; i++) {
        win += agents[i].online ? agents[i].win : 0;
        top += agents[i].top;
        acked += agents[i].acked;
        online += agents[i].online != 0;
        connected += agents[i].connected != 0;
        applied += agents[i].last_applied;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f,
            "now=%" PRIu64 "\nagents=%d\nonline=%" PRIu64 "\nconnected=%" PRIu64
            "\nall_online_at=%" PRIu64 "\nlast_welcome_at=%" PRIu64 "\nrate=%" PRId64
            "\nwindow=%" PRIu64 "\nevents_top=%" PRIu64 "\nevents_acked=%" PRIu64
            "\nevents_sent=%" PRIu64 "\nframes_sent=%" PRIu64 "\nrewinds=%" PRIu64
            "\nbehind=%" PRIu64 "\nrebase=%" PRIu64 "\nbad_ack=%" PRIu64 "\nhellos=%" PRIu64
            "\nwelcomes=%" PRIu64 "\nhandshakes=%" PRIu64 "\ndisconnects=%" PRIu64
            "\nrefused=%" PRIu64 "\nauth_failed=%" PRIu64 "\nassignments=%" PRIu64
            "\nsite_configs=%" PRIu64 "\ncancels=%" PRIu64 "\njournaled_in=%" PRIu64
            "\napplied_seq=%" PRIu64 "\ndups=%" PRIu64 "\ngaps=%" PRIu64 "\nwindows=%" PRIu64
            "\nrtt_n=%" PRIu64 "\nrtt_sum_ms=%" PRIu64 "\n",
            util_now_ms(), n, online, connected, st->all_online_at, st->last_welcome_at, rate,
            window, top, acked, st->events_sent, st->frames_sent, st->rewinds, st->behind,
            st->rebase, st->bad_ack, st->hellos, st->welcomes, st->handshakes, st->disconnects,
            st->refused, st->auth_failed, st->assignments, st->site_configs, st->cancels,
            st->journaled_in, applied, st->dups, st->gaps, win, st->rtt_n, st->rtt_sum);
    if (fclose(f) == 0)
        rename(tmp, path);
}

/* Reads whole lines from the control FIFO; returns 1 on "quit". */
static int s_control(int fd, char *buf, size_t *len, size_t cap, int64_t *rate, uint64_t *window,
                     struct sim *agents, int n)
{
    ssize_t got = read(fd, buf + *len, cap - 1 - *len);
    if (got <= 0)
        return 0;
    *len += (size_t)got;
    buf[*len] = '\0';
    char *line = buf, *nl;
    int quit = 0;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        int64_t v;
        if (strncmp(line, "rate ", 5) == 0 && util_parse_i64(line + 5, -1, 10000000, &v) == 0)
            *rate = v;
        else if (strncmp(line, "window ", 7) == 0 && util_parse_i64(line + 7, 1, 1000000, &v) == 0)
            *window = (uint64_t)v;
        else if (strncmp(line, "dump ", 5) == 0)
            s_dump(agents, n, line + 5);
        else if (strcmp(line, "quit") == 0)
            quit = 1;
        line = nl + 1;
    }
    size_t rest = strlen(line);
    memmove(buf, line, rest + 1);
    *len = rest;
    if (*len >= cap - 1)
        *len = 0; /* an overlong line: dropped */
    return quit;
}

static void s_usage(void)
{
    fprintf(stderr, "usage: ffbench_agents --creds LIST --status FILE --control FIFO [--window N]\n"
                    "       [--rate R] [--io-threads N] [--kind KIND] [--applied]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *creds = NULL, *status = NULL, *control = NULL, *kind = "tftp.done";
    int64_t rate = 0, io_threads = 1;
    uint64_t window = 2000;
    int applied_events = 0;
    for (int i = 1; i < argc; i++) {
        int64_t v;
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--applied") == 0) {
            applied_events = 1;
            continue;
        }
        if (val == NULL)
            s_usage();
        i++;
        if (strcmp(arg, "--creds") == 0)
            creds = val;
        else if (strcmp(arg, "--status") == 0)
            status = val;
        else if (strcmp(arg, "--control") == 0)
            control = val;
        else if (strcmp(arg, "--kind") == 0)
            kind = val;
        else if (strcmp(arg, "--rate") == 0 && util_parse_i64(val, -1, 10000000, &v) == 0)
            rate = v;
        else if (strcmp(arg, "--window") == 0 && util_parse_i64(val, 1, 1000000, &v) == 0)
            window = (uint64_t)v;
        else if (strcmp(arg, "--io-threads") == 0 && util_parse_i64(val, 1, 16, &v) == 0)
            io_threads = v;
        else
            s_usage();
    }
    if (creds == NULL || status == NULL || control == NULL)
        s_usage();

    /* credentials */
    FILE *lf = fopen(creds, "r");
    if (lf == NULL)
        s_die("cannot open the credential list");
    struct sim *agents = NULL;
    int n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, lf) != NULL && n < 100000) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            struct sim *g = realloc(agents, (size_t)cap * sizeof *g);
            if (g == NULL)
                s_die("out of memory");
            agents = g;
        }
        memset(&agents[n], 0, sizeof agents[n]);
        agents[n].idx = n + 1;
        if (s_cred_load(line, &agents[n]) < 0) {
            fprintf(stderr, "ffbench_agents: bad credential %s\n", line);
            return 1;
        }
        n++;
    }
    fclose(lf);
    if (n == 0)
        s_die("no credentials");

    int cfd = open(control, O_RDWR | O_NONBLOCK); /* RDWR: no EOF when writers come and go */
    if (cfd < 0)
        s_die("cannot open the control FIFO");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    void *ctx = zmq_ctx_new();
    if (ctx == NULL || zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, 4 * n + 64) < 0 ||
        zmq_ctx_set(ctx, ZMQ_IO_THREADS, (int)io_threads) < 0)
        s_die("zmq context");
    for (int i = 0; i < n; i++)
        if (s_connect(ctx, &agents[i]) < 0) {
            fprintf(stderr, "ffbench_agents: socket for %s: %s\n", agents[i].name,
                    zmq_strerror(errno));
            return 1;
        }

    size_t n_items = 2 * (size_t)n + 1;
    zmq_pollitem_t *items = calloc(n_items, sizeof *items);
    if (items == NULL)
        s_die("out of memory");
    struct stats st;
    memset(&st, 0, sizeof st);
    char cbuf[8192];
    size_t clen = 0;
    uint64_t last_status = 0, last_gen = util_mono_ms();
    double tokens = 0;
    int rr = 0;
    while (!s_stop) {
        for (int i = 0; i < n; i++) {
            items[2 * i] = (zmq_pollitem_t){
                agents[i].sock, 0, ZMQ_POLLIN | (agents[i].want_write ? ZMQ_POLLOUT : 0), 0};
            items[2 * i + 1] = (zmq_pollitem_t){agents[i].mon, 0, ZMQ_POLLIN, 0};
        }
        items[2 * n] = (zmq_pollitem_t){NULL, cfd, ZMQ_POLLIN, 0};
        int rc = zmq_poll(items, (int)n_items, rate != 0 ? 5 : 50);
        if (rc < 0 && errno != EINTR)
            s_die("zmq_poll");
        uint64_t now = util_mono_ms();
        if (rc > 0) {
            for (int i = 0; i < n; i++) {
                struct sim *a = &agents[i];
                if (items[2 * i + 1].revents & ZMQ_POLLIN)
                    s_on_monitor(a, &st);
                if (items[2 * i].revents & ZMQ_POLLIN)
                    s_on_readable(a, applied_events, window, &st);
                if (items[2 * i].revents & ZMQ_POLLOUT)
                    a->want_write = 0;
            }
            if ((items[2 * n].revents & ZMQ_POLLIN) &&
                s_control(cfd, cbuf, &clen, sizeof cbuf, &rate, &window, agents, n))
                break;
        }
        /* again: the reads above stamp progress_ms, hb_sent_ms, hello_ms,
         * and a `now` older than those made every `now - stamp` below
         * wrap around (a rewind and a heartbeat at once) */
        now = util_mono_ms();
        /* make events: a token bucket over all agents, or fill every window */
        if (rate > 0) {
            tokens += (double)rate * (double)(now - last_gen) / 1000.0;
            if (tokens > (double)rate)
                tokens = (double)rate; /* at most 1 s of burst after a stall */
            for (int k = 0; tokens >= 1.0 && k < 4 * n; k++) {
                struct sim *a = &agents[rr];
                rr = (rr + 1) % n;
                if (a->top - a->acked >= 1000000)
                    continue; /* an agent's journal is bounded too */
                a->top++;
                tokens -= 1.0;
            }
        } else if (rate < 0) {
            /* twice the window in use: enough to fill it at every ack,
             * and little left to drain when the run stops */
            for (int i = 0; i < n; i++) {
                uint64_t w = agents[i].win < WINDOW_MIN ? WINDOW_MIN : agents[i].win;
                w = 2 * w < window ? 2 * w : window;
                if (agents[i].online && agents[i].top < agents[i].acked + w)
                    agents[i].top = agents[i].acked + w;
            }
        } else {
            tokens = 0;
        }
        last_gen = now;
        int all = 1;
        for (int i = 0; i < n; i++) {
            struct sim *a = &agents[i];
            if (!a->online) {
                all = 0;
                if (a->connected && now - a->hello_ms >= HELLO_RETRY_MS)
                    s_send_hello(a, &st);
                continue;
            }
            uint64_t stall = a->resend_ms ? a->resend_ms : RESEND_MS;
            if (stall < 4 * a->srtt_ms)
                stall = 4 * a->srtt_ms < RESEND_MAX_MS ? 4 * a->srtt_ms : RESEND_MAX_MS;
            if (a->top > a->acked && a->send_next > a->acked + 1 && now - a->progress_ms >= stall) {
                a->send_next = a->acked + 1; /* acks stalled: resend from the last one */
                a->progress_ms = now;
                a->resend_ms = a->resend_ms ? a->resend_ms * 2 : RESEND_MS * 2;
                if (a->resend_ms > RESEND_MAX_MS)
                    a->resend_ms = RESEND_MAX_MS;
                a->win = a->win / 2 < WINDOW_MIN ? WINDOW_MIN : a->win / 2;
                a->probe_seq = 0;
                st.rewinds++;
            }
            if (a->need_ack && s_send_hb(a) == 0)
                a->need_ack = 0;
            if (now - a->hb_sent_ms >= a->hb_ms)
                s_send_hb(a);
            if (!a->want_write)
                s_pump(a, window, kind, &st);
        }
        if (all && !st.was_all_online)
            st.all_online_at = util_now_ms();
        st.was_all_online = all;
        if (now - last_status >= STATUS_MS) {
            s_status(agents, n, &st, status, rate, window);
            last_status = now;
        }
    }
    s_status(agents, n, &st, status, rate, window);
    for (int i = 0; i < n; i++) {
        zmq_socket_monitor(agents[i].sock, NULL, 0);
        zmq_close(agents[i].sock);
        zmq_close(agents[i].mon);
        for (size_t k = agents[i].sp_head; k < agents[i].sp_n; k++)
            free(agents[i].sp[k].detail);
        free(agents[i].sp);
    }
    zmq_ctx_term(ctx);
    free(items);
    free(agents);
    close(cfd);
    return 0;
}
