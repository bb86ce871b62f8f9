/* sim_dhcp.c: DHCP client packets (see sim_dhcp.h). RFC 2131 layout: a
 * 236-byte fixed header, the magic cookie, then options. */
#include "sim_dhcp.h"

#include <errno.h>
#include <string.h>

#define FIXED 236
#define OPTS (FIXED + 4)
static const uint8_t s_magic[4] = {99, 130, 83, 99};

static size_t s_header(uint8_t *b, uint8_t type, uint32_t xid, uint16_t secs, const uint8_t mac[6])
{
    memset(b, 0, OPTS);
    b[0] = 1; /* BOOTREQUEST */
    b[1] = 1; /* Ethernet */
    b[2] = 6;
    memcpy(b + 4, &xid, 4);
    b[8] = (uint8_t)(secs >> 8), b[9] = (uint8_t)secs;
    b[10] = 0x80; /* broadcast flag */
    memcpy(b + 28, mac, 6);
    memcpy(b + FIXED, s_magic, 4);
    size_t n = OPTS;
    b[n++] = 53, b[n++] = 1, b[n++] = type;
    return n;
}

size_t sim_dhcp_build(const struct sim_dhcp_req *rq, uint8_t *b, size_t cap)
{
    if (cap < 300 || rq->vendor_len > 255 ||
        cap < OPTS + 3 + 9 + 2 + rq->vendor_len + 16 + 6 + 6 + 4 + 1)
        return 0;
    size_t n = s_header(b, rq->type, rq->xid, rq->secs, rq->mac);
    b[n++] = 61, b[n++] = 7, b[n++] = 1; /* client id: Ethernet + MAC */
    memcpy(b + n, rq->mac, 6);
    n += 6;
    b[n++] = 57, b[n++] = 2, b[n++] = SIM_DHCP_MAX >> 8, b[n++] = SIM_DHCP_MAX & 0xff;
    if (rq->vendor_len > 0) {
        b[n++] = 60, b[n++] = (uint8_t)rq->vendor_len;
        memcpy(b + n, rq->vendor, rq->vendor_len);
        n += rq->vendor_len;
    }
    static const uint8_t prl[] = {1, 3, 6, 15, 42, 43, 51, 54, 66, 67, 150, 160};
    b[n++] = 55, b[n++] = sizeof prl;
    memcpy(b + n, prl, sizeof prl);
    n += sizeof prl;
    if (rq->requested_be) {
        b[n++] = 50, b[n++] = 4;
        memcpy(b + n, &rq->requested_be, 4);
        n += 4;
    }
    if (rq->server_id_be) {
        b[n++] = 54, b[n++] = 4;
        memcpy(b + n, &rq->server_id_be, 4);
        n += 4;
    }
    b[n++] = 255;
    while (n < 300)
        b[n++] = 0;
    return n;
}

int sim_dhcp_parse(const uint8_t *p, size_t n, struct sim_dhcp_reply *r)
{
    memset(r, 0, sizeof *r);
    if (n < OPTS || p[0] != 2 || p[1] != 1 || p[2] != 6 || memcmp(p + FIXED, s_magic, 4) != 0)
        return -EPROTO;
    memcpy(&r->xid, p + 4, 4);
    memcpy(&r->yiaddr_be, p + 16, 4);
    memcpy(&r->siaddr_be, p + 20, 4);
    memcpy(r->chaddr, p + 28, 6);
    size_t i = OPTS;
    while (i < n) {
        uint8_t code = p[i++];
        if (code == 0)
            continue;
        if (code == 255)
            break;
        if (i >= n || p[i] > n - i - 1)
            return -EPROTO;
        uint8_t len = p[i++];
        const uint8_t *v = p + i;
        switch (code) {
        case 53:
            if (len != 1)
                return -EPROTO;
            r->type = v[0];
            break;
        case 54:
            if (len == 4)
                memcpy(&r->server_id_be, v, 4);
            break;
        case 1:
            if (len == 4)
                memcpy(&r->mask_be, v, 4);
            break;
        case 150:
            if (len >= 4 && len % 4 == 0)
                memcpy(&r->tftp150_be, v, 4);
            break;
        case 51:
            if (len == 4)
                r->lease_s =
                    (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
            break;
        case 66:
            memcpy(r->opt66, v, len); /* len <= 255 < sizeof opt66 */
            r->opt66[len] = '\0';
            break;
        default:
            break;
        }
        i += len;
    }
    return r->type == 0 ? -EPROTO : 0;
}

size_t sim_dhcp_garbage(uint8_t *b, size_t cap, unsigned kind, const uint8_t mac[6], uint32_t xid)
{
    if (cap < SIM_DHCP_MAX)
        return 0;
    size_t n = s_header(b, SIM_DHCP_DISCOVER, xid, 0, mac);
    switch (kind % 6) {
    case 0: /* cut inside the fixed header */
        return 100;
    case 1: /* option 60 claiming more bytes than follow */
        b[n++] = 60, b[n++] = 200;
        memcpy(b + n, "digium_", 7);
        return n + 7;
    case 2: /* bad magic cookie */
        b[FIXED] = 0x63, b[FIXED + 1] = 0x00;
        b[n++] = 255;
        return n;
    case 3: /* hlen 255 */
        b[2] = 255;
        b[n++] = 255;
        return n;
    case 4: /* a second message type of the wrong length, no END */
        b[n++] = 53, b[n++] = 2, b[n++] = 1, b[n++] = 1;
        return n;
    default: /* option 52 overload pointing at a file field of garbage */
        b[n++] = 52, b[n++] = 1, b[n++] = 1;
        memset(b + 108, 0x3c, 128); /* option 60 with length 60, over and over, cut short */
        b[n++] = 255;
        return n;
    }
}
