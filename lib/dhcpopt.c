/* dhcpopt.c: option specs, match rules, IPv4 text and packed lists (see
 * dhcpopt.h).
 *
 * Invariants: every writer checks the room left before it writes (values
 * never pass DHCPOPT_VALUE_MAX, however long the input); input is never
 * modified; error messages quote operator text through s_show, so they stay
 * one printable line whatever was typed. The parsers work on (pointer,
 * length) slices of the spec instead of copies, so no scratch buffers.
 */
#include "dhcpopt.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SHOW_MAX 64

enum otype { T_NONE, T_TEXT, T_IP, T_HEX, T_U8, T_U16, T_U32, T_BOOL, T_SUB };

static const struct {
    const char *name;
    enum otype t;
} s_types[] = {
    {"text", T_TEXT}, {"ip", T_IP},   {"hex", T_HEX},   {"u8", T_U8},
    {"u16", T_U16},   {"u32", T_U32}, {"bool", T_BOOL}, {"sub", T_SUB},
};

/* The type an option has when the spec names none. */
static enum otype s_default_type(unsigned code)
{
    switch (code) {
    case 1:
    case 3:
    case 6:
    case 42:
    case 150:
        return T_IP;
    case 15:
    case 66:
    case 67:
    case 160:
    case 242:
        return T_TEXT;
    case 43:
        return T_HEX;
    case 51:
    case 58:
    case 59:
        return T_U32;
    default:
        return T_NONE;
    }
}

/* Codes the DHCP server always writes itself, and why. */
static const char *s_reserved(unsigned code)
{
    switch (code) {
    case 0:
        return "is padding";
    case 255:
        return "marks the end of the options";
    case 52:
        return "(option overload) is set by the DHCP server itself";
    case 53:
        return "(message type) is set by the DHCP server itself";
    case 54:
        return "(server identifier) is set by the DHCP server itself";
    case 55:
        return "(parameter request list) is sent by clients, not servers";
    case 61:
        return "(client identifier) is sent by clients, not servers";
    case 82:
        return "(relay agent information) is echoed by the DHCP server itself";
    default:
        return NULL;
    }
}

/* A printable, bounded rendering of n bytes of s for messages. */
static const char *s_show(const char *s, size_t n, char out[SHOW_MAX + 4])
{
    return util_show(s, n, SHOW_MAX, out);
}

static int s_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* Decimal digits only, no sign, no leading zero (except "0"), <= max. */
static int s_decimal(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---- IPv4 ---- */

static int s_ip_n(const char *s, size_t n, uint32_t *out)
{
    uint32_t ip = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        uint64_t v;
        if (i - start > 3 || s_decimal(s + start, i - start, 255, &v) < 0)
            return -EINVAL;
        ip = ip << 8 | (uint32_t)v;
        if (part < 3) {
            if (i >= n || s[i] != '.')
                return -EINVAL;
            i++;
        }
    }
    if (i != n)
        return -EINVAL;
    *out = ip;
    return 0;
}

int dhcpopt_ip_parse(const char *s, uint32_t *out)
{
    if (s == NULL)
        return -EINVAL;
    return s_ip_n(s, strlen(s), out);
}

void dhcpopt_ip_format(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

int dhcpopt_cidr_parse(const char *s, int min_prefix, uint32_t *net, int *prefix)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    uint32_t ip;
    uint64_t p;
    if (slash == NULL || s_ip_n(s, (size_t)(slash - s), &ip) < 0 ||
        s_decimal(slash + 1, strlen(slash + 1), 32, &p) < 0 || (int)p < min_prefix || p > 30)
        return -EINVAL;
    uint32_t mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
    *net = ip & mask;
    *prefix = (int)p;
    return (ip & ~mask) != 0 ? -EDOM : 0;
}

/* ---- values ---- */

struct out {
    uint8_t *buf;
    size_t len, cap;
};

