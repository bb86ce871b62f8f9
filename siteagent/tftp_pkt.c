/* tftp_pkt.c: TFTP packets as pure functions (see tftp_pkt.h for the
 * contracts). Everything reads through (pointer, length) pairs bounded by
 * the datagram: memchr finds each NUL, so no string function ever runs past
 * the bytes received, and every number is parsed digit by digit with its
 * range checked (a sign, a space, a hex prefix or an overflow is "not a
 * number" or "too big", never undefined).
 */
#include "tftp_pkt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static uint16_t s_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void s_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

uint16_t tftp_opcode(const uint8_t *pkt, size_t len)
{
    return len < 2 ? 0 : s_be16(pkt);
}

/* A decimal number of 1..20 digits and nothing else. 0 with *out (values
 * above UINT64_MAX / 10 * 10 saturate to UINT64_MAX), -1 when not a number. */
static int s_num(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            v = UINT64_MAX;
        else
            v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void s_option(struct tftp_req *rq, const char *name, size_t nlen, const char *val,
                     size_t vlen)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"blksize", TFTP_OPT_BLKSIZE},
        {"tsize", TFTP_OPT_TSIZE},
        {"timeout", TFTP_OPT_TIMEOUT},
        {"windowsize", TFTP_OPT_WINDOWSIZE},
    };
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == nlen && strncasecmp(known[i].name, name, nlen) == 0)
            bit = known[i].bit;
    uint64_t v;
    if (bit == 0 || (rq->opts & bit) || s_num(val, vlen, &v) < 0) {
        rq->n_ignored++;
        return;
    }
    switch (bit) {
    case TFTP_OPT_BLKSIZE:
        if (v < TFTP_BLKSIZE_MIN) {
            rq->n_ignored++;
            return;
        }
        rq->blksize = v > TFTP_BLKSIZE_MAX ? TFTP_BLKSIZE_MAX : (uint32_t)v;
        break;
    case TFTP_OPT_TSIZE:
        rq->tsize = v;
        break;
    case TFTP_OPT_TIMEOUT:
        if (v < TFTP_TIMEOUT_MIN || v > TFTP_TIMEOUT_MAX) {
            rq->n_ignored++;
            return;
        }
        rq->timeout = (uint32_t)v;
        break;
    case TFTP_OPT_WINDOWSIZE:
        if (v < 1 || v > TFTP_WINDOW_WIRE_MAX) {
            rq->n_ignored++;
            return;
        }
        rq->windowsize = (uint32_t)v;
        break;
    }
    rq->opts |= bit;
}

int tftp_parse_request(const uint8_t *pkt, size_t len, struct tftp_req *out, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    memset(out, 0, sizeof *out);
    if (len < 2 || pkt == NULL) {
        *why = "short packet";
        return -EINVAL;
    }
    uint16_t op = s_be16(pkt);
    if (op != TFTP_RRQ && op != TFTP_WRQ) {
        *why = "not a request";
        return -EINVAL;
    }
    if (len > TFTP_REQ_MAX) {
        *why = "request too long";
        return -EINVAL;
    }
    out->op = op;
    const uint8_t *p = pkt + 2, *end = pkt + len;

    const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
    if (nul == NULL) {
        *why = "file name not terminated";
        return -EINVAL;
    }
    if (nul == p) {
        *why = "empty file name";
        return -EINVAL;
    }
    if ((size_t)(nul - p) > TFTP_NAME_MAX) {
        *why = "file name too long";
        return -ENAMETOOLONG;
    }
    out->name = (const char *)p;
    out->name_len = (size_t)(nul - p);
    p = nul + 1;

    nul = memchr(p, 0, (size_t)(end - p));
    if (nul == NULL) {
        *why = "mode not terminated";
        return -EINVAL;
    }
    size_t mlen = (size_t)(nul - p);
    if (mlen == 5 && strncasecmp((const char *)p, "octet", 5) == 0) {
        out->mode = TFTP_MODE_OCTET;
    } else if (mlen == 8 && strncasecmp((const char *)p, "netascii", 8) == 0) {
        out->mode = TFTP_MODE_NETASCII;
    } else {
        *why = "unsupported mode";
        return -EPROTONOSUPPORT;
    }
    p = nul + 1;

    unsigned seen = 0;
    while (p < end) {
        nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL) {
            *why = "junk after the last NUL";
            return -EINVAL;
        }
        const char *oname = (const char *)p;
        size_t olen = (size_t)(nul - p);
        p = nul + 1;
        if (olen == 0) { /* zero padding may end a request; anything else may not */
            for (const uint8_t *q = p; q < end; q++)
                if (*q != 0) {
                    *why = "junk after the last option";
                    return -EINVAL;
                }
            break;
        }
        if (p == end) { /* a name without a value at the very end */
            out->n_ignored++;
            break;
        }
        nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL) {
            *why = "option value not terminated";
            return -EINVAL;
        }
        const char *val = (const char *)p;
        size_t vlen = (size_t)(nul - p);
        p = nul + 1;
        if (++seen > TFTP_OPTS_MAX) {
            out->n_ignored++;
            continue;
        }
        s_option(out, oname, olen, val, vlen);
    }
    return 0;
}

