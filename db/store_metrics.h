/* store_metrics.h: the counts the controller's /metrics scrape reads from
 * the store (controller/ctl_metrics.c). Each is one cheap statement run at
 * scrape time, outside any transaction (WAL: it sees the last commit):
 * COUNT(*) over an index or a small table, sums over the agent table, GROUP
 * BY over the rollout_devices_state covering index. Nothing here writes.
 */
#ifndef FF_STORE_METRICS_H
#define FF_STORE_METRICS_H

#include <stdint.h>

#include "store.h"

struct store_metrics {
    int64_t agents; /* enrolled, not revoked */
    int64_t agents_revoked;
    int64_t sites;
    int64_t devices;
    int64_t events_ingested; /* agent events committed (sum of agent.last_in_seq) */
    int64_t outbox_depth;    /* journal backlog toward agents: written, not yet acked */
};

/* Fills *out. 0 or -EIO (logged). */
int store_metrics_counts(store_t *st, struct store_metrics *out);
/* Calls fn for every unrevoked agent id (ascending); fn returning non-zero
 * stops. The number visited or -EIO. */
int store_metrics_agents(store_t *st, int (*fn)(void *arg, int64_t id), void *arg);
/* Rollouts by state (rollouts.state), and rollout devices by state summed
 * over all rollouts: fn(arg, state, n) per state present. 0 or -EIO. */
int store_metrics_rollouts(store_t *st, void (*fn)(void *arg, const char *state, int64_t n),
                           void *arg);
int store_metrics_rollout_devices(store_t *st, void (*fn)(void *arg, const char *state, int64_t n),
                                  void *arg);

#endif
