/* test_agent.c: the site agent against a scripted controller. The test owns a
 * CURVE ROUTER on loopback and drives the agent's loop in the same thread
 * (uv_run NOWAIT between socket reads), so every step is deterministic:
 *   - Hello/Welcome, events sent only after their commit, acks, 3 s resend;
 *   - events committed together leave as EventBatches only when the
 *     Welcome said so, bounded by the window, resent from the last ack;
 *   - journaled controller messages: apply last+1, re-ack duplicates, drop
 *     gaps, skip invalid ones; garbage frames do not hurt;
 *   - image pull under credits with bad chunks interleaved, a corrupt image,
 *     an image the controller lacks;
 *   - Refused closes the link; the loop ends with no handle left open. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "agent.h"
#include "hash.h"
#include "journal.h"
#include "log.h"
#include "uplink.h"
#include "util.h"
#include "wire.h"

struct fx {
    char dir[64];
    void *zctx;
    void *router;
    char endpoint[128];
    uint8_t rid[256];
    size_t rid_len;
    struct agent *a;
};

static int s_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ff-test-agent.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    log_set_level(getenv("FF_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    char spub[41], ssec[41];
    struct agent_cred cred;
    memset(&cred, 0, sizeof cred);
    if (zmq_curve_keypair(spub, ssec) < 0 ||
        zmq_curve_keypair(cred.public_key, cred.secret_key) < 0)
        return -1;
    f->zctx = zmq_ctx_new();
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, ssec, 41);
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->router, "tcp://127.0.0.1:*") < 0)
        return -1;
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    snprintf(cred.agent, sizeof cred.agent, "berlin-1");
    snprintf(cred.site, sizeof cred.site, "berlin");
    snprintf(cred.endpoint, sizeof cred.endpoint, "%s", f->endpoint);
    memcpy(cred.server_key, spub, 41);
    char sdir[96];
    snprintf(sdir, sizeof sdir, "%s/state", f->dir);
    struct agent_opts opts = {.state_dir = sdir};
    if (agent_new(&opts, &cred, &f->a) < 0)
        return -1;
    *state = f;
    return 0;
}

static int s_count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
    return 0;
}

static void s_walk(uv_handle_t *h, void *arg)
{
    s_count_handle(h, arg);
}

static int s_teardown(void **state)
{
    struct fx *f = *state;
    agent_stop(f->a, 0);
    int rc = agent_run(f->a);
    int open = 0;
    uv_walk(&f->a->loop, s_walk, &open);
    agent_destroy(&f->a);
    zmq_close(f->router);
    zmq_ctx_term(f->zctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int sys = system(cmd);
    free(f);
    /* the loop ended with every handle closed, and the exit status is 0 */
    return rc == 0 && open == 0 && sys == 0 ? 0 : -1;
}

/* Runs the agent's loop once, then waits up to 2 ms for the router. */
static void s_turn(struct fx *f)
{
    uv_run(&f->a->loop, UV_RUN_NOWAIT);
    zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, 2);
}

static void s_spin(struct fx *f, int ms)
{
    uint64_t end = util_mono_ms() + (uint64_t)ms;
    while (util_mono_ms() < end)
        s_turn(f);
}

/* Next envelope from the agent with body `want` (others are skipped), or
 * NULL after timeout_ms. */
static wire_env_t *s_recv(struct fx *f, int want, int timeout_ms)
{
    uint64_t end = util_mono_ms() + (uint64_t)timeout_ms;
    while (util_mono_ms() < end) {
        s_turn(f);
        for (;;) {
            uint8_t rid[256];
            int n = zmq_recv(f->router, rid, sizeof rid, ZMQ_DONTWAIT);
            if (n < 0)
                break;
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, f->router, 0);
            memcpy(f->rid, rid, (size_t)n);
            f->rid_len = (size_t)n;
            wire_env_t *env = wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
            assert_non_null(env); /* the agent only sends valid frames */
            if ((int)env->body_case == want)
                return env;
            wire_free(env);
        }
    }
    return NULL;
}

static void s_send(struct fx *f, wire_env_t *env)
{
    assert_int_equal(wire_send(f->router, f->rid, f->rid_len, env, 0), 0);
}

static void s_send_raw(struct fx *f, const void *data, size_t len, int more)
{
    zmq_send(f->router, f->rid, f->rid_len, ZMQ_SNDMORE);
    zmq_send(f->router, data, len, more ? ZMQ_SNDMORE : 0);
    if (more)
        zmq_send(f->router, "x", 1, 0);
}

