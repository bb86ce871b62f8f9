/* uplink.c: see uplink.h.
 *
 * Connection life: s_connect() makes a fresh DEALER (CURVE client, heartbeats,
 * reconnect 100 ms backing off to 5 s, ZMQ_IMMEDIATE so nothing queues for a
 * peer that is not there) plus an inproc PAIR reading its monitor events.
 * HANDSHAKE_SUCCEEDED => Hello; Welcome => online. DISCONNECTED => offline,
 * libzmq reconnects by itself and the next handshake sends Hello again.
 * Refused{} and ZAP/protocol refusals close both sockets and start over from
 * scratch after UPLINK_RETRY_MS. As a backstop for a lost monitor event,
 * Hello is also re-tried every UPLINK_HELLO_RETRY_MS while not online (with
 * ZMQ_IMMEDIATE the send simply fails while no connection is up).
 *
 * Sequence state lives in the journal (acked, last_seq, last_applied); the
 * uplink adds only send_next (next outbox seq to put on the wire), the time
 * of the last ack progress, for the 3 s rewind, and the window.
 *
 * The window (rows in flight) is delay-based, because a thousand agents
 * flooding one controller with UPLINK_WINDOW rows each queue 2 million
 * events there (500 MiB of its memory; 40 s of work at 50,000/s): acks
 * then take longer than the rewind, agents send their windows again and
 * much of what crosses the link is duplicates (tests/bench/fleet.sh).
 * One row at a
 * time is timed from send to ack: under UPLINK_RTT_MS / 2 the window
 * doubles (up to UPLINK_WINDOW), over UPLINK_RTT_MS it halves (down to
 * UPLINK_WINDOW_MIN), and a rewind halves it too. It starts at the minimum
 * after every Welcome, so agents coming back together after a controller
 * restart do not all send a full window at once. Alone on a link, an agent
 * reaches the full window in log2(2000/16) = 7 round trips. The same
 * samples smooth into srtt (1/8 per sample, as TCP), and a rewind waits at
 * least 4 srtt: a controller that is slow, not deaf, is not sent the
 * window again.
 *
 * Consecutive committed event rows leave as one EventBatch (up to
 * UPLINK_BATCH_EVENTS / UPLINK_BATCH_BYTES) when the Welcome said the
 * controller takes them: sent alone, each event cost both ends a ZeroMQ
 * message, a CURVE box, an unpack and (controller) a peer look-up. Nothing
 * waits to fill a batch. The window, the probe and the rewind stay per
 * seq: a batch of n counts as n rows in flight. A backup row ends a batch
 * and goes alone.
 */
#include "uplink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "imgcache.h"
#include "log.h"
#include "util.h"
#include "zmqx.h"
#include "zuv.h"

#define UPLINK_TICK_MS 500
#define UPLINK_RECV_BATCH 256
#define UPLINK_SEND_BATCH 256
#define UPLINK_SNDHWM 2500
#define UPLINK_HANDSHAKE_FAILURES 10
#define UPLINK_WINDOW_MIN 16           /* the delay-based window's floor and start */
#define UPLINK_RTT_MS 1000             /* send to ack: above it the window halves */
#define UPLINK_BATCH_EVENTS 64         /* events per EventBatch (<= WIRE_BATCH_MAX) */
#define UPLINK_BATCH_BYTES (64u << 10) /* and their payload bytes */

