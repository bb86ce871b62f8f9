/* sim_tftp.c: the simulated devices' TFTP client (see sim_tftp.h).
 *
 * One struct per transfer holding a UDP handle and a timer; both are closed
 * when the transfer ends and the struct is freed in the last close callback.
 * The last packet sent is kept for retransmission. Sends use
 * uv_udp_try_send: a datagram the kernel will not take now is the same as
 * one lost on the wire, and the retransmission timer covers both, so no
 * send request has to outlive the transfer. Every RRQ asks for tsize (so
 * that an injected abort can stop midway) and, unless it is 512, blksize.
 */
#include "sim_tftp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define OP_RRQ 1
#define OP_WRQ 2
#define OP_DATA 3
#define OP_ACK 4
#define OP_ERROR 5
#define OP_OACK 6
#define RTO_MAX_MS 8000
#define NAME_MAX_LEN 255

struct sim_tftp {
    uv_udp_t udp;
    uv_timer_t timer;
    int open_handles;
    int finished; /* the outcome is decided; no more callbacks */
    sim_xfer_data_fn data;
    sim_xfer_done_fn done;
    void *arg;
    struct sockaddr_in server; /* request address, port 69 */
    struct sockaddr_in peer;   /* the transfer's TID once known */
    int have_tid;
    int asked_blksize;
    uint64_t tsize; /* from the OACK, 0 if not given */
    int got_data;
    int oack_seen;
    unsigned blksize;
    uint16_t expect; /* next DATA block */
    unsigned rto, rto0, tries, max_tries;
    struct sim_xfer_result res;
    size_t last_len;
    uint8_t last[4 + 2 * (NAME_MAX_LEN + 1) + 32]; /* RRQ or an ACK */
    size_t rcap;
    uint8_t *rbuf;
};

static void s_on_close(uv_handle_t *h)
{
    struct sim_tftp *t = h->data;
    if (--t->open_handles == 0) {
        free(t->rbuf);
        free(t);
    }
}

static void s_close(struct sim_tftp *t)
{
    t->finished = 1;
    uv_timer_stop(&t->timer);
    uv_udp_recv_stop(&t->udp);
    if (!uv_is_closing((uv_handle_t *)&t->udp))
        uv_close((uv_handle_t *)&t->udp, s_on_close);
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, s_on_close);
}

static void s_finish(struct sim_tftp *t, int status, int code, const char *detail)
{
    if (t->finished)
        return;
    t->res.status = status;
    t->res.code = code;
    t->res.detail = detail;
    t->finished = 1;
    struct sim_xfer_result r = t->res;
    t->done(t->arg, &r);
    s_close(t);
}

static void s_on_timer(uv_timer_t *tm);

static void s_send_to(struct sim_tftp *t, const void *p, size_t n, const struct sockaddr_in *to)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    (void)uv_udp_try_send(&t->udp, &b, 1, (const struct sockaddr *)to);
}

/* Sends (and keeps for retransmission) a packet to the current peer. */
static void s_send_keep(struct sim_tftp *t, const uint8_t *p, size_t n)
{
    if (p != t->last)
        memcpy(t->last, p, n);
    t->last_len = n;
    t->tries = 0;
    t->rto = t->rto0;
    s_send_to(t, t->last, n, t->have_tid ? &t->peer : &t->server);
    uv_timer_start(&t->timer, s_on_timer, t->rto, 0);
}

static void s_error_to(struct sim_tftp *t, uint16_t code, const char *msg,
                       const struct sockaddr_in *to)
{
    uint8_t b[128];
    size_t ml = strlen(msg);
    if (ml > sizeof b - 5)
        ml = sizeof b - 5;
    b[0] = 0, b[1] = OP_ERROR, b[2] = (uint8_t)(code >> 8), b[3] = (uint8_t)code;
    memcpy(b + 4, msg, ml);
    b[4 + ml] = 0;
    s_send_to(t, b, 5 + ml, to);
}

static void s_ack(struct sim_tftp *t, uint16_t block)
{
    uint8_t b[4] = {0, OP_ACK, (uint8_t)(block >> 8), (uint8_t)block};
    s_send_keep(t, b, 4);
}

static void s_on_timer(uv_timer_t *tm)
{
    struct sim_tftp *t = tm->data;
    if (t->finished)
        return;
    if (t->tries >= t->max_tries) {
        s_finish(t, -ETIMEDOUT, 0, "no answer");
        return;
    }
    t->tries++;
    t->res.retries++;
    t->rto = t->rto * 2 > RTO_MAX_MS ? RTO_MAX_MS : t->rto * 2;
    s_send_to(t, t->last, t->last_len, t->have_tid ? &t->peer : &t->server);
    uv_timer_start(&t->timer, s_on_timer, t->rto, 0);
}

