/* dhcp_probe.c: a hostile or relay-like DHCP peer for the system tests.
 *   dhcp_probe garbage IFACE PORT N
 *       broadcasts N malformed datagrams (short, truncated, overlong option
 *       lengths, hlen 255, overload garbage, replies posing as requests,
 *       unknown message types, jumbo option soup) to 255.255.255.255:PORT
 *       out of IFACE; exits 0 when all were sent
 *   dhcp_probe relay IFACE SERVER GIADDR MAC [decline]
 *       acts as a relay agent listening on GIADDR:67 (an address of IFACE):
 *       DISCOVER with option 82 -> OFFER; REQUEST (selecting) -> ACK;
 *       INIT-REBOOT for a wrong address -> NAK, which must carry the B flag;
 *       every reply must come to GIADDR:67 with our xid and chaddr, server
 *       id SERVER and option 82 echoed byte for byte. With `decline`, the
 *       ACKed address is then DECLINEd. Prints "offer IP", "ack IP",
 *       "nak bflag=1" (and "declined IP"); exits 0 when every check held.
 *   dhcp_probe inform IFACE SERVER CIADDR MAC [VENDOR_HEX]
 *       a configured client (CIADDR is an address of IFACE) asks for its
 *       options with a unicast DHCPINFORM from CIADDR:68 (option 60 as given):
 *       the ACK must come to CIADDR:68 without yiaddr and without a lease
 *       time; prints "inform-ack" and then "optNNN=HEX" for every option.
 * Every wait is bounded (3 tries of 2 s); nothing here retries forever.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dhcp_pkt.h"
#include "util.h"

static const uint8_t s_o82[] = {1, 6, 'p', 'o', 'r', 't', '-', '7', 2, 4, 0xde, 0xad, 0xbe, 0xef};

struct req {
    uint8_t b[1024];
    size_t len;
};

static void s_begin(struct req *r, uint8_t type, uint32_t xid, const uint8_t mac[6],
                    uint32_t giaddr_be)
{
    memset(r, 0, sizeof *r);
    r->b[0] = 1;
    r->b[1] = 1;
    r->b[2] = 6;
    r->b[3] = 1; /* hops */
    memcpy(r->b + 4, &xid, 4);
    memcpy(r->b + 24, &giaddr_be, 4);
    memcpy(r->b + 28, mac, 6);
    r->b[236] = 99, r->b[237] = 130, r->b[238] = 83, r->b[239] = 99;
    r->len = DHCP_FIXED_LEN;
    r->b[r->len++] = DHO_MSG_TYPE;
    r->b[r->len++] = 1;
    r->b[r->len++] = type;
}

static void s_opt(struct req *r, uint8_t code, const void *v, size_t n)
{
    r->b[r->len++] = code;
    r->b[r->len++] = (uint8_t)n;
    memcpy(r->b + r->len, v, n);
    r->len += n;
}

static int s_socket(const char *iface, uint32_t addr_be, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface)) < 0) {
        perror("SO_BINDTODEVICE");
        close(fd);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = addr_be;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("bind");
        close(fd);
        return -1;
    }
    return fd;
}

static int s_send(int fd, const void *b, size_t n, uint32_t to_be, uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = to_be;
    return sendto(fd, b, n, 0, (struct sockaddr *)&sa, sizeof sa) == (ssize_t)n ? 0 : -1;
}

/* ---- garbage ---- */

static void s_rand(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rand();
}

