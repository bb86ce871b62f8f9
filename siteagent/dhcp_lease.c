/* dhcp_lease.c: the in-memory lease table; see dhcp_lease.h.
 *
 * Records live in one array (indices are stable between set_pools calls);
 * two open-addressing maps index it by IP and by MAC. Each pool keeps a
 * cursor over its never-used addresses and a FIFO of usable records (doubly
 * linked through the records), so allocation never scans the table: the
 * cursor passes each address once per configuration, and the FIFO head is
 * usable by construction. Rejected: a bitmap per pool (needs a scan to find
 * a clear bit once the pool fills up) and a heap by expiry (the sweep that
 * turns lapsed leases into free ones runs every few seconds and is O(n) over
 * at most DHCP_LTAB_MAX records, a few milliseconds; not worth the upkeep).
 */
#include "dhcp_lease.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TOP (1ull << 63)
#define NIL UINT32_MAX

/* ---- map ---- */

static uint32_t s_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (uint32_t)k;
}

int dhcp_map_init(struct dhcp_map *m, uint32_t max_entries)
{
    uint32_t slots = 16;
    while (slots < 2ull * max_entries && slots < (1u << 31))
        slots <<= 1;
    memset(m, 0, sizeof *m);
    m->keys = calloc(slots, sizeof *m->keys);
    m->vals = calloc(slots, sizeof *m->vals);
    if (m->keys == NULL || m->vals == NULL) {
        dhcp_map_free(m);
        return -ENOMEM;
    }
    m->mask = slots - 1;
    m->max = slots / 2;
    return 0;
}

