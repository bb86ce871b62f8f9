/* test_dhcp_lease.c: the DHCP server's in-memory lease table
 * (siteagent/dhcp_lease): the hash map against a reference under random
 * insert/delete (backward-shift deletion keeps every key findable); pools
 * hand out never-used addresses first, never one address to two clients,
 * then the longest-free record; a MAC is held by one record only; released
 * and expired records keep their MAC (affinity) until reused; declined
 * addresses stay out until their hold ends; exclusions are honoured; a
 * reconfiguration drops records that hold nothing and keeps bindings; the
 * start-up loader grows the table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dhcp_lease.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static void test_map_random(void **state)
{
    (void)state;
    enum { N = 4000 };
    struct dhcp_map m;
    assert_int_equal(dhcp_map_init(&m, N), 0);
    static uint32_t ref[N]; /* key i -> value+1, 0 absent */
    memset(ref, 0, sizeof ref);
    srand(7);
    for (int it = 0; it < 200000; it++) {
        uint32_t k = (uint32_t)rand() % N;
        uint64_t key = (uint64_t)k * 0x10000ull; /* clustered keys, many collisions */
        if (rand() % 3) {
            uint32_t v = (uint32_t)rand(); /* <= RAND_MAX, so v + 1 != 0 */
            assert_int_equal(dhcp_map_put(&m, key, v), 0);
            ref[k] = v + 1;
        } else {
            assert_int_equal(dhcp_map_del(&m, key), ref[k] != 0);
            ref[k] = 0;
        }
        if (it % 5000 == 0) {
            uint32_t n = 0;
            for (uint32_t i = 0; i < N; i++) {
                uint32_t v;
                int got = dhcp_map_get(&m, (uint64_t)i * 0x10000ull, &v);
                assert_int_equal(got, ref[i] != 0);
                if (got)
                    assert_int_equal(v + 1, ref[i]);
                n += ref[i] != 0;
            }
            assert_int_equal(m.n, n);
        }
    }
    /* full: a new key is refused, an existing one replaced */
    struct dhcp_map s;
    assert_int_equal(dhcp_map_init(&s, 4), 0);
    for (uint64_t k = 0; k < s.max; k++)
        assert_int_equal(dhcp_map_put(&s, k, 1), 0);
    assert_int_equal(dhcp_map_put(&s, 999, 1), -ENOSPC);
    assert_int_equal(dhcp_map_put(&s, 0, 2), 0);
    dhcp_map_clear(&s);
    assert_int_equal(s.n, 0);
    uint32_t v;
    assert_int_equal(dhcp_map_get(&s, 0, &v), 0);
    dhcp_map_free(&s);
    dhcp_map_free(&m);
    static const uint8_t mac[6] = {0, 4, 0xf2, 1, 2, 3};
    assert_int_equal(dhcp_mac_key(mac), 0x0004f2010203ull);
}

static int s_excl_odd(void *arg, uint32_t ip)
{
    (void)arg;
    return ip & 1;
}