static int s_put(struct out *o, const void *p, size_t n)
{
    if (n > o->cap - o->len)
        return -ENOSPC;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static int s_put_u8(struct out *o, unsigned v)
{
    uint8_t b = (uint8_t)v;
    return s_put(o, &b, 1);
}

/* Encodes one typed value (not sub) of n bytes at v. what names the option
 * or sub-option in messages ("option 66", "option 43 sub-option 2"). */
static int s_value(enum otype t, const char *v, size_t n, struct out *o, const char *what,
                   char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    switch (t) {
    case T_TEXT:
        if (n == 0) {
            util_errf(err, errlen, "%s: empty text", what);
            return -EINVAL;
        }
        if (!s_printable(v, n)) {
            util_errf(err, errlen, "%s: text must be printable ASCII (use hex: for other bytes)",
                      what);
            return -EINVAL;
        }
        if (s_put(o, v, n) < 0)
            goto too_long;
        return 0;
    case T_IP: {
        size_t i = 0;
        if (n == 0) {
            util_errf(err, errlen, "%s: empty address list", what);
            return -EINVAL;
        }
        while (i <= n) {
            const char *comma = memchr(v + i, ',', n - i);
            size_t k = comma ? (size_t)(comma - (v + i)) : n - i;
            uint32_t ip;
            if (s_ip_n(v + i, k, &ip) < 0) {
                util_errf(err, errlen, "%s: '%s' is not an IPv4 address", what,
                          s_show(v + i, k, q));
                return -EINVAL;
            }
            uint8_t b[4] = {(uint8_t)(ip >> 24), (uint8_t)(ip >> 16), (uint8_t)(ip >> 8),
                            (uint8_t)ip};
            if (s_put(o, b, 4) < 0)
                goto too_long;
            i += k + 1;
        }
        return 0;
    }
    case T_HEX: {
        size_t i = 0;
        while (i < n) {
            int hi = util_hexval((unsigned char)v[i]),
                lo = i + 1 < n ? util_hexval((unsigned char)v[i + 1]) : -1;
            if (hi < 0 || lo < 0) {
                util_errf(err, errlen, "%s: '%s' is not hex byte pairs (like 0a0b or 0a:0b)", what,
                          s_show(v, n, q));
                return -EINVAL;
            }
            if (s_put_u8(o, (unsigned)(hi << 4 | lo)) < 0)
                goto too_long;
            i += 2;
            if (i < n && v[i] == ':') {
                i++;
                if (i == n) {
                    util_errf(err, errlen, "%s: '%s' ends with ':'", what, s_show(v, n, q));
                    return -EINVAL;
                }
            }
        }
        return 0;
    }
    case T_U8:
    case T_U16:
    case T_U32: {
        int bytes = t == T_U8 ? 1 : t == T_U16 ? 2 : 4;
        uint64_t max = t == T_U8 ? 0xff : t == T_U16 ? 0xffff : 0xffffffffu, x;
        if (s_decimal(v, n, max, &x) < 0) {
            util_errf(err, errlen, "%s: '%s' is not a decimal number from 0 to %llu", what,
                      s_show(v, n, q), (unsigned long long)max);
            return -EINVAL;
        }
        for (int b = bytes - 1; b >= 0; b--)
            if (s_put_u8(o, (unsigned)(x >> (8 * b)) & 0xff) < 0)
                goto too_long;
        return 0;
    }
    case T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (size_t i = 0; i < 4; i++) {
            int is_yes = strlen(yes[i]) == n && memcmp(yes[i], v, n) == 0;
            int is_no = strlen(no[i]) == n && memcmp(no[i], v, n) == 0;
            if (is_yes || is_no) {
                if (s_put_u8(o, is_yes ? 1 : 0) < 0)
                    goto too_long;
                return 0;
            }
        }
        util_errf(err, errlen, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)", what,
                  s_show(v, n, q));
        return -EINVAL;
    }
    case T_NONE:
    case T_SUB:
        break;
    }
    util_errf(err, errlen, "%s: internal error (type)", what);
    return -EINVAL;
too_long:
    util_errf(err, errlen, "%s: value longer than %d bytes", what, DHCPOPT_VALUE_MAX);
    return -EINVAL;
}

