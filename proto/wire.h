/* wire.h: framing of the controller link and the admin channel. The only code
 * that turns protobuf messages into ZeroMQ frames and back.
 *
 * Invariants: every unpack is done under WIRE_MAX_MSG (the same bound as the
 * sockets' ZMQ_MAXMSGSIZE) and checks that a body is present; a frame that
 * fails is dropped by the caller and logged, never trusted.
 */
#ifndef FF_WIRE_H
#define FF_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "firmfleet.pb-c.h"

#define WIRE_MAX_MSG (4u << 20)        /* ZMQ_MAXMSGSIZE on every socket */
#define WIRE_CHUNK (256u << 10)        /* image chunk payload */
#define WIRE_CREDITS 16u               /* chunks in flight per image request */
#define WIRE_ADMIN_CHUNK (1u << 20)    /* admin upload chunk */
/* EventBatch: the most events a receiver takes in one; a larger batch is
 * dropped and logged like any bad frame (senders use 64, siteagent/uplink.c) */
#define WIRE_BATCH_MAX 256

typedef Firmfleet__Envelope wire_env_t;

/* Sends env on a DEALER (rid NULL) or to routing id rid on a ROUTER.
 * flags: ZMQ_DONTWAIT or 0. Returns 0 or -errno (EAGAIN when the pipe is full,
 * EHOSTUNREACH for an unknown peer on a ROUTER with ROUTER_MANDATORY). */
int wire_send(void *sock, const void *rid, size_t rid_len, const wire_env_t *env, int flags);

/* Unpacks one frame. NULL when it is larger than WIRE_MAX_MSG, does not parse,
 * has no body, or holds an EventBatch of more than WIRE_BATCH_MAX events
 * (counted on the bytes, before protobuf-c allocates one struct per event).
 * Free with wire_free(). */
wire_env_t *wire_unpack(const void *data, size_t len);
void wire_free(wire_env_t *env);

/* Packs env into a malloc'd buffer (caller frees). NULL on ENOMEM. */
uint8_t *wire_pack(const wire_env_t *env, size_t *len_out);

/* The seq rule for an EventBatch of n events numbered seq .. seq+n-1, at a
 * receiver that has applied everything up to last: 1 with *first the index
 * of event last+1 (the events before it are duplicates: a partly duplicate
 * batch applies only its new tail); 0 when all are duplicates; -ERANGE when
 * the batch starts beyond last+1 (a gap: none applies, the sender rewinds);
 * -EINVAL when seq is 0, n is 0 or above WIRE_BATCH_MAX, or seq+n-1 wraps. */
int wire_batch_first(uint64_t seq, size_t n, uint64_t last, size_t *first);

/* Names of body cases, for logs. */
const char *wire_body_name(const wire_env_t *env);

/* Admin channel. */
Firmfleet__AdminRequest *wire_admin_req_unpack(const void *data, size_t len);
Firmfleet__AdminResponse *wire_admin_resp_unpack(const void *data, size_t len);
/* Sends a packed message as one frame. 0 or -errno. */
int wire_send_admin_req(void *sock, const Firmfleet__AdminRequest *req);
int wire_send_admin_resp(void *sock, const Firmfleet__AdminResponse *resp);

#endif
