/* sipnotify.c: SIP NOTIFY sender (see sipnotify.h for the transaction rules).
 *
 * Pending requests live in a fixed array of SIPN_MAX_PENDING slots; the one
 * timer ticks every 100 ms while any is in use and scans them: O(N) per
 * tick with N <= 256, cheaper than a heap at this size. Responses are
 * matched by a linear scan as well.
 *
 * Our address in Via and From is the one the kernel would use to reach the
 * device: found by connect()ing a throwaway UDP socket (no packet leaves).
 */
#include "sipnotify.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SIPN_TICK_MS 100

struct pend {
    int used;
    uint8_t mac[6];
    struct sockaddr_in to;
    char branch[48];
    char call_id[80];
    uint32_t cseq;
    uint64_t t0, next; /* monotonic ms */
    uint32_t interval;
    int provisional; /* a 1xx was seen */
    size_t len;
    char *msg;
};

struct sipn {
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer;
    int closing, open_handles;
    sipn_done_fn done;
    void *arg;
    uint32_t cseq;
    size_t n_pending;
    struct pend p[SIPN_MAX_PENDING];
    struct sipn_stats st;
    char rbuf[4096];
};

/* ---- pure: build and parse ---- */

static int s_line_ok(const char *s)
{
    if (s == NULL)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int sipn_build(const struct sipn_msg *m, char *out, size_t n)
{
    const char *ctype = m->content_type ? m->content_type : "";
    const char *body = m->body ? m->body : "";
    if (!s_line_ok(m->local_ip) || !s_line_ok(m->ip) || !s_line_ok(m->user) ||
        !s_line_ok(m->branch) || !s_line_ok(m->tag) || !s_line_ok(m->call_id) ||
        !s_line_ok(m->event) || !s_line_ok(ctype) || m->event[0] == '\0' || m->user[0] == '\0' ||
        strncmp(m->branch, "z9hG4bK", 7) != 0)
        return -EINVAL;
    size_t blen = strlen(body);
    int k = snprintf(out, n,
                     "NOTIFY sip:%s@%s:%u SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP %s:%u;branch=%s;rport\r\n"
                     "Max-Forwards: 70\r\n"
                     "From: <sip:prov@%s>;tag=%s\r\n"
                     "To: <sip:%s@%s:%u>\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u NOTIFY\r\n"
                     "Contact: <sip:prov@%s:%u>\r\n"
                     "Event: %s\r\n"
                     "Subscription-State: terminated\r\n"
                     "User-Agent: firmfleet-agent\r\n"
                     "%s%s%s"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s",
                     m->user, m->ip, (unsigned)m->port, m->local_ip, (unsigned)m->local_port,
                     m->branch, m->local_ip, m->tag, m->user, m->ip, (unsigned)m->port, m->call_id,
                     (unsigned)m->cseq, m->local_ip, (unsigned)m->local_port, m->event,
                     ctype[0] ? "Content-Type: " : "", ctype, ctype[0] ? "\r\n" : "", blen, body);
    if (k < 0 || (size_t)k >= n)
        return -ENOSPC;
    return k;
}

/* Copies [p, e) trimmed into out (n bytes). 0, or -EINVAL when it does not fit. */
static int s_copy_trim(const char *p, const char *e, char *out, size_t n)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if ((size_t)(e - p) >= n)
        return -EINVAL;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return 0;
}

static int s_hname(const char *p, size_t len, const char *full, const char *compact)
{
    return (len == strlen(full) && strncasecmp(p, full, len) == 0) ||
           (compact && len == 1 && tolower((unsigned char)p[0]) == compact[0]);
}

/* The branch parameter of a Via value (the first via-parm only). */
static int s_via_branch(const char *p, const char *e, char *out, size_t n)
{
    const char *comma = memchr(p, ',', (size_t)(e - p));
    if (comma)
        e = comma;
    for (const char *q = p; q + 7 <= e; q++) {
        if (*q == ';') {
            const char *k = q + 1;
            while (k < e && (*k == ' ' || *k == '\t'))
                k++;
            if (e - k >= 7 && strncasecmp(k, "branch=", 7) == 0) {
                const char *v = k + 7, *ve = v;
                while (ve < e && *ve != ';' && *ve != ' ' && *ve != '\t')
                    ve++;
                return s_copy_trim(v, ve, out, n);
            }
        }
    }
    return -EINVAL;
}