void tftp_negotiate(const struct tftp_req *rq, const struct tftp_limits *lim, uint64_t size,
                    struct tftp_params *p)
{
    memset(p, 0, sizeof *p);
    p->blksize = TFTP_BLKSIZE_DEFAULT;
    p->windowsize = 1;
    uint32_t bmax = lim->blksize_max;
    if (bmax < TFTP_BLKSIZE_MIN || bmax > TFTP_BLKSIZE_MAX)
        bmax = bmax > TFTP_BLKSIZE_MAX ? TFTP_BLKSIZE_MAX : TFTP_BLKSIZE_DEFAULT;
    if (rq->opts & TFTP_OPT_BLKSIZE) {
        p->blksize = rq->blksize < bmax ? rq->blksize : bmax;
        if (p->blksize < TFTP_BLKSIZE_MIN)
            p->blksize = TFTP_BLKSIZE_MIN;
        p->oack |= TFTP_OPT_BLKSIZE;
    }
    if (rq->opts & TFTP_OPT_WINDOWSIZE) {
        uint32_t w = rq->windowsize;
        uint32_t wmax = lim->window_max ? lim->window_max : 1;
        uint32_t wbytes = lim->window_bytes / p->blksize;
        if (w > wmax)
            w = wmax;
        if (w > wbytes)
            w = wbytes;
        p->windowsize = w ? w : 1;
        p->oack |= TFTP_OPT_WINDOWSIZE;
    }
    if (rq->opts & TFTP_OPT_TIMEOUT) {
        p->timeout = rq->timeout;
        p->oack |= TFTP_OPT_TIMEOUT;
    }
    if ((rq->opts & TFTP_OPT_TSIZE) && rq->mode == TFTP_MODE_OCTET) {
        p->tsize = size;
        p->oack |= TFTP_OPT_TSIZE;
    }
}

static size_t s_pair(uint8_t *buf, size_t at, size_t cap, const char *name, uint64_t v)
{
    char num[24];
    int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    size_t need = strlen(name) + 1 + (size_t)nl + 1;
    if (at == 0 || at + need > cap)
        return 0;
    memcpy(buf + at, name, strlen(name) + 1);
    memcpy(buf + at + strlen(name) + 1, num, (size_t)nl + 1);
    return at + need;
}

size_t tftp_build_oack(const struct tftp_params *p, uint8_t *buf, size_t cap)
{
    if (p->oack == 0 || cap < 2)
        return 0;
    s_put16(buf, TFTP_OACK);
    size_t at = 2;
    if (p->oack & TFTP_OPT_BLKSIZE)
        at = s_pair(buf, at, cap, "blksize", p->blksize);
    if (p->oack & TFTP_OPT_TSIZE)
        at = s_pair(buf, at, cap, "tsize", p->tsize);
    if (p->oack & TFTP_OPT_TIMEOUT)
        at = s_pair(buf, at, cap, "timeout", p->timeout);
    if (p->oack & TFTP_OPT_WINDOWSIZE)
        at = s_pair(buf, at, cap, "windowsize", p->windowsize);
    return at;
}

size_t tftp_build_error(uint16_t code, const char *msg, uint8_t *buf, size_t cap)
{
    if (cap < 5)
        return 0;
    s_put16(buf, TFTP_ERROR);
    s_put16(buf + 2, code);
    size_t ml = msg ? strlen(msg) : 0;
    if (ml > cap - 5)
        ml = cap - 5;
    if (ml)
        memcpy(buf + 4, msg, ml);
    buf[4 + ml] = 0;
    return 5 + ml;
}

void tftp_data_header(uint8_t hdr[4], uint16_t block)
{
    s_put16(hdr, TFTP_DATA);
    s_put16(hdr + 2, block);
}

int tftp_parse_ack(const uint8_t *pkt, size_t len, uint16_t *block)
{
    if (len < 4 || s_be16(pkt) != TFTP_ACK)
        return -EINVAL;
    *block = s_be16(pkt + 2);
    return 0;
}

int tftp_parse_error(const uint8_t *pkt, size_t len, uint16_t *code, char *msg, size_t msgcap)
{
    if (len < 4 || s_be16(pkt) != TFTP_ERROR)
        return -EINVAL;
    *code = s_be16(pkt + 2);
    if (msgcap == 0)
        return 0;
    size_t o = 0;
    for (size_t i = 4; i < len && pkt[i] != 0 && o + 1 < msgcap; i++)
        msg[o++] = pkt[i] >= 0x20 && pkt[i] < 0x7f ? (char)pkt[i] : '?';
    msg[o] = '\0';
    return 0;
}

uint64_t tftp_ack_block(uint64_t base, uint64_t next, uint16_t ack)
{
    if (base == 0 || next < base || next - base >= 32768)
        return 0;
    uint16_t d = (uint16_t)(ack - (uint16_t)(base - 1));
    if (d == 0 || d > next - base)
        return 0;
    return base - 1 + d;
}

size_t tftp_netascii_encode(int *pending, const uint8_t *in, size_t inlen, size_t *used,
                            uint8_t *out, size_t outcap)
{
    size_t o = 0, i = 0;
    if (*pending >= 0) {
        if (outcap == 0) {
            *used = 0;
            return 0;
        }
        out[o++] = (uint8_t)*pending;
        *pending = -1;
    }
    while (i < inlen && o < outcap) {
        uint8_t c = in[i++];
        if (c != '\n' && c != '\r') {
            out[o++] = c;
            continue;
        }
        uint8_t second = c == '\n' ? '\n' : 0;
        out[o++] = '\r';
        if (o < outcap)
            out[o++] = second;
        else
            *pending = second;
    }
    *used = i;
    return o;
}