static void test_alloc_unique_and_exhaust(void **state)
{
    (void)state;
    dhcp_ltab_t *t;
    assert_int_equal(dhcp_ltab_new(&t), 0);
    struct dhcp_range r = {IP(198, 18, 1, 100), IP(198, 18, 1, 109)};
    assert_int_equal(dhcp_ltab_set_pools(t, &r, 1, 0), 0);
    uint8_t mac[6] = {2, 0, 0, 0, 0, 0};
    uint32_t seen[10];
    for (int i = 0; i < 10; i++) {
        struct dhcp_lease *l = dhcp_ltab_alloc(t, 0, 1000, NULL, NULL);
        assert_non_null(l);
        assert_int_equal(l->ip, IP(198, 18, 1, 100) + (uint32_t)i); /* in order, never-used first */
        for (int k = 0; k < i; k++)
            assert_int_not_equal(seen[k], l->ip);
        seen[i] = l->ip;
        mac[5] = (uint8_t)i;
        assert_null(dhcp_ltab_set_mac(t, l, mac));
        dhcp_ltab_set_state(t, l, DL_BOUND, 2000);
    }
    assert_null(dhcp_ltab_alloc(t, 0, 1000, NULL, NULL)); /* exhausted */
    assert_null(dhcp_ltab_alloc(t, 1, 1000, NULL, NULL)); /* no such pool */
    assert_null(dhcp_ltab_alloc(t, -1, 1000, NULL, NULL));
    /* lookups both ways */
    mac[5] = 3;
    struct dhcp_lease *l = dhcp_ltab_by_mac(t, mac);
    assert_non_null(l);
    assert_int_equal(l->ip, IP(198, 18, 1, 103));
    assert_ptr_equal(dhcp_ltab_by_ip(t, IP(198, 18, 1, 103)), l);
    assert_null(dhcp_ltab_by_ip(t, IP(198, 18, 1, 110)));
    assert_int_equal(dhcp_ltab_pool_of(t, IP(198, 18, 1, 105)), 0);
    assert_int_equal(dhcp_ltab_pool_of(t, IP(198, 18, 1, 99)), -1);
    /* time passes: leases run out, the sweep frees them, the oldest first */
    struct dhcp_lease *a = dhcp_ltab_by_ip(t, IP(198, 18, 1, 107));
    struct dhcp_lease *b = dhcp_ltab_by_ip(t, IP(198, 18, 1, 102));
    dhcp_ltab_set_state(t, a, DL_BOUND, 2500);
    dhcp_ltab_set_state(t, b, DL_BOUND, 2400);
    assert_false(dhcp_ltab_usable(a, 2450));
    assert_true(dhcp_ltab_usable(b, 2450));
    l = dhcp_ltab_alloc(t, 0, 2450, NULL, NULL); /* alloc sweeps by itself */
    assert_non_null(l);
    assert_int_equal(l->state, DL_EXPIRED);
    assert_true(l->has_mac); /* affinity kept until reused */
    dhcp_ltab_destroy(&t);
    assert_null(t);
    dhcp_ltab_destroy(&t);
}

static void test_mac_moves_and_affinity(void **state)
{
    (void)state;
    dhcp_ltab_t *t;
    assert_int_equal(dhcp_ltab_new(&t), 0);
    struct dhcp_range r = {IP(10, 0, 0, 10), IP(10, 0, 0, 19)};
    assert_int_equal(dhcp_ltab_set_pools(t, &r, 1, 4), 0);
    const uint8_t m1[6] = {2, 0, 0, 0, 0, 1}, m2[6] = {2, 0, 0, 0, 0, 2};
    struct dhcp_lease *a = dhcp_ltab_alloc(t, 0, 100, NULL, NULL);
    dhcp_ltab_set_mac(t, a, m1);
    dhcp_ltab_set_state(t, a, DL_BOUND, 1000);
    struct dhcp_lease *b = dhcp_ltab_alloc(t, 0, 100, NULL, NULL);
    assert_ptr_not_equal(a, b);
    /* m1 moves to b: a loses it, and is reported */
    assert_ptr_equal(dhcp_ltab_set_mac(t, b, m1), a);
    assert_false(a->has_mac);
    assert_ptr_equal(dhcp_ltab_by_mac(t, m1), b);
    /* a record taking a MAC drops the one it had */
    dhcp_ltab_set_mac(t, a, m2);
    assert_ptr_equal(dhcp_ltab_set_mac(t, a, m1), b);
    assert_null(dhcp_ltab_by_mac(t, m2));
    assert_ptr_equal(dhcp_ltab_by_mac(t, m1), a);
    assert_false(b->has_mac);
    /* released: keeps the MAC; the free list gives never-used addresses
     * before it, so the same client finds it again */
    dhcp_ltab_set_state(t, a, DL_RELEASED, 200);
    for (int i = 0; i < 8; i++) {
        struct dhcp_lease *x = dhcp_ltab_alloc(t, 0, 300, NULL, NULL);
        assert_non_null(x);
        assert_ptr_not_equal(x, a);
        dhcp_ltab_set_state(t, x, DL_BOUND, 5000);
    }
    /* left: b (FREE since 100) and a (RELEASED at 200): b is older */
    dhcp_ltab_set_state(t, b, DL_FREE, 100);
    struct dhcp_lease *x = dhcp_ltab_alloc(t, 0, 300, NULL, NULL);
    assert_ptr_equal(x, b);
    dhcp_ltab_set_state(t, x, DL_OFFERED, 330);
    x = dhcp_ltab_alloc(t, 0, 300, NULL, NULL);
    assert_ptr_equal(x, a);
    dhcp_ltab_clear_mac(t, a);
    assert_null(dhcp_ltab_by_mac(t, m1));
    dhcp_ltab_destroy(&t);
}