static int s_garbage(const char *iface, uint16_t port, long n)
{
    int fd = s_socket(iface, 0, 0);
    if (fd < 0)
        return 1;
    static uint8_t buf[4000];
    srand((unsigned)time(NULL));
    uint32_t bcast = htonl(INADDR_BROADCAST);
    long sent = 0;
    for (long i = 0; i < n; i++) {
        struct req r;
        uint8_t mac[6] = {0x02, 0xee, 0, 0, (uint8_t)(i >> 8), (uint8_t)i};
        size_t len;
        s_begin(&r, DHCPDISCOVER, (uint32_t)rand(), mac, 0);
        switch (i % 10) {
        case 0: /* random bytes of random length */
            len = (size_t)(rand() % 320);
            s_rand(buf, len);
            break;
        case 1: /* a valid header, random options ending in a value cut short */
            len = DHCP_FIXED_LEN + (size_t)(rand() % 300);
            memcpy(buf, r.b, DHCP_FIXED_LEN);
            s_rand(buf + DHCP_FIXED_LEN, len - DHCP_FIXED_LEN);
            for (size_t k = DHCP_FIXED_LEN; k < len; k++)
                if (buf[k] == DHO_END || buf[k] == DHO_PAD)
                    buf[k] = 0x7f;
            buf[len++] = DHO_HOSTNAME;
            buf[len++] = 9;
            break;
        case 2: /* an option running past the end */
            s_opt(&r, DHO_VENDOR_CLASS, "abc", 3);
            r.b[r.len - 4] = 200;
            memcpy(buf, r.b, len = r.len);
            break;
        case 3: /* hlen 255 */
            r.b[2] = 255;
            r.b[r.len++] = DHO_END;
            memcpy(buf, r.b, len = r.len);
            break;
        case 4: /* overload with garbage in file and sname */
            s_opt(&r, DHO_OVERLOAD, "\x03", 1);
            r.b[r.len++] = DHO_END;
            s_rand(r.b + 44, 192);
            for (size_t k = 44; k < 236; k++)
                if (r.b[k] == DHO_END || r.b[k] == DHO_PAD)
                    r.b[k] = 0x7f;
            r.b[235] = DHO_USER_CLASS; /* file (read first) ends in a code without length */
            memcpy(buf, r.b, len = r.len);
            break;
        case 5: /* a reply posing as a request */
            r.b[0] = 2;
            r.b[r.len++] = DHO_END;
            memcpy(buf, r.b, len = r.len);
            break;
        case 6: /* truncated inside the header */
            memcpy(buf, r.b, len = 100);
            break;
        case 7: /* jumbo: option 60 split over many instances, the last cut short */
            memcpy(buf, r.b, len = r.len);
            while (len + 257 <= sizeof buf) {
                buf[len++] = DHO_VENDOR_CLASS;
                buf[len++] = 255;
                s_rand(buf + len, 255);
                len += 255;
            }
            buf[len++] = DHO_VENDOR_CLASS;
            buf[len++] = 255;
            break;
        case 8: /* unknown message type, option 53 of 2 bytes */
            r.b[r.len - 1] = 200;
            s_opt(&r, DHO_MSG_TYPE, "\x01\x01", 2);
            memcpy(buf, r.b, len = r.len);
            break;
        default: /* option 55/57/61/82 with odd lengths, then a length byte at the end */
            s_opt(&r, DHO_MAX_SIZE, "\x00", 1);
            s_opt(&r, DHO_PARAM_REQ, "", 0);
            s_opt(&r, DHO_REQUESTED_IP, "\x01\x02\x03", 3);
            s_opt(&r, DHO_RELAY_INFO, "\x01\xff", 2);
            r.b[r.len++] = DHO_CLIENT_ID;
            memcpy(buf, r.b, len = r.len);
            break;
        }
        if (s_send(fd, buf, len, bcast, port) == 0)
            sent++;
        if (i % 50 == 49)
            usleep(2000); /* a burst, not a flood: the socket buffer stays sane */
    }
    close(fd);
    printf("sent %ld of %ld\n", sent, n);
    return sent == n ? 0 : 1;
}

/* ---- relay ---- */

static struct dhcp_msg s_m;
static uint8_t s_rbuf[DHCP_PKT_MAX];