struct uplink {
    struct agent *a;
    void *sock; /* DEALER */
    void *mon;  /* PAIR on the DEALER's monitor */
    zuv_t *zs;
    zuv_t *zm;
    uv_timer_t hb_timer;
    uv_timer_t tick_timer;
    uv_timer_t retry_timer;
    int open_handles;
    unsigned conn_gen; /* numbers monitor endpoints */
    int connected;     /* handshake done on the current socket */
    int online;        /* Welcome received on it */
    int ever_online;
    int need_ack;           /* a controller seq arrived: ack after the commit */
    int hello_pending;      /* Hello met a full pipe: resend when writable */
    int handshake_failures; /* consecutive HANDSHAKE_FAILED_NO_DETAIL */
    int was_empty;          /* outbox empty at the last turn (for uplink.drained) */
    int batches;            /* the Welcome said the controller takes EventBatch */
    uint64_t hello_ms;      /* last Hello attempt */
    uint64_t send_next;     /* next outbox seq to send */
    uint64_t progress_ms;   /* last ack progress or rewind */
    uint64_t resend_ms;     /* the stall that makes a rewind now (backs off) */
    uint64_t bytes_unacked; /* payload bytes sent since then (see UPLINK_WINDOW_BYTES) */
    uint64_t window;        /* rows in flight allowed now (delay-based, see above) */
    uint64_t probe_seq;     /* the row being timed; 0 none */
    uint64_t probe_ms;      /* when it was sent */
    uint64_t srtt_ms;       /* smoothed send-to-ack time; 0 none yet */
    uint64_t heartbeat_ms;
};

static void s_pump(uplink_t *up);
static void s_retry_later(uplink_t *up);
static void s_disconnect(uplink_t *up);
static void s_on_retry(uv_timer_t *t);

static uint64_t s_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- sending ---- */

static int s_send(uplink_t *up, wire_env_t *env)
{
    if (up->sock == NULL)
        return -ENOTCONN;
    env->ack = journal_committed_applied(up->a->jr);
    int rc = wire_send(up->sock, NULL, 0, env, ZMQ_DONTWAIT);
    if (rc == -EAGAIN)
        zuv_want_write(up->zs, 1);
    else
        zuv_kick(up->zs); /* a send may have eaten the ZMQ_FD edge */
    return rc;
}

int uplink_send(uplink_t *up, wire_env_t *env)
{
    if (up == NULL || !up->online)
        return -ENOTCONN;
    return s_send(up, env);
}

int uplink_online(const uplink_t *up)
{
    return up != NULL && up->online;
}

static void s_send_hello(uplink_t *up)
{
    struct agent *a = up->a;
    up->hello_ms = util_mono_ms();
    char version[] = AGENT_VERSION;
    Firmfleet__Hello h = FIRMFLEET__HELLO__INIT;
    h.site = a->cred.site;
    h.version = version;
    h.public_key = (char *)(uintptr_t)agent_key_to_register(a); /* enrollment only */
    ProtobufCBinaryData *cached = NULL;
    size_t n = 0;
    if (a->img != NULL && imgcache_cached_list(a->img, &cached, &n) == 0) {
        h.cached = cached;
        h.n_cached = n;
    }
    h.last_applied = journal_committed_applied(a->jr);
    h.last_sent = journal_committed_seq(a->jr);
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    int rc = s_send(up, &env);
    free(cached);
    up->hello_pending = rc == -EAGAIN && up->connected;
    if (rc == 0)
        log_debug("uplink.hello", "last_applied=%" PRIu64 " last_sent=%" PRIu64 " cached=%zu",
                  h.last_applied, h.last_sent, n);
    else if (rc != -EAGAIN)
        log_debug("uplink.hello_failed", "error=%d", rc);
}

static int s_send_ack(uplink_t *up)
{
    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    hb.now_ms = util_now_ms();
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    return s_send(up, &env);
}

/* Consecutive event rows gathered into one EventBatch (when the Welcome
 * said the controller takes them), up to UPLINK_BATCH_EVENTS events or
 * UPLINK_BATCH_BYTES of payload: one ZeroMQ message, one CURVE box and one
 * unpack at the controller for up to 64 events. Nothing waits to fill a
 * batch: s_pump sends what is committed now, so a lone event leaves alone,
 * as a plain Envelope.event. */
struct pump_ctx {
    uplink_t *up;
    int err;
    uint64_t first; /* seq of ev[0] */
    size_t n;       /* events gathered, not yet sent */
    size_t bytes;   /* their payload bytes */
    Firmfleet__DeviceEvent *ev[UPLINK_BATCH_EVENTS];
};

