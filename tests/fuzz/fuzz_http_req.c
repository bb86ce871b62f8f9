/* fuzz_http_req.c: libFuzzer target for everything the HTTP server does with
 * bytes from the network before a file is touched: the request stream cut
 * at fuzzer-chosen points (pipelined requests, bodies, chunked encoding),
 * then each request's target, Range and User-Agent through the same helpers
 * httpd.c calls. Asserts the contracts of http_req.h along the way.
 *
 * Build and run (not part of `make`):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isiteagent \
 *     tests/fuzz/fuzz_http_req.c siteagent/http_req.c -lhttp_parser -o /tmp/fuzz_http_req
 *   /tmp/fuzz_http_req -max_total_time=60
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    size_t got, limit;
};

static int s_body(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    (void)p;
    s->got += n;
    return s->got > s->limit;
}

static void s_request_checks(const struct http_req *r, uint64_t file_size)
{
    assert(r->url_len <= HTTP_URL_MAX && r->url[r->url_len] == '\0');
    assert(r->ua_len <= HTTP_UA_MAX && r->ua[r->ua_len] == '\0');
    assert(r->range_len <= HTTP_RANGE_MAX && r->range[r->range_len] == '\0');
    char path[HTTP_URL_MAX + 1];
    if (http_path_decode(r->url, r->url_len, path, sizeof path) == 0) {
        assert(path[0] == '/');
        assert(strlen(path) <= r->url_len); /* decoding never grows */
    }
    uint64_t first = 0, last = 0;
    enum http_range_kind k = http_range_parse(r->range, r->range_len, file_size, &first, &last);
    if (k == HTTP_RANGE_ONE)
        assert(first <= last && last < file_size);
    uint8_t mac[6];
    if (http_find_mac(r->ua, r->ua_len, mac))
        assert(!(mac[0] & 1));
    http_find_mac(r->url, r->url_len, mac);
    (void)http_content_type(r->url);
    char head[HTTP_HEAD_MAX];
    struct http_resp rs = {.status = k == HTTP_RANGE_ONE ? 206 : 200,
                           .ctype = http_content_type(path),
                           .length = file_size,
                           .first = first,
                           .last = last,
                           .total = file_size,
                           .accept_ranges = 1,
                           .keep_alive = r->keep_alive,
                           .http10 = r->http_minor == 0,
                           .date = "Sun, 06 Nov 1994 08:49:37 GMT"};
    assert(http_resp_head(head, sizeof head, &rs) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    /* the first bytes choose the cut size, the file size and the body limit */
    size_t step = (size_t)data[0] + 1;
    uint64_t file_size = (uint64_t)data[1] * 997;
    struct sink sink = {.limit = (size_t)data[2] * 64};
    data += 3;
    size -= 3;
    struct http_req r;
    http_req_init(&r);
    size_t off = 0;
    int requests = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        enum http_req_event ev = http_req_feed(&r, (const char *)data + off, n, &used);
        assert(used <= n);
        off += used;
        if (ev == HTTP_REQ_ERROR) {
            assert(r.status == 400 || r.status == 414 || r.status == 431);
            break;
        }
        if (ev == HTTP_REQ_HEADERS) {
            assert(r.head_done);
            http_req_set_body(&r, r.method == HTTP_PUT ? s_body : NULL, &sink);
            s_request_checks(&r, file_size);
        } else if (ev == HTTP_REQ_DONE) {
            requests++;
            r.started = 0;
        } else {
            assert(used == n);
        }
    }
    (void)requests;
    return 0;
}
