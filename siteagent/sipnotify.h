/* sipnotify.h: SIP NOTIFY over UDP from the agent's loop, to make a device
 * fetch its configuration (and reboot) now: `check-sync`, `check-sync;
 * reboot=true`, Cisco's `service-control` with a text/plain body
 * (reference/devices-and-protocols.md section 4).
 *
 * One request is one non-INVITE client transaction (RFC 3261 17.1.2): sent,
 * retransmitted on Timer E (500 ms doubling, capped at 4 s) until a final
 * response or Timer F (32 s). A response belongs to a request when its
 * Call-ID, CSeq (number and method) and top Via branch all match; anything
 * else that arrives (garbage, strays, someone else's responses) is counted
 * and dropped. At most SIPN_MAX_PENDING requests are in flight.
 *
 * Invariants: one uv_udp_t bound to an ephemeral port on 0.0.0.0, one
 * uv_timer_t that runs only while something is pending; the done callback
 * runs exactly once per accepted request, on the loop thread, except for
 * requests still pending at sipn_destroy (dropped silently).
 */
#ifndef FF_SIPNOTIFY_H
#define FF_SIPNOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SIPN_MAX_PENDING 256
#define SIPN_T1_MS 500
#define SIPN_T2_MS 4000
#define SIPN_TIMER_F_MS 32000
#define SIPN_MSG_MAX 2048

typedef struct sipn sipn_t;

/* A request's outcome: ok = 1 for a 2xx; status is the final status code
 * (0 on timeout or a send error); reason is one line ("timeout", "status
 * 481 Call/Transaction Does Not Exist"). */
typedef void (*sipn_done_fn)(void *arg, const uint8_t mac[6], int ok, int status,
                             const char *reason);

struct sipn_req {
    uint32_t ip_be;           /* the device, network order */
    uint16_t port;            /* its SIP port (5060) */
    const uint8_t *mac;       /* the device (6 bytes, for the callback); required */
    int user_mac;             /* 1: Request-URI user is the MAC (12 hex); 0: "anonymous" */
    const char *event;        /* Event header value; required, one line */
    const char *content_type; /* NULL or "" = no body */
    const char *body;         /* NULL or "" = none */
};

/* Binds the socket. 0 or <0 (nothing to close then). */
int sipn_new(uv_loop_t *loop, sipn_done_fn done, void *arg, sipn_t **out);
/* Begins the orderly close (uv_close; freed in the close callbacks). Nulls
 * *s_p; idempotent. Pending requests are dropped without a callback. */
void sipn_destroy(sipn_t **s_p);
/* Sends a NOTIFY. 0 accepted (done will be called), -ENOSPC too many
 * pending, -EINVAL bad request (header value with CR/LF, missing event),
 * other <0 (the callback is not called when this returns <0). */
int sipn_send(sipn_t *s, const struct sipn_req *r);
/* Counters, for tests and logs. */
struct sipn_stats {
    uint64_t sent, retransmits, ok, failed, timeouts, garbage, strays;
};
void sipn_stats(const sipn_t *s, struct sipn_stats *out);
size_t sipn_pending(const sipn_t *s);

/* ---- pure parts, for the unit tests ---- */

/* The fields of one NOTIFY. */
struct sipn_msg {
    const char *local_ip; /* our address as the device sees it */
    uint16_t local_port;
    const char *ip; /* the device's address, dotted */
    uint16_t port;
    const char *user;   /* Request-URI / To user */
    const char *branch; /* full branch, starting with z9hG4bK */
    const char *tag;    /* From tag */
    const char *call_id;
    uint32_t cseq;
    const char *event;
    const char *content_type; /* "" or NULL = none */
    const char *body;         /* "" or NULL = none */
};
/* Writes the request into out (NUL-terminated). Its length, or -EINVAL (a
 * header value holds CR/LF/NUL, or a required field is missing), or
 * -ENOSPC when it does not fit into n. Content-Length is the body's exact
 * byte count. */
int sipn_build(const struct sipn_msg *m, char *out, size_t n);

/* What a response says about the transaction it answers. */
struct sipn_resp {
    int status;      /* 100..699 */
    char reason[64]; /* reason phrase (cut short) */
    char call_id[128];
    uint32_t cseq;
    char method[16]; /* CSeq method */
    char branch[64]; /* top Via's branch parameter */
};
/* Parses one datagram as a SIP response. 0, or -EINVAL when it is not one
 * (not "SIP/2.0 NNN", status out of range, missing or oversized Call-ID,
 * CSeq or Via branch, a header line without a colon). Never reads past len. */
int sipn_parse_response(const char *buf, size_t len, struct sipn_resp *out);

#endif
