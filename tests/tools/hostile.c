/* hostile.c: replays a table of known-bad inputs (tests/system/hostile/, one .tsv per protocol)
 * at the agent's TFTP, HTTP or DHCP server and checks that each one got the
 * answer the table expects, and that no secret bytes ever came back.
 *
 *   hostile tftp [opts] SERVER[:PORT] TABLE     one UDP socket (a new TID) per case
 *   hostile http [opts] SERVER:PORT TABLE       one TCP connection per case
 *   hostile dhcp [opts] IFACE TABLE             broadcast from 0.0.0.0:68 out of IFACE;
 *                                               replies are read on :68 and on :67
 *                                               (a relayed case's reply goes to giaddr:67)
 *     -g GROUP   only the cases of that group (column 1)
 *     -s TEXT    a secret: any reply containing it fails the case (repeatable)
 *     -w MS      how long silence is waited for (default 400 for UDP, 3000 for
 *                TCP); an expected UDP reply is waited for at least 2 s
 *     -q         quiet repeat pass: cases expecting silence are sent without
 *                waiting; prints only "summary pass=N fail=N"
 * Prints one line per case: "pass ID EXPECT" or "fail ID EXPECT got=WHAT",
 * then "summary pass=N fail=N"; exits 0 when every case passed, 1 when one
 * failed, 2 on a usage or table error.
 *
 * Table: tab-separated, '#' starts a comment line.
 *   GROUP  ID  EXPECT  PAYLOAD  WHY
 * EXPECT:
 *   tftp: none | error:N | data:N (DATA block 1 of N bytes, no OACK) |
 *         oack:k=v,k=v (exactly these options, any order)
 *   http: status:N (one response, then the connection is closed)
 *   dhcp: none | offer | ack | nak
 * PAYLOAD: bytes with C escapes (\xHH \r \n \t \0 \\ \{) and macros:
 *   {rep:N:HEX}      the bytes HEX, N times
 *   {bootp:OP:HTYPE:HLEN:HOPS:GIADDR:CHADDR_HEX}
 *                    a 236-byte BOOTP header and the magic cookie; flags has
 *                    the broadcast bit, xid is the case's own
 *   {at:OFF:HEX}     overwrites the bytes at OFF (inside what is built so far)
 *   {padto:N}        zero bytes (DHCP PAD) up to length N
 * Every wait is bounded; nothing retries.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAY_MAX 70000
#define RX_MAX 262144
#define MAX_SECRETS 8
#define MACRO_MAX 2048

struct opts {
    const char *group;
    const char *secret[MAX_SECRETS];
    int nsecret;
    int wait_ms;
    int quiet;
};

static struct opts s_o;
static uint8_t s_pay[PAY_MAX];
static uint8_t s_rx[RX_MAX];

static uint64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int s_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* HEX digits (no separators) into out; the count, or -1. */
static long s_hexbytes(const char *s, size_t n, uint8_t *out, size_t cap)
{
    if (n % 2)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 2) {
        int hi = s_hex(s[i]), lo = s_hex(s[i + 1]);
        if (hi < 0 || lo < 0 || k >= cap)
            return -1;
        out[k++] = (uint8_t)(hi << 4 | lo);
    }
    return (long)k;
}