static void test_decline_and_exclusion(void **state)
{
    (void)state;
    dhcp_ltab_t *t;
    assert_int_equal(dhcp_ltab_new(&t), 0);
    struct dhcp_range r[2] = {{IP(10, 0, 0, 10), IP(10, 0, 0, 13)},
                              {IP(10, 0, 1, 1), IP(10, 0, 1, 1)}};
    assert_int_equal(dhcp_ltab_set_pools(t, r, 2, 0), 0);
    /* odd addresses excluded: 10 and 12 only */
    struct dhcp_lease *a = dhcp_ltab_alloc(t, 0, 100, s_excl_odd, NULL);
    dhcp_ltab_set_state(t, a, DL_BOUND, 1000);
    struct dhcp_lease *b = dhcp_ltab_alloc(t, 0, 100, s_excl_odd, NULL);
    assert_int_equal(a->ip, IP(10, 0, 0, 10));
    assert_int_equal(b->ip, IP(10, 0, 0, 12));
    dhcp_ltab_set_state(t, b, DL_DECLINED, 700);
    assert_null(dhcp_ltab_alloc(t, 0, 100, s_excl_odd, NULL));
    assert_false(dhcp_ltab_usable(b, 699));
    assert_int_equal(dhcp_ltab_sweep(t, 699), 0);
    assert_int_equal(dhcp_ltab_sweep(t, 700), 1);
    assert_int_equal(b->state, DL_FREE);
    assert_ptr_equal(dhcp_ltab_alloc(t, 0, 700, s_excl_odd, NULL), b);
    /* the other pool is separate */
    struct dhcp_lease *c = dhcp_ltab_alloc(t, 1, 100, NULL, NULL);
    assert_non_null(c);
    assert_int_equal(c->ip, IP(10, 0, 1, 1));
    assert_int_equal(c->pool, 1);
    dhcp_ltab_destroy(&t);
}

static void test_reconfigure_and_load(void **state)
{
    (void)state;
    dhcp_ltab_t *t;
    assert_int_equal(dhcp_ltab_new(&t), 0);
    /* the loader grows the table before any pool exists */
    const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
    for (uint32_t i = 0; i < 300; i++) {
        struct dhcp_lease *l = dhcp_ltab_load(t, IP(10, 1, 0, 0) + i);
        assert_non_null(l);
        assert_int_equal(l->pool, -1);
    }
    struct dhcp_lease *l = dhcp_ltab_by_ip(t, IP(10, 1, 0, 5));
    dhcp_ltab_set_mac(t, l, mac);
    dhcp_ltab_set_state(t, l, DL_BOUND, 9999);
    assert_int_equal(dhcp_ltab_count(t), 300);
    /* a pool over part of them: records outside that hold nothing go */
    struct dhcp_range r = {IP(10, 1, 0, 0), IP(10, 1, 0, 9)};
    assert_int_equal(dhcp_ltab_set_pools(t, &r, 1, 2), 0);
    assert_int_equal(dhcp_ltab_count(t), 10);
    l = dhcp_ltab_by_mac(t, mac);
    assert_non_null(l);
    assert_int_equal(l->ip, IP(10, 1, 0, 5));
    assert_int_equal(l->pool, 0);
    /* the bound one is kept when its pool disappears */
    assert_int_equal(dhcp_ltab_set_pools(t, NULL, 0, 0), 0);
    assert_int_equal(dhcp_ltab_count(t), 1);
    assert_ptr_equal(dhcp_ltab_by_ip(t, IP(10, 1, 0, 5)), dhcp_ltab_by_mac(t, mac));
    assert_int_equal(dhcp_ltab_by_mac(t, mac)->pool, -1);
    /* add() never grows: capacity is what set_pools reserved */
    uint32_t added = 0;
    while (dhcp_ltab_add(t, IP(172, 16, 0, 0) + added) != NULL)
        added++;
    assert_true(added > 0);
    assert_int_equal(dhcp_ltab_count(t), added + 1);
    /* too many addresses */
    struct dhcp_range huge = {IP(10, 0, 0, 0), IP(10, 255, 255, 255)};
    assert_int_equal(dhcp_ltab_set_pools(t, &huge, 1, 0), -E2BIG);
    assert_ptr_equal(dhcp_ltab_at(t, 0), dhcp_ltab_by_ip(t, IP(10, 1, 0, 5)));
    assert_null(dhcp_ltab_at(t, dhcp_ltab_count(t)));
    dhcp_ltab_destroy(&t);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_random),
        cmocka_unit_test(test_alloc_unique_and_exhaust),
        cmocka_unit_test(test_mac_moves_and_affinity),
        cmocka_unit_test(test_decline_and_exclusion),
        cmocka_unit_test(test_reconfigure_and_load),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