static void s_batch_clear(struct pump_ctx *pc)
{
    for (size_t i = 0; i < pc->n; i++)
        firmfleet__device_event__free_unpacked(pc->ev[i], NULL);
    pc->n = 0;
    pc->bytes = 0;
}

/* The window's bookkeeping for rows first .. first+n-1, just sent. */
static void s_sent(uplink_t *up, uint64_t first, size_t n, size_t bytes)
{
    up->send_next = first + n;
    up->bytes_unacked += bytes;
    if (up->probe_seq == 0) {
        up->probe_seq = first;
        up->probe_ms = util_mono_ms();
    }
}

/* Sends the gathered events: one Envelope.event, or an EventBatch with
 * Envelope.seq = the first one's seq. 0 when sent (or nothing to send);
 * <0 with pc->err set when not: the rows stay in the journal and go again
 * from send_next. The gathered events are freed either way. */
static int s_batch_flush(struct pump_ctx *pc)
{
    if (pc->n == 0)
        return 0;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    Firmfleet__EventBatch b = FIRMFLEET__EVENT_BATCH__INIT;
    env.seq = pc->first;
    if (pc->n == 1) {
        env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT;
        env.event = pc->ev[0];
    } else {
        b.events = pc->ev;
        b.n_events = pc->n;
        env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH;
        env.event_batch = &b;
    }
    int rc = s_send(pc->up, &env);
    if (rc == 0)
        s_sent(pc->up, pc->first, pc->n, pc->bytes);
    else
        pc->err = rc;
    s_batch_clear(pc);
    return rc;
}

/* One outbox row as the Envelope body it was journaled as; event rows are
 * gathered (see pump_ctx), anything else goes alone, after what was
 * gathered. A row that does not unpack is sent as an agent.journal_corrupt
 * event in its place, so the seq stays contiguous and the controller does
 * not wait forever. */
static int s_send_row(void *arg, uint64_t seq, int body, const uint8_t *payload, size_t len)
{
    struct pump_ctx *pc = arg;
    uplink_t *up = pc->up;
    uint64_t expect = pc->n ? pc->first + pc->n : up->send_next;
    if (seq != expect) {
        log_error("uplink.journal_hole", "expected=%" PRIu64 " got=%" PRIu64, expect, seq);
        pc->err = -EPROTO;
        return 1;
    }
    if (up->bytes_unacked + pc->bytes >= UPLINK_WINDOW_BYTES &&
        seq > journal_acked(up->a->jr) + 1) {
        pc->err = -ENOBUFS; /* an ack (or the rewind) resumes */
        return 1;
    }
    Firmfleet__DeviceEvent *ev = NULL;
    Firmfleet__BackupUpload *bu = NULL;
    if (body == JOURNAL_BODY_BACKUP)
        bu = firmfleet__backup_upload__unpack(NULL, len, payload);
    else if (body == JOURNAL_BODY_EVENT)
        ev = firmfleet__device_event__unpack(NULL, len, payload);
    size_t max = up->batches ? UPLINK_BATCH_EVENTS : 1;
    if (ev != NULL) {
        if (pc->n > 0 && (pc->n >= max || pc->bytes + len > UPLINK_BATCH_BYTES) &&
            s_batch_flush(pc) < 0) {
            firmfleet__device_event__free_unpacked(ev, NULL);
            return 1;
        }
        if (pc->n == 0)
            pc->first = seq;
        pc->ev[pc->n++] = ev;
        pc->bytes += len;
        if (pc->n >= max && s_batch_flush(pc) < 0)
            return 1;
        return 0;
    }
    if (s_batch_flush(pc) < 0) {
        if (bu)
            firmfleet__backup_upload__free_unpacked(bu, NULL);
        return 1;
    }
    Firmfleet__DeviceEvent placeholder = FIRMFLEET__DEVICE_EVENT__INIT;
    char kind[] = "agent.journal_corrupt";
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.seq = seq;
    if (bu != NULL) {
        env.body_case = FIRMFLEET__ENVELOPE__BODY_BACKUP;
        env.backup = bu;
    } else {
        log_error("uplink.bad_row", "seq=%" PRIu64 " body=%d", seq, body);
        placeholder.time_ms = util_now_ms();
        placeholder.kind = kind;
        env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT;
        env.event = &placeholder;
    }
    int rc = s_send(up, &env);
    if (bu)
        firmfleet__backup_upload__free_unpacked(bu, NULL);
    if (rc < 0) {
        pc->err = rc;
        return 1;
    }
    s_sent(up, seq, 1, len);
    return 0;
}

