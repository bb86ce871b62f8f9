/* metrics.c: Prometheus text exposition 0.0.4 into a growable buffer, and
 * the pure parts of the /metrics responders (see metrics.h).
 *
 * The buffer doubles from 4 KiB; a scrape of either daemon is a few KiB, so
 * one or two reallocations per scrape. Rejected: a fixed buffer (a fleet
 * with many rollout states would truncate silently) and per-sample
 * allocation.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct metrics {
    char *p;
    size_t len, cap;
    int err; /* sticky: 0 or a negative code */
};

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->cap = 4096;
    m->p = malloc(m->cap);
    if (m->p == NULL) {
        free(m);
        return NULL;
    }
    m->p[0] = '\0';
    return m;
}

void metrics_destroy(metrics_t **m_p)
{
    if (m_p == NULL || *m_p == NULL)
        return;
    free((*m_p)->p);
    free(*m_p);
    *m_p = NULL;
}

static int s_reserve(metrics_t *m, size_t more)
{
    if (m->err)
        return m->err;
    if (m->len + more + 1 <= m->cap)
        return 0;
    size_t cap = m->cap;
    while (m->len + more + 1 > cap) {
        if (cap > SIZE_MAX / 2)
            return m->err = -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(m->p, cap);
    if (p == NULL)
        return m->err = -ENOMEM;
    m->p = p;
    m->cap = cap;
    return 0;
}

static int s_put(metrics_t *m, const char *s, size_t n)
{
    int rc = s_reserve(m, n);
    if (rc < 0)
        return rc;
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
    return 0;
}

static int s_puts(metrics_t *m, const char *s)
{
    return s_put(m, s, strlen(s));
}

/* escape: 1 for label values (\\ \" \n), 0 for HELP text (\\ \n) */
static int s_put_escaped(metrics_t *m, const char *s, int quote)
{
    for (; *s; s++) {
        const char *e = NULL;
        if (*s == '\\')
            e = "\\\\";
        else if (*s == '\n')
            e = "\\n";
        else if (quote && *s == '"')
            e = "\\\"";
        int rc = e ? s_put(m, e, 2) : s_put(m, s, 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics; without ':' for labels */
static int s_name_ok(const char *s, int colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return 0;
    }
    return 1;
}

int metrics_family(metrics_t *m, const char *name, enum metrics_type type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "summary", "histogram"};
    if (m->err)
        return m->err;
    if (!s_name_ok(name, 1) || (unsigned)type > METRICS_HISTOGRAM || help == NULL)
        return m->err = -EINVAL;
    int rc = s_puts(m, "# HELP ");
    if (rc == 0)
        rc = s_puts(m, name);
    if (rc == 0)
        rc = s_put(m, " ", 1);
    if (rc == 0)
        rc = s_put_escaped(m, help, 0);
    if (rc == 0)
        rc = s_puts(m, "\n# TYPE ");
    if (rc == 0)
        rc = s_puts(m, name);
    if (rc == 0)
        rc = s_put(m, " ", 1);
    if (rc == 0)
        rc = s_puts(m, types[type]);
    if (rc == 0)
        rc = s_put(m, "\n", 1);
    return rc;
}

static int s_series(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n)
{
    if (m->err)
        return m->err;
    if (!s_name_ok(name, 1) || (n > 0 && labels == NULL))
        return m->err = -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!s_name_ok(labels[i].name, 0) || labels[i].value == NULL)
            return m->err = -EINVAL;
    int rc = s_puts(m, name);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = s_put(m, i == 0 ? "{" : ",", 1);
        if (rc == 0)
            rc = s_puts(m, labels[i].name);
        if (rc == 0)
            rc = s_put(m, "=\"", 2);
        if (rc == 0)
            rc = s_put_escaped(m, labels[i].value, 1);
        if (rc == 0)
            rc = s_put(m, "\"", 1);
    }
    if (rc == 0 && n > 0)
        rc = s_put(m, "}", 1);
    return rc;
}

static void s_format_double(double v, char *out, size_t n)
{
    if (isnan(v))
        snprintf(out, n, "NaN");
    else if (isinf(v))
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    else if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(int64_t)v)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%.17g", v);
}

