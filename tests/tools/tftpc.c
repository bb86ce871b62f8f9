/* tftpc.c: a scriptable TFTP client for the system tests and the benchmark,
 * doing what the packaged clients cannot: exact request bytes, broadcast
 * requests with broadcast ACKs (Cisco ROMMON recovery), lost blocks and
 * duplicate ACKs on purpose, a stranger's packets, junk floods, and many
 * transfers at once from one process.
 *
 *   tftpc get [options] SERVER[:PORT] NAME OUT
 *       one transfer; NAME takes C escapes (\r \n \t \\ \0 \xHH), so a name
 *       with a trailing CR or a NUL inside can be sent. OUT "-" discards.
 *       Prints one line: "ok bytes=N blocks=N src=IP:PORT blksize=N
 *       windowsize=N tsize=N dupdata=N ooo=N tid_error=N" and exits 0, or
 *       "error code=N msg=..." and exits 3, or "timeout" and exits 4.
 *     -m MODE        octet (default) or netascii (raw wire bytes are written)
 *     -o NAME=VALUE  an option in the request (repeatable, in order)
 *     -B ADDR        bind to ADDR (needed for -b: the route to 255.255.255.255)
 *     -b             broadcast: SO_BROADCAST on, every ACK to
 *                    255.255.255.255:server-port, as an Aironet in recovery
 *                    (give SERVER as 255.255.255.255 or a directed broadcast)
 *     -d BLOCK       drop data block BLOCK (absolute, from 1) the first time
 *     -D             send every ACK twice (the server must not answer twice)
 *     -T             after block 3, send an ACK from another port (a stranger)
 *                    and expect error 5 there while the transfer goes on
 *     -x ADDR        the replies must come from ADDR (exit 5 otherwise)
 *     -w MS          per-packet timeout (default 1000), 5 tries
 *     -p USEC        pause before each ACK (a slow device writing flash)
 *   tftpc load [options] SERVER[:PORT] NAME N
 *       N transfers of NAME at once (epoll, one socket each); prints
 *       "ok transfers=N bytes=N seconds=S mbps=M failed=F"; exits 0 when all
 *       succeeded with the same size (-s SIZE checks it). Options as for get
 *       (-o, -m, -w) plus -s SIZE.
 *   tftpc junk SERVER[:PORT] SECONDS [NAME]
 *       sends malformed requests, stray opcodes, WRQs, traversal names and
 *       random bytes to the server port, and with NAME opens transfers and
 *       throws junk at their ports (as the client and as strangers).
 * Every wait is bounded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXOPTS 8
#define PKT_MAX 65536 + 4

struct cfg {
    struct sockaddr_in srv;
    const char *name;
    size_t name_len;
    const char *mode;
    const char *opt_name[MAXOPTS], *opt_val[MAXOPTS];
    int nopts;
    struct in_addr bind_addr;
    int bcast, dup_acks, stranger;
    struct in_addr want_src; /* 0: any */
    uint64_t drop_block;
    int timeout_ms;
    unsigned pause_us;
};

struct ct {
    const struct cfg *c;
    int fd;
    struct sockaddr_in tid;
    int have_tid;
    uint32_t bs, ws;
    uint64_t tsize;
    uint64_t got, bytes;
    uint32_t inwin;
    int gap_acked;
    uint8_t last[1024];
    size_t last_len;
    uint64_t deadline;
    int tries;
    FILE *out;
    int done, failed, timed_out;
    uint16_t errcode;
    char errmsg[128];
    unsigned dupdata, ooo;
    int dropped;
    int stranger_fd, tid_error;
    char src[32];
};

static uint64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int s_parse_server(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 69);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* C escapes in place; returns the length. */
static size_t s_unescape(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '\\' || s[i + 1] == '\0') {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'r')
            s[o++] = '\r';
        else if (c == 'n')
            s[o++] = '\n';
        else if (c == 't')
            s[o++] = '\t';
        else if (c == '0')
            s[o++] = '\0';
        else if (c == 'x' && s[i + 1] && s[i + 2]) {
            char h[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtol(h, NULL, 16);
            i += 2;
        } else
            s[o++] = c;
    }
    s[o] = '\0';
    return o;
}

