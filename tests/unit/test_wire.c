/* test_wire.c: framing of the controller link. Every body packs and unpacks
 * to the same message (an EventBatch too); truncated frames, garbage, an
 * unknown body, a frame without a body and an oversize frame are all
 * rejected (NULL) without a crash; a real DEALER/ROUTER pair over inproc
 * carries an Envelope; the seq rule for a batch (in order, duplicate,
 * partial overlap, gap, invalid). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "wire.h"

static uint8_t s_sha[32] = {0xde, 0xad, 0xbe, 0xef, 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
                            13,   14,   15,   16,   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28};
static char s_s1[] = "berlin";
static char s_s2[] = "0.1.0";
static char s_s3[] = "00:04:f2:aa:bb:01";
static char s_s4[] = "polycom/6.4.3";
static char s_s5[] = "image.cached";
static char s_s6[] = "sha256=dead size=3";
static char s_s7[] = "agent key revoked";
static char s_s8[] = "Europe/Berlin";
static char s_s9[] = "SIP78xx.bin";
static uint8_t s_data[1000];

/* Packs env, unpacks it, and checks the repacked bytes are identical (proto3
 * packing is canonical for these messages) and the body case survived. */
static void s_round_trip(wire_env_t *env)
{
    size_t len = 0, len2 = 0;
    uint8_t *buf = wire_pack(env, &len);
    assert_non_null(buf);
    wire_env_t *back = wire_unpack(buf, len);
    assert_non_null(back);
    assert_int_equal(back->body_case, env->body_case);
    assert_int_equal(back->seq, env->seq);
    assert_int_equal(back->ack, env->ack);
    uint8_t *buf2 = wire_pack(back, &len2);
    assert_non_null(buf2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    assert_string_not_equal(wire_body_name(back), "unknown");
    /* every strict prefix cuts the body (the last field): rejected */
    for (size_t cut = 0; cut < len; cut++) {
        wire_env_t *t = wire_unpack(buf, cut);
        assert_null(t);
    }
    wire_free(back);
    free(buf);
    free(buf2);
}

static void test_bodies(void **state)
{
    (void)state;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.seq = 42;
    env.ack = 41;

    ProtobufCBinaryData cached[2] = {{32, s_sha}, {32, s_sha}};
    Firmfleet__Hello h = FIRMFLEET__HELLO__INIT;
    h.site = s_s1;
    h.version = s_s2;
    h.cached = cached;
    h.n_cached = 2;
    h.last_applied = 7;
    h.last_sent = 9;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_round_trip(&env);
    size_t len;
    uint8_t *buf = wire_pack(&env, &len);
    wire_env_t *back = wire_unpack(buf, len);
    assert_string_equal(back->hello->site, "berlin");
    assert_int_equal(back->hello->n_cached, 2);
    assert_int_equal(back->hello->cached[1].len, 32);
    assert_memory_equal(back->hello->cached[1].data, s_sha, 32);
    assert_int_equal(back->hello->last_sent, 9);
    wire_free(back);
    free(buf);

    Firmfleet__Welcome w = FIRMFLEET__WELCOME__INIT;
    w.last_received = 100;
    w.heartbeat_ms = 5000;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    s_round_trip(&env);
    w.event_batches = 1;
    s_round_trip(&env);

    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    hb.now_ms = 1700000000000ull;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_round_trip(&env);
    hb.now_ms = 0; /* an all-default body is still a body */
    s_round_trip(&env);

    Firmfleet__ImageRef ref = FIRMFLEET__IMAGE_REF__INIT, *refs[1] = {&ref};
    ref.sha256.data = s_sha;
    ref.sha256.len = 32;
    ref.size = 123456;
    ref.name = s_s9;
    Firmfleet__DeviceRef dev = FIRMFLEET__DEVICE_REF__INIT, *devs[1] = {&dev};
    dev.mac = s_s3;
    Firmfleet__SiteConfig sc = FIRMFLEET__SITE_CONFIG__INIT;
    sc.site = s_s1;
    sc.tz = s_s8;
    sc.generation = 3;
    sc.images = refs;
    sc.n_images = 1;
    sc.devices = devs;
    sc.n_devices = 1;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_SITE_CONFIG;
    env.site_config = &sc;
    s_round_trip(&env);

    Firmfleet__Assignment as = FIRMFLEET__ASSIGNMENT__INIT;
    as.mac = s_s3;
    as.firmware = s_s4;
    as.files = refs;
    as.n_files = 1;
    as.rollout_id = 5;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_ASSIGNMENT;
    env.assignment = &as;
    s_round_trip(&env);

    Firmfleet__Cancel cn = FIRMFLEET__CANCEL__INIT;
    cn.mac = s_s3;
    cn.rollout_id = 5;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_CANCEL;
    env.cancel = &cn;
    s_round_trip(&env);

    Firmfleet__DeviceEvent ev = FIRMFLEET__DEVICE_EVENT__INIT;
    ev.time_ms = 1;
    ev.kind = s_s5;
    ev.mac = s_s3;
    ev.detail = s_s6;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT;
    env.event = &ev;
    s_round_trip(&env);

    /* an EventBatch: each event survives, in order */
    Firmfleet__DeviceEvent evs[3];
    Firmfleet__DeviceEvent *evp[3];
    for (int i = 0; i < 3; i++) {
        Firmfleet__DeviceEvent init = FIRMFLEET__DEVICE_EVENT__INIT;
        evs[i] = init;
        evs[i].time_ms = 100 + (uint64_t)i;
        evs[i].kind = s_s5;
        evs[i].mac = s_s3;
        evs[i].detail = i == 1 ? s_s6 : s_s2;
        evp[i] = &evs[i];
    }
    Firmfleet__EventBatch eb = FIRMFLEET__EVENT_BATCH__INIT;
    eb.events = evp;
    eb.n_events = 3;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_EVENT_BATCH;
    env.event_batch = &eb;
    s_round_trip(&env);
    size_t blen = 0;
    uint8_t *bbuf = wire_pack(&env, &blen);
    assert_non_null(bbuf);
    wire_env_t *bback = wire_unpack(bbuf, blen);
    assert_non_null(bback);
    assert_string_equal(wire_body_name(bback), "event_batch");
    assert_int_equal(bback->event_batch->n_events, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bback->event_batch->events[i]->time_ms, 100 + i);
        assert_string_equal(bback->event_batch->events[i]->detail, i == 1 ? s_s6 : s_s2);
    }
    wire_free(bback);
    free(bbuf);

    Firmfleet__ImageRequest rq = FIRMFLEET__IMAGE_REQUEST__INIT;
    rq.sha256.data = s_sha;
    rq.sha256.len = 32;
    rq.offset = WIRE_CHUNK * 3;
    rq.credits = WIRE_CREDITS;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_REQUEST;
    env.image_request = &rq;
    s_round_trip(&env);

    Firmfleet__ImageChunk ch = FIRMFLEET__IMAGE_CHUNK__INIT;
    ch.sha256.data = s_sha;
    ch.sha256.len = 32;
    ch.offset = 0;
    ch.data.data = s_data;
    ch.data.len = sizeof s_data;
    ch.total = 5000;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_IMAGE_CHUNK;
    env.image_chunk = &ch;
    s_round_trip(&env);

    Firmfleet__BackupUpload bu = FIRMFLEET__BACKUP_UPLOAD__INIT;
    bu.mac = s_s3;
    bu.name = s_s9;
    bu.data.data = s_data;
    bu.data.len = 10;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_BACKUP;
    env.backup = &bu;
    s_round_trip(&env);

    Firmfleet__Refused rf = FIRMFLEET__REFUSED__INIT;
    rf.reason = s_s7;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_REFUSED;
    env.refused = &rf;
    s_round_trip(&env);
}

