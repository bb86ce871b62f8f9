/* sim_netif.h: the addresses the simulator puts on its interface. A
 * simulated device fetches from its leased address (the agent maps that
 * address to its MAC) and answers SIP there, so each lease is added to the
 * shared interface, over rtnetlink, and removed again at exit.
 *
 * Invariants: only addresses this process added are ever removed (one that
 * was already there, EEXIST, is not recorded); they are removed in reverse
 * order, so the first one added in a subnet (the primary, which carries the
 * prefix route) goes last and its secondaries are not flushed with it.
 */
#ifndef FF_SIM_NETIF_H
#define FF_SIM_NETIF_H

#include <stdint.h>

typedef struct sim_netif sim_netif_t;

/* Opens rtnetlink for interface ifname. 0 or -errno (-ENODEV: no such
 * interface). */
int sim_netif_new(const char *ifname, sim_netif_t **out);
/* Removes every address added through it, closes, nulls *self_p. Idempotent. */
void sim_netif_destroy(sim_netif_t **self_p);
/* Adds addr/prefix (synchronous, one netlink round trip). 0 when it is
 * there afterwards (added now or before), or -errno. */
int sim_netif_add(sim_netif_t *n, uint32_t addr_be, unsigned prefix);
/* The interface's index. */
int sim_netif_index(const sim_netif_t *n);

#endif
