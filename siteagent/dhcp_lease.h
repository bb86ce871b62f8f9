/* dhcp_lease.h: the DHCP server's in-memory lease table: one record per
 * address that has (or had) a binding, found by IP or by MAC in O(1), and
 * address allocation from pools in amortized O(1). Pure: no I/O, no clock
 * (callers pass `now`, wall-clock seconds), no allocation after
 * dhcp_ltab_set_pools() except through dhcp_ltab_load().
 *
 * Invariants:
 *   - at most one record per IP (by_ip) and at most one record holds a given
 *     MAC (by_mac): an address is never bound to two clients, a client never
 *     holds two addresses;
 *   - a record is on its pool's free list iff its state is FREE, RELEASED or
 *     EXPIRED (usable) and it lies in a pool; BOUND/OFFERED/DECLINED records
 *     whose time ran out become usable at the next dhcp_ltab_sweep();
 *   - allocation prefers never-used addresses (a cursor walks each pool once),
 *     then the record that became free the longest ago, so a client that
 *     comes back usually finds its old address still unused (affinity).
 * Durability is the caller's business (db/lease.h).
 */
#ifndef FF_DHCP_LEASE_H
#define FF_DHCP_LEASE_H

#include <stddef.h>
#include <stdint.h>

/* ---- a fixed-capacity hash map uint64 key (< 2^63) -> uint32 ---- */

struct dhcp_map {
    uint64_t *keys; /* 0 = empty; else key | 1 << 63 */
    uint32_t *vals;
    uint32_t mask;
    uint32_t n;
    uint32_t max; /* entries allowed (half the slots) */
};

/* Room for max_entries. 0 or -ENOMEM. */
int dhcp_map_init(struct dhcp_map *m, uint32_t max_entries);
void dhcp_map_free(struct dhcp_map *m);
void dhcp_map_clear(struct dhcp_map *m);
/* 1 and *val when present, else 0. */
int dhcp_map_get(const struct dhcp_map *m, uint64_t key, uint32_t *val);
/* Inserts or replaces. 0, or -ENOSPC when full. */
int dhcp_map_put(struct dhcp_map *m, uint64_t key, uint32_t val);
/* 1 when removed, 0 when absent. */
int dhcp_map_del(struct dhcp_map *m, uint64_t key);
/* The 48-bit key of a MAC. */
uint64_t dhcp_mac_key(const uint8_t mac[6]);

/* ---- the lease table ---- */

enum dhcp_lstate {
    DL_FREE = 0, /* no binding */
    DL_OFFERED,  /* offered to mac until `expires` (memory only) */
    DL_BOUND,    /* leased to mac until `expires` */
    DL_RELEASED, /* mac gave it back; kept as mac's affinity */
    DL_EXPIRED,  /* mac's lease ran out; kept as mac's affinity */
    DL_DECLINED, /* a client saw it in use; unusable until `expires` */
};

struct dhcp_lease {
    uint32_t ip; /* host order */
    uint8_t mac[6];
    uint8_t has_mac;
    uint8_t state;       /* enum dhcp_lstate */
    int32_t pool;        /* pool index, -1 outside every pool */
    int64_t expires;     /* s since the epoch (lease, offer or decline hold end) */
    int64_t granted;     /* s: when the stored lease was written (0 = never) */
    int64_t evented;     /* s: last dhcp.lease event for this binding */
    uint32_t prev, next; /* free list of its pool */
    uint8_t on_free;
    uint8_t stored; /* a row exists for it in storage (the caller keeps this) */
};

struct dhcp_range {
    uint32_t start, end; /* host order, start <= end */
};

typedef struct dhcp_ltab dhcp_ltab_t;

#define DHCP_LTAB_MAX (1u << 20) /* records, all pools together */

int dhcp_ltab_new(dhcp_ltab_t **out);
/* Nulls *t_p; idempotent. */
void dhcp_ltab_destroy(dhcp_ltab_t **t_p);

/* Replaces the pools (a new configuration). Records outside every pool that
 * hold nothing (no MAC, not declined) are dropped; the rest get their pool
 * index again; free lists are rebuilt and cursors reset; capacity grows so
 * that every pool address plus `extra` more records fit. Pointers to records
 * are invalid afterwards. 0, -E2BIG (more than DHCP_LTAB_MAX addresses),
 * -ENOMEM (the table is unchanged then). */
int dhcp_ltab_set_pools(dhcp_ltab_t *t, const struct dhcp_range *r, size_t n, uint32_t extra);

/* The record for ip, creating a FREE one without MAC. add never grows the
 * table (NULL when full: the capacity set_pools computed was exceeded, a
 * bug); load grows it (start-up only: pointers become invalid). */
struct dhcp_lease *dhcp_ltab_add(dhcp_ltab_t *t, uint32_t ip);
struct dhcp_lease *dhcp_ltab_load(dhcp_ltab_t *t, uint32_t ip);
struct dhcp_lease *dhcp_ltab_by_ip(const dhcp_ltab_t *t, uint32_t ip);
struct dhcp_lease *dhcp_ltab_by_mac(const dhcp_ltab_t *t, const uint8_t mac[6]);
/* The pool holding ip, or -1. O(pools). */
int dhcp_ltab_pool_of(const dhcp_ltab_t *t, uint32_t ip);

/* l takes mac. The record that held it before (now without MAC) is
 * returned so the caller can update its storage; NULL when none. */
struct dhcp_lease *dhcp_ltab_set_mac(dhcp_ltab_t *t, struct dhcp_lease *l, const uint8_t mac[6]);
void dhcp_ltab_clear_mac(dhcp_ltab_t *t, struct dhcp_lease *l);
/* Sets state and expires, keeping the free lists right. */
void dhcp_ltab_set_state(dhcp_ltab_t *t, struct dhcp_lease *l, int state, int64_t expires);
/* 1 when l may be handed to a new client at time now. */
int dhcp_ltab_usable(const struct dhcp_lease *l, int64_t now);

/* A usable record in pool `pool` whose address excl() does not refuse: a
 * never-used address first, else the longest-free record. The record's
 * state is unchanged (the caller offers or binds it). NULL: pool exhausted. */
struct dhcp_lease *dhcp_ltab_alloc(dhcp_ltab_t *t, int pool, int64_t now,
                                   int (*excl)(void *arg, uint32_t ip), void *arg);
/* Turns records whose time ran out into usable ones (BOUND, OFFERED ->
 * EXPIRED; DECLINED -> FREE without MAC). Returns how many changed. O(n). */
uint32_t dhcp_ltab_sweep(dhcp_ltab_t *t, int64_t now);

uint32_t dhcp_ltab_count(const dhcp_ltab_t *t);
struct dhcp_lease *dhcp_ltab_at(dhcp_ltab_t *t, uint32_t i);

#endif
