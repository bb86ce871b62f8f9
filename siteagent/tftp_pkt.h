/* tftp_pkt.h: the TFTP wire format as pure functions (no sockets, no loop):
 * request and option parsing (RFC 1350, 2347, 2348, 2349, 7440), option
 * negotiation against the server's limits, OACK/ERROR/DATA building, the
 * 16-bit acknowledgement arithmetic of a sliding window, and the netascii
 * encoder. tftpd.c is the only user; tests/unit/test_tftp_pkt.c covers it.
 *
 * Invariants: every parser checks each length against the bytes received and
 * never reads past them; nothing here allocates; a packet that parses leaves
 * pointers into the caller's buffer (valid while that buffer is).
 */
#ifndef FF_TFTP_PKT_H
#define FF_TFTP_PKT_H

#include <stddef.h>
#include <stdint.h>

#define TFTP_PORT 69

enum tftp_op {
    TFTP_RRQ = 1,
    TFTP_WRQ = 2,
    TFTP_DATA = 3,
    TFTP_ACK = 4,
    TFTP_ERROR = 5,
    TFTP_OACK = 6,
};

enum tftp_err {
    TFTP_EUNDEF = 0,    /* not defined, see message */
    TFTP_ENOTFOUND = 1, /* file not found */
    TFTP_EACCESS = 2,   /* access violation */
    TFTP_ENOSPACE = 3,  /* disk full */
    TFTP_EBADOP = 4,    /* illegal TFTP operation */
    TFTP_EBADID = 5,    /* unknown transfer ID */
    TFTP_EEXISTS = 6,   /* file already exists */
    TFTP_ENOUSER = 7,   /* no such user */
    TFTP_EOPTNEG = 8,   /* option negotiation refused (RFC 2347) */
};

enum tftp_mode { TFTP_MODE_OCTET = 0, TFTP_MODE_NETASCII = 1 };

/* The longest name a request may carry before cleaning (RFC 2347 wants a
 * whole request within 512 bytes); files_clean then enforces FILES_NAME_MAX. */
#define TFTP_NAME_MAX 500
/* The largest request accepted at all; bigger datagrams are refused unread. */
#define TFTP_REQ_MAX 1024
#define TFTP_BLKSIZE_DEFAULT 512
#define TFTP_BLKSIZE_MIN 8
#define TFTP_BLKSIZE_MAX 65464
/* What blksize may be at most when the interface MTU is unknown (Ethernet
 * 1500 - 20 IP - 8 UDP - 4 TFTP). */
#define TFTP_BLKSIZE_ETHER 1468
#define TFTP_TIMEOUT_MIN 1
#define TFTP_TIMEOUT_MAX 255
#define TFTP_WINDOW_WIRE_MAX 65535
#define TFTP_OPTS_MAX 32 /* option pairs looked at; the rest are ignored */

/* Options a request carried with a valid value (bits of tftp_req.opts) and
 * that a negotiation accepted (bits of tftp_params.oack). */
#define TFTP_OPT_BLKSIZE 0x1u
#define TFTP_OPT_TSIZE 0x2u
#define TFTP_OPT_TIMEOUT 0x4u
#define TFTP_OPT_WINDOWSIZE 0x8u

struct tftp_req {
    uint16_t op;      /* TFTP_RRQ or TFTP_WRQ */
    const char *name; /* into the packet, NUL-terminated there */
    size_t name_len;  /* 1..TFTP_NAME_MAX */
    enum tftp_mode mode;
    unsigned opts;       /* TFTP_OPT_* with a valid value */
    uint32_t blksize;    /* as asked, above 65464 lowered to 65464 */
    uint32_t timeout;    /* 1..255 */
    uint32_t windowsize; /* 1..65535 */
    uint64_t tsize;      /* as sent (0 in an RRQ) */
    unsigned n_ignored;  /* unknown, duplicate or out-of-range options dropped */
};

/* The opcode of a datagram, or 0 when it is shorter than 2 bytes. */
uint16_t tftp_opcode(const uint8_t *pkt, size_t len);

