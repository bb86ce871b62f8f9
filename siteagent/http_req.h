/* http_req.h: the pure half of the agent's HTTP/1.1 server (httpd.c does the
 * sockets): one request at a time out of a byte stream, the request target
 * turned into a file name, Range headers, the device MAC in a name or a
 * User-Agent, Content-Type by extension, and response heads. No I/O, no
 * allocation, no libuv: everything here is unit-tested on strings.
 *
 * Parsing is Debian's http-parser (libhttp-parser-dev, 2.9), not a
 * hand-written parser: it is small, streaming, fuzzed for a decade and
 * packaged. Rejected: libh2o (Debian has 2.2, and its libuv binding wants to
 * own the loop's sockets in ways that clash with our uv_poll + sendfile
 * design), llhttp (not packaged in bookworm).
 *
 * Invariants: a struct http_req holds only fixed-size buffers; limits are
 * enforced while bytes stream in (URL length -> 414, header bytes and count
 * -> 431) so no single request can make the caller buffer more than it
 * chose to; the parser stops (pauses) after the head of every request and
 * after its end, so pipelined requests are handed out one by one.
 */
#ifndef FF_HTTP_REQ_H
#define FF_HTTP_REQ_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_URL_MAX 2048          /* request target bytes; 414 past it */
#define HTTP_HEADER_BYTES_MAX 8192 /* request line + header lines; 431 past it */
#define HTTP_HEADERS_MAX 64        /* header lines; 431 past it */
#define HTTP_UA_MAX 255            /* User-Agent kept (longer ones are cut) */
#define HTTP_RANGE_MAX 127         /* Range kept; a longer one counts as "many ranges" */
#define HTTP_HEAD_MAX 512          /* the longest response head http_resp_head writes */

enum http_req_event {
    HTTP_REQ_MORE = 0, /* everything given was consumed; feed more */
    HTTP_REQ_HEADERS,  /* the head is complete (fields below are valid) */
    HTTP_REQ_DONE,     /* the request (with its body) is complete */
    HTTP_REQ_ERROR,    /* malformed or over a limit: answer `status`, then close */
};

/* Called with body bytes of the current request (decoded when chunked).
 * Returning non-zero stops the parse: http_req_feed returns HTTP_REQ_ERROR
 * with status set to what the callback left in r->status (400 if 0). */
typedef int (*http_body_fn)(void *arg, const char *p, size_t n);

struct http_req {
    http_parser parser;
    /* valid from HTTP_REQ_HEADERS until the next request begins */
    int method;              /* enum http_method (HTTP_GET, HTTP_HEAD, HTTP_PUT, ...) */
    int http_minor;          /* 1.x */
    int keep_alive;          /* the client allows another request after this one */
    int has_body;            /* Content-Length > 0 or chunked */
    uint64_t content_length; /* UINT64_MAX when unknown (chunked) or absent */
    int expect_continue;     /* Expect: 100-continue */
    int if_range;            /* an If-Range header was sent (we cannot validate it) */
    char url[HTTP_URL_MAX + 1];
    size_t url_len;
    char ua[HTTP_UA_MAX + 1];
    size_t ua_len;
    char range[HTTP_RANGE_MAX + 1];
    size_t range_len;
    int range_long; /* longer than HTTP_RANGE_MAX */
    int status;     /* with HTTP_REQ_ERROR: 400, 414 or 431 */
    int started;    /* a byte of the current request has been seen (the caller
                     * clears it when it is done with a request) */
    int head_done;  /* HTTP_REQ_HEADERS was returned for the current request */
    /* private */
    size_t head_bytes;
    unsigned n_headers;
    int field;    /* which header the current value belongs to */
    int in_value; /* the last callback was for a value */
    char fname[16];
    size_t fname_len;
    char expect[24];
    size_t expect_len;
    int paused_at; /* 1 head, 2 end */
    /* chunked bodies: http-parser built non-strict takes any two bytes after
     * a chunk's data as its CRLF (a chunk longer than its size would be
     * read as the next chunk: a smuggling shape); we check them ourselves */
    const char *feed_end; /* end of the bytes of the current http_req_feed */
    unsigned crlf_left;   /* 2 or 1: that many bytes of the CRLF ending the
                             last chunk's data have not been seen yet */
    http_body_fn on_body;
    void *body_arg;
};

/* Readies r for the first request of a connection (no body sink). */
void http_req_init(struct http_req *r);
/* Sets where body bytes go (NULL: a body is an error, status 400). Kept
 * across requests until changed. */
void http_req_set_body(struct http_req *r, http_body_fn fn, void *arg);
/* Parses up to len bytes of data; *used says how many were consumed (the rest
 * belongs to the next call). Returns an http_req_event. After
 * HTTP_REQ_ERROR the stream is dead: answer r->status and close. */
enum http_req_event http_req_feed(struct http_req *r, const char *data, size_t len, size_t *used);

/* The request target's path, %XX-decoded, into out (NUL-terminated); the
 * query and fragment are dropped; the absolute form (http://host/p) is
 * accepted. 0, or -EINVAL (not a path, bad or NUL escape), -ENAMETOOLONG. */
int http_path_decode(const char *url, size_t len, char *out, size_t n);

enum http_range_kind {
    HTTP_RANGE_NONE = 0, /* no usable Range: send 200 with everything */
    HTTP_RANGE_ONE,      /* one satisfiable range [*first, *last]: 206 */
    HTTP_RANGE_UNSAT,    /* 416 with Content-Range: bytes * /size */
};
/* Interprets a Range header value for a representation of `size` bytes.
 * bytes=a-b, bytes=a-, bytes=-n. Several ranges: HTTP_RANGE_NONE (we send
 * the whole file with 200, which RFC 9110 allows and every client handles,
 * rather than multipart/byteranges or a silently shortened answer). A
 * malformed value or another unit is ignored (NONE), as RFC 9110 14.2 allows. */
enum http_range_kind http_range_parse(const char *s, size_t len, uint64_t size, uint64_t *first,
                                      uint64_t *last);

/* Finds a device MAC in text (a file name, a path, a User-Agent): a run of
 * exactly 12 hex digits, or six hex pairs joined by ':' or '-'. Multicast,
 * all-zero-OUI (000000000000.cfg, y000000000025.cfg) and all-ones values are
 * not MACs. 1 with mac filled (first match), 0 none. */
int http_find_mac(const char *s, size_t len, uint8_t mac[6]);

/* Content-Type for a file name, by extension (case-insensitive). */
const char *http_content_type(const char *name);
/* The reason phrase for a status code ("Unknown" for ones we never send). */
const char *http_reason(int status);

struct http_resp {
    int status;
    const char *ctype;    /* NULL: no Content-Type */
    uint64_t length;      /* Content-Length; UINT64_MAX: none (204, 1xx) */
    uint64_t first, last; /* 206: Content-Range bytes first-last/total */
    uint64_t total;       /* 206 and 416 */
    int accept_ranges;    /* Accept-Ranges: bytes */
    int keep_alive;       /* else Connection: close */
    int http10;           /* the client spoke 1.0: keep-alive must be explicit */
    const char *allow;    /* 405: Allow */
    const char *date;     /* preformatted IMF-fixdate, or NULL */
};
/* Writes the status line and headers (ending in the blank line) into buf.
 * Returns the length, or 0 when n is too small (HTTP_HEAD_MAX always fits
 * for a ctype and allow up to 64 bytes each). */
size_t http_resp_head(char *buf, size_t n, const struct http_resp *rs);

#endif
