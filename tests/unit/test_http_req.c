/* test_http_req.c: the pure half of the HTTP server: requests out of a byte
 * stream (split anywhere, pipelined, over limits, malformed), bodies, the
 * request target as a path, Range, MACs in names and User-Agents, response
 * heads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"

/* Feeds all of s, in pieces of at most step bytes, until an event other
 * than MORE; returns it and how many bytes were consumed in total. */
static enum http_req_event s_feed(struct http_req *r, const char *s, size_t len, size_t step,
                                  size_t *consumed)
{
    size_t off = 0;
    enum http_req_event ev = HTTP_REQ_MORE;
    while (off < len) {
        size_t n = len - off < step ? len - off : step, used = 0;
        ev = http_req_feed(r, s + off, n, &used);
        off += used;
        if (ev != HTTP_REQ_MORE)
            break;
        assert_int_equal(used, n);
    }
    *consumed = off;
    return ev;
}

static const char s_get[] = "GET /0004f2aabb01.cfg?x=1 HTTP/1.1\r\n"
                            "Host: prov\r\n"
                            "user-AGENT: Yealink SIP-T46S 66.86.0.15 80:5e:c0:aa:bb:cc \r\n"
                            "Range: bytes=0-99\r\n"
                            "\r\n";

static void s_check_get(struct http_req *r)
{
    assert_int_equal(r->method, HTTP_GET);
    assert_string_equal(r->url, "/0004f2aabb01.cfg?x=1");
    assert_string_equal(r->ua, "Yealink SIP-T46S 66.86.0.15 80:5e:c0:aa:bb:cc");
    assert_string_equal(r->range, "bytes=0-99");
    assert_int_equal(r->keep_alive, 1);
    assert_int_equal(r->has_body, 0);
    assert_int_equal(r->http_minor, 1);
}

static void test_get_any_split(void **state)
{
    (void)state;
    size_t len = strlen(s_get);
    size_t steps[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct http_req r;
        memset(&r, 0, sizeof r);
        http_req_init(&r);
        size_t used;
        assert_int_equal(s_feed(&r, s_get, len, steps[i], &used), HTTP_REQ_HEADERS);
        s_check_get(&r);
        size_t used2;
        assert_int_equal(s_feed(&r, s_get + used, len - used, steps[i], &used2), HTTP_REQ_DONE);
        assert_int_equal(used + used2, len);
        s_check_get(&r);
    }
}

static void test_pipelined(void **state)
{
    (void)state;
    const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "HEAD /b%20c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct http_req r;
    memset(&r, 0, sizeof r);
    http_req_init(&r);
    size_t len = strlen(two), off = 0, used;
    assert_int_equal(http_req_feed(&r, two, len, &used), HTTP_REQ_HEADERS);
    off += used;
    assert_int_equal(http_req_feed(&r, two + off, len - off, &used), HTTP_REQ_DONE);
    off += used;
    assert_string_equal(r.url, "/a");
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(http_req_feed(&r, two + off, len - off, &used), HTTP_REQ_HEADERS);
    off += used;
    assert_int_equal(r.method, HTTP_HEAD);
    assert_string_equal(r.url, "/b%20c");
    assert_int_equal(r.ua_len, 0);
    assert_int_equal(http_req_feed(&r, two + off, len - off, &used), HTTP_REQ_DONE);
    off += used;
    assert_int_equal(off, len);
    assert_int_equal(r.keep_alive, 0);
}

static enum http_req_event s_one(const char *req, struct http_req *r)
{
    memset(r, 0, sizeof *r);
    http_req_init(r);
    size_t used;
    enum http_req_event ev = s_feed(r, req, strlen(req), 100000, &used);
    if (ev == HTTP_REQ_HEADERS && !r->has_body)
        ev = s_feed(r, req + used, strlen(req) - used, 100000, &used);
    return ev;
}