static void s_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    (void)sugg;
    struct sim_tftp *t = h->data;
    *buf = uv_buf_init((char *)t->rbuf, (unsigned)t->rcap);
}

/* An OACK: only blksize and tsize were asked for; anything else, or a
 * blksize above what we asked, is refused with ERROR 8 (RFC 2347). Returns
 * 0 or -EPROTO. */
static int s_oack(struct sim_tftp *t, const uint8_t *p, size_t n)
{
    size_t i = 2;
    while (i < n) {
        const uint8_t *k = p + i, *ke = memchr(k, 0, n - i);
        if (ke == NULL)
            return -EPROTO;
        const uint8_t *v = ke + 1;
        if (v >= p + n)
            return -EPROTO;
        const uint8_t *ve = memchr(v, 0, (size_t)(p + n - v));
        if (ve == NULL)
            return -EPROTO;
        char *end;
        errno = 0;
        unsigned long long val = strtoull((const char *)v, &end, 10);
        if (*end != '\0' || end == (const char *)v || errno)
            return -EPROTO;
        if (strcasecmp((const char *)k, "tsize") == 0) {
            t->tsize = val;
        } else if (strcasecmp((const char *)k, "blksize") == 0 && t->asked_blksize) {
            if (val < 8 || val > t->blksize)
                return -EPROTO;
            t->blksize = (unsigned)val;
        } else {
            return -EPROTO; /* an option we did not ask for */
        }
        i = (size_t)(ve + 1 - p);
    }
    return 0;
}

