/* http_req.c: request parsing on top of http-parser, and the string work of
 * the HTTP server (see http_req.h for the contract and why http-parser).
 *
 * Invariants: http-parser is paused in on_headers_complete and in
 * on_message_complete, so one http_req_feed() call never runs past the end
 * of a request head or of a request; a pause in on_headers_complete leaves
 * the head's final LF unconsumed (http-parser's own contract), so the next
 * feed always has at least that byte to give. Every per-request field is
 * reset in on_message_begin.
 */
#include "http_req.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum { F_OTHER = 0, F_UA, F_RANGE, F_EXPECT, F_IF_RANGE };

static struct http_req *s_req(http_parser *p)
{
    return p->data;
}

static int s_on_begin(http_parser *p)
{
    struct http_req *r = s_req(p);
    r->method = 0;
    r->http_minor = 0;
    r->keep_alive = 0;
    r->has_body = 0;
    r->content_length = UINT64_MAX;
    r->expect_continue = 0;
    r->if_range = 0;
    r->url_len = r->ua_len = r->range_len = r->expect_len = r->fname_len = 0;
    r->url[0] = r->ua[0] = r->range[0] = '\0';
    r->range_long = 0;
    r->status = 0;
    r->crlf_left = 0;
    r->started = 1;
    r->head_done = 0;
    r->head_bytes = 0;
    r->n_headers = 0;
    r->field = F_OTHER;
    r->in_value = 1; /* so that the first field chunk starts a header */
    return 0;
}

/* The head's size as the sum of its pieces (target, names, values, 4 bytes
 * of ": " and CRLF per line), checked as they stream in, so a huge head is
 * refused before it costs more than HTTP_HEADER_BYTES_MAX of work. */
static int s_head_grow(struct http_req *r, size_t n)
{
    r->head_bytes += n;
    if (r->head_bytes > HTTP_HEADER_BYTES_MAX) {
        r->status = 431;
        return 1;
    }
    return 0;
}

static int s_on_url(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = s_req(p);
    if (r->url_len + n > HTTP_URL_MAX) {
        r->status = 414;
        return 1;
    }
    if (s_head_grow(r, n))
        return 1;
    memcpy(r->url + r->url_len, at, n);
    r->url_len += n;
    r->url[r->url_len] = '\0';
    return 0;
}

static int s_on_field(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = s_req(p);
    if (s_head_grow(r, n + 4)) /* ": " and CRLF */
        return 1;
    /* RFC 7230 3.2.4: whitespace between a field name and the colon MUST be
     * refused with 400 (a non-strict parser keeps it in the name, and
     * "Transfer-Encoding : chunked" would pass a proxy unseen) */
    if (memchr(at, ' ', n) != NULL || memchr(at, '\t', n) != NULL) {
        r->status = 400;
        return 1;
    }
    if (r->in_value) {
        if (++r->n_headers > HTTP_HEADERS_MAX) {
            r->status = 431;
            return 1;
        }
        r->in_value = 0;
        r->fname_len = 0;
    }
    /* only short names interest us; a longer one never matches */
    if (r->fname_len + n < sizeof r->fname) {
        memcpy(r->fname + r->fname_len, at, n);
        r->fname_len += n;
    } else {
        r->fname_len = sizeof r->fname;
    }
    return 0;
}

static void s_append(char *buf, size_t cap, size_t *len, const char *at, size_t n, int *overflow)
{
    size_t room = cap - 1 - *len;
    if (n > room) {
        n = room;
        if (overflow)
            *overflow = 1;
    }
    memcpy(buf + *len, at, n);
    *len += n;
    buf[*len] = '\0';
}