/* Splits "TYPE:VALUE" when the part before the first ':' names a type. */
static enum otype s_split_type(const char *v, size_t n, const char **rest, size_t *rest_n)
{
    const char *colon = memchr(v, ':', n);
    if (colon != NULL)
        for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++)
            if (strlen(s_types[i].name) == (size_t)(colon - v) &&
                memcmp(s_types[i].name, v, (size_t)(colon - v)) == 0) {
                *rest = colon + 1;
                *rest_n = n - (size_t)(colon - v) - 1;
                return s_types[i].t;
            }
    *rest = v;
    *rest_n = n;
    return T_NONE;
}

/* "1=text:abc;2=ip:198.18.0.1" (and "enterprise=N;" groups for 125). */
static int s_sub(unsigned code, const char *v, size_t n, struct out *o, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4], what[64];
    size_t i = 0;
    size_t group_len_at = 0; /* 125: where the current group's length byte is */
    int in_group = 0;
    uint8_t seen[256] = {0};
    if (n == 0) {
        util_errf(err, errlen, "option %u: empty sub-option list", code);
        return -EINVAL;
    }
    while (i <= n) {
        const char *semi = memchr(v + i, ';', n - i);
        size_t k = semi ? (size_t)(semi - (v + i)) : n - i;
        const char *item = v + i;
        i += k + 1;
        const char *eq = memchr(item, '=', k);
        if (k == 0 || eq == NULL) {
            util_errf(err, errlen, "option %u: sub-option '%s' is not CODE=TYPE:VALUE", code,
                      s_show(item, k, q));
            return -EINVAL;
        }
        size_t kn = (size_t)(eq - item);
        const char *val = eq + 1;
        size_t vn = k - kn - 1;
        if (kn == 10 && memcmp(item, "enterprise", 10) == 0) {
            uint64_t ent;
            if (code != 125) {
                util_errf(err, errlen, "option %u: enterprise= is only for option 125", code);
                return -EINVAL;
            }
            if (s_decimal(val, vn, 0xffffffffu, &ent) < 0) {
                util_errf(err, errlen, "option 125: enterprise '%s' is not a number",
                          s_show(val, vn, q));
                return -EINVAL;
            }
            uint8_t b[5] = {(uint8_t)(ent >> 24), (uint8_t)(ent >> 16), (uint8_t)(ent >> 8),
                            (uint8_t)ent, 0};
            if (s_put(o, b, 5) < 0)
                goto too_long;
            group_len_at = o->len - 1;
            in_group = 1;
            memset(seen, 0, sizeof seen);
            continue;
        }
        if (code == 125 && !in_group) {
            util_errf(err, errlen, "option 125: sub-options must follow enterprise=N;");
            return -EINVAL;
        }
        uint64_t sc;
        if (s_decimal(item, kn, 254, &sc) < 0 || sc == 0) {
            util_errf(err, errlen, "option %u: sub-option code '%s' is not a number from 1 to 254",
                      code, s_show(item, kn, q));
            return -EINVAL;
        }
        snprintf(what, sizeof what, "option %u sub-option %u", code, (unsigned)sc);
        if (seen[sc]++) {
            util_errf(err, errlen, "%s given twice", what);
            return -EINVAL;
        }
        const char *sv;
        size_t svn;
        enum otype t = s_split_type(val, vn, &sv, &svn);
        if (t == T_NONE || t == T_SUB) {
            util_errf(err, errlen, "%s needs a TYPE (text, ip, hex, u8, u16, u32, bool)", what);
            return -EINVAL;
        }
        if (svn == 7 && memcmp(sv, "@server", 7) == 0) {
            util_errf(err, errlen, "%s: @server is only allowed as a whole ip or text option",
                      what);
            return -EINVAL;
        }
        size_t len_at = o->len;
        if (s_put_u8(o, (unsigned)sc) < 0 || s_put_u8(o, 0) < 0)
            goto too_long;
        int rc = s_value(t, sv, svn, o, what, err, errlen);
        if (rc < 0)
            return rc;
        size_t sublen = o->len - len_at - 2;
        if (sublen > 255)
            goto too_long;
        o->buf[len_at + 1] = (uint8_t)sublen;
        if (in_group) {
            size_t glen = o->len - group_len_at - 1;
            if (glen > 255)
                goto too_long;
            o->buf[group_len_at] = (uint8_t)glen;
        }
    }
    return 0;