int metrics_sample(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                   double value)
{
    int rc = s_series(m, name, labels, n);
    if (rc < 0)
        return rc;
    char num[64];
    num[0] = ' ';
    s_format_double(value, num + 1, sizeof num - 2);
    size_t l = strlen(num);
    num[l] = '\n';
    return s_put(m, num, l + 1);
}

int metrics_sample_u64(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                       uint64_t value)
{
    int rc = s_series(m, name, labels, n);
    if (rc < 0)
        return rc;
    char num[32];
    int l = snprintf(num, sizeof num, " %" PRIu64 "\n", value);
    return s_put(m, num, (size_t)l);
}

int metrics_counter(metrics_t *m, const char *name, const char *help, uint64_t value)
{
    int rc = metrics_family(m, name, METRICS_COUNTER, help);
    return rc < 0 ? rc : metrics_sample_u64(m, name, NULL, 0, value);
}

int metrics_gauge(metrics_t *m, const char *name, const char *help, double value)
{
    int rc = metrics_family(m, name, METRICS_GAUGE, help);
    return rc < 0 ? rc : metrics_sample(m, name, NULL, 0, value);
}

const char *metrics_text(const metrics_t *m, size_t *len)
{
    if (m->err) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = m->len;
    return m->p;
}

/* ---- histograms ---- */

void metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t n)
{
    assert(n <= METRICS_HIST_MAX);
    memset(h, 0, sizeof *h);
    h->n = n;
    for (size_t i = 0; i < n; i++) {
        assert(i == 0 || bounds[i] > bounds[i - 1]);
        h->bound[i] = bounds[i];
    }
}

void metrics_hist_observe(struct metrics_hist *h, double v)
{
    for (size_t i = 0; i < h->n; i++)
        if (v <= h->bound[i]) {
            h->count[i]++;
            break;
        }
    h->total++;
    h->sum += v;
}

int metrics_hist_write(metrics_t *m, const char *name, const struct metrics_label *labels, size_t n,
                       const struct metrics_hist *h)
{
    char nb[160];
    struct metrics_label lb[8];
    if (n + 1 > sizeof lb / sizeof lb[0] || strlen(name) + 8 > sizeof nb)
        return m->err = -EINVAL;
    if (n)
        memcpy(lb, labels, n * sizeof *lb);
    snprintf(nb, sizeof nb, "%s_bucket", name);
    uint64_t cum = 0;
    char le[64];
    int rc = 0;
    for (size_t i = 0; i <= h->n && rc == 0; i++) {
        if (i < h->n) {
            cum += h->count[i];
            s_format_double(h->bound[i], le, sizeof le);
        } else {
            cum = h->total;
            snprintf(le, sizeof le, "+Inf");
        }
        lb[n] = (struct metrics_label){"le", le};
        rc = metrics_sample_u64(m, nb, lb, n + 1, cum);
    }
    snprintf(nb, sizeof nb, "%s_sum", name);
    if (rc == 0)
        rc = metrics_sample(m, nb, labels, n, h->sum);
    snprintf(nb, sizeof nb, "%s_count", name);
    if (rc == 0)
        rc = metrics_sample_u64(m, nb, labels, n, h->total);
    return rc;
}

/* ---- process_* ---- */

int metrics_process(metrics_t *m)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* fields after the ")" that ends comm: state is field 3 */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        unsigned long long start = 0;
        long rss = 0;
        if (p != NULL && tick > 0 &&
            sscanf(p + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                   "%*d %llu %lu %ld",
                   &utime, &stime, &start, &vsize, &rss) == 5) {
            metrics_family(m, "process_cpu_seconds_total", METRICS_COUNTER,
                           "Total user and system CPU time spent in seconds.");
            metrics_sample(m, "process_cpu_seconds_total", NULL, 0,
                           (double)(utime + stime) / (double)tick);
            metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                          (double)vsize);
            metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.",
                          (double)rss * (double)page);
            /* start time: boot time (btime in /proc/stat) + start ticks */
            FILE *s = fopen("/proc/stat", "r");
            unsigned long long btime = 0;
            if (s != NULL) {
                char line[256];
                while (fgets(line, sizeof line, s))
                    if (sscanf(line, "btime %llu", &btime) == 1)
                        break;
                fclose(s);
            }
            if (btime)
                metrics_gauge(m, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              (double)btime + (double)start / (double)tick);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        long nfd = -1; /* the DIR's own descriptor */
        while (readdir(d) != NULL)
            nfd++;
        closedir(d);
        metrics_gauge(m, "process_open_fds", "Number of open file descriptors.",
                      (double)(nfd > 2 ? nfd - 2 : 0)); /* . and .. */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.",
                      (double)rl.rlim_cur);
    return m->err;
}

