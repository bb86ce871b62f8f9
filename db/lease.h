/* lease.h: the DHCP server's durable state in the agent journal: one row per
 * address with a binding (table dhcp_lease, keyed by IP, so an address can
 * never be stored for two clients) and the MACs already reported as
 * discovered (dhcp_seen).
 *
 * Writes go into the journal's open transaction (the agent's per-turn
 * transaction, agent_tx()): a lease is durable when that commits, and only
 * then may its ACK leave. Writing outside a transaction is API misuse
 * (assert). Reads are for start-up only: the server keeps its own index in
 * memory and never SELECTs per packet.
 *
 * Single-threaded, like the journal; statements are prepared once, reset
 * after each use, and finalized by lease_db_close() (before journal_close()).
 */
#ifndef FF_LEASE_H
#define FF_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"

enum lease_state { LEASE_BOUND = 0, LEASE_RELEASED, LEASE_DECLINED };

struct lease_row {
    uint32_t ip; /* host order, non-zero */
    uint8_t mac[6];
    int state;       /* enum lease_state */
    int64_t expires; /* s since the epoch: lease end (bound), release time, hold end (declined) */
    int64_t granted; /* s since the epoch: when this lease was granted */
    char cls[64];    /* device class name, "" = none */
};

typedef struct lease_db lease_db_t;

/* Prepares the statements on the journal's database. 0 or -EIO (logged). */
int lease_db_open(journal_t *j, lease_db_t **out);
/* Finalizes the statements. Nulls *l_p; idempotent. */
void lease_db_close(lease_db_t **l_p);

/* Inserts or replaces the row for r->ip. 0 or -EIO/-EINVAL. */
int lease_db_put(lease_db_t *l, const struct lease_row *r, uint64_t now_ms);
/* Deletes the row for ip (absent is fine). 0 or -EIO. */
int lease_db_delete(lease_db_t *l, uint32_t ip);
/* Calls fn for every row (ascending ip); rows that fail their checks are
 * skipped. fn returns non-zero to stop. Number visited or -EIO. */
int lease_db_each(lease_db_t *l, int (*fn)(void *arg, const struct lease_row *r), void *arg);

/* Remembers that mac was reported as discovered (idempotent). 0 or -EIO. */
int lease_db_seen_put(lease_db_t *l, const uint8_t mac[6], uint64_t now_ms);
/* Calls fn for every remembered MAC. Number visited or -EIO. */
int lease_db_seen_each(lease_db_t *l, int (*fn)(void *arg, const uint8_t mac[6]), void *arg);

#endif
