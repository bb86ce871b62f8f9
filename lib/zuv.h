/* zuv.h: a ZeroMQ socket riding a libuv loop.
 *
 * ZMQ_FD is edge-triggered: it signals that *something* changed, and any
 * zmq_send/zmq_recv/ZMQ_EVENTS call may consume that signal while processing
 * the socket's command mailbox. So a readable fd is never the source of truth;
 * ZMQ_EVENTS is. A zuv_t re-reads ZMQ_EVENTS and dispatches
 *   - on every wakeup of the uv_poll_t on ZMQ_FD,
 *   - after every callback it makes (until neither POLLIN is pending nor
 *     POLLOUT is both wanted and available),
 *   - in a uv_prepare_t just before the loop blocks, when the socket was
 *     used outside a dispatch since the last one (zuv_kick, zuv_want_write):
 *     such a call may have consumed the edge,
 *   - in a uv_idle_t after zuv_kick() or when one dispatch ran out of budget
 *     (the idle handle makes the loop poll with timeout 0 rather than block).
 *
 * Invariants: callbacks run only on the loop thread and never after
 * zuv_destroy(); the zmq socket is borrowed (the caller closes it, after
 * zuv_destroy()); memory is freed in the last uv_close callback, so
 * zuv_destroy() is safe from inside a zuv callback.
 */
#ifndef FF_ZUV_H
#define FF_ZUV_H

#include <uv.h>

typedef struct zuv zuv_t;

/* Called with ZMQ_POLLIN pending (read with ZMQ_DONTWAIT; reading a bounded
 * batch is fine, zuv calls again while input remains) or, when writing is
 * wanted, with ZMQ_POLLOUT available (send with ZMQ_DONTWAIT; call
 * zuv_want_write(z, 0) once nothing is left to send). */
typedef void (*zuv_fn)(zuv_t *z, void *arg);

/* Puts sock on loop. on_writable may be NULL. Returns 0 or a negative errno
 * (nothing to clean up then); *out receives the handle. */
int zuv_new(uv_loop_t *loop, void *sock, zuv_fn on_readable, zuv_fn on_writable, void *arg,
            zuv_t **out);

/* Asks for (on != 0) or stops on_writable calls. Checks at once (next turn). */
void zuv_want_write(zuv_t *z, int on);

/* Schedules a ZMQ_EVENTS re-check before the loop next blocks. Call after a
 * zmq_send/zmq_recv made outside a zuv callback (cheap; safe anywhere). */
void zuv_kick(zuv_t *z);

/* The borrowed zmq socket. */
void *zuv_socket(const zuv_t *z);

/* Stops callbacks at once and closes the uv handles; memory is released from
 * the close callbacks, so the loop must run once more. Nulls *z_p;
 * idempotent. The zmq socket may be closed right after this returns. */
void zuv_destroy(zuv_t **z_p);

#endif
