/* metrics_http.h: firmfleet-agent's /metrics responder (--metrics
 * ADDR:PORT): a minimal HTTP/1.1 server on the agent's libuv loop that
 * answers GET /metrics with the agent's counters in the Prometheus text
 * format (lib/metrics.h), 404 for any other path, and closes.
 *
 * Bounds: METRICS_MAX_CONNS connections at once (past that, libuv leaves
 * the next one in the kernel backlog until a slot frees), a request head of
 * METRICS_REQ_MAX bytes, METRICS_CONN_TIMEOUT_MS per connection. Nothing a
 * client sends is kept past its connection.
 *
 * What it reads, at scrape time only: the services' counters
 * (dhcpd_get_stats, tftpd_get_stats, httpd_get_stats), the uplink, the
 * journal's sequence numbers and image index, the provisioning states
 * (prov_state_counts) and the SIP NOTIFY counters.
 */
#ifndef FF_METRICS_HTTP_H
#define FF_METRICS_HTTP_H

#include "agent.h"
#include "metrics.h"

/* Binds and listens on listen (ADDR:PORT), registers as a service (closed
 * by agent_stop). 0 or <0 (logged; nothing left open). */
int mhttp_start(struct agent *a, const char *listen);
/* Builds the agent's whole scrape into out (for tests too). 0 or <0. */
int mhttp_collect(struct agent *a, metrics_t *out);

#endif