static int s_on_value(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = s_req(p);
    if (s_head_grow(r, n))
        return 1;
    if (!r->in_value) {
        r->in_value = 1;
        size_t fl = r->fname_len;
        if (fl == 10 && strncasecmp(r->fname, "user-agent", 10) == 0)
            r->field = F_UA;
        else if (fl == 5 && strncasecmp(r->fname, "range", 5) == 0)
            r->field = F_RANGE;
        else if (fl == 6 && strncasecmp(r->fname, "expect", 6) == 0)
            r->field = F_EXPECT;
        else if (fl == 8 && strncasecmp(r->fname, "if-range", 8) == 0)
            r->field = F_IF_RANGE;
        else
            r->field = F_OTHER;
        /* a repeated Range would be a list we do not merge: many ranges */
        if (r->field == F_RANGE && r->range_len > 0)
            r->range_long = 1;
    }
    switch (r->field) {
    case F_UA:
        s_append(r->ua, sizeof r->ua, &r->ua_len, at, n, NULL);
        break;
    case F_RANGE:
        s_append(r->range, sizeof r->range, &r->range_len, at, n, &r->range_long);
        break;
    case F_EXPECT:
        s_append(r->expect, sizeof r->expect, &r->expect_len, at, n, NULL);
        break;
    case F_IF_RANGE:
        r->if_range = 1;
        break;
    default:
        break;
    }
    return 0;
}

static void s_rtrim(char *s, size_t *len)
{
    while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        s[--*len] = '\0';
}

static int s_on_headers(http_parser *p)
{
    struct http_req *r = s_req(p);
    r->method = (int)p->method;
    r->http_minor = p->http_minor;
    r->keep_alive = http_should_keep_alive(p);
    r->content_length = p->content_length; /* UINT64_MAX (ULLONG_MAX) when absent */
    r->has_body =
        (p->flags & F_CHUNKED) != 0 || (r->content_length != UINT64_MAX && r->content_length > 0);
    if (p->flags & F_CHUNKED)
        r->content_length = UINT64_MAX;
    s_rtrim(r->ua, &r->ua_len);
    s_rtrim(r->range, &r->range_len);
    s_rtrim(r->expect, &r->expect_len);
    r->expect_continue = r->expect_len == 12 && strcasecmp(r->expect, "100-continue") == 0;
    r->paused_at = 1;
    http_parser_pause(p, 1);
    return 0;
}

/* Checks the CRLF after a chunk's data, as far as this feed holds it:
 * 0 fine (or not here yet), 1 a chunk ran past its size. */
static int s_chunk_crlf(struct http_req *r, const char *at)
{
    while (r->crlf_left > 0 && at < r->feed_end) {
        char want = r->crlf_left == 2 ? '\r' : '\n';
        if (*at++ != want) {
            r->status = 400;
            return 1;
        }
        r->crlf_left--;
    }
    return 0;
}

static int s_on_body(http_parser *p, const char *at, size_t n)
{
    struct http_req *r = s_req(p);
    if (r->on_body == NULL) {
        r->status = 400;
        return 1;
    }
    if ((p->flags & F_CHUNKED) && p->content_length == 0) {
        /* this piece ends the chunk: its CRLF must follow */
        r->crlf_left = 2;
        if (s_chunk_crlf(r, at + n))
            return 1;
    }
    return r->on_body(r->body_arg, at, n);
}

static int s_on_complete(http_parser *p)
{
    struct http_req *r = s_req(p);
    r->paused_at = 2;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings s_settings = {
    .on_message_begin = s_on_begin,
    .on_url = s_on_url,
    .on_header_field = s_on_field,
    .on_header_value = s_on_value,
    .on_headers_complete = s_on_headers,
    .on_body = s_on_body,
    .on_message_complete = s_on_complete,
};

void http_req_init(struct http_req *r)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->content_length = UINT64_MAX;
}

void http_req_set_body(struct http_req *r, http_body_fn fn, void *arg)
{
    r->on_body = fn;
    r->body_arg = arg;
}

enum http_req_event http_req_feed(struct http_req *r, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (len == 0) /* http-parser reads 0 bytes as end of stream */
        return HTTP_REQ_MORE;
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED)
        http_parser_pause(&r->parser, 0);
    r->paused_at = 0;
    r->feed_end = data + len;
    if (r->crlf_left > 0 && s_chunk_crlf(r, data))
        return HTTP_REQ_ERROR; /* the CRLF that began in the last feed is not one */
    size_t n = http_parser_execute(&r->parser, &s_settings, data, len);
    *used = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_PAUSED) {
        if (r->paused_at == 2)
            return HTTP_REQ_DONE;
        r->head_done = 1;
        return HTTP_REQ_HEADERS;
    }
    if (e != HPE_OK) {
        if (r->status == 0)
            r->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
        return HTTP_REQ_ERROR;
    }
    return HTTP_REQ_MORE;
}