static size_t s_rrq(const struct cfg *c, uint8_t *b, size_t cap)
{
    size_t n = 0;
    b[n++] = 0;
    b[n++] = 1;
    if (c->name_len + 2 > cap)
        return 0;
    memcpy(b + n, c->name, c->name_len);
    n += c->name_len;
    b[n++] = 0;
    n += (size_t)snprintf((char *)b + n, cap - n, "%s", c->mode) + 1;
    for (int i = 0; i < c->nopts && n < cap; i++) {
        n += (size_t)snprintf((char *)b + n, cap - n, "%s", c->opt_name[i]) + 1;
        n += (size_t)snprintf((char *)b + n, cap - n, "%s", c->opt_val[i]) + 1;
    }
    return n > cap ? cap : n;
}

static void s_sendto(struct ct *t, const void *b, size_t n, const struct sockaddr_in *to)
{
    if (sendto(t->fd, b, n, 0, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EAGAIN)
        fprintf(stderr, "tftpc: sendto: %s\n", strerror(errno));
}

static struct sockaddr_in s_ack_dest(const struct ct *t)
{
    struct sockaddr_in to = t->tid;
    if (t->c->bcast)
        to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
    return to;
}

static void s_ack(struct ct *t, uint16_t blk)
{
    if (t->c->pause_us)
        usleep(t->c->pause_us);
    uint8_t a[4] = {0, 4, (uint8_t)(blk >> 8), (uint8_t)blk};
    memcpy(t->last, a, 4);
    t->last_len = 4;
    struct sockaddr_in to = s_ack_dest(t);
    s_sendto(t, a, 4, &to);
    if (t->c->dup_acks)
        s_sendto(t, a, 4, &to);
    t->deadline = s_ms() + (uint64_t)t->c->timeout_ms;
    t->tries = 0;
}

static int s_ct_start(struct ct *t, const struct cfg *c, FILE *out)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    t->out = out;
    t->bs = 512;
    t->ws = 1;
    t->stranger_fd = -1;
    t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (t->fd < 0)
        return -1;
    int one = 1;
    if (c->bcast)
        setsockopt(t->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr = c->bind_addr};
    if (bind(t->fd, (struct sockaddr *)&me, sizeof me) < 0)
        return -1;
    t->last_len = s_rrq(c, t->last, sizeof t->last);
    s_sendto(t, t->last, t->last_len, &c->srv);
    t->deadline = s_ms() + (uint64_t)c->timeout_ms;
    return 0;
}

static void s_parse_oack(struct ct *t, const uint8_t *p, size_t n)
{
    size_t i = 2;
    while (i < n) {
        const char *k = (const char *)p + i;
        size_t kl = strnlen(k, n - i);
        if (i + kl + 1 >= n)
            break;
        const char *v = k + kl + 1;
        size_t vl = strnlen(v, n - i - kl - 1);
        char val[32];
        snprintf(val, sizeof val, "%.*s", (int)vl, v);
        if (strcasecmp(k, "blksize") == 0)
            t->bs = (uint32_t)strtoul(val, NULL, 10);
        else if (strcasecmp(k, "windowsize") == 0)
            t->ws = (uint32_t)strtoul(val, NULL, 10);
        else if (strcasecmp(k, "tsize") == 0)
            t->tsize = strtoull(val, NULL, 10);
        i += kl + 1 + vl + 1;
    }
}

static void s_stranger(struct ct *t)
{
    t->stranger_fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr = t->c->bind_addr};
    bind(t->stranger_fd, (struct sockaddr *)&me, sizeof me);
    uint8_t a[4] = {0, 4, 0, 3};
    sendto(t->stranger_fd, a, 4, 0, (struct sockaddr *)&t->tid, sizeof t->tid);
    struct pollfd pf = {.fd = t->stranger_fd, .events = POLLIN};
    if (poll(&pf, 1, 1000) == 1) {
        uint8_t b[600];
        ssize_t n = recv(t->stranger_fd, b, sizeof b, 0);
        if (n >= 4 && b[1] == 5)
            t->tid_error = b[3];
    }
    close(t->stranger_fd);
    t->stranger_fd = -1;
}

