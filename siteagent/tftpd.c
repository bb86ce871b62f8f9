/* tftpd.c: the site agent's TFTP server (see tftpd.h for what it reports and
 * its limits, tftp_pkt.h for the wire format).
 *
 * Sockets. Every socket is a raw non-blocking fd watched by a uv_poll_t, not
 * a uv_udp_t: the listeners need IP_PKTINFO (which address and interface a
 * request came in on; uv_udp hides control messages), and the transfer path
 * wants sendmmsg of a whole window straight from the read-ahead buffer with
 * no uv_udp_send_t request per datagram.
 *   - Per --tftp ADDR[:PORT] a listener bound to ADDR:PORT.
 *   - Broadcast requests (Cisco ROMMON recovery sends its RRQ to
 *     255.255.255.255) never reach a socket bound to a unicast address, so
 *     for each port one extra socket is bound to 255.255.255.255:PORT, and
 *     one to each listener interface's directed broadcast. A request there is
 *     matched by its arrival interface (IP_PKTINFO ipi_ifindex) to the
 *     listener on that interface, and answered from that listener's unicast
 *     address; requests on an interface with no listener are dropped. (A
 *     wildcard --tftp 0.0.0.0 gets broadcasts itself and answers from the
 *     address routing picks for the interface, ipi_spec_dst.)
 *   - Each transfer gets a fresh socket bound to INADDR_ANY:0 (a fresh
 *     port, the TFTP TID). Bound to the wildcard, it also receives what the
 *     client sends to 255.255.255.255:port (the Aironet that ACKs to
 *     broadcast); unconnected, it sees strangers too, which get error 5 while
 *     the transfer goes on. Every datagram it sends carries IP_PKTINFO with
 *     ipi_spec_dst set to the unicast address the request was for, so the
 *     reply never comes from another address (nor from a broadcast one).
 *     Rejected: a socket bound to the unicast address (deaf to broadcast
 *     ACKs) plus a broadcast socket per transfer port (two fds per transfer);
 *     connect() (the kernel would drop broadcast ACKs and strangers silently).
 *
 * Transfers. One struct xfer per transfer (s_xfer_new; s_xfer_close ends
 * it, s_xfer_closed frees it when its handles are closed), no thread or
 * process per client. Blocks are numbered absolutely from 1
 * (uint64_t, so images over 32 MiB at 512-byte blocks roll the wire's 16
 * bits over 65535 -> 0 without ambiguity). A window [base, base+ws) leaves
 * in one syscall: with UDP GSO (UDP_SEGMENT, segment = 4-byte header +
 * blksize, which every block but the last fills exactly) the whole window
 * crosses the IP stack as one packet and is cut into datagrams at the
 * device; where the kernel or device refuses GSO, one sendmmsg. The ACK of
 * its last block slides it, the ACK of an
 * earlier block restarts from the block after it (RFC 7440), a repeated ACK
 * of the block before the window is ignored (never answer a duplicate ACK:
 * Sorcerer's Apprentice). Only the retransmission timer resends.
 *
 * Bytes. Octet from a file: the file is mapped read-only (MAP_SHARED), once
 * for all the transfers sending it (struct fmap, keyed by device, inode,
 * size and mtime, unmapped with its last transfer), and each DATA leaves by
 * sendmsg with an iovec of the 4-byte header and a pointer into the
 * mapping: the kernel copies the page-cache bytes straight into the skb, no
 * pread and no copy through a buffer of ours (measured, 100 x 4 MiB at 1468:
 * CPU per GB from 1.25x dnsmasq's to 0.85-1.04x; the preads were 6 % of the
 * agent's time and the copy out of a hundred per-transfer buffers missed
 * L2). The mapping is never read in user space: a file truncated under a
 * transfer (an operator's cp over it) makes the kernel's copy fail with
 * EFAULT, which fails that transfer ("file shrank"), where a read of ours
 * would have been a SIGBUS for the whole agent. One mapping per file, not
 * per transfer, because RSS counts a mapped page once per mapping: 250
 * transfers of one 4 MiB image add 4 MiB of (shared, clean) page cache to
 * RSS, not 1 GB; of a file over TFTPD_MAP_RESIDENT_MAX the mapped pages
 * are dropped from our page tables (madvise DONTNEED; they stay in page
 * cache) each time that much has been sent from it, so RSS does not grow
 * with the image (measured: three 60 MiB transfers, peak RSS 15 MiB
 * against 8.5 idle). A file that cannot be mapped (empty, mmap refused) is
 * pread through a small per-transfer buffer as before: the window, or
 * 8 KiB if that is more. A rendered (memory) file in octet mode is sent
 * straight from its memory. netascii is encoded into a streaming
 * buffer as it is read (LF -> CR LF, CR -> CR NUL) that keeps the window for
 * retransmission, so its wire size is known only at the end (no tsize in
 * netascii). No allocation per block.
 *
 * Timers. One uv_timer_t per transfer, started once; sending only moves
 * t->deadline, and the timer re-arms itself when it fires early, so the
 * fast path touches no timer heap.
 *
 * Disk. Page faults on the mapping (and pread for netascii) happen on the
 * loop thread: a branch agent serves images from page cache
 * after the first device; a thread-pool read per window would add latency
 * to every window for a case (cold disk, many transfers) that does not occur.
 */
#define _GNU_SOURCE
#include "tftpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "log.h"
#include "provision.h"
#include "services.h"
#include "tftp_pkt.h"
#include "util.h"

#define TFTPD_MAX_SOCKS (SVC_MAX_LISTEN * 3)
#define TFTPD_MTU_CACHE 8
#define TFTPD_MTU_TTL_MS 5000
#define TFTPD_ERR_MAX 516 /* an error packet we send: 4 + message + NUL */

struct tftpd;

enum lkind { L_UNICAST, L_BCAST };

struct listener {
    struct tftpd *d;
    uv_poll_t poll;
    int fd;
    enum lkind kind;
    struct in_addr addr; /* bound: unicast, wildcard or a broadcast address */
    uint16_t port;       /* host order */
    struct ifinfo {
        int ifindex;          /* unicast: the interface owning addr, else 0 */
        struct in_addr bcast; /* unicast: its directed broadcast, or 0 */
        struct in_addr mask;  /* unicast: its netmask */
    } ifi;
    const struct listener *owner; /* directed broadcast: the unicast listener it serves */
};

enum xstate { X_OACK, X_DATA };

/* A file being sent in octet mode, mapped once for every transfer that
 * sends it (see "Bytes" above). Identified by what fstat says; a file
 * replaced or rewritten since is another file. */
struct fmap {
    struct fmap *next;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    const uint8_t *base;
    unsigned refs;  /* transfers using it; unmapped at 0 */
    uint64_t sent;  /* bytes sent from it since its pages were last dropped */
};