/* One {macro} (body without the braces) appended at *len. 0 or -1. */
static int s_macro(const char *m, uint8_t *b, size_t *len, uint32_t xid, int *xid_at)
{
    char tmp[MACRO_MAX];
    if (strlen(m) >= sizeof tmp)
        return -1;
    strcpy(tmp, m);
    char *f[8];
    int nf = 0;
    char *save = NULL;
    for (char *t = strtok_r(tmp, ":", &save); t && nf < 8; t = strtok_r(NULL, ":", &save))
        f[nf++] = t;
    if (nf == 0)
        return -1;
    if (strcmp(f[0], "rep") == 0 && nf == 3) {
        uint8_t unit[MACRO_MAX / 2];
        long ul = s_hexbytes(f[2], strlen(f[2]), unit, sizeof unit);
        long n = strtol(f[1], NULL, 10);
        if (ul <= 0 || n < 0 || *len + (size_t)(n * ul) > PAY_MAX)
            return -1;
        for (long i = 0; i < n; i++) {
            memcpy(b + *len, unit, (size_t)ul);
            *len += (size_t)ul;
        }
        return 0;
    }
    if (strcmp(f[0], "padto") == 0 && nf == 2) {
        long n = strtol(f[1], NULL, 10);
        if (n < 0 || n > PAY_MAX)
            return -1;
        while (*len < (size_t)n)
            b[(*len)++] = 0;
        return 0;
    }
    if (strcmp(f[0], "at") == 0 && nf == 3) {
        long off = strtol(f[1], NULL, 10);
        uint8_t v[MACRO_MAX / 2];
        long vl = s_hexbytes(f[2], strlen(f[2]), v, sizeof v);
        if (off < 0 || vl <= 0 || (size_t)off + (size_t)vl > *len)
            return -1;
        memcpy(b + off, v, (size_t)vl);
        return 0;
    }
    if (strcmp(f[0], "bootp") == 0 && nf == 7) {
        if (*len + 240 > PAY_MAX)
            return -1;
        uint8_t *h = b + *len;
        memset(h, 0, 240);
        h[0] = (uint8_t)strtol(f[1], NULL, 0);
        h[1] = (uint8_t)strtol(f[2], NULL, 0);
        h[2] = (uint8_t)strtol(f[3], NULL, 0);
        h[3] = (uint8_t)strtol(f[4], NULL, 0);
        memcpy(h + 4, &xid, 4);
        h[10] = 0x80; /* broadcast: the reply comes to 255.255.255.255:68 */
        struct in_addr gi;
        if (inet_pton(AF_INET, f[5], &gi) != 1)
            return -1;
        memcpy(h + 24, &gi, 4);
        if (s_hexbytes(f[6], strlen(f[6]), h + 28, 16) < 0)
            return -1;
        h[236] = 99, h[237] = 130, h[238] = 83, h[239] = 99;
        *xid_at = (int)*len + 4;
        *len += 240;
        return 0;
    }
    return -1;
}

/* Builds the payload of a case; its length, or -1. */
static long s_build(const char *s, uint32_t xid, int *xid_at)
{
    size_t n = 0;
    *xid_at = -1;
    for (size_t i = 0; s[i];) {
        if (n >= PAY_MAX)
            return -1;
        if (s[i] == '{') {
            const char *end = strchr(s + i, '}');
            if (end == NULL)
                return -1;
            char m[MACRO_MAX];
            size_t ml = (size_t)(end - s - i - 1);
            if (ml >= sizeof m)
                return -1;
            memcpy(m, s + i + 1, ml);
            m[ml] = '\0';
            if (s_macro(m, s_pay, &n, xid, xid_at) < 0)
                return -1;
            i += ml + 2;
            continue;
        }
        if (s[i] != '\\' || s[i + 1] == '\0') {
            s_pay[n++] = (uint8_t)s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        if (c == 'r')
            s_pay[n++] = '\r';
        else if (c == 'n')
            s_pay[n++] = '\n';
        else if (c == 't')
            s_pay[n++] = '\t';
        else if (c == '0')
            s_pay[n++] = 0;
        else if (c == 'x' && s_hex(s[i]) >= 0 && s_hex(s[i + 1]) >= 0) {
            s_pay[n++] = (uint8_t)(s_hex(s[i]) << 4 | s_hex(s[i + 1]));
            i += 2;
        } else
            s_pay[n++] = (uint8_t)c;
    }
    return (long)n;
}

static int s_secret_in(const uint8_t *b, size_t n)
{
    for (int i = 0; i < s_o.nsecret; i++)
        if (memmem(b, n, s_o.secret[i], strlen(s_o.secret[i])) != NULL)
            return 1;
    return 0;
}

static uint32_t s_xid_for(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* How long to wait for a reply: the table's silence is waited for -w MS (not
 * at all with -q); an expected reply may take longer (a loaded sanitizer
 * build), and it ends the wait when it comes. */
static int s_wait_for(int silent)
{
    if (silent)
        return s_o.quiet ? 0 : s_o.wait_ms;
    return s_o.wait_ms > 2000 ? s_o.wait_ms : 2000;
}

/* ---- TFTP ---- */

static int s_parse_addr(const char *s, uint16_t defport, struct sockaddr_in *sa)
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
    sa->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : defport);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* Sorted "k=v,k=v" of an OACK, lower-case names. */