too_long:
    util_errf(err, errlen, "option %u: value longer than %d bytes", code, DHCPOPT_VALUE_MAX);
    return -EINVAL;
}

int dhcpopt_parse(const char *spec, struct dhcpopt *out, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4], q2[SHOW_MAX + 4], what[32];
    memset(out, 0, sizeof *out);
    size_t n = spec ? strlen(spec) : 0;
    const char *eq = spec ? strchr(spec, '=') : NULL;
    if (n == 0 || n > DHCPOPT_SPEC_MAX || !s_printable(spec, n) || eq == NULL) {
        util_errf(err, errlen, "invalid option '%s' (CODE=VALUE or CODE=TYPE:VALUE, printable)",
                  s_show(spec ? spec : "", n, q));
        return -EINVAL;
    }
    uint64_t code;
    if (s_decimal(spec, (size_t)(eq - spec), 255, &code) < 0) {
        util_errf(err, errlen, "invalid option '%s': code '%s' is not a number from 1 to 254",
                  s_show(spec, n, q), s_show(spec, (size_t)(eq - spec), q2));
        return -EINVAL;
    }
    const char *why = s_reserved((unsigned)code);
    if (why != NULL) {
        util_errf(err, errlen, "option %u %s", (unsigned)code, why);
        return -EINVAL;
    }
    snprintf(what, sizeof what, "option %u", (unsigned)code);
    const char *v;
    size_t vn;
    enum otype t = s_split_type(eq + 1, n - (size_t)(eq + 1 - spec), &v, &vn);
    int explicit_type = t != T_NONE;
    if (t == T_NONE)
        t = s_default_type((unsigned)code);
    if (t == T_NONE) {
        util_errf(err, errlen,
                  "option %u needs a TYPE: %u=TYPE:VALUE (text, ip, hex, u8, u16, u32, bool)",
                  (unsigned)code, (unsigned)code);
        return -EINVAL;
    }
    out->code = (uint8_t)code;
    if (vn == 7 && memcmp(v, "@server", 7) == 0) {
        if (t != T_IP && t != T_TEXT) {
            util_errf(err, errlen, "%s: @server is only for ip and text values", what);
            return -EINVAL;
        }
        out->fill = t == T_IP ? DHCPOPT_FILL_SERVER_IP : DHCPOPT_FILL_SERVER_IP_TEXT;
        if (code == 1 || code == 51 || code == 58 || code == 59) {
            util_errf(err, errlen, "%s: @server makes no sense here", what);
            return -EINVAL;
        }
        return 0;
    }
    struct out o = {out->value, 0, DHCPOPT_VALUE_MAX};
    int rc;
    if (t == T_SUB) {
        if (code != 43 && code != 125) {
            util_errf(err, errlen, "%s: sub: is for options 43 and 125 (use hex: for others)",
                      what);
            return -EINVAL;
        }
        rc = s_sub((unsigned)code, v, vn, &o, err, errlen);
    } else {
        if (vn == 0 && !(explicit_type && t == T_HEX)) {
            util_errf(err, errlen, "%s: empty value (write hex: for an empty option)", what);
            return -EINVAL;
        }
        rc = s_value(t, v, vn, &o, what, err, errlen);
    }
    if (rc < 0)
        return rc;
    if ((code == 1 || code == 51 || code == 58 || code == 59) && o.len != 4) {
        util_errf(err, errlen, "%s: must be exactly 4 bytes (%zu given)", what, o.len);
        return -EINVAL;
    }
    if (code == 125 && o.len < 5) {
        util_errf(err, errlen, "option 125: needs enterprise=N and sub-options");
        return -EINVAL;
    }
    out->len = (uint8_t)o.len;
    return 0;
}