static void test_versions_and_keepalive(void **state)
{
    (void)state;
    struct http_req r;
    assert_int_equal(s_one("GET / HTTP/1.0\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(r.http_minor, 0);
    assert_int_equal(s_one("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(r.keep_alive, 1);
    assert_int_equal(s_one("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(r.keep_alive, 0);
    assert_int_equal(s_one("GET / HTTP/1.1\r\nIf-Range: x\r\n\r\n", &r), HTTP_REQ_DONE);
    assert_int_equal(r.if_range, 1);
}

static void test_limits(void **state)
{
    (void)state;
    struct http_req r;
    char *big = malloc(20000);
    assert_non_null(big);
    /* a target over HTTP_URL_MAX: 414 */
    int n = snprintf(big, 20000, "GET /");
    memset(big + n, 'a', 3000);
    snprintf(big + n + 3000, 20000 - (size_t)n - 3000, " HTTP/1.1\r\n\r\n");
    assert_int_equal(s_one(big, &r), HTTP_REQ_ERROR);
    assert_int_equal(r.status, 414);
    /* exactly HTTP_URL_MAX is fine */
    n = snprintf(big, 20000, "GET /");
    memset(big + n, 'a', HTTP_URL_MAX - 1);
    snprintf(big + n + HTTP_URL_MAX - 1, 100, " HTTP/1.1\r\n\r\n");
    assert_int_equal(s_one(big, &r), HTTP_REQ_DONE);
    assert_int_equal(r.url_len, HTTP_URL_MAX);
    /* one 9000-byte header: 431, even fed in small pieces */
    n = snprintf(big, 20000, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'b', 9000);
    snprintf(big + n + 9000, 100, "\r\n\r\n");
    memset(&r, 0, sizeof r);
    http_req_init(&r);
    size_t used;
    assert_int_equal(s_feed(&r, big, strlen(big), 500, &used), HTTP_REQ_ERROR);
    assert_int_equal(r.status, 431);
    assert_true(used < 9000);
    /* too many header lines: 431 */
    n = snprintf(big, 20000, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_HEADERS_MAX + 1; i++)
        n += snprintf(big + n, 20000 - (size_t)n, "X-%d: y\r\n", i);
    snprintf(big + n, 20000 - (size_t)n, "\r\n");
    assert_int_equal(s_one(big, &r), HTTP_REQ_ERROR);
    assert_int_equal(r.status, 431);
    /* HTTP_HEADERS_MAX lines are fine */
    n = snprintf(big, 20000, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_HEADERS_MAX; i++)
        n += snprintf(big + n, 20000 - (size_t)n, "X-%d: y\r\n", i);
    snprintf(big + n, 20000 - (size_t)n, "\r\n");
    assert_int_equal(s_one(big, &r), HTTP_REQ_DONE);
    /* a long Range is kept short and marked */
    n = snprintf(big, 20000, "GET / HTTP/1.1\r\nRange: bytes=");
    for (int i = 0; i < 100; i++)
        n += snprintf(big + n, 20000 - (size_t)n, "%d-%d,", i * 10, i * 10 + 1);
    snprintf(big + n, 20000 - (size_t)n, "\r\n\r\n");
    assert_int_equal(s_one(big, &r), HTTP_REQ_DONE);
    assert_int_equal(r.range_long, 1);
    assert_int_equal(r.range_len, HTTP_RANGE_MAX);
    free(big);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "HELLO\r\n\r\n",
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",
        "GET / HTTP/9.9x\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "\x01\x02\x03\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_req r;
        assert_int_equal(s_one(bad[i], &r), HTTP_REQ_ERROR);
        assert_int_equal(r.status, 400);
    }
    /* a GET with a body and no sink: 400 */
    struct http_req r;
    memset(&r, 0, sizeof r);
    http_req_init(&r);
    const char *g = "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    size_t used;
    assert_int_equal(http_req_feed(&r, g, strlen(g), &used), HTTP_REQ_HEADERS);
    assert_int_equal(r.has_body, 1);
    assert_int_equal(r.content_length, 3);
    size_t u2;
    assert_int_equal(http_req_feed(&r, g + used, strlen(g) - used, &u2), HTTP_REQ_ERROR);
    assert_int_equal(r.status, 400);
}

struct sink {
    char buf[256];
    size_t len;
    size_t limit;
};

static int s_sink(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->len + n > s->limit)
        return 1;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

static int s_sink_413(void *arg, const char *p, size_t n)
{
    struct http_req *r = arg;
    (void)p;
    (void)n;
    r->status = 413;
    return 1;
}

static void test_put_bodies(void **state)
{
    (void)state;
    const char *puts[] = {
        "PUT /upload/a.cfg HTTP/1.1\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\nhello "
        "world"
        "GET /next HTTP/1.1\r\n\r\n",
        "PUT /upload/a.cfg HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        "GET /next HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        for (size_t step = 1; step <= 4096; step *= 8) {
            struct http_req r;
            struct sink s = {.limit = sizeof s.buf};
            memset(&r, 0, sizeof r);
            http_req_init(&r);
            http_req_set_body(&r, s_sink, &s);
            size_t len = strlen(puts[i]), used, u2;
            assert_int_equal(s_feed(&r, puts[i], len, step, &used), HTTP_REQ_HEADERS);
            assert_int_equal(r.method, HTTP_PUT);
            assert_int_equal(r.has_body, 1);
            assert_int_equal(r.expect_continue, i == 0);
            assert_true(r.content_length == (i == 0 ? 11 : UINT64_MAX));
            assert_int_equal(s_feed(&r, puts[i] + used, len - used, step, &u2), HTTP_REQ_DONE);
            assert_int_equal(s.len, 11);
            assert_memory_equal(s.buf, "hello world", 11);
            used += u2;
            assert_int_equal(s_feed(&r, puts[i] + used, len - used, step, &u2), HTTP_REQ_HEADERS);
            assert_string_equal(r.url, "/next");
            assert_int_equal(r.expect_continue, 0);
        }
    }
    /* the sink refuses: its status is kept */
    struct http_req r;
    memset(&r, 0, sizeof r);
    http_req_init(&r);
    http_req_set_body(&r, s_sink_413, &r);
    const char *p = "PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
    size_t used, u2;
    assert_int_equal(http_req_feed(&r, p, strlen(p), &used), HTTP_REQ_HEADERS);
    assert_int_equal(http_req_feed(&r, p + used, strlen(p) - used, &u2), HTTP_REQ_ERROR);
    assert_int_equal(r.status, 413);
}

static void s_path_ok(const char *url, const char *want)
{
    char out[256];
    assert_int_equal(http_path_decode(url, strlen(url), out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void s_path_bad(const char *url, int err)
{
    char out[256];
    assert_int_equal(http_path_decode(url, strlen(url), out, sizeof out), err);
}

static void test_path_decode(void **state)
{
    (void)state;
    s_path_ok("/0004f2aabb01.cfg", "/0004f2aabb01.cfg");
    s_path_ok("/a%20b.cfg?mac=1#frag", "/a b.cfg");
    s_path_ok("/%2e%2e/%2e%2e/etc/passwd", "/../../etc/passwd");
    s_path_ok("/..%2f..%2fetc/passwd", "/../../etc/passwd");
    s_path_ok("/..%5C..%5cetc", "/..\\..\\etc");
    s_path_ok("http://prov:8080/x/y.xml?z", "/x/y.xml");
    s_path_ok("http://prov", "/");
    s_path_ok("/", "/");
    s_path_bad("/a%00b", -EINVAL);
    s_path_bad("/a%0", -EINVAL);
    s_path_bad("/a%zz", -EINVAL);
    s_path_bad("*", -EINVAL);
    s_path_bad("a/b", -EINVAL);
    s_path_bad("", -EINVAL);
    char small[4];
    assert_int_equal(http_path_decode("/abcdef", 7, small, sizeof small), -ENAMETOOLONG);
}

static void s_range(const char *s, uint64_t size, enum http_range_kind want, uint64_t f, uint64_t l)
{
    uint64_t first = 12345, last = 12345;
    enum http_range_kind k = http_range_parse(s, strlen(s), size, &first, &last);
    if (k != want)
        fail_msg("range \"%s\" size %llu: kind %d, want %d", s, (unsigned long long)size, k, want);
    if (k == HTTP_RANGE_ONE && (first != f || last != l))
        fail_msg("range \"%s\": %llu-%llu, want %llu-%llu", s, (unsigned long long)first,
                 (unsigned long long)last, (unsigned long long)f, (unsigned long long)l);
}

static void test_range(void **state)
{
    (void)state;
    s_range("bytes=0-99", 1000, HTTP_RANGE_ONE, 0, 99);
    s_range("bytes=0-99", 50, HTTP_RANGE_ONE, 0, 49);
    s_range("BYTES=10-10", 50, HTTP_RANGE_ONE, 10, 10);
    s_range("bytes=1000-", 5000, HTTP_RANGE_ONE, 1000, 4999);
    s_range("bytes=-100", 5000, HTTP_RANGE_ONE, 4900, 4999);
    s_range("bytes=-100", 60, HTTP_RANGE_ONE, 0, 59);
    s_range(" bytes=5-6 ", 10, HTTP_RANGE_ONE, 5, 6);
    s_range("bytes=, 5-6,", 10, HTTP_RANGE_ONE, 5, 6);
    s_range("bytes=0-99999999999999999999999", 10, HTTP_RANGE_ONE, 0, 9);
    s_range("bytes=1000-", 1000, HTTP_RANGE_UNSAT, 0, 0);
    s_range("bytes=2000-3000", 1000, HTTP_RANGE_UNSAT, 0, 0);
    s_range("bytes=99999999999999999999999-", 10, HTTP_RANGE_UNSAT, 0, 0);
    s_range("bytes=-0", 1000, HTTP_RANGE_UNSAT, 0, 0);
    s_range("bytes=0-", 0, HTTP_RANGE_UNSAT, 0, 0);
    s_range("bytes=-5", 0, HTTP_RANGE_UNSAT, 0, 0);
    /* several ranges: the whole file */
    s_range("bytes=0-1,5-6", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=0-1, -2", 10, HTTP_RANGE_NONE, 0, 0);
    /* malformed or another unit: ignored */
    s_range("bytes=5-4", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=a-b", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=-", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=1", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes=1-2x", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("items=0-1", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("bytes 0-1", 10, HTTP_RANGE_NONE, 0, 0);
    s_range("", 10, HTTP_RANGE_NONE, 0, 0);
}

static void s_mac(const char *s, const char *want)
{
    uint8_t m[6];
    int got = http_find_mac(s, strlen(s), m);
    if (want == NULL) {
        if (got)
            fail_msg("\"%s\": found a MAC, want none", s);
        return;
    }
    if (!got)
        fail_msg("\"%s\": no MAC, want %s", s, want);
    char hex[13];
    for (int i = 0; i < 6; i++)
        snprintf(hex + 2 * i, 3, "%02x", m[i]);
    assert_string_equal(hex, want);
}

static void test_find_mac(void **state)
{
    (void)state;
    s_mac("0004f2aabb01.cfg", "0004f2aabb01");
    s_mac("SEP0004F2AABB01.cnf.xml", "0004f2aabb01");
    s_mac("cfgc074ad112233.xml", "c074ad112233");
    s_mac("0004f2aabb01-phone.cfg", "0004f2aabb01");
    s_mac("backup/00-90-33-aa-bb-cc-config.txt", "009033aabbcc");
    s_mac("Yealink SIP-T46S 66.86.0.15 80:5e:c0:aa:bb:cc", "805ec0aabbcc");
    s_mac("Aastra6731i MAC:00-08-5D-12-34-56 V:3.2.0.70-SIP", "00085d123456");
    s_mac("Grandstream Model HW GXP2170 SW 1.0.9.135 DevId 000b82123456", "000b82123456");
    s_mac("FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373", NULL);
    s_mac("000000000000.cfg", NULL);
    s_mac("y000000000025.cfg", NULL);
    s_mac("ffffffffffff.cfg", NULL);
    s_mac("0104f2aabb01.cfg", NULL); /* multicast */
    s_mac("0004f2aabb0.cfg", NULL);
    s_mac("0004f2aabb011.cfg", NULL);
    s_mac("00:04:f2:aa:bb", NULL);
    s_mac("00:04-f2:aa:bb:01", NULL);
    s_mac("00:04:f2:aa:bb:01f", NULL);
    s_mac("", NULL);
    /* the first valid one wins */
    s_mac("000000000000-0004f2aabb01", "0004f2aabb01");
}

static void test_types_and_heads(void **state)
{
    (void)state;
    assert_string_equal(http_content_type("a/SEP0004F2AABB01.cnf.xml"), "text/xml");
    assert_string_equal(http_content_type("0004f2aabb01.CFG"), "text/plain");
    assert_string_equal(http_content_type("fw.bin"), "application/octet-stream");
    assert_string_equal(http_content_type("dir.xml/noext"), "application/octet-stream");
    assert_string_equal(http_content_type("update-ip800.htm"), "text/html");

    char buf[HTTP_HEAD_MAX];
    struct http_resp rs = {.status = 206,
                           .ctype = "text/plain",
                           .length = 100,
                           .first = 0,
                           .last = 99,
                           .total = 5000,
                           .accept_ranges = 1,
                           .keep_alive = 1,
                           .http10 = 1,
                           .date = "Sun, 06 Nov 1994 08:49:37 GMT"};
    size_t n = http_resp_head(buf, sizeof buf, &rs);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "HTTP/1.1 206 Partial Content\r\n"
                             "Server: firmfleet-agent\r\n"
                             "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                             "Content-Type: text/plain\r\n"
                             "Content-Length: 100\r\n"
                             "Content-Range: bytes 0-99/5000\r\n"
                             "Accept-Ranges: bytes\r\n"
                             "Connection: keep-alive\r\n"
                             "\r\n");
    struct http_resp e = {.status = 416, .length = 0, .total = 5000, .keep_alive = 1};
    n = http_resp_head(buf, sizeof buf, &e);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 416 Range Not Satisfiable\r\n"));
    assert_non_null(strstr(buf, "Content-Range: bytes */5000\r\n"));
    assert_null(strstr(buf, "Connection:"));
    struct http_resp m = {.status = 405, .length = 0, .allow = "GET, HEAD, PUT"};
    n = http_resp_head(buf, sizeof buf, &m);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "Allow: GET, HEAD, PUT\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    struct http_resp c = {.status = 204, .length = UINT64_MAX, .keep_alive = 1};
    n = http_resp_head(buf, sizeof buf, &c);
    buf[n] = '\0';
    assert_null(strstr(buf, "Content-Length"));
    /* too small a buffer: 0, never a cut head */
    assert_int_equal(http_resp_head(buf, 20, &rs), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_any_split),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_versions_and_keepalive),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_put_bodies),
        cmocka_unit_test(test_path_decode),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_find_mac),
        cmocka_unit_test(test_types_and_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
