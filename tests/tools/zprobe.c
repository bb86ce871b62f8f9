/* zprobe.c: a hostile or naive ZeroMQ client for the system tests.
 *   zprobe plain ENDPOINT        DEALER without CURVE: exits 0 when refused
 *                                (no handshake within 3 s), 1 when admitted
 *   zprobe curve ENDPOINT CRED   DEALER with CURVE from a credential file;
 *                                exits 0 when the handshake succeeds and a
 *                                Welcome comes back, 1 when refused
 *   zprobe garbage ENDPOINT CRED connects with CURVE and sends 200 malformed
 *                                frames of random sizes; exits 0 when sent
 * Every wait is bounded; nothing here retries forever.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "wire.h"

static long s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first monitor event in want within ms in all (an absolute deadline: a
 * peer that keeps the socket reconnecting, each try an event we do not want,
 * must not keep the wait open), or 0. */
static int s_events(void *mon, int want, int ms)
{
    zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
    long end = s_ms() + ms, left;
    while ((left = end - s_ms()) > 0 && zmq_poll(&it, 1, left) > 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, 0) < 0)
            return -1;
        uint16_t ev = 0;
        memcpy(&ev, zmq_msg_data(&m), 2);
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        zmq_msg_recv(&m, mon, 0);
        zmq_msg_close(&m);
        if (ev & want)
            return ev;
    }
    return 0;
}

static int s_curve(void *s, const char *cred)
{
    json_error_t err;
    json_t *j = json_load_file(cred, 0, &err);
    if (j == NULL) {
        fprintf(stderr, "zprobe: %s: %s\n", cred, err.text);
        return -1;
    }
    const char *sk = json_string_value(json_object_get(j, "server_public_key"));
    const char *pk = json_string_value(json_object_get(j, "public_key"));
    const char *sec = json_string_value(json_object_get(j, "secret_key"));
    int rc = (sk && pk && sec && zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, sk, 40) == 0 &&
              zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pk, 40) == 0 &&
              zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) == 0)
                 ? 0
                 : -1;
    json_decref(j);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: zprobe plain|curve|garbage ENDPOINT [CRED]\n");
        return 2;
    }
    const char *mode = argv[1], *ep = argv[2];
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (strcmp(mode, "plain") != 0) {
        if (argc < 4 || s_curve(s, argv[3]) < 0)
            return 2;
    }
    zmq_socket_monitor(s, "inproc://mon", ZMQ_EVENT_ALL);
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    zmq_connect(mon, "inproc://mon");
    zmq_connect(s, ep);
    int ev = s_events(mon,
                      ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED,
                      3000);
    int admitted = ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    printf("zprobe: %s handshake %s (event %d)\n", mode, admitted ? "succeeded" : "refused", ev);
    int rc = 1;
    if (strcmp(mode, "plain") == 0) {
        rc = admitted ? 1 : 0;
    } else if (strcmp(mode, "curve") == 0 && admitted) {
        /* say Hello and wait for anything back */
        wire_env_t env = FIRMFLEET__ENVELOPE__INIT;
        Firmfleet__Hello h = FIRMFLEET__HELLO__INIT;
        env.body_case = FIRMFLEET__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        wire_send(s, NULL, 0, &env, 0);
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 3000) > 0) {
            char buf[65536];
            int n = zmq_recv(s, buf, sizeof buf, 0);
            wire_env_t *got = n > 0 ? wire_unpack(buf, (size_t)(n > 65536 ? 65536 : n)) : NULL;
            printf("zprobe: got %s\n", got ? wire_body_name(got) : "an unparsable frame");
            rc = got && got->body_case == FIRMFLEET__ENVELOPE__BODY_WELCOME ? 0 : 1;
            wire_free(got);
        }
    } else if (strcmp(mode, "garbage") == 0 && admitted) {
        srand(42);
        for (int i = 0; i < 200; i++) {
            size_t n = (size_t)(rand() % 300);
            unsigned char buf[300];
            for (size_t k = 0; k < n; k++)
                buf[k] = (unsigned char)rand();
            if (i % 3 == 0 && n > 2) { /* a valid-looking tag with a huge length */
                buf[0] = 0x82;
                buf[1] = 0xff;
            }
            zmq_send(s, buf, n, 0);
        }
        rc = 0;
    }
    zmq_close(mon);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
