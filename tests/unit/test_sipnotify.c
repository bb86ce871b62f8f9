/* test_sipnotify.c: the SIP NOTIFY sender: the message builder (golden
 * text, exact Content-Length, refused header injection), the response
 * parser against good, compact, hostile and truncated responses, and the
 * transaction on a real loop against a UDP "phone" on loopback that answers
 * 200, 486, garbage and strays; the loop closes with nothing left open. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sipnotify.h"
#include "util.h"

static void test_build(void **state)
{
    (void)state;
    struct sipn_msg m = {
        .local_ip = "198.18.60.1",
        .local_port = 40000,
        .ip = "198.18.60.20",
        .port = 5060,
        .user = "anonymous",
        .branch = "z9hG4bKabc",
        .tag = "t1",
        .call_id = "c1@198.18.60.1",
        .cseq = 102,
        .event = "check-sync;reboot=true",
    };
    char out[SIPN_MSG_MAX];
    int n = sipn_build(&m, out, sizeof out);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(out));
    const char *want = "NOTIFY sip:anonymous@198.18.60.20:5060 SIP/2.0\r\n"
                       "Via: SIP/2.0/UDP 198.18.60.1:40000;branch=z9hG4bKabc;rport\r\n"
                       "Max-Forwards: 70\r\n"
                       "From: <sip:prov@198.18.60.1>;tag=t1\r\n"
                       "To: <sip:anonymous@198.18.60.20:5060>\r\n"
                       "Call-ID: c1@198.18.60.1\r\n"
                       "CSeq: 102 NOTIFY\r\n"
                       "Contact: <sip:prov@198.18.60.1:40000>\r\n"
                       "Event: check-sync;reboot=true\r\n"
                       "Subscription-State: terminated\r\n"
                       "User-Agent: firmfleet-agent\r\n"
                       "Content-Length: 0\r\n"
                       "\r\n";
    assert_string_equal(out, want);

    /* Cisco service-control: body and its exact length */
    m.event = "service-control";
    m.content_type = "text/plain";
    m.body = "action=restart\r\nRegisterCallId={}\r\n";
    n = sipn_build(&m, out, sizeof out);
    assert_true(n > 0);
    assert_non_null(strstr(out, "\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n\r\n"
                                "action=restart\r\nRegisterCallId={}\r\n"));
    const char *body = strstr(out, "\r\n\r\n") + 4;
    assert_int_equal(strlen(body), 35);

    /* header injection and missing fields are refused */
    m.event = "check-sync\r\nX-Evil: 1";
    assert_int_equal(sipn_build(&m, out, sizeof out), -EINVAL);
    m.event = "";
    assert_int_equal(sipn_build(&m, out, sizeof out), -EINVAL);
    m.event = "check-sync";
    m.branch = "nomagic";
    assert_int_equal(sipn_build(&m, out, sizeof out), -EINVAL);
    m.branch = "z9hG4bKabc";
    m.content_type = "text/plain\n";
    assert_int_equal(sipn_build(&m, out, sizeof out), -EINVAL);
    m.content_type = "text/plain";
    assert_int_equal(sipn_build(&m, out, 64), -ENOSPC);
}