/* Hello in, Welcome out (saying whether EventBatch is taken), until the
 * agent is online. */
static void s_online_batches(struct fx *f, uint64_t last_received, int batches)
{
    wire_env_t *h = s_recv(f, FIRMFLEET__ENVELOPE__BODY_HELLO, 5000);
    assert_non_null(h);
    assert_string_equal(h->hello->site, "berlin");
    assert_string_equal(h->hello->version, AGENT_VERSION);
    wire_free(h);
    Firmfleet__Welcome w = FIRMFLEET__WELCOME__INIT;
    w.last_received = last_received;
    w.heartbeat_ms = 5000;
    w.event_batches = batches != 0;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    s_send(f, &env);
    for (int i = 0; i < 1000 && !uplink_online(f->a->up); i++)
        s_turn(f);
    assert_true(uplink_online(f->a->up));
}

/* An older controller: its Welcome has no event_batches. */
static void s_online(struct fx *f, uint64_t last_received)
{
    s_online_batches(f, last_received, 0);
}

/* The next ack heartbeat's ack value. */
static uint64_t s_next_ack(struct fx *f)
{
    wire_env_t *e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_HEARTBEAT, 3000);
    assert_non_null(e);
    uint64_t ack = e->ack;
    wire_free(e);
    return ack;
}

static void test_events_out(void **state)
{
    struct fx *f = *state;
    s_online(f, 0);
    assert_int_equal(agent_emit_event(f->a, "test.one", "", "k=v"), 0);
    /* journaled but not committed: nothing may have left */
    zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 100), 0);
    wire_env_t *e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 3000);
    assert_non_null(e);
    assert_int_equal(e->seq, 1);
    assert_string_equal(e->event->kind, "test.one");
    assert_string_equal(e->event->detail, "k=v");
    assert_true(journal_committed_seq(f->a->jr) >= 1);
    wire_free(e);

    /* the controller's ack deletes the row */
    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.ack = 1;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(f, &env);
    for (int i = 0; i < 500 && journal_acked(f->a->jr) < 1; i++)
        s_turn(f);
    assert_int_equal(journal_acked(f->a->jr), 1);

    /* an ack beyond what was sent is ignored, not trusted */
    env.ack = 99;
    s_send(f, &env);
    s_spin(f, 50);
    assert_int_equal(journal_acked(f->a->jr), 1);

    /* unacked events are resent after 3 s without ack progress */
    assert_int_equal(agent_emit_event(f->a, "test.two", "", ""), 0);
    assert_int_equal(agent_emit_event(f->a, "test.three", "", ""), 0);
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 3000);
    assert_non_null(e);
    assert_int_equal(e->seq, 2);
    wire_free(e);
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 3000);
    assert_non_null(e);
    assert_int_equal(e->seq, 3);
    wire_free(e);
    uint64_t t0 = util_mono_ms();
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 6000);
    assert_non_null(e);
    assert_int_equal(e->seq, 2);
    assert_true(util_mono_ms() - t0 >= 2000);
    wire_free(e);
}

static void s_ack(struct fx *f, uint64_t ack)
{
    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.ack = ack;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(f, &env);
}

/* Events committed together leave as EventBatches when the Welcome said
 * so: Envelope.seq is the first event's, the events follow in order, the
 * window bounds a batch (16 at first), an ack lets the next batch go, and
 * a rewind resends from the last ack as a batch again. */
