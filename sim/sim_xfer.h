/* sim_xfer.h: what a simulated device's TFTP or HTTP fetch hands back, shared
 * by sim_tftp and sim_http: a bounded body buffer for configuration files
 * (images are counted, never kept) and the outcome of one transfer.
 *
 * Invariants: a sim_buf never holds more than its cap bytes and is always
 * NUL-terminated (configs are parsed as text); a transfer reports exactly one
 * outcome through its done callback, after which it frees itself.
 */
#ifndef FF_SIM_XFER_H
#define FF_SIM_XFER_H

#include <stddef.h>
#include <stdint.h>

struct sim_buf {
    char *p;      /* owned; NUL-terminated; NULL until the first append */
    size_t len;   /* bytes held, without the NUL */
    size_t cap;   /* the most it will hold */
    size_t alloc; /* bytes allocated at p */
};

/* Appends n bytes. 0, -EFBIG past the cap (nothing appended), -ENOMEM. */
int sim_buf_append(struct sim_buf *b, const void *p, size_t n);
/* Frees what b holds and empties it; the cap is kept. */
void sim_buf_reset(struct sim_buf *b);

/* Outcome of one fetch. status: 0 the whole file arrived; -ENOENT the server
 * has no such file (TFTP error 1, HTTP 404); -EACCES refused (TFTP error 2,
 * HTTP 403); -ECANCELED we aborted it on purpose (failure injection);
 * -ETIMEDOUT nobody answered; -EPROTO a malformed or unexpected answer;
 * -EFBIG a config larger than its buffer; other negative errno from the
 * socket layer. */
struct sim_xfer_result {
    int status;
    int code;           /* TFTP error code or HTTP status, 0 if none */
    uint64_t bytes;     /* payload bytes received */
    unsigned retries;   /* retransmissions we sent (TFTP) */
    const char *detail; /* borrowed, static text; may be NULL */
};

/* Receives payload in order as it arrives; total is the whole size when the
 * server said it (HTTP Content-Length, TFTP tsize), else 0. Returning
 * nonzero aborts the transfer (its result is then -ECANCELED). */
typedef int (*sim_xfer_data_fn)(void *arg, const uint8_t *p, size_t n, uint64_t total);
/* Called once per transfer, on the loop thread; the transfer is already
 * detached from the caller's pointer and frees itself afterwards. */
typedef void (*sim_xfer_done_fn)(void *arg, const struct sim_xfer_result *r);

#endif