/* ---- match rules ---- */

static const struct {
    const char *name;
    enum dhcpopt_rule_kind kind;
} s_kinds[] = {
    {"vendor", DHCPOPT_RULE_VENDOR_EXACT},
    {"vendor-prefix", DHCPOPT_RULE_VENDOR_PREFIX},
    {"vendor-substring", DHCPOPT_RULE_VENDOR_SUBSTRING},
    {"vendor-suffix", DHCPOPT_RULE_VENDOR_SUFFIX},
    {"user-class", DHCPOPT_RULE_USER_CLASS},
    {"oui", DHCPOPT_RULE_MAC_OUI},
    {"enterprise", DHCPOPT_RULE_ENTERPRISE},
};

const char *dhcpopt_rule_kind_name(int kind)
{
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if ((int)s_kinds[i].kind == kind)
            return s_kinds[i].name;
    return "?";
}

const char *dhcpopt_fill_name(int fill)
{
    switch (fill) {
    case DHCPOPT_FILL_RAW:
        return "raw";
    case DHCPOPT_FILL_SERVER_IP:
        return "server-ip";
    case DHCPOPT_FILL_SERVER_IP_TEXT:
        return "server-ip-text";
    default:
        return "?";
    }
}

/* Unescapes \0, \xNN, \\ into out. */
static int s_unescape(const char *v, size_t n, struct dhcpopt_rule *out, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\\') {
            if (i + 1 < n && v[i + 1] == '0') {
                c = 0;
                i += 1;
            } else if (i + 1 < n && v[i + 1] == '\\') {
                c = '\\';
                i += 1;
            } else if (i + 3 < n && v[i + 1] == 'x' && util_hexval((unsigned char)v[i + 2]) >= 0 &&
                       util_hexval((unsigned char)v[i + 3]) >= 0) {
                c = (unsigned char)(util_hexval((unsigned char)v[i + 2]) << 4 |
                                    util_hexval((unsigned char)v[i + 3]));
                i += 3;
            } else {
                util_errf(err, errlen, "match rule: bad escape in '%s' (use \\0, \\xNN or \\\\)",
                          s_show(v + i, n - i, q));
                return -EINVAL;
            }
        }
        if (o == DHCPOPT_VALUE_MAX) {
            util_errf(err, errlen, "match rule: value longer than %d bytes", DHCPOPT_VALUE_MAX);
            return -EINVAL;
        }
        out->value[o++] = c;
    }
    out->len = (uint8_t)o;
    return 0;
}