int sipn_parse_response(const char *buf, size_t len, struct sipn_resp *out)
{
    memset(out, 0, sizeof *out);
    const char *p = buf, *end = buf + len;
    if (len < 12 || memcmp(p, "SIP/2.0 ", 8) != 0)
        return -EINVAL;
    p += 8;
    if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
        !isdigit((unsigned char)p[2]) || (p + 3 < end && p[3] != ' ' && p[3] != '\r'))
        return -EINVAL;
    out->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (out->status < 100 || out->status > 699)
        return -EINVAL;
    p += 3;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        return -EINVAL;
    const char *re = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
    if (s_copy_trim(p, re, out->reason, sizeof out->reason) < 0)
        s_copy_trim(p, p + (re - p < 60 ? re - p : 60), out->reason, sizeof out->reason);
    for (size_t i = 0; out->reason[i]; i++)
        if ((unsigned char)out->reason[i] < 0x20 || (unsigned char)out->reason[i] >= 0x7f)
            out->reason[i] = '?';
    p = eol + 1;
    int have_via = 0, have_cid = 0, have_cseq = 0;
    for (int lines = 0; p < end && lines < 128; lines++) {
        eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *lend = le > p && le[-1] == '\r' ? le - 1 : le;
        if (lend == p)
            break; /* end of headers */
        const char *colon = memchr(p, ':', (size_t)(lend - p));
        if (colon == NULL)
            return -EINVAL;
        const char *ne = colon;
        while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        size_t nl = (size_t)(ne - p);
        const char *v = colon + 1;
        if (s_hname(p, nl, "Via", "v") && !have_via) {
            if (s_via_branch(v, lend, out->branch, sizeof out->branch) < 0)
                return -EINVAL;
            have_via = 1;
        } else if (s_hname(p, nl, "Call-ID", "i") && !have_cid) {
            if (s_copy_trim(v, lend, out->call_id, sizeof out->call_id) < 0 ||
                out->call_id[0] == '\0')
                return -EINVAL;
            have_cid = 1;
        } else if (s_hname(p, nl, "CSeq", NULL) && !have_cseq) {
            char tmp[48];
            if (s_copy_trim(v, lend, tmp, sizeof tmp) < 0)
                return -EINVAL;
            char *sp = strchr(tmp, ' ');
            if (sp == NULL)
                return -EINVAL;
            *sp = '\0';
            int64_t num;
            if (util_parse_i64(tmp, 0, UINT32_MAX, &num) < 0)
                return -EINVAL;
            out->cseq = (uint32_t)num;
            if (s_copy_trim(sp + 1, sp + 1 + strlen(sp + 1), out->method, sizeof out->method) < 0)
                return -EINVAL;
            have_cseq = 1;
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return have_via && have_cid && have_cseq ? 0 : -EINVAL;
}

/* ---- the transaction machinery ---- */

static void s_rand_hex(char *out, size_t nbytes)
{
    uint8_t r[32];
    if (nbytes > sizeof r)
        nbytes = sizeof r;
    if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
        uint64_t t = util_mono_ms() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < nbytes; i++)
            r[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)i;
    }
    util_hex(r, nbytes, out);
}

static void s_finish(struct sipn *s, struct pend *pe, int ok, int status, const char *reason)
{
    uint8_t mac[6];
    memcpy(mac, pe->mac, 6);
    free(pe->msg);
    memset(pe, 0, sizeof *pe);
    s->n_pending--;
    if (s->n_pending == 0)
        uv_timer_stop(&s->timer);
    if (ok)
        s->st.ok++;
    else
        s->st.failed++;
    if (s->done)
        s->done(s->arg, mac, ok, status, reason);
}

static void s_xmit(struct sipn *s, struct pend *pe)
{
    uv_buf_t b = uv_buf_init(pe->msg, (unsigned)pe->len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&pe->to);
    if (rc < 0 && rc != UV_EAGAIN)
        log_debug("sip.send_failed", "error=\"%s\"", uv_strerror(rc));
}

static void s_on_tick(uv_timer_t *t)
{
    struct sipn *s = t->data;
    uint64_t now = util_mono_ms();
    for (size_t i = 0; i < SIPN_MAX_PENDING && s->n_pending > 0; i++) {
        struct pend *pe = &s->p[i];
        if (!pe->used)
            continue;
        if (now - pe->t0 >= SIPN_TIMER_F_MS) {
            s->st.timeouts++;
            s_finish(s, pe, 0, 0, "timeout");
            continue;
        }
        if (now >= pe->next) {
            s_xmit(s, pe);
            s->st.retransmits++;
            pe->interval =
                pe->interval * 2 > SIPN_T2_MS || pe->provisional ? SIPN_T2_MS : pe->interval * 2;
            pe->next = now + pe->interval;
        }
    }
}

static void s_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct sipn *s = h->data;
    buf->base = s->rbuf;
    buf->len = sizeof s->rbuf;
}

static void s_on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                      unsigned flags)
{
    struct sipn *s = h->data;
    if (nread <= 0 || addr == NULL || s->closing)
        return;
    struct sipn_resp r;
    if ((flags & UV_UDP_PARTIAL) || sipn_parse_response(buf->base, (size_t)nread, &r) < 0) {
        s->st.garbage++;
        log_debug("sip.garbage", "bytes=%zd", nread);
        return;
    }
    for (size_t i = 0; i < SIPN_MAX_PENDING; i++) {
        struct pend *pe = &s->p[i];
        if (!pe->used || pe->cseq != r.cseq || strcmp(r.method, "NOTIFY") != 0 ||
            strcmp(pe->call_id, r.call_id) != 0 || strcmp(pe->branch, r.branch) != 0)
            continue;
        if (r.status < 200) {
            pe->provisional = 1;
            return;
        }
        char why[96];
        if (r.status < 300)
            snprintf(why, sizeof why, "status %d", r.status);
        else
            snprintf(why, sizeof why, "status %d %s", r.status, r.reason);
        s_finish(s, pe, r.status < 300, r.status, why);
        return;
    }
    s->st.strays++;
}

