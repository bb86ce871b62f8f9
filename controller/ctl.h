/* ctl.h: the controller's one context struct (one per firmfleetd process).
 *
 * firmfleetd is single-threaded: one zmq_poll loop over the agent ROUTER, the
 * ZAP handler socket and the admin REP socket. The admin handlers (ctl_admin)
 * and the agent link (ctl_link) both work on this struct from that thread.
 */
#ifndef FF_CTL_H
#define FF_CTL_H

#include <limits.h>
#include <signal.h>

#include "imgstore.h"
#include "store.h"

typedef struct ctl_link ctl_link_t;

struct ctl {
    void *zctx;
    void *router;            /* agents: ROUTER, CURVE server */
    void *zap;               /* inproc://zeromq.zap.01, REP */
    void *admin;             /* CLI: REP */
    store_t *st;
    imgstore_t *img;
    ctl_link_t *link;
    char datadir[PATH_MAX - 256];
    char listen[256];        /* endpoint the ROUTER binds, e.g. tcp://0.0.0.0:7600 */
    char public_endpoint[256]; /* what enrolled agents connect to */
    char admin_endpoint[PATH_MAX];
    char pub[41], sec[41];   /* controller CURVE keypair, Z85 */
    int heartbeat_ms;
    int64_t event_retention_s; /* events older than this are pruned; 0 keeps all */
    int admin_curve;         /* the admin endpoint is tcp: CURVE, DATADIR/admin_keys */
};

#endif