void dhcp_map_free(struct dhcp_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void dhcp_map_clear(struct dhcp_map *m)
{
    /* an empty map is all zeros already (no tombstones): not touching it
     * keeps a large, never-filled map (dhcpd's 1 MiB seen set) off RSS */
    if (m->keys != NULL && m->n > 0)
        memset(m->keys, 0, ((size_t)m->mask + 1) * sizeof *m->keys);
    m->n = 0;
}

/* Slot of key, or of the empty slot where it would go. */
static uint32_t s_slot(const struct dhcp_map *m, uint64_t k)
{
    uint32_t i = s_hash(k) & m->mask;
    while (m->keys[i] != 0 && m->keys[i] != (k | TOP))
        i = (i + 1) & m->mask;
    return i;
}

int dhcp_map_get(const struct dhcp_map *m, uint64_t key, uint32_t *val)
{
    if (m->keys == NULL)
        return 0;
    uint32_t i = s_slot(m, key);
    if (m->keys[i] == 0)
        return 0;
    *val = m->vals[i];
    return 1;
}

int dhcp_map_put(struct dhcp_map *m, uint64_t key, uint32_t val)
{
    if (m->keys == NULL)
        return -ENOSPC;
    uint32_t i = s_slot(m, key);
    if (m->keys[i] == 0) {
        if (m->n >= m->max)
            return -ENOSPC;
        m->keys[i] = key | TOP;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

int dhcp_map_del(struct dhcp_map *m, uint64_t key)
{
    if (m->keys == NULL)
        return 0;
    uint32_t i = s_slot(m, key);
    if (m->keys[i] == 0)
        return 0;
    /* backward-shift deletion: no tombstones, probe chains stay short */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->keys[j] == 0)
            break;
        uint32_t home = s_hash(m->keys[j] & ~TOP) & m->mask;
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->n--;
    return 1;
}

uint64_t dhcp_mac_key(const uint8_t mac[6])
{
    uint64_t k = 0;
    for (int i = 0; i < 6; i++)
        k = k << 8 | mac[i];
    return k;
}

/* ---- lease table ---- */

struct lpool {
    uint32_t start, end;
    uint64_t cursor; /* next never-tried address; > end: none left */
    uint32_t head, tail;
};

struct dhcp_ltab {
    struct dhcp_lease *v;
    uint32_t n, cap;
    struct dhcp_map by_ip, by_mac;
    struct lpool *pools;
    size_t n_pools;
    int64_t last_sweep;
};

int dhcp_ltab_new(dhcp_ltab_t **out)
{
    *out = NULL;
    dhcp_ltab_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->last_sweep = -1;
    *out = t;
    return 0;
}

void dhcp_ltab_destroy(dhcp_ltab_t **t_p)
{
    if (t_p == NULL || *t_p == NULL)
        return;
    dhcp_ltab_t *t = *t_p;
    *t_p = NULL;
    free(t->v);
    free(t->pools);
    dhcp_map_free(&t->by_ip);
    dhcp_map_free(&t->by_mac);
    free(t);
}

static int s_pool_of(const struct lpool *p, size_t n, uint32_t ip)
{
    for (size_t i = 0; i < n; i++)
        if (ip >= p[i].start && ip <= p[i].end)
            return (int)i;
    return -1;
}

int dhcp_ltab_pool_of(const dhcp_ltab_t *t, uint32_t ip)
{
    return s_pool_of(t->pools, t->n_pools, ip);
}

static int s_usable_state(int st)
{
    return st == DL_FREE || st == DL_RELEASED || st == DL_EXPIRED;
}

static void s_free_push(dhcp_ltab_t *t, struct dhcp_lease *l)
{
    if (l->on_free || l->pool < 0)
        return;
    struct lpool *p = &t->pools[l->pool];
    uint32_t i = (uint32_t)(l - t->v);
    l->prev = p->tail;
    l->next = NIL;
    if (p->tail != NIL)
        t->v[p->tail].next = i;
    else
        p->head = i;
    p->tail = i;
    l->on_free = 1;
}

static void s_free_unlink(dhcp_ltab_t *t, struct dhcp_lease *l)
{
    if (!l->on_free)
        return;
    struct lpool *p = &t->pools[l->pool];
    if (l->prev != NIL)
        t->v[l->prev].next = l->next;
    else
        p->head = l->next;
    if (l->next != NIL)
        t->v[l->next].prev = l->prev;
    else
        p->tail = l->prev;
    l->prev = l->next = NIL;
    l->on_free = 0;
}

/* Rebuilds both maps for capacity cap from the first t->n records. */
static int s_reindex(dhcp_ltab_t *t, uint32_t cap)
{
    struct dhcp_map ip, mac;
    if (dhcp_map_init(&ip, cap) < 0)
        return -ENOMEM;
    if (dhcp_map_init(&mac, cap) < 0) {
        dhcp_map_free(&ip);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        dhcp_map_put(&ip, t->v[i].ip, i);
        if (t->v[i].has_mac)
            dhcp_map_put(&mac, dhcp_mac_key(t->v[i].mac), i);
    }
    dhcp_map_free(&t->by_ip);
    dhcp_map_free(&t->by_mac);
    t->by_ip = ip;
    t->by_mac = mac;
    return 0;
}

static int s_grow(dhcp_ltab_t *t, uint32_t cap)
{
    if (cap <= t->cap)
        return 0;
    if (cap > DHCP_LTAB_MAX)
        return -E2BIG;
    struct dhcp_lease *v = realloc(t->v, (size_t)cap * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    t->v = v;
    if (s_reindex(t, cap) < 0)
        return -ENOMEM; /* v is larger, nothing else changed */
    t->cap = cap;
    return 0;
}

static struct dhcp_lease *s_add(dhcp_ltab_t *t, uint32_t ip, int grow)
{
    struct dhcp_lease *l = dhcp_ltab_by_ip(t, ip);
    if (l != NULL)
        return l;
    if (t->n >= t->cap) {
        uint32_t want = t->cap ? t->cap * 2 : 64;
        if (want > DHCP_LTAB_MAX)
            want = DHCP_LTAB_MAX;
        if (!grow || s_grow(t, want) < 0 || t->n >= t->cap)
            return NULL;
    }
    uint32_t i = t->n;
    if (dhcp_map_put(&t->by_ip, ip, i) < 0)
        return NULL;
    t->n++;
    l = &t->v[i];
    memset(l, 0, sizeof *l);
    l->ip = ip;
    l->state = DL_FREE;
    l->pool = s_pool_of(t->pools, t->n_pools, ip);
    l->prev = l->next = NIL;
    s_free_push(t, l);
    return l;
}

struct dhcp_lease *dhcp_ltab_add(dhcp_ltab_t *t, uint32_t ip)
{
    return s_add(t, ip, 0);
}

struct dhcp_lease *dhcp_ltab_load(dhcp_ltab_t *t, uint32_t ip)
{
    return s_add(t, ip, 1);
}

struct dhcp_lease *dhcp_ltab_by_ip(const dhcp_ltab_t *t, uint32_t ip)
{
    uint32_t i;
    return dhcp_map_get(&t->by_ip, ip, &i) ? &t->v[i] : NULL;
}

struct dhcp_lease *dhcp_ltab_by_mac(const dhcp_ltab_t *t, const uint8_t mac[6])
{
    uint32_t i;
    return dhcp_map_get(&t->by_mac, dhcp_mac_key(mac), &i) ? &t->v[i] : NULL;
}

void dhcp_ltab_clear_mac(dhcp_ltab_t *t, struct dhcp_lease *l)
{
    if (!l->has_mac)
        return;
    uint32_t i;
    uint64_t k = dhcp_mac_key(l->mac);
    if (dhcp_map_get(&t->by_mac, k, &i) && i == (uint32_t)(l - t->v))
        dhcp_map_del(&t->by_mac, k);
    l->has_mac = 0;
    memset(l->mac, 0, 6);
}

struct dhcp_lease *dhcp_ltab_set_mac(dhcp_ltab_t *t, struct dhcp_lease *l, const uint8_t mac[6])
{
    struct dhcp_lease *old = dhcp_ltab_by_mac(t, mac);
    if (old == l)
        return NULL;
    if (old != NULL)
        dhcp_ltab_clear_mac(t, old);
    dhcp_ltab_clear_mac(t, l);
    memcpy(l->mac, mac, 6);
    l->has_mac = 1;
    /* cannot fail: by_mac has room for one entry per record */
    dhcp_map_put(&t->by_mac, dhcp_mac_key(mac), (uint32_t)(l - t->v));
    return old;
}

void dhcp_ltab_set_state(dhcp_ltab_t *t, struct dhcp_lease *l, int state, int64_t expires)
{
    l->state = (uint8_t)state;
    l->expires = expires;
    if (s_usable_state(state))
        s_free_push(t, l);
    else
        s_free_unlink(t, l);
}

int dhcp_ltab_usable(const struct dhcp_lease *l, int64_t now)
{
    return s_usable_state(l->state) || l->expires <= now;
}

uint32_t dhcp_ltab_sweep(dhcp_ltab_t *t, int64_t now)
{
    uint32_t changed = 0;
    t->last_sweep = now;
    for (uint32_t i = 0; i < t->n; i++) {
        struct dhcp_lease *l = &t->v[i];
        if (s_usable_state(l->state) || l->expires > now)
            continue;
        if (l->state == DL_DECLINED) {
            dhcp_ltab_clear_mac(t, l);
            dhcp_ltab_set_state(t, l, DL_FREE, now);
        } else {
            dhcp_ltab_set_state(t, l, DL_EXPIRED, l->expires);
        }
        changed++;
    }
    return changed;
}

struct dhcp_lease *dhcp_ltab_alloc(dhcp_ltab_t *t, int pool, int64_t now,
                                   int (*excl)(void *arg, uint32_t ip), void *arg)
{
    if (pool < 0 || (size_t)pool >= t->n_pools)
        return NULL;
    struct lpool *p = &t->pools[pool];
    while (p->cursor <= p->end) {
        uint32_t ip = (uint32_t)p->cursor++;
        if (dhcp_ltab_by_ip(t, ip) != NULL || (excl && excl(arg, ip)))
            continue;
        return dhcp_ltab_add(t, ip);
    }
    for (int round = 0; round < 2; round++) {
        for (uint32_t i = p->head; i != NIL; i = t->v[i].next)
            if (!excl || !excl(arg, t->v[i].ip))
                return &t->v[i];
        if (round == 0 && t->last_sweep != now)
            dhcp_ltab_sweep(t, now);
        else
            break;
    }
    return NULL;
}

static int s_keep(const struct dhcp_lease *l, int pool)
{
    return pool >= 0 || l->has_mac || l->state == DL_DECLINED;
}

struct order {
    int64_t expires;
    uint32_t i;
};

static int s_by_expiry(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->expires != y->expires)
        return x->expires < y->expires ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int dhcp_ltab_set_pools(dhcp_ltab_t *t, const struct dhcp_range *r, size_t n, uint32_t extra)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (uint64_t)r[i].end - r[i].start + 1;
    struct lpool *pools = calloc(n ? n : 1, sizeof *pools);
    if (pools == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        pools[i].start = r[i].start;
        pools[i].end = r[i].end;
        pools[i].cursor = r[i].start;
        pools[i].head = pools[i].tail = NIL;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < t->n; i++)
        kept += s_keep(&t->v[i], s_pool_of(pools, n, t->v[i].ip)) ? 1 : 0;
    uint64_t need = kept + total + extra;
    if (need > DHCP_LTAB_MAX) {
        free(pools);
        return -E2BIG;
    }
    if (need < 64)
        need = 64;
    struct order *order = malloc((size_t)(t->n ? t->n : 1) * sizeof *order);
    if (order == NULL) {
        free(pools);
        return -ENOMEM;
    }
    int rc = s_grow(t, (uint32_t)need);
    if (rc < 0) {
        free(order);
        free(pools);
        return rc;
    }
    /* compact in place; the maps are rebuilt below */
    uint32_t j = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        int pool = s_pool_of(pools, n, t->v[i].ip);
        if (!s_keep(&t->v[i], pool))
            continue;
        t->v[j] = t->v[i];
        t->v[j].pool = pool;
        t->v[j].on_free = 0;
        t->v[j].prev = t->v[j].next = NIL;
        j++;
    }
    t->n = j;
    free(t->pools);
    t->pools = pools;
    t->n_pools = n;
    /* the maps are sized for t->cap already: refill them for the new layout */
    dhcp_map_clear(&t->by_ip);
    dhcp_map_clear(&t->by_mac);
    for (uint32_t i = 0; i < t->n; i++) {
        dhcp_map_put(&t->by_ip, t->v[i].ip, i);
        if (t->v[i].has_mac)
            dhcp_map_put(&t->by_mac, dhcp_mac_key(t->v[i].mac), i);
    }
    /* free lists: the longest free first */
    uint32_t k = 0;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->v[i].pool >= 0 && s_usable_state(t->v[i].state))
            order[k++] = (struct order){t->v[i].expires, i};
    qsort(order, k, sizeof *order, s_by_expiry);
    for (uint32_t i = 0; i < k; i++)
        s_free_push(t, &t->v[order[i].i]);
    free(order);
    return 0;
}

uint32_t dhcp_ltab_count(const dhcp_ltab_t *t)
{
    return t->n;
}

struct dhcp_lease *dhcp_ltab_at(dhcp_ltab_t *t, uint32_t i)
{
    return i < t->n ? &t->v[i] : NULL;
}