static void test_parse(void **state)
{
    (void)state;
    struct sipn_resp r;
    const char *ok = "SIP/2.0 200 OK\r\n"
                     "Via: SIP/2.0/UDP 198.18.60.1:40000;branch=z9hG4bKabc;rport=40000;"
                     "received=198.18.60.1\r\n"
                     "From: <sip:prov@198.18.60.1>;tag=t1\r\n"
                     "To: <sip:anonymous@198.18.60.20:5060>;tag=99\r\n"
                     "Call-ID: c1@198.18.60.1\r\n"
                     "CSeq: 102 NOTIFY\r\n"
                     "Content-Length: 0\r\n\r\n";
    assert_int_equal(sipn_parse_response(ok, strlen(ok), &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.reason, "OK");
    assert_string_equal(r.branch, "z9hG4bKabc");
    assert_string_equal(r.call_id, "c1@198.18.60.1");
    assert_int_equal(r.cseq, 102);
    assert_string_equal(r.method, "NOTIFY");

    /* compact header forms, LF-only lines, lower case names */
    const char *compact = "SIP/2.0 486 Busy Here\n"
                          "v: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKx\n"
                          "i: abc\n"
                          "cseq: 7 NOTIFY\n\n";
    assert_int_equal(sipn_parse_response(compact, strlen(compact), &r), 0);
    assert_int_equal(r.status, 486);
    assert_string_equal(r.reason, "Busy Here");
    assert_string_equal(r.branch, "z9hG4bKx");
    assert_string_equal(r.call_id, "abc");
    assert_int_equal(r.cseq, 7);

    const char *bad[] = {
        "",
        "SIP/2.0",
        "SIP/2.0 20 OK\r\n",
        "SIP/2.0 999 Nope\r\nVia: x;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 NOTIFY\r\n\r\n",
        "NOTIFY sip:x SIP/2.0\r\nVia: x;branch=z\r\nCall-ID: a\r\nCSeq: 1 NOTIFY\r\n\r\n",
        "SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 NOTIFY\r\n\r\n",                       /* no Via */
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nCall-ID: a\r\nCSeq: 1 NOTIFY\r\n\r\n", /* no branch
                                                                                         */
        "SIP/2.0 200 OK\r\nVia: x;branch=b\r\nCSeq: 1 NOTIFY\r\n\r\n", /* no Call-ID */
        "SIP/2.0 200 OK\r\nVia: x;branch=b\r\nCall-ID: a\r\nCSeq: x NOTIFY\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: x;branch=b\r\nCall-ID: a\r\nCSeq: 99999999999 NOTIFY\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: x;branch=b\r\nno colon here\r\n\r\n",
        "SIP/2.0 200 OK", /* no line end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sipn_parse_response(bad[i], strlen(bad[i]), &r), -EINVAL);

    /* an oversized Call-ID is refused, not truncated into a false match */
    char big[600];
    int k = snprintf(big, sizeof big, "SIP/2.0 200 OK\r\nVia: x;branch=b\r\nCall-ID: ");
    memset(big + k, 'a', 300);
    snprintf(big + k + 300, sizeof big - (size_t)k - 300, "\r\nCSeq: 1 NOTIFY\r\n\r\n");
    assert_int_equal(sipn_parse_response(big, strlen(big), &r), -EINVAL);

    /* every prefix of a valid response parses or is refused without reading past it */
    size_t n = strlen(ok);
    for (size_t i = 0; i < n; i++) {
        char *cut = malloc(i ? i : 1);
        memcpy(cut, ok, i);
        (void)sipn_parse_response(cut, i, &r);
        free(cut);
    }
}

/* ---- the transaction on a loop ---- */

struct phone {
    int fd;
    uint16_t port;
    int mode; /* 0: 200, 1: 486, 2: garbage + stray, then 200 */
    int got;
    char last[SIPN_MSG_MAX];
};

struct result {
    int calls, ok, status;
    char reason[128];
    uint8_t mac[6];
};

static void s_done(void *arg, const uint8_t mac[6], int ok, int status, const char *reason)
{
    struct result *r = arg;
    r->calls++;
    r->ok = ok;
    r->status = status;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    memcpy(r->mac, mac, 6);
}

static void s_hdr(const char *msg, const char *name, char *out, size_t n)
{
    const char *p = strstr(msg, name);
    assert_non_null(p);
    const char *e = strstr(p, "\r\n");
    snprintf(out, n, "%.*s", (int)(e - p), p);
}

/* Answers one request if one is waiting. */
static void s_phone_step(struct phone *ph)
{
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(ph->fd, ph->last, sizeof ph->last - 1, MSG_DONTWAIT,
                         (struct sockaddr *)&from, &fl);
    if (n <= 0)
        return;
    ph->last[n] = '\0';
    ph->got++;
    char via[256], cid[160], cseq[64], resp[1024];
    s_hdr(ph->last, "Via: ", via, sizeof via);
    s_hdr(ph->last, "Call-ID: ", cid, sizeof cid);
    s_hdr(ph->last, "CSeq: ", cseq, sizeof cseq);
    if (ph->mode == 2) {
        const char *junk = "\x01\x02garbage";
        sendto(ph->fd, junk, strlen(junk), 0, (struct sockaddr *)&from, fl);
        int k = snprintf(resp, sizeof resp, "SIP/2.0 200 OK\r\n%s\r\nCall-ID: other\r\n%s\r\n\r\n",
                         via, cseq);
        sendto(ph->fd, resp, (size_t)k, 0, (struct sockaddr *)&from, fl);
    }
    int k = snprintf(resp, sizeof resp, "SIP/2.0 %s\r\n%s\r\n%s\r\n%s\r\nContent-Length: 0\r\n\r\n",
                     ph->mode == 1 ? "486 Busy Here" : "200 OK", via, cid, cseq);
    sendto(ph->fd, resp, (size_t)k, 0, (struct sockaddr *)&from, fl);
}

static void s_phone_open(struct phone *ph, int mode)
{
    memset(ph, 0, sizeof *ph);
    ph->mode = mode;
    ph->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(ph->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ph->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(ph->fd, (struct sockaddr *)&a, &al);
    ph->port = ntohs(a.sin_port);
}

static int s_count(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
    return 0;
}
static void s_walk(uv_handle_t *h, void *arg)
{
    s_count(h, arg);
}

static void s_run_one(int mode, struct result *res, struct sipn_stats *st, struct phone *ph)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    s_phone_open(ph, mode);
    memset(res, 0, sizeof *res);
    sipn_t *s = NULL;
    assert_int_equal(sipn_new(&loop, s_done, res, &s), 0);
    static const uint8_t mac[6] = {0x00, 0x04, 0xf2, 0xaa, 0xbb, 0x01};
    struct sipn_req rq = {
        .ip_be = htonl(INADDR_LOOPBACK),
        .port = ph->port,
        .mac = mac,
        .user_mac = 1,
        .event = "check-sync",
    };
    assert_int_equal(sipn_send(s, &rq), 0);
    assert_int_equal(sipn_pending(s), 1);
    uint64_t end = util_mono_ms() + 3000;
    while (res->calls == 0 && util_mono_ms() < end) {
        s_phone_step(ph);
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(sipn_pending(s), 0);
    sipn_stats(s, st);
    sipn_destroy(&s);
    assert_null(s);
    sipn_destroy(&s); /* idempotent */
    uv_run(&loop, UV_RUN_DEFAULT);
    int open = 0;
    uv_walk(&loop, s_walk, &open);
    assert_int_equal(open, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(ph->fd);
    assert_int_equal(res->calls, 1);
    assert_memory_equal(res->mac, mac, 6);
}

static void test_transaction(void **state)
{
    (void)state;
    struct result res;
    struct sipn_stats st;
    struct phone ph;

    s_run_one(0, &res, &st, &ph);
    assert_int_equal(res.ok, 1);
    assert_int_equal(res.status, 200);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.ok, 1);
    assert_non_null(strstr(ph.last, "NOTIFY sip:0004f2aabb01@127.0.0.1:"));
    assert_non_null(strstr(ph.last, "\r\nEvent: check-sync\r\n"));
    assert_non_null(strstr(ph.last, "\r\nContent-Length: 0\r\n\r\n"));

    s_run_one(1, &res, &st, &ph);
    assert_int_equal(res.ok, 0);
    assert_int_equal(res.status, 486);
    assert_string_equal(res.reason, "status 486 Busy Here");

    /* garbage and a response to someone else are counted and ignored */
    s_run_one(2, &res, &st, &ph);
    assert_int_equal(res.ok, 1);
    assert_int_equal(st.garbage, 1);
    assert_int_equal(st.strays, 1);
}

static void test_limits(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct result res;
    memset(&res, 0, sizeof res);
    sipn_t *s = NULL;
    assert_int_equal(sipn_new(&loop, s_done, &res, &s), 0);
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    /* port 9 (discard) on loopback: nobody answers; the requests stay pending */
    struct sipn_req rq = {
        .ip_be = htonl(INADDR_LOOPBACK), .port = 9, .mac = mac, .event = "check-sync"};
    for (int i = 0; i < SIPN_MAX_PENDING; i++)
        assert_int_equal(sipn_send(s, &rq), 0);
    assert_int_equal(sipn_send(s, &rq), -ENOSPC);
    rq.event = "a\r\nb";
    rq.port = 5060;
    assert_int_equal(sipn_send(s, &rq), -ENOSPC);
    struct sipn_req bad = {.ip_be = 0, .port = 5060, .mac = mac, .event = "check-sync"};
    assert_int_equal(sipn_send(s, &bad), -EINVAL);
    sipn_destroy(&s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(res.calls, 0); /* dropped at destroy without a callback */
}

int main(void)
{
    log_set_level(getenv("FF_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_transaction),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