/* Sends committed outbox rows from send_next while the window allows. */
static void s_pump(uplink_t *up)
{
    if (!up->online || up->sock == NULL)
        return;
    journal_t *j = up->a->jr;
    uint64_t top = journal_committed_seq(j);
    for (;;) {
        uint64_t acked = journal_acked(j);
        if (up->send_next <= acked)
            up->send_next = acked + 1;
        if (up->send_next > top)
            return;
        uint64_t inflight = up->send_next - 1 - acked;
        uint64_t window = up->window < UPLINK_WINDOW_MIN ? UPLINK_WINDOW_MIN : up->window;
        if (inflight >= window)
            return;
        int max = (int)s_min(window - inflight, UPLINK_SEND_BATCH);
        struct pump_ctx pc = {.up = up};
        int n = journal_iter_rows(j, up->send_next, top, max, s_send_row, &pc);
        /* rows gathered before the end or a stop (window bytes, a journal
         * hole) are valid: send them; a failed send already dropped its own */
        s_batch_flush(&pc);
        if (n <= 0 || pc.err != 0) {
            if (n == 0)
                log_error("uplink.journal_hole", "expected=%" PRIu64 " top=%" PRIu64, up->send_next,
                          top);
            return; /* -EAGAIN: on_writable resumes */
        }
    }
}

static void s_on_heartbeat(uv_timer_t *t)
{
    uplink_t *up = t->data;
    if (up->online)
        s_send_ack(up);
}

void uplink_after_commit(uplink_t *up)
{
    journal_t *j = up->a->jr;
    if (up->online) {
        if (up->need_ack && s_send_ack(up) == 0)
            up->need_ack = 0;
        s_pump(up);
    }
    int empty = journal_acked(j) == journal_committed_seq(j) && !journal_in_tx(j) &&
                !agent_generating(up->a);
    if (empty && !up->was_empty)
        log_info("uplink.drained", "acked=%" PRIu64, journal_acked(j));
    up->was_empty = empty;
}

/* ---- receiving ---- */

static void s_on_ack(uplink_t *up, uint64_t ack)
{
    journal_t *j = up->a->jr;
    if (ack <= journal_acked(j))
        return;
    if (ack > journal_committed_seq(j)) {
        log_warn("uplink.bad_ack", "ack=%" PRIu64 " last_sent=%" PRIu64, ack,
                 journal_committed_seq(j));
        return;
    }
    /* paced, not urgent: a lost ack costs a resend (agent.h); an urgent
     * commit per ack was an fdatasync for every reply of a busy controller */
    journal_t *tx = agent_tx_paced(up->a);
    if (tx == NULL || journal_ack(tx, ack) < 0)
        return;
    up->progress_ms = util_mono_ms();
    up->resend_ms = UPLINK_RESEND_MS;
    up->bytes_unacked = 0;
    if (up->probe_seq != 0 && ack >= up->probe_seq) {
        uint64_t rtt = up->progress_ms - up->probe_ms;
        uint64_t w = up->window < UPLINK_WINDOW_MIN ? UPLINK_WINDOW_MIN : up->window;
        if (rtt <= UPLINK_RTT_MS / 2)
            up->window = s_min(w * 2, UPLINK_WINDOW);
        else if (rtt > UPLINK_RTT_MS)
            up->window = w / 2 < UPLINK_WINDOW_MIN ? UPLINK_WINDOW_MIN : w / 2;
        up->probe_seq = 0;
        up->srtt_ms = up->srtt_ms ? (up->srtt_ms * 7 + rtt) / 8 : rtt;
    }
    s_pump(up);
}

