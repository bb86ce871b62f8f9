/* httpd.h: the site agent's HTTP/1.1 provisioning server (httpd.c): GET and
 * HEAD (with one Range) of what the file resolver (files.h) finds, PUT of
 * device backups into the per-device upload area. httpd_start() is declared
 * in services.h; this header holds its fixed limits and its counters.
 *
 * Limits (see also http_req.h for the per-request ones):
 *   - at most HTTPD_CONN_CAP connections, fewer when RLIMIT_NOFILE is low
 *     ((soft limit - 128) / 4, at least 8); past that HTTPD_OVERFLOW_CONNS
 *     more get "503" and are closed, and beyond those accept() + close();
 *   - a request head must arrive within HTTPD_HEADER_TIMEOUT_MS of its
 *     first byte (slowloris), an idle keep-alive connection is closed after
 *     HTTPD_KEEPALIVE_MS, a body or a response that makes no progress for
 *     HTTPD_IO_TIMEOUT_MS is abandoned.
 * Events (agent_emit_event): http.get for GETs larger than HTTPD_EVENT_BYTES
 * and for any GET/HEAD of a device in the site's inventory, at most one per
 * (device or peer, name, status) per HTTPD_EVENT_WINDOW_MS (the rest are
 * counted); http.upload for every stored PUT. One event per request would
 * put a journal commit behind every request of a busy site.
 */
#ifndef FF_HTTPD_H
#define FF_HTTPD_H

#include <stdint.h>

#include "agent.h"

#define HTTPD_CONN_CAP 4096
#define HTTPD_OVERFLOW_CONNS 16
#define HTTPD_HEADER_TIMEOUT_MS 10000
#define HTTPD_KEEPALIVE_MS 30000
#define HTTPD_IO_TIMEOUT_MS 30000
#define HTTPD_LINGER_MS 2000
#define HTTPD_EVENT_BYTES (1u << 20) /* GET responses larger than this are events */
#define HTTPD_EVENT_WINDOW_MS 10000  /* identical http.get events within it: counted */

struct httpd_stats {
    uint64_t conns;     /* accepted */
    uint64_t rejected;  /* 503 or closed at once: too many connections */
    uint64_t timeouts;  /* closed by a timeout */
    uint64_t requests;  /* answered (any status) */
    uint64_t status[6]; /* by class: [2] 2xx, [4] 4xx, [5] 5xx, [1] 1xx-or-other */
    uint64_t bytes_out; /* heads and bodies */
    uint64_t uploads;   /* PUTs stored */
    uint64_t upload_bytes;
    uint64_t events;            /* http.get and http.upload events emitted */
    uint64_t events_suppressed; /* http.get repeats within HTTPD_EVENT_WINDOW_MS */
};

/* The counters of the running HTTP service. 0, or -ENOENT when it is not
 * running. Loop thread only. */
int httpd_get_stats(struct agent *a, struct httpd_stats *out);

#endif