struct xfer {
    struct tftpd *d;
    struct xfer *prev, *next;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int open_handles; /* uv handles not yet closed; the struct is freed at 0 */
    int closing;
    int watching_write;
    int pmtu_want;    /* fell back to IP_PMTUDISC_WANT after EMSGSIZE */
    unsigned gso_max; /* blocks per GSO send; 0 or 1: no GSO */
    struct sockaddr_in peer;
    struct in_addr local;
    struct files_src src;
    struct fmap *map; /* octet from a file: the bytes, never read here */
    enum tftp_mode mode;
    enum xstate state;
    uint32_t bs, ws;
    uint64_t size;  /* source bytes */
    uint64_t total; /* bytes on the wire, once total_known */
    int total_known;
    uint64_t last;     /* the last block (the short one), once total_known */
    uint64_t base;     /* oldest unacknowledged block */
    uint64_t next_blk; /* next block to send */
    /* the buffer: wire bytes [boff, boff + blen): the window being sent
     * (octet from a file) or the netascii stream from the window on */
    uint8_t *buf;
    size_t cap, blen;
    uint64_t boff;
    uint64_t src_pos; /* netascii: next source byte to encode */
    int pending;      /* netascii: second byte of a pair cut at the buffer end, or -1 */
    /* retransmission */
    uint64_t deadline;
    uint32_t rto, rto_base;
    unsigned retries;
    /* reporting */
    uint64_t t0;
    uint64_t acked;   /* wire bytes acknowledged */
    unsigned quarter; /* progress quarters reported */
    unsigned timeouts, dups;
    size_t oack_len;
    uint8_t oack[96];
    char name[FILES_NAME_MAX + 1];
    char client[24]; /* a.b.c.d:port */
    char mac[18];    /* "" when unknown */
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(struct in_pktinfo))];
    } cmsg; /* IP_PKTINFO: send from `local` */
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
    } cmsg_gso; /* the same, and UDP_SEGMENT = 4 + blksize */
};

struct bucket {
    double tokens;
    uint64_t last_ms;
};

struct tftpd {
    struct agent *a;
    struct listener *ls[TFTPD_MAX_SOCKS];
    size_t nls;
    struct xfer *xfers; /* doubly linked, newest first */
    struct fmap *maps;  /* files mapped for the transfers (few: one per file) */
    size_t nxfer;
    size_t max_xfers;
    int refs; /* listeners and transfers not yet freed */
    int stopping;
    struct bucket err_bucket, log_bucket, name_bucket;
    unsigned log_suppressed, name_suppressed;
    struct {
        int ifindex;
        uint32_t blksize_max;
        uint64_t at_ms;
    } mtu[TFTPD_MTU_CACHE];
    unsigned mtu_next;
    struct tftpd_stats st; /* tftpd_get_stats */
};

/* ---- small helpers ---- */

static uint64_t s_now(const struct tftpd *d)
{
    return uv_now(&d->a->loop);
}

/* 1 when a token is available (rate per second, burst twice that). */
static int s_take(struct bucket *b, uint64_t now, double rate)
{
    double burst = rate * 2;
    if (b->last_ms == 0)
        b->tokens = burst;
    else if (now > b->last_ms)
        b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

static void s_fmt_addr(const struct sockaddr_in *sa, char *out, size_t n)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%u", ip, ntohs(sa->sin_port));
}

static int s_is_unicast(struct in_addr a)
{
    uint32_t h = ntohl(a.s_addr);
    return h != 0 && h != 0xffffffffu && (h >> 28) != 0xe;
}

static void s_set_pktinfo(void *cbuf, size_t cap, struct in_addr local, struct msghdr *m)
{
    memset(cbuf, 0, cap);
    m->msg_control = cbuf;
    m->msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi_spec_dst = local;
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
}

/* Sends one datagram from fd to `to` with source address `local`. Best
 * effort: a lost error packet costs nothing, a lost data packet is resent by
 * its timer. */
static void s_send_from(int fd, struct in_addr local, const struct sockaddr_in *to, const void *buf,
                        size_t len)
{
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(struct in_pktinfo))];
    } cm;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_name = (void *)(uintptr_t)to;
    m.msg_namelen = sizeof *to;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    s_set_pktinfo(cm.b, sizeof cm.b, local, &m);
    while (sendmsg(fd, &m, MSG_DONTWAIT) < 0 && errno == EINTR)
        ;
}

static void s_send_error(int fd, struct in_addr local, const struct sockaddr_in *to, uint16_t code,
                         const char *msg)
{
    uint8_t pkt[TFTPD_ERR_MAX];
    size_t n = tftp_build_error(code, msg, pkt, sizeof pkt);
    s_send_from(fd, local, to, pkt, n);
}

/* Rate-limited warning about a bad request (a hostile client must not flood
 * the log either). */
static void s_log_bad(struct tftpd *d, const char *event, const char *client, const char *why)
{
    if (!s_take(&d->log_bucket, s_now(d), TFTPD_LOG_RATE)) {
        d->log_suppressed++;
        return;
    }
    char q[160];
    log_warn(event, "client=%s reason=%s suppressed=%u", client, log_quote(why, q, sizeof q),
             d->log_suppressed);
    d->log_suppressed = 0;
}

/* 1 when a tftp.missing or tftp.refused line may be written. Operators
 * read those, so the budget is generous, but a flood of requests for
 * missing names must not fill the disk; what was left out is counted. */
static int s_name_log_ok(struct tftpd *d)
{
    if (!s_take(&d->name_bucket, s_now(d), TFTPD_NAME_LOG_RATE)) {
        d->name_suppressed++;
        return 0;
    }
    if (d->name_suppressed > 0)
        log_warn("tftp.log_suppressed", "lines=%u", d->name_suppressed);
    d->name_suppressed = 0;
    return 1;
}

/* The largest blksize for the interface a request came in on: its MTU - 32
 * (IP, UDP, TFTP headers), 1468 when unknown. Cached for a few seconds. */
static uint32_t s_blksize_max(struct tftpd *d, int fd, int ifindex)
{
    uint64_t now = s_now(d);
    for (unsigned i = 0; i < TFTPD_MTU_CACHE; i++)
        if (d->mtu[i].ifindex == ifindex && ifindex > 0 && now - d->mtu[i].at_ms < TFTPD_MTU_TTL_MS)
            return d->mtu[i].blksize_max;
    uint32_t max = TFTP_BLKSIZE_ETHER;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ifindex > 0 && if_indextoname((unsigned)ifindex, ifr.ifr_name) != NULL &&
        ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 32 + TFTP_BLKSIZE_MIN) {
        uint32_t m = (uint32_t)ifr.ifr_mtu - 32;
        max = m > TFTP_BLKSIZE_MAX ? TFTP_BLKSIZE_MAX : m;
    }
    if (ifindex > 0) {
        unsigned i = d->mtu_next++ % TFTPD_MTU_CACHE;
        d->mtu[i].ifindex = ifindex;
        d->mtu[i].blksize_max = max;
        d->mtu[i].at_ms = now;
    }
    return max;
}

static void s_maybe_free(struct tftpd *d)
{
    if (d->stopping && d->refs == 0)
        free(d);
}