static void test_event_batches(void **state)
{
    struct fx *f = *state;
    s_online_batches(f, 0, 1);
    enum { N = 100 };
    char detail[32];
    /* one loop turn: all N in one commit */
    for (int i = 1; i <= N; i++) {
        snprintf(detail, sizeof detail, "i=%d", i);
        assert_int_equal(agent_emit_event(f->a, "test.batch", "", detail), 0);
    }
    wire_env_t *e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 3000);
    assert_non_null(e);
    assert_int_equal(e->seq, 1);
    assert_int_equal(e->event_batch->n_events, 16); /* UPLINK_WINDOW_MIN */
    for (size_t i = 0; i < e->event_batch->n_events; i++) {
        snprintf(detail, sizeof detail, "i=%zu", i + 1);
        assert_string_equal(e->event_batch->events[i]->kind, "test.batch");
        assert_string_equal(e->event_batch->events[i]->detail, detail);
    }
    wire_free(e);
    /* nothing more until an ack: the window is full */
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 200);
    assert_null(e);
    s_ack(f, 16); /* quick: the window doubles to 32 */
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 3000);
    assert_non_null(e);
    assert_int_equal(e->seq, 17);
    assert_int_equal(e->event_batch->n_events, 32);
    assert_string_equal(e->event_batch->events[0]->detail, "i=17");
    wire_free(e);
    /* no ack: after the 3 s stall it rewinds to 17, again as one batch
     * (the halved window: 16) */
    e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 6000);
    assert_non_null(e);
    assert_int_equal(e->seq, 17);
    assert_int_equal(e->event_batch->n_events, 16);
    wire_free(e);
    /* the acks drain it all, in batches, contiguous */
    uint64_t next = 33;
    s_ack(f, 32);
    for (int k = 0; k < 20 && journal_acked(f->a->jr) < N; k++) {
        e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, 3000);
        if (e == NULL)
            e = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 100); /* a last one alone */
        assert_non_null(e);
        size_t n = e->body_case == FIRMFLEET__ENVELOPE__BODY_EVENT ? 1 : e->event_batch->n_events;
        if (e->seq < next) { /* a resend overlapping what we saw */
            assert_true(e->seq + n - 1 >= next - 1);
        } else {
            assert_int_equal(e->seq, next);
        }
        next = e->seq + n;
        s_ack(f, next - 1);
        wire_free(e);
        for (int i = 0; i < 500 && journal_acked(f->a->jr) < next - 1; i++)
            s_turn(f);
    }
    assert_int_equal(journal_acked(f->a->jr), N);
}

