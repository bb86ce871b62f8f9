/* dhcp_pkt.h: BOOTP/DHCP messages (RFC 2131, 2132, 3396) as bytes. Parses a
 * received datagram into a view that points into it, and builds a reply into
 * a caller's buffer. Pure: no sockets, no clock, no allocation, no globals.
 *
 * Invariants of a parsed message (dhcp_parse returned 0):
 *   - the fixed header (236 bytes) and the magic cookie were present;
 *   - hlen <= 16; every option's length was checked against the bytes of the
 *     field it sits in (options, then `file`, then `sname` when option 52
 *     says so); an option running past its field rejects the whole message;
 *   - an option that appears several times is one value, the instances
 *     concatenated in order (RFC 3396) into dhcp_msg.cat;
 *   - option values point into the datagram or into dhcp_msg.cat, so they
 *     are valid while both live and the message is not re-parsed.
 * A built message never exceeds the limit given to dhcp_out_init(); an option
 * that does not fit is refused (-EMSGSIZE) and leaves the message unchanged.
 */
#ifndef FF_DHCP_PKT_H
#define FF_DHCP_PKT_H

#include <stddef.h>
#include <stdint.h>

#define DHCP_HDR_LEN 236   /* op .. file */
#define DHCP_FIXED_LEN 240 /* header + magic cookie */
#define DHCP_MIN_LEN 300   /* BOOTP minimum; replies are padded to it */
#define DHCP_MIN_MAX_SIZE 576
#define DHCP_PKT_MAX 4096 /* largest datagram accepted */
#define DHCP_UDP_IP_HDR 28

#define DHCP_BOOTREQUEST 1
#define DHCP_BOOTREPLY 2
#define DHCP_FLAG_BROADCAST 0x8000

enum dhcp_msg_type {
    DHCPDISCOVER = 1,
    DHCPOFFER = 2,
    DHCPREQUEST = 3,
    DHCPDECLINE = 4,
    DHCPACK = 5,
    DHCPNAK = 6,
    DHCPRELEASE = 7,
    DHCPINFORM = 8,
};

enum dhcp_opt_code {
    DHO_PAD = 0,
    DHO_SUBNET_MASK = 1,
    DHO_ROUTER = 3,
    DHO_DNS = 6,
    DHO_HOSTNAME = 12,
    DHO_VENDOR_OPTS = 43,
    DHO_REQUESTED_IP = 50,
    DHO_LEASE_TIME = 51,
    DHO_OVERLOAD = 52,
    DHO_MSG_TYPE = 53,
    DHO_SERVER_ID = 54,
    DHO_PARAM_REQ = 55,
    DHO_MESSAGE = 56,
    DHO_MAX_SIZE = 57,
    DHO_T1 = 58,
    DHO_T2 = 59,
    DHO_VENDOR_CLASS = 60,
    DHO_CLIENT_ID = 61,
    DHO_TFTP_SERVER = 66,
    DHO_BOOTFILE = 67,
    DHO_USER_CLASS = 77,
    DHO_RELAY_INFO = 82,
    DHO_VIVC = 124,
    DHO_VIVSO = 125,
    DHO_END = 255,
};

/* One option value; p == NULL: absent (a present option may have len 0). */
struct dhcp_opt {
    const uint8_t *p;
    uint16_t len;
};

/* A parsed message. Large (about 8 KB): keep one per server, not on a hot
 * stack. Only the fields below `present` are reset by dhcp_parse. */
struct dhcp_msg {
    const uint8_t *raw;
    size_t raw_len;
    uint8_t op, htype, hlen, hops;
    uint32_t xid;    /* as on the wire; copied back unchanged */
    uint16_t secs;   /* host order */
    uint16_t flags;  /* host order */
    uint32_t ciaddr; /* the four addresses in network byte order */
    uint32_t yiaddr;
    uint32_t siaddr;
    uint32_t giaddr;
    const uint8_t *chaddr; /* 16 bytes inside raw */
    uint8_t type;          /* option 53; 0 when absent (plain BOOTP) */
    uint8_t overload;      /* option 52: 1 file, 2 sname, 3 both */
    uint8_t present[32];   /* bitmap of option codes seen */
    struct dhcp_opt opt[256];
    size_t cat_len;
    int cat_code; /* the option whose value ends cat, or -1 */
    uint8_t cat[DHCP_PKT_MAX];
};