static void s_oack_str(const uint8_t *p, size_t n, char *out, size_t cap)
{
    char pairs[16][80];
    int np = 0;
    size_t i = 2;
    while (i < n && np < 16) {
        const char *k = (const char *)p + i;
        size_t kl = strnlen(k, n - i);
        if (i + kl + 1 >= n)
            break;
        const char *v = k + kl + 1;
        size_t vl = strnlen(v, n - i - kl - 1);
        snprintf(pairs[np], sizeof pairs[np], "%.*s=%.*s", (int)(kl > 30 ? 30 : kl), k,
                 (int)(vl > 40 ? 40 : vl), v);
        for (char *c = pairs[np]; *c && *c != '='; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        np++;
        i += kl + 1 + vl + 1;
    }
    for (int a = 0; a < np; a++) /* insertion sort: a handful at most */
        for (int b = a; b > 0 && strcmp(pairs[b - 1], pairs[b]) > 0; b--) {
            char t[80];
            memcpy(t, pairs[b], sizeof t);
            memcpy(pairs[b], pairs[b - 1], sizeof t);
            memcpy(pairs[b - 1], t, sizeof t);
        }
    size_t o = 0;
    out[0] = '\0';
    for (int a = 0; a < np && o < cap; a++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", a ? "," : "", pairs[a]);
}

static void s_sorted_expect(const char *e, char *out, size_t cap)
{
    /* the same canonical form for the table's "oack:..." */
    uint8_t b[512];
    size_t n = 2;
    b[0] = 0, b[1] = 6;
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s", e);
    char *save = NULL;
    for (char *t = strtok_r(tmp, ",", &save); t && n < sizeof b - 100;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        n += (size_t)snprintf((char *)b + n, sizeof b - n, "%s", t) + 1;
        n += (size_t)snprintf((char *)b + n, sizeof b - n, "%s", eq + 1) + 1;
    }
    s_oack_str(b, n, out, cap);
}

static void s_tftp_case(const struct sockaddr_in *srv, const uint8_t *pay, size_t n,
                        const char *expect, char *got, size_t gcap)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(got, gcap, "socket:%s", strerror(errno));
        return;
    }
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    struct sockaddr_in me = {.sin_family = AF_INET};
    bind(fd, (struct sockaddr *)&me, sizeof me);
    if (sendto(fd, pay, n, 0, (const struct sockaddr *)srv, sizeof *srv) < 0) {
        snprintf(got, gcap, "sendto:%s", strerror(errno));
        close(fd);
        return;
    }
    int silent = strcmp(expect, "none") == 0;
    int wait = s_wait_for(silent);
    snprintf(got, gcap, "none");
    uint64_t end = s_ms() + (uint64_t)wait;
    for (;;) {
        uint64_t now = s_ms();
        int left = now >= end ? 0 : (int)(end - now);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, left) <= 0)
            break;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(fd, s_rx, RX_MAX, 0, (struct sockaddr *)&from, &fl);
        if (r < 0)
            break;
        if (from.sin_addr.s_addr != srv->sin_addr.s_addr)
            continue;
        if (s_secret_in(s_rx, (size_t)r)) {
            snprintf(got, gcap, "SECRET");
        } else if (r >= 4 && s_rx[0] == 0 && s_rx[1] == 5) {
            snprintf(got, gcap, "error:%u", (unsigned)(s_rx[2] << 8 | s_rx[3]));
        } else if (r >= 4 && s_rx[0] == 0 && s_rx[1] == 3) {
            if (s_rx[2] == 0 && s_rx[3] == 1)
                snprintf(got, gcap, "data:%zd", r - 4);
            else
                snprintf(got, gcap, "data-block-%u", (unsigned)(s_rx[2] << 8 | s_rx[3]));
        } else if (r >= 2 && s_rx[0] == 0 && s_rx[1] == 6) {
            char o[256];
            s_oack_str(s_rx, (size_t)r, o, sizeof o);
            snprintf(got, gcap, "oack:%s", o);
        } else {
            snprintf(got, gcap, "junk:%zd", r);
        }
        /* a transfer was opened: end it (an ERROR is never answered) */
        if (r >= 2 && s_rx[0] == 0 && (s_rx[1] == 3 || s_rx[1] == 6)) {
            static const uint8_t bye[] = {0, 5, 0, 0, 'h', 'o', 's', 't', 'i', 'l', 'e', 0};
            sendto(fd, bye, sizeof bye, 0, (struct sockaddr *)&from, sizeof from);
        }
        break;
    }
    close(fd);
}

/* ---- HTTP ---- */