static void s_on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                      unsigned flags)
{
    struct sim_tftp *t = u->data;
    if (t->finished || nread == 0 || from == NULL)
        return;
    if (nread < 0) {
        s_finish(t, (int)nread, 0, "socket error");
        return;
    }
    const struct sockaddr_in *sin = (const struct sockaddr_in *)from;
    if (sin->sin_family != AF_INET || sin->sin_addr.s_addr != t->server.sin_addr.s_addr)
        return; /* not our server: not even worth an error */
    if (t->have_tid && sin->sin_port != t->peer.sin_port) {
        s_error_to(t, 5, "unknown transfer ID", sin);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    if ((flags & UV_UDP_PARTIAL) || n < 4) {
        s_error_to(t, 4, "malformed packet", sin);
        s_finish(t, -EPROTO, 0,
                 (flags & UV_UDP_PARTIAL) ? "datagram over blksize" : "short packet");
        return;
    }
    uint16_t op = (uint16_t)(p[0] << 8 | p[1]);
    if (!t->have_tid) {
        t->peer = *sin;
        t->have_tid = 1;
    }
    switch (op) {
    case OP_OACK:
        if (t->got_data || s_oack(t, p, n) < 0) {
            s_error_to(t, 8, "option negotiation refused", sin);
            s_finish(t, -EPROTO, 8, "bad OACK");
            return;
        }
        t->oack_seen = 1;
        s_ack(t, 0);
        return;
    case OP_ERROR: {
        int code = p[2] << 8 | p[3];
        s_finish(t, code == 1 ? -ENOENT : code == 2 ? -EACCES : -EPROTO, code, "server error");
        return;
    }
    case OP_DATA: {
        uint16_t block = (uint16_t)(p[2] << 8 | p[3]);
        if (!t->got_data && !t->oack_seen)
            t->blksize = 512; /* the server ignored our options */
        size_t len = n - 4;
        if (block == t->expect) {
            if (len > t->blksize) {
                s_error_to(t, 4, "block over blksize", sin);
                s_finish(t, -EPROTO, 0, "block over blksize");
                return;
            }
            t->got_data = 1;
            t->res.bytes += len;
            if (len > 0 && t->data(t->arg, p + 4, len, t->tsize) != 0) {
                s_error_to(t, 0, "aborted", sin);
                s_finish(t, -ECANCELED, 0, "aborted by the device");
                return;
            }
            s_ack(t, block);
            t->expect++; /* wraps 65535 -> 0, as most servers do */
            if (len < t->blksize)
                s_finish(t, 0, 0, NULL);
        } else if (block == (uint16_t)(t->expect - 1)) {
            s_send_to(t, t->last, t->last_len, &t->peer); /* our ACK was lost */
        }
        return;
    }
    default:
        s_error_to(t, 4, "illegal operation", sin);
        s_finish(t, -EPROTO, 0, "unexpected opcode");
        return;
    }
}

int sim_tftp_start(uv_loop_t *loop, const struct sim_tftp_opts *o, sim_xfer_data_fn data,
                   sim_xfer_done_fn done, void *arg, sim_tftp_t **out)
{
    size_t nl = strlen(o->name);
    if (nl == 0 || nl > NAME_MAX_LEN || data == NULL || done == NULL)
        return -EINVAL;
    struct sim_tftp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    unsigned bs = o->blksize ? o->blksize : 512;
    if (bs < 8 || bs > 65464) {
        free(t);
        return -EINVAL;
    }
    t->rcap = bs + 4 + 1; /* one byte more: a longer datagram is caught as partial */
    t->rbuf = malloc(t->rcap);
    if (t->rbuf == NULL) {
        free(t);
        return -ENOMEM;
    }
    t->data = data, t->done = done, t->arg = arg;
    t->blksize = bs;
    t->asked_blksize = bs != 512;
    t->expect = 1;
    t->rto0 = o->rto_ms ? o->rto_ms : 1000;
    t->max_tries = o->retries;
    t->server.sin_family = AF_INET;
    t->server.sin_addr.s_addr = o->server_be;
    t->server.sin_port = htons(o->port ? o->port : 69);

    int rc = uv_udp_init(loop, &t->udp);
    if (rc < 0) {
        free(t->rbuf);
        free(t);
        return rc;
    }
    t->udp.data = t;
    t->open_handles = 1;
    uv_timer_init(loop, &t->timer); /* cannot fail */
    t->timer.data = t;
    t->open_handles = 2;
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = o->local_be};
    rc = uv_udp_bind(&t->udp, (const struct sockaddr *)&me, 0);
    if (rc == 0)
        rc = uv_udp_recv_start(&t->udp, s_alloc, s_on_recv);
    if (rc < 0) {
        s_close(t); /* freed in the close callbacks; no done callback */
        return rc;
    }
    /* RRQ: op, name, "octet", [blksize N] */
    size_t len = 0;
    t->last[len++] = 0, t->last[len++] = OP_RRQ;
    memcpy(t->last + len, o->name, nl + 1);
    len += nl + 1;
    memcpy(t->last + len, "octet", 6);
    len += 6;
    memcpy(t->last + len,
           "tsize\0"
           "0",
           8);
    len += 8;
    if (t->asked_blksize)
        len +=
            (size_t)snprintf((char *)t->last + len, sizeof t->last - len, "blksize%c%u", 0, bs) + 1;
    s_send_keep(t, t->last, len);
    *out = t;
    return 0;
}

void sim_tftp_cancel(sim_tftp_t **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    struct sim_tftp *t = *tp;
    *tp = NULL;
    if (!t->finished)
        s_close(t);
}

int sim_tftp_garbage(uint32_t local_be, uint32_t server_be, uint16_t port, unsigned seed,
                     unsigned n)
{
    /* the explicit NULs count, the implicit one does not */
    /* clang-format off */
#define BAD(s) {s, sizeof(s) - 1}
    /* clang-format on */
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        BAD("\0\1OS79XX.TXT"), /* no NUL after the name, no mode */
        BAD("\0\1x\0octet\0blksize\0"
            "99999999\0"), /* blksize out of range */
        BAD("\0\x09"
            "garbage\0octet\0"),              /* opcode 9 */
        BAD("\0\2upload.bin\0octet\0"),       /* a write request */
        BAD(""),                              /* empty datagram */
        BAD("\0\1"),                          /* RRQ with nothing */
        BAD("\0\1../../etc/passwd\0octet\0"), /* a name leaving the root */
        BAD("\0\4\0\1"),                      /* an ACK to the request port */
    };
#undef BAD
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = local_be};
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_addr.s_addr = server_be, .sin_port = htons(port ? port : 69)};
    int sent = 0;
    if (bind(fd, (struct sockaddr *)&me, sizeof me) == 0) {
        for (unsigned i = 0; i < n; i++) {
            unsigned k = (seed + i) % (sizeof bad / sizeof bad[0]);
            if (sendto(fd, bad[k].p, bad[k].n, 0, (struct sockaddr *)&to, sizeof to) >= 0)
                sent++;
        }
    }
    close(fd);
    return sent;
}