/* Parses an RRQ or WRQ: op | name NUL | mode NUL | (option NUL value NUL)*.
 * Mode is octet or netascii in any case ("mail" and the rest are refused).
 * Options are matched case-insensitively; unknown ones (Grandstream sends
 * private ones) and ones with a bad value are ignored and counted; a name
 * given twice keeps its first value; an option name without a value at the
 * very end is ignored, as is zero padding after the last pair.
 * Returns 0 with *out filled, or
 *   -EINVAL   malformed (short, not NUL-terminated, empty name, junk after the
 *             last NUL, opcode not RRQ/WRQ); *why says what, for the log
 *             and the error packet;
 *   -ENAMETOOLONG  the name is longer than TFTP_NAME_MAX;
 *   -EPROTONOSUPPORT  a mode other than octet or netascii. */
int tftp_parse_request(const uint8_t *pkt, size_t len, struct tftp_req *out, const char **why);

/* What this server allows; filled by the caller per request. */
struct tftp_limits {
    uint32_t blksize_max;  /* interface MTU - 32, at most 65464 */
    uint32_t window_max;   /* blocks per window, >= 1 */
    uint32_t window_bytes; /* window * blksize is kept at or under this (>= blksize) */
};

/* The transfer's parameters after negotiation. */
struct tftp_params {
    uint32_t blksize;    /* 8..blksize_max; 512 when not negotiated */
    uint32_t windowsize; /* 1 when not negotiated */
    uint32_t timeout;    /* seconds, 0 when the client asked for none */
    uint64_t tsize;      /* reported in the OACK when TFTP_OPT_TSIZE is set */
    unsigned oack;       /* the options to acknowledge; 0: no OACK, send DATA 1 */
};

/* Negotiates rq's options for a read of a file of `size` bytes: blksize is
 * clamped to lim->blksize_max, windowsize to lim->window_max and to
 * lim->window_bytes / blksize (at least 1), timeout is accepted as asked,
 * tsize is answered with size except in netascii (whose size on the wire is
 * not known in advance). Only accepted options go into p->oack. */
void tftp_negotiate(const struct tftp_req *rq, const struct tftp_limits *lim, uint64_t size,
                    struct tftp_params *p);

/* Builds an OACK for p->oack into buf. Returns its length, 0 when p->oack
 * is 0 or cap is too small (an OACK is at most 80 bytes). */
size_t tftp_build_oack(const struct tftp_params *p, uint8_t *buf, size_t cap);
/* Builds ERROR code with msg (truncated to fit) into buf; cap >= 5.
 * Returns the length. */
size_t tftp_build_error(uint16_t code, const char *msg, uint8_t *buf, size_t cap);
/* Writes a DATA header for the 16-bit block number into hdr[4]. */
void tftp_data_header(uint8_t hdr[4], uint16_t block);

/* An ACK: exactly op|block (longer ACKs are accepted, the rest ignored, as
 * some stacks pad to a minimum frame). 0 and *block, or -EINVAL. */
int tftp_parse_ack(const uint8_t *pkt, size_t len, uint16_t *block);
/* An ERROR: code and its message copied (printable ASCII only, others as
 * '?', NUL-terminated, truncated to msgcap). 0 or -EINVAL. A missing NUL is
 * tolerated: the message is what was received. */
int tftp_parse_error(const uint8_t *pkt, size_t len, uint16_t *code, char *msg, size_t msgcap);

/* RFC 7440 acknowledgement on a window. Blocks are numbered absolutely from
 * 1 (the wire carries the low 16 bits; 65535 rolls over to 0). base is the
 * oldest unacknowledged block, next the next one to send (base <= next,
 * next - base < 32768). Returns the absolute block the 16-bit ack
 * acknowledges, in [base, next - 1], or 0 when the ack must be ignored: a
 * repeat of the ack that opened this window (base - 1; answering it would be
 * the Sorcerer's Apprentice bug), or a block not sent yet or long gone. */
uint64_t tftp_ack_block(uint64_t base, uint64_t next, uint16_t ack);

/* The netascii encoder (RFC 764 NVT as TFTP uses it): LF becomes CR LF, CR
 * becomes CR NUL, everything else is copied. Streaming: *pending holds the
 * second byte of a pair cut at the end of out (-1 when none; start with -1).
 * Consumes from in as far as out has room, sets *used to what it consumed
 * and returns the bytes written. With inlen 0 it only flushes *pending. */
size_t tftp_netascii_encode(int *pending, const uint8_t *in, size_t inlen, size_t *used,
                            uint8_t *out, size_t outcap);

#endif
