/* sim_http.h: the HTTP client of a simulated device: one plain HTTP/1.1 GET
 * per connection (Connection: close), from the device's address, with the
 * family's User-Agent; the response is read with http-parser. Runs on the
 * caller's libuv loop.
 *
 * Invariants: only IPv4 literals are connected to (a simulator must never
 * resolve names or leave the lab); the connection is idle at most
 * timeout_ms; a response without a complete message is an error.
 */
#ifndef FF_SIM_HTTP_H
#define FF_SIM_HTTP_H

#include <stdint.h>
#include <uv.h>

#include "sim_xfer.h"

struct sim_http_opts {
    uint32_t local_be;      /* address to connect from (the device's lease) */
    uint32_t server_be;     /* where to connect */
    uint16_t port;          /* its port */
    const char *path;       /* request target starting with '/'; copied */
    const char *user_agent; /* copied; NULL: no header */
    unsigned timeout_ms;    /* idle limit (connect, headers, between reads) */
};

typedef struct sim_http sim_http_t;

/* Starts a GET. Same contract as sim_tftp_start(): on 0, `done` comes
 * exactly once and the request frees itself; on error, no callback. The body
 * of a 200 goes to `data`; any other status ends with its code in the
 * result. */
int sim_http_start(uv_loop_t *loop, const struct sim_http_opts *o, sim_xfer_data_fn data,
                   sim_xfer_done_fn done, void *arg, sim_http_t **out);
/* Stops a request without calling `done`; nulls *h. Idempotent. */
void sim_http_cancel(sim_http_t **h);

/* Splits "http://A.B.C.D[:PORT]/path" into address, port (default 80) and
 * path (a pointer into url). 0, or -EINVAL (other schemes, host names). */
int sim_http_parse_url(const char *url, uint32_t *addr_be, uint16_t *port, const char **path);

#endif