int http_path_decode(const char *url, size_t len, char *out, size_t n)
{
    const char *p = url, *end = url + len;
    if (n == 0)
        return -ENAMETOOLONG;
    size_t skip = 0;
    if (len >= 7 && strncasecmp(p, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(p, "https://", 8) == 0)
        skip = 8;
    if (skip) { /* absolute form: drop scheme and authority */
        p += skip;
        while (p < end && *p != '/' && *p != '?' && *p != '#')
            p++;
        if (p == end || *p != '/') {
            if (n < 2)
                return -ENAMETOOLONG;
            out[0] = '/';
            out[1] = '\0';
            return 0;
        }
    }
    if (p == end || *p != '/')
        return -EINVAL;
    size_t o = 0;
    while (p < end && *p != '?' && *p != '#') {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = end - p >= 3 ? util_hexval((unsigned char)p[1]) : -1;
            int lo = end - p >= 3 ? util_hexval((unsigned char)p[2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = hi * 16 + lo;
            if (c == 0)
                return -EINVAL;
            p += 3;
        } else {
            p++;
        }
        if (o + 1 >= n)
            return -ENAMETOOLONG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Reads digits at *p (at least one); saturates at UINT64_MAX. */
static int s_digits(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        unsigned d = (unsigned)(**p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        (*p)++;
    }
    *out = v;
    return *p > s ? 0 : -1;
}

static const char *s_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

enum http_range_kind http_range_parse(const char *s, size_t len, uint64_t size, uint64_t *first,
                                      uint64_t *last)
{
    const char *p = s, *end = s + len;
    p = s_ows(p, end);
    if ((size_t)(end - p) < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return HTTP_RANGE_NONE;
    p += 6;
    /* range-set = 1#range-spec: count non-empty elements, parse the one */
    int specs = 0;
    int suffix = 0, has_b = 0;
    uint64_t a = 0, b = 0;
    for (;;) {
        p = s_ows(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p == end)
            break;
        if (++specs > 1)
            return HTTP_RANGE_NONE; /* several ranges: the whole file */
        if (*p == '-') {
            p++;
            suffix = 1;
            if (s_digits(&p, end, &b) < 0)
                return HTTP_RANGE_NONE;
        } else {
            if (s_digits(&p, end, &a) < 0 || p == end || *p != '-')
                return HTTP_RANGE_NONE;
            p++;
            if (p < end && *p >= '0' && *p <= '9') {
                s_digits(&p, end, &b);
                has_b = 1;
                if (b < a)
                    return HTTP_RANGE_NONE;
            }
        }
        p = s_ows(p, end);
        if (p < end && *p != ',')
            return HTTP_RANGE_NONE;
    }
    if (specs == 0)
        return HTTP_RANGE_NONE;
    if (suffix) {
        if (b == 0 || size == 0)
            return HTTP_RANGE_UNSAT;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return HTTP_RANGE_ONE;
    }
    if (a >= size)
        return HTTP_RANGE_UNSAT;
    *first = a;
    *last = has_b && b < size - 1 ? b : size - 1;
    return HTTP_RANGE_ONE;
}

static int s_mac_ok(const uint8_t m[6])
{
    if (m[0] & 1) /* group bit: multicast and ff:ff:.. */
        return 0;
    if (m[0] == 0 && m[1] == 0 && m[2] == 0) /* 000000000000.cfg, y0000000000XX.cfg */
        return 0;
    return 1;
}

int http_find_mac(const char *s, size_t len, uint8_t mac[6])
{
    size_t i = 0;
    while (i < len) {
        if (util_hexval((unsigned char)s[i]) < 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && util_hexval((unsigned char)s[j]) >= 0)
            j++;
        uint8_t m[6];
        if (j - i == 12) {
            for (int k = 0; k < 6; k++)
                m[k] = (uint8_t)(util_hexval((unsigned char)s[i + 2 * k]) * 16 +
                                 util_hexval((unsigned char)s[i + 2 * k + 1]));
            if (s_mac_ok(m)) {
                memcpy(mac, m, 6);
                return 1;
            }
        } else if (j - i == 2 && i + 17 <= len && (s[i + 2] == ':' || s[i + 2] == '-')) {
            char sep = s[i + 2];
            int good = 1;
            for (int k = 0; k < 6 && good; k++) {
                size_t at = i + 3 * (size_t)k;
                int hi = util_hexval((unsigned char)s[at]),
                    lo = util_hexval((unsigned char)s[at + 1]);
                if (hi < 0 || lo < 0 || (k < 5 && s[at + 2] != sep))
                    good = 0;
                else
                    m[k] = (uint8_t)(hi * 16 + lo);
            }
            if (good && (i + 17 == len || util_hexval((unsigned char)s[i + 17]) < 0) &&
                s_mac_ok(m)) {
                memcpy(mac, m, 6);
                return 1;
            }
        }
        i = j;
    }
    return 0;
}

const char *http_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"xml", "text/xml"},          {"cfg", "text/plain"},        {"txt", "text/plain"},
        {"cnf", "text/plain"},        {"conf", "text/plain"},       {"ini", "text/plain"},
        {"log", "text/plain"},        {"htm", "text/html"},         {"html", "text/html"},
        {"json", "application/json"}, {"tar", "application/x-tar"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash + 1 : name, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

struct w {
    char *p;
    size_t n, o;
    int full;
};

static void s_put(struct w *w, const char *s)
{
    size_t l = strlen(s);
    if (w->o + l > w->n) {
        w->full = 1;
        return;
    }
    memcpy(w->p + w->o, s, l);
    w->o += l;
}

static void s_putu(struct w *w, uint64_t v)
{
    char tmp[21];
    size_t i = sizeof tmp - 1;
    tmp[i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    s_put(w, tmp + i);
}

size_t http_resp_head(char *buf, size_t n, const struct http_resp *rs)
{
    struct w w = {buf, n, 0, 0};
    s_put(&w, "HTTP/1.1 ");
    s_putu(&w, (uint64_t)rs->status);
    s_put(&w, " ");
    s_put(&w, http_reason(rs->status));
    s_put(&w, "\r\nServer: firmfleet-agent\r\n");
    if (rs->date) {
        s_put(&w, "Date: ");
        s_put(&w, rs->date);
        s_put(&w, "\r\n");
    }
    if (rs->ctype) {
        s_put(&w, "Content-Type: ");
        s_put(&w, rs->ctype);
        s_put(&w, "\r\n");
    }
    if (rs->length != UINT64_MAX) {
        s_put(&w, "Content-Length: ");
        s_putu(&w, rs->length);
        s_put(&w, "\r\n");
    }
    if (rs->status == 206) {
        s_put(&w, "Content-Range: bytes ");
        s_putu(&w, rs->first);
        s_put(&w, "-");
        s_putu(&w, rs->last);
        s_put(&w, "/");
        s_putu(&w, rs->total);
        s_put(&w, "\r\n");
    } else if (rs->status == 416) {
        s_put(&w, "Content-Range: bytes */");
        s_putu(&w, rs->total);
        s_put(&w, "\r\n");
    }
    if (rs->accept_ranges)
        s_put(&w, "Accept-Ranges: bytes\r\n");
    if (rs->allow) {
        s_put(&w, "Allow: ");
        s_put(&w, rs->allow);
        s_put(&w, "\r\n");
    }
    if (!rs->keep_alive)
        s_put(&w, "Connection: close\r\n");
    else if (rs->http10)
        s_put(&w, "Connection: keep-alive\r\n");
    s_put(&w, "\r\n");
    return w.full ? 0 : w.o;
}