static void s_http_case(const struct sockaddr_in *srv, const uint8_t *pay, size_t n, char *got,
                        size_t gcap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(got, gcap, "socket:%s", strerror(errno));
        return;
    }
    uint64_t end = s_ms() + (uint64_t)s_o.wait_ms;
    if (connect(fd, (const struct sockaddr *)srv, sizeof *srv) < 0 && errno != EINPROGRESS) {
        snprintf(got, gcap, "connect:%s", strerror(errno));
        close(fd);
        return;
    }
    size_t sent = 0, have = 0;
    int closed = 0, reset = 0, send_err = 0;
    while (!closed) {
        uint64_t now = s_ms();
        if (now >= end)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < n && !send_err ? POLLOUT : 0)};
        if (poll(&pf, 1, (int)(end - now)) <= 0)
            break;
        if ((pf.revents & POLLOUT) && sent < n) {
            ssize_t w = send(fd, pay + sent, n - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                send_err = 1; /* the server stopped reading: fine, read its answer */
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, s_rx + have, RX_MAX - 1 - have, 0);
            if (r == 0)
                closed = 1;
            else if (r < 0 && errno == ECONNRESET)
                closed = reset = 1;
            else if (r > 0)
                have += (size_t)r;
            if (have >= RX_MAX - 1)
                break;
        }
    }
    close(fd);
    s_rx[have] = 0;
    int responses = 0;
    for (size_t i = 0; i + 9 <= have; i++)
        if (memcmp(s_rx + i, "HTTP/1.", 7) == 0 && (i == 0 || s_rx[i - 1] == '\n'))
            responses++;
    int status = 0;
    if (have >= 12 && memcmp(s_rx, "HTTP/1.", 7) == 0)
        status = atoi((const char *)s_rx + 9);
    if (s_secret_in(s_rx, have))
        snprintf(got, gcap, "SECRET");
    else if (have == 0)
        snprintf(got, gcap, "%s", reset ? "reset" : closed ? "closed-silently" : "timeout");
    else if (!closed)
        snprintf(got, gcap, "status:%d(still-open,responses=%d)", status, responses);
    else if (responses != 1)
        snprintf(got, gcap, "status:%d(responses=%d)", status, responses);
    else
        snprintf(got, gcap, "status:%d", status);
}

/* ---- DHCP ---- */

static int s_dhcp_sock(const char *iface, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1, big = 1 << 20;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface)) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void s_dhcp_drain(int fd)
{
    while (recv(fd, s_rx, RX_MAX, MSG_DONTWAIT) >= 0)
        ;
}

/* The largest reply the request allows: max(576, option 57), and never
 * more than the link's 1500-byte MTU takes without fragments. */
static size_t s_dhcp_limit(const uint8_t *pay, size_t n)
{
    size_t lim = 576;
    for (size_t i = 240; i + 1 < n && pay[i] != 255;) {
        if (pay[i] == 0) {
            i++;
            continue;
        }
        if (pay[i] == 57 && pay[i + 1] == 2 && i + 3 < n) {
            size_t v = (size_t)(pay[i + 2] << 8 | pay[i + 3]);
            if (v > lim)
                lim = v;
        }
        i += 2 + (size_t)pay[i + 1];
    }
    return lim > 1472 ? 1472 : lim;
}

static void s_dhcp_case(int fd68, int fd67, const uint8_t *pay, size_t n, uint32_t xid,
                        const char *expect, char *got, size_t gcap)
{
    size_t limit = s_dhcp_limit(pay, n);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(67)};
    to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
    if (sendto(fd68, pay, n, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        snprintf(got, gcap, "sendto:%s", strerror(errno));
        return;
    }
    int silent = strcmp(expect, "none") == 0;
    int wait = s_wait_for(silent);
    snprintf(got, gcap, "none");
    uint64_t end = s_ms() + (uint64_t)wait;
    for (;;) {
        uint64_t now = s_ms();
        int left = now >= end ? 0 : (int)(end - now);
        struct pollfd pf[2] = {{.fd = fd68, .events = POLLIN}, {.fd = fd67, .events = POLLIN}};
        if (poll(pf, 2, left) <= 0)
            break;
        for (int k = 0; k < 2; k++) {
            if (!(pf[k].revents & POLLIN))
                continue;
            ssize_t r = recv(pf[k].fd, s_rx, RX_MAX, 0);
            if (r < 240 || s_rx[0] != 2 || memcmp(s_rx + 4, &xid, 4) != 0)
                continue; /* a request, or another case's late reply */
            if ((size_t)r == n && memcmp(s_rx, pay, n) == 0)
                continue; /* our own broadcast, looped back to the :67 socket */
            const char *type = "bootreply";
            for (ssize_t i = 240; i + 2 < r && s_rx[i] != 255;) {
                if (s_rx[i] == 0) {
                    i++;
                    continue;
                }
                if (s_rx[i] == 53 && s_rx[i + 1] == 1) {
                    uint8_t t = s_rx[i + 2];
                    type = t == 2 ? "offer" : t == 5 ? "ack" : t == 6 ? "nak" : "other";
                }
                i += 2 + s_rx[i + 1];
            }
            if (s_secret_in(s_rx, (size_t)r))
                snprintf(got, gcap, "SECRET");
            else if ((size_t)r > limit)
                snprintf(got, gcap, "%s-oversized-%zd", type, r);
            else
                snprintf(got, gcap, "%s", type);
            return;
        }
    }
}