/* Handles one datagram for t. */
static void s_ct_input(struct ct *t, const uint8_t *p, size_t n, const struct sockaddr_in *from)
{
    if (n < 4)
        return;
    if (!t->have_tid) {
        t->tid = *from;
        t->have_tid = 1;
        snprintf(t->src, sizeof t->src, "%s:%u", inet_ntoa(from->sin_addr), ntohs(from->sin_port));
    } else if (from->sin_addr.s_addr != t->tid.sin_addr.s_addr ||
               from->sin_port != t->tid.sin_port) {
        return; /* not our server */
    }
    uint16_t op = (uint16_t)(p[0] << 8 | p[1]);
    if (op == 5) {
        t->failed = 1;
        t->errcode = (uint16_t)(p[2] << 8 | p[3]);
        snprintf(t->errmsg, sizeof t->errmsg, "%.*s", (int)strnlen((const char *)p + 4, n - 4),
                 (const char *)p + 4);
        return;
    }
    if (op == 6) {
        if (t->got == 0) {
            s_parse_oack(t, p, n);
            s_ack(t, 0);
        }
        return;
    }
    if (op != 3)
        return;
    uint16_t blk = (uint16_t)(p[2] << 8 | p[3]);
    size_t len = n - 4;
    uint16_t want = (uint16_t)(t->got + 1);
    if (blk == want && t->c->drop_block && !t->dropped && t->got + 1 == t->c->drop_block) {
        t->dropped = 1;
        return;
    }
    if (blk != want) {
        if (t->ws == 1) {
            t->dupdata++;
            if (blk == (uint16_t)t->got)
                s_ack(t, blk); /* a repeated block: ack it again, as real clients do */
        } else {
            t->ooo++;
            if (!t->gap_acked) { /* RFC 7440: ack the last block in order */
                t->gap_acked = 1;
                t->inwin = 0;
                s_ack(t, (uint16_t)t->got);
            }
        }
        return;
    }
    t->gap_acked = 0;
    if (t->out && len && fwrite(p + 4, 1, len, t->out) != len)
        t->failed = 1;
    t->got++;
    t->bytes += len;
    t->inwin++;
    if (len < t->bs) {
        s_ack(t, blk);
        t->done = 1;
        return;
    }
    if (t->inwin >= t->ws) {
        t->inwin = 0;
        s_ack(t, blk);
    }
    if (t->c->stranger && t->got == 3 && t->stranger_fd < 0 && !t->tid_error)
        s_stranger(t);
}

static void s_ct_timer(struct ct *t, uint64_t now)
{
    if (t->done || t->failed || now < t->deadline)
        return;
    if (++t->tries > 5) {
        t->timed_out = 1;
        t->failed = 1;
        return;
    }
    if (!t->have_tid) {
        s_sendto(t, t->last, t->last_len, &t->c->srv);
    } else {
        struct sockaddr_in to = s_ack_dest(t);
        if (t->ws > 1) { /* RFC 7440: on timeout ack the last block in order */
            uint8_t a[4] = {0, 4, (uint8_t)(t->got >> 8), (uint8_t)t->got};
            memcpy(t->last, a, 4);
            t->last_len = 4;
            t->inwin = 0;
        }
        s_sendto(t, t->last, t->last_len, &to);
    }
    t->deadline = now + (uint64_t)t->c->timeout_ms;
}

