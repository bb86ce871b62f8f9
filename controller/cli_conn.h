/* cli_conn.h: the CLI's connection to the controller's admin endpoint: one
 * ZeroMQ REQ socket, one request at a time, every wait bounded by a timeout
 * so an absent controller gives "controller not reachable at ENDPOINT"
 * instead of a hang. ipc endpoints are probed with a plain connect(2) first,
 * so a missing or stale socket fails at once.
 */
#ifndef FF_CLI_CONN_H
#define FF_CLI_CONN_H

#include <jansson.h>
#include <stddef.h>

#include "firmfleet.pb-c.h"

typedef struct cli_conn cli_conn_t;

#define CLI_DEFAULT_ENDPOINT "ipc:///var/lib/firmfleet/admin.sock"
#define CLI_DEFAULT_TIMEOUT_MS 30000

/* Connects (lazily, as ZeroMQ does) to endpoint. 0 or <0 with err. */
int cli_conn_open(const char *endpoint, int timeout_ms, cli_conn_t **out, char *err, size_t errlen);
void cli_conn_destroy(cli_conn_t **c_p);

/* One round trip. On status 0 the response document is parsed into *out
 * (caller owns). A non-zero status gives that status and the controller's
 * one-line error in err; transport failures give -ETIMEDOUT/-EIO etc. */
int cli_conn_call(cli_conn_t *c, const Firmfleet__AdminRequest *req, json_t **out, char *err,
                  size_t errlen);

/* The endpoint string in use (borrowed). */
const char *cli_conn_endpoint(const cli_conn_t *c);

#endif