/* Sends r and waits for a reply with xid; fills s_m. 0 or -1. */
static int s_exchange(int fd, const struct req *r, uint32_t server_be, uint32_t xid, int expect)
{
    for (int tries = 0; tries < 3; tries++) {
        if (s_send(fd, r->b, r->len, server_be, 67) < 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, 2000) > 0) {
            ssize_t n = recv(fd, s_rbuf, sizeof s_rbuf, 0);
            if (n <= 0 || dhcp_parse(s_rbuf, (size_t)n, &s_m) < 0)
                continue;
            if (s_m.op != DHCP_BOOTREPLY || s_m.xid != xid)
                continue;
            if (expect && s_m.type != expect) {
                fprintf(stderr, "dhcp_probe: got type %u, wanted %d\n", s_m.type, expect);
                return -1;
            }
            return 0;
        }
    }
    fprintf(stderr, "dhcp_probe: no reply of type %d\n", expect);
    return -1;
}

static int s_check(const uint8_t mac[6], uint32_t server_be, uint32_t giaddr_be, const char *what)
{
    uint32_t sid;
    struct dhcp_opt o = dhcp_get(&s_m, DHO_RELAY_INFO);
    if (memcmp(s_m.chaddr, mac, 6) != 0) {
        fprintf(stderr, "dhcp_probe: %s: chaddr differs\n", what);
        return -1;
    }
    if (s_m.giaddr != giaddr_be) {
        fprintf(stderr, "dhcp_probe: %s: giaddr not copied\n", what);
        return -1;
    }
    if (!dhcp_get_ip(&s_m, DHO_SERVER_ID, &sid) || sid != server_be) {
        fprintf(stderr, "dhcp_probe: %s: server id is not the server\n", what);
        return -1;
    }
    if (o.p == NULL || o.len != sizeof s_o82 || memcmp(o.p, s_o82, sizeof s_o82) != 0) {
        fprintf(stderr, "dhcp_probe: %s: option 82 not echoed unchanged\n", what);
        return -1;
    }
    return 0;
}

static int s_relay(const char *iface, const char *server, const char *gi, const char *macs,
                   int decline)
{
    struct in_addr sv, ga;
    uint8_t mac[6];
    if (inet_pton(AF_INET, server, &sv) != 1 || inet_pton(AF_INET, gi, &ga) != 1 ||
        util_mac_parse(macs, mac) < 0) {
        fprintf(stderr, "dhcp_probe: bad SERVER, GIADDR or MAC\n");
        return 2;
    }
    int fd = s_socket(iface, ga.s_addr, 67);
    if (fd < 0)
        return 1;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    uint32_t xid = (uint32_t)rand();
    struct req r;
    char ips[16];
    s_begin(&r, DHCPDISCOVER, xid, mac, ga.s_addr);
    s_opt(&r, DHO_RELAY_INFO, s_o82, sizeof s_o82);
    r.b[r.len++] = DHO_END;
    if (s_exchange(fd, &r, sv.s_addr, xid, DHCPOFFER) < 0 ||
        s_check(mac, sv.s_addr, ga.s_addr, "offer") < 0)
        return 1;
    uint32_t yi = s_m.yiaddr;
    printf("offer %s\n", dhcp_ip_str(yi, ips));
    xid++;
    s_begin(&r, DHCPREQUEST, xid, mac, ga.s_addr);
    s_opt(&r, DHO_SERVER_ID, &sv.s_addr, 4);
    s_opt(&r, DHO_REQUESTED_IP, &yi, 4);
    s_opt(&r, DHO_RELAY_INFO, s_o82, sizeof s_o82);
    r.b[r.len++] = DHO_END;
    if (s_exchange(fd, &r, sv.s_addr, xid, DHCPACK) < 0 ||
        s_check(mac, sv.s_addr, ga.s_addr, "ack") < 0)
        return 1;
    if (s_m.yiaddr != yi) {
        fprintf(stderr, "dhcp_probe: ack for another address\n");
        return 1;
    }
    printf("ack %s\n", dhcp_ip_str(yi, ips));
    /* INIT-REBOOT for an address that is not ours: NAK, B flag set */
    xid++;
    uint32_t wrong = htonl(ntohl(yi) ^ 0x1); /* a neighbour in the same subnet */
    s_begin(&r, DHCPREQUEST, xid, mac, ga.s_addr);
    s_opt(&r, DHO_REQUESTED_IP, &wrong, 4);
    s_opt(&r, DHO_RELAY_INFO, s_o82, sizeof s_o82);
    r.b[r.len++] = DHO_END;
    if (s_exchange(fd, &r, sv.s_addr, xid, DHCPNAK) < 0 ||
        s_check(mac, sv.s_addr, ga.s_addr, "nak") < 0)
        return 1;
    int bflag = (s_m.flags & DHCP_FLAG_BROADCAST) != 0;
    printf("nak bflag=%d\n", bflag);
    if (!bflag)
        return 1;
    if (decline) {
        s_begin(&r, DHCPDECLINE, xid + 1, mac, ga.s_addr);
        s_opt(&r, DHO_SERVER_ID, &sv.s_addr, 4);
        s_opt(&r, DHO_REQUESTED_IP, &yi, 4);
        r.b[r.len++] = DHO_END;
        if (s_send(fd, r.b, r.len, sv.s_addr, 67) < 0)
            return 1;
        printf("declined %s\n", dhcp_ip_str(yi, ips));
    }
    close(fd);
    return 0;
}

