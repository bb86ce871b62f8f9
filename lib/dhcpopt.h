/* dhcpopt.h: what operators write about DHCP on the controller, turned into
 * the bytes a site agent sends: option specs, class match rules, IPv4
 * addresses and CIDRs, and the packed lists the controller store keeps them
 * in. Pure: no I/O, no allocation, no globals; every function may be called
 * from any thread.
 *
 * Option spec:  CODE=VALUE  or  CODE=TYPE:VALUE
 *   CODE   1..254, except 0, 255, 52, 53, 54, 55, 61, 82 (the server sets those)
 *   TYPE   text   printable ASCII as written (no escapes: option 67 file names
 *                 may hold backslashes)
 *          ip     comma list of IPv4 addresses (4 bytes each)
 *          hex    byte pairs, optionally separated by ':' ("0a0b", "0a:0b")
 *          u8 u16 u32   decimal, big-endian on the wire
 *          bool   true/false, yes/no, on/off, 1/0 (one byte 1/0)
 *          sub    vendor sub-options, options 43 and 125 only:
 *                 "1=text:abc;2=ip:198.18.0.1;3=hex:0a0b" (each CODE=TYPE:VALUE,
 *                 TYPE required, not sub); for 125 (RFC 3925) every group of
 *                 sub-options follows "enterprise=N;"
 *   When TYPE is left out it comes from the code (1 3 6 42 150 ip; 15 66 67
 *   160 242 text; 43 hex; 51 58 59 u32); any other code needs a TYPE. The
 *   part before the first ':' is taken as TYPE only when it names one, so
 *   "66=http://x" is text. VALUE "@server" for an ip or text option means
 *   "the agent's own address on the receiving interface" (fill SERVER_IP or
 *   SERVER_IP_TEXT; the value bytes are then empty). Every value is at most
 *   255 bytes; codes 1, 51, 58 and 59 must be exactly 4 bytes.
 *
 * Match rule: KIND:VALUE
 *   vendor, vendor-prefix, vendor-substring, vendor-suffix   option 60
 *   user-class   option 77
 *   oui          first three bytes of the MAC: "00:04:f2" (or 00-04-f2, 0004f2)
 *   enterprise   an enterprise number (RFC 3925 124/125, Polycom's binary 60)
 *   VALUE (vendor*, user-class) takes C escapes \0, \xNN and \\, and must be
 *   printable ASCII otherwise. A vendor* VALUE that ends in a NUL byte
 *   (after unescaping) matches byte for byte; any other ignores the one
 *   trailing NUL a device may send (ignore_trailing_nul).
 */
#ifndef FF_DHCPOPT_H
#define FF_DHCPOPT_H

#include <stddef.h>
#include <stdint.h>

#define DHCPOPT_VALUE_MAX 255
#define DHCPOPT_SPEC_MAX 1200 /* longest option spec or rule accepted */

/* Same numbering as DhcpOption.Fill in firmfleet.proto. */
enum dhcpopt_fill {
    DHCPOPT_FILL_RAW = 0,
    DHCPOPT_FILL_SERVER_IP = 1,
    DHCPOPT_FILL_SERVER_IP_TEXT = 2,
};

struct dhcpopt {
    uint8_t code;
    uint8_t fill; /* enum dhcpopt_fill */
    uint8_t len;  /* bytes of value used; 0 when fill != RAW */
    uint8_t value[DHCPOPT_VALUE_MAX];
};

/* Same numbering as MatchRule.Kind in firmfleet.proto. */
enum dhcpopt_rule_kind {
    DHCPOPT_RULE_VENDOR_EXACT = 0,
    DHCPOPT_RULE_VENDOR_PREFIX = 1,
    DHCPOPT_RULE_VENDOR_SUBSTRING = 2,
    DHCPOPT_RULE_VENDOR_SUFFIX = 3,
    DHCPOPT_RULE_USER_CLASS = 4,
    DHCPOPT_RULE_MAC_OUI = 5,
    DHCPOPT_RULE_ENTERPRISE = 6,
};

struct dhcpopt_rule {
    uint8_t kind;                /* enum dhcpopt_rule_kind */
    uint8_t ignore_trailing_nul; /* vendor*: 1 unless VALUE ends in NUL */
    uint8_t len;
    uint32_t enterprise; /* ENTERPRISE only */
    uint8_t value[DHCPOPT_VALUE_MAX];
};

/* Parses an option spec into out. 0, or -EINVAL with a one-line reason in
 * err (the spec is quoted printable and cut short). */
int dhcpopt_parse(const char *spec, struct dhcpopt *out, char *err, size_t errlen);

/* Parses a match rule into out. 0, or -EINVAL with a one-line reason. */
int dhcpopt_rule_parse(const char *spec, struct dhcpopt_rule *out, char *err, size_t errlen);

/* "vendor", "vendor-prefix", ..., "enterprise"; "?" for an unknown kind. */
const char *dhcpopt_rule_kind_name(int kind);
/* "raw", "server-ip", "server-ip-text"; "?" for an unknown fill. */
const char *dhcpopt_fill_name(int fill);

/* Strict dotted-quad IPv4 ("198.18.0.1": four decimal parts 0..255, no
 * leading zeros, nothing else) into host byte order. 0 or -EINVAL. */
int dhcpopt_ip_parse(const char *s, uint32_t *out);
/* Formats a host-order address as dotted quad into out (>= 16 bytes). */
void dhcpopt_ip_format(uint32_t ip, char out[16]);
/* "198.18.0.0/24" with prefix min_prefix..30 into the network (host order)
 * and prefix. -EINVAL malformed or prefix out of range, -EDOM when host
 * bits are set (*net then holds the network the operator probably meant). */
int dhcpopt_cidr_parse(const char *s, int min_prefix, uint32_t *net, int *prefix);

/* Packed lists (the store's BLOB columns). An option packs as code, fill,
 * len, value; a rule as kind, flags (bit 0: ignore_trailing_nul), enterprise
 * (4 bytes big-endian), len, value. pack writes at most DHCPOPT_PACKED_MAX
 * bytes and returns how many; unpack reads the item at *off and advances it:
 * 1 got one, 0 at the end, -EINVAL truncated or malformed. */
#define DHCPOPT_PACKED_MAX (8 + DHCPOPT_VALUE_MAX)
size_t dhcpopt_pack(const struct dhcpopt *o, uint8_t *out);
int dhcpopt_unpack(const uint8_t *buf, size_t len, size_t *off, struct dhcpopt *out);
size_t dhcpopt_rule_pack(const struct dhcpopt_rule *r, uint8_t *out);
int dhcpopt_rule_unpack(const uint8_t *buf, size_t len, size_t *off, struct dhcpopt_rule *out);

#endif