static void s_go_offline(uplink_t *up)
{
    int was = up->online;
    up->online = 0;
    up->connected = 0;
    up->hello_pending = 0;
    uv_timer_stop(&up->hb_timer);
    if (was && up->a->img != NULL)
        imgcache_on_offline(up->a->img);
}

static void s_on_welcome(uplink_t *up, const Firmfleet__Welcome *w)
{
    struct agent *a = up->a;
    journal_t *j = a->jr;
    uint64_t lr = w->last_received;
    if (agent_key_welcome(a)) {
        /* registered: from now on only the agent's own key, at once */
        s_disconnect(up);
        uv_timer_start(&up->retry_timer, s_on_retry, 0, 0);
        return;
    }
    if (lr > journal_last_seq(j)) {
        /* The controller holds seqs we never wrote: our state was lost or
         * replaced. Renumber what we have after its last so nothing new is
         * mistaken for a duplicate. */
        log_warn("uplink.rebase", "last_received=%" PRIu64 " last_seq=%" PRIu64, lr,
                 journal_last_seq(j));
        journal_t *tx = agent_tx(a);
        if (tx == NULL || journal_rebase(tx, lr) < 0)
            return; /* not online: Hello is retried */
    } else if (lr > journal_acked(j)) {
        journal_t *tx = agent_tx(a);
        if (tx == NULL || journal_ack(tx, lr) < 0)
            return;
    } else if (lr < journal_acked(j)) {
        log_warn("uplink.behind",
                 "last_received=%" PRIu64 " acked=%" PRIu64
                 " reason=\"controller lost acked events\"",
                 lr, journal_acked(j));
    }
    up->send_next = journal_acked(j) + 1;
    up->progress_ms = util_mono_ms();
    up->resend_ms = UPLINK_RESEND_MS;
    up->bytes_unacked = 0;
    up->window = UPLINK_WINDOW_MIN;
    up->probe_seq = 0;
    up->batches = w->event_batches != 0;
    uint64_t hb = w->heartbeat_ms ? w->heartbeat_ms : ZMQX_HEARTBEAT_MS;
    up->heartbeat_ms = hb < 100 ? 100 : hb > 600000 ? 600000 : hb;
    up->online = 1;
    up->connected = 1;
    uv_timer_start(&up->hb_timer, s_on_heartbeat, up->heartbeat_ms, up->heartbeat_ms);
    log_info("uplink.online",
             "endpoint=%s last_received=%" PRIu64 " last_seq=%" PRIu64 " last_applied=%" PRIu64
             " heartbeat_ms=%" PRIu64,
             a->cred.endpoint, lr, journal_last_seq(j), journal_last_applied(j), up->heartbeat_ms);
    if (!up->ever_online) {
        up->ever_online = 1;
        agent_on_online(a);
    }
    if (a->img != NULL)
        imgcache_on_online(a->img);
    s_pump(up);
}

static void s_disconnect(uplink_t *up)
{
    s_go_offline(up);
    zuv_destroy(&up->zs);
    zuv_destroy(&up->zm);
    if (up->sock != NULL) {
        zmq_socket_monitor(up->sock, NULL, 0);
        zmq_close(up->sock);
        up->sock = NULL;
    }
    if (up->mon != NULL) {
        zmq_close(up->mon);
        up->mon = NULL;
    }
}

static void s_on_retry(uv_timer_t *t);

static void s_retry_later(uplink_t *up)
{
    s_disconnect(up);
    uv_timer_start(&up->retry_timer, s_on_retry, UPLINK_RETRY_MS, 0);
    log_info("uplink.retry", "in_ms=%d", UPLINK_RETRY_MS);
}