static void s_ct_read(struct ct *t)
{
    static uint8_t b[PKT_MAX];
    for (int i = 0; i < 64 && !t->done && !t->failed; i++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(t->fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        s_ct_input(t, b, (size_t)n, &from);
    }
}

static int s_opts(int argc, char **argv, struct cfg *c, uint64_t *size)
{
    int o;
    c->mode = "octet";
    c->timeout_ms = 1000;
    while ((o = getopt(argc, argv, "m:o:B:bd:DTx:w:s:p:")) != -1) {
        switch (o) {
        case 'm':
            c->mode = optarg;
            break;
        case 'o': {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || c->nopts >= MAXOPTS)
                return -1;
            *eq = '\0';
            c->opt_name[c->nopts] = optarg;
            c->opt_val[c->nopts++] = eq + 1;
            break;
        }
        case 'B':
            if (inet_pton(AF_INET, optarg, &c->bind_addr) != 1)
                return -1;
            break;
        case 'b':
            c->bcast = 1;
            break;
        case 'd':
            c->drop_block = strtoull(optarg, NULL, 10);
            break;
        case 'D':
            c->dup_acks = 1;
            break;
        case 'T':
            c->stranger = 1;
            break;
        case 'x':
            if (inet_pton(AF_INET, optarg, &c->want_src) != 1)
                return -1;
            break;
        case 'w':
            c->timeout_ms = atoi(optarg);
            break;
        case 's':
            *size = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            c->pause_us = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static int s_get(int argc, char **argv)
{
    struct cfg c;
    memset(&c, 0, sizeof c);
    uint64_t size = 0;
    if (s_opts(argc, argv, &c, &size) < 0 || argc - optind != 3)
        return 2;
    if (s_parse_server(argv[optind], &c.srv) < 0)
        return 2;
    c.name = argv[optind + 1];
    c.name_len = s_unescape(argv[optind + 1]);
    FILE *out = strcmp(argv[optind + 2], "-") == 0 ? NULL : fopen(argv[optind + 2], "wb");
    struct ct t;
    if (s_ct_start(&t, &c, out) < 0) {
        perror("tftpc: socket");
        return 2;
    }
    uint64_t limit = s_ms() + 600000;
    while (!t.done && !t.failed && s_ms() < limit) {
        struct pollfd pf = {.fd = t.fd, .events = POLLIN};
        poll(&pf, 1, 50);
        if (pf.revents & POLLIN)
            s_ct_read(&t);
        s_ct_timer(&t, s_ms());
    }
    if (out)
        fclose(out);
    if (t.done && c.want_src.s_addr) {
        char want[32];
        snprintf(want, sizeof want, "%s:", inet_ntoa(c.want_src));
        if (strncmp(t.src, want, strlen(want)) != 0) {
            printf("wrong-source src=%s\n", t.src);
            return 5;
        }
    }
    if (t.done) {
        printf("ok bytes=%llu blocks=%llu src=%s blksize=%u windowsize=%u tsize=%llu dupdata=%u "
               "ooo=%u tid_error=%d\n",
               (unsigned long long)t.bytes, (unsigned long long)t.got, t.src, t.bs, t.ws,
               (unsigned long long)t.tsize, t.dupdata, t.ooo, t.tid_error);
        return 0;
    }
    if (t.timed_out || !t.failed) {
        printf("timeout\n");
        return 4;
    }
    printf("error code=%u msg=%s src=%s\n", t.errcode, t.errmsg, t.src);
    return 3;
}

static int s_load(int argc, char **argv)
{
    struct cfg c;
    memset(&c, 0, sizeof c);
    uint64_t size = 0;
    if (s_opts(argc, argv, &c, &size) < 0 || argc - optind != 3)
        return 2;
    if (s_parse_server(argv[optind], &c.srv) < 0)
        return 2;
    c.name = argv[optind + 1];
    c.name_len = s_unescape(argv[optind + 1]);
    int n = atoi(argv[optind + 2]);
    if (n < 1 || n > 4000)
        return 2;
    struct ct *ts = calloc((size_t)n, sizeof *ts);
    int ep = epoll_create1(0);
    uint64_t t0 = s_ms();
    for (int i = 0; i < n; i++) {
        if (s_ct_start(&ts[i], &c, NULL) < 0) {
            perror("tftpc: socket");
            return 2;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, ts[i].fd, &ev);
    }
    int left = n;
    uint64_t limit = t0 + 600000, last_tick = t0;
    while (left > 0 && s_ms() < limit) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 20);
        for (int j = 0; j < k; j++) {
            struct ct *t = &ts[evs[j].data.u32];
            int was = t->done || t->failed;
            s_ct_read(t);
            if (!was && (t->done || t->failed)) {
                left--;
                epoll_ctl(ep, EPOLL_CTL_DEL, t->fd, NULL);
            }
        }
        uint64_t now = s_ms();
        if (now - last_tick >= 20) {
            last_tick = now;
            for (int i = 0; i < n; i++) {
                int was = ts[i].done || ts[i].failed;
                s_ct_timer(&ts[i], now);
                if (!was && ts[i].failed) {
                    left--;
                    epoll_ctl(ep, EPOLL_CTL_DEL, ts[i].fd, NULL);
                }
            }
        }
    }
    double secs = (double)(s_ms() - t0) / 1000.0;
    uint64_t bytes = 0;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        bytes += ts[i].bytes;
        if (!ts[i].done || (size && ts[i].bytes != size)) {
            failed++;
            if (failed <= 3)
                fprintf(stderr, "tftpc: transfer %d: done=%d bytes=%llu err=%u %s\n", i, ts[i].done,
                        (unsigned long long)ts[i].bytes, ts[i].errcode, ts[i].errmsg);
        }
        close(ts[i].fd);
    }
    printf("ok transfers=%d bytes=%llu seconds=%.3f mbps=%.1f failed=%d\n", n,
           (unsigned long long)bytes, secs, secs > 0 ? (double)bytes / secs / 1e6 : 0.0, failed);
    free(ts);
    close(ep);
    return failed ? 1 : 0;
}