/* The seq rule for a batch (controller/ctl_link.c s_on_batch applies from
 * the index it returns): in order, duplicate, partial overlap, gap, and
 * batches that are not valid at all. */
static void test_batch_seq(void **state)
{
    (void)state;
    size_t first = 99;
    /* exactly the next: all of it */
    assert_int_equal(wire_batch_first(11, 5, 10, &first), 1);
    assert_int_equal(first, 0);
    assert_int_equal(wire_batch_first(1, 1, 0, &first), 1);
    assert_int_equal(first, 0);
    /* a whole duplicate: nothing, so the ack answers */
    assert_int_equal(wire_batch_first(11, 5, 15, &first), 0);
    assert_int_equal(wire_batch_first(11, 5, 40, &first), 0);
    assert_int_equal(wire_batch_first(1, 1, 1, &first), 0);
    /* a partial overlap (a resend from an older ack): only the new tail */
    assert_int_equal(wire_batch_first(11, 5, 12, &first), 1);
    assert_int_equal(first, 2); /* seq 13 */
    assert_int_equal(wire_batch_first(11, 5, 14, &first), 1);
    assert_int_equal(first, 4); /* seq 15 alone */
    assert_int_equal(wire_batch_first(1, WIRE_BATCH_MAX, WIRE_BATCH_MAX - 1, &first), 1);
    assert_int_equal(first, WIRE_BATCH_MAX - 1);
    /* a gap: nothing of it, the sender rewinds */
    assert_int_equal(wire_batch_first(12, 5, 10, &first), -ERANGE);
    assert_int_equal(wire_batch_first(UINT64_MAX - 3, 2, 0, &first), -ERANGE);
    /* not a batch: seq 0, empty, too many, wrapping */
    assert_int_equal(wire_batch_first(0, 5, 0, &first), -EINVAL);
    assert_int_equal(wire_batch_first(1, 0, 0, &first), -EINVAL);
    assert_int_equal(wire_batch_first(1, WIRE_BATCH_MAX + 1, 0, &first), -EINVAL);
    assert_int_equal(wire_batch_first(UINT64_MAX, 2, UINT64_MAX - 1, &first), -EINVAL);
    /* the top of the seq space: no wrap in the arithmetic */
    assert_int_equal(wire_batch_first(UINT64_MAX - 1, 2, UINT64_MAX - 2, &first), 1);
    assert_int_equal(first, 0);
    assert_int_equal(wire_batch_first(UINT64_MAX - 1, 2, UINT64_MAX, &first), 0);
}