/* ---- table ---- */

static int s_usage(void)
{
    fprintf(stderr, "usage: hostile tftp|http|dhcp [-g GROUP] [-s SECRET]... [-w MS] [-q] "
                    "TARGET TABLE\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return s_usage();
    const char *proto = argv[1];
    int is_tftp = strcmp(proto, "tftp") == 0, is_http = strcmp(proto, "http") == 0,
        is_dhcp = strcmp(proto, "dhcp") == 0;
    if (!is_tftp && !is_http && !is_dhcp)
        return s_usage();
    s_o.wait_ms = is_http ? 3000 : 400;
    optind = 2;
    int o;
    while ((o = getopt(argc, argv, "g:s:w:q")) != -1) {
        if (o == 'g')
            s_o.group = optarg;
        else if (o == 's' && s_o.nsecret < MAX_SECRETS)
            s_o.secret[s_o.nsecret++] = optarg;
        else if (o == 'w')
            s_o.wait_ms = atoi(optarg);
        else if (o == 'q')
            s_o.quiet = 1;
        else
            return s_usage();
    }
    if (argc - optind != 2)
        return s_usage();
    const char *target = argv[optind], *table = argv[optind + 1];
    struct sockaddr_in srv;
    int fd68 = -1, fd67 = -1;
    if (is_dhcp) {
        fd68 = s_dhcp_sock(target, 68);
        fd67 = s_dhcp_sock(target, 67);
        if (fd68 < 0 || fd67 < 0) {
            fprintf(stderr, "hostile: dhcp sockets on %s: %s\n", target, strerror(errno));
            return 2;
        }
    } else if (s_parse_addr(target, is_tftp ? 69 : 80, &srv) < 0) {
        return s_usage();
    }
    FILE *f = fopen(table, "r");
    if (f == NULL) {
        fprintf(stderr, "hostile: %s: %s\n", table, strerror(errno));
        return 2;
    }
    static char line[8192];
    int npass = 0, nfail = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *col[5] = {0};
        int nc = 0;
        char *p = line;
        while (nc < 5) {
            col[nc++] = p;
            char *tab = strchr(p, '\t');
            if (tab == NULL)
                break;
            *tab = '\0';
            p = tab + 1;
        }
        if (nc < 4) {
            fprintf(stderr, "hostile: %s:%d: need GROUP ID EXPECT PAYLOAD [WHY]\n", table, lineno);
            return 2;
        }
        if (s_o.group && strcmp(s_o.group, col[0]) != 0)
            continue;
        const char *id = col[1], *expect = col[2];
        uint32_t xid = s_xid_for(id);
        int xid_at;
        long n = s_build(col[3], xid, &xid_at);
        if (n < 0) {
            fprintf(stderr, "hostile: %s:%d: bad payload\n", table, lineno);
            return 2;
        }
        if (xid_at >= 0 && (size_t)xid_at + 4 <= (size_t)n)
            memcpy(s_pay + xid_at, &xid, 4); /* {at:...} may have touched it; keep ours */
        char got[512];
        if (is_tftp) {
            s_tftp_case(&srv, s_pay, (size_t)n, expect, got, sizeof got);
        } else if (is_http) {
            s_http_case(&srv, s_pay, (size_t)n, got, sizeof got);
        } else {
            s_dhcp_drain(fd68);
            s_dhcp_drain(fd67);
            s_dhcp_case(fd68, fd67, s_pay, (size_t)n, xid, expect, got, sizeof got);
        }
        int pass;
        if (strncmp(expect, "oack:", 5) == 0 && strncmp(got, "oack:", 5) == 0) {
            char want[400];
            s_sorted_expect(expect + 5, want, sizeof want);
            pass = strcmp(want, got + 5) == 0;
        } else {
            pass = strcmp(expect, got) == 0;
        }
        if (s_o.quiet && strcmp(expect, "none") == 0 && strcmp(got, "none") == 0)
            pass = 1;
        if (pass) {
            npass++;
            if (!s_o.quiet)
                printf("pass %s %s\n", id, expect);
        } else {
            nfail++;
            printf("fail %s %s got=%s\n", id, expect, got);
        }
        fflush(stdout);
    }
    fclose(f);
    if (fd68 >= 0)
        close(fd68);
    if (fd67 >= 0)
        close(fd67);
    printf("summary pass=%d fail=%d\n", npass, nfail);
    return nfail ? 1 : 0;
}
