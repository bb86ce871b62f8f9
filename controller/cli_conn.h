/* cli_conn.h: the CLI's connection to the controller's admin endpoint: one
 * ZeroMQ REQ socket, one request at a time, every wait bounded by a timeout
 * so an absent controller gives "controller not reachable at ENDPOINT"
 * instead of a hang. ipc endpoints are probed with a plain connect(2) first,
 * so a missing or stale socket fails at once.
 */
#ifndef FF_CLI_CONN_H
#define FF_CLI_CONN_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#include "firmfleet.pb-c.h"

typedef struct cli_conn cli_conn_t;

#define CLI_DEFAULT_ENDPOINT "ipc:///var/lib/firmfleet/admin.sock"
#define CLI_DEFAULT_TIMEOUT_MS 30000

/* Connects (lazily, as ZeroMQ does) to endpoint. 0 or <0 with err. A
 * tcp:// endpoint is refused here (-EINVAL): it needs CURVE keys. */
int cli_conn_open(const char *endpoint, int timeout_ms, cli_conn_t **out, char *err, size_t errlen);

/* The operator's CURVE key pair and the controller's public key, Z85. */
struct cli_curve {
    char public_key[41], secret_key[41], server_key[41];
};
/* The same as a CURVE client (curve may be NULL: as cli_conn_open). A
 * handshake the controller refuses fails the call at once with -EACCES and
 * a one-line reason. */
int cli_conn_open_curve(const char *endpoint, int timeout_ms, const struct cli_curve *curve,
                        cli_conn_t **out, char *err, size_t errlen);
void cli_conn_destroy(cli_conn_t **c_p);

/* One round trip. On status 0 the response document is parsed into *out
 * (caller owns). A non-zero status gives that status and the controller's
 * one-line error in err; transport failures give -ETIMEDOUT/-EIO etc. */
int cli_conn_call(cli_conn_t *c, const Firmfleet__AdminRequest *req, json_t **out, char *err,
                  size_t errlen);

/* 1 when the connection can no longer be used (a transport failure or a
 * timeout happened): open a new one to try again. */
int cli_conn_broken(const cli_conn_t *c);

/* While *flag (borrowed, may be NULL) is non-zero, a call waiting for its
 * answer gives up with -EINTR when a signal interrupts the wait, and the
 * connection is broken. For commands that a signal ends (rollout watch). */
void cli_conn_set_interrupt(cli_conn_t *c, volatile sig_atomic_t *flag);

/* The endpoint string in use (borrowed). */
const char *cli_conn_endpoint(const cli_conn_t *c);

#endif