/* A batch larger than WIRE_BATCH_MAX is refused on its bytes, before
 * protobuf-c makes one struct per event: the largest allowed unpacks; a
 * second body occurrence pushing the count past it (the two merge) does
 * not. */
static void test_batch_bound_before_unpack(void **state)
{
    (void)state;
    /* key 21, wire type 2 (0xaa 0x01), then the EventBatch: n x (key 1 wt 2,
     * length 0) = n x "0a 00" */
    uint8_t buf[16 + 2 * WIRE_BATCH_MAX];
    size_t o = 0;
    buf[o++] = 0x08; /* seq = 1 */
    buf[o++] = 0x01;
    buf[o++] = 0xaa;
    buf[o++] = 0x01;
    size_t n = WIRE_BATCH_MAX, body = 2 * n;
    buf[o++] = (uint8_t)(0x80 | (body & 0x7f));
    buf[o++] = (uint8_t)(body >> 7);
    for (size_t i = 0; i < n; i++) {
        buf[o++] = 0x0a;
        buf[o++] = 0x00;
    }
    wire_env_t *env = wire_unpack(buf, o);
    assert_non_null(env);
    assert_int_equal(env->event_batch->n_events, WIRE_BATCH_MAX);
    wire_free(env);
    /* a second occurrence with one more event: WIRE_BATCH_MAX + 1 in all */
    buf[o++] = 0xaa;
    buf[o++] = 0x01;
    buf[o++] = 0x02;
    buf[o++] = 0x0a;
    buf[o++] = 0x00;
    assert_null(wire_unpack(buf, o));
}

static void test_empty_and_no_body(void **state)
{
    (void)state;
    assert_null(wire_unpack("", 0));
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.seq = 5;
    env.ack = 4;
    size_t len = 0;
    uint8_t *buf = wire_pack(&env, &len);
    assert_non_null(buf);
    assert_true(len > 0);
    assert_null(wire_unpack(buf, len)); /* seq and ack but no body */
    free(buf);
    wire_free(NULL);
}

