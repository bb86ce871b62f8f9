/* dhcp_pkt.c: parse and build BOOTP/DHCP messages; see dhcp_pkt.h.
 *
 * Every read of the datagram is bounded by the field it belongs to: the
 * option walker gets (pointer, length of that field) and checks each
 * option's length byte against what is left of it before touching the value.
 * Nothing in the datagram is trusted: not hlen, not option 52, not option
 * 57. Rejected: an option running past its field. Tolerated (clients in the
 * field do it): no END option, PAD anywhere, options after an END in `file`.
 */
#include "dhcp_pkt.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const uint8_t s_cookie[4] = {99, 130, 83, 99};

static uint32_t s_rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint16_t s_rd16h(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static int s_has(const struct dhcp_msg *m, uint8_t code)
{
    return (m->present[code >> 3] & (1u << (code & 7))) != 0;
}

/* Records one instance of an option; a repeated code is concatenated into
 * m->cat (RFC 3396). The value being extended is moved to the end of cat
 * first when another option was concatenated after it. */
static int s_add(struct dhcp_msg *m, uint8_t code, const uint8_t *p, uint8_t len)
{
    if (!s_has(m, code)) {
        m->present[code >> 3] |= (uint8_t)(1u << (code & 7));
        m->opt[code].p = p;
        m->opt[code].len = len;
        return 0;
    }
    struct dhcp_opt *o = &m->opt[code];
    size_t have = o->len;
    if (have + len > UINT16_MAX)
        return -EBADMSG;
    if (m->cat_code != code) {
        if (m->cat_len + have + len > sizeof m->cat)
            return -EBADMSG;
        memmove(m->cat + m->cat_len, o->p, have);
        o->p = m->cat + m->cat_len;
        m->cat_len += have;
    } else if (m->cat_len + len > sizeof m->cat) {
        return -EBADMSG;
    }
    memcpy(m->cat + m->cat_len, p, len);
    m->cat_len += len;
    m->cat_code = code;
    o->len = (uint16_t)(have + len);
    return 0;
}

/* Walks one option field (n bytes at p). skip52: option 52 is only honoured
 * in the options field proper. */
static int s_walk(struct dhcp_msg *m, const uint8_t *p, size_t n, int skip52)
{
    size_t i = 0;
    while (i < n) {
        uint8_t code = p[i];
        if (code == DHO_PAD) {
            i++;
            continue;
        }
        if (code == DHO_END)
            return 0;
        if (i + 1 >= n)
            return -EBADMSG; /* no room for the length byte */
        uint8_t len = p[i + 1];
        if ((size_t)len > n - i - 2)
            return -EBADMSG; /* value runs past the field */
        if (!(skip52 && code == DHO_OVERLOAD)) {
            int rc = s_add(m, code, p + i + 2, len);
            if (rc < 0)
                return rc;
        }
        i += 2 + (size_t)len;
    }
    return 0;
}

int dhcp_parse(const uint8_t *buf, size_t len, struct dhcp_msg *m)
{
    if (len > DHCP_PKT_MAX)
        return -EMSGSIZE;
    if (buf == NULL || len < DHCP_FIXED_LEN)
        return -EBADMSG;
    if (memcmp(buf + DHCP_HDR_LEN, s_cookie, 4) != 0)
        return -EBADMSG;
    memset(m->present, 0, sizeof m->present);
    m->cat_len = 0;
    m->cat_code = -1;
    m->raw = buf;
    m->raw_len = len;
    m->op = buf[0];
    m->htype = buf[1];
    m->hlen = buf[2];
    m->hops = buf[3];
    if (m->hlen > 16)
        return -EBADMSG;
    memcpy(&m->xid, buf + 4, 4);
    m->secs = s_rd16h(buf + 8);
    m->flags = s_rd16h(buf + 10);
    m->ciaddr = s_rd32(buf + 12);
    m->yiaddr = s_rd32(buf + 16);
    m->siaddr = s_rd32(buf + 20);
    m->giaddr = s_rd32(buf + 24);
    m->chaddr = buf + 28;
    m->type = 0;
    m->overload = 0;
    int rc = s_walk(m, buf + DHCP_FIXED_LEN, len - DHCP_FIXED_LEN, 0);
    if (rc < 0)
        return rc;
    if (s_has(m, DHO_OVERLOAD)) {
        const struct dhcp_opt *o = &m->opt[DHO_OVERLOAD];
        if (o->len != 1 || o->p[0] < 1 || o->p[0] > 3)
            return -EBADMSG;
        m->overload = o->p[0];
        /* RFC 2131 4.1: options, then file, then sname */
        if ((m->overload & 1) && (rc = s_walk(m, buf + 108, 128, 1)) < 0)
            return rc;
        if ((m->overload & 2) && (rc = s_walk(m, buf + 44, 64, 1)) < 0)
            return rc;
    }
    if (s_has(m, DHO_MSG_TYPE)) {
        if (m->opt[DHO_MSG_TYPE].len != 1)
            return -EBADMSG;
        m->type = m->opt[DHO_MSG_TYPE].p[0];
    }
    return 0;
}

int dhcp_get_ip(const struct dhcp_msg *m, uint8_t code, uint32_t *out)
{
    struct dhcp_opt o = dhcp_get(m, code);
    if (o.p == NULL || o.len != 4)
        return 0;
    *out = s_rd32(o.p);
    return 1;
}

size_t dhcp_max_size(const struct dhcp_msg *m)
{
    struct dhcp_opt o = dhcp_get(m, DHO_MAX_SIZE);
    if (o.p == NULL || o.len != 2)
        return DHCP_MIN_MAX_SIZE;
    size_t v = s_rd16h(o.p);
    return v < DHCP_MIN_MAX_SIZE ? DHCP_MIN_MAX_SIZE : v;
}

int dhcp_requested(const struct dhcp_msg *m, uint8_t code)
{
    struct dhcp_opt o = dhcp_get(m, DHO_PARAM_REQ);
    for (size_t i = 0; o.p != NULL && i < o.len; i++)
        if (o.p[i] == code)
            return 1;
    return 0;
}

/* ---- building ---- */

void dhcp_out_init(struct dhcp_out *o, uint8_t *buf, size_t cap, size_t limit,
                   const struct dhcp_msg *req)
{
    assert(cap >= DHCP_MIN_LEN);
    o->buf = buf;
    o->limit = limit < cap ? limit : cap;
    if (o->limit < DHCP_MIN_LEN)
        o->limit = DHCP_MIN_LEN;
    o->reserve = 0;
    memset(buf, 0, DHCP_FIXED_LEN);
    buf[0] = DHCP_BOOTREPLY;
    buf[1] = req->htype;
    buf[2] = req->hlen;
    memcpy(buf + 4, &req->xid, 4);
    buf[10] = (uint8_t)(req->flags >> 8);
    buf[11] = (uint8_t)req->flags;
    memcpy(buf + 24, &req->giaddr, 4);
    memcpy(buf + 28, req->chaddr, 16);
    memcpy(buf + DHCP_HDR_LEN, s_cookie, 4);
    o->len = DHCP_FIXED_LEN;
}

void dhcp_out_set_yiaddr(struct dhcp_out *o, uint32_t ip_be)
{
    memcpy(o->buf + 16, &ip_be, 4);
}
void dhcp_out_set_ciaddr(struct dhcp_out *o, uint32_t ip_be)
{
    memcpy(o->buf + 12, &ip_be, 4);
}
void dhcp_out_set_siaddr(struct dhcp_out *o, uint32_t ip_be)
{
    memcpy(o->buf + 20, &ip_be, 4);
}
void dhcp_out_set_flags(struct dhcp_out *o, uint16_t flags)
{
    o->buf[10] = (uint8_t)(flags >> 8);
    o->buf[11] = (uint8_t)flags;
}

size_t dhcp_opt_space(size_t len)
{
    if (len == 0)
        return 2;
    return len + 2 * ((len + 254) / 255);
}

int dhcp_out_opt(struct dhcp_out *o, uint8_t code, const void *val, size_t len)
{
    if (code == DHO_PAD || code == DHO_END)
        return -EINVAL;
    size_t need = dhcp_opt_space(len);
    if (o->len + need + o->reserve + 1 > o->limit)
        return -EMSGSIZE;
    const uint8_t *v = val;
    do {
        size_t n = len > 255 ? 255 : len;
        o->buf[o->len++] = code;
        o->buf[o->len++] = (uint8_t)n;
        if (n)
            memcpy(o->buf + o->len, v, n);
        o->len += n;
        v += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int dhcp_out_opt_u8(struct dhcp_out *o, uint8_t code, uint8_t v)
{
    return dhcp_out_opt(o, code, &v, 1);
}

int dhcp_out_opt_u32(struct dhcp_out *o, uint8_t code, uint32_t v_host)
{
    uint32_t be = htonl(v_host);
    return dhcp_out_opt(o, code, &be, 4);
}

size_t dhcp_out_finish(struct dhcp_out *o)
{
    o->buf[o->len++] = DHO_END;
    if (o->len < DHCP_MIN_LEN) {
        memset(o->buf + o->len, 0, DHCP_MIN_LEN - o->len);
        o->len = DHCP_MIN_LEN;
    }
    return o->len;
}

/* ---- helpers ---- */

const char *dhcp_quote(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        char tmp[5];
        size_t k;
        if (p[i] == '"' || p[i] == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)p[i];
            k = 2;
        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            tmp[0] = (char)p[i];
            k = 1;
        } else {
            static const char hex[] = "0123456789abcdef";
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[p[i] >> 4];
            tmp[3] = hex[p[i] & 15];
            k = 4;
        }
        if (o + k + 2 > outlen)
            break; /* keep room for the closing quote and NUL */
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *dhcp_ip_str(uint32_t ip_be, char out[16])
{
    const uint8_t *b = (const uint8_t *)&ip_be;
    snprintf(out, 16, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    return out;
}

static uint32_t s_sum(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    return sum;
}

static uint16_t s_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

void dhcp_ip_udp_header(uint8_t hdr[28], uint32_t src_be, uint32_t dst_be, uint16_t sport,
                        uint16_t dport, size_t len)
{
    size_t ulen = len + 8, tot = len + 28;
    uint8_t *ip = hdr, *udp = hdr + 20;
    memset(hdr, 0, 28);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64; /* TTL */
    ip[9] = 17; /* UDP */
    memcpy(ip + 12, &src_be, 4);
    memcpy(ip + 16, &dst_be, 4);
    uint16_t c = s_fold(s_sum(0, ip, 20));
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    udp[0] = (uint8_t)(sport >> 8);
    udp[1] = (uint8_t)sport;
    udp[2] = (uint8_t)(dport >> 8);
    udp[3] = (uint8_t)dport;
    udp[4] = (uint8_t)(ulen >> 8);
    udp[5] = (uint8_t)ulen;
    /* pseudo header: src, dst, zero, proto, UDP length */
    uint32_t sum = s_sum(0, ip + 12, 8);
    sum += 17 + (uint32_t)ulen;
    sum = s_sum(sum, udp, ulen);
    c = s_fold(sum);
    if (c == 0)
        c = 0xffff; /* 0 means "no checksum" in UDP over IPv4 */
    udp[6] = (uint8_t)(c >> 8);
    udp[7] = (uint8_t)c;
}
