/* zuv.c: see zuv.h.
 *
 * One dispatch makes at most ZUV_BUDGET callbacks and then yields through the
 * idle handle, so a peer that floods the socket cannot starve timers, signals
 * and the agent's per-turn commit. The prepare and idle handles are unref'd:
 * only the uv_poll_t keeps the loop alive.
 */
#include "zuv.h"

#include <errno.h>
#include <stdlib.h>
#include <zmq.h>

#define ZUV_BUDGET 64

struct zuv {
    uv_poll_t poll;
    uv_prepare_t prepare;
    uv_idle_t idle;
    void *sock;
    zuv_fn on_readable;
    zuv_fn on_writable;
    void *arg;
    int want_write;
    int closing;
    int in_dispatch;
    int dirty;        /* the socket was used outside a dispatch since the last one */
    int open_handles; /* uv handles not yet through their close callback */
};

static void s_on_idle(uv_idle_t *h);

static void s_dispatch(zuv_t *z)
{
    if (z->closing || z->in_dispatch)
        return; /* the outer dispatch loop re-reads ZMQ_EVENTS anyway */
    z->in_dispatch = 1;
    z->dirty = 0;
    int budget = ZUV_BUDGET;
    int more = 0;
    while (!z->closing) {
        int ev = 0;
        size_t sz = sizeof ev;
        if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &ev, &sz) < 0)
            break; /* ETERM or a closed socket: nothing more will come */
        int rd = (ev & ZMQ_POLLIN) && z->on_readable != NULL;
        int wr = (ev & ZMQ_POLLOUT) && z->want_write && z->on_writable != NULL;
        if (!rd && !wr)
            break;
        if (budget-- == 0) {
            more = 1;
            break;
        }
        if (rd)
            z->on_readable(z, z->arg);
        if (wr && !z->closing && z->want_write)
            z->on_writable(z, z->arg);
    }
    z->in_dispatch = 0;
    if (z->closing)
        return;
    if (more)
        uv_idle_start(&z->idle, s_on_idle);
    else
        uv_idle_stop(&z->idle);
}

static void s_on_poll(uv_poll_t *h, int status, int events)
{
    (void)status; /* an error on ZMQ_FD tells nothing ZMQ_EVENTS would not */
    (void)events;
    s_dispatch(h->data);
}

/* Before the loop blocks: only a socket used outside a dispatch (zuv_kick,
 * zuv_want_write) can have lost its ZMQ_FD edge; re-reading ZMQ_EVENTS on
 * every turn regardless cost a poll and a getpid per turn on the DHCP, TFTP
 * and HTTP hot paths. */
static void s_on_prepare(uv_prepare_t *h)
{
    zuv_t *z = h->data;
    if (z->dirty)
        s_dispatch(z);
}

static void s_on_idle(uv_idle_t *h)
{
    s_dispatch(h->data);
}

static void s_on_close(uv_handle_t *h)
{
    zuv_t *z = h->data;
    if (--z->open_handles == 0)
        free(z);
}

int zuv_new(uv_loop_t *loop, void *sock, zuv_fn on_readable, zuv_fn on_writable, void *arg,
            zuv_t **out)
{
    *out = NULL;
    int fd = -1;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
        return -errno;
    zuv_t *z = calloc(1, sizeof *z);
    if (z == NULL)
        return -ENOMEM;
    z->sock = sock;
    z->on_readable = on_readable;
    z->on_writable = on_writable;
    z->arg = arg;
    int rc = uv_poll_init(loop, &z->poll, fd);
    if (rc < 0) {
        free(z);
        return rc;
    }
    z->poll.data = z;
    z->open_handles = 1;
    /* uv_prepare_init and uv_idle_init cannot fail on Unix; checked anyway. */
    if ((rc = uv_prepare_init(loop, &z->prepare)) == 0) {
        z->prepare.data = z;
        z->open_handles++;
        if ((rc = uv_idle_init(loop, &z->idle)) == 0) {
            z->idle.data = z;
            z->open_handles++;
        }
    }
    if (rc == 0)
        rc = uv_poll_start(&z->poll, UV_READABLE, s_on_poll);
    if (rc < 0) {
        zuv_destroy(&z);
        return rc;
    }
    uv_prepare_start(&z->prepare, s_on_prepare);
    uv_unref((uv_handle_t *)&z->prepare);
    uv_unref((uv_handle_t *)&z->idle);
    /* Messages may already be queued (the fd edge may be gone): look now. */
    uv_idle_start(&z->idle, s_on_idle);
    *out = z;
    return 0;
}

void zuv_want_write(zuv_t *z, int on)
{
    if (z == NULL || z->closing)
        return;
    z->want_write = on != 0;
    if (on) {
        z->dirty = 1;
        uv_idle_start(&z->idle, s_on_idle);
    }
}

void zuv_kick(zuv_t *z)
{
    if (z != NULL && !z->closing) {
        z->dirty = 1;
        uv_idle_start(&z->idle, s_on_idle);
    }
}

void *zuv_socket(const zuv_t *z)
{
    return z->sock;
}

void zuv_destroy(zuv_t **z_p)
{
    if (z_p == NULL || *z_p == NULL)
        return;
    zuv_t *z = *z_p;
    *z_p = NULL;
    z->closing = 1;
    int n = z->open_handles; /* handles initialised, in init order */
    uv_close((uv_handle_t *)&z->poll, s_on_close);
    if (n > 1)
        uv_close((uv_handle_t *)&z->prepare, s_on_close);
    if (n > 2)
        uv_close((uv_handle_t *)&z->idle, s_on_close);
}