int dhcpopt_rule_parse(const char *spec, struct dhcpopt_rule *out, char *err, size_t errlen)
{
    char q[SHOW_MAX + 4];
    memset(out, 0, sizeof *out);
    size_t n = spec ? strlen(spec) : 0;
    const char *colon = spec ? strchr(spec, ':') : NULL;
    int kind = -1;
    for (size_t i = 0; colon && i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strlen(s_kinds[i].name) == (size_t)(colon - spec) &&
            memcmp(s_kinds[i].name, spec, (size_t)(colon - spec)) == 0)
            kind = (int)s_kinds[i].kind;
    if (n == 0 || n > DHCPOPT_SPEC_MAX || kind < 0) {
        util_errf(err, errlen,
                  "invalid match rule '%s' (KIND:VALUE, KIND one of vendor, vendor-prefix, "
                  "vendor-substring, vendor-suffix, user-class, oui, enterprise)",
                  s_show(spec ? spec : "", n, q));
        return -EINVAL;
    }
    const char *v = colon + 1;
    size_t vn = n - (size_t)(v - spec);
    if (!s_printable(v, vn)) {
        util_errf(err, errlen, "match rule '%s': value must be printable ASCII (use \\xNN)",
                  s_show(spec, n, q));
        return -EINVAL;
    }
    out->kind = (uint8_t)kind;
    if (kind == DHCPOPT_RULE_MAC_OUI) {
        /* 00:04:f2, 00-04-f2 or 0004f2 */
        size_t i = 0;
        int ok = 1;
        for (int b = 0; ok && b < 3; b++) {
            int hi = i < vn ? util_hexval((unsigned char)v[i]) : -1,
                lo = i + 1 < vn ? util_hexval((unsigned char)v[i + 1]) : -1;
            ok = hi >= 0 && lo >= 0;
            if (ok)
                out->value[b] = (uint8_t)(hi << 4 | lo);
            i += 2;
            if (ok && b < 2 && vn == 8) {
                ok = v[i] == ':' || v[i] == '-';
                i++;
            }
        }
        if (!ok || i != vn || (vn == 8 && v[2] != v[5])) {
            util_errf(err, errlen, "match rule '%s': not three hex bytes like 00:04:f2",
                      s_show(spec, n, q));
            return -EINVAL;
        }
        out->len = 3;
        return 0;
    }
    if (kind == DHCPOPT_RULE_ENTERPRISE) {
        uint64_t e;
        if (s_decimal(v, vn, 0xffffffffu, &e) < 0 || e == 0) {
            util_errf(err, errlen, "match rule '%s': not an enterprise number from 1 to 4294967295",
                      s_show(spec, n, q));
            return -EINVAL;
        }
        out->enterprise = (uint32_t)e;
        return 0;
    }
    if (vn == 0) {
        util_errf(err, errlen, "match rule '%s': empty value", s_show(spec, n, q));
        return -EINVAL;
    }
    int rc = s_unescape(v, vn, out, err, errlen);
    if (rc < 0)
        return rc;
    if (kind != DHCPOPT_RULE_USER_CLASS)
        out->ignore_trailing_nul = out->value[out->len - 1] != 0;
    return 0;
}

/* ---- packed lists ---- */

size_t dhcpopt_pack(const struct dhcpopt *o, uint8_t *out)
{
    out[0] = o->code;
    out[1] = o->fill;
    out[2] = o->len;
    memcpy(out + 3, o->value, o->len);
    return 3u + o->len;
}

int dhcpopt_unpack(const uint8_t *buf, size_t len, size_t *off, struct dhcpopt *out)
{
    size_t i = *off;
    if (i == len)
        return 0;
    if (i > len || len - i < 3 || len - i - 3 < buf[i + 2] || buf[i + 1] > 2)
        return -EINVAL;
    out->code = buf[i];
    out->fill = buf[i + 1];
    out->len = buf[i + 2];
    memcpy(out->value, buf + i + 3, out->len);
    *off = i + 3 + out->len;
    return 1;
}

size_t dhcpopt_rule_pack(const struct dhcpopt_rule *r, uint8_t *out)
{
    out[0] = r->kind;
    out[1] = r->ignore_trailing_nul ? 1 : 0;
    out[2] = (uint8_t)(r->enterprise >> 24);
    out[3] = (uint8_t)(r->enterprise >> 16);
    out[4] = (uint8_t)(r->enterprise >> 8);
    out[5] = (uint8_t)r->enterprise;
    out[6] = r->len;
    memcpy(out + 7, r->value, r->len);
    return 7u + r->len;
}

int dhcpopt_rule_unpack(const uint8_t *buf, size_t len, size_t *off, struct dhcpopt_rule *out)
{
    size_t i = *off;
    if (i == len)
        return 0;
    if (i > len || len - i < 7 || len - i - 7 < buf[i + 6] || buf[i] > DHCPOPT_RULE_ENTERPRISE ||
        buf[i + 1] > 1)
        return -EINVAL;
    out->kind = buf[i];
    out->ignore_trailing_nul = buf[i + 1];
    out->enterprise = (uint32_t)buf[i + 2] << 24 | (uint32_t)buf[i + 3] << 16 |
                      (uint32_t)buf[i + 4] << 8 | buf[i + 5];
    out->len = buf[i + 6];
    memcpy(out->value, buf + i + 7, out->len);
    *off = i + 7 + out->len;
    return 1;
}
