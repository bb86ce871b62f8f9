/* ctl_metrics.h: firmfleetd's /metrics responder (--metrics ADDR:PORT): a
 * minimal HTTP/1.1 server on plain non-blocking sockets that the
 * controller's zmq_poll loop watches next to its ZeroMQ sockets, and the
 * in-memory counters the loop feeds it.
 *
 * Bounds: at most METRICS_MAX_CONNS connections at once (the listener is not
 * polled while they are all busy, so more wait in the kernel's backlog); a
 * request head of at most METRICS_REQ_MAX bytes; every connection closed
 * METRICS_CONN_TIMEOUT_MS after it was accepted, answered or not. One answer
 * per connection (Connection: close). A scrape reads the store with a few
 * cheap statements (db/store_metrics.h), so it costs the loop about a
 * millisecond, never a wait on a client: reads and writes never block.
 *
 * Everything runs on the controller's loop thread.
 */
#ifndef FF_CTL_METRICS_H
#define FF_CTL_METRICS_H

#include <zmq.h>

#include "ctl.h"
#include "metrics.h"

typedef struct ctl_metrics ctl_metrics_t;

/* What the loop times, per dispatch (the handler's commit included). */
enum ctl_metrics_handler {
    CTL_MH_ROUTER,  /* agent messages */
    CTL_MH_ADMIN,   /* CLI requests */
    CTL_MH_ZAP,     /* CURVE authentication */
    CTL_MH_ROLLOUT, /* the rollout engine's tick */
    CTL_MH__N
};

/* Poll items the responder may need: the listener and its connections. */
#define CTL_METRICS_POLLITEMS (1 + METRICS_MAX_CONNS)

/* Binds and listens on listen (ADDR:PORT, metrics_parse_listen). 0 or <0
 * (logged); nothing is left open on error. ctl is borrowed for the
 * responder's life. */
int ctl_metrics_new(struct ctl *ctl, const char *listen, ctl_metrics_t **out);
/* Closes the listener and every connection. Nulls *m_p; idempotent. */
void ctl_metrics_destroy(ctl_metrics_t **m_p);

/* Fills items (room for CTL_METRICS_POLLITEMS) with what to poll now;
 * returns how many. The same items, with revents set by zmq_poll, go back to
 * ctl_metrics_on_poll. */
int ctl_metrics_poll_items(ctl_metrics_t *m, zmq_pollitem_t *items);
void ctl_metrics_on_poll(ctl_metrics_t *m, const zmq_pollitem_t *items, int n);
/* wait_ms lowered to the next connection deadline (-1 = none given). */
int ctl_metrics_wait_ms(const ctl_metrics_t *m, int wait_ms);

/* Counters the loop keeps. */
void ctl_metrics_observe(ctl_metrics_t *m, enum ctl_metrics_handler h, double seconds);
void ctl_metrics_admin_request(ctl_metrics_t *m);

/* Builds the whole scrape text into out (for tests too). 0 or <0. */
int ctl_metrics_collect(ctl_metrics_t *m, metrics_t *out);

#endif
