/* sim_tftp.h: the TFTP client of a simulated device: one read request
 * (RFC 1350, octet mode, RFC 2348 blksize with RFC 2347 OACK), lock-step
 * ACKs, retransmission with exponential backoff, and a way to send the
 * server a few malformed requests. Runs on the caller's libuv loop.
 *
 * Invariants: packets are accepted only from the server's address, and after
 * the first answer only from the port (TID) it came from; a stray TID gets
 * ERROR 5 and the transfer goes on. Every wait is bounded: the first
 * retransmission after rto_ms, doubled up to 8 s, at most `retries` times.
 */
#ifndef FF_SIM_TFTP_H
#define FF_SIM_TFTP_H

#include <stdint.h>
#include <uv.h>

#include "sim_xfer.h"

struct sim_tftp_opts {
    uint32_t local_be;  /* address to send from (the device's lease) */
    uint32_t server_be; /* the server */
    uint16_t port;      /* its request port, 69 */
    const char *name;   /* file name; copied */
    unsigned blksize;   /* asked for with the blksize option; 512 or 0: no option */
    unsigned rto_ms;    /* first retransmission timeout */
    unsigned retries;   /* retransmissions of one packet before giving up */
};

typedef struct sim_tftp sim_tftp_t;

/* Starts a read. On 0, *out is the transfer: `data` gets the payload in
 * order, `done` is called exactly once (the transfer then frees itself and
 * the caller must forget *out). On error nothing is started and no callback
 * is called. */
int sim_tftp_start(uv_loop_t *loop, const struct sim_tftp_opts *o, sim_xfer_data_fn data,
                   sim_xfer_done_fn done, void *arg, sim_tftp_t **out);
/* Stops a transfer without calling `done` (shutdown); nulls *t. Idempotent. */
void sim_tftp_cancel(sim_tftp_t **t);

/* Sends `n` malformed requests (a name without its NUL, a bad opcode, an
 * empty datagram, a WRQ, an absurd blksize, ...) from local_be to the
 * server's request port, picked by `seed`, on a throwaway socket; the
 * answers are not read. Returns how many were sent. Blocking-free: UDP sends
 * that would block are dropped. */
int sim_tftp_garbage(uint32_t local_be, uint32_t server_be, uint16_t port, unsigned seed,
                     unsigned n);

#endif