/* A journaled controller message (seq > 0). */
static void s_on_journaled(uplink_t *up, const wire_env_t *env)
{
    struct agent *a = up->a;
    uint64_t last = journal_last_applied(a->jr);
    up->need_ack = 1; /* duplicates and gaps are answered with our position too */
    if (env->seq <= last)
        return;
    if (env->seq != last + 1) {
        log_debug("uplink.gap", "seq=%" PRIu64 " last_applied=%" PRIu64, env->seq, last);
        return;
    }
    if (agent_tx(a) == NULL)
        return;
    int rc;
    switch (env->body_case) {
    case FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT:
        rc = agent_apply_assignment(a, env->assignment);
        break;
    case FIRMFLEET__ENVELOPE__BODY_CANCEL:
        rc = agent_apply_cancel(a, env->cancel);
        break;
    case FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG:
        agent_on_site_config(a, env->site_config);
        rc = 0;
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc == -EINVAL) {
        /* Poison message: skipping it is better than blocking the link. */
        log_warn("uplink.invalid", "seq=%" PRIu64 " body=%s reason=\"skipped\"", env->seq,
                 wire_body_name(env));
    } else if (rc < 0) {
        return; /* local failure: not applied, the controller resends */
    }
    journal_t *tx = agent_tx(a);
    if (tx != NULL)
        journal_set_last_applied(tx, env->seq);
}

static void s_handle(uplink_t *up, const wire_env_t *env)
{
    struct agent *a = up->a;
    char q[300];
    s_on_ack(up, env->ack);
    if (env->seq > 0) {
        s_on_journaled(up, env);
        return;
    }
    switch (env->body_case) {
    case FIRMFLEET__ENVELOPE__BODY_WELCOME:
        s_on_welcome(up, env->welcome);
        break;
    case FIRMFLEET__ENVELOPE__BODY_HEARTBEAT:
        break;
    case FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG:
        agent_on_site_config(a, env->site_config);
        break;
    case FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK:
        if (a->img != NULL)
            imgcache_on_chunk(a->img, env->image_chunk);
        break;
    case FIRMFLEET__ENVELOPE__BODY_REFUSED:
        log_error("uplink.revoked", "endpoint=%s reason=%s", a->cred.endpoint,
                  log_quote(env->refused->reason ? env->refused->reason : "", q, sizeof q));
        s_retry_later(up);
        break;
    default:
        log_warn("uplink.unexpected", "body=%s seq=%" PRIu64, wire_body_name(env), env->seq);
        break;
    }
}

static void s_on_sock_readable(zuv_t *z, void *arg)
{
    (void)z;
    uplink_t *up = arg;
    for (int i = 0; i < UPLINK_RECV_BATCH && up->sock != NULL; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, up->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        int more = zmq_msg_more(&m);
        wire_env_t *env = more ? NULL : wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
        if (env == NULL)
            log_warn("uplink.bad_frame", "len=%zu multipart=%d", zmq_msg_size(&m), more);
        zmq_msg_close(&m);
        while (more) { /* drop the rest of a multipart message */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, up->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (env != NULL) {
            s_handle(up, env);
            wire_free(env);
        }
    }
}

static void s_on_sock_writable(zuv_t *z, void *arg)
{
    uplink_t *up = arg;
    zuv_want_write(z, 0); /* s_send asks again on -EAGAIN */
    if (up->hello_pending && !up->online) {
        s_send_hello(up);
        return;
    }
    if (up->need_ack && !journal_in_tx(up->a->jr) && s_send_ack(up) == 0)
        up->need_ack = 0;
    s_pump(up);
}

static const char *s_protocol_reason(unsigned v)
{
    switch (v) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "mechanism_mismatch";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "key_exchange";
    default:
        if ((v & 0xf0000000u) == ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED)
            return "zap";
        return "zmtp";
    }
}

