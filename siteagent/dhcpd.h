/* dhcpd.h: what the DHCP server (dhcpd.c) shows besides dhcpd_start
 * (services.h): its counters, for the agent's /metrics. */
#ifndef FF_DHCPD_H
#define FF_DHCPD_H

#include <stdint.h>

#include "agent.h"

struct dhcpd_stats {
    uint64_t rx;      /* datagrams received */
    uint64_t bad;     /* unparseable */
    uint64_t ignored; /* not a client request we answer (op, type, hardware) */
    uint64_t discover, request, decline, release, inform; /* valid requests by type */
    uint64_t offers, acks, naks;                          /* replies built */
    uint64_t sent;                                        /* replies sent */
    uint64_t dropped; /* replies not sent (queue full, send error, failed commit) */
};
/* The counters of the running DHCP service. 0, or -ENOENT when it is not
 * running. Loop thread only. */
int dhcpd_get_stats(struct agent *a, struct dhcpd_stats *out);

#endif