static void test_unknown_body(void **state)
{
    (void)state;
    /* seq=1, then field 30 (not in the oneof), length-delimited, 2 bytes */
    const uint8_t unknown[] = {0x08, 0x01, 0xf2, 0x01, 0x02, 0xaa, 0xbb};
    assert_null(wire_unpack(unknown, sizeof unknown));
    /* a body field with the wrong wire type (varint where a message belongs) */
    const uint8_t wrongtype[] = {0x08, 0x01, 0x50, 0x01};
    assert_null(wire_unpack(wrongtype, sizeof wrongtype));
    /* a body whose length runs past the end */
    const uint8_t overrun[] = {0x62, 0x7f, 0x08, 0x01};
    assert_null(wire_unpack(overrun, sizeof overrun));
}

static void test_garbage(void **state)
{
    (void)state;
    uint8_t ff[64];
    memset(ff, 0xff, sizeof ff);
    assert_null(wire_unpack(ff, sizeof ff));
    uint8_t buf[256];
    uint32_t x = 2463534242u; /* xorshift32: fixed seed, reproducible */
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        wire_env_t *env = wire_unpack(buf, len);
        if (env != NULL) { /* random bytes can be a valid message; then it must be usable */
            assert_int_not_equal(env->body_case, FIRMFLEET__ENVELOPE__BODY__NOT_SET);
            (void)wire_body_name(env);
            wire_free(env);
        }
    }
}

static void test_oversize(void **state)
{
    (void)state;
    size_t big = WIRE_MAX_MSG + 1;
    uint8_t *raw = calloc(1, big);
    assert_non_null(raw);
    assert_null(wire_unpack(raw, big));
    /* a well-formed envelope just over the bound is refused by both sides */
    Firmfleet__BackupUpload bu = FIRMFLEET__BACKUP_UPLOAD__INIT;
    bu.data.data = raw;
    bu.data.len = WIRE_MAX_MSG;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_BACKUP;
    env.backup = &bu;
    size_t len = 0;
    uint8_t *buf = wire_pack(&env, &len);
    assert_non_null(buf);
    assert_true(len > WIRE_MAX_MSG);
    assert_null(wire_unpack(buf, len));
    assert_int_equal(wire_send(NULL, NULL, 0, &env, ZMQ_DONTWAIT), -EMSGSIZE);
    free(buf);
    free(raw);
}

static void test_socket_pair(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(router, "inproc://test-wire"), 0);
    assert_int_equal(zmq_connect(dealer, "inproc://test-wire"), 0);
    Firmfleet__Heartbeat hb = FIRMFLEET__HEARTBEAT__INIT;
    hb.now_ms = 77;
    wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
    env.ack = 3;
    env.body_case = FIRMFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    assert_int_equal(wire_send(dealer, NULL, 0, &env, 0), 0);
    uint8_t rid[256];
    int rid_len = zmq_recv(router, rid, sizeof rid, 0);
    assert_true(rid_len > 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, router, 0) >= 0);
    wire_env_t *got = wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    assert_non_null(got);
    assert_int_equal(got->ack, 3);
    assert_int_equal(got->heartbeat->now_ms, 77);
    wire_free(got);
    /* and back through the ROUTER to the routing id */
    assert_int_equal(wire_send(router, rid, (size_t)rid_len, &env, 0), 0);
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, dealer, 0) >= 0);
    got = wire_unpack(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    assert_non_null(got);
    assert_int_equal(got->body_case, FIRMFLEET__ENVELOPE__BODY_HEARTBEAT);
    wire_free(got);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodies),       cmocka_unit_test(test_empty_and_no_body),
        cmocka_unit_test(test_unknown_body), cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_oversize),     cmocka_unit_test(test_socket_pair),
        cmocka_unit_test(test_batch_seq),    cmocka_unit_test(test_batch_bound_before_unpack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