static void s_on_monitor_event(uplink_t *up, unsigned event, unsigned value)
{
    struct agent *a = up->a;
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        up->connected = 1;
        up->handshake_failures = 0;
        log_debug("uplink.connected", "endpoint=%s", a->cred.endpoint);
        s_send_hello(up);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        if (up->connected || up->online)
            log_warn("uplink.down", "endpoint=%s", a->cred.endpoint);
        s_go_offline(up);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        log_error("uplink.refused", "endpoint=%s reason=\"not admitted\" zap_status=%u",
                  a->cred.endpoint, value);
        agent_key_refused(a);
        s_retry_later(up);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        log_error("uplink.refused", "endpoint=%s reason=protocol detail=%s code=0x%x",
                  a->cred.endpoint, s_protocol_reason(value), value);
        s_retry_later(up);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        /* The peer hung up mid-handshake. Once is a blip; again and again at
         * reconnect speed (TCP connects, so libzmq's backoff never grows) is
         * a controller that cannot read our CURVE hello: a wrong
         * server_public_key. Treat it as a refusal instead of spinning. */
        if (++up->handshake_failures == 1)
            log_warn("uplink.handshake_failed", "endpoint=%s errno=%u", a->cred.endpoint, value);
        else
            log_debug("uplink.handshake_failed", "endpoint=%s errno=%u n=%d", a->cred.endpoint,
                      value, up->handshake_failures);
        if (up->handshake_failures >= UPLINK_HANDSHAKE_FAILURES) {
            log_error("uplink.refused",
                      "endpoint=%s reason=\"handshake keeps failing; check "
                      "server_public_key\" attempts=%d",
                      a->cred.endpoint, up->handshake_failures);
            up->handshake_failures = 0;
            s_retry_later(up);
        }
        break;
    default:
        break;
    }
}

static void s_on_mon_readable(zuv_t *z, void *arg)
{
    (void)z;
    uplink_t *up = arg;
    for (int i = 0; i < 64 && up->mon != NULL; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, up->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        unsigned event = 0, value = 0;
        int valid = zmq_msg_size(&m) == 6;
        if (valid) {
            uint16_t e16;
            uint32_t v32;
            memcpy(&e16, zmq_msg_data(&m), 2);
            memcpy(&v32, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
            event = e16;
            value = v32;
        }
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, up->mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (valid)
            s_on_monitor_event(up, event, value); /* may close up->mon */
    }
}

/* ---- connecting ---- */

static int s_connect(uplink_t *up)
{
    struct agent *a = up->a;
    char ep[96];
    int one = 1, ivl = 100, ivl_max = 5000, hwm = UPLINK_SNDHWM, zero = 0;
    snprintf(ep, sizeof ep, "inproc://ff-agent-monitor-%p-%u", (void *)up, ++up->conn_gen);
    up->sock = zmq_socket(a->zctx, ZMQ_DEALER);
    up->mon = zmq_socket(a->zctx, ZMQ_PAIR);
    int rc = 0;
    if (up->sock == NULL || up->mon == NULL ||
        zmq_setsockopt(up->sock, ZMQ_CURVE_SERVERKEY, a->cred.server_key, 41) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_CURVE_PUBLICKEY, a->cred.public_key, 41) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_CURVE_SECRETKEY, a->cred.secret_key, 41) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_IMMEDIATE, &one, sizeof one) < 0 ||
        zmq_setsockopt(up->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(up->mon, ZMQ_LINGER, &zero, sizeof zero) < 0)
        rc = -errno;
    if (rc == 0)
        rc = zmqx_apply_limits(up->sock, ZMQX_HEARTBEAT_MS);
    if (rc == 0 && zmq_socket_monitor(up->sock, ep,
                                      ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) < 0)
        rc = -errno;
    if (rc == 0 && zmq_connect(up->mon, ep) < 0)
        rc = -errno;
    if (rc == 0)
        rc = zuv_new(&a->loop, up->mon, s_on_mon_readable, NULL, up, &up->zm);
    if (rc == 0)
        rc = zuv_new(&a->loop, up->sock, s_on_sock_readable, s_on_sock_writable, up, &up->zs);
    if (rc == 0 && zmq_connect(up->sock, a->cred.endpoint) < 0)
        rc = -errno;
    if (rc < 0) {
        log_error("uplink.socket", "endpoint=%s error=\"%s\"", a->cred.endpoint, zmq_strerror(-rc));
        s_disconnect(up);
        return rc;
    }
    up->hello_ms = util_mono_ms();
    log_info("uplink.connecting", "endpoint=%s", a->cred.endpoint);
    return 0;
}