static int s_junk(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    struct sockaddr_in srv;
    if (s_parse_server(argv[2], &srv) < 0)
        return 2;
    int secs = atoi(argv[3]);
    const char *name = argc > 4 ? argv[4] : NULL;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int tfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    bind(fd, (struct sockaddr *)&any, sizeof any);
    bind(tfd, (struct sockaddr *)&any, sizeof any);
    srand((unsigned)getpid());
#define R(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
    static const struct {
        const char *p;
        size_t n;
    } reqs[] = {
        R("\0\1"),
        R("\0\1abc"),
        R("\0\1abc\0"),
        R("\0\1abc\0oct"),
        R("\0\1abc\0mail\0"),
        R("\0\1\0octet\0"),
        R("\0\2upload.bin\0octet\0"),
        R("\0\1../etc/passwd\0octet\0"),
        R("\0\1/etc/passwd\0octet\0"),
        R("\0\1..\\..\\etc\\passwd\0octet\0"),
        R("\0\1missing.bin\0octet\0blksize\0"
          "99999999999999999999999\0"),
        R("\0\1missing.bin\0octet\0tsize\0"),
        R("\0\1missing.bin\0octet\0tsize\0"
          "0\0junk"),
        R("\0\3\0\1data"),
        R("\0\4\0\1"),
        R("\0\5\0\1bye\0"),
        R("\0\6blksize\0"
          "512\0"),
        R("\0\7"),
        R("\xff\xff"),
    };
#undef R
    uint64_t end = s_ms() + (uint64_t)secs * 1000;
    unsigned long sent = 0;
    uint8_t b[1600];
    struct sockaddr_in tid = {0};
    while (s_ms() < end) {
        for (int burst = 0; burst < 50; burst++) {
            int kind = rand() % 16;
            kind = kind < 6 ? 0 : kind < 12 ? 1 : kind < 14 ? 2 : 3;
            size_t n;
            if (kind == 0) { /* random bytes */
                n = (size_t)(rand() % (int)sizeof b);
                for (size_t i = 0; i < n; i++)
                    b[i] = (uint8_t)rand();
            } else if (kind == 1) { /* a canned bad request (lengths include the NULs) */
                int k = rand() % (int)(sizeof reqs / sizeof reqs[0]);
                n = reqs[k].n;
                memcpy(b, reqs[k].p, n);
            } else if (kind == 2) { /* an overlong name */
                n = 1200;
                memset(b, 'A', n);
                b[0] = 0, b[1] = 1, b[n - 7] = 0;
                memcpy(b + n - 6, "octet", 6);
            } else { /* a real request, then junk at its transfer port */
                if (name == NULL)
                    continue;
                n = (size_t)snprintf((char *)b, sizeof b, "%c%c%s%coctet", 0, 1, name, 0) + 1;
                sendto(tfd, b, n, 0, (struct sockaddr *)&srv, sizeof srv);
                sent++;
                uint8_t r[1600];
                struct sockaddr_in from;
                socklen_t fl = sizeof from;
                struct pollfd pf = {.fd = tfd, .events = POLLIN};
                if (poll(&pf, 1, 1) == 1 &&
                    recvfrom(tfd, r, sizeof r, 0, (struct sockaddr *)&from, &fl) > 0)
                    tid = from;
                if (tid.sin_port) {
                    /* junk from the client itself, then from a stranger */
                    uint8_t j[7] = {0,
                                    (uint8_t)(rand() % 9),
                                    (uint8_t)rand(),
                                    (uint8_t)rand(),
                                    (uint8_t)rand(),
                                    0,
                                    0};
                    sendto(tfd, j, (size_t)(rand() % 7), 0, (struct sockaddr *)&tid, sizeof tid);
                    sendto(fd, j, 4, 0, (struct sockaddr *)&tid, sizeof tid);
                    sent += 2;
                }
                continue;
            }
            sendto(fd, b, n, 0, (struct sockaddr *)&srv, sizeof srv);
            sent++;
        }
        /* drain whatever comes back so our buffers do not fill */
        while (recv(fd, b, sizeof b, 0) > 0)
            ;
        while (recv(tfd, b, sizeof b, MSG_DONTWAIT) > 0)
            ;
        usleep(1000);
    }
    printf("ok sent=%lu\n", sent);
    close(fd);
    close(tfd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "get") == 0)
        return s_get(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return s_load(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "junk") == 0)
        return s_junk(argc, argv);
    fprintf(stderr, "usage: tftpc get|load|junk ... (see the top of tftpc.c)\n");
    return 2;
}