/* ---- file mappings ---- */

/* The mapping of src's file for an octet transfer of size bytes, shared
 * with the transfers sending the same file; NULL when it cannot be mapped
 * (empty, changed size, mmap refused): the transfer then preads. */
static struct fmap *s_map_get(struct tftpd *d, int fd, uint64_t size)
{
    struct stat st;
    if (size == 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
        return NULL;
    for (struct fmap *m = d->maps; m; m = m->next)
        if (m->dev == st.st_dev && m->ino == st.st_ino && m->size == st.st_size &&
            m->mtime.tv_sec == st.st_mtim.tv_sec && m->mtime.tv_nsec == st.st_mtim.tv_nsec) {
            m->refs++;
            return m;
        }
    struct fmap *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        free(m);
        return NULL;
    }
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    m->size = st.st_size;
    m->mtime = st.st_mtim;
    m->base = p;
    m->refs = 1;
    m->next = d->maps;
    d->maps = m;
    return m;
}

static void s_map_put(struct tftpd *d, struct fmap *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    for (struct fmap **pp = &d->maps; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    munmap((void *)(uintptr_t)m->base, (size_t)m->size);
    free(m);
}

/* ---- transfers ---- */

static void s_xfer_closed(uv_handle_t *h)
{
    struct xfer *t = h->data;
    if (--t->open_handles > 0)
        return;
    struct tftpd *d = t->d;
    if (t->fd >= 0)
        close(t->fd);
    s_map_put(d, t->map);
    files_src_close(&t->src);
    free(t->buf);
    free(t);
    d->refs--;
    s_maybe_free(d);
}

/* Ends a transfer: unlinks it and closes its handles (freed in the close
 * callbacks). Idempotent. */
static void s_xfer_close(struct xfer *t)
{
    if (t->closing)
        return;
    t->closing = 1;
    struct tftpd *d = t->d;
    if (t->prev)
        t->prev->next = t->next;
    else
        d->xfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    d->nxfer--;
    uv_close((uv_handle_t *)&t->poll, s_xfer_closed);
    uv_close((uv_handle_t *)&t->timer, s_xfer_closed);
}

static void s_event(struct xfer *t, const char *kind, const char *detail)
{
    agent_emit_event(t->d->a, kind, t->mac, detail);
}

/* Fails a transfer: tells the client (code >= 0) and reports why. */
static void s_xfer_fail(struct xfer *t, int code, const char *msg, const char *reason)
{
    if (t->closing)
        return;
    if (code >= 0)
        s_send_error(t->fd, t->local, &t->peer, (uint16_t)code, msg);
    char q[300], r[160], detail[600];
    log_quote(t->name, q, sizeof q);
    log_quote(reason, r, sizeof r);
    snprintf(detail, sizeof detail, "file=%s reason=%s bytes=%llu client=%s", q, r,
             (unsigned long long)t->acked, t->client);
    s_event(t, "tftp.failed", detail);
    t->d->st.failed++;
    t->d->st.bytes += t->acked;
    /* a client that stops after reading tsize from the OACK is normal (PXE, some phones) */
    if (t->state == X_OACK && strncmp(reason, "client error", 12) == 0)
        log_info("tftp.failed", "%s mac=%s timeouts=%u", detail, t->mac[0] ? t->mac : "-",
                 t->timeouts);
    else
        log_warn("tftp.failed", "%s mac=%s timeouts=%u", detail, t->mac[0] ? t->mac : "-",
                 t->timeouts);
    s_xfer_close(t);
}

static void s_xfer_done(struct xfer *t)
{
    uint64_t ms = s_now(t->d) - t->t0;
    char q[300], detail[600];
    log_quote(t->name, q, sizeof q);
    snprintf(detail, sizeof detail, "file=%s bytes=%llu ms=%llu client=%s", q,
             (unsigned long long)t->total, (unsigned long long)ms, t->client);
    s_event(t, "tftp.done", detail);
    t->d->st.done++;
    t->d->st.bytes += t->total;
    uint8_t mac[6];
    if (t->mac[0] && util_mac_parse(t->mac, mac) == 0)
        prov_transfer_done(t->d->a, mac, t->name, t->size);
    log_info("tftp.done", "%s mac=%s timeouts=%u dup_acks=%u", detail, t->mac[0] ? t->mac : "-",
             t->timeouts, t->dups);
    s_xfer_close(t);
}

static void s_total_known(struct xfer *t, uint64_t total)
{
    t->total = total;
    t->total_known = 1;
    t->last = total / t->bs + 1; /* the short (possibly empty) block that ends it */
}

/* Octet from a file: makes the buffer hold the bytes of blocks [first,
 * end), reading from the first one on as much as fits when they are not
 * all there. 0, or -errno (-EIO: the file shrank under us; never send what
 * was not read). */
static int s_read_window(struct xfer *t, uint64_t first, uint64_t end)
{
    uint64_t off = (first - 1) * (uint64_t)t->bs;
    uint64_t stop = (end - 1) * (uint64_t)t->bs;
    if (stop > t->total)
        stop = t->total;
    if (off >= t->boff && stop <= t->boff + t->blen)
        return 0; /* read ahead already */
    if (stop - off > t->cap)
        return -ENOBUFS; /* cannot happen: cap >= a window */
    uint64_t left = t->total - off;
    size_t want = left < t->cap ? (size_t)left : t->cap, got = 0;
    t->blen = 0;
    while (got < want) {
        ssize_t r = pread(t->src.fd, t->buf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        got += (size_t)r;
    }
    t->boff = off;
    t->blen = want;
    return 0;
}

/* netascii: drops encoded bytes before the window (base) to make room. */
static void s_compact(struct xfer *t)
{
    uint64_t keep = (t->base - 1) * (uint64_t)t->bs;
    if (keep <= t->boff)
        return;
    uint64_t shift = keep - t->boff; /* <= blen: every sent block was encoded here */
    if (shift > t->blen)
        shift = t->blen;
    memmove(t->buf, t->buf + shift, t->blen - (size_t)shift);
    t->blen -= (size_t)shift;
    t->boff += shift;
}

/* netascii: encodes more source bytes into the buffer's free tail. 0, or
 * -errno (a read error, or the file shrank under us: -EIO). */
static int s_fill(struct xfer *t)
{
    while (t->blen < t->cap && (t->src_pos < t->size || t->pending >= 0)) {
        const uint8_t *in;
        size_t inlen, used = 0;
        uint8_t stage[4096];
        if (t->src.fd < 0) {
            in = t->src.data + t->src_pos;
            inlen = (size_t)(t->size - t->src_pos);
        } else {
            uint64_t left = t->size - t->src_pos;
            size_t want = left < sizeof stage ? (size_t)left : sizeof stage;
            ssize_t r = 0;
            if (want > 0) {
                do
                    r = pread(t->src.fd, stage, want, (off_t)t->src_pos);
                while (r < 0 && errno == EINTR);
                if (r < 0)
                    return -errno;
                if (r == 0)
                    return -EIO;
            }
            in = stage;
            inlen = (size_t)r;
        }
        t->blen +=
            tftp_netascii_encode(&t->pending, in, inlen, &used, t->buf + t->blen, t->cap - t->blen);
        t->src_pos += used;
    }
    if (t->src_pos == t->size && t->pending < 0 && !t->total_known)
        s_total_known(t, t->boff + t->blen);
    return 0;
}

/* netascii: makes the buffer hold wire bytes up to `want` (or to the end).
 * 0, or <0 when it cannot (a read error; the file changed): the caller must
 * not touch the range then. */
static int s_ensure(struct xfer *t, uint64_t want)
{
    for (;;) {
        if (t->total_known && want > t->total)
            want = t->total;
        if (t->boff + t->blen >= want)
            return 0;
        uint64_t had = t->boff + t->blen;
        s_compact(t);
        int rc = s_fill(t);
        if (rc < 0)
            return rc;
        if (t->boff + t->blen == had && !(t->total_known && want > t->total))
            return -EIO; /* no progress: never send what is not buffered */
    }
}

/* Where block b's bytes are (after s_ensure covered them). */
static const uint8_t *s_block(const struct xfer *t, uint64_t b, size_t *len)
{
    uint64_t off = (b - 1) * (uint64_t)t->bs;
    uint64_t end = off + t->bs;
    if (t->total_known && end > t->total)
        end = t->total;
    *len = end > off ? (size_t)(end - off) : 0;
    if (t->map != NULL)
        return t->map->base + off;
    if (t->buf == NULL)
        return t->src.data ? t->src.data + off : (const uint8_t *)"";
    return t->buf + (off - t->boff);
}

static void s_watch_write(struct xfer *t, int on);
static void s_xfer_io(uv_poll_t *h, int status, int events);

/* Sends what the window allows from next_blk on, with one sendmmsg. */
static void s_send_window(struct xfer *t)
{
    if (t->closing || t->state != X_DATA)
        return;
    uint64_t end = t->base + t->ws;
    if (t->total_known && end > t->last + 1)
        end = t->last + 1;
    if (t->next_blk >= end)
        return;
    int rc = 0;
    if (t->mode == TFTP_MODE_NETASCII)
        rc = s_ensure(t, (end - 1) * (uint64_t)t->bs);
    else if (t->buf != NULL && t->map == NULL)
        rc = s_read_window(t, t->next_blk, end);
    if (rc < 0) {
        char why[64];
        snprintf(why, sizeof why, "read error: %s", strerror(-rc));
        s_xfer_fail(t, TFTP_EUNDEF, "read error", why);
        return;
    }
    if (t->total_known && end > t->last + 1)
        end = t->last + 1;
    struct mmsghdr mm[TFTPD_WINDOW_MAX];
    struct iovec iov[TFTPD_WINDOW_MAX][2];
    uint8_t hdr[TFTPD_WINDOW_MAX][4];
    unsigned n = 0;
    uint64_t first = t->next_blk;
    for (uint64_t b = first; b < end && n < TFTPD_WINDOW_MAX; b++, n++) {
        size_t len;
        const uint8_t *p = s_block(t, b, &len);
        tftp_data_header(hdr[n], (uint16_t)b);
        iov[n][0].iov_base = hdr[n];
        iov[n][0].iov_len = 4;
        iov[n][1].iov_base = (void *)(uintptr_t)p;
        iov[n][1].iov_len = len;
        memset(&mm[n], 0, sizeof mm[n]);
        mm[n].msg_hdr.msg_name = &t->peer;
        mm[n].msg_hdr.msg_namelen = sizeof t->peer;
        mm[n].msg_hdr.msg_iov = iov[n];
        mm[n].msg_hdr.msg_iovlen = 2;
        mm[n].msg_hdr.msg_control = t->cmsg.b;
        mm[n].msg_hdr.msg_controllen = sizeof t->cmsg.b;
    }
    unsigned done = 0;
    while (done < n) {
        int r;
        unsigned k = n - done;
        if (k > 1 && t->gso_max > 1) {
            /* one datagram the kernel cuts into k: iov[done..] is contiguous */
            if (k > t->gso_max)
                k = t->gso_max;
            struct msghdr m = mm[done].msg_hdr;
            m.msg_iov = iov[done];
            m.msg_iovlen = 2 * k;
            m.msg_control = t->cmsg_gso.b;
            m.msg_controllen = sizeof t->cmsg_gso.b;
            r = sendmsg(t->fd, &m, MSG_DONTWAIT) < 0 ? -1 : (int)k;
        } else if (k == 1) {
            r = sendmsg(t->fd, &mm[done].msg_hdr, MSG_DONTWAIT) < 0 ? -1 : 1;
        } else {
            r = sendmmsg(t->fd, mm + done, k, MSG_DONTWAIT);
        }
        if (r > 0) {
            done += (unsigned)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EFAULT && t->map != NULL) {
            /* the mapped file shrank under the transfer: the kernel could
             * not read those pages (a read of ours would have been SIGBUS) */
            s_xfer_fail(t, TFTP_EUNDEF, "read error", "read error: file shrank during the transfer");
            return;
        }
        if (k > 1 && t->gso_max > 1 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EMSGSIZE) {
            /* no GSO here (old kernel, no checksum offload on the device) */
            log_info("tftp.gso_off", "client=%s error=\"%s\"", t->client, strerror(errno));
            t->gso_max = 0;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s_watch_write(t, 1); /* socket buffer full: go on when it drains */
            break;
        }
        if (errno == EMSGSIZE && !t->pmtu_want) {
            /* a path MTU below blksize + 32 (a tunnel on the way): let the
             * kernel fragment rather than fail the transfer */
            int want = IP_PMTUDISC_WANT;
            setsockopt(t->fd, IPPROTO_IP, IP_MTU_DISCOVER, &want, sizeof want);
            t->pmtu_want = 1;
            log_info("tftp.pmtu", "client=%s blksize=%u action=fragment", t->client, t->bs);
            continue;
        }
        /* anything else: that datagram is lost, the timer resends it */
        log_debug("tftp.send_error", "client=%s error=\"%s\"", t->client, strerror(errno));
        done++;
    }
    if (done > 0)
        t->deadline = s_now(t->d) + t->rto;
    if (t->map != NULL && (uint64_t)t->map->size > TFTPD_MAP_RESIDENT_MAX) {
        /* a large image: drop its pages from our page tables now and then
         * (they stay in page cache; the next sends fault them back in) so
         * the agent's RSS does not grow with the size of what it serves */
        t->map->sent += (uint64_t)done * t->bs;
        if (t->map->sent >= TFTPD_MAP_RESIDENT_MAX) {
            madvise((void *)(uintptr_t)t->map->base, (size_t)t->map->size, MADV_DONTNEED);
            t->map->sent = 0;
        }
    }
    t->next_blk = first + done;
    if (done == n && t->watching_write)
        s_watch_write(t, 0);
}

static void s_watch_write(struct xfer *t, int on)
{
    if (t->closing || t->watching_write == on)
        return;
    t->watching_write = on;
    uv_poll_start(&t->poll, on ? UV_READABLE | UV_WRITABLE : UV_READABLE, s_xfer_io);
}

/* tftp.progress at each quarter crossed, for files over TFTPD_PROGRESS_MIN
 * that have been on their way for TFTPD_PROGRESS_AFTER_MS: a quarter
 * crossed before that is not reported (nobody watches a transfer that
 * ends within a second, and every event is journaled and sent). */
static void s_progress(struct xfer *t)
{
    if (t->mode != TFTP_MODE_OCTET || t->size <= TFTPD_PROGRESS_MIN || t->acked >= t->size)
        return;
    unsigned q = (unsigned)(t->acked * 4 / t->size);
    if (q <= t->quarter)
        return;
    t->quarter = q;
    if (s_now(t->d) - t->t0 < TFTPD_PROGRESS_AFTER_MS)
        return;
    char qn[300], detail[512];
    snprintf(detail, sizeof detail, "file=%s pct=%u bytes=%llu client=%s",
             log_quote(t->name, qn, sizeof qn), q * 25, (unsigned long long)t->acked, t->client);
    s_event(t, "tftp.progress", detail);
}

static void s_on_ack(struct xfer *t, uint16_t ack)
{
    if (t->state == X_OACK) {
        if (ack != 0)
            return; /* not the answer to the OACK */
        t->state = X_DATA;
        t->base = t->next_blk = 1;
        t->retries = 0;
        t->rto = t->rto_base;
        s_send_window(t);
        return;
    }
    uint64_t b = tftp_ack_block(t->base, t->next_blk, ack);
    if (b == 0) {
        t->dups++; /* a duplicate or stale ACK: never answered */
        return;
    }
    t->acked = b * (uint64_t)t->bs;
    if (t->total_known && t->acked > t->total)
        t->acked = t->total;
    if (t->total_known && b == t->last) {
        s_xfer_done(t);
        return;
    }
    t->base = b + 1;
    if (t->next_blk > t->base)
        t->next_blk = t->base; /* an earlier block of the window: restart after it */
    t->retries = 0;
    t->rto = t->rto_base;
    s_progress(t);
    s_send_window(t);
}

static void s_xfer_io(uv_poll_t *h, int status, int events)
{
    struct xfer *t = h->data;
    if (t->closing)
        return;
    if (status < 0) {
        s_xfer_fail(t, -1, NULL, "socket error");
        return;
    }
    if (events & UV_WRITABLE) {
        s_watch_write(t, 0);
        s_send_window(t);
    }
    if (!(events & UV_READABLE) || t->closing)
        return;
    /* one datagram per wake-up: the poll is level-triggered, so a second one
     * brings us back, and the common case (one ACK) costs one recvfrom */
    uint8_t pkt[TFTPD_ERR_MAX + 4];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(t->fd, pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (n < 0)
        return; /* EAGAIN or an ICMP error report: nothing to do */
    uint16_t op = tftp_opcode(pkt, (size_t)n);
    if (from.sin_family != AF_INET || from.sin_addr.s_addr != t->peer.sin_addr.s_addr ||
        from.sin_port != t->peer.sin_port) {
        /* RFC 1350: a stranger gets error 5, the transfer goes on */
        if (op != TFTP_ERROR && from.sin_port != 0 && s_is_unicast(from.sin_addr) &&
            s_take(&t->d->err_bucket, s_now(t->d), TFTPD_ERR_RATE))
            s_send_error(t->fd, t->local, &from, TFTP_EBADID, "unknown transfer ID");
        char c[24];
        s_fmt_addr(&from, c, sizeof c);
        s_log_bad(t->d, "tftp.stranger", c, "packet for another transfer");
        return;
    }
    uint16_t block;
    if (tftp_parse_ack(pkt, (size_t)n, &block) == 0) {
        s_on_ack(t, block);
        return;
    }
    if (op == TFTP_ERROR) {
        uint16_t code = 0;
        char msg[128], why[180];
        tftp_parse_error(pkt, (size_t)n, &code, msg, sizeof msg);
        snprintf(why, sizeof why, "client error %u: %s", code, msg);
        s_xfer_fail(t, -1, NULL, why); /* never answer an error */
        return;
    }
    /* anything else from the client (a repeated RRQ, DATA) is ignored */
    t->dups++;
}

static void s_on_timer(uv_timer_t *h)
{
    struct xfer *t = h->data;
    if (t->closing)
        return;
    uint64_t now = s_now(t->d);
    if (now < t->deadline) {
        uv_timer_start(h, s_on_timer, t->deadline - now, 0);
        return;
    }
    if (t->retries >= TFTPD_RETRIES) {
        s_xfer_fail(t, TFTP_EUNDEF, "timed out", "timeout");
        return;
    }
    t->retries++;
    t->timeouts++;
    uint32_t cap = t->rto_base > TFTPD_RTO_MAX_MS ? t->rto_base : TFTPD_RTO_MAX_MS;
    t->rto = t->rto * 2 > cap ? cap : t->rto * 2;
    if (t->state == X_OACK) {
        s_send_from(t->fd, t->local, &t->peer, t->oack, t->oack_len);
    } else {
        t->next_blk = t->base; /* resend the whole window */
        s_send_window(t);
        if (t->closing)
            return; /* a read error ended it: its timer is closing */
    }
    t->deadline = now + t->rto;
    uv_timer_start(h, s_on_timer, t->rto, 0);
}

/* The buffer a transfer needs: a window or the read-ahead, whichever is
 * larger, never more than the file needs. 0 for octet from memory. */
static size_t s_buf_size(const struct xfer *t)
{
    if (t->mode == TFTP_MODE_OCTET && (t->src.fd < 0 || t->map != NULL))
        return 0;
    uint64_t need = (uint64_t)t->ws * t->bs;
    uint64_t cap = need > TFTPD_READAHEAD ? need : TFTPD_READAHEAD;
    uint64_t most = t->mode == TFTP_MODE_OCTET ? t->size : t->size * 2 + 2;
    if (cap > most)
        cap = most;
    return cap ? (size_t)cap : 1;
}

/* Creates a transfer for an accepted request and sends its first packet.
 * Takes src (closed on failure). 0 or -errno (logged; the caller answers). */
static int s_xfer_new(struct tftpd *d, const struct sockaddr_in *peer, struct in_addr local,
                      const char *name, enum tftp_mode mode, const struct tftp_params *p,
                      struct files_src *src)
{
    struct xfer *t = calloc(1, sizeof *t);
    if (t == NULL) {
        files_src_close(src);
        return -ENOMEM;
    }
    t->d = d;
    t->fd = -1;
    t->peer = *peer;
    t->local = local;
    t->src = *src;
    memset(src, 0, sizeof *src);
    src->fd = -1;
    t->mode = mode;
    t->bs = p->blksize;
    t->ws = p->windowsize;
    t->size = t->src.size;
    t->pending = -1;
    size_t nl = strnlen(name, sizeof t->name - 1); /* <= FILES_NAME_MAX after files_clean */
    memcpy(t->name, name, nl);
    t->name[nl] = '\0';
    s_fmt_addr(peer, t->client, sizeof t->client);
    uint8_t mac[6];
    if (agent_mac_for_ip(d->a, peer->sin_addr.s_addr, mac) == 1)
        util_mac_format(mac, t->mac);
    if (mode == TFTP_MODE_OCTET)
        s_total_known(t, t->size);
    t->rto_base = p->timeout ? p->timeout * 1000u : TFTPD_RTO_MS;
    t->rto = t->rto_base;
    t->t0 = s_now(d);
    t->oack_len = tftp_build_oack(p, t->oack, sizeof t->oack);

    int rc = 0;
    if (mode == TFTP_MODE_OCTET && t->src.fd >= 0)
        t->map = s_map_get(d, t->src.fd, t->size);
    t->cap = s_buf_size(t);
    if (t->cap > 0 && (t->buf = malloc(t->cap)) == NULL)
        rc = -ENOMEM;
    if (rc == 0 && t->src.fd >= 0 && t->map == NULL && t->size > TFTPD_PROGRESS_MIN)
        posix_fadvise(t->src.fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* images: read ahead more */
    if (rc == 0) {
        t->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->fd < 0)
            rc = -errno;
    }
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (rc == 0 && bind(t->fd, (struct sockaddr *)&any, sizeof any) < 0)
        rc = -errno;
    if (rc == 0) {
        /* DF set and IP ID 0: the default (WANT) lets the kernel fragment,
         * which makes every datagram take the global IP ID generator
         * (measured: 5 % of the agent's CPU); blksize already fits the MTU */
        int pmtu = IP_PMTUDISC_DO;
        setsockopt(t->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
    if (rc == 0 && t->ws > 8) {
        int sz = 512 << 10; /* a window of 64 x 1468 with skb overhead */
        setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    if (rc == 0)
        rc = uv_poll_init_socket(&d->a->loop, &t->poll, t->fd);
    if (rc < 0) {
        if (t->fd >= 0)
            close(t->fd);
        s_map_put(d, t->map);
        files_src_close(&t->src);
        free(t->buf);
        free(t);
        return rc;
    }
    t->open_handles = 2;
    t->poll.data = t;
    uv_timer_init(&d->a->loop, &t->timer);
    t->timer.data = t;
    {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        s_set_pktinfo(t->cmsg.b, sizeof t->cmsg.b, local, &m);
        /* GSO: at most 64 segments and 64 KiB in one send */
        unsigned seg = 4 + t->bs, most = 65000 / seg;
        t->gso_max = t->ws > 1 ? (most < TFTPD_WINDOW_MAX ? most : TFTPD_WINDOW_MAX) : 0;
        memset(t->cmsg_gso.b, 0, sizeof t->cmsg_gso.b);
        memcpy(t->cmsg_gso.b, t->cmsg.b, CMSG_SPACE(sizeof(struct in_pktinfo)));
        m.msg_control = t->cmsg_gso.b;
        m.msg_controllen = sizeof t->cmsg_gso.b;
        struct cmsghdr *c = CMSG_NXTHDR(&m, CMSG_FIRSTHDR(&m));
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gso = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gso, sizeof gso);
    }
    t->next = d->xfers;
    if (d->xfers)
        d->xfers->prev = t;
    d->xfers = t;
    d->nxfer++;
    d->refs++;
    uv_poll_start(&t->poll, UV_READABLE, s_xfer_io);
    t->deadline = t->t0 + t->rto;
    uv_timer_start(&t->timer, s_on_timer, t->rto, 0);

    char q[300], detail[700];
    snprintf(detail, sizeof detail,
             "file=%s size=%llu client=%s mode=%s blksize=%u windowsize=%u origin=%s",
             log_quote(name, q, sizeof q), (unsigned long long)t->size, t->client,
             mode == TFTP_MODE_OCTET ? "octet" : "netascii", t->bs, t->ws,
             t->src.origin ? t->src.origin : "root");
    s_event(t, "tftp.start", detail);
    d->st.started++;
    log_info("tftp.start", "%s mac=%s oack=%s", detail, t->mac[0] ? t->mac : "-",
             t->oack_len ? "yes" : "no");

    if (t->oack_len > 0) {
        t->state = X_OACK;
        s_send_from(t->fd, t->local, &t->peer, t->oack, t->oack_len);
    } else {
        t->state = X_DATA;
        t->base = t->next_blk = 1;
        s_send_window(t);
    }
    return 0;
}

/* ---- requests ---- */

/* The unicast listener that answers a broadcast which came in on ifindex
 * from client: one on that interface and port, preferably with the client
 * in its subnet (an Aironet in recovery at 10.0.0.1 wants a server in
 * 10.0.0.0/8 when the interface has several addresses). */
static const struct listener *s_unicast_for(const struct tftpd *d, const struct listener *bl,
                                            int ifindex, struct in_addr client)
{
    if (bl->owner != NULL)
        return bl->owner->ifi.ifindex == ifindex ? bl->owner : NULL;
    const struct listener *first = NULL;
    for (size_t i = 0; i < d->nls; i++) {
        const struct listener *u = d->ls[i];
        if (u->kind != L_UNICAST || u->port != bl->port || u->ifi.ifindex != ifindex ||
            u->addr.s_addr == htonl(INADDR_ANY))
            continue;
        if (((u->addr.s_addr ^ client.s_addr) & u->ifi.mask.s_addr) == 0)
            return u;
        if (first == NULL)
            first = u;
    }
    return first;
}

static void s_reply_error(struct tftpd *d, const struct listener *l, struct in_addr local,
                          const struct sockaddr_in *to, uint16_t code, const char *msg, int limited)
{
    if (limited && !s_take(&d->err_bucket, s_now(d), TFTPD_ERR_RATE))
        return;
    s_send_error(l->fd, local, to, code, msg);
}

static void s_on_request(struct tftpd *d, const struct listener *l, const uint8_t *pkt, size_t n,
                         const struct sockaddr_in *from, const struct in_pktinfo *pi)
{
    char client[24];
    s_fmt_addr(from, client, sizeof client);
    if (from->sin_port == 0 || !s_is_unicast(from->sin_addr))
        return; /* nobody to answer */
    struct in_addr local;
    if (l->kind == L_BCAST) {
        const struct listener *u = pi ? s_unicast_for(d, l, pi->ipi_ifindex, from->sin_addr) : NULL;
        if (u == NULL)
            return; /* a broadcast on an interface we do not serve */
        local = u->addr;
    } else if (l->addr.s_addr != htonl(INADDR_ANY)) {
        local = l->addr;
    } else if (pi != NULL) {
        local = s_is_unicast(pi->ipi_addr) ? pi->ipi_addr : pi->ipi_spec_dst;
    } else {
        return;
    }
    uint16_t op = tftp_opcode(pkt, n);
    if (op != TFTP_RRQ && op != TFTP_WRQ) {
        s_log_bad(d, "tftp.bad_request", client, "not a request");
        return; /* stray DATA/ACK/ERROR or junk: silence */
    }
    struct tftp_req rq;
    const char *why = NULL;
    int rc = tftp_parse_request(pkt, n, &rq, &why);
    if (rc == -ENAMETOOLONG) {
        s_log_bad(d, "tftp.refused", client, why);
        s_reply_error(d, l, local, from, TFTP_EACCESS, "file name too long", 1);
        return;
    }
    if (rc < 0) {
        s_log_bad(d, "tftp.bad_request", client, why ? why : "malformed");
        s_reply_error(d, l, local, from, TFTP_EBADOP, why ? why : "malformed request", 1);
        return;
    }
    if (rq.op == TFTP_WRQ) {
        s_log_bad(d, "tftp.write_refused", client, "read-only server (uploads go over HTTP)");
        s_reply_error(d, l, local, from, TFTP_EACCESS, "read-only server", 1);
        return;
    }
    char raw[TFTP_NAME_MAX + 1], name[TFTP_NAME_MAX + 1], q[600];
    memcpy(raw, rq.name, rq.name_len);
    raw[rq.name_len] = '\0';
    memcpy(name, raw, rq.name_len + 1);

    /* a retransmitted request (same client TID) while we already answer it */
    for (struct xfer *t = d->xfers; t; t = t->next)
        if (t->peer.sin_addr.s_addr == from->sin_addr.s_addr &&
            t->peer.sin_port == from->sin_port) {
            if (t->state == X_OACK || (t->base == 1 && t->acked == 0))
                return; /* our first packet is on its way or is resent by its timer */
            s_xfer_fail(t, -1, NULL, "superseded by a new request");
            break;
        }

    if (files_clean(name) < 0) {
        if (s_name_log_ok(d))
            log_warn("tftp.refused", "client=%s file=%s reason=\"bad name\"", client,
                     log_quote(raw, q, sizeof q));
        s_reply_error(d, l, local, from, TFTP_EACCESS, "illegal file name", 0);
        return;
    }
    size_t mine = 0;
    for (struct xfer *t = d->xfers; t; t = t->next)
        mine += t->peer.sin_addr.s_addr == from->sin_addr.s_addr;
    if (d->nxfer >= d->max_xfers || mine >= TFTPD_MAX_PER_CLIENT) {
        /* full, or one client holding hundreds: both limited, it may be a flood */
        if (s_name_log_ok(d))
            log_warn("tftp.busy", "client=%s file=%s transfers=%zu client_transfers=%zu", client,
                     log_quote(name, q, sizeof q), d->nxfer, mine);
        s_reply_error(d, l, local, from, TFTP_EUNDEF, "server busy, try again", 1);
        return;
    }
    /* what the device asked for is evidence for its profile (stage, version) */
    uint8_t dmac[6];
    int has_mac = agent_mac_for_ip(d->a, from->sin_addr.s_addr, dmac) == 1;
    if (has_mac) {
        struct profile_evidence e = {.mac = dmac, .file = name};
        prov_observe(d->a, &e, 0, from->sin_addr.s_addr);
    }
    struct files_src src;
    struct files_req frq = {.name = name,
                            .client_ip_be = from->sin_addr.s_addr,
                            .local_ip_be = local.s_addr,
                            .mac = has_mac ? dmac : NULL};
    rc = files_open_req(d->a, &frq, &src);
    if (rc < 0) {
        log_quote(name, q, sizeof q);
        if (rc == -ENOENT) {
            if (s_name_log_ok(d))
                log_warn("tftp.missing", "client=%s file=%s", client, q);
            s_reply_error(d, l, local, from, TFTP_ENOTFOUND, "file not found", 0);
        } else if (rc == -EACCES || rc == -EINVAL) {
            if (s_name_log_ok(d))
                log_warn("tftp.refused", "client=%s file=%s reason=\"%s\"", client, q,
                         rc == -EACCES ? "outside the root or not a regular file" : "bad name");
            s_reply_error(d, l, local, from, TFTP_EACCESS, "access violation", 0);
        } else {
            log_error("tftp.open_failed", "client=%s file=%s error=\"%s\"", client, q,
                      strerror(-rc));
            s_reply_error(d, l, local, from, TFTP_EUNDEF, "cannot read file", 0);
        }
        return;
    }
    struct tftp_limits lim = {
        .blksize_max = s_blksize_max(d, l->fd, pi ? pi->ipi_ifindex : 0),
        .window_max = TFTPD_WINDOW_MAX,
        .window_bytes = TFTPD_WINDOW_BYTES,
    };
    struct tftp_params p;
    tftp_negotiate(&rq, &lim, src.size, &p);
    rc = s_xfer_new(d, from, local, name, rq.mode, &p, &src);
    if (rc < 0) {
        log_error("tftp.xfer_failed", "client=%s file=%s error=\"%s\"", client,
                  log_quote(name, q, sizeof q), strerror(-rc));
        s_reply_error(d, l, local, from, TFTP_EUNDEF, "server error", 0);
    }
}

static void s_listen_io(uv_poll_t *h, int status, int events)
{
    struct listener *l = h->data;
    struct tftpd *d = l->d;
    if (status < 0 || !(events & UV_READABLE) || d->stopping)
        return;
    /* a burst of requests (a whole floor of phones after a power cut) is
     * taken in one go, bounded so transfers are not starved */
    for (int i = 0; i < 64; i++) {
        uint8_t pkt[TFTP_REQ_MAX + 1];
        struct sockaddr_in from;
        union {
            struct cmsghdr align;
            char b[CMSG_SPACE(sizeof(struct in_pktinfo)) + 64];
        } cm;
        struct iovec iov = {.iov_base = pkt, .iov_len = sizeof pkt};
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cm.b;
        m.msg_controllen = sizeof cm.b;
        ssize_t n = recvmsg(l->fd, &m, MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_debug("tftp.recv_error", "error=\"%s\"", strerror(errno));
            return;
        }
        if (m.msg_namelen < sizeof from || from.sin_family != AF_INET)
            continue;
        if ((m.msg_flags & MSG_TRUNC) || (size_t)n > TFTP_REQ_MAX) {
            char c[24];
            s_fmt_addr(&from, c, sizeof c);
            s_log_bad(d, "tftp.bad_request", c, "request too long");
            continue;
        }
        struct in_pktinfo pi, *pip = NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                memcpy(&pi, CMSG_DATA(c), sizeof pi);
                pip = &pi;
            }
        s_on_request(d, l, pkt, (size_t)n, &from, pip);
        if (d->stopping)
            return;
    }
}

/* ---- listeners ---- */

static void s_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct tftpd *d = l->d;
    close(l->fd);
    free(l);
    d->refs--;
    s_maybe_free(d);
}

/* Opens a UDP socket with IP_PKTINFO bound to addr:port and starts watching
 * it. 0 or -errno (nothing left open). */
static int s_listen(struct tftpd *d, enum lkind kind, struct in_addr addr, uint16_t port,
                    const struct ifinfo *ifi, const struct listener *owner)
{
    if (d->nls >= TFTPD_MAX_SOCKS)
        return -ENOSPC;
    struct listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    l->d = d;
    l->kind = kind;
    l->addr = addr;
    l->port = port;
    if (ifi != NULL)
        l->ifi = *ifi;
    l->owner = owner;
    int rc = 0, one = 1, rcv = 1 << 20;
    l->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        rc = -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addr};
    if (rc == 0 && setsockopt(l->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)
        rc = -errno;
    if (rc == 0)
        setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv); /* best effort */
    if (rc == 0 && bind(l->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_poll_init_socket(&d->a->loop, &l->poll, l->fd);
    if (rc < 0) {
        if (l->fd >= 0)
            close(l->fd);
        free(l);
        return rc;
    }
    l->poll.data = l;
    uv_poll_start(&l->poll, UV_READABLE, s_listen_io);
    d->ls[d->nls++] = l;
    d->refs++;
    return 0;
}

/* Parses ADDR[:PORT] (IPv4). 0 or -EINVAL. */
static int s_parse_listen(const char *s, struct in_addr *addr, uint16_t *port)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    if (hl == 0 || hl >= sizeof host)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, addr) != 1)
        return -EINVAL;
    *port = TFTP_PORT;
    if (colon) {
        int64_t v;
        if (util_parse_i64(colon + 1, 1, 65535, &v) < 0)
            return -EINVAL;
        *port = (uint16_t)v;
    }
    return 0;
}

/* The interface owning addr: its index, netmask and directed broadcast
 * (zeros when none). */
static void s_iface_of(struct in_addr addr, struct ifinfo *ifi)
{
    memset(ifi, 0, sizeof *ifi);
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct sockaddr_in sin;
        memcpy(&sin, i->ifa_addr, sizeof sin);
        if (sin.sin_addr.s_addr != addr.s_addr)
            continue;
        ifi->ifindex = (int)if_nametoindex(i->ifa_name);
        if (i->ifa_netmask) {
            memcpy(&sin, i->ifa_netmask, sizeof sin);
            ifi->mask = sin.sin_addr;
        }
        if ((i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr) {
            memcpy(&sin, i->ifa_broadaddr, sizeof sin);
            ifi->bcast = sin.sin_addr;
        }
        break;
    }
    freeifaddrs(ifs);
}

static void s_stop(void *self)
{
    struct tftpd *d = self;
    if (d->stopping)
        return;
    d->stopping = 1;
    while (d->xfers)
        s_xfer_fail(d->xfers, TFTP_EUNDEF, "server shutting down", "shutdown");
    log_info("tftpd.stop", "listeners=%zu", d->nls);
    for (size_t i = 0; i < d->nls; i++)
        uv_close((uv_handle_t *)&d->ls[i]->poll, s_listener_closed);
    d->nls = 0;
    s_maybe_free(d);
}

int tftpd_start(struct agent *a, const struct svc_opts *o)
{
    struct tftpd *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    d->a = a;
    d->max_xfers = TFTPD_MAX_XFERS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        /* each transfer holds a socket and maybe a file; keep room for the rest */
        size_t fit = rl.rlim_cur > 256 ? (size_t)(rl.rlim_cur - 128) / 2 : 64;
        if (fit < d->max_xfers)
            d->max_xfers = fit;
    }
    int rc = 0;
    char addrs[SVC_MAX_LISTEN * 24] = "";
    for (size_t i = 0; i < o->n_tftp && rc == 0; i++) {
        struct in_addr addr;
        uint16_t port;
        struct ifinfo ifi;
        if (s_parse_listen(o->tftp_listen[i], &addr, &port) < 0) {
            log_error("tftpd.listen", "addr=%s error=\"expected IPV4[:PORT]\"", o->tftp_listen[i]);
            rc = -EINVAL;
            break;
        }
        s_iface_of(addr, &ifi);
        rc = s_listen(d, L_UNICAST, addr, port, &ifi, NULL);
        if (rc < 0) {
            log_error("tftpd.listen", "addr=%s error=\"%s\"", o->tftp_listen[i], strerror(-rc));
            break;
        }
        size_t al = strlen(addrs);
        snprintf(addrs + al, sizeof addrs - al, "%s%s", al ? "," : "", o->tftp_listen[i]);
    }
    /* broadcast sockets: 255.255.255.255 once per port, each directed
     * broadcast once per port; a wildcard listener needs none */
    for (size_t i = 0, n = d->nls; rc == 0 && i < n; i++) {
        struct listener *u = d->ls[i];
        if (u->addr.s_addr == htonl(INADDR_ANY) || u->ifi.ifindex == 0)
            continue;
        struct in_addr want[2] = {{htonl(INADDR_BROADCAST)}, u->ifi.bcast};
        for (int k = 0; k < 2; k++) {
            if (want[k].s_addr == 0)
                continue;
            int have = 0;
            for (size_t j = 0; j < d->nls; j++)
                if (d->ls[j]->port == u->port && (d->ls[j]->addr.s_addr == want[k].s_addr ||
                                                  d->ls[j]->addr.s_addr == htonl(INADDR_ANY)))
                    have = 1;
            if (have)
                continue;
            int r = s_listen(d, L_BCAST, want[k], u->port, NULL, k == 1 ? u : NULL);
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &want[k], ip, sizeof ip);
            if (r < 0) /* unicast still works; say loudly that recovery broadcasts will not */
                log_warn("tftpd.broadcast_unavailable", "addr=%s:%u error=\"%s\"", ip, u->port,
                         strerror(-r));
        }
    }
    struct agent_service svc = {.name = "tftp", .self = d, .stop = s_stop};
    if (rc == 0)
        rc = agent_add_service(a, &svc);
    if (rc < 0) {
        /* nothing was registered: close what was opened; d is freed when
         * the last listener's close callback has run */
        d->stopping = 1;
        for (size_t i = 0; i < d->nls; i++)
            uv_close((uv_handle_t *)&d->ls[i]->poll, s_listener_closed);
        d->nls = 0;
        s_maybe_free(d);
        return rc;
    }
    log_info("tftpd.start", "listen=%s sockets=%zu max_transfers=%zu", addrs, d->nls, d->max_xfers);
    return 0;
}

int tftpd_get_stats(struct agent *a, struct tftpd_stats *out)
{
    for (size_t i = 0; i < a->n_svc; i++)
        if (a->svc[i].stop == s_stop) {
            const struct tftpd *d = a->svc[i].self;
            *out = d->st;
            out->active = d->nxfer;
            return 0;
        }
    return -ENOENT;
}