/* Parses len bytes at buf (borrowed; must outlive m's use). 0, or
 * -EBADMSG (too short, bad cookie, hlen > 16, an option past its field,
 * option 53 not 1 byte, option 52 not 1 byte or out of range),
 * -EMSGSIZE (len > DHCP_PKT_MAX). m is undefined after an error. */
int dhcp_parse(const uint8_t *buf, size_t len, struct dhcp_msg *m);

/* The option `code` of m, or an absent one. */
static inline struct dhcp_opt dhcp_get(const struct dhcp_msg *m, uint8_t code)
{
    struct dhcp_opt none = {NULL, 0};
    return (m->present[code >> 3] & (1u << (code & 7))) ? m->opt[code] : none;
}
/* 1 and *out (network byte order) when option `code` is exactly 4 bytes. */
int dhcp_get_ip(const struct dhcp_msg *m, uint8_t code, uint32_t *out);
/* The DHCP message size the client accepts (option 57, at least 576), the
 * IP and UDP headers included. */
size_t dhcp_max_size(const struct dhcp_msg *m);
/* 1 when code is listed in the client's parameter request list (55). */
int dhcp_requested(const struct dhcp_msg *m, uint8_t code);

/* ---- building ---- */

struct dhcp_out {
    uint8_t *buf;
    size_t limit;   /* the message never grows beyond this */
    size_t len;     /* bytes written so far (header + cookie + options) */
    size_t reserve; /* bytes kept free for what the caller adds last */
};

/* Starts a BOOTREPLY in buf (cap bytes) answering req: op 2, htype, hlen,
 * xid, flags, giaddr and chaddr copied, the other addresses 0, the cookie
 * written. limit = min(cap, what the client accepts); at least DHCP_MIN_LEN
 * must fit in cap (asserted: a caller bug, not network input). */
void dhcp_out_init(struct dhcp_out *o, uint8_t *buf, size_t cap, size_t limit,
                   const struct dhcp_msg *req);
/* Writes a header field (network byte order for addresses). */
void dhcp_out_set_yiaddr(struct dhcp_out *o, uint32_t ip_be);
void dhcp_out_set_ciaddr(struct dhcp_out *o, uint32_t ip_be);
void dhcp_out_set_siaddr(struct dhcp_out *o, uint32_t ip_be);
void dhcp_out_set_flags(struct dhcp_out *o, uint16_t flags);
/* Appends option code with len bytes (split into 255-byte instances when
 * longer, RFC 3396). 0, or -EMSGSIZE when it would not leave room for the
 * reserve and the END byte (nothing written then), -EINVAL for code 0/255. */
int dhcp_out_opt(struct dhcp_out *o, uint8_t code, const void *val, size_t len);
int dhcp_out_opt_u8(struct dhcp_out *o, uint8_t code, uint8_t v);
int dhcp_out_opt_u32(struct dhcp_out *o, uint8_t code, uint32_t v_host);
/* Bytes an option of len value bytes takes (with its code/len headers). */
size_t dhcp_opt_space(size_t len);
/* Writes END, pads with zeros to DHCP_MIN_LEN, returns the message length. */
size_t dhcp_out_finish(struct dhcp_out *o);

/* ---- helpers ---- */

/* Writes bytes as a logfmt value: quoted, printable ASCII kept, `"` and `\`
 * escaped, anything else as \xNN (so a trailing NUL shows as \x00). Always
 * NUL-terminates out; truncates on a byte boundary. Returns out. */
const char *dhcp_quote(const uint8_t *p, size_t n, char *out, size_t outlen);
/* Dotted form of a network-order IPv4 address into out (>= 16 bytes). */
const char *dhcp_ip_str(uint32_t ip_be, char out[16]);

/* IPv4 + UDP headers for a datagram whose UDP payload (len bytes) sits at
 * hdr + 28: fills hdr[0..27] with checksums computed. Addresses in network
 * order, ports in host order. */
void dhcp_ip_udp_header(uint8_t hdr[28], uint32_t src_be, uint32_t dst_be, uint16_t sport,
                        uint16_t dport, size_t len);

#endif