static void s_on_retry(uv_timer_t *t)
{
    uplink_t *up = t->data;
    if (s_connect(up) < 0)
        uv_timer_start(&up->retry_timer, s_on_retry, UPLINK_RETRY_MS, 0);
}

static void s_on_tick(uv_timer_t *t)
{
    uplink_t *up = t->data;
    if (up->sock == NULL)
        return;
    uint64_t now = util_mono_ms();
    if (!up->online) {
        if (now - up->hello_ms >= UPLINK_HELLO_RETRY_MS)
            s_send_hello(up);
        return;
    }
    journal_t *j = up->a->jr;
    uint64_t acked = journal_acked(j);
    uint64_t stall = up->resend_ms ? up->resend_ms : UPLINK_RESEND_MS;
    if (stall < 4 * up->srtt_ms)
        stall = s_min(4 * up->srtt_ms, UPLINK_RESEND_MAX_MS);
    if (journal_committed_seq(j) > acked && up->send_next > acked + 1 &&
        now - up->progress_ms >= stall) {
        log_info("uplink.resend", "from=%" PRIu64 " to=%" PRIu64 " after_ms=%" PRIu64, acked + 1,
                 up->send_next - 1, now - up->progress_ms);
        up->send_next = acked + 1;
        up->progress_ms = now;
        up->resend_ms = up->resend_ms ? up->resend_ms * 2 : UPLINK_RESEND_MS * 2;
        if (up->resend_ms > UPLINK_RESEND_MAX_MS)
            up->resend_ms = UPLINK_RESEND_MAX_MS;
        up->bytes_unacked = 0;
        up->window = up->window / 2 < UPLINK_WINDOW_MIN ? UPLINK_WINDOW_MIN : up->window / 2;
        up->probe_seq = 0;
        s_pump(up);
    }
}

static void s_on_close(uv_handle_t *h)
{
    uplink_t *up = h->data;
    if (--up->open_handles == 0)
        free(up);
}

int uplink_new(struct agent *a, uplink_t **out)
{
    *out = NULL;
    uplink_t *up = calloc(1, sizeof *up);
    if (up == NULL)
        return -ENOMEM;
    up->a = a;
    up->was_empty = journal_acked(a->jr) == journal_committed_seq(a->jr);
    up->heartbeat_ms = ZMQX_HEARTBEAT_MS;
    up->window = UPLINK_WINDOW_MIN;
    uv_timer_init(&a->loop, &up->hb_timer);
    uv_timer_init(&a->loop, &up->tick_timer);
    uv_timer_init(&a->loop, &up->retry_timer);
    up->hb_timer.data = up->tick_timer.data = up->retry_timer.data = up;
    up->open_handles = 3;
    uv_timer_start(&up->tick_timer, s_on_tick, UPLINK_TICK_MS, UPLINK_TICK_MS);
    int rc = s_connect(up);
    if (rc < 0) {
        uplink_destroy(&up);
        return rc;
    }
    *out = up;
    return 0;
}

void uplink_destroy(uplink_t **up_p)
{
    if (up_p == NULL || *up_p == NULL)
        return;
    uplink_t *up = *up_p;
    *up_p = NULL;
    s_disconnect(up);
    uv_close((uv_handle_t *)&up->hb_timer, s_on_close);
    uv_close((uv_handle_t *)&up->tick_timer, s_on_close);
    uv_close((uv_handle_t *)&up->retry_timer, s_on_close);
}