/* A backup row ends a batch and goes alone, under its own seq. */
static void test_batch_backup(void **state)
{
    struct fx *f = *state;
    s_online_batches(f, 0, 1);
    uint8_t data[100] = {1}, sha[32] = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(agent_emit_event(f->a, "test.before", "", ""), 0);
    assert_int_equal(
        agent_emit_backup(f->a, "00:04:f2:aa:bb:01", "cfg.xml", data, sizeof data, sha), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(agent_emit_event(f->a, "test.after", "", ""), 0);
    int want[] = {FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH, FIRMFLEET__ENVELOPE__BODY_BACKUP,
                  FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH};
    uint64_t seqs[] = {1, 4, 5};
    for (int k = 0; k < 3; k++) {
        wire_env_t *e = s_recv(f, want[k], 3000); /* skips others: order counts */
        assert_non_null(e);
        assert_int_equal(e->seq, seqs[k]);
        if (want[k] == FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH) {
            assert_int_equal(e->event_batch->n_events, 3);
            assert_string_equal(e->event_batch->events[0]->kind,
                                k == 0 ? "test.before" : "test.after");
        } else {
            assert_string_equal(e->backup->name, "cfg.xml");
        }
        wire_free(e);
    }
}

static wire_env_t s_asg_env(Firmfleet__Assignment *as, uint64_t seq, char *mac)
{
    static char fw[] = "polycom/6.4.3";
    Firmfleet__Assignment init = FIRMFLEET__ASSIGNMENT__INIT;
    *as = init;
    as->mac = mac;
    as->firmware = fw;
    as->rollout_id = 7;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.seq = seq;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT;
    env.assignment = as;
    return env;
}

static void test_journaled_in(void **state)
{
    struct fx *f = *state;
    char mac1[] = "00-04-F2-AA-BB-01", mac2[] = "00:04:f2:aa:bb:02", bad[] = "not-a-mac";
    s_online(f, 0);
    Firmfleet__Assignment as;
    wire_env_t env = s_asg_env(&as, 1, mac1);
    s_send(f, &env);
    assert_int_equal(s_next_ack(f), 1);
    assert_int_equal(journal_assignment_count(f->a->jr), 1);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(journal_assignment_get(f->a->jr, "00:04:f2:aa:bb:01", &blob, &len), 1);
    free(blob);

    s_send(f, &env); /* duplicate: re-acked, not re-applied */
    assert_int_equal(s_next_ack(f), 1);
    assert_int_equal(journal_last_applied(f->a->jr), 1);

    env = s_asg_env(&as, 3, mac2); /* gap */
    s_send(f, &env);
    assert_int_equal(s_next_ack(f), 1);
    assert_int_equal(journal_assignment_count(f->a->jr), 1);

    Firmfleet__Cancel cn = FIRMFLEET__CANCEL__INIT;
    cn.mac = mac1;
    cn.rollout_id = 7;
    wire_env_t cenv = FIRMFLEET__ENVELOPE__INIT;
    cenv.seq = 2;
    cenv.body_case = FIRMFLEET__ENVELOPE__BODY_CANCEL;
    cenv.cancel = &cn;
    s_send(f, &cenv);
    assert_int_equal(s_next_ack(f), 2);
    assert_int_equal(journal_assignment_count(f->a->jr), 0);

    env = s_asg_env(&as, 3, bad); /* invalid: skipped so the link does not block */
    s_send(f, &env);
    assert_int_equal(s_next_ack(f), 3);
    assert_int_equal(journal_assignment_count(f->a->jr), 0);

    /* garbage: empty frame, random bytes, multipart, unknown body, seq 0 assignment */
    s_send_raw(f, "", 0, 0);
    s_send_raw(f, "\xff\xff\xff\xff\xff\xff", 6, 0);
    s_send_raw(f, "\x08\x01", 2, 1);
    s_send_raw(f, "\x08\x01\xf2\x01\x00", 5, 0);
    env = s_asg_env(&as, 0, mac2);
    s_send(f, &env);
    Firmfleet__ImageChunk ch = FIRMFLEET__IMAGE_CHUNK__INIT; /* no pull running */
    uint8_t sha[5] = {1, 2, 3, 4, 5};
    ch.sha256.data = sha;
    ch.sha256.len = sizeof sha;
    wire_env_t chenv = FIRMFLEET__ENVELOPE__INIT;
    chenv.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK;
    chenv.image_chunk = &ch;
    s_send(f, &chenv);
    s_spin(f, 100);
    assert_int_equal(journal_assignment_count(f->a->jr), 0);

    env = s_asg_env(&as, 4, mac2); /* still applying in order */
    s_send(f, &env);
    assert_int_equal(s_next_ack(f), 4);
    assert_int_equal(journal_assignment_count(f->a->jr), 1);
}

/* Deterministic pseudo-random image bytes. */
static uint8_t *s_image(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static void s_site_config(struct fx *f, uint64_t gen, uint8_t sha[32], uint64_t size)
{
    static char site[] = "berlin", name[] = "fw.bin";
    Firmfleet__ImageRef ref = FIRMFLEET__IMAGE_REF__INIT, *refs[1] = {&ref};
    ref.sha256.data = sha;
    ref.sha256.len = 32;
    ref.size = size;
    ref.name = name;
    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    sc.site = site;
    sc.generation = gen;
    sc.images = refs;
    sc.n_images = 1;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG;
    env.site_config = &sc;
    s_send(f, &env);
}

static void s_chunk(struct fx *f, const uint8_t *sha, size_t sha_len, uint64_t off,
                    const uint8_t *data, size_t len, uint64_t total, char *error)
{
    Firmfleet__ImageChunk ch = FIRMFLEET__IMAGE_CHUNK__INIT;
    ch.sha256.data = (uint8_t *)(uintptr_t)sha;
    ch.sha256.len = sha_len;
    ch.offset = off;
    ch.data.data = (uint8_t *)(uintptr_t)data;
    ch.data.len = len;
    ch.total = total;
    ch.error = error;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK;
    env.image_chunk = &ch;
    s_send(f, &env);
}

/* Serves ImageRequests from img until the agent journals an event; returns
 * it (kind checked by the caller). With `bad`, each request is answered
 * first with invalid chunks. */
static wire_env_t *s_serve(struct fx *f, const uint8_t *sha, const uint8_t *img, uint64_t total,
                           int bad, uint64_t *served)
{
    uint64_t end = util_mono_ms() + 20000;
    uint8_t *big = calloc(1, WIRE_CHUNK + 1);
    while (util_mono_ms() < end) {
        s_turn(f);
        uint8_t rid[256];
        int n = zmq_recv(f->router, rid, sizeof rid, ZMQ_DONTWAIT);
        if (n < 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, f->router, 0);
        wire_env_t *env = wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
        assert_non_null(env);
        if (env->body_case == FIRMFLEET__ENVELOPE__BODY_EVENT) {
            free(big);
            return env;
        }
        if (env->body_case == FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST) {
            Firmfleet__ImageRequest *rq = env->image_request;
            assert_int_equal(rq->sha256.len, 32);
            assert_memory_equal(rq->sha256.data, sha, 32);
            assert_true(rq->credits >= 1 && rq->credits <= WIRE_CREDITS);
            assert_true(rq->offset < total);
            if (bad) {
                s_chunk(f, sha, 31, rq->offset, img, 10, total, NULL);             /* short sha */
                s_chunk(f, sha, 32, rq->offset, big, WIRE_CHUNK + 1, total, NULL); /* too big */
                s_chunk(f, sha, 32, total, img, 1, total, NULL);                /* beyond total */
                s_chunk(f, sha, 32, rq->offset + 1, img, 1, total, NULL);       /* out of order */
                s_chunk(f, sha, 32, rq->offset, img, 0, total, NULL);           /* empty */
                s_chunk(f, sha, 32, UINT64_MAX - 3, img, 10, UINT64_MAX, NULL); /* wraps */
            }
            uint64_t off = rq->offset;
            for (uint32_t i = 0; i < rq->credits && off < total; i++) {
                uint64_t len = total - off < WIRE_CHUNK ? total - off : WIRE_CHUNK;
                s_chunk(f, sha, 32, off, img + off, (size_t)len, total, NULL);
                *served += len;
                off += len;
            }
        }
        wire_free(env);
    }
    free(big);
    return NULL;
}

static void test_image_pull(void **state)
{
    struct fx *f = *state;
    s_online(f, 0);
    const uint64_t total = 3 * WIRE_CHUNK * WIRE_CREDITS + 1000; /* several requests, odd tail */
    uint8_t *img = s_image(total, 12345);
    uint8_t sha[32];
    hash_ctx_t *h = hash_new();
    hash_update(h, img, total);
    hash_final(h, sha);
    hash_destroy(&h);
    char hex[65];
    util_hex(sha, 32, hex);

    s_site_config(f, 1, sha, total);
    uint64_t served = 0;
    wire_env_t *ev = s_serve(f, sha, img, total, 1, &served);
    assert_non_null(ev);
    assert_string_equal(ev->event->kind, "image.cached");
    assert_non_null(strstr(ev->event->detail, hex));
    wire_free(ev);
    assert_int_equal(served, total); /* nothing requested twice */
    char path[256];
    snprintf(path, sizeof path, "%s/state/cache/%s", f->dir, hex);
    uint8_t got[32];
    assert_int_equal(hash_file(path, UINT64_MAX, got, NULL), 0);
    assert_memory_equal(got, sha, 32);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    snprintf(path, sizeof path, "%s/state/cache/partial/%s.part", f->dir, hex);
    assert_int_not_equal(stat(path, &st), 0);
    struct journal_image row;
    assert_int_equal(journal_image_get(f->a->jr, hex, &row), 1);
    assert_int_equal(row.state, JOURNAL_IMG_CACHED);

    /* an image whose bytes do not hash to its name */
    uint8_t wrong[32];
    memcpy(wrong, sha, 32);
    wrong[0] ^= 0xff;
    s_site_config(f, 2, wrong, total);
    served = 0;
    ev = s_serve(f, wrong, img, total, 0, &served);
    assert_non_null(ev);
    assert_string_equal(ev->event->kind, "image.corrupt");
    wire_free(ev);

    /* an image the controller does not have */
    uint8_t missing[32];
    memset(missing, 0x5a, 32);
    s_site_config(f, 3, missing, 0);
    wire_env_t *rq;
    while ((rq = s_recv(f, FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST, 5000)) != NULL &&
           memcmp(rq->image_request->sha256.data, missing, 32) != 0)
        wire_free(rq); /* requests for the dropped corrupt image, already queued */
    assert_non_null(rq);
    wire_free(rq);
    char err[] = "image not in the controller's store";
    s_chunk(f, missing, 32, 0, NULL, 0, 0, err);
    ev = s_recv(f, FIRMFLEET__ENVELOPE__BODY_EVENT, 3000);
    assert_non_null(ev);
    assert_string_equal(ev->event->kind, "image.unavailable");
    wire_free(ev);
    /* an older generation changes nothing */
    s_site_config(f, 1, sha, total);
    s_spin(f, 100);
    uint64_t gen = 0;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(journal_config_get(f->a->jr, &gen, &blob, &len), 1);
    assert_int_equal(gen, 3);
    free(blob);
    free(img);
}

static void test_refused(void **state)
{
    struct fx *f = *state;
    s_online(f, 0);
    char reason[] = "agent key revoked";
    Firmfleet__Refused r = FIRMFLEET__REFUSED__INIT;
    r.reason = reason;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_REFUSED;
    env.refused = &r;
    s_send(f, &env);
    s_spin(f, 100);
    assert_false(uplink_online(f->a->up));
    /* no new Hello within a second: it waits UPLINK_RETRY_MS */
    wire_env_t *h = s_recv(f, FIRMFLEET__ENVELOPE__BODY_HELLO, 1000);
    assert_null(h);
}

int main(void)
{
    if (hash_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_out, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_event_batches, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_batch_backup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_journaled_in, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_image_pull, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