static int s_inform(const char *iface, const char *server, const char *ci, const char *macs,
                    const char *vhex)
{
    struct in_addr sv, ca;
    uint8_t mac[6], vendor[255];
    size_t vn = 0;
    if (inet_pton(AF_INET, server, &sv) != 1 || inet_pton(AF_INET, ci, &ca) != 1 ||
        util_mac_parse(macs, mac) < 0) {
        fprintf(stderr, "dhcp_probe: bad SERVER, CIADDR or MAC\n");
        return 2;
    }
    if (vhex != NULL) {
        vn = strlen(vhex) / 2;
        if (vn > sizeof vendor || strlen(vhex) % 2 || util_unhex(vhex, vendor, vn) < 0) {
            fprintf(stderr, "dhcp_probe: bad VENDOR_HEX\n");
            return 2;
        }
    }
    int fd = s_socket(iface, ca.s_addr, 68);
    if (fd < 0)
        return 1;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    uint32_t xid = (uint32_t)rand();
    struct req r;
    s_begin(&r, DHCPINFORM, xid, mac, 0);
    r.b[3] = 0; /* hops: not relayed */
    memcpy(r.b + 12, &ca.s_addr, 4);
    if (vhex != NULL)
        s_opt(&r, DHO_VENDOR_CLASS, vendor, vn);
    r.b[r.len++] = DHO_END;
    if (s_exchange(fd, &r, sv.s_addr, xid, DHCPACK) < 0)
        return 1;
    if (s_m.yiaddr != 0 || dhcp_get(&s_m, DHO_LEASE_TIME).p != NULL) {
        fprintf(stderr, "dhcp_probe: ACK to an INFORM with yiaddr or a lease time\n");
        return 1;
    }
    printf("inform-ack\n");
    for (int code = 1; code < 255; code++) {
        struct dhcp_opt o = dhcp_get(&s_m, (uint8_t)code);
        if (o.p == NULL)
            continue;
        char hex[2 * 65535 + 1];
        util_hex(o.p, o.len, hex);
        printf("opt%d=%s\n", code, hex);
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "inform") == 0)
        return s_inform(argv[2], argv[3], argv[4], argv[5], argc == 7 ? argv[6] : NULL);
    if (argc == 5 && strcmp(argv[1], "garbage") == 0)
        return s_garbage(argv[2], (uint16_t)atoi(argv[3]), atol(argv[4]));
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "relay") == 0)
        return s_relay(argv[2], argv[3], argv[4], argv[5],
                       argc == 7 && strcmp(argv[6], "decline") == 0);
    fprintf(stderr, "usage: dhcp_probe garbage IFACE PORT N\n"
                    "       dhcp_probe relay IFACE SERVER GIADDR MAC [decline]\n"
                    "       dhcp_probe inform IFACE SERVER CIADDR MAC [VENDOR_HEX]\n");
    return 2;
}