/* ---- responders ---- */

int metrics_req_check(const char *buf, size_t len, int *head_only)
{
    *head_only = 0;
    size_t end = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
            end = i + 1;
            break;
        }
    if (end == 0)
        return len >= METRICS_REQ_MAX ? 431 : 0;
    /* request line: METHOD SP TARGET SP HTTP/1.x CRLF, printable ASCII only */
    size_t eol = 0;
    while (eol < end && buf[eol] != '\r' && buf[eol] != '\n')
        eol++;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0 || (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
            return 400;
    }
    const char *sp1 = memchr(buf, ' ', eol);
    if (sp1 == NULL)
        return 400;
    const char *tgt = sp1 + 1;
    const char *sp2 = memchr(tgt, ' ', (size_t)(buf + eol - tgt));
    if (sp2 == NULL || sp2 == tgt)
        return 400;
    size_t vlen = (size_t)(buf + eol - (sp2 + 1));
    if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9')
        return 400;
    size_t mlen = (size_t)(sp1 - buf);
    int get = mlen == 3 && memcmp(buf, "GET", 3) == 0;
    int head = mlen == 4 && memcmp(buf, "HEAD", 4) == 0;
    if (!get && !head)
        return 405;
    *head_only = head;
    size_t tlen = (size_t)(sp2 - tgt);
    if (tlen >= 8 && memcmp(tgt, "/metrics", 8) == 0 && (tlen == 8 || tgt[8] == '?'))
        return 200;
    return 404;
}

const char *metrics_resp_body(int status)
{
    switch (status) {
    case 200:
        return "";
    case 400:
        return "bad request\n";
    case 404:
        return "not found: try /metrics\n";
    case 405:
        return "method not allowed\n";
    case 431:
        return "request header fields too large\n";
    case 503:
        return "service unavailable\n";
    default:
        return "error\n";
    }
}

int metrics_resp_head(int status, size_t body_len, char *out, size_t n)
{
    const char *reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 431 ? "Request Header Fields Too Large"
                         : status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
    int l = snprintf(out, n,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n\r\n",
                     status, reason,
                     status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                   : "text/plain; charset=utf-8",
                     body_len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (l < 0 || (size_t)l >= n)
        return -ENOSPC;
    return l;
}

int metrics_parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
    memset(sa, 0, sizeof *sa);
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0')
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || port < 1 || port > 65535)
        return -EINVAL;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)sa;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    if (strcmp(host, "*") == 0 || host[0] == '\0') {
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : -EINVAL;
}

int metrics_response(int status, int head_only, int (*collect)(void *arg, metrics_t *t),
                     void *arg, char **out, size_t *out_len)
{
    metrics_t *t = NULL;
    const char *body = metrics_resp_body(status);
    size_t blen = strlen(body);
    *out = NULL;
    *out_len = 0;
    if (status == 200) {
        t = metrics_new();
        if (t == NULL || collect(arg, t) < 0 || metrics_text(t, NULL) == NULL) {
            status = 503;
            body = metrics_resp_body(status);
            blen = strlen(body);
        } else {
            body = metrics_text(t, &blen);
        }
    }
    char head[512];
    int hl = metrics_resp_head(status, blen, head, sizeof head);
    size_t send_body = head_only ? 0 : blen;
    char *buf = hl > 0 ? malloc((size_t)hl + send_body) : NULL;
    if (buf == NULL) {
        metrics_destroy(&t);
        return -ENOMEM;
    }
    memcpy(buf, head, (size_t)hl);
    memcpy(buf + hl, body, send_body);
    metrics_destroy(&t);
    *out = buf;
    *out_len = (size_t)hl + send_body;
    return status;
}
