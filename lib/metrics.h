/* metrics.h: Prometheus text exposition (format 0.0.4) built into a growable
 * buffer, and the small pure parts of the daemons' /metrics responders (the
 * request check, the response head, the listen address).
 *
 * A scrape is built by calling metrics_family() once per metric (it writes
 * the # HELP and # TYPE lines) and then metrics_sample*() for each of its
 * series; the caller owns the order, so a family's samples stay together as
 * the format requires. Label values are escaped here (\\, \", \n); metric
 * and label names are checked against the grammar and a bad one is an API
 * misuse: the call fails with -EINVAL and the buffer remembers the error.
 *
 * Invariants: the text always ends in '\n' after a successful call; an error
 * (ENOMEM, EINVAL) is sticky: later calls do nothing and metrics_text()
 * returns NULL, so a half-built scrape is never served.
 */
#ifndef FF_METRICS_H
#define FF_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct metrics metrics_t;

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_SUMMARY, METRICS_HISTOGRAM };

/* One label pair; both borrowed for the call. */
struct metrics_label {
    const char *name;
    const char *value;
};

/* A new empty buffer, or NULL (ENOMEM). */
metrics_t *metrics_new(void);
/* Frees the buffer; nulls *m_p; idempotent. */
void metrics_destroy(metrics_t **m_p);

/* Writes "# HELP name help" and "# TYPE name type". 0 or <0 (sticky). */
int metrics_family(metrics_t *m, const char *name, enum metrics_type type, const char *help);
/* One sample line: name{l1="v1",...} value. n labels (0 = none). The value is
 * printed exactly for integers up to 2^53 and with 17 significant digits
 * otherwise; NaN and infinities as NaN, +Inf, -Inf. 0 or <0 (sticky). */
int metrics_sample(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                   double value);
/* The same for an unsigned counter, printed exactly (no rounding past 2^53). */
int metrics_sample_u64(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                       uint64_t value);
/* Shorthands: a whole family with one unlabelled sample. */
int metrics_counter(metrics_t *m, const char *name, const char *help, uint64_t value);
int metrics_gauge(metrics_t *m, const char *name, const char *help, double value);

/* A fixed-bucket histogram kept in memory by a daemon (no allocation). */
#define METRICS_HIST_MAX 16
struct metrics_hist {
    size_t n;                         /* buckets in use, without +Inf */
    double bound[METRICS_HIST_MAX];   /* upper bounds, ascending */
    uint64_t count[METRICS_HIST_MAX]; /* per bucket, not cumulative */
    uint64_t total;                   /* observations (the +Inf bucket) */
    double sum;
};
/* Sets the bounds (n <= METRICS_HIST_MAX, ascending) and zeroes the counts. */
void metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t n);
void metrics_hist_observe(struct metrics_hist *h, double v);
/* Writes name_bucket{...,le="b"} (cumulative), name_sum, name_count with the
 * given labels plus le. The family line is the caller's. 0 or <0. */
int metrics_hist_write(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                       const struct metrics_hist *h);

/* The standard process_* families of the calling process (from /proc/self):
 * cpu seconds, resident and virtual memory, open fds, max fds, start time.
 * Families it cannot read are left out. 0 or <0 (sticky). */
int metrics_process(metrics_t *m);

/* The text so far (NUL-terminated, borrowed until the next call) and its
 * length; NULL after an error. */
const char *metrics_text(const metrics_t *m, size_t *len);

/* ---- the responders' pure parts ---- */

/* The largest request head a responder reads; past it the answer is 431. */
#define METRICS_REQ_MAX 8192
/* A connection that has not sent its head or taken its answer by then is
 * closed. */
#define METRICS_CONN_TIMEOUT_MS 5000
/* Connections served at once; more wait in the listen backlog. */
#define METRICS_MAX_CONNS 4

/* Checks the bytes received so far of a request: 0 the head is not complete
 * yet (and len < METRICS_REQ_MAX), else the status to answer: 200 for
 * GET or HEAD of /metrics (a query string is allowed), 404 another path,
 * 405 another method, 400 malformed (no HTTP/1.x, control bytes, a NUL),
 * 431 the head does not end within METRICS_REQ_MAX bytes. *head_only is set
 * to 1 for HEAD. Never reads past len. */
int metrics_req_check(const char *buf, size_t len, int *head_only);

/* Writes the response head for status and a body of body_len bytes
 * (Content-Type text/plain; version=0.0.4 for 200, Connection: close) into
 * out. Its length, or -ENOSPC. */
int metrics_resp_head(int status, size_t body_len, char *out, size_t n);
/* The short text body for an error status ("not found\n" ...). */
const char *metrics_resp_body(int status);

/* The whole response to a checked request (metrics_req_check's status):
 * for 200 collect(arg, t) fills a fresh exposition, and a failure turns it
 * into 503. *out is malloc'd head + body (no body for head_only), *out_len
 * its length. Returns the status sent, or -ENOMEM (*out NULL). */
int metrics_response(int status, int head_only, int (*collect)(void *arg, metrics_t *t),
                     void *arg, char **out, size_t *out_len);

/* Parses ADDR:PORT (IPv4 a.b.c.d:P, [v6]:P, or *:P for any IPv4 address)
 * into sa. 0 or -EINVAL. */
int metrics_parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *len);

#endif