/* Our address on the way to `to`, dotted. 0 or -errno. */
static int s_local_for(const struct sockaddr_in *to, char out[16])
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in me;
    socklen_t sl = sizeof me;
    int rc = 0;
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 ||
        getsockname(fd, (struct sockaddr *)&me, &sl) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && inet_ntop(AF_INET, &me.sin_addr, out, 16) == NULL)
        rc = -EINVAL;
    return rc;
}

int sipn_send(sipn_t *s, const struct sipn_req *r)
{
    if (s == NULL || s->closing)
        return -ESHUTDOWN;
    if (r->mac == NULL || r->event == NULL || r->event[0] == '\0' || r->ip_be == 0 || r->port == 0)
        return -EINVAL;
    if (s->n_pending >= SIPN_MAX_PENDING)
        return -ENOSPC;
    struct pend *pe = NULL;
    for (size_t i = 0; i < SIPN_MAX_PENDING; i++)
        if (!s->p[i].used) {
            pe = &s->p[i];
            break;
        }
    if (pe == NULL)
        return -ENOSPC;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(r->port)};
    to.sin_addr.s_addr = r->ip_be;
    char local[16], ip[16], user[16], tag[17], rnd[33];
    int rc = s_local_for(&to, local);
    if (rc < 0)
        return rc;
    struct sockaddr_in me;
    int sl = sizeof me;
    if ((rc = uv_udp_getsockname(&s->udp, (struct sockaddr *)&me, &sl)) < 0)
        return rc;
    inet_ntop(AF_INET, &to.sin_addr, ip, sizeof ip);
    if (r->user_mac)
        util_hex(r->mac, 6, user);
    else
        snprintf(user, sizeof user, "anonymous");
    memset(pe, 0, sizeof *pe);
    s_rand_hex(rnd, 10);
    snprintf(pe->branch, sizeof pe->branch, "z9hG4bK%s", rnd);
    s_rand_hex(tag, 8);
    s_rand_hex(rnd, 12);
    snprintf(pe->call_id, sizeof pe->call_id, "%s@%s", rnd, local);
    pe->cseq = ++s->cseq;
    struct sipn_msg m = {
        .local_ip = local,
        .local_port = ntohs(me.sin_port),
        .ip = ip,
        .port = r->port,
        .user = user,
        .branch = pe->branch,
        .tag = tag,
        .call_id = pe->call_id,
        .cseq = pe->cseq,
        .event = r->event,
        .content_type = r->content_type,
        .body = r->body,
    };
    pe->msg = malloc(SIPN_MSG_MAX);
    if (pe->msg == NULL)
        return -ENOMEM;
    int len = sipn_build(&m, pe->msg, SIPN_MSG_MAX);
    if (len < 0) {
        free(pe->msg);
        memset(pe, 0, sizeof *pe);
        return len;
    }
    pe->len = (size_t)len;
    pe->used = 1;
    memcpy(pe->mac, r->mac, 6);
    pe->to = to;
    pe->t0 = util_mono_ms();
    pe->interval = SIPN_T1_MS;
    pe->next = pe->t0 + SIPN_T1_MS;
    s->n_pending++;
    s->st.sent++;
    s_xmit(s, pe);
    if (!uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, s_on_tick, SIPN_TICK_MS, SIPN_TICK_MS);
    return 0;
}

static void s_on_closed(uv_handle_t *h)
{
    struct sipn *s = h->data;
    if (--s->open_handles == 0) {
        for (size_t i = 0; i < SIPN_MAX_PENDING; i++)
            free(s->p[i].msg);
        free(s);
    }
}

int sipn_new(uv_loop_t *loop, sipn_done_fn done, void *arg, sipn_t **out)
{
    *out = NULL;
    struct sipn *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->done = done;
    s->arg = arg;
    s_rand_hex(s->rbuf, 2); /* scratch: a random first CSeq keeps restarts apart */
    s->cseq = (uint32_t)strtoul(s->rbuf, NULL, 16) % 1000 + 100;
    int rc = uv_udp_init(loop, &s->udp);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->udp.data = s;
    s->open_handles = 1;
    struct sockaddr_in any = {.sin_family = AF_INET};
    if ((rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&any, 0)) < 0 ||
        (rc = uv_udp_recv_start(&s->udp, s_alloc, s_on_recv)) < 0) {
        s->closing = 1;
        uv_close((uv_handle_t *)&s->udp, s_on_closed);
        return rc;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 2;
    *out = s;
    return 0;
}

void sipn_destroy(sipn_t **s_p)
{
    if (s_p == NULL || *s_p == NULL)
        return;
    struct sipn *s = *s_p;
    *s_p = NULL;
    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->udp, s_on_closed);
    uv_close((uv_handle_t *)&s->timer, s_on_closed);
}

void sipn_stats(const sipn_t *s, struct sipn_stats *out)
{
    *out = s->st;
}

size_t sipn_pending(const sipn_t *s)
{
    return s->n_pending;
}
